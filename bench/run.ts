/**
 * `npm run bench`: the fan-out benchmark (DESIGN.md §7). The simulator, the gateway, the load
 * clients and the baseline (a bare `ws` broadcaster of pre-encoded frames) run as separate
 * processes on this machine; everything goes over 127.0.0.1. Prints one JSON object.
 *
 *   npm run bench [-- --clients 1000 --seconds 5 --idle 1000 --rates 250,500,1000,2000,4000,8000
 *                    --high-water-mb 8 --max-buffer-mb 256 --filtered-rate 5000 --profile DIR]
 *
 * Scenarios: "broadcast" (every client on the same 20 symbols, trades and quotes) ramped until
 * the gateway saturates, against the baseline at the same offered loads; latency at a quarter
 * of the gateway's saturation rate; "filtered" (each client on 10 random symbols of 500); and
 * memory per idle connection (gateway RSS at 0 and at N authenticated, idle clients).
 */
import { type ChildProcess, fork, spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { seededRandom } from '../src/random.js';
import { cpuSeconds, rssBytes, track } from './processes.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const { values } = parseArgs({
  options: {
    clients: { type: 'string', default: '1000' },
    seconds: { type: 'string', default: '5' },
    idle: { type: 'string', default: '1000' },
    rates: { type: 'string', default: '250,500,1000,2000,4000,8000' },
    'filtered-rate': { type: 'string', default: '5000' },
    'gateway-log': { type: 'string' },
    /** a directory: the gateway writes a V8 CPU profile there when it stops */
    profile: { type: 'string' },
    /** per-client limits of the gateway (defaults: generous, so no client is cut mid-measurement) */
    'high-water-mb': { type: 'string', default: '8' },
    'max-buffer-mb': { type: 'string', default: '256' },
  },
});
const CLIENTS = Number(values.clients);
const MEASURE_MS = Number(values.seconds) * 1000;
const IDLE = Number(values.idle);
const RATES = (values.rates ?? '').split(',').map(Number);
const FILTERED_RATE = Number(values['filtered-rate']);
/** The stream path of each kind the gateway serves here. */
const STREAMS = { stocks: 'v2/iex', crypto: 'v1beta3/crypto/us', options: 'v1beta1/indicative', news: 'v1beta1/news' } as const;
const BROADCAST_SYMBOLS = Array.from({ length: 20 }, (_, i) => `B${String(i).padStart(2, '0')}`);

// A signal ends the run through process.exit, so the child registry kills the simulator, gateway and baseline.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(130));

/** Resolves with the first stdout line of `child` that parses as JSON and passes `accept`. */
function jsonLine<T>(child: ChildProcess, accept: (v: Record<string, unknown>) => boolean): Promise<T> {
  return new Promise((resolve, reject) => {
    let buffer = '';
    const onData = (chunk: Buffer): void => {
      buffer += chunk.toString();
      let newline: number;
      while ((newline = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        try {
          const value = JSON.parse(line) as Record<string, unknown>;
          if (accept(value)) {
            child.stdout?.off('data', onData);
            child.stdout?.resume();
            resolve(value as T);
            return;
          }
        } catch (err) {
          if (!(err instanceof SyntaxError)) throw err;
        }
      }
    };
    child.stdout?.on('data', onData);
    child.once('exit', (code) => reject(new Error(`process exited (${code}) before it was ready`)));
  });
}

function node(args: string[], env: Record<string, string> = {}, nodeArgs: string[] = []): ChildProcess {
  return track(spawn(process.execPath, [...nodeArgs, ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] }));
}

/** CPU seconds (user + system) and RSS bytes of a process, from /proc. */
function usage(pid: number): { cpuSeconds: number; rssBytes: number } {
  return { cpuSeconds: cpuSeconds(pid), rssBytes: rssBytes(pid) ?? 0 };
}

async function setRate(controlBase: string, rate: number): Promise<void> {
  const res = await fetch(`${controlBase}/control/rate?value=${rate}`, { method: 'POST' });
  if (!res.ok) throw new Error(`could not set the simulator rate: ${res.status}`);
}

interface Measured {
  deliveredPerSecond: number;
  latencyMs: { p50: number | null; p99: number | null; p999: number | null; samples: number };
}

/** Starts a load process with `symbols` per client against `url`; resolves once every client is in. */
async function startClients(url: string, symbols: string[][], sampled: number): Promise<ChildProcess> {
  const child = track(fork(new URL('./load-clients.js', import.meta.url), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  const ready = new Promise<void>((resolve, reject) => {
    child.on('message', (m: { type: string }) => m.type === 'ready' && resolve());
    child.once('exit', (code) => reject(new Error(`load clients exited (${code})`)));
  });
  child.send({ type: 'start', plan: { url, clients: CLIENTS, symbols, sampled } });
  await ready;
  return child;
}

function measure(child: ChildProcess, ms: number): Promise<Measured> {
  return new Promise((resolve) => {
    const onMessage = (m: { type: string } & Measured): void => {
      if (m.type !== 'measured') return;
      child.off('message', onMessage);
      resolve({ deliveredPerSecond: m.deliveredPerSecond, latencyMs: m.latencyMs });
    };
    child.on('message', onMessage);
    child.send({ type: 'measure', ms });
  });
}

async function stopClients(child: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.send({ type: 'stop' });
  await exited;
}

/** One measured step: clients connect, the vendor runs at `rate`, a warm-up, then a window. */
async function step(target: { url: string; pid: number | undefined }, control: string, rate: number, symbols: string[][]): Promise<Measured & { cpuPercent: number | null; rssMb: number | null }> {
  const clients = await startClients(target.url, symbols, 10);
  await setRate(control, rate);
  await new Promise((resolve) => setTimeout(resolve, 1500));
  const before = target.pid === undefined ? undefined : usage(target.pid);
  const started = process.hrtime.bigint();
  const result = await measure(clients, MEASURE_MS);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const after = target.pid === undefined ? undefined : usage(target.pid);
  await setRate(control, 0);
  await stopClients(clients);
  await new Promise((resolve) => setTimeout(resolve, 500));
  return {
    ...result,
    cpuPercent: before && after ? Math.round(((after.cpuSeconds - before.cpuSeconds) / seconds) * 100) : null,
    rssMb: after ? Math.round(after.rssBytes / 1048576) : null,
  };
}

async function main(): Promise<void> {
  const simulator = node(['dist/src/cli.js', 'simulate', '--port', '0', '--rate', '0', '--max-buffer-mb', '1024'], { LOG_LEVEL: 'info' });
  const { base: vendorBase } = await jsonLine<{ base: string }>(simulator, (v) => v.msg === 'simulated vendor ready');
  const control = vendorBase.replace('ws://', 'http://');

  // One gateway serving every stream the scenarios use, as it is deployed: the stock-only
  // scenarios run with the other links connected and idle.
  const gatewayProcess = node(['dist/src/server.js'], {
    PORT: '0',
    UPSTREAM_URL: vendorBase,
    STREAMS: Object.values(STREAMS).join(','),
    APCA_API_KEY_ID: 'bench',
    APCA_API_SECRET_KEY: 'bench',
    LOG_LEVEL: 'info',
    MAX_CLIENTS: '20000',
    CLIENT_MAX_BUFFER_BYTES: String(Number(values['max-buffer-mb']) * 1048576),
    CLIENT_HIGH_WATER_BYTES: String(Number(values['high-water-mb']) * 1048576),
  }, values.profile === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', values.profile]);
  const { streams: gatewayUrls } = await jsonLine<{ streams: string[] }>(gatewayProcess, (v) => v.msg === 'tickmux ready');
  if (values['gateway-log'] === undefined) gatewayProcess.stdout?.resume();
  else gatewayProcess.stdout?.pipe(createWriteStream(values['gateway-log']));
  const gatewayUrl = (path: string): string => {
    const url = gatewayUrls.find((u) => u.endsWith(`/${path}`));
    if (url === undefined) throw new Error(`the gateway does not serve ${path}: ${gatewayUrls.join(', ')}`);
    return url;
  };
  const gateway = { url: gatewayUrl(STREAMS.stocks), pid: gatewayProcess.pid };

  const baselineProcess = node(['dist/bench/baseline.js', `${vendorBase}/v2/sip`, BROADCAST_SYMBOLS.join(',')]);
  const { port: baselinePort } = await jsonLine<{ port: number }>(baselineProcess, (v) => typeof v.port === 'number');
  const baseline = { url: `ws://127.0.0.1:${baselinePort}/`, pid: baselineProcess.pid };

  const out: Record<string, unknown> = {
    machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version },
    clients: CLIENTS,
    measureSeconds: MEASURE_MS / 1000,
    method:
      'separate processes on 127.0.0.1: simulator → gateway (or baseline) → one load process of msgpack clients; delivered = messages counted from frame headers over the window; latency = client receipt − vendor timestamp on 10 sampled clients (wall clocks from performance.timeOrigin)',
  };

  // Memory per idle connection.
  if (IDLE > 0) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const before = usage(gatewayProcess.pid as number).rssBytes;
    const idle = track(fork(new URL('./load-clients.js', import.meta.url), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
    const ready = new Promise<void>((resolve) => idle.on('message', (m: { type: string }) => m.type === 'ready' && resolve()));
    idle.send({ type: 'start', plan: { url: gateway.url, clients: IDLE, symbols: [[]], sampled: 0 } });
    await ready;
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const after = usage(gatewayProcess.pid as number).rssBytes;
    await stopClients(idle);
    out.memory = {
      idleConnections: IDLE,
      rssBeforeMb: Math.round(before / 1048576),
      rssWithIdleMb: Math.round(after / 1048576),
      bytesPerConnection: Math.round((after - before) / IDLE),
    };
  }

  // Broadcast: ramp until the gateway saturates.
  const broadcastPlan = [BROADCAST_SYMBOLS];
  const ramp: Record<string, unknown>[] = [];
  let gatewaySaturation = 0;
  let baselineSaturation = 0;
  for (const rate of RATES) {
    const offered = rate * CLIENTS;
    const gw = await step(gateway, control, rate, broadcastPlan);
    const base = await step(baseline, control, rate, broadcastPlan);
    gatewaySaturation = Math.max(gatewaySaturation, gw.deliveredPerSecond);
    baselineSaturation = Math.max(baselineSaturation, base.deliveredPerSecond);
    ramp.push({ vendorRate: rate, offeredPerSecond: offered, gateway: gw, baseline: base, ratio: Number((gw.deliveredPerSecond / base.deliveredPerSecond).toFixed(3)) });
    process.stderr.write(`broadcast ${rate}/s: gateway ${gw.deliveredPerSecond}/s, baseline ${base.deliveredPerSecond}/s\n`);
    if (gw.deliveredPerSecond < offered * 0.9 && base.deliveredPerSecond < offered * 0.9) break;
  }
  const quarterRate = Math.max(1, Math.round(gatewaySaturation / CLIENTS / 4));
  const quarterGateway = await step(gateway, control, quarterRate, broadcastPlan);
  const quarterBaseline = await step(baseline, control, quarterRate, broadcastPlan);
  out.broadcast = {
    symbols: BROADCAST_SYMBOLS.length,
    ramp,
    saturation: {
      gatewayDeliveredPerSecond: gatewaySaturation,
      baselineDeliveredPerSecond: baselineSaturation,
      ratio: Number((gatewaySaturation / baselineSaturation).toFixed(3)),
    },
    quarterLoad: {
      vendorRate: quarterRate,
      gateway: quarterGateway,
      baseline: quarterBaseline,
      addedLatencyMs: {
        p50: diff(quarterGateway.latencyMs.p50, quarterBaseline.latencyMs.p50),
        p99: diff(quarterGateway.latencyMs.p99, quarterBaseline.latencyMs.p99),
        p999: diff(quarterGateway.latencyMs.p999, quarterBaseline.latencyMs.p999),
      },
    },
  };

  // Filtered: each client on 10 random symbols of 500.
  const random = seededRandom(7);
  const universe = Array.from({ length: 500 }, (_, i) => `F${String(i).padStart(3, '0')}`);
  const filteredPlan = Array.from({ length: CLIENTS }, () => Array.from({ length: 10 }, () => universe[Math.floor(random() * universe.length)] as string));
  const filtered = await step(gateway, control, FILTERED_RATE, filteredPlan);
  out.filtered = {
    universe: universe.length,
    symbolsPerClient: 10,
    vendorRate: FILTERED_RATE,
    gateway: filtered,
    baseline: 'not comparable: a bare broadcaster sends every message to every client',
  };

  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  for (const child of [baselineProcess, gatewayProcess, simulator]) child.kill('SIGTERM');
}

function diff(a: number | null, b: number | null): number | null {
  return a === null || b === null ? null : Number((a - b).toFixed(3));
}

await main();
