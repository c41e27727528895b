/**
 * The tape's record format (DESIGN.md §12). A segment file is a magic header followed by records,
 * each framed by its length and a CRC-32 of its body, so a reader knows where every record ends
 * and a torn or damaged tail is found, never misread:
 *
 *   u32 LE body length · u32 LE CRC-32 of the body · body
 *   body: u8 type · u64 LE receive time (ns since the epoch) · payload
 *
 * Frames are the vendor's bytes untouched (type says the encoding); marks are small JSON objects;
 * a book checkpoint is a frame of order-book resets (the books as of that record), read to start a
 * replay's books and never sent as recorded data.
 */
import { crc32 } from 'node:zlib';
import { ProtocolError } from '../errors.js';
import { isControlType } from '../protocol/channels.js';
import { type Encoding, type MessageUnit, splitFrame } from '../protocol/frame.js';
import { STOCKS, type StreamKind } from '../protocol/streams.js';

/** The first bytes of every segment file (format version 1). */
export const SEGMENT_MAGIC = Buffer.from('TMXTAPE1');

/** Bytes before a record's payload: length, CRC, type, receive time. */
export const RECORD_OVERHEAD = 17;

/** A record body larger than this is damage, not data (the vendor's largest frames are news items). */
export const MAX_RECORD_BYTES = 64 * 1024 * 1024;

export const RECORD_TYPES = {
  frameJson: 1,
  frameMsgpack: 2,
  mark: 3,
  checkpointJson: 4,
  checkpointMsgpack: 5,
} as const;

export type RecordType = (typeof RECORD_TYPES)[keyof typeof RECORD_TYPES];

/** Marks the tape holds beside the vendor's frames. */
export type Mark =
  /** the first record of every segment: what a reader needs to start there */
  | { event: 'segment'; stream: string; kind: string; session: string | null; live: boolean; version: number }
  /** the vendor link became live: frames from here on belong to `session` */
  | { event: 'upstream_up'; session: string }
  /** the vendor link left live */
  | { event: 'upstream_down'; state: string; reason: string | null }
  /** the set the vendor holds changed: its lists per channel, as its `subscription` reply had them */
  | { event: 'subscriptions'; set: Readonly<Record<string, readonly string[]>> }
  /** the recorder kept nothing from `from` to `to` (ns since the epoch, as text) */
  | { event: 'tape_gap'; from: string; to: string; reason: string; messages: number };

/** One record as a reader sees it. */
export type TapeRecord =
  | { readonly type: 'frame'; readonly ns: bigint; readonly encoding: Encoding; readonly bytes: Buffer; readonly offset: number }
  | { readonly type: 'checkpoint'; readonly ns: bigint; readonly encoding: Encoding; readonly bytes: Buffer; readonly offset: number }
  | { readonly type: 'mark'; readonly ns: bigint; readonly mark: Mark; readonly offset: number };

/** The record type of a frame in `encoding`. */
export function frameType(encoding: Encoding, checkpoint = false): RecordType {
  if (checkpoint) return encoding === 'json' ? RECORD_TYPES.checkpointJson : RECORD_TYPES.checkpointMsgpack;
  return encoding === 'json' ? RECORD_TYPES.frameJson : RECORD_TYPES.frameMsgpack;
}

/**
 * The 17 bytes that go before `payload` on disk. The CRC covers type, time and payload, computed
 * over the header's tail and the payload without copying the payload.
 */
export function recordHeader(type: RecordType, ns: bigint, payload: Buffer): Buffer {
  const header = Buffer.allocUnsafe(RECORD_OVERHEAD);
  header.writeUInt32LE(9 + payload.length, 0);
  header.writeUInt8(type, 8);
  header.writeBigUInt64LE(ns, 9);
  header.writeUInt32LE(crc32(payload, crc32(header.subarray(8, RECORD_OVERHEAD))), 4);
  return header;
}

/** A whole record (header and payload) in one buffer, for small records: marks, tests. */
export function encodeRecord(type: RecordType, ns: bigint, payload: Buffer): Buffer {
  return Buffer.concat([recordHeader(type, ns, payload), payload]);
}

/** A mark as a record. */
export function encodeMark(ns: bigint, mark: Mark): Buffer {
  return encodeRecord(RECORD_TYPES.mark, ns, Buffer.from(JSON.stringify(mark)));
}

/** What `readRecord` finds at an offset. */
export type ReadResult =
  | { readonly status: 'record'; readonly record: TapeRecord; readonly end: number }
  /** the buffer ends inside the record: read more (or, at the file's end, a torn tail) */
  | { readonly status: 'short'; readonly need: number }
  /** the bytes there are no record: a wrong length, type or checksum */
  | { readonly status: 'damaged'; readonly reason: string };

/**
 * Reads the record at `pos` of `buf`, whose first byte is at file offset `base`. The record's
 * bytes are a view of `buf` (no copy): a caller that keeps them past the buffer's life copies.
 */
export function readRecord(buf: Buffer, pos: number, base = 0): ReadResult {
  if (buf.length - pos < RECORD_OVERHEAD) return { status: 'short', need: RECORD_OVERHEAD };
  const length = buf.readUInt32LE(pos);
  if (length < 9 || length > MAX_RECORD_BYTES) return { status: 'damaged', reason: `record length ${length}` };
  const end = pos + 8 + length;
  if (end > buf.length) return { status: 'short', need: 8 + length };
  const body = buf.subarray(pos + 8, end);
  if (crc32(body) !== buf.readUInt32LE(pos + 4)) return { status: 'damaged', reason: 'checksum mismatch' };
  const type = body.readUInt8(0);
  const ns = body.readBigUInt64LE(1);
  const payload = body.subarray(9);
  const offset = base + pos;
  switch (type) {
    case RECORD_TYPES.frameJson:
    case RECORD_TYPES.frameMsgpack:
      return { status: 'record', end, record: { type: 'frame', ns, encoding: type === RECORD_TYPES.frameJson ? 'json' : 'msgpack', bytes: payload, offset } };
    case RECORD_TYPES.checkpointJson:
    case RECORD_TYPES.checkpointMsgpack:
      return { status: 'record', end, record: { type: 'checkpoint', ns, encoding: type === RECORD_TYPES.checkpointJson ? 'json' : 'msgpack', bytes: payload, offset } };
    case RECORD_TYPES.mark: {
      let mark: Mark;
      try {
        mark = JSON.parse(payload.toString('utf8')) as Mark;
      } catch (err) {
        if (err instanceof SyntaxError) return { status: 'damaged', reason: 'mark is not JSON' };
        throw err;
      }
      return { status: 'record', end, record: { type: 'mark', ns, mark, offset } };
    }
    default:
      return { status: 'damaged', reason: `record type ${type}` };
  }
}

/**
 * The data messages of a recorded frame or checkpoint (a frame's control messages — greetings,
 * replies — are the link's, not a client's); none for a mark.
 */
export function dataUnits(record: TapeRecord, kind: StreamKind): MessageUnit[] {
  if (record.type === 'mark') return [];
  try {
    const units = splitFrame(record.bytes, record.encoding, kind);
    // Control messages come alone in a frame: a data frame is kept as it was split.
    return units.some((unit) => isControlType(unit.type)) ? units.filter((unit) => !isControlType(unit.type)) : units;
  } catch (err) {
    if (err instanceof ProtocolError) return []; // recorded as the vendor sent it; the live link skipped it too
    throw err;
  }
}

/** How many data messages a record counts for: a frame's (a checkpoint repeats the books, a mark has none). */
export function dataMessagesOf(record: TapeRecord): number {
  return record.type === 'frame' ? dataUnits(record, STOCKS).length : 0;
}
