/**
 * The recorder and the files it writes (DESIGN.md §12), on a fake clock and a real disk: records
 * read back in order with their receive times, a seek lands on the right record, segments rotate
 * by size and by the hour with a segment mark and the books first, a torn tail is cut at start, and
 * a failing or slow disk costs the tape a gap — never the caller — and recording resumes by itself.
 */
import { appendFile, readFile, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { encodeFrame, encodeUnits, type Encoding } from '../../src/protocol/frame.js';
import { CRYPTO, STOCKS, type StreamKind } from '../../src/protocol/streams.js';
import { Timestamp } from '../../src/protocol/timestamp.js';
import type { TapeRecord } from '../../src/tape/record.js';
import { INDEX_ENTRY_BYTES, listSegments } from '../../src/tape/segment-files.js';
import { StreamRecorder, type StreamRecorderOptions } from '../../src/tape/stream-recorder.js';
import { Tape } from '../../src/tape/tape.js';
import { TapeCursor } from '../../src/tape/tape-cursor.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { flakyDisk } from '../helpers/flaky-disk.js';
import { captureLogs } from '../helpers/log-capture.js';
import { eventually } from '../helpers/wait.js';

const HOUR = 3_600_000;
const START = Date.UTC(2026, 11, 7, 14, 10); // ten past the hour

function tradeFrame(n: number, encoding: Encoding = 'msgpack'): Buffer {
  return encodeFrame([{ T: 't', S: n % 2 === 0 ? 'AAPL' : 'MSFT', i: 9007199254740993n + BigInt(n), x: 'V', p: 100 + n / 8, s: n, c: ['@'], t: new Timestamp(1765031400 + n, n), z: 'C' }], encoding);
}

interface Fixture {
  dir: string;
  clock: FakeClock;
  recorder: StreamRecorder;
  logs: () => string[];
}

async function recorder(t: Test, options: Partial<StreamRecorderOptions> = {}, dir = t.testdir(), clock = new FakeClock(START)): Promise<Fixture> {
  const { logger, lines } = captureLogs('info');
  const kind: StreamKind = options.kind ?? STOCKS;
  const r = new StreamRecorder({ dir: join(dir, 'v2/iex'), stream: 'v2/iex', kind, segmentBytes: 256 * 1024 * 1024, fsyncMs: 200, queueBytes: 64 * 1024 * 1024, clock, logger, ...options });
  t.teardown(() => r.stop());
  await r.start();
  return { dir, clock, recorder: r, logs: lines };
}

async function readAll(dir: string, stream = 'v2/iex', fromNs = 0n): Promise<TapeRecord[]> {
  const cursor = await TapeCursor.open(dir, stream, fromNs);
  const out: TapeRecord[] = [];
  try {
    for (let records = await cursor.next(); records.length > 0; records = await cursor.next()) out.push(...records);
  } finally {
    await cursor.close();
  }
  return out;
}

const frames = (records: readonly TapeRecord[]): Buffer[] => records.flatMap((r) => (r.type === 'frame' ? [Buffer.from(r.bytes)] : []));
const marks = (records: readonly TapeRecord[]): string[] => records.flatMap((r) => (r.type === 'mark' ? [r.mark.event] : []));
const ms = (n: bigint): number => Number(n / 1_000_000n);

t.test('frames read back byte for byte in order with their receive times; a seek lands on the first record at or after the instant', async (t) => {
  const { dir, clock, recorder: r } = await recorder(t);
  const sent: { ns: bigint; bytes: Buffer }[] = [];
  for (let n = 0; n < 3000; n++) {
    clock.advance(1);
    const bytes = tradeFrame(n);
    r.frame(bytes, 'msgpack', 1);
    sent.push({ ns: clock.nanos(), bytes });
  }
  await r.flushed();
  const records = await readAll(dir);
  t.same(marks(records), ['segment'], 'a segment mark first');
  const got = records.filter((x) => x.type === 'frame');
  t.equal(got.length, sent.length);
  t.ok(got.every((x, i) => x.type === 'frame' && x.ns === sent[i]!.ns && x.bytes.equals(sent[i]!.bytes)), 'every frame, its bytes and receive time exact');
  const [segment] = await listSegments(join(dir, 'v2/iex'));
  const index = await readFile(segment!.indexPath);
  t.ok(index.length / INDEX_ENTRY_BYTES >= 4, 'a sparse index: an entry every 64 KiB of records (and one per mark)');
  for (const k of [0, 1, 777, 1500, 2998, 2999]) {
    const at = sent[k]!.ns - 1n; // just before frame k
    const [first] = (await readAll(dir, 'v2/iex', at)).filter((x) => x.type === 'frame');
    t.equal(first?.ns, sent[k]!.ns, `a seek to just before frame ${k} starts at frame ${k}`);
  }
  t.same(await readAll(dir, 'v2/iex', sent.at(-1)!.ns + 1n), [], 'a seek past the end reads nothing');
});

t.test('segments rotate at TAPE_SEGMENT_BYTES and at each hour, each starting with its segment mark and the books as they are', async (t) => {
  const { dir, clock, recorder: r } = await recorder(t, { segmentBytes: 16 * 1024, kind: CRYPTO });
  const [reset] = encodeUnits([{ T: 'o', S: 'BTC/USD', t: new Timestamp(1765031400, 5), b: [{ p: 100, s: 1 }], a: [{ p: 101, s: 2 }], r: true }], 'msgpack', CRYPTO);
  r.books([reset!]);
  for (let n = 0; n < 400; n++) r.frame(tradeFrame(n), 'msgpack', 1);
  clock.advance(HOUR); // past the hour: the next frame opens a new segment
  r.frame(tradeFrame(400), 'msgpack', 1);
  await r.flushed();
  const segments = await listSegments(join(dir, 'v2/iex'));
  t.ok(segments.length >= 3, `${segments.length} segments`);
  for (const segment of segments.slice(0, -2)) t.ok((await stat(segment.path)).size <= 16 * 1024 + 200, 'a segment stops growing once past the size');
  t.equal(new Date(Number(segments.at(-1)!.startNs / 1_000_000n)).getUTCHours(), 15, 'the last segment starts in the next hour');
  const records = await readAll(dir);
  const starts = records.filter((x) => x.type === 'mark' && x.mark.event === 'segment');
  t.equal(starts.length, segments.length, 'each segment starts with a segment mark');
  const checkpoints = records.filter((x) => x.type === 'checkpoint');
  t.equal(checkpoints.length, segments.length - 1, 'and, once a book is known, a checkpoint of the books (the first segment opened before it)');
  t.ok(checkpoints.every((x) => x.type === 'checkpoint' && x.bytes.includes(Buffer.from('BTC/USD'))), 'holding the BTC/USD book');
  t.equal(frames(records).length, 401, 'no frame lost across rotations');
});

t.test('a torn tail is truncated at start with a log line; recording goes on in a new segment after a gap mark', async (t) => {
  const dir = t.testdir();
  const first = await recorder(t, {}, dir);
  for (let n = 0; n < 50; n++) first.recorder.frame(tradeFrame(n), 'msgpack', 1);
  await first.recorder.flushed();
  const [segment] = await listSegments(join(dir, 'v2/iex'));
  const whole = (await stat(segment!.path)).size;
  // What kill -9 in the middle of a write leaves: half a record, and an index without its end entry.
  const torn = Buffer.alloc(30);
  torn.writeUInt32LE(500, 0);
  await appendFile(segment!.path, torn);
  const index = await stat(segment!.indexPath);
  await truncate(segment!.indexPath, index.size); // no end entry was written (the recorder never stopped)

  const clock = new FakeClock(START + 5000);
  const second = await recorder(t, {}, dir, clock);
  t.equal(second.recorder.stats.truncatedTails, 1);
  t.ok(second.logs().some((l) => l.includes('torn tail truncated') && l.includes('"truncatedBytes":30')), 'logged, with what was cut');
  t.equal((await stat(segment!.path)).size, whole, 'cut back to the last whole record');
  second.recorder.frame(tradeFrame(50), 'msgpack', 1);
  await second.recorder.flushed();
  const records = await readAll(dir);
  t.equal(frames(records).length, 51, 'every whole record kept, and recording continues');
  t.same(marks(records), ['segment', 'segment', 'tape_gap'], 'the new segment says the recorder was not running');
  const gap = records.find((x) => x.type === 'mark' && x.mark.event === 'tape_gap');
  t.match(gap, { mark: { reason: /recorder not running/ } });
});

t.test('a disk that refuses writes: frames go into one gap, the recorder says degraded, and it resumes by itself when the disk allows', async (t) => {
  const disk = flakyDisk();
  const { dir, clock, recorder: r } = await recorder(t, { files: disk.files, retryMs: 1000 });
  for (let n = 0; n < 10; n++) r.frame(tradeFrame(n), 'msgpack', 1);
  await r.flushed();
  disk.fail(true);
  for (let n = 10; n < 30; n++) r.frame(tradeFrame(n), 'msgpack', 1);
  await r.flushed();
  t.equal(r.state, 'degraded');
  t.match(r.reason, /ENOSPC/);
  clock.advance(1000); // a retry while the disk still refuses
  await eventually(() => r.stats.writeErrors >= 2 || r.state !== 'degraded', 'the retry');
  t.equal(r.state, 'degraded', 'still degraded while the disk refuses');
  for (let n = 30; n < 40; n++) r.frame(tradeFrame(n), 'msgpack', 1);
  disk.fail(false);
  clock.advance(1000);
  await eventually(() => r.state === 'recording', 'recording again');
  for (let n = 40; n < 50; n++) r.frame(tradeFrame(n), 'msgpack', 1);
  await r.flushed();
  const records = await readAll(dir);
  const kept = frames(records);
  t.equal(kept.length, 20, 'the frames before the failure and after the recovery');
  t.ok(kept.slice(0, 10).every((b, i) => b.equals(tradeFrame(i))) && kept.slice(10).every((b, i) => b.equals(tradeFrame(40 + i))), 'in order, untouched');
  const gaps = records.filter((x) => x.type === 'mark' && x.mark.event === 'tape_gap');
  t.equal(gaps.length, 1, 'one gap for the whole outage');
  t.match(gaps[0], { mark: { messages: 30, reason: /write failed: ENOSPC/ } });
  t.equal(r.stats.droppedMessages, 30);
});

t.test('a disk too slow for the queue: what does not fit is dropped into a gap, frame() never waits, and the queue drains by itself', async (t) => {
  const disk = flakyDisk();
  const { dir, recorder: r } = await recorder(t, { files: disk.files, queueBytes: 4096 });
  const release = disk.hold();
  let accepted = 0;
  for (let n = 0; n < 200; n++) r.frame(tradeFrame(n), 'msgpack', 1);
  accepted = 200 - r.stats.droppedMessages;
  t.ok(r.queuedBytes <= 4096, `the queue holds ${r.queuedBytes} bytes, within its bound`);
  t.equal(r.state, 'degraded', 'degraded while frames are dropped');
  t.ok(accepted > 0 && accepted < 200, `${accepted} frames queued, the rest dropped`);
  release();
  await r.flushed();
  r.frame(tradeFrame(200), 'msgpack', 1); // room again: the gap closes before this frame
  await r.flushed();
  t.equal(r.state, 'recording');
  const records = await readAll(dir);
  t.equal(frames(records).length, accepted + 1);
  t.match(
    records.find((x) => x.type === 'mark' && x.mark.event === 'tape_gap'),
    { mark: { messages: 200 - accepted, reason: /write queue full/ } },
  );
});

t.test('retention deletes the oldest whole segments — older than TAPE_RETENTION_HOURS, then past TAPE_MAX_BYTES — and nothing else', async (t) => {
  const dir = t.testdir({ 'README.txt': 'not a segment', 'v2/iex': { 'notes.txt': 'not a segment either' } });
  const clock = new FakeClock(START);
  const { logger } = captureLogs('silent');
  // Retention starts long (the minute sweeps during the fake hours keep everything), then is cut to 2 h.
  const config = { dir, segmentBytes: 256 * 1024 * 1024, fsyncMs: 86_400_000, retentionHours: 1000, maxBytes: 0, queueBytes: 1 << 20, replayMaxSessions: 1 };
  const tape = new Tape({ config, streams: [{ path: 'v2/iex', kind: STOCKS }], clock, logger });
  t.teardown(() => tape.stop());
  await tape.start();
  const r = tape.recorder('v2/iex')!;
  for (let h = 0; h < 5; h++) {
    r.frame(tradeFrame(h), 'msgpack', 1);
    await r.flushed();
    if (h < 4) clock.advance(HOUR);
  }
  const before = await listSegments(join(dir, 'v2/iex'));
  t.equal(before.length, 5, 'one segment per hour');
  (tape.config as { retentionHours: number }).retentionHours = 2;
  await tape.sweep();
  const after = await listSegments(join(dir, 'v2/iex'));
  // now = start + 4 h; a segment ends where the next begins: those that ended before now − 2 h go.
  const cutoff = BigInt(clock.now() - 2 * HOUR) * 1_000_000n;
  const expected = before.filter((s, i) => (before[i + 1]?.startNs ?? BigInt(Number.MAX_SAFE_INTEGER) * 1_000_000n) >= cutoff);
  t.same(after.map((s) => s.path), expected.map((s) => s.path), 'the expired segments are gone, the rest kept');
  t.ok(after.length < before.length, `${before.length - after.length} deleted`);

  const sizes = await Promise.all(after.map(async (s) => (await stat(s.path)).size));
  (tape.config as { maxBytes: number }).maxBytes = sizes.reduce((a, b) => a + b, 0) - 1; // one byte too many
  await tape.sweep();
  const capped = await listSegments(join(dir, 'v2/iex'));
  t.same(capped.map((s) => s.path), after.slice(1).map((s) => s.path), 'over TAPE_MAX_BYTES: the oldest goes, the open one never');
  t.equal(await readFile(join(dir, 'README.txt'), 'utf8'), 'not a segment');
  t.equal(await readFile(join(dir, 'v2/iex/notes.txt'), 'utf8'), 'not a segment either', 'other files untouched');
  t.equal(tape.deletedSegments, before.length - capped.length);
  const records = await readAll(dir);
  t.equal(frames(records).at(-1)?.equals(tradeFrame(4)), true, 'the newest frame is still there');
  await writeFile(join(dir, 'v2/iex/ignored.tape'), 'not named like a segment'); // ignored by every reader
  t.equal((await listSegments(join(dir, 'v2/iex'))).length, capped.length);
  t.ok(ms(capped[0]!.startNs) >= START, 'sanity: times are the fake clock’s');
});
