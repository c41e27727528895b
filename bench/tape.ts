/**
 * `npm run bench -- --tape` (issue #18): what recording costs the clients and what the tape gives
 * back, in one run, on this machine over 127.0.0.1. Prints one JSON object.
 *
 *   npm run bench -- --tape [--clients 1000 --seconds 5 --warmup 1.5 --rates 1000,2000,4000 --tape-repeats 2
 *                            --tape-fill-rate 50000 --tape-fill-seconds 10 --tape-replays 3
 *                            --tape-seek-gb 10 --tape-seeks 50 --high-water-mb 8 --max-buffer-mb 256 --profile DIR]
 *
 * 1. Throughput: the broadcast scenario of bench/run.ts (one simulator; N msgpack clients in one
 *    load process, all on trades and quotes of the 20 broadcast symbols) against two gateways
 *    started side by side, one recording (TAPE_DIR a fresh temporary folder, nothing pinned: the
 *    tape holds what the clients' subscriptions bring) and one not; at each vendor rate
 *    `--tape-repeats` pairs of steps, one against each, the one going first alternating (the other
 *    idle meanwhile), reported as each side's means.
 * 2. Replay: the recording gateway is then held at `--tape-fill-rate` by one client for
 *    `--tape-fill-seconds`, so the tape holds enough to time; one raw `ws` client (msgpack) on
 *    `/replay/v2/iex?from=<start>&speed=max&events=1` subscribes to the same symbols and counts
 *    data messages (from frame headers) until `replay_end`, `--tape-replays` times. The segments
 *    were written seconds before and never dropped: read from the page cache, not the disk.
 * 3. Bytes: the stream's segment files (after the gateway stopped and closed them) ÷ the bytes
 *    the vendor sent that gateway's link (`tickmux_upstream_bytes_total`).
 * 4. Seek: a synthetic tape of `--tape-seek-gb` in the real format (bench/synthetic-tape.ts), free
 *    disk allowing (20 GB are left free); `--tape-seeks` seeks to random instants, each
 *    `TapeCursor.open` + the first `next()`, with the page cache as writing left it and, where
 *    `dd` can drop a file's pages (`iflag=nocache`), with the seek's segment and index dropped first.
 *    The synthetic tape is deleted at the end, whatever happens.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { WebSocket } from 'ws';
import { CONTROL_TYPES } from '../src/protocol/channels.js';
import { decodeMsgpack } from '../src/protocol/frame.js';
import { seededRandom } from '../src/random.js';
import { fileSize, listSegments, type SegmentFile } from '../src/tape/segment-files.js';
import { segmentAt, TapeCursor } from '../src/tape/tape-cursor.js';
import { countMsgpack } from './message-count.js';
import { STREAMS } from './mixed-plan.js';
import { percentiles } from './percentiles.js';
import { jsonLine, node, stopProcess } from './processes.js';
import { BROADCAST_SYMBOLS, startGateway, step, type StepResult, type StepTiming, stockGroup, type Target } from './step.js';
import { frameTime, writeSyntheticTape } from './synthetic-tape.js';

const STREAM = STREAMS.stocks;
const GB = 1e9;
/** What the seek bench leaves free on the disk. */
const KEEP_FREE_BYTES = 20 * GB;
/** A replay that has not ended after this long is reported as failed, not waited for. */
const REPLAY_TIMEOUT_MS = 120_000;
const CONTROL = new Set<unknown>(CONTROL_TYPES);

interface Options {
  clients: number;
  timing: StepTiming;
  rates: number[];
  /** pairs of steps (one per gateway) at each rate */
  repeats: number;
  fillRate: number;
  fillMs: number;
  replays: number;
  seekBytes: number;
  seeks: number;
  highWaterBytes: number;
  maxBufferBytes: number;
  /** a directory: each gateway writes a V8 CPU profile there when it stops */
  profile: string | undefined;
}

function options(): Options {
  const { values } = parseArgs({
    options: {
      tape: { type: 'boolean', default: false },
      clients: { type: 'string', default: '1000' },
      seconds: { type: 'string', default: '5' },
      warmup: { type: 'string', default: '1.5' },
      // Up to about the standalone gateway's saturation on 2 cores (docs/performance.md: 3.8 M deliveries/s at 4,000/s).
      rates: { type: 'string', default: '1000,2000,4000' },
      'tape-repeats': { type: 'string', default: '2' },
      'tape-fill-rate': { type: 'string', default: '50000' },
      'tape-fill-seconds': { type: 'string', default: '10' },
      'tape-replays': { type: 'string', default: '3' },
      'tape-seek-gb': { type: 'string', default: '10' },
      'tape-seeks': { type: 'string', default: '50' },
      'high-water-mb': { type: 'string', default: '8' },
      'max-buffer-mb': { type: 'string', default: '256' },
      profile: { type: 'string' },
    },
  });
  return {
    clients: Number(values.clients),
    timing: { measureMs: Number(values.seconds) * 1000, warmupMs: Number(values.warmup) * 1000 },
    rates: (values.rates ?? '').split(',').map(Number),
    repeats: Math.max(1, Number(values['tape-repeats'])),
    fillRate: Number(values['tape-fill-rate']),
    fillMs: Number(values['tape-fill-seconds']) * 1000,
    replays: Math.max(1, Number(values['tape-replays'])),
    seekBytes: Number(values['tape-seek-gb']) * GB,
    seeks: Number(values['tape-seeks']),
    highWaterBytes: Number(values['high-water-mb']) * 1048576,
    maxBufferBytes: Number(values['max-buffer-mb']) * 1048576,
    profile: values.profile,
  };
}

function ratio(a: number | null | undefined, b: number | null | undefined): number | null {
  return a === null || a === undefined || b === null || b === undefined || b === 0 ? null : Number((a / b).toFixed(3));
}

/** The samples of `/metrics` for the bench's stream, by metric name. */
async function streamMetrics(address: string): Promise<Map<string, number>> {
  const res = await fetch(`${address}/metrics`);
  if (!res.ok) throw new Error(`could not read ${address}/metrics: ${res.status}`);
  const out = new Map<string, number>();
  for (const line of (await res.text()).split('\n')) {
    const m = /^(\w+)\{stream="([^"]+)"\} (\S+)$/.exec(line);
    if (m !== null && m[2] === STREAM) out.set(m[1] as string, Number(m[3]));
  }
  return out;
}

type Side = 'plain' | 'recording';

/** One gateway's steps at a rate, and their means. */
interface SideFigures {
  deliveredPerSecond: number;
  /** what the vendor really sent its link (the simulator's rate slips) × N */
  offeredPerSecond: number;
  deliveredOfOffered: number | null;
  cpuPercent: number | null;
  /** gateway CPU per message delivered */
  cpuMicrosPerDelivered: number | null;
  steps: StepResult[];
}

interface Ramp {
  steps: { vendorRate: number; order: Side[]; plain: SideFigures; recording: SideFigures; ratio: { delivered: number | null; ofOffered: number | null; cpu: number | null; cpuPerDelivered: number | null } }[];
  /** each side's highest delivered/s over the rates (a saturation figure only where a rate saturated it) */
  highest: { plainDeliveredPerSecond: number; recordingDeliveredPerSecond: number; ratio: number | null };
}

const mean = (values: number[]): number => values.reduce((a, b) => a + b, 0) / Math.max(1, values.length);

function sideFigures(steps: StepResult[], clients: number): SideFigures {
  const delivered = Math.round(mean(steps.map((r) => r.deliveredPerSecond)));
  const offered = Math.round(mean(steps.map((r) => (r.streams?.[STREAM]?.vendorPerSecond ?? 0) * clients)));
  const cpus = steps.flatMap((r) => (r.cpuPercent === null ? [] : [r.cpuPercent]));
  const cpu = cpus.length === 0 ? null : Math.round(mean(cpus));
  return {
    deliveredPerSecond: delivered,
    offeredPerSecond: offered,
    deliveredOfOffered: ratio(delivered, offered),
    cpuPercent: cpu,
    cpuMicrosPerDelivered: cpu === null || delivered === 0 ? null : Number((((cpu / 100) * 1e6) / delivered).toFixed(3)),
    steps,
  };
}

/**
 * Part 1: the broadcast ramp against both gateways: at each rate `repeats` pairs of steps, the
 * side going first alternating (plain, recording, recording, plain, …), so neither gains from
 * going first or from the machine drifting; figures are the means of each side's steps.
 */
async function throughput(targets: Record<Side, Target>, control: string, o: Options): Promise<Ramp> {
  const group = [stockGroup(o.clients, [BROADCAST_SYMBOLS])];
  const steps: Ramp['steps'] = [];
  for (const [i, rate] of o.rates.entries()) {
    const order: Side[] = [];
    const results: Record<Side, StepResult[]> = { plain: [], recording: [] };
    for (let r = 0; r < o.repeats; r++) {
      for (const side of (i + r) % 2 === 0 ? (['plain', 'recording'] as const) : (['recording', 'plain'] as const)) {
        order.push(side);
        results[side].push(await step(targets[side], control, rate, group, o.timing));
      }
    }
    const plain = sideFigures(results.plain, o.clients);
    const recording = sideFigures(results.recording, o.clients);
    steps.push({
      vendorRate: rate,
      order,
      plain,
      recording,
      ratio: {
        delivered: ratio(recording.deliveredPerSecond, plain.deliveredPerSecond),
        ofOffered: ratio(recording.deliveredOfOffered, plain.deliveredOfOffered),
        cpu: ratio(recording.cpuPercent, plain.cpuPercent),
        cpuPerDelivered: ratio(recording.cpuMicrosPerDelivered, plain.cpuMicrosPerDelivered),
      },
    });
    process.stderr.write(
      `tape ${rate}/s: without recording ${plain.deliveredPerSecond}/s of ${plain.offeredPerSecond}/s offered (CPU ${plain.cpuPercent} %), recording ${recording.deliveredPerSecond}/s of ${recording.offeredPerSecond}/s (CPU ${recording.cpuPercent} %)\n`,
    );
  }
  const plainBest = Math.max(0, ...steps.map((s) => s.plain.deliveredPerSecond));
  const recordingBest = Math.max(0, ...steps.map((s) => s.recording.deliveredPerSecond));
  return { steps, highest: { plainDeliveredPerSecond: plainBest, recordingDeliveredPerSecond: recordingBest, ratio: ratio(recordingBest, plainBest) } };
}

interface ReplayRun {
  messages: number;
  frames: number;
  megabytes: number;
  /** from the subscribe to `replay_end` */
  seconds: number;
  msgsPerSecond: number;
  /** from the subscribe to the first data frame */
  firstDataMs: number | null;
  /** `{"T":"gateway"}` notices other than `replay_end`, by event */
  notices: Record<string, number>;
}

/**
 * One replay of the whole tape at speed=max to one raw msgpack client on the broadcast symbols'
 * trades and quotes; data messages counted from frame headers, a one-message frame decoded (the
 * replies and notices come as such, each on its own).
 */
function replayOnce(address: string, fromMs: number): Promise<ReplayRun> {
  const url = `${address.replace(/^http/, 'ws')}/replay/${STREAM}?from=${fromMs}&speed=max&events=1`;
  const ws = new WebSocket(url, { headers: { 'Content-Type': 'application/msgpack' }, perMessageDeflate: false });
  let timer: NodeJS.Timeout | undefined;
  return new Promise<ReplayRun>((resolve, reject) => {
    let subscribedAt: number | undefined;
    let firstDataAt: number | undefined;
    let messages = 0;
    let frames = 0;
    let bytes = 0;
    const notices: Record<string, number> = {};
    timer = setTimeout(() => reject(new Error(`no replay_end within ${REPLAY_TIMEOUT_MS} ms (${messages} messages so far)`)), REPLAY_TIMEOUT_MS);
    ws.on('message', (data: Buffer) => {
      if (subscribedAt === undefined) {
        // The greeting: auth and subscribe at once, as the load clients do; the replay starts on the subscribe.
        ws.send(JSON.stringify({ action: 'auth', key: 'bench', secret: 'bench' }));
        ws.send(JSON.stringify({ action: 'subscribe', trades: BROADCAST_SYMBOLS, quotes: BROADCAST_SYMBOLS }));
        subscribedAt = performance.now();
        return;
      }
      const n = countMsgpack(data);
      if (n === 1 && data.length < 1024) {
        const [message] = decodeMsgpack(data) as Record<string, unknown>[];
        if (message?.T === 'error') reject(new Error(`the replay answered ${JSON.stringify(message)}`));
        if (message?.T === 'gateway' && message.event === 'replay_end') {
          const seconds = (performance.now() - subscribedAt) / 1000;
          resolve({
            messages,
            frames,
            megabytes: Number((bytes / 1e6).toFixed(1)),
            seconds: Number(seconds.toFixed(3)),
            msgsPerSecond: Math.round(messages / seconds),
            firstDataMs: firstDataAt === undefined ? null : Number((firstDataAt - subscribedAt).toFixed(1)),
            notices,
          });
          return;
        }
        if (message?.T === 'gateway') {
          notices[String(message.event)] = (notices[String(message.event)] ?? 0) + 1;
          return;
        }
        if (CONTROL.has(message?.T)) return;
      }
      firstDataAt ??= performance.now();
      messages += n;
      frames += 1;
      bytes += data.length;
    });
    ws.once('error', reject);
    ws.once('close', (code) => reject(new Error(`the replay closed (${code}) before replay_end`)));
  }).finally(() => {
    clearTimeout(timer);
    ws.terminate();
  });
}

/** Seek times in ms: p50, p99, max over the samples, and the slowest few (with 50 samples p99 is the max). */
function seekFigures(ms: number[]): { p50Ms: number | null; p99Ms: number | null; maxMs: number; meanMs: number; slowestMs: number[]; samples: number } {
  const { p50, p99, samples } = percentiles(ms);
  return {
    p50Ms: p50,
    p99Ms: p99,
    maxMs: Number(Math.max(0, ...ms).toFixed(3)),
    meanMs: Number(mean(ms).toFixed(3)),
    slowestMs: [...ms].sort((a, b) => b - a).slice(0, 3).map((v) => Number(v.toFixed(1))),
    samples,
  };
}

/** Whether `dd iflag=nocache` (posix_fadvise DONTNEED over a whole file) runs here. */
function canDropPages(path: string): boolean {
  return spawnSync('dd', [`if=${path}`, 'iflag=nocache', 'count=0', 'status=none']).status === 0;
}

/** Asks the kernel to drop `path`'s pages from the page cache (clean pages only: the writer datasync'd them). */
function dropPages(path: string): void {
  const done = spawnSync('dd', [`if=${path}`, 'iflag=nocache', 'count=0', 'status=none']);
  if (done.status !== 0) throw new Error(`dd could not drop ${path} from the page cache: ${done.stderr.toString()}`);
}

/** Part 4: a synthetic tape, then seeks into it; the tape is deleted before this returns, whatever happens. */
async function seek(o: Options): Promise<Record<string, unknown>> {
  const root = mkdtempSync(join(tmpdir(), 'tickmux-bench-seek-'));
  const remove = (): void => rmSync(root, { recursive: true, force: true });
  process.on('exit', remove);
  try {
    const fs = await statfs(root);
    const free = fs.bavail * fs.bsize;
    const bytes = Math.max(0, Math.min(o.seekBytes, free - KEEP_FREE_BYTES));
    const note =
      bytes < o.seekBytes
        ? `asked for ${(o.seekBytes / GB).toFixed(2)} GB, wrote ${(bytes / GB).toFixed(2)} GB: ${(free / GB).toFixed(1)} GB free on ${tmpdir()} and ${KEEP_FREE_BYTES / GB} GB are left free`
        : undefined;
    if (o.seekBytes <= 0) return { requestedGb: 0, skipped: 'left out (--tape-seek-gb 0)' };
    if (bytes === 0) return { requestedGb: o.seekBytes / GB, skipped: note };
    // Ten minutes before an hour: a 10 GB tape (47 minutes at 1,000 frames/s) crosses it, so it rotates there as well as by size.
    const startNs = BigInt(Date.UTC(2026, 11, 7, 14, 50)) * 1_000_000n;
    const started = performance.now();
    const tape = await writeSyntheticTape({ dir: root, stream: STREAM, bytes, startNs });
    const writeSeconds = (performance.now() - started) / 1000;
    process.stderr.write(`tape seek: wrote ${tape.segments} segments, ${(tape.bytes / GB).toFixed(2)} GB in ${writeSeconds.toFixed(1)} s\n`);

    const segments = await listSegments(join(root, STREAM));
    const random = seededRandom(18);
    const span = Number(tape.lastNs - tape.firstNs);
    /** One timed seek to a random instant; whether its first record is the one due there. */
    const once = async (drop: boolean): Promise<{ ms: number; correct: boolean }> => {
      const ns = tape.firstNs + BigInt(Math.floor(random() * span));
      if (drop) {
        const segment = segments[segmentAt(segments, ns)] as SegmentFile;
        dropPages(segment.path);
        dropPages(segment.indexPath);
      }
      const t0 = performance.now();
      const cursor = await TapeCursor.open(root, STREAM, ns);
      const records = await cursor.next();
      const ms = performance.now() - t0;
      await cursor.close();
      // The first frame at or after `ns`, or the mark a nanosecond before it that opens its segment.
      const due = frameTime(tape, (ns - tape.firstNs + tape.frameNs - 1n) / tape.frameNs);
      const first = records[0];
      return { ms, correct: first !== undefined && (first.type === 'mark' ? first.ns + 1n === due && first.mark.event === 'segment' : first.ns === due) };
    };
    const warm: number[] = [];
    const cold: number[] = [];
    let correct = 0;
    for (let i = 0; i < o.seeks; i++) {
      const r = await once(false);
      warm.push(r.ms);
      if (r.correct) correct += 1;
    }
    const dropping = canDropPages(segments[0]?.path as string);
    if (dropping) {
      for (let i = 0; i < o.seeks; i++) {
        const r = await once(true);
        cold.push(r.ms);
        if (r.correct) correct += 1;
      }
    }
    const seeks = warm.length + cold.length;
    const warmFigures = seekFigures(warm);
    const coldFigures = dropping ? seekFigures(cold) : undefined;
    process.stderr.write(`tape seek: ${o.seeks} seeks p50 ${warmFigures.p50Ms} ms p99 ${warmFigures.p99Ms} ms max ${warmFigures.maxMs} ms; pages dropped first: ${coldFigures === undefined ? 'not possible here' : `p50 ${coldFigures.p50Ms} ms p99 ${coldFigures.p99Ms} ms max ${coldFigures.maxMs} ms`}\n`);
    return {
      requestedGb: o.seekBytes / GB,
      ...(note === undefined ? {} : { note }),
      tape: {
        gigabytes: Number((tape.bytes / GB).toFixed(3)),
        segments: tape.segments,
        segmentBytes: tape.segmentBytes,
        indexBytes: tape.indexBytes,
        frames: tape.frames,
        messagesPerFrame: tape.messagesPerFrame,
        frameBytes: tape.frameBytes,
        from: new Date(Number(tape.firstNs / 1_000_000n)).toISOString(),
        to: new Date(Number(tape.lastNs / 1_000_000n)).toISOString(),
        writeSeconds: Number(writeSeconds.toFixed(1)),
        writeMBps: Math.round(tape.bytes / 1e6 / writeSeconds),
      },
      seek: 'TapeCursor.open(dir, stream, random instant) + its first next(), timed together; each checked to start at the first record at or after the instant',
      pageCacheAsWritten: warmFigures,
      pagesDroppedFirst: coldFigures ?? { skipped: 'dd iflag=nocache did not run here' },
      pagesDroppedHow: "before each seek, `dd iflag=nocache count=0` (posix_fadvise DONTNEED) on the segment and index it reads; the tape was datasync'd, so its pages are clean and go; on a VM the host may still cache the disk",
      correct: `${correct} of ${seeks}`,
      target: '< 50 ms, every seek',
      met: { pageCacheAsWritten: correct === seeks && warmFigures.maxMs < 50, pagesDroppedFirst: coldFigures === undefined ? null : correct === seeks && coldFigures.maxMs < 50 },
    };
  } finally {
    remove();
    process.off('exit', remove);
  }
}

/** Runs the tape bench and prints its JSON; `--tape` on `npm run bench` lands here. */
export async function runTape(): Promise<void> {
  const o = options();
  const loadAverageAtStart = loadavg().map((l) => Number(l.toFixed(2)));
  const tapeDir = mkdtempSync(join(tmpdir(), 'tickmux-bench-tape-'));
  const removeTape = (): void => rmSync(tapeDir, { recursive: true, force: true });
  process.on('exit', removeTape);

  const simulator = node(['dist/src/cli.js', 'simulate', '--port', '0', '--rate', '0', '--max-buffer-mb', '1024'], { LOG_LEVEL: 'info' });
  const { base: vendorBase } = await jsonLine<{ base: string }>(simulator, (v) => v.msg === 'simulated vendor ready');
  const control = vendorBase.replace('ws://', 'http://');

  const limits = { APCA_API_SECRET_KEY: 'bench', CLIENT_MAX_BUFFER_BYTES: String(o.maxBufferBytes), CLIENT_HIGH_WATER_BYTES: String(o.highWaterBytes) };
  const profiled = (name: string): string[] => (o.profile === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', o.profile, '--cpu-prof-name', `${name}.cpuprofile`]);
  const fromMs = Date.now();
  // The simulator refuses a key already in use on a path (406): each gateway has its own.
  const [plain, recording] = await Promise.all([
    startGateway(vendorBase, { ...limits, APCA_API_KEY_ID: 'bench-plain' }, profiled('plain')),
    startGateway(vendorBase, { ...limits, APCA_API_KEY_ID: 'bench-recording', TAPE_DIR: tapeDir }, profiled('recording')),
  ]);

  const ramp = await throughput({ plain: plain.target, recording: recording.target }, control, o);
  await stopProcess(plain.process, 10_000);

  // More on the tape, so a replay at speed=max lasts long enough to time.
  const fill = o.fillMs > 0 ? await step(recording.target, control, o.fillRate, [stockGroup(1, [BROADCAST_SYMBOLS])], { warmupMs: 0, measureMs: o.fillMs }) : undefined;
  if (fill !== undefined) process.stderr.write(`tape fill: the vendor sent ${fill.streams?.[STREAM]?.vendorPerSecond}/s to one client for ${o.fillMs / 1000} s\n`);

  const metrics = await streamMetrics(recording.address);
  const vendorMessages = metrics.get('tickmux_upstream_messages_total') ?? 0;
  const vendorBytes = metrics.get('tickmux_upstream_bytes_total') ?? 0;

  const runs: ReplayRun[] = [];
  for (let i = 0; i < o.replays; i++) {
    const run = await replayOnce(recording.address, fromMs);
    runs.push(run);
    process.stderr.write(`tape replay ${i + 1}: ${run.messages} messages in ${run.seconds} s, ${run.msgsPerSecond}/s\n`);
  }
  const medianRun = [...runs].sort((a, b) => a.msgsPerSecond - b.msgsPerSecond)[Math.floor(runs.length / 2)] as ReplayRun;

  // Stopped, the gateway has written and closed its segments: their sizes are final.
  await stopProcess(recording.process, 10_000);
  await stopProcess(simulator, 10_000);
  const segments = await listSegments(join(tapeDir, STREAM));
  let segmentBytes = 0;
  let indexBytes = 0;
  for (const segment of segments) {
    segmentBytes += (await fileSize(segment.path)) ?? 0;
    indexBytes += (await fileSize(segment.indexPath)) ?? 0;
  }
  removeTape();
  process.off('exit', removeTape);

  const seekResult = await seek(o);
  const bytesRatio = ratio(segmentBytes, vendorBytes);
  const out = {
    machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version, loadAverageAtStart, loadAverageAtEnd: loadavg().map((l) => Number(l.toFixed(2))) },
    clients: o.clients,
    measureSeconds: o.timing.measureMs / 1000,
    method:
      'separate processes on 127.0.0.1: simulator → a gateway without TAPE_DIR and one with (side by side, the other idle during each step) → one load process of N msgpack clients all on trades and quotes of 20 symbols; delivered = messages counted from frame headers over the window; then the recording gateway alone: one client at the fill rate, replays to one raw msgpack client, the tape measured once the gateway stopped; then a synthetic tape for the seeks',
    tape: {
      stream: STREAM,
      throughput: {
        symbols: BROADCAST_SYMBOLS.length,
        ...ramp,
        target: 'recording ≥ 0.9 × without, delivered msgs/s',
        met: ramp.steps.every((s) => (s.ratio.delivered ?? 0) >= 0.9),
      },
      recorded: {
        fill: fill === undefined ? null : { vendorRate: o.fillRate, seconds: o.fillMs / 1000, vendorSentPerSecond: fill.streams?.[STREAM]?.vendorPerSecond ?? null, cpuPercent: fill.cpuPercent },
        vendorMessages,
        vendorBytes,
        tapeMessages: metrics.get('tickmux_tape_messages_total') ?? null,
        tapeDroppedMessages: metrics.get('tickmux_tape_dropped_messages_total') ?? null,
        tapeGaps: metrics.get('tickmux_tape_gaps_total') ?? null,
      },
      replay: {
        source: 'from disk (page cache warm: the segments were written seconds before and not dropped)',
        request: `/replay/${STREAM}?from=<the recording gateway's start, Unix ms>&speed=max&events=1, one msgpack client on trades and quotes of the ${BROADCAST_SYMBOLS.length} symbols`,
        runs,
        msgsPerSecond: medianRun.msgsPerSecond,
        complete: runs.every((r) => r.messages === vendorMessages),
        target: '≥ 1,000,000 msgs/s (median run)',
        met: medianRun.msgsPerSecond >= 1_000_000,
      },
      bytes: {
        segments: segments.length,
        segmentBytes,
        indexBytes,
        vendorBytes,
        ratio: bytesRatio,
        ratioWithIndexes: ratio(segmentBytes + indexBytes, vendorBytes),
        tapeBytesPerMessage: vendorMessages === 0 ? null : Number((segmentBytes / vendorMessages).toFixed(1)),
        vendorBytesPerMessage: vendorMessages === 0 ? null : Number((vendorBytes / vendorMessages).toFixed(1)),
        target: 'segment bytes ≤ 1.15 × the vendor’s bytes',
        met: bytesRatio !== null && bytesRatio <= 1.15,
      },
      seek: seekResult,
    },
  };
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
}
