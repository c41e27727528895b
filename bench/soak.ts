/**
 * `npm run soak`: the chaos and soak harness (issues #8, #19). The simulator and the gateway run as
 * separate processes on 127.0.0.1; a seeded population of clients (healthy, slow, churning,
 * reconnecting, hostile) runs in this process while vendor faults are injected on a loop. Prints
 * one JSON object and exits non-zero when an invariant fails.
 *
 *   npm run soak -- --minutes 30 [--seed 1] [--json] [--rate 1500] [--fault-every-ms 3000]
 *   npm run soak -- --seconds 25 [--streams all|stocks,crypto,options,news] [--rates crypto=1500]
 *
 * `--streams` (default `all`): the stream kinds driven, each on one path of the one gateway
 * (`v2/iex`, `v1beta3/crypto/us`, `v1beta1/indicative`, `v1beta1/news`, served from the one
 * simulator through a bare UPSTREAM_URL and STREAMS); `--streams stocks` is the soak as it was.
 * Every stream gets `--healthy` readers (both encodings; options in JSON too, transcoded by the
 * gateway); slow, churning, reconnecting and hostile clients are spread over the streams (slow
 * ones over those with a rate-driven flow); each fault hits one stream's vendor link in turn
 * through the simulator's per-path controls. `--rate` is every kind's market rate, `--rates`
 * overrides it per kind.
 *
 * Invariants, per stream and in all: no trade-id gap for a healthy client outside that stream's
 * vendor outages (stocks, crypto); no options trade one healthy reader got and another holding the
 * contract lacks (options trades carry no id); the healthy readers' order books equal the vendor's
 * (`GET /books`, taken with the crypto rate at 0, after a reply barrier); every news item once per
 * holder, none lost outside an outage; never more than one vendor session per stream; per stream
 * the gateway's subscription floor (10 sync rounds a second, 20 frames: at most 101 rounds in any
 * 10 s by its log) and at most 40 subscription frames in any second at the vendor; no healthy
 * client closed or silently starved or stripped of its subscriptions; RSS and handles flat (last
 * quarter ÷ second quarter ≤ 1.5); the gateway alive at the end.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { seededRandom } from '../src/random.js';
import { rssBytes, stopProcess, track } from './processes.js';
import { type BookCheck, Population } from './soak-population.js';
import { parseStreams, type StreamProfile } from './soak-streams.js';

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
    /** healthy readers per stream */
    healthy: { type: 'string', default: '8' },
    /** the rest are totals, spread over the streams (defaults: 2 slow, 3 churning, 3 reconnecting, 1 hostile, and at least one per stream) */
    slow: { type: 'string' },
    churning: { type: 'string' },
    reconnecting: { type: 'string' },
    hostile: { type: 'string' },
    /** a comma-separated subset of the fault kinds (default: all, in turn) */
    faults: { type: 'string' },
    /** a file: every line the gateway logs goes there */
    'gateway-log': { type: 'string' },
    /** `all`, or a comma-separated subset of stocks,crypto,options,news */
    streams: { type: 'string', default: 'all' },
    /** per-kind market rates over --rate, e.g. crypto=1500,options=1500 */
    rates: { type: 'string' },
    /** one news item every this many ms */
    'news-interval-ms': { type: 'string', default: '500' },
    /** compare the crypto readers' books with the vendor's this often */
    'book-check-every-ms': { type: 'string', default: '4000' },
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
/**
 * The gateway's floor per vendor link: sync rounds start at most once per SUBSCRIBE_MIN_INTERVAL_MS
 * (100 ms) — 10 a second, 20 frames a second, a round being a subscribe and an unsubscribe frame.
 * Judged from its "syncing vendor subscriptions" log lines over any 10 s: at most 100 rounds, and
 * one more for the log's stamp, which lags a round's start by the building of its frames (a few
 * ms; one second's count shows 11 now and then for that alone). At the vendor the busiest
 * 1-second window of frames per stream is held to the existing ceiling, 40: a round's second frame
 * may fall in the window before its round's start (21 is seen), and a list past 32 KiB takes
 * several frames.
 */
const SYNC_ROUNDS_PER_10_SECONDS_CEILING = 101;
const SUBSCRIPTION_FRAMES_CEILING = 40;
/** RSS and handles are flat when the mean of the last quarter of the samples is at most this times the second quarter's */
const FLAT_RATIO = 1.5;
/** a book comparison waits this long after the last fault on the stream, and skips when an outage touches it */
const BOOK_QUIET_MS = 2500;
const NEWS_INTERVAL_MS = Number(values['news-interval-ms']);
const BOOK_CHECK_EVERY_MS = Number(values['book-check-every-ms']);
const parsedStreams = parseStreams(values.streams);
if (typeof parsedStreams === 'string') fail(`--streams: unknown kind ${parsedStreams}; known: all, stocks, crypto, options, news`);
const STREAMS: StreamProfile[] = parsedStreams;
const COUNTS = {
  slow: Number(values.slow ?? Math.max(2, STREAMS.filter((p) => p.busy.length > 0).length)),
  churning: Number(values.churning ?? Math.max(3, STREAMS.length)),
  reconnecting: Number(values.reconnecting ?? Math.max(3, STREAMS.length)),
  hostile: Number(values.hostile ?? STREAMS.length),
};
for (const [name, value] of Object.entries({ healthy: Number(values.healthy), ...COUNTS })) if (!Number.isInteger(value) || value < 0) fail(`--${name} must be a whole number`);
const RATES = new Map<string, number>(STREAMS.map((p) => [p.name, RATE]));
for (const entry of values.rates === undefined ? [] : values.rates.split(',')) {
  const [name, value] = entry.split('=');
  if (!RATES.has(name ?? '') || !/^\d+$/.test(value ?? '')) fail(`--rates: ${entry}: want kind=N for a kind of --streams`);
  RATES.set(name as string, Number(value));
}
const MAX_SYMBOLS_PER_CLIENT = 10_000;
const KEY = 'soak';

if (!Number.isFinite(DURATION_MS) || DURATION_MS < 5000) fail('--minutes or --seconds must give at least 5 seconds');
for (const [name, value] of Object.entries({ seed: SEED, rate: RATE, 'fault-every-ms': FAULT_EVERY_MS, 'news-interval-ms': NEWS_INTERVAL_MS, 'book-check-every-ms': BOOK_CHECK_EVERY_MS })) {
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

/** The simulator's figures of one stream path (`GET /stats` → `streams`). */
interface StreamStats {
  connectionsNow: number;
  authenticatedNow: number;
  maxConcurrentPerKey: number;
  subscriptionFrames: number;
  maxSubscriptionFramesPerSecond: number;
  rate: number;
}

/** The most events within any window of `windowMs` (half-open: (t − windowMs, t]) of the times given in order. */
class BusiestWindow {
  max = 0;
  readonly #windowMs: number;
  #times: number[] = [];

  constructor(windowMs: number) {
    this.#windowMs = windowMs;
  }

  add(t: number, weight = 1): void {
    for (let i = 0; i < weight; i++) this.#times.push(t);
    while ((this.#times[0] as number) <= t - this.#windowMs) this.#times.shift();
    this.max = Math.max(this.max, this.#times.length);
  }
}

type LinkLog = {
  transitions: Record<string, number>;
  reasons: Record<string, number>;
  refusals: Record<string, number>;
  syncs: number;
  rounds: BusiestWindow;
  rounds10s: BusiestWindow;
  frames: BusiestWindow;
};
const newLinkLog = (): LinkLog => ({ transitions: {}, reasons: {}, refusals: {}, syncs: 0, rounds: new BusiestWindow(1000), rounds10s: new BusiestWindow(10_000), frames: new BusiestWindow(1000) });

/** Everything the harness keeps of one stream. */
interface Stream {
  profile: StreamProfile;
  url: string;
  population: Population;
  faults: Record<string, number>;
  lastFaultAt: number;
  maxAuthenticatedAtSample: number;
  linkLog: LinkLog;
  bookChecks: BookCheck[];
  bookChecksSkipped: Record<string, number>;
}

async function main(): Promise<void> {
  const random = seededRandom(SEED);

  const simLines = lineHub();
  const simulator = node(
    ['dist/src/cli.js', 'simulate', '--port', '0', '--rate', String(RATE), '--seed', String(SEED), '--key', KEY, '--secret', KEY, '--max-buffer-mb', '64', '--news-interval-ms', String(NEWS_INTERVAL_MS)],
    { LOG_LEVEL: 'info' },
    simLines.emit,
  );
  const { base: vendorBase } = await readyLine<{ base: string }>(simulator.child, simLines, 'simulated vendor ready');
  const control = vendorBase.replace('ws://', 'http://');
  const post = async (path: string): Promise<void> => {
    const res = await fetch(`${control}${path}`, { method: 'POST', signal: AbortSignal.timeout(2000) });
    if (!res.ok) throw new Error(`${path}: ${res.status}`);
  };
  for (const profile of STREAMS) if (RATES.get(profile.name) !== RATE) await post(`/control/rate?value=${RATES.get(profile.name)}&path=${profile.path}`);

  const gatewayLines = lineHub();
  if (values['gateway-log'] !== undefined) {
    const file = createWriteStream(values['gateway-log']);
    gatewayLines.on((line) => file.write(`${line}\n`));
  }
  const linkLog = newLinkLog();
  const linkLogs = new Map<string, LinkLog>(STREAMS.map((p) => [p.path, newLinkLog()]));
  gatewayLines.on((line) => {
    // The gateway's own account of its vendor links, to explain what the clients saw.
    const logs = (entry: { stream?: string }): LinkLog[] => [linkLog, ...(entry.stream !== undefined && linkLogs.has(entry.stream) ? [linkLogs.get(entry.stream) as LinkLog] : [])];
    if (line.includes('"vendor link state"')) {
      const entry = JSON.parse(line) as { from: string; to: string; reason?: string; stream?: string };
      for (const log of logs(entry)) {
        log.transitions[`${entry.from}->${entry.to}`] = (log.transitions[`${entry.from}->${entry.to}`] ?? 0) + 1;
        if (entry.reason !== undefined) {
          const reason = entry.reason.replace(/\d+ ms/g, 'N ms').replace(/\d+ consecutive/, 'N consecutive').slice(0, 100);
          log.reasons[reason] = (log.reasons[reason] ?? 0) + 1;
        }
      }
    } else if (line.includes('"vendor refused a subscription request"')) {
      const entry = JSON.parse(line) as { code: number; action: string; stream?: string };
      for (const log of logs(entry)) log.refusals[`${entry.action} ${entry.code}`] = (log.refusals[`${entry.action} ${entry.code}`] ?? 0) + 1;
    } else if (line.includes('"syncing vendor subscriptions"')) {
      const entry = JSON.parse(line) as { stream?: string; time: number; frames: number };
      linkLog.syncs += 1;
      const log = entry.stream === undefined ? undefined : linkLogs.get(entry.stream);
      if (log !== undefined) {
        log.syncs += 1;
        log.rounds.add(entry.time);
        log.rounds10s.add(entry.time);
        log.frames.add(entry.time, entry.frames);
      }
    }
  });
  const gateway = node(
    ['dist/src/server.js'],
    {
      HOST: '127.0.0.1',
      PORT: '0',
      LOG_LEVEL: 'info',
      // A bare vendor base and the stream paths: one vendor link per stream (DESIGN.md §9).
      UPSTREAM_URL: vendorBase,
      STREAMS: STREAMS.map((p) => p.path).join(','),
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
  const { address: gatewayHttp, streams: gatewayUrls } = await readyLine<{ address: string; streams: string[] }>(gateway.child, gatewayLines, 'tickmux ready');
  let gatewayExit: { code: number | null; signal: string | null; at: number } | undefined;
  let stopping = false;
  const gatewayDied = new Promise<void>((resolve) =>
    gateway.child.once('exit', (code, signal) => {
      gatewayExit = { code, signal, at: elapsed() };
      if (!stopping) process.stderr.write(`soak: the gateway died (${code ?? signal}); its last lines:\n${gateway.tail.join('\n')}\n`);
      resolve();
    }),
  );

  // Slow, churning, reconnecting and hostile clients spread over the streams in turn (slow ones
  // over the streams with a rate-driven flow to fill buffers with).
  const share = (total: number, index: number, count: number): number => Math.floor(total / count) + (index < total % count ? 1 : 0);
  const slowStreams = STREAMS.filter((p) => p.busy.length > 0);
  const streams: Stream[] = STREAMS.map((profile, index) => {
    const url = gatewayUrls.find((u) => u.endsWith(`/${profile.path}`));
    if (url === undefined) throw new Error(`the gateway does not serve ${profile.path}: ${gatewayUrls.join(', ')}`);
    const rate = RATES.get(profile.name) as number;
    const slowIndex = slowStreams.indexOf(profile);
    const population = new Population({
      url,
      profile,
      random,
      healthy: Number(values.healthy),
      slow: slowIndex < 0 ? 0 : share(COUNTS.slow, slowIndex, slowStreams.length),
      churning: share(COUNTS.churning, index, STREAMS.length),
      reconnecting: share(COUNTS.reconnecting, index, STREAMS.length),
      hostile: share(COUNTS.hostile, index, STREAMS.length),
      authTimeoutMs: AUTH_TIMEOUT_MS,
      maxSymbolsPerClient: MAX_SYMBOLS_PER_CLIENT,
      // 20 s at 6,000 msgs/s (a slow client gets ~0.7 MB/s there), longer at lower rates.
      slowPauseMs: Math.min(90_000, Math.max(20_000, (20_000 * 6000) / Math.max(rate, 1))),
    });
    return { profile, url, population, faults: {}, lastFaultAt: -Infinity, maxAuthenticatedAtSample: 0, linkLog: linkLogs.get(profile.path) as LinkLog, bookChecks: [], bookChecksSkipped: {} };
  });
  process.stderr.write(`soak: gateway ready ${gatewayUrls.join(' ')}\n`);
  await Promise.all(streams.map((s) => s.population.start()));
  process.stderr.write(`soak: population started\n`);

  // ---- faults on a loop, each on one stream's link (through the simulator's ?path= controls)
  const faults: Record<string, number> = Object.fromEntries(CYCLE.map((k) => [k, 0]));
  const faultLog: { t: number; kind: FaultKind; stream: string; detail?: string }[] = [];
  const faultErrors: string[] = [];
  let faultIndex = 0;
  let malformedIndex = 0;
  const inject = async (kind: FaultKind, stream: Stream): Promise<string | undefined> => {
    const at = performance.now();
    const on = `path=${stream.profile.path}`;
    const windows = stream.population.faultWindows;
    stream.lastFaultAt = at;
    switch (kind) {
      case 'drop-clean':
        await post(`/control/drop?${on}`);
        windows.push({ start: at, end: at });
        return undefined;
      case 'drop-terminate':
        await post(`/control/drop?terminate=1&${on}`);
        windows.push({ start: at, end: at });
        return undefined;
      case 'stall': {
        const ms = 2000 + Math.round(random() * 2000);
        await post(`/control/stall?ms=${ms}&${on}`);
        windows.push({ start: at, end: at + ms });
        stream.lastFaultAt = at + ms;
        return `${ms} ms`;
      }
      case 'subscribe-500': {
        const times = 1 + Math.floor(random() * 3);
        await post(`/control/reject-subscribe?code=500&times=${times}&${on}`);
        return `${times}×`;
      }
      case 'subscribe-406':
        await post(`/control/reject-subscribe?code=406&${on}`);
        return undefined;
      case 'subscribe-500-on-restore':
        // Drop first: no subscription frame goes out while the link is down, so the 500 meets the restore.
        await post(`/control/drop?${on}`);
        windows.push({ start: at, end: at });
        await post(`/control/reject-subscribe?code=500&${on}`);
        return undefined;
      case 'auth-406':
        // Inject first: nothing authenticates on the path until the drop makes the gateway reconnect.
        await post(`/control/reject-auth?code=406&${on}`);
        await post(`/control/drop?${on}`);
        windows.push({ start: at, end: at });
        return undefined;
      case 'malformed': {
        const which = MALFORMED_KINDS[malformedIndex++ % MALFORMED_KINDS.length] as string;
        await post(`/control/malformed?kind=${which}&${on}`);
        return which;
      }
    }
  };
  let faultTimer: NodeJS.Timeout | undefined;
  const faultLoop = (): void => {
    faultTimer = setTimeout(() => {
      const n = faultIndex++;
      const kind = CYCLE[n % CYCLE.length] as FaultKind;
      // Streams in turn, shifted every cycle of kinds so each stream meets every kind over time.
      const stream = streams[(n + Math.floor(n / CYCLE.length)) % streams.length] as Stream;
      const t = Math.round(elapsed());
      inject(kind, stream).then(
        (detail) => {
          faults[kind] = (faults[kind] ?? 0) + 1;
          stream.faults[kind] = (stream.faults[kind] ?? 0) + 1;
          faultLog.push(detail === undefined ? { t, kind, stream: stream.profile.path } : { t, kind, stream: stream.profile.path, detail });
        },
        (err: unknown) => faultErrors.push(`${kind} on ${stream.profile.path}: ${(err as Error).message}`),
      );
      if (!stopping) faultLoop();
    }, FAULT_EVERY_MS * (0.75 + random() * 0.5));
  };
  // A first quiet stretch: the start figures are taken before any fault.
  const firstFaultTimer = setTimeout(faultLoop, Math.min(3000, DURATION_MS / 10));

  // ---- order books: with the kind's rate at 0, after a reply barrier, each reader's books against the vendor's
  const bookStreams = streams.filter((s) => s.profile.books);
  const skip = (stream: Stream, why: string): void => {
    stream.bookChecksSkipped[why] = (stream.bookChecksSkipped[why] ?? 0) + 1;
  };
  const checkBooks = async (stream: Stream): Promise<void> => {
    const { population, profile } = stream;
    const startedAt = performance.now();
    if (population.linkDown) return skip(stream, 'link down');
    if (startedAt - stream.lastFaultAt < BOOK_QUIET_MS || population.inOutage(startedAt - BOOK_QUIET_MS, startedAt, 0)) return skip(stream, 'fault or outage in the last 2.5 s');
    await post(`/control/rate?value=0&path=${profile.path}`);
    try {
      // What the vendor sent before the rate went to 0 reaches the gateway within this; the reply barrier then flushes the gateway's queues.
      await new Promise((resolve) => setTimeout(resolve, 300));
      if (!(await population.barrier(3000))) return skip(stream, 'a reader’s barrier reply did not come');
      const res = await fetch(`${control}/books?path=${profile.path}`, { signal: AbortSignal.timeout(2000) });
      const { books } = (await res.json()) as { books: Record<string, { b: { p: number; s: number }[]; a: { p: number; s: number }[] }> };
      const check = population.compareBooks(books);
      const endedAt = performance.now();
      if (stream.lastFaultAt >= startedAt - BOOK_QUIET_MS || population.inOutage(startedAt - BOOK_QUIET_MS, endedAt, 0)) return skip(stream, 'a fault or outage during the comparison');
      stream.bookChecks.push(check);
    } finally {
      await post(`/control/rate?value=${RATES.get(profile.name)}&path=${profile.path}`);
    }
  };
  let bookTimer: NodeJS.Timeout | undefined;
  const bookErrors: string[] = [];
  const bookLoop = (): void => {
    bookTimer = setTimeout(() => {
      void Promise.all(bookStreams.map((s) => checkBooks(s).catch((err: unknown) => bookErrors.push(`${s.profile.path}: ${(err as Error).message}`)))).then(() => !stopping && bookLoop());
    }, BOOK_CHECK_EVERY_MS);
  };
  if (bookStreams.length > 0) bookLoop();

  // ---- sampling
  const samples: Sample[] = [];
  const sampleErrors: Record<string, number> = {};
  let maxVendorAuthenticatedNow = 0;
  let lastVendorStats: Record<string, number> & { streams?: Record<string, StreamStats> } = {};
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
      lastVendorStats = (await getJson(`${control}/stats`)) as typeof lastVendorStats;
      for (const stream of streams) {
        const now = lastVendorStats.streams?.[stream.profile.path]?.authenticatedNow ?? 0;
        stream.maxAuthenticatedAtSample = Math.max(stream.maxAuthenticatedAtSample, now);
        maxVendorAuthenticatedNow = Math.max(maxVendorAuthenticatedNow, now);
      }
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
    for (const stream of streams) stream.population.checkStarvation(STARVED_MS);
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
  clearTimeout(bookTimer);
  clearTimeout(sampleTimer);
  await sample();
  const gatewayAliveAtEnd = gatewayExit === undefined;
  const finalVendorStats = { ...lastVendorStats };
  process.stderr.write(`soak: stopping clients\n`);
  await Promise.all(streams.map((s) => s.population.stop()));
  process.stderr.write(`soak: clients stopped\n`);
  await stopProcess(gateway.child, 8000);
  await stopProcess(simulator.child, 8000);

  // ---- the report: per stream, then in all
  const perStream = streams.map((stream) => judgeStream(stream, finalVendorStats.streams?.[stream.profile.path]));
  const sum = (pick: (j: Judged) => number): number => perStream.reduce((total, j) => total + pick(j), 0);
  const all = (pick: (j: Judged) => boolean | undefined): boolean => perStream.every((j) => pick(j) !== false);
  const has = (pick: (j: Judged) => boolean | undefined): boolean => perStream.some((j) => pick(j) !== undefined);
  const idStreams = perStream.filter((j) => j.stream.profile.tradeIds);
  const gapsOutside = idStreams.flatMap((j) => j.gapsOutside);
  const maxVendorSessions = Math.max(0, ...perStream.map((j) => j.vendor.maxSessionsAtOnce));
  const lagMax = Math.max(0, ...samples.map((s) => s.lagP99Seconds ?? 0));
  const rssMb = figures(samples.map((s) => s.rssBytes), (v) => round(v / 1048576));
  const activeHandles = figures(samples.map((s) => s.handles), round);
  const flat = (f: Record<string, number | undefined>): boolean => f.lastQuarterOverSecondQuarter === undefined || f.lastQuarterOverSecondQuarter <= FLAT_RATIO;
  const invariants: Record<string, boolean> = {
    noGapsOutsideOutages: sum((j) => j.gapsOutsideCount) === 0,
    atMostOneVendorSession: maxVendorSessions <= 1,
    noHealthyClientClosed: sum((j) => j.stream.population.healthy.closed.length) === 0,
    gatewayAlive: gatewayAliveAtEnd,
    healthySubscriptionsKept: sum((j) => j.stream.population.healthy.pairsLost) === 0,
    noHealthyClientStarved: sum((j) => j.stream.population.healthy.starved.length) === 0,
    subscriptionFramesWithinCeiling: all((j) => j.invariants.subscriptionFramesWithinCeiling),
    syncRoundsWithinFloor: all((j) => j.invariants.syncRoundsWithinFloor),
    rssFlat: flat(rssMb),
    handlesFlat: flat(activeHandles),
    ...(has((j) => j.invariants.optionsTradesAgree) ? { optionsTradesAgree: all((j) => j.invariants.optionsTradesAgree) } : {}),
    ...(has((j) => j.invariants.booksMatchVendor) ? { booksMatchVendor: all((j) => j.invariants.booksMatchVendor) } : {}),
    ...(has((j) => j.invariants.newsOnceEach) ? { newsOnceEach: all((j) => j.invariants.newsOnceEach) } : {}),
  };
  const allOutages = streams.flatMap((s) => s.population.outages);
  const report = {
    durationSeconds: Math.round(elapsed() / 100) / 10,
    requestedSeconds: DURATION_MS / 1000,
    seed: SEED,
    vendorRate: RATE,
    vendorRates: Object.fromEntries(RATES),
    ok: Object.values(invariants).every(Boolean),
    invariants,
    populations: {
      healthy: {
        clients: sum((j) => j.stream.population.healthy.clients),
        closed: streams.flatMap((s) => s.population.healthy.closed.map((c) => ({ stream: s.profile.path, ...c }))),
        errors: merge(streams.map((s) => s.population.healthy.errors)),
        pairsLost: sum((j) => j.stream.population.healthy.pairsLost),
        resubscribes: sum((j) => j.stream.population.healthy.resubscribes),
        starved: sum((j) => j.stream.population.healthy.starved.length),
      },
      slow: {
        cycles: sum((j) => j.stream.population.slow.cycles),
        saw407: sum((j) => j.stream.population.slow.saw407),
        closeCodes: merge(streams.map((s) => s.population.slow.closeCodes)),
        notCut: sum((j) => j.stream.population.slow.notCut),
      },
      churning: {
        clients: sum((j) => j.stream.population.churning.clients),
        requests: sum((j) => j.stream.population.churning.requests),
        replies: sum((j) => j.stream.population.churning.replies),
        errors: merge(streams.map((s) => s.population.churning.errors)),
        closes: sum((j) => j.stream.population.churning.closes),
      },
      reconnecting: {
        cycles: sum((j) => j.stream.population.reconnecting.cycles),
        completed: sum((j) => j.stream.population.reconnecting.completed),
        errors: merge(streams.map((s) => s.population.reconnecting.errors)),
        unexpectedCloses: merge(streams.map((s) => s.population.reconnecting.unexpectedCloses)),
      },
      hostile: mergeTallies(streams.map((s) => s.population.hostile)),
    },
    // Trades of the streams whose trades carry ids (stocks, crypto).
    trades: {
      checked: idStreams.reduce((total, j) => total + Number(j.stream.population.healthy.tradesChecked), 0),
      healthyMessages: sum((j) => j.stream.population.healthy.messages),
      gapsOutsideOutages: idStreams.reduce((total, j) => total + j.gapsOutsideCount, 0),
      gapsInsideOutages: idStreams.reduce((total, j) => total + j.stream.population.gapCount - j.gapsOutsideCount, 0),
      missingIdsOutsideOutages: gapsOutside.reduce((total, g) => total + BigInt(g.missing), 0n).toString(),
      outOfOrder: idStreams.reduce((total, j) => total + j.stream.population.healthy.outOfOrder, 0),
      undecodableFrames: sum((j) => j.stream.population.healthy.undecodableFrames),
      firstGapsOutside: idStreams.flatMap((j) => j.firstGapsOutside).slice(0, 5),
    },
    vendor: {
      // The busiest single stream: the gateway's floor is per vendor link.
      maxSessionsAtOnce: maxVendorSessions,
      maxSessionsAtOnceAllStreams: maxVendorAuthenticatedNow,
      subscriptionFrames: finalVendorStats.subscriptionFrames,
      maxSubscriptionFramesPerSecond: Math.max(0, ...perStream.map((j) => j.vendor.maxSubscriptionFramesPerSecond ?? 0)),
      maxSubscriptionFramesPerSecondAllStreams: finalVendorStats.maxSubscriptionFramesPerSecond,
      meanSubscriptionFramesPerSecond: round(((finalVendorStats.subscriptionFrames ?? 0) / elapsed()) * 1000),
      subscriptionChanges: finalVendorStats.subscriptionChanges,
      connections: finalVendorStats.connections,
      authentications: finalVendorStats.authentications,
      outages: allOutages.length,
      outageSecondsTotal: round(allOutages.reduce((total, o) => total + ((o.upAt ?? performance.now()) - o.downAt), 0) / 1000),
      linkLog: { transitions: linkLog.transitions, reasons: linkLog.reasons, refusals: linkLog.refusals, syncs: linkLog.syncs },
    },
    gateway: {
      rssMb,
      activeHandles,
      flatWhenLastQuarterOverSecondQuarterAtMost: FLAT_RATIO,
      eventLoopLagP99MaxMs: round(lagMax * 1000),
      slowClientCloses407: samples.at(-1)?.slowClientCloses,
      exit: gatewayExit,
      aliveAtEnd: gatewayAliveAtEnd,
    },
    faults: { injected: faults, total: faultLog.length, errors: faultErrors, log: faultLog.length <= 60 ? faultLog : [...faultLog.slice(0, 30), ...faultLog.slice(-30)] },
    streams: Object.fromEntries(perStream.map((j) => [j.stream.profile.path, j.report])),
    sampling: { samples: samples.length, errors: sampleErrors, bookCheckErrors: bookErrors },
  };
  process.stdout.write(`${values.json ? JSON.stringify(report) : JSON.stringify(report, null, 2)}\n`);
  process.exitCode = report.ok ? 0 : 1;
}

type Judged = ReturnType<typeof judgeStream>;

/** One stream's invariants and figures, judged against its own vendor outages. */
function judgeStream(stream: Stream, vendorStats: StreamStats | undefined) {
  const { population, profile } = stream;
  const healthy = population.healthy;
  const gaps = population.gaps.map((g) => ({ ...g, inOutage: population.inOutage(g.lastAt, g.seenAt, OUTAGE_PAD_MS) }));
  // Gaps past the first 1000 kept are judged by the share of the kept ones (reported as such).
  const gapsOutside = gaps.filter((g) => !g.inOutage);
  const gapsOutsideCount = population.gapCount > gaps.length ? Math.round((gapsOutside.length / gaps.length) * population.gapCount) : gapsOutside.length;
  const maxSessionsAtOnce = Math.max(vendorStats?.maxConcurrentPerKey ?? 0, stream.maxAuthenticatedAtSample);
  const maxFrames = vendorStats?.maxSubscriptionFramesPerSecond;
  const { rounds, rounds10s, frames, ...linkLog } = stream.linkLog;
  const outageSeconds = population.outages.map((o) => round(((o.upAt ?? performance.now()) - o.downAt) / 1000));
  const cross = profile.tradeIds && !profile.books && profile.main !== 'news' ? undefined : population.crossCheck(OUTAGE_PAD_MS);
  const books = profile.books
    ? {
        checks: stream.bookChecks.length,
        skipped: stream.bookChecksSkipped,
        booksCompared: stream.bookChecks.reduce((n, c) => n + c.books, 0),
        agreed: stream.bookChecks.reduce((n, c) => n + c.agreed, 0),
        mismatches: stream.bookChecks.reduce((n, c) => n + c.mismatches.length, 0),
        orphanUpdates: population.orphanBookUpdates,
        firstMismatches: stream.bookChecks.flatMap((c) => c.mismatches.map((m) => ({ ...m, at: Math.round(c.at - started), resetAt: m.resetAt === undefined ? undefined : Math.round(m.resetAt - started) }))).slice(0, 5),
      }
    : undefined;
  const isNews = profile.main === 'news';
  const invariants = {
    ...(profile.tradeIds ? { noGapsOutsideOutages: gapsOutsideCount === 0 } : {}),
    atMostOneVendorSession: maxSessionsAtOnce <= 1,
    subscriptionFramesWithinCeiling: (maxFrames ?? 0) <= SUBSCRIPTION_FRAMES_CEILING,
    syncRoundsWithinFloor: rounds10s.max <= SYNC_ROUNDS_PER_10_SECONDS_CEILING,
    noHealthyClientClosed: healthy.closed.length === 0,
    healthySubscriptionsKept: healthy.pairsLost === 0,
    noHealthyClientStarved: healthy.starved.length === 0,
    ...(!profile.tradeIds && !isNews && cross !== undefined ? { optionsTradesAgree: cross.missing === 0 && cross.compared > 0 } : {}),
    // Compared at least once, and equal every time; no level update before a reset.
    ...(books !== undefined ? { booksMatchVendor: books.checks > 0 && books.mismatches === 0 && books.orphanUpdates === 0 } : {}),
    ...(isNews && cross !== undefined ? { newsOnceEach: population.news.duplicates === 0 && gapsOutsideCount === 0 && cross.missing === 0 && population.news.items > 0 } : {}),
  } as Record<string, boolean> & { optionsTradesAgree?: boolean; booksMatchVendor?: boolean; newsOnceEach?: boolean; subscriptionFramesWithinCeiling: boolean; syncRoundsWithinFloor: boolean };
  const firstGapsOutside = gapsOutside.slice(0, 5).map((g) => ({ stream: profile.path, ...g, lastAt: Math.round(g.lastAt - started), seenAt: Math.round(g.seenAt - started) }));
  const report = {
    kind: profile.name,
    ok: Object.values(invariants).every(Boolean),
    invariants,
    healthy: { clients: healthy.clients, messages: healthy.messages, closed: healthy.closed, errors: healthy.errors, pairsLost: healthy.pairsLost, resubscribes: healthy.resubscribes, starved: healthy.starved.length, undecodableFrames: healthy.undecodableFrames },
    ...(profile.tradeIds
      ? { trades: { checked: Number(healthy.tradesChecked), gapsOutsideOutages: gapsOutsideCount, gapsInsideOutages: population.gapCount - gapsOutsideCount, outOfOrder: healthy.outOfOrder, firstGapsOutside } }
      : {}),
    ...(!profile.tradeIds && !isNews && cross !== undefined ? { trades: { kept: population.options.trades, compared: cross.compared, missingOutsideOutages: cross.missing, firstMissing: cross.firstMissing } } : {}),
    ...(books !== undefined ? { books } : {}),
    ...(isNews && cross !== undefined
      ? { news: { items: population.news.items, duplicates: population.news.duplicates, firstDuplicates: population.news.duplicateEvents.slice(0, 5), idGapsOutsideOutages: gapsOutsideCount, idGapsInsideOutages: population.gapCount - gapsOutsideCount, outOfOrder: healthy.outOfOrder, comparedWithWildcardHolders: cross.compared, missingOutsideOutages: cross.missing, firstMissing: cross.firstMissing, firstGapsOutside } }
      : {}),
    populations: { slow: population.slow, churning: population.churning, reconnecting: population.reconnecting, hostile: population.hostile },
    vendor: {
      maxSessionsAtOnce,
      maxAuthenticatedAtSample: stream.maxAuthenticatedAtSample,
      subscriptionFrames: vendorStats?.subscriptionFrames,
      maxSubscriptionFramesPerSecond: maxFrames,
      subscriptionFramesCeiling: SUBSCRIPTION_FRAMES_CEILING,
      // By the gateway's clock (its log): sync rounds in the busiest 10 s and second, and the frames they sent in the busiest second.
      maxSyncRoundsIn10Seconds: rounds10s.max,
      syncRoundsIn10SecondsCeiling: SYNC_ROUNDS_PER_10_SECONDS_CEILING,
      maxSyncRoundsPerSecond: rounds.max,
      maxGatewayFramesPerSecond: frames.max,
      rate: vendorStats?.rate,
      outages: population.outages.length,
      outageSecondsTotal: round(outageSeconds.reduce((a, b) => a + b, 0)),
      outageSecondsMax: Math.max(0, ...outageSeconds),
      outageSeconds: outageSeconds.length <= 100 ? outageSeconds : [...outageSeconds.slice(0, 50), ...outageSeconds.slice(-50)],
      linkLog,
    },
    faults: stream.faults,
  };
  return {
    stream,
    invariants,
    gapsOutside,
    gapsOutsideCount: profile.tradeIds ? gapsOutsideCount : 0,
    firstGapsOutside,
    vendor: { maxSessionsAtOnce, maxSubscriptionFramesPerSecond: maxFrames },
    report,
  };
}

function merge(maps: Record<string, number>[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const map of maps) for (const [key, value] of Object.entries(map)) out[key] = (out[key] ?? 0) + value;
  return out;
}

function mergeTallies(tallies: Record<string, { attempts: number; expected: number; unexpected: Record<string, number> }>[]): Record<string, { attempts: number; expected: number; unexpected: Record<string, number> }> {
  const out: Record<string, { attempts: number; expected: number; unexpected: Record<string, number> }> = {};
  for (const tally of tallies) {
    for (const [name, t] of Object.entries(tally)) {
      const into = (out[name] ??= { attempts: 0, expected: 0, unexpected: {} });
      into.attempts += t.attempts;
      into.expected += t.expected;
      into.unexpected = merge([into.unexpected, t.unexpected]);
    }
  }
  return out;
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
