/**
 * A recording gateway for the tape's tests: the real app with TAPE_DIR in a fresh folder, a live
 * client that holds what the test records (the vendor sends only what someone holds), and the
 * instant before anything is published — the start of the window a test replays.
 */
import type { Test } from 'tap';
import type { Encoding } from '../../src/protocol/frame.js';
import type { FakeClock } from './fake-clock.js';
import { type GatewayFixture, startGateway } from './gateway.js';
import type { StreamClient } from './stream-client.js';

export interface Recording {
  gw: GatewayFixture;
  /** the tape folder */
  dir: string;
  /** a client of `stream` holding `subscribe`, as the vendor's data reached it live */
  live: StreamClient;
  /** the gateway's clock once the vendor holds the live client's set */
  fromNs: bigint;
}

export interface RecordingOptions {
  readonly subscribe: Record<string, string[]>;
  readonly stream?: string;
  readonly env?: Record<string, string>;
  readonly clock?: FakeClock;
  readonly encoding?: Encoding;
}

export async function recordingGateway(t: Test, options: RecordingOptions): Promise<Recording> {
  const dir = t.testdir();
  const gw = await startGateway(t, { TAPE_DIR: dir, ...options.env }, options.clock);
  await Promise.all(gw.gateway.streams.map((s) => s.link.whenLive(10_000)));
  const stream = options.stream ?? gw.gateway.defaultStream.path;
  const live = await gw.connect({ stream, encoding: options.encoding });
  await live.auth('live', 's');
  await live.request({ action: 'subscribe', ...options.subscribe });
  await gw.gateway.stream(stream)!.link.whenSynced(10_000);
  return { gw, dir, live, fromNs: gw.gateway.clock.nanos() };
}

/** Writes what every recorder has queued, so a replay finds it. */
export async function taped(gw: GatewayFixture): Promise<void> {
  await Promise.all(gw.gateway.tape!.recorders.map((r) => r.flushed()));
}
