/**
 * `npm run bench -- --cluster` (issue #10): the broadcast scenario through a cluster on NATS,
 * beside a standalone gateway in the same run. On this machine, over 127.0.0.1: one simulator,
 * one nats-server (JetStream, temporary store), two cluster nodes (`owner` holds the stream's lease
 * and its vendor link, `follower` serves every client from NATS) and, idle while the cluster is
 * measured, one standalone gateway. The N clients (one load process, msgpack, all on the same 20
 * symbols' trades and quotes) connect to the follower, then to the standalone gateway, at each
 * vendor rate in turn. Prints one JSON object; without nats-server it says so and measures nothing.
 *
 *   npm run bench -- --cluster [--clients 1000 --seconds 5 --warmup 1.5 --rates 500,1000,2000,4000
 *                               --high-water-mb 8 --max-buffer-mb 256 --profile DIR]
 */
import { type ChildProcess, fork, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { ClientGroup, Latency } from './load-clients.js';
import { STREAMS } from './mixed-plan.js';
import { cpuSeconds, jsonLine, measure, node, rssBytes, setRate, stopClients, stopProcess, track } from './processes.js';

const STREAM = STREAMS.stocks;
const BROADCAST_SYMBOLS = Array.from({ length: 20 }, (_, i) => `B${String(i).padStart(2, '0')}`);

interface Options {
  clients: number;
  measureMs: number;
  warmupMs: number;
  rates: number[];
  highWaterBytes: number;
  maxBufferBytes: number;
  /** a directory: each gateway writes a V8 CPU profile there when it stops */
  profile: string | undefined;
}

function options(): Options {
  const { values } = parseArgs({
    options: {
      cluster: { type: 'boolean', default: false },
      clients: { type: 'string', default: '1000' },
      seconds: { type: 'string', default: '5' },
      warmup: { type: 'string', default: '1.5' },
      // Up to about the standalone gateway's saturation on 2 cores (docs/performance.md: 3.8 M deliveries/s at 4,000/s).
      rates: { type: 'string', default: '500,1000,2000,4000' },
      'high-water-mb': { type: 'string', default: '8' },
      'max-buffer-mb': { type: 'string', default: '256' },
      profile: { type: 'string' },
    },
  });
  return {
    clients: Number(values.clients),
    measureMs: Number(values.seconds) * 1000,
    warmupMs: Number(values.warmup) * 1000,
    rates: (values.rates ?? '').split(',').map(Number),
    highWaterBytes: Number(values['high-water-mb']) * 1048576,
    maxBufferBytes: Number(values['max-buffer-mb']) * 1048576,
    profile: values.profile,
  };
}

/** `nats-server --version`'s answer, or undefined when it does not run. */
function natsVersion(): string | undefined {
  const probe = spawnSync('nats-server', ['--version'], { encoding: 'utf8' });
  return probe.error === undefined && probe.status === 0 ? probe.stdout.trim() : undefined;
}

/** A nats-server with JetStream on a port of its choosing and a temporary store, removed when this process exits. */
async function startNats(): Promise<{ url: string; child: ChildProcess; storeDir: string }> {
  const storeDir = mkdtempSync(join(tmpdir(), 'tickmux-bench-nats-'));
  process.on('exit', () => rmSync(storeDir, { recursive: true, force: true }));
  const child = track(spawn('nats-server', ['-js', '-sd', storeDir, '-p', '-1', '-a', '127.0.0.1'], { stdio: ['ignore', 'ignore', 'pipe'] }));
  const port = await new Promise<number>((resolve, reject) => {
    let stderr = '';
    let listening: number | undefined;
    const onData = (chunk: Buffer): void => {
      stderr += chunk.toString();
      listening ??= Number(/Listening for client connections on [^\s:]+:(\d+)/.exec(stderr)?.[1] ?? Number.NaN) || undefined;
      if (listening !== undefined && stderr.includes('Server is ready')) {
        child.stderr?.off('data', onData);
        child.stderr?.resume();
        resolve(listening);
      }
    };
    child.stderr?.on('data', onData);
    child.once('exit', (code, signal) => reject(new Error(`nats-server exited (${code ?? signal}) before it was ready: ${stderr}`)));
  });
  return { url: `nats://127.0.0.1:${port}`, child, storeDir };
}

interface Gateway {
  child: ChildProcess;
  /** http://host:port */
  base: string;
  /** the stream's WebSocket URL */
  stream: string;
}

async function startGateway(vendorBase: string, limits: Options, env: Record<string, string>): Promise<Gateway> {
  const child = node(['dist/src/server.js'], {
    PORT: '0',
    UPSTREAM_URL: vendorBase,
    STREAMS: STREAM,
    LOG_LEVEL: 'info',
    MAX_CLIENTS: '20000',
    CLIENT_MAX_BUFFER_BYTES: String(limits.maxBufferBytes),
    CLIENT_HIGH_WATER_BYTES: String(limits.highWaterBytes),
    ...env,
  }, limits.profile === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', limits.profile, '--cpu-prof-name', `${env.NODE_ID ?? 'standalone'}.cpuprofile`]);
  const { address, streams } = await jsonLine<{ address: string; streams: string[] }>(child, (v) => v.msg === 'tickmux ready');
  return { child, base: address, stream: streams.find((u) => u.endsWith(`/${STREAM}`)) as string };
}

interface ClusterView {
  nats: string | null;
  streams: Record<string, { owner: string | null; role: string; state: string }>;
}

/** Polls `GET /cluster` on `gateway` until `ready` holds of it. */
async function untilCluster(gateway: Gateway, ready: (view: ClusterView) => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const res = await fetch(`${gateway.base}/cluster`);
    if (res.ok && ready((await res.json()) as ClusterView)) return;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The counters a step reads from each gateway's `/metrics`, for the bench's stream. */
const COUNTERS = ['upstream_messages', 'upstream_bytes', 'downstream_messages', 'cluster_published', 'cluster_received'] as const;
type Counters = Record<(typeof COUNTERS)[number], number>;

async function counters(gateway: Gateway): Promise<Counters> {
  const res = await fetch(`${gateway.base}/metrics`);
  if (!res.ok) throw new Error(`could not read ${gateway.base}/metrics: ${res.status}`);
  const out = Object.fromEntries(COUNTERS.map((c) => [c, 0])) as Counters;
  for (const line of (await res.text()).split('\n')) {
    const m = /^tickmux_(\w+)_total\{stream="([^"]+)"\} (\d+)/.exec(line);
    if (m !== null && m[2] === STREAM && (COUNTERS as readonly string[]).includes(m[1] as string)) out[m[1] as keyof Counters] = Number(m[3]);
  }
  return out;
}

/** What the clients connect to, the processes whose CPU and RSS count, and the gateways whose counters are read. */
interface Target {
  /** the gateway the clients connect to */
  serving: Gateway;
  processes: Record<string, ChildProcess>;
  gateways: Record<string, Gateway>;
}

interface ProcessFigures {
  cpuPercent: number;
  rssMb: number;
}

interface StepResult {
  deliveredPerSecond: number;
  framesPerSecond: number;
  latencyMs: Latency;
  processes: Record<string, ProcessFigures>;
  /** the sum over `processes` */
  cpuPercent: number;
  rssMb: number;
  loadCpuPercent: number;
  /** per gateway, per second over the window: the counters that moved */
  counters: Record<string, Partial<Counters>>;
}

async function startClients(url: string, clients: number): Promise<ChildProcess> {
  const child = track(fork(new URL('./load-clients.js', import.meta.url), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  const ready = new Promise<void>((resolve, reject) => {
    child.on('message', (m: { type: string }) => m.type === 'ready' && resolve());
    child.once('exit', (code) => reject(new Error(`load clients exited (${code})`)));
  });
  const group: ClientGroup = { name: 'broadcast', url, clients, encoding: 'msgpack', subscriptions: [{ trades: BROADCAST_SYMBOLS, quotes: BROADCAST_SYMBOLS }], sampled: 10 };
  child.send({ type: 'start', plan: { groups: [group] } });
  await ready;
  return child;
}

/**
 * One measured step, as bench/run.ts's: the clients connect, the vendor runs at `rate`; once the
 * serving gateway sends (a follower's interest goes through NATS to the owner and on to the
 * vendor), a warm-up, then the window.
 */
async function step(target: Target, control: string, rate: number, o: Options): Promise<StepResult> {
  const clients = await startClients(target.serving.stream, o.clients);
  const sentBefore = (await counters(target.serving)).downstream_messages;
  await setRate(control, rate);
  const deadline = Date.now() + 15_000;
  while ((await counters(target.serving)).downstream_messages === sentBefore) {
    if (Date.now() > deadline) throw new Error(`no data reached the clients within 15 s at ${rate}/s`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await new Promise((resolve) => setTimeout(resolve, o.warmupMs));

  const names = Object.keys(target.gateways);
  const countersBefore = await Promise.all(names.map((n) => counters(target.gateways[n] as Gateway)));
  const cpuBefore = Object.fromEntries(Object.entries(target.processes).map(([name, p]) => [name, cpuSeconds(p.pid as number)]));
  const loadBefore = cpuSeconds(clients.pid as number);
  const started = process.hrtime.bigint();
  const { deliveredPerSecond, framesPerSecond, latencyMs } = await measure(clients, o.measureMs);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const processes: Record<string, ProcessFigures> = {};
  for (const [name, p] of Object.entries(target.processes)) {
    processes[name] = {
      cpuPercent: Math.round(((cpuSeconds(p.pid as number) - (cpuBefore[name] as number)) / seconds) * 100),
      rssMb: Math.round((rssBytes(p.pid as number) ?? 0) / 1048576),
    };
  }
  const loadCpuPercent = Math.round(((cpuSeconds(clients.pid as number) - loadBefore) / seconds) * 100);
  const countersAfter = await Promise.all(names.map((n) => counters(target.gateways[n] as Gateway)));
  await setRate(control, 0);
  await stopClients(clients);
  await new Promise((resolve) => setTimeout(resolve, 500));

  const perSecond: Record<string, Partial<Counters>> = {};
  names.forEach((name, i) => {
    const moved: Partial<Counters> = {};
    for (const c of COUNTERS) {
      const n = (countersAfter[i] as Counters)[c] - (countersBefore[i] as Counters)[c];
      if (n > 0) moved[c] = Math.round(n / seconds);
    }
    perSecond[name] = moved;
  });
  const figures = Object.values(processes);
  return {
    deliveredPerSecond,
    framesPerSecond,
    latencyMs,
    processes,
    cpuPercent: figures.reduce((sum, f) => sum + f.cpuPercent, 0),
    rssMb: figures.reduce((sum, f) => sum + f.rssMb, 0),
    loadCpuPercent,
    counters: perSecond,
  };
}

/** SIGTERM, SIGKILL if it has not exited 10 s later; resolves once it has. */
const stop = (child: ChildProcess): Promise<void> => stopProcess(child, 10_000);

function ratio(a: number | null | undefined, b: number | null | undefined): number | null {
  return a === null || a === undefined || b === null || b === undefined || b === 0 ? null : Number((a / b).toFixed(3));
}

/** Runs the cluster scenario and prints its JSON; `--cluster` on `npm run bench` lands here. */
export async function runCluster(): Promise<void> {
  const natsServer = natsVersion();
  if (natsServer === undefined) {
    const missing = 'nats-server is not installed (apt-get install nats-server): the cluster bench is SKIPPED';
    process.stderr.write(`\n*** ${missing} ***\n\n`);
    process.stdout.write(`${JSON.stringify({ cluster: { skipped: missing } }, null, 2)}\n`);
    return;
  }
  const o = options();
  const loadAverageAtStart = loadavg().map((l) => Number(l.toFixed(2)));

  const simulator = node(['dist/src/cli.js', 'simulate', '--port', '0', '--rate', '0', '--max-buffer-mb', '1024'], { LOG_LEVEL: 'info' });
  const [{ base: vendorBase }, nats] = await Promise.all([jsonLine<{ base: string }>(simulator, (v) => v.msg === 'simulated vendor ready'), startNats()]);
  const control = vendorBase.replace('ws://', 'http://');

  // The simulator refuses a key already in use on a path (406), so the standalone gateway and the cluster have their own.
  const clusterEnv = { APCA_API_KEY_ID: 'bench-cluster', APCA_API_SECRET_KEY: 'bench', NATS_URL: nats.url, CLUSTER_NAME: 'bench' };
  // The owner starts before the follower, so it takes the lease; the follower starts once it holds it.
  const [standalone, owner] = await Promise.all([
    startGateway(vendorBase, o, { APCA_API_KEY_ID: 'bench-standalone', APCA_API_SECRET_KEY: 'bench' }),
    startGateway(vendorBase, o, { ...clusterEnv, NODE_ID: 'owner' }),
  ]);
  await untilCluster(owner, (v) => v.nats === 'connected' && v.streams[STREAM]?.owner === 'owner', 'the owner to hold the lease');
  const follower = await startGateway(vendorBase, o, { ...clusterEnv, NODE_ID: 'follower' });
  await untilCluster(owner, (v) => v.streams[STREAM]?.state === 'live', 'the owner’s vendor link to be live');
  await untilCluster(follower, (v) => v.nats === 'connected' && v.streams[STREAM]?.owner === 'owner' && v.streams[STREAM]?.role === 'follower', 'the follower to see the owner');
  const healthy = Date.now() + 30_000;
  while (!(await fetch(`${follower.base}/health`)).ok) {
    if (Date.now() > healthy) throw new Error('gave up waiting for the follower’s /health to answer 200');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }

  const standaloneTarget: Target = { serving: standalone, processes: { gateway: standalone.child }, gateways: { gateway: standalone } };
  const clusterTarget: Target = { serving: follower, processes: { owner: owner.child, follower: follower.child, nats: nats.child }, gateways: { owner, follower } };

  // What each process spends with no client and the vendor silent (timers, heartbeats, lease and node-entry renewals): a share of every step's CPU.
  const idle = Object.entries({ ...standaloneTarget.processes, ...clusterTarget.processes });
  const idleBefore = idle.map(([, p]) => cpuSeconds(p.pid as number));
  await new Promise((resolve) => setTimeout(resolve, o.measureMs));
  const idleCpuPercent = Object.fromEntries(idle.map(([name, p], i) => [name, Math.round(((cpuSeconds(p.pid as number) - (idleBefore[i] as number)) / (o.measureMs / 1000)) * 100)]));

  const ramp: Record<string, unknown>[] = [];
  for (const rate of o.rates) {
    const alone = await step(standaloneTarget, control, rate, o);
    const cluster = await step(clusterTarget, control, rate, o);
    ramp.push({
      vendorRate: rate,
      offeredPerSecond: rate * o.clients,
      vendorSentOfferedPerSecond: { standalone: (alone.counters.gateway?.upstream_messages ?? 0) * o.clients, cluster: (cluster.counters.owner?.upstream_messages ?? 0) * o.clients },
      standalone: alone,
      cluster,
      ratio: {
        delivered: ratio(cluster.deliveredPerSecond, alone.deliveredPerSecond),
        p50: ratio(cluster.latencyMs.p50, alone.latencyMs.p50),
        p99: ratio(cluster.latencyMs.p99, alone.latencyMs.p99),
        followerCpu: ratio(cluster.processes.follower?.cpuPercent, alone.cpuPercent),
        clusterCpu: ratio(cluster.cpuPercent, alone.cpuPercent),
        followerRss: ratio(cluster.processes.follower?.rssMb, alone.rssMb),
        clusterRss: ratio(cluster.rssMb, alone.rssMb),
      },
    });
    process.stderr.write(
      `cluster ${rate}/s: standalone ${alone.deliveredPerSecond}/s (CPU ${alone.cpuPercent} %, p99 ${alone.latencyMs.p99} ms), ` +
        `follower ${cluster.deliveredPerSecond}/s (CPU owner ${cluster.processes.owner?.cpuPercent} % follower ${cluster.processes.follower?.cpuPercent} % nats ${cluster.processes.nats?.cpuPercent} %, p99 ${cluster.latencyMs.p99} ms)\n`,
    );
  }

  const out = {
    machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version, loadAverageAtStart, loadAverageAtEnd: loadavg().map((l) => Number(l.toFixed(2))) },
    clients: o.clients,
    measureSeconds: o.measureMs / 1000,
    method:
      'separate processes on 127.0.0.1: simulator → standalone gateway, or simulator → owner → nats-server → follower, → one load process of N msgpack clients all on trades and quotes of 20 symbols; at each vendor rate the standalone step, then the cluster step (the other gateways idle); delivered = messages counted from frame headers over the window; latency = client receipt − vendor timestamp on 10 sampled clients; CPU and RSS from /proc over the window; counters per second from each gateway’s /metrics',
    cluster: { stream: STREAM, symbols: BROADCAST_SYMBOLS.length, natsServer, idleCpuPercent, ramp },
  };
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);

  // Stop every child, nats-server last (the nodes delete their entries and leases on the way out).
  await Promise.all([follower.child, owner.child, standalone.child, simulator].map(stop));
  await stop(nats.child);
  rmSync(nats.storeDir, { recursive: true, force: true });
}
