/**
 * `npm run bench`: the fan-out benchmark (DESIGN.md §7). The simulator, the gateway, the load
 * clients and the baseline (a bare `ws` broadcaster of pre-encoded frames) run as separate
 * processes on this machine; everything goes over 127.0.0.1. Prints one JSON object.
 *
 *   npm run bench [-- --clients 1000 --seconds 5 --warmup 1.5 --idle 1000 --rates 250,500,1000,2000,4000,8000
 *                    --high-water-mb 8 --max-buffer-mb 256 --filtered-rate 5000 --mixed-rate 400
 *                    --profile DIR --idle-only --overload-only --overload-ramp 1000,2000,4000,8000,16000
 *                    --overload-steps 1,2,4 --overload-holds trades,quotes|quotes --overload-profile DIR]
 *
 * Scenarios: "broadcast" (every client on the same 20 symbols, trades and quotes) ramped until
 * the gateway saturates, against the baseline at the same offered loads; latency at a quarter
 * of the gateway's saturation rate; "filtered" (each client on 10 random symbols of 500);
 * memory per idle connection (gateway RSS at 0 and at N authenticated, idle clients); and
 * "mixed" (issue #9), on by default, `--mixed-rate 0` leaves it out: the N clients spread over
 * four streams at once (bench/mixed-plan.ts), each group also alone, against the same N clients
 * on the stock stream alone offered as many deliveries per second; and "overload" (issue #11), on
 * by default, `--overload-steps 0` leaves it out, `--overload-only` runs it alone: N JSON clients
 * on the 20 broadcast symbols against a gateway with the default client limits, its saturation
 * rate found by a ramp, then 1×, 2× and 4× that rate against the gateway and a JSON baseline
 * (`--overload-holds quotes`: the clients hold only quotes, which conflate, so none is closed).
 * Alone, instead of these: `--cluster` (issue #10, bench/cluster.ts) and `--tape` (issue #18,
 * bench/tape.ts: recording's cost, replay speed, tape bytes and seek time).
 */
import { type ChildProcess, fork } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { seededRandom } from '../src/random.js';
import { runCluster } from './cluster.js';
import type { ClientGroup } from './load-clients.js';
import { deliveriesPerVendorMessage, mixedPlan, type PlannedGroup, STREAMS, stocksOnlyGroup } from './mixed-plan.js';
import { cpuSeconds, jsonLine, measure, node, rssBytes, setRate, stopClients, tcpExtCounters, tcpSocketBytes, track } from './processes.js';
import { percentiles } from './percentiles.js';
import { runTape } from './tape.js';
import { BROADCAST_SYMBOLS, startClients, startGateway, type StepResult, type StepTiming, stockGroup as clientsOn, step as measuredStep, type Target, usage } from './step.js';

const { values } = parseArgs({
  options: {
    clients: { type: 'string', default: '1000' },
    seconds: { type: 'string', default: '5' },
    /** seconds between a step's clients subscribing (and the rate being set) and its window */
    warmup: { type: 'string', default: '1.5' },
    idle: { type: 'string', default: '1000' },
    /** run the idle-connection scenario alone (issue #11: quick to repeat at 1,000 and 10,000) */
    'idle-only': { type: 'boolean', default: false },
    rates: { type: 'string', default: '250,500,1000,2000,4000,8000' },
    'filtered-rate': { type: 'string', default: '5000' },
    /** vendor messages/s of each kind in the mixed scenario; 0 leaves the scenario out */
    'mixed-rate': { type: 'string', default: '400' },
    'gateway-log': { type: 'string' },
    /** a directory: the gateway writes a V8 CPU profile there when it stops */
    profile: { type: 'string' },
    /** per-client limits of the gateway (defaults: generous, so no client is cut mid-measurement) */
    'high-water-mb': { type: 'string', default: '8' },
    'max-buffer-mb': { type: 'string', default: '256' },
    /** run only the cluster scenario (issue #10, bench/cluster.ts) */
    cluster: { type: 'boolean', default: false },
    /** run only the tape scenario (issue #18, bench/tape.ts, which reads these and its defaults) */
    tape: { type: 'boolean', default: false },
    'tape-repeats': { type: 'string' },
    'tape-fill-rate': { type: 'string' },
    'tape-fill-seconds': { type: 'string' },
    'tape-replays': { type: 'string' },
    'tape-seek-gb': { type: 'string' },
    'tape-seeks': { type: 'string' },
    /** run the overload scenario alone */
    'overload-only': { type: 'boolean', default: false },
    /** vendor rates tried, in order, to find the overload gateway's saturation rate */
    'overload-ramp': { type: 'string', default: '1000,2000,4000,8000,16000' },
    /** multiples of the saturation rate offered in the overload scenario; 0 leaves the scenario out */
    'overload-steps': { type: 'string', default: '1,2,4' },
    /**
     * what the overload scenario's clients hold of the 20 symbols: `trades,quotes` (issue #11), or
     * `quotes` (issue #19: quotes conflate, so no lagging client is ever closed with 407)
     */
    'overload-holds': { type: 'string', default: 'trades,quotes' },
    /** a directory: the overload scenario's gateway writes a V8 CPU profile there when it stops */
    'overload-profile': { type: 'string' },
  },
});
const CLIENTS = Number(values.clients);
const MEASURE_MS = Number(values.seconds) * 1000;
const WARMUP_MS = Number(values.warmup) * 1000;
const IDLE = Number(values.idle);
const RATES = (values.rates ?? '').split(',').map(Number);
const FILTERED_RATE = Number(values['filtered-rate']);
const MIXED_RATE = Number(values['mixed-rate']);
const OVERLOAD_RAMP = (values['overload-ramp'] ?? '').split(',').map(Number);
const OVERLOAD_STEPS = (values['overload-steps'] ?? '').split(',').map(Number).filter((n) => n > 0);
const OVERLOAD_HOLDS = (values['overload-holds'] ?? '').split(',').filter((c) => c !== '');
if (OVERLOAD_HOLDS.length === 0 || OVERLOAD_HOLDS.some((c) => c !== 'trades' && c !== 'quotes')) throw new Error(`--overload-holds: trades and/or quotes, comma-separated (got ${values['overload-holds']})`);

// A signal ends the run through process.exit, so the child registry kills the simulator, gateway and baseline.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(130));

const TIMING: StepTiming = { warmupMs: WARMUP_MS, measureMs: MEASURE_MS };

/** One measured step (bench/step.ts) with this run's warm-up and window. */
const step = (target: Target, control: string, rate: number, groups: readonly PlannedGroup[]): Promise<StepResult> => measuredStep(target, control, rate, groups, TIMING);

/** The run's N clients, each on trades and quotes of its symbols (`symbols` cycled). */
const stockGroup = (symbols: string[][]): PlannedGroup => clientsOn(CLIENTS, symbols);

/** What every report starts with: the machine, the client count, the method. */
function header(): Record<string, unknown> {
  return {
    machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version, loadAverage: loadavg().map((n) => Number(n.toFixed(2))) },
    clients: CLIENTS,
    measureSeconds: MEASURE_MS / 1000,
    method:
      'separate processes on 127.0.0.1: simulator → gateway (or baseline) → one load process of clients (msgpack, and JSON in the mixed and overload scenarios); delivered = messages counted from frame headers (JSON: message openings) over the window; latency = client receipt − vendor timestamp on 10 sampled clients per group (wall clocks from performance.timeOrigin)',
  };
}

async function main(): Promise<void> {
  const simulator = node(['dist/src/cli.js', 'simulate', '--port', '0', '--rate', '0', '--max-buffer-mb', '1024'], { LOG_LEVEL: 'info' });
  const { base: vendorBase } = await jsonLine<{ base: string }>(simulator, (v) => v.msg === 'simulated vendor ready');
  const control = vendorBase.replace('ws://', 'http://');

  if (values['overload-only'] === true) {
    const out = { ...header(), overload: await overload(vendorBase, control) };
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    simulator.kill('SIGTERM');
    return;
  }

  // One gateway serving every stream the scenarios use, as it is deployed: the stock-only
  // scenarios run with the other links connected and idle.
  const { process: gatewayProcess, target: gateway } = await startGateway(
    vendorBase,
    {
      APCA_API_KEY_ID: 'bench',
      APCA_API_SECRET_KEY: 'bench',
      CLIENT_MAX_BUFFER_BYTES: String(Number(values['max-buffer-mb']) * 1048576),
      CLIENT_HIGH_WATER_BYTES: String(Number(values['high-water-mb']) * 1048576),
    },
    values.profile === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', values.profile],
  );
  if (values['gateway-log'] === undefined) gatewayProcess.stdout?.resume();
  else gatewayProcess.stdout?.pipe(createWriteStream(values['gateway-log']));

  const baselineProcess = node(['dist/bench/baseline.js', `${vendorBase}/v2/sip`, BROADCAST_SYMBOLS.join(',')]);
  const { port: baselinePort } = await jsonLine<{ port: number }>(baselineProcess, (v) => typeof v.port === 'number');
  const baseline: Target = { url: () => `ws://127.0.0.1:${baselinePort}/`, pid: baselineProcess.pid };

  const out: Record<string, unknown> = header();

  // Memory per idle connection.
  if (IDLE > 0) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const before = usage(gatewayProcess.pid as number).rssBytes;
    const idle = track(fork(new URL('./load-clients.js', import.meta.url), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
    const ready = new Promise<void>((resolve) => idle.on('message', (m: { type: string }) => m.type === 'ready' && resolve()));
    const idleGroup: ClientGroup = { name: 'idle', url: gateway.url(STREAMS.stocks), clients: IDLE, encoding: 'msgpack', subscriptions: [undefined], sampled: 0 };
    idle.send({ type: 'start', plan: { groups: [idleGroup] } });
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

  if (values['idle-only'] === true) {
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    for (const child of [baselineProcess, gatewayProcess, simulator]) child.kill('SIGTERM');
    return;
  }

  // Before the broadcast ramp, whose overload step leaves the gateway's heap grown for the rest of the run.
  if (MIXED_RATE > 0) out.mixed = await mixed(gateway, control);

  // Broadcast: ramp until the gateway saturates.
  const broadcastPlan = [stockGroup([BROADCAST_SYMBOLS])];
  const ramp: Record<string, unknown>[] = [];
  let gatewaySaturation = 0;
  let baselineSaturation = 0;
  for (const rate of RATES) {
    const offered = rate * CLIENTS;
    const gw = await step(gateway, control, rate, broadcastPlan);
    const base = await step(baseline, control, rate, broadcastPlan);
    gatewaySaturation = Math.max(gatewaySaturation, gw.deliveredPerSecond);
    baselineSaturation = Math.max(baselineSaturation, base.deliveredPerSecond);
    // What the vendor really sent, from the gateway's link: on a loaded machine the simulator's
    // timer slips and it falls short of `rate`, which is no sign of saturation downstream.
    const sent = (gw.streams?.[STREAMS.stocks]?.vendorPerSecond ?? rate) * CLIENTS;
    ramp.push({ vendorRate: rate, offeredPerSecond: offered, vendorSentOfferedPerSecond: Math.round(sent), gateway: gw, baseline: base, ratio: Number((gw.deliveredPerSecond / base.deliveredPerSecond).toFixed(3)) });
    process.stderr.write(`broadcast ${rate}/s: gateway ${gw.deliveredPerSecond}/s, baseline ${base.deliveredPerSecond}/s (the vendor's sends offered ${Math.round(sent)}/s)\n`);
    if (gw.deliveredPerSecond < sent * 0.9 && base.deliveredPerSecond < sent * 0.9) break;
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
  const filtered = await step(gateway, control, FILTERED_RATE, [stockGroup(filteredPlan)]);
  out.filtered = {
    universe: universe.length,
    symbolsPerClient: 10,
    vendorRate: FILTERED_RATE,
    gateway: filtered,
    baseline: 'not comparable: a bare broadcaster sends every message to every client',
  };

  if (OVERLOAD_STEPS.length > 0) {
    // The simulator, like the vendor, takes one session per feed: the overload scenario's gateway
    // and baseline connect only once these two are gone.
    await Promise.all([baselineProcess, gatewayProcess].map((child) => new Promise((resolve) => child.once('exit', resolve).kill('SIGTERM'))));
    out.overload = await overload(vendorBase, control);
  } else {
    for (const child of [baselineProcess, gatewayProcess]) child.kill('SIGTERM');
  }

  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  simulator.kill('SIGTERM');
}

/**
 * The mixed scenario: the gateway's CPU with no client; the plan's groups on four streams at
 * once; each group alone (its CPU and RSS; news alone would not show); and as a baseline the same
 * number of clients on the stock stream alone (5 of the 20 broadcast symbols each, as the mix's
 * stock clients) at the vendor rate that offers them as many deliveries per second as the mix's
 * rate offers the mix. Offered deliveries are counted from what the gateway's links actually
 * received (the simulator's rate slips when its timer is starved), times each group's share.
 */
async function mixed(gateway: Target, control: string): Promise<Record<string, unknown>> {
  // What the gateway spends with no client (its links' heartbeats, timers, GC): a share of every step's CPU.
  const idleBefore = cpuSeconds(gateway.pid as number);
  await new Promise((resolve) => setTimeout(resolve, MEASURE_MS));
  const idleCpuPercent = Math.round(((cpuSeconds(gateway.pid as number) - idleBefore) / (MEASURE_MS / 1000)) * 100);

  const plan = mixedPlan(CLIENTS, BROADCAST_SYMBOLS);
  const together = report(plan, await step(gateway, control, MIXED_RATE, plan));
  process.stderr.write(`mixed ${MIXED_RATE}/s per kind: clients got ${together.deliveredPerSecond}/s of ${together.offeredPerSecond}/s offered\n`);

  const alone: Record<string, unknown> = {};
  for (const group of plan) {
    if (group.path === STREAMS.news) continue;
    alone[group.name] = report([group], await step(gateway, control, MIXED_RATE, [group]));
  }

  const stocksOnlyPlan = [stocksOnlyGroup(CLIENTS, BROADCAST_SYMBOLS)];
  const mixShare = deliveriesPerVendorMessage(plan);
  const nominal = plan.filter((g) => g.path !== STREAMS.news).reduce((sum, g) => sum + MIXED_RATE * (mixShare[g.name] as number), 0);
  const stocksOnlyRate = Math.max(1, Math.round(nominal / (deliveriesPerVendorMessage(stocksOnlyPlan).stocks as number)));
  const stocksOnly = report(stocksOnlyPlan, await step(gateway, control, stocksOnlyRate, stocksOnlyPlan));
  process.stderr.write(`stocks only ${stocksOnlyRate}/s: clients got ${stocksOnly.deliveredPerSecond}/s of ${stocksOnly.offeredPerSecond}/s offered\n`);

  const ratio = (a: number | null, b: number | null): number | null => (a === null || b === null || b === 0 ? null : Number((a / b).toFixed(3)));
  return {
    vendorRatePerKind: MIXED_RATE,
    idleCpuPercent,
    groups: plan.map((g) => ({ name: g.name, stream: g.path, encoding: g.encoding, clients: g.clients, holds: g.holds })),
    together,
    alone,
    stocksOnly: { clients: CLIENTS, holds: stocksOnlyPlan[0]?.holds, vendorRate: stocksOnlyRate, ...stocksOnly },
    ratio: {
      delivered: ratio(together.deliveredPerSecond, stocksOnly.deliveredPerSecond),
      sent: ratio(together.sentPerSecond, stocksOnly.sentPerSecond),
      cpu: ratio(together.cpuPercent, stocksOnly.cpuPercent),
      cpuPerMessageSent: ratio(together.cpuMicrosPerMessageSent, stocksOnly.cpuMicrosPerMessageSent),
      rss: ratio(together.rssMb, stocksOnly.rssMb),
      p99: ratio(together.latencyMs.p99, stocksOnly.latencyMs.p99),
    },
  };
}

/**
 * A step's result with what the groups were offered (each group's share of what its stream's link
 * received), what the gateway sent in all, and its CPU per message sent.
 */
function report(groups: readonly PlannedGroup[], result: StepResult) {
  const share = deliveriesPerVendorMessage(groups);
  const offered = Object.fromEntries(groups.map((g) => [g.name, Math.round((result.streams?.[g.path]?.vendorPerSecond ?? 0) * (share[g.name] as number))]));
  const sentPerSecond = Object.values(result.streams ?? {}).reduce((sum, s) => sum + s.sentPerSecond, 0);
  const perGroup = result.groups === undefined ? undefined : Object.fromEntries(Object.entries(result.groups).map(([name, g]) => [name, { offeredPerSecond: offered[name], ...g }]));
  return {
    offeredPerSecond: Object.values(offered).reduce((sum, n) => sum + n, 0),
    ...result,
    sentPerSecond,
    cpuMicrosPerMessageSent: result.cpuPercent === null || sentPerSecond === 0 ? null : Number((((result.cpuPercent / 100) * 1e6) / sentPerSecond).toFixed(2)),
    groups: perGroup,
  };
}

/** A reading of the gateway's `/metrics`: every sample's value by its series as printed (`name{labels}`). */
async function readMetrics(metricsUrl: string): Promise<Map<string, number>> {
  const res = await fetch(metricsUrl);
  if (!res.ok) throw new Error(`could not read the gateway's metrics: ${res.status}`);
  const samples = new Map<string, number>();
  for (const line of (await res.text()).split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (m !== null) samples.set(m[1] as string, Number(m[2]));
  }
  return samples;
}

/** The sum of a metric's samples over all its label sets. */
function total(samples: Map<string, number>, name: string): number {
  let sum = 0;
  for (const [series, value] of samples) if (series === name || series.startsWith(`${name}{`)) sum += value;
  return sum;
}

/**
 * Probes `url` (the gateway's `/health/live`) every ~50 ms, as a load balancer would, one request
 * at a time, and samples the gateway's RSS as it goes; `stop` ends it and reports the latencies.
 */
function probe(url: string, pid: number) {
  const latencies: number[] = [];
  let failures = 0;
  let peakRss = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const started = performance.now();
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(30_000) });
        await res.arrayBuffer();
        if (!res.ok) failures += 1;
      } catch (err) {
        // A refused connection or the timeout: counted, the probing goes on.
        if (!(err instanceof Error)) throw err;
        failures += 1;
      }
      const took = performance.now() - started;
      latencies.push(took);
      peakRss = Math.max(peakRss, rssBytes(pid) ?? 0);
      if (took < 50) await new Promise((resolve) => setTimeout(resolve, 50 - took));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      const { p50, p99, samples } = percentiles(latencies);
      return { probes: samples, failures, p50Ms: p50, p99Ms: p99, maxMs: Number(Math.max(0, ...latencies).toFixed(3)), peakRssMb: Math.round(peakRss / 1048576) };
    },
  };
}

/**
 * One overload step against the gateway (probed, its metrics read) or the baseline: the clients
 * connect, the vendor runs at `rate`, a warm-up, a window. Slow-client closes and conflated
 * messages count over the whole step (most closes happen as the backlogs first fill); the
 * event-loop lag p99 is over the window (prom-client resets its histogram at each scrape).
 */
async function overloadStep(target: Target, control: string, rate: number, group: PlannedGroup, health?: string) {
  const metrics = target.metrics;
  // An overloaded gateway may drop the scrape's connection (a gateway before issue #11 did): the step's figures from it are then missing, not the run.
  const scrape = (url: string): Promise<Map<string, number> | undefined> =>
    readMetrics(url).catch((err: unknown) => {
      if (!(err instanceof TypeError)) throw err;
      process.stderr.write(`overload: /metrics unreadable (${err.message})\n`);
      return undefined;
    });
  const atStart = metrics === undefined ? undefined : await scrape(metrics);
  const kernel = kernelWatch();
  const clients = await startClients(target, [group]);
  await setRate(control, rate);
  await new Promise((resolve) => setTimeout(resolve, WARMUP_MS));
  const atWindow = metrics === undefined ? undefined : await scrape(metrics);
  const probing = health === undefined ? undefined : probe(health, target.pid as number);
  const before = usage(target.pid as number);
  const loadBefore = cpuSeconds(clients.pid as number);
  const started = process.hrtime.bigint();
  const { groups: _, ...measured } = await measure(clients, MEASURE_MS);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const after = usage(target.pid as number);
  const loadAfter = cpuSeconds(clients.pid as number);
  const probed = await probing?.stop();
  const atEnd = metrics === undefined ? undefined : await scrape(metrics);
  await setRate(control, 0);
  const kernelFigures = kernel.stop();
  await stopClients(clients);
  await new Promise((resolve) => setTimeout(resolve, 500));
  const vendor = 'tickmux_upstream_messages_total';
  const vendorPerSecond = atWindow && atEnd ? Number(((total(atEnd, vendor) - total(atWindow, vendor)) / seconds).toFixed(1)) : null;
  return {
    ...measured,
    ...(vendorPerSecond === null ? {} : { vendorSentPerSecond: vendorPerSecond, offeredPerSecond: Math.round(vendorPerSecond * group.clients) }),
    cpuPercent: Math.round(((after.cpuSeconds - before.cpuSeconds) / seconds) * 100),
    rssMb: Math.round(after.rssBytes / 1048576),
    loadCpuPercent: Math.round(((loadAfter - loadBefore) / seconds) * 100),
    kernel: kernelFigures,
    ...(atStart && atWindow && atEnd && probed
      ? {
          rssPeakMb: Math.max(probed.peakRssMb, Math.round(after.rssBytes / 1048576)),
          eventLoopLagP99Ms: Number(((atEnd.get('tickmux_nodejs_eventloop_lag_p99_seconds') ?? NaN) * 1000).toFixed(1)),
          healthLive: probed,
          slowClientCloses: total(atEnd, 'tickmux_slow_client_closes_total') - total(atStart, 'tickmux_slow_client_closes_total'),
          conflated: total(atEnd, 'tickmux_conflated_messages_total') - total(atStart, 'tickmux_conflated_messages_total'),
          clientsLeft: total(atEnd, 'tickmux_clients_authenticated'),
        }
      : {}),
  };
}

/**
 * What the kernel held for the step's sockets: the peak of all TCP sockets' memory (on loopback the
 * clients' unread data, in no process's RSS), and how often it went past `net.ipv4.tcp_mem`'s
 * pressure threshold and dropped segments for a full receive queue (then retransmitted after a
 * timeout: both ends wait). Sampled every 100 ms from before the clients connect.
 */
function kernelWatch() {
  const before = tcpExtCounters();
  let peak = tcpSocketBytes() ?? 0;
  const timer = setInterval(() => {
    peak = Math.max(peak, tcpSocketBytes() ?? 0);
  }, 100).unref();
  return {
    stop: () => {
      clearInterval(timer);
      const after = tcpExtCounters();
      const delta = (name: string): number | null => (after.has(name) && before.has(name) ? (after.get(name) as number) - (before.get(name) as number) : null);
      return { tcpMemPeakMb: Math.round(Math.max(peak, tcpSocketBytes() ?? 0) / 1048576), memoryPressures: delta('TCPMemoryPressures'), receiveQueueDrops: delta('TCPRcvQDrop') };
    },
  };
}

/**
 * The overload scenario (issue #11): a gateway of its own with the default client limits (1 MiB
 * high-water, 8 MiB before 407), N JSON clients on trades and quotes of the 20 broadcast symbols.
 * After a warm-up step, a ramp finds its saturation rate (the last vendor rate at which it
 * delivered ≥ 90 % of what its link received, times N); then 1×, 2× and 4× that rate, each against the gateway and a bare
 * broadcaster of the vendor's JSON frames. Last, a SIGTERM at the highest rate, timed to exit.
 */
async function overload(vendorBase: string, control: string): Promise<Record<string, unknown>> {
  const profile = values['overload-profile'];
  const gatewayProcess = node(
    ['dist/src/server.js'],
    { PORT: '0', UPSTREAM_URL: vendorBase, STREAMS: Object.values(STREAMS).join(','), APCA_API_KEY_ID: 'bench', APCA_API_SECRET_KEY: 'bench', LOG_LEVEL: 'info', MAX_CLIENTS: '20000' },
    profile === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', profile],
  );
  const { address, streams } = await jsonLine<{ address: string; streams: string[] }>(gatewayProcess, (v) => v.msg === 'tickmux ready');
  gatewayProcess.stdout?.resume();
  const stockUrl = streams.find((u) => u.endsWith(`/${STREAMS.stocks}`)) as string;
  const gateway: Target = { url: () => stockUrl, pid: gatewayProcess.pid, metrics: `${address}/metrics` };
  const health = `${address}/health/live`;
  const holds = OVERLOAD_HOLDS;
  const baselineProcess = node(['dist/bench/baseline.js', `${vendorBase}/v2/sip`, BROADCAST_SYMBOLS.join(','), 'json', holds.join(',')]);
  const { port: baselinePort } = await jsonLine<{ port: number }>(baselineProcess, (v) => typeof v.port === 'number');
  const baseline: Target = { url: () => `ws://127.0.0.1:${baselinePort}/`, pid: baselineProcess.pid };
  const subscription = Object.fromEntries(holds.map((channel) => [channel, BROADCAST_SYMBOLS]));
  const group: PlannedGroup = { ...stockGroup([BROADCAST_SYMBOLS]), name: 'json', encoding: 'json', subscriptions: [subscription], holds: holds.join(' + ') };

  // A fresh gateway's first seconds (code not yet optimized, heap growing) would set the base too low.
  const warmUp = await overloadStep(gateway, control, OVERLOAD_RAMP[0] as number, group, health);
  process.stderr.write(`overload warm-up ${OVERLOAD_RAMP[0]}/s (not counted): gateway ${warmUp.deliveredPerSecond}/s\n`);
  const ramp: Record<string, unknown>[] = [];
  let saturationRate: number | undefined;
  let saturationDelivered = 0;
  for (const rate of OVERLOAD_RAMP) {
    const gw = await overloadStep(gateway, control, rate, group, health);
    const sent = gw.offeredPerSecond ?? rate * CLIENTS;
    ramp.push({ vendorRate: rate, gateway: gw });
    process.stderr.write(`overload ramp ${rate}/s: gateway ${gw.deliveredPerSecond}/s of ${sent}/s offered, /health/live p99 ${gw.healthLive?.p99Ms} ms\n`);
    if (gw.deliveredPerSecond < sent * 0.9) break;
    saturationRate = rate;
    saturationDelivered = gw.deliveredPerSecond;
  }
  // Saturated at the first rate tried: that rate and what it delivered are the base.
  if (saturationRate === undefined) {
    saturationRate = OVERLOAD_RAMP[0] as number;
    saturationDelivered = (ramp[0]?.gateway as { deliveredPerSecond: number }).deliveredPerSecond;
  }

  const steps: Record<string, unknown>[] = [];
  for (const multiple of OVERLOAD_STEPS) {
    const rate = saturationRate * multiple;
    const gw = await overloadStep(gateway, control, rate, group, health);
    const base = await overloadStep(baseline, control, rate, group);
    steps.push({
      multiple,
      vendorRate: rate,
      gateway: gw,
      baseline: base,
      ratio: Number((gw.deliveredPerSecond / base.deliveredPerSecond).toFixed(3)),
      ofSaturation: saturationDelivered === 0 ? null : Number((gw.deliveredPerSecond / saturationDelivered).toFixed(3)),
    });
    process.stderr.write(
      `overload ${multiple}× (${rate}/s): gateway ${gw.deliveredPerSecond}/s, baseline ${base.deliveredPerSecond}/s, RSS ${gw.rssPeakMb} MB, lag p99 ${gw.eventLoopLagP99Ms} ms, /health/live p99 ${gw.healthLive?.p99Ms} ms, 407 ${gw.slowClientCloses}, conflated ${gw.conflated}, kernel TCP memory peak ${gw.kernel.tcpMemPeakMb} MB / ${base.kernel.tcpMemPeakMb} MB (pressure ${gw.kernel.memoryPressures} / ${base.kernel.memoryPressures})\n`,
    );
  }
  baselineProcess.kill('SIGTERM');
  const shutdown = await sigtermUnderLoad(gateway, gatewayProcess, control, saturationRate * Math.max(...OVERLOAD_STEPS), group);
  process.stderr.write(`overload: SIGTERM at ${shutdown.vendorRate}/s, exited after ${shutdown.exitMs} ms (code ${shutdown.exitCode})\n`);
  return {
    clients: CLIENTS,
    encoding: 'json',
    symbols: BROADCAST_SYMBOLS.length,
    holds: holds.join(','),
    limits: 'defaults: CLIENT_HIGH_WATER_BYTES 1 MiB, CLIENT_MAX_BUFFER_BYTES 8 MiB',
    ramp,
    saturation: { vendorRate: saturationRate, gatewayDeliveredPerSecond: saturationDelivered },
    steps,
    shutdown,
  };
}

/** Clients connected and the vendor at `rate` until backlogs have built, then SIGTERM: how long until the gateway exits. */
async function sigtermUnderLoad(target: Target, gatewayProcess: ChildProcess, control: string, rate: number, group: PlannedGroup) {
  const clients = await startClients(target, [group]);
  await setRate(control, rate);
  await new Promise((resolve) => setTimeout(resolve, WARMUP_MS + MEASURE_MS / 2));
  const exited = new Promise<number | null>((resolve) => gatewayProcess.once('exit', (code) => resolve(code)));
  const started = performance.now();
  gatewayProcess.kill('SIGTERM');
  const limit = 60_000;
  const code = await Promise.race([exited, new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), limit).unref())]);
  const exitMs = code === 'timeout' ? null : Math.round(performance.now() - started);
  if (code === 'timeout') gatewayProcess.kill('SIGKILL');
  await setRate(control, 0);
  await stopClients(clients);
  return { vendorRate: rate, exitMs, exitCode: code === 'timeout' ? `still running after ${limit} ms (killed)` : code };
}

function diff(a: number | null, b: number | null): number | null {
  return a === null || b === null ? null : Number((a - b).toFixed(3));
}

if (values.cluster === true) await runCluster();
else if (values.tape === true) await runTape();
else await main();
