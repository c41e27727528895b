/**
 * One measured step of the fan-out bench, shared by its scenarios (bench/run.ts, bench/tape.ts):
 * a load process of clients connects to a target (the gateway or the baseline), the vendor runs
 * at a rate, a warm-up, then a window; the step reports what the clients received, the target's
 * CPU and RSS, the load process's CPU and, for a gateway, its own counts per stream.
 */
import { type ChildProcess, fork } from 'node:child_process';
import type { ClientGroup, Measured } from './load-clients.js';
import { type PlannedGroup, STREAMS } from './mixed-plan.js';
import { cpuSeconds, jsonLine, measure, node, rssBytes, setRate, stopClients, track } from './processes.js';

/** The 20 symbols every client of the broadcast scenarios holds (trades and quotes). */
export const BROADCAST_SYMBOLS = Array.from({ length: 20 }, (_, i) => `B${String(i).padStart(2, '0')}`);

/** A step's warm-up (after the clients subscribe and the rate is set) and its window. */
export interface StepTiming {
  warmupMs: number;
  measureMs: number;
}

/** CPU seconds (user + system) and RSS bytes of a process, from /proc. */
export function usage(pid: number): { cpuSeconds: number; rssBytes: number } {
  return { cpuSeconds: cpuSeconds(pid), rssBytes: rssBytes(pid) ?? 0 };
}

/** A process the clients connect to: the gateway (a URL per stream path) or the baseline (one for all). */
export interface Target {
  url: (path: string) => string;
  pid: number | undefined;
  /** the gateway's `/metrics` URL */
  metrics?: string;
}

/** Per stream path, over a window: vendor messages the gateway received, and messages it sent to clients. */
export type StreamRates = Record<string, { vendorPerSecond: number; sentPerSecond: number }>;

/**
 * What a step reports: the window's figures (per group when there are several), the target's CPU
 * and RSS, the load process's CPU, and for the gateway its own counts per stream.
 */
export type StepResult = Omit<Measured, 'groups'> & { groups?: Measured['groups']; cpuPercent: number | null; rssMb: number | null; loadCpuPercent: number; streams?: StreamRates };

/** The gateway's running totals per stream: vendor messages in, messages out to clients. */
async function streamTotals(metricsUrl: string): Promise<Map<string, { vendor: number; sent: number }>> {
  const res = await fetch(metricsUrl);
  if (!res.ok) throw new Error(`could not read the gateway's metrics: ${res.status}`);
  const totals = new Map<string, { vendor: number; sent: number }>();
  for (const line of (await res.text()).split('\n')) {
    const m = /^tickmux_(upstream|downstream)_messages_total\{stream="([^"]+)"\} (\d+)/.exec(line);
    if (m === null) continue;
    const entry = totals.get(m[2] as string) ?? { vendor: 0, sent: 0 };
    entry[m[1] === 'upstream' ? 'vendor' : 'sent'] = Number(m[3]);
    totals.set(m[2] as string, entry);
  }
  return totals;
}

/** Per-second rates between two readings of `streamTotals`, for the streams that moved. */
function streamRates(before: Map<string, { vendor: number; sent: number }>, after: Map<string, { vendor: number; sent: number }>, seconds: number): StreamRates {
  const rates: StreamRates = {};
  for (const [path, end] of after) {
    const start = before.get(path) ?? { vendor: 0, sent: 0 };
    if (end.vendor === start.vendor && end.sent === start.sent) continue;
    rates[path] = { vendorPerSecond: Number(((end.vendor - start.vendor) / seconds).toFixed(1)), sentPerSecond: Math.round((end.sent - start.sent) / seconds) };
  }
  return rates;
}

/** `clients` msgpack clients on the stock stream, each on trades and quotes of its symbols (`symbols` cycled), 10 of them sampled. */
export function stockGroup(clients: number, symbols: string[][]): PlannedGroup {
  return {
    name: 'stocks',
    path: STREAMS.stocks,
    clients,
    encoding: 'msgpack',
    subscriptions: symbols.map((s) => ({ trades: s, quotes: s })),
    sampled: 10,
    holds: 'trades + quotes',
    symbols,
  };
}

/**
 * The bench's gateway: `dist/src/server.js` on a port of its choosing, its vendor the simulator at
 * `vendorBase`, serving every stream the scenarios use (the stock-only scenarios run with the
 * other links connected and idle, as deployed); `env` adds to or overrides its settings.
 * Resolves once it is ready; its log is left for the caller to read or discard.
 */
export async function startGateway(vendorBase: string, env: Record<string, string>, nodeArgs: string[] = []): Promise<{ process: ChildProcess; address: string; target: Target }> {
  const child = node(['dist/src/server.js'], { PORT: '0', UPSTREAM_URL: vendorBase, STREAMS: Object.values(STREAMS).join(','), LOG_LEVEL: 'info', MAX_CLIENTS: '20000', ...env }, nodeArgs);
  const { address, streams } = await jsonLine<{ address: string; streams: string[] }>(child, (v) => v.msg === 'tickmux ready');
  const url = (path: string): string => {
    const found = streams.find((u) => u.endsWith(`/${path}`));
    if (found === undefined) throw new Error(`the gateway does not serve ${path}: ${streams.join(', ')}`);
    return found;
  };
  return { process: child, address, target: { url, pid: child.pid, metrics: `${address}/metrics` } };
}

/** Starts a load process with `groups` against `target`; resolves once every client is in. */
export async function startClients(target: Target, groups: readonly PlannedGroup[]): Promise<ChildProcess> {
  const child = track(fork(new URL('./load-clients.js', import.meta.url), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  const ready = new Promise<void>((resolve, reject) => {
    child.on('message', (m: { type: string }) => m.type === 'ready' && resolve());
    child.once('exit', (code) => reject(new Error(`load clients exited (${code})`)));
  });
  const plan: ClientGroup[] = groups.map((g) => ({ name: g.name, url: target.url(g.path), clients: g.clients, encoding: g.encoding, subscriptions: g.subscriptions, sampled: g.sampled }));
  child.send({ type: 'start', plan: { groups: plan } });
  await ready;
  return child;
}

/** One measured step: clients connect, the vendor runs at `rate`, a warm-up, then a window. */
export async function step(target: Target, control: string, rate: number, groups: readonly PlannedGroup[], timing: StepTiming): Promise<StepResult> {
  const clients = await startClients(target, groups);
  await setRate(control, rate);
  await new Promise((resolve) => setTimeout(resolve, timing.warmupMs));
  const totalsBefore = target.metrics === undefined ? undefined : await streamTotals(target.metrics);
  const before = target.pid === undefined ? undefined : usage(target.pid);
  const loadBefore = cpuSeconds(clients.pid as number);
  const started = process.hrtime.bigint();
  const { groups: perGroup, ...result } = await measure(clients, timing.measureMs);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const after = target.pid === undefined ? undefined : usage(target.pid);
  const loadAfter = cpuSeconds(clients.pid as number);
  const totalsAfter = target.metrics === undefined ? undefined : await streamTotals(target.metrics);
  await setRate(control, 0);
  await stopClients(clients);
  await new Promise((resolve) => setTimeout(resolve, 500));
  return {
    ...result,
    ...(groups.length > 1 ? { groups: perGroup } : {}),
    cpuPercent: before && after ? Math.round(((after.cpuSeconds - before.cpuSeconds) / seconds) * 100) : null,
    rssMb: after ? Math.round(after.rssBytes / 1048576) : null,
    loadCpuPercent: Math.round(((loadAfter - loadBefore) / seconds) * 100),
    ...(totalsBefore && totalsAfter ? { streams: streamRates(totalsBefore, totalsAfter, seconds) } : {}),
  };
}
