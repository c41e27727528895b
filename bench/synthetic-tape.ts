/**
 * A synthetic tape for the seek bench (bench/tape.ts): one stream's segment files in the real
 * format (src/tape/record.ts, src/tape/segment-files.ts), written directly in large sequential
 * writes — StreamRecorder, a frame at a time, would take far too long to fill 10 GB. Each segment
 * holds what StreamRecorder writes for a stock stream: the magic, a `segment` mark (indexed as a
 * mark), frame records, a time-index entry every INDEX_INTERVAL_BYTES of records and an `end`
 * entry on close; segments rotate at `segmentBytes` and at each UTC hour. The frames are realistic
 * (the simulator's trades and quotes, 50 to a frame, msgpack), built once and reused with receive
 * times one `frameNs` apart (a segment's mark a nanosecond before its first frame, every record's
 * time its own), so a reader can tell which record a seek must find.
 */
import { mkdir, open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { ChannelSet } from '../src/protocol/channel-set.js';
import { encodeFrame } from '../src/protocol/frame.js';
import { STOCKS } from '../src/protocol/streams.js';
import { Timestamp } from '../src/protocol/timestamp.js';
import { seededRandom } from '../src/random.js';
import { DEFAULT_TRADE_ID_BASE, StockMarket } from '../src/simulator/market.js';
import { encodeMark, frameType, RECORD_OVERHEAD, recordHeader, SEGMENT_MAGIC } from '../src/tape/record.js';
import { encodeIndexEntry, INDEX_INTERVAL_BYTES, INDEX_KINDS, INDEX_SUFFIX, SEGMENT_SUFFIX, segmentStem } from '../src/tape/segment-files.js';

const HOUR_NS = 3_600_000_000_000n;
/** One write's worth of records. */
const WRITE_BYTES = 64 * 1024 * 1024;
const MESSAGES_PER_FRAME = 50;
/** Distinct frames, cycled. */
const FRAMES = 16;

export interface SyntheticTapeOptions {
  /** TAPE_DIR: the segments go to `dir/{stream}` */
  readonly dir: string;
  readonly stream: string;
  /** about this many bytes of segments in all */
  readonly bytes: number;
  /** TAPE_SEGMENT_BYTES (default 256 MiB, the gateway's) */
  readonly segmentBytes?: number;
  /** the first record's receive time */
  readonly startNs: bigint;
  /** between two frames' receive times (default 1 ms: 50,000 messages/s) */
  readonly frameNs?: bigint;
}

export interface SyntheticTape {
  readonly segments: number;
  /** where segments rotate by size */
  readonly segmentBytes: number;
  /** segment bytes written (indexes not included) */
  readonly bytes: number;
  readonly indexBytes: number;
  readonly frames: number;
  readonly messagesPerFrame: number;
  readonly frameBytes: number;
  readonly firstNs: bigint;
  readonly lastNs: bigint;
  readonly frameNs: bigint;
}

/** The receive time of frame `i`. */
export function frameTime(tape: Pick<SyntheticTape, 'firstNs' | 'frameNs'>, i: bigint): bigint {
  return tape.firstNs + i * tape.frameNs;
}

/** `FRAMES` msgpack frames of 50 trades and quotes on the 20 broadcast symbols, as the simulator sends them. */
function sampleFrames(startNs: bigint): Buffer[] {
  const symbols = Array.from({ length: 20 }, (_, i) => `B${String(i).padStart(2, '0')}`);
  const market = new StockMarket(seededRandom(18), { universe: symbols, tradeIdBase: DEFAULT_TRADE_ID_BASE, correctionRate: 0 });
  const held = new ChannelSet({ trades: symbols, quotes: symbols });
  return Array.from({ length: FRAMES }, (_, i) => encodeFrame(market.flow(held, MESSAGES_PER_FRAME, Timestamp.fromEpochNanos(startNs + BigInt(i) * 1000n)), 'msgpack', STOCKS));
}

/** A segment being written: its files, where its records stand, its index entries. */
interface Segment {
  readonly handle: FileHandle;
  readonly indexPath: string;
  readonly hour: bigint;
  /** the next record's offset */
  offset: number;
  messages: number;
  lastIndexedAt: number;
  lastNs: bigint;
  index: Buffer[];
}

/** Writes the tape; resolves once every segment and index is on disk (datasync'd, so its pages can leave the cache). */
export async function writeSyntheticTape(options: SyntheticTapeOptions): Promise<SyntheticTape> {
  const folder = join(options.dir, options.stream);
  await mkdir(folder, { recursive: true });
  const segmentBytes = options.segmentBytes ?? 268_435_456;
  const frameNs = options.frameNs ?? 1_000_000n;
  const frames = sampleFrames(options.startNs);
  const frameBytes = Math.round(frames.reduce((sum, f) => sum + f.length, 0) / frames.length);
  const chunk = Buffer.allocUnsafe(WRITE_BYTES);
  let used = 0;
  let segment: Segment | undefined;
  let segments = 0;
  let total = 0;
  let indexBytes = 0;
  let written = 0n;

  const flush = async (): Promise<void> => {
    if (used === 0 || segment === undefined) return;
    await segment.handle.write(chunk, 0, used);
    used = 0;
  };
  /** A record, as StreamRecorder's `#appendRecord`: a time entry only past an interval, a mark's always (the caller makes room for it first). */
  const append = (header: Buffer, payload: Buffer, ns: bigint, messages: number, sparse: boolean): void => {
    const s = segment as Segment;
    if (!sparse || s.offset - s.lastIndexedAt >= INDEX_INTERVAL_BYTES || s.lastIndexedAt === 0) {
      s.index.push(encodeIndexEntry({ ns, offset: s.offset, messages: s.messages, kind: sparse ? INDEX_KINDS.time : INDEX_KINDS.mark }));
      s.lastIndexedAt = s.offset;
    }
    used += header.copy(chunk, used);
    used += payload.copy(chunk, used);
    s.offset += header.length + payload.length;
    s.messages += messages;
    s.lastNs = ns;
  };
  const close = async (): Promise<void> => {
    const s = segment;
    if (s === undefined) return;
    await flush();
    s.index.push(encodeIndexEntry({ ns: s.lastNs, offset: s.offset, messages: s.messages, kind: INDEX_KINDS.end }));
    const index = await open(s.indexPath, 'w');
    try {
      const bytes = Buffer.concat(s.index);
      await index.write(bytes);
      await index.datasync();
      indexBytes += bytes.length;
    } finally {
      await index.close();
    }
    await s.handle.datasync();
    await s.handle.close();
    total += s.offset;
    segment = undefined;
  };
  const openAt = async (ns: bigint): Promise<void> => {
    await close();
    const stem = segmentStem(ns);
    segment = { handle: await open(join(folder, stem + SEGMENT_SUFFIX), 'w'), indexPath: join(folder, stem + INDEX_SUFFIX), hour: ns / HOUR_NS, offset: 0, messages: 0, lastIndexedAt: 0, lastNs: ns, index: [] };
    segments += 1;
    used += SEGMENT_MAGIC.copy(chunk, used); // the previous segment's close emptied the buffer
    segment.offset = SEGMENT_MAGIC.length;
    const mark = encodeMark(ns, { event: 'segment', stream: options.stream, kind: STOCKS.name, session: String(options.startNs), live: true, version: 1 });
    append(mark.subarray(0, RECORD_OVERHEAD), mark.subarray(RECORD_OVERHEAD), ns, 0, false);
  };

  try {
    const type = frameType('msgpack');
    for (let i = 0n; total + (segment?.offset ?? 0) < options.bytes; i++) {
      const ns = options.startNs + i * frameNs;
      // As the recorder rotates: the segment's mark goes first, a nanosecond before the frame.
      if (segment === undefined || segment.offset >= segmentBytes || ns / HOUR_NS !== segment.hour) await openAt(ns - 1n);
      const payload = frames[Number(i % BigInt(FRAMES))] as Buffer;
      if (used + RECORD_OVERHEAD + payload.length > chunk.length) await flush();
      append(recordHeader(type, ns, payload), payload, ns, MESSAGES_PER_FRAME, true);
      written = i + 1n;
    }
    await close();
  } finally {
    await segment?.handle.close();
  }
  return {
    segments,
    segmentBytes,
    bytes: total,
    indexBytes,
    frames: Number(written),
    messagesPerFrame: MESSAGES_PER_FRAME,
    frameBytes,
    firstNs: options.startNs,
    lastNs: options.startNs + (written - 1n) * frameNs,
    frameNs,
  };
}
