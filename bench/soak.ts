/**
 * `npm run soak`: the chaos and soak harness (issue #8). The simulator and the gateway run as
 * separate processes on 127.0.0.1; a seeded population of clients (healthy, slow, churning,
 * reconnecting, hostile) runs in this process while vendor faults are injected on a loop. Prints
 * one JSON object and exits non-zero when an invariant fails.
 *
 *   npm run soak -- --minutes 30 [--seed 1] [--json] [--rate 1500] [--fault-every-ms 3000]
 *   npm run soak -- --seconds 25
 *
 * Invariants: no trade-id gap for a healthy client outside a vendor outage, never more than one
 * vendor session at once, no healthy client closed or silently starved or stripped of its
 * subscriptions, and the gateway alive at the end.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { seededRandom } from '../src/random.js';
import { rssBytes, stopProcess, track } from './processes.js';
import { Population } from './soak-population.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const { values } = parseArgs({
  options: {
    minutes: { type: 'string' },
    seconds: { type: 'string' },
    seed: { type: 'string', default: '1' },
    /** one JSON line instead of an indented object */
    json: { type: 'boolean', default: false },
    rate: { type: 'string', default: '3000' },
    'fault-every-ms': { type: 'string', default: '3000' },
    healthy: { type: 'string', default: '8' },
    slow: { type: 'string', default: '2' },
    churning: { type: 'string', default: '3' },
    reconnecting: { type: 'string', default: '3' },
    hostile: { type: 'string', default: '1' },
    /** a comma-separated subset of the fault kinds (default: all, in turn) */
    faults: { type: 'string' },
    /** a file: every line the gateway logs goes there */
    'gateway-log': { type: 'string' },
  },
});
const DURATION_MS = values.seconds !== undefined ? Number(values.seconds) * 1000 : Number(values.minutes ?? '1') * 60_000;
const SEED = Number(values.seed);
const RATE = Number(values.rate);
const FAULT_EVERY_MS = Number(values['fault-every-ms']);
/** a held symbol this long without a trade, outside any outage, counts as starved (at RATE it ticks many times a second) */
const STARVED_MS = 10_000;
/** slack around an outage for frames in flight when it began or ended */
const OUTAGE_PAD_MS = 500;
const AUTH_TIMEOUT_MS = 2000;
const MAX_SYMBOLS_PER_CLIENT = 10_000;
const KEY = 'soak';

if (!Number.isFinite(DURATION_MS) || DURATION_MS < 5000) fail('--minutes or --seconds must give at least 5 seconds');
for (const [name, value] of Object.entries({ seed: SEED, rate: RATE, 'fault-every-ms': FAULT_EVERY_MS })) {
  if (!Number.isInteger(value) || value < 0) fail(`--${name} must be a whole number`);
}

function fail(message: string): never {
  process.stderr.write(`soak: ${message}\n`);
  process.exit(2);
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    process.stderr.write(`soak: ${signal}, stopping the simulator and the gateway\n`);
    process.exit(130);
  });
}

const started = performance.now();
const elapsed = (): number => performance.now() - started;

/** A child node process whose stdout lines go to `onLine` and whose last lines are kept for a post-mortem. */
function node(args: string[], env: Record<string, string>, onLine: (line: string) => void = () => undefined): { child: ChildProcess; tail: string[] } {
  const child = track(spawn(process.execPath, args, { cwd: ROOT, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] }));
  const tail: string[] = [];
  const keep = (line: string): void => {
    tail.push(line);
    if (tail.length > 50) tail.shift();
  };
  let buffer = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    buffer += chunk.toString();
    let newline: number;
    while ((newline = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      keep(line);
      onLine(line);
    }
  });
  child.stderr?.on('data', (chunk: Buffer) => keep(chunk.toString().trimEnd()));
  return { child, tail };
}

/** The first stdout JSON line with `msg`, parsed; rejects if the process exits first. */
function readyLine<T>(child: ChildProcess, lines: { on: (fn: (line: string) => void) => void }, msg: string): Promise<T> {
  return new Promise((resolve, reject) => {
    lines.on((line) => {
      if (!line.includes(msg)) return;
      try {
        resolve(JSON.parse(line) as T);
      } catch (err) {
        if (!(err instanceof SyntaxError)) throw err;
      }
    });
    child.once('exit', (code) => reject(new Error(`${msg}: the process exited (${code}) before it was ready`)));
  });
}

/** Line listeners set after spawning (the ready line and the gateway's state log). */
function lineHub(): { on: (fn: (line: string) => void) => void; emit: (line: string) => void } {
  const listeners: ((line: string) => void)[] = [];
  return { on: (fn) => listeners.push(fn), emit: (line) => listeners.forEach((fn) => fn(line)) };
}

/** A Prometheus metric's value summed over its samples (the per-stream ones carry a `stream` label), or undefined. */
function metric(text: string, name: string): number | undefined {
  const values = [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.eE+-]+|NaN)$`, 'gm'))].map((m) => Number(m[1]));
  return values.length === 0 ? undefined : values.reduce((sum, v) => sum + v, 0);
}

async function getJson(url: string): Promise<Record<string, number>> {
  const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
  return (await res.json()) as Record<string, number>;
}

interface Sample {
  t: number;
  rssBytes: number | undefined;
  handles: number | undefined;
  lagP99Seconds: number | undefined;
  slowClientCloses: number | undefined;
  clients: number | undefined;
  vendorAuthenticatedNow: number | undefined;
  vendorSubscriptionFrames: number | undefined;
}

type FaultKind = 'drop-clean' | 'drop-terminate' | 'stall' | 'subscribe-500' | 'subscribe-500-on-restore' | 'subscribe-406' | 'auth-406' | 'malformed';
const FAULT_KINDS: FaultKind[] = ['drop-clean', 'subscribe-500', 'malformed', 'drop-terminate', 'subscribe-406', 'stall', 'subscribe-500-on-restore', 'auth-406'];
const MALFORMED_KINDS = ['garbage', 'not-array', 'not-object', 'unknown-type', 'unknown-error'];
const CYCLE: FaultKind[] = values.faults === undefined ? FAULT_KINDS : (values.faults.split(',') as FaultKind[]);
for (const kind of CYCLE) if (!FAULT_KINDS.includes(kind)) fail(`--faults: unknown kind ${kind}; known: ${FAULT_KINDS.join(', ')}`);

async function main(): Promise<void> {
  const random = seededRandom(SEED);

  const simLines = lineHub();
  const simulator = node(['dist/src/cli.js', 'simulate', '--port', '0', '--rate', String(RATE), '--seed', String(SEED), '--key', KEY, '--secret', KEY, '--max-buffer-mb', '64'], { LOG_LEVEL: 'info' }, simLines.emit);
  const { url: vendorUrl } = await readyLine<{ url: string }>(simulator.child, simLines, 'simulated vendor ready');
  const control = vendorUrl.replace('ws://', 'http://').replace('/v2/iex', '');

  const gatewayLines = lineHub();
  if (values['gateway-log'] !== undefined) {
    const file = createWriteStream(values['gateway-log']);
    gatewayLines.on((line) => file.write(`${line}\n`));
  }
  const linkLog = { transitions: {} as Record<string, number>, reasons: {} as Record<string, number>, refusals: {} as Record<string, number>, syncs: 0 };
  gatewayLines.on((line) => {
    // The gateway's own account of its vendor link, to explain what the clients saw.
    if (line.includes('"vendor link state"')) {
      const entry = JSON.parse(line) as { from: string; to: string; reason?: string };
      linkLog.transitions[`${entry.from}->${entry.to}`] = (linkLog.transitions[`${entry.from}->${entry.to}`] ?? 0) + 1;
      if (entry.reason !== undefined) {
        const reason = entry.reason.replace(/\d+ ms/g, 'N ms').replace(/\d+ consecutive/, 'N consecutive').slice(0, 100);
        linkLog.reasons[reason] = (linkLog.reasons[reason] ?? 0) + 1;
      }
    } else if (line.includes('"vendor refused a subscription request"')) {
      const entry = JSON.parse(line) as { code: number; action: string };
      linkLog.refusals[`${entry.action} ${entry.code}`] = (linkLog.refusals[`${entry.action} ${entry.code}`] ?? 0) + 1;
    } else if (line.includes('"syncing vendor subscriptions"')) linkLog.syncs += 1;
  });
  const gateway = node(
    ['dist/src/server.js'],
    {
      HOST: '127.0.0.1',
      PORT: '0',
      LOG_LEVEL: 'info',
      UPSTREAM_URL: vendorUrl,
      APCA_API_KEY_ID: KEY,
      APCA_API_SECRET_KEY: KEY,
      // Short retry and liveness settings so every fault is over within seconds.
      RETRY_BASE_MS: '200',
      RETRY_MAX_MS: '2000',
      RETRY_AFTER_406_MS: '1000',
      STALE_AFTER_MS: '3000',
      HEARTBEAT_MS: '1000',
      PONG_TIMEOUT_MS: '1000',
      BREAKER_RESET_MS: '2000',
      CONNECT_TIMEOUT_MS: '2000',
      AUTH_TIMEOUT_MS: '2000',
      SUBSCRIBE_TIMEOUT_MS: '3000',
      STOP_TIMEOUT_MS: '2000',
      SHUTDOWN_GRACE_MS: '5000',
      // Modest client limits so a reader that stops is cut within seconds.
      CLIENT_AUTH_TIMEOUT_MS: String(AUTH_TIMEOUT_MS),
      CLIENT_HIGH_WATER_BYTES: '65536',
      CLIENT_MAX_BUFFER_BYTES: '262144',
      MAX_SYMBOLS_PER_CLIENT: String(MAX_SYMBOLS_PER_CLIENT),
      MAX_CLIENTS: '2000',
    },
    gatewayLines.emit,
  );
  // UPSTREAM_URL names one stream, so the gateway serves that one: the first and only of its streams.
  const { address: gatewayHttp, streams: [gatewayUrl] } = await readyLine<{ address: string; streams: string[] }>(gateway.child, gatewayLines, 'tickmux ready');
  if (gatewayUrl === undefined) throw new Error('the gateway serves no stream');
  let gatewayExit: { code: number | null; signal: string | null; at: number } | undefined;
  let stopping = false;
  const gatewayDied = new Promise<void>((resolve) =>
    gateway.child.once('exit', (code, signal) => {
      gatewayExit = { code, signal, at: elapsed() };
      if (!stopping) process.stderr.write(`soak: the gateway died (${code ?? signal}); its last lines:\n${gateway.tail.join('\n')}\n`);
      resolve();
    }),
  );

  const population = new Population({
    url: gatewayUrl,
    random,
    healthy: Number(values.healthy),
    slow: Number(values.slow),
    churning: Number(values.churning),
    reconnecting: Number(values.reconnecting),
    hostile: Number(values.hostile),
    authTimeoutMs: AUTH_TIMEOUT_MS,
    maxSymbolsPerClient: MAX_SYMBOLS_PER_CLIENT,
    // 20 s at 6,000 msgs/s (a slow client gets ~0.7 MB/s there), longer at lower rates.
    slowPauseMs: Math.min(90_000, Math.max(20_000, (20_000 * 6000) / Math.max(RATE, 1))),
  });
  process.stderr.write(`soak: gateway ready ${gatewayUrl}\n`);
  await population.start();
  process.stderr.write(`soak: population started\n`);

  // ---- faults on a loop
  const faults: Record<string, number> = Object.fromEntries(CYCLE.map((k) => [k, 0]));
  const faultLog: { t: number; kind: FaultKind; detail?: string }[] = [];
  const faultErrors: string[] = [];
  let faultIndex = 0;
  let malformedIndex = 0;
  const post = async (path: string): Promise<void> => {
    const res = await fetch(`${control}${path}`, { method: 'POST', signal: AbortSignal.timeout(2000) });
    if (!res.ok) throw new Error(`${path}: ${res.status}`);
  };
  const inject = async (kind: FaultKind): Promise<string | undefined> => {
    const at = performance.now();
    switch (kind) {
      case 'drop-clean':
        await post('/control/drop');
        population.faultWindows.push({ start: at, end: at });
        return undefined;
      case 'drop-terminate':
        await post('/control/drop?terminate=1');
        population.faultWindows.push({ start: at, end: at });
        return undefined;
      case 'stall': {
        const ms = 2000 + Math.round(random() * 2000);
        await post(`/control/stall?ms=${ms}`);
        population.faultWindows.push({ start: at, end: at + ms });
        return `${ms} ms`;
      }
      case 'subscribe-500': {
        const times = 1 + Math.floor(random() * 3);
        await post(`/control/reject-subscribe?code=500&times=${times}`);
        return `${times}×`;
      }
      case 'subscribe-406':
        await post('/control/reject-subscribe?code=406');
        return undefined;
      case 'subscribe-500-on-restore':
        // Drop first: no subscription frame goes out while the link is down, so the 500 meets the restore.
        await post('/control/drop');
        population.faultWindows.push({ start: at, end: at });
        await post('/control/reject-subscribe?code=500');
        return undefined;
      case 'auth-406':
        // Inject first: nothing authenticates until the drop makes the gateway reconnect.
        await post('/control/reject-auth?code=406');
        await post('/control/drop');
        population.faultWindows.push({ start: at, end: at });
        return undefined;
      case 'malformed': {
        const which = MALFORMED_KINDS[malformedIndex++ % MALFORMED_KINDS.length] as string;
        await post(`/control/malformed?kind=${which}`);
        return which;
      }
    }
  };
  let faultTimer: NodeJS.Timeout | undefined;
  const faultLoop = (): void => {
    faultTimer = setTimeout(() => {
      const kind = CYCLE[faultIndex++ % CYCLE.length] as FaultKind;
      const t = Math.round(elapsed());
      inject(kind).then(
        (detail) => {
          faults[kind] = (faults[kind] ?? 0) + 1;
          faultLog.push(detail === undefined ? { t, kind } : { t, kind, detail });
        },
        (err: unknown) => faultErrors.push(`${kind}: ${(err as Error).message}`),
      );
      if (!stopping) faultLoop();
    }, FAULT_EVERY_MS * (0.75 + random() * 0.5));
  };
  // A first quiet stretch: the start figures are taken before any fault.
  const firstFaultTimer = setTimeout(faultLoop, Math.min(3000, DURATION_MS / 10));

  // ---- sampling
  const samples: Sample[] = [];
  const sampleErrors: Record<string, number> = {};
  let maxVendorAuthenticatedNow = 0;
  let lastVendorStats: Record<string, number> = {};
  const sample = async (): Promise<void> => {
    const t = Math.round(elapsed());
    let text = '';
    try {
      text = await (await fetch(`${gatewayHttp}/metrics`, { signal: AbortSignal.timeout(2000) })).text();
    } catch (err) {
      sampleErrors.gatewayMetrics = (sampleErrors.gatewayMetrics ?? 0) + 1;
      void err;
    }
    try {
      lastVendorStats = await getJson(`${control}/stats`);
      maxVendorAuthenticatedNow = Math.max(maxVendorAuthenticatedNow, lastVendorStats.authenticatedNow ?? 0);
    } catch (err) {
      sampleErrors.simulatorStats = (sampleErrors.simulatorStats ?? 0) + 1;
      void err;
    }
    samples.push({
      t,
      rssBytes: gateway.child.pid === undefined ? undefined : rssBytes(gateway.child.pid),
      handles: metric(text, 'tickmux_nodejs_active_handles_total'),
      lagP99Seconds: metric(text, 'tickmux_nodejs_eventloop_lag_p99_seconds'),
      slowClientCloses: metric(text, 'tickmux_slow_client_closes_total'),
      clients: metric(text, 'tickmux_clients_connected'),
      vendorAuthenticatedNow: lastVendorStats.authenticatedNow,
      vendorSubscriptionFrames: lastVendorStats.subscriptionFrames,
    });
    population.checkStarvation(STARVED_MS);
  };
  let sampleTimer: NodeJS.Timeout | undefined;
  const sampleLoop = (): void => {
    sampleTimer = setTimeout(() => void sample().then(() => !stopping && sampleLoop()), 1000);
  };
  await sample();
  sampleLoop();

  let endTimer: NodeJS.Timeout | undefined;
  await Promise.race([new Promise<void>((resolve) => (endTimer = setTimeout(resolve, DURATION_MS))), gatewayDied]);

  // ---- stop: faults, sampling, clients, then the processes (the gateway first, gracefully)
  stopping = true;
  clearTimeout(endTimer);
  clearTimeout(firstFaultTimer);
  clearTimeout(faultTimer);
  clearTimeout(sampleTimer);
  await sample();
  const gatewayAliveAtEnd = gatewayExit === undefined;
  const finalVendorStats = { ...lastVendorStats };
  process.stderr.write(`soak: stopping clients\n`);
  await population.stop();
  process.stderr.write(`soak: clients stopped\n`);
  await stopProcess(gateway.child, 8000);
  await stopProcess(simulator.child, 8000);

  // ---- the report
  const gaps = population.gaps.map((g) => ({ ...g, inOutage: population.inOutage(g.lastAt, g.seenAt, OUTAGE_PAD_MS) }));
  // Gaps past the first 1000 kept are judged by the share of the kept ones (reported as such).
  const gapsOutside = gaps.filter((g) => !g.inOutage);
  const outsideCount = population.gapCount > gaps.length ? Math.round((gapsOutside.length / gaps.length) * population.gapCount) : gapsOutside.length;
  const healthy = population.healthy;
  const maxVendorSessions = Math.max(finalVendorStats.maxConcurrentPerKey ?? 0, maxVendorAuthenticatedNow);
  const lagMax = Math.max(0, ...samples.map((s) => s.lagP99Seconds ?? 0));
  const invariants = {
    noGapsOutsideOutages: outsideCount === 0,
    atMostOneVendorSession: maxVendorSessions <= 1,
    noHealthyClientClosed: healthy.closed.length === 0,
    gatewayAlive: gatewayAliveAtEnd,
    healthySubscriptionsKept: healthy.pairsLost === 0,
    noHealthyClientStarved: healthy.starved.length === 0,
  };
  const report = {
    durationSeconds: Math.round(elapsed() / 100) / 10,
    requestedSeconds: DURATION_MS / 1000,
    seed: SEED,
    vendorRate: RATE,
    ok: Object.values(invariants).every(Boolean),
    invariants,
    populations: {
      healthy: { clients: healthy.clients, closed: healthy.closed, errors: healthy.errors, pairsLost: healthy.pairsLost, resubscribes: healthy.resubscribes, starved: healthy.starved.length },
      slow: population.slow,
      churning: population.churning,
      reconnecting: population.reconnecting,
      hostile: population.hostile,
    },
    trades: {
      checked: Number(healthy.tradesChecked),
      healthyMessages: healthy.messages,
      gapsOutsideOutages: outsideCount,
      gapsInsideOutages: population.gapCount - outsideCount,
      missingIdsOutsideOutages: gapsOutside.reduce((sum, g) => sum + BigInt(g.missing), 0n).toString(),
      outOfOrder: healthy.outOfOrder,
      undecodableFrames: healthy.undecodableFrames,
      firstGapsOutside: gapsOutside.slice(0, 5).map((g) => ({ ...g, lastAt: Math.round(g.lastAt - started), seenAt: Math.round(g.seenAt - started) })),
    },
    vendor: {
      maxSessionsAtOnce: maxVendorSessions,
      subscriptionFrames: finalVendorStats.subscriptionFrames,
      maxSubscriptionFramesPerSecond: finalVendorStats.maxSubscriptionFramesPerSecond,
      meanSubscriptionFramesPerSecond: round(((finalVendorStats.subscriptionFrames ?? 0) / elapsed()) * 1000),
      subscriptionChanges: finalVendorStats.subscriptionChanges,
      connections: finalVendorStats.connections,
      authentications: finalVendorStats.authentications,
      outages: population.outages.length,
      outageSecondsTotal: round(population.outages.reduce((sum, o) => sum + ((o.upAt ?? performance.now()) - o.downAt), 0) / 1000),
      linkLog,
    },
    gateway: {
      rssMb: figures(samples.map((s) => s.rssBytes), (v) => round(v / 1048576)),
      activeHandles: figures(samples.map((s) => s.handles), round),
      eventLoopLagP99MaxMs: round(lagMax * 1000),
      slowClientCloses407: samples.at(-1)?.slowClientCloses,
      exit: gatewayExit,
      aliveAtEnd: gatewayAliveAtEnd,
    },
    faults: { injected: faults, total: faultLog.length, errors: faultErrors, log: faultLog.length <= 60 ? faultLog : [...faultLog.slice(0, 30), ...faultLog.slice(-30)] },
    sampling: { samples: samples.length, errors: sampleErrors },
  };
  process.stdout.write(`${values.json ? JSON.stringify(report) : JSON.stringify(report, null, 2)}\n`);
  process.exitCode = report.ok ? 0 : 1;
}

function round(v: number): number {
  return Math.round(v * 10) / 10;
}

/** start / middle / end and the trend (mean of the last quarter over the mean of the second quarter). */
function figures(series: (number | undefined)[], show: (v: number) => number): Record<string, number | undefined> {
  const values = series.filter((v): v is number => v !== undefined && Number.isFinite(v));
  if (values.length === 0) return {};
  const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  const q = Math.floor(values.length / 4);
  const second = values.slice(q, 2 * q);
  const last = values.slice(values.length - q);
  return {
    start: show(values[0] as number),
    middle: show(values[Math.floor(values.length / 2)] as number),
    end: show(values.at(-1) as number),
    max: show(Math.max(...values)),
    lastQuarterOverSecondQuarter: q === 0 ? undefined : Math.round((mean(last) / mean(second)) * 1000) / 1000,
  };
}

await main();
