import type { Test } from 'tap';
import type { MessageUnit } from '../../src/protocol/frame.js';
import { Secret } from '../../src/secret.js';
import type { VendorSimulator } from '../../src/simulator/index.js';
import { type LinkState, type StateChange, StreamManager, type StreamManagerOptions } from '../../src/upstream/stream-manager.js';
import { FakeClock } from './fake-clock.js';
import { captureLogs } from './log-capture.js';
import { WAIT_LIMIT_MS } from './stream-client.js';

export interface LinkFixture {
  manager: StreamManager;
  clock: FakeClock;
  units: MessageUnit[];
  states: StateChange[];
  logs: () => string[];
  /** waits (event-driven) until the manager reaches `state`, counting only changes after `from` */
  reach(state: LinkState, from?: number): Promise<StateChange>;
}

/**
 * A stream manager on a fake clock against `sim`, with its logs captured. Heartbeats, the stale
 * watchdog and the subscription rate floor are out of the way unless a test asks for them. The teardown stops it
 * and checks the vendor never saw two authenticated connections from it.
 */
export function linkTo(t: Test, sim: VendorSimulator, overrides: Partial<StreamManagerOptions> = {}): LinkFixture {
  const clock = new FakeClock();
  const { logger, lines } = captureLogs(overrides.logger === undefined ? 'debug' : 'info');
  const units: MessageUnit[] = [];
  const states: StateChange[] = [];
  const manager = new StreamManager({
    url: sim.url('iex'),
    keyId: new Secret('AKLINKTEST'),
    secretKey: new Secret('link-secret-value'),
    encoding: 'msgpack',
    connectTimeoutMs: 5000,
    authTimeoutMs: 5000,
    retryBaseMs: 100,
    retryMaxMs: 3200,
    retryAfter406Ms: 15_000,
    stableAfterMs: 30_000,
    breakerFailures: 1000,
    breakerResetMs: 30_000,
    heartbeatMs: 3_600_000,
    pongTimeoutMs: 3_600_000,
    staleAfterMs: 3_600_000,
    stopTimeoutMs: 1000,
    subscribeTimeoutMs: 5000,
    // The rate floor is on the fake clock; tests of it set it, the others need not advance time.
    subscribeMinIntervalMs: 0,
    logger,
    clock,
    random: () => 0.5,
    onData: (batch) => units.push(...batch),
    ...overrides,
  });
  manager.on('state', (change) => states.push(change));
  t.teardown(async () => {
    await manager.stop();
    // Checked in every test that uses a link: the vendor allows one session per key and feed.
    if (sim.stats.maxConcurrentPerKey > 1) throw new Error('the vendor saw two authenticated connections from one manager');
  });
  const reach = (state: LinkState, from = states.length): Promise<StateChange> =>
    new Promise((resolve, reject) => {
      const found = states.slice(from).find((s) => s.to === state);
      if (found !== undefined) return resolve(found);
      const timer = setTimeout(() => {
        manager.off('state', listener);
        reject(new Error(`link never reached ${state}; states: ${states.map((s) => s.to).join(' → ')}`));
      }, WAIT_LIMIT_MS);
      const listener = (change: StateChange): void => {
        if (change.to !== state) return;
        clearTimeout(timer);
        manager.off('state', listener);
        resolve(change);
      };
      manager.on('state', listener);
    });
  return { manager, clock, units, states, logs: lines, reach };
}
