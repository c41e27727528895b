/**
 * The relay's repair exchange (DESIGN.md §10, issue #19): a follower that sees a gap in a data
 * subject's sequence asks the owner, on `<cluster>.owner.<stream>.repair`, for the missing span;
 * the owner answers from its `RelayHistory`.
 *
 * Request (JSON): `{"v":1,"subject":<data subject>,"epoch":<uint32>,"from":<seq>,"to":<seq>}`,
 * `1 ≤ from ≤ to < 2^53`. Anything else gets `{"error":…}` (counted as malformed by the owner).
 *
 * Answer (binary, every number big-endian):
 *
 *   byte 0      format version (1)
 *   byte 1      flags: bit 0 `more` — the owner stopped at its size bound: ask again from after
 *               the last envelope
 *   bytes 2–9   goneThrough: the span's leading part the owner no longer has ends here
 *               (`from − 1`: none of it is gone; `to`: all of it is — evicted, or of another term)
 *   then        per envelope: 4 bytes of length, the envelope exactly as published (`envelope.ts`),
 *               consecutive from `goneThrough + 1`
 *
 * Without `more`, whatever of the span the answer does not reach is gone too.
 */
import { TickmuxError } from '../errors.js';
import type { HistorySpan } from './relay-history.js';

export const REPAIR_FORMAT = 1;
const HEADER_BYTES = 10;

/**
 * At most this many envelope bytes in one answer (nats-server's default max_payload is 1 MiB);
 * a longer span takes several rounds, each one moving on.
 */
export const REPAIR_ANSWER_BYTES = 512 * 1024;

/** A repair request or answer that is not one this node can read. */
export class RepairError extends TickmuxError {
  constructor(message: string) {
    super('ERR_CLUSTER_REPAIR', message);
  }
}

export interface RepairRequest {
  readonly subject: string;
  readonly epoch: number;
  readonly from: number;
  readonly to: number;
}

export function encodeRepairRequest(request: RepairRequest): string {
  return JSON.stringify({ v: REPAIR_FORMAT, subject: request.subject, epoch: request.epoch, from: request.from, to: request.to });
}

/**
 * A request's fields, checked; `isDataSubject` says whether the subject is one of this stream's.
 * @throws RepairError for anything else
 */
export function parseRepairRequest(value: Record<string, unknown>, isDataSubject: (subject: string) => boolean): RepairRequest {
  const { v, subject, epoch, from, to } = value;
  if (v !== REPAIR_FORMAT) throw new RepairError(`repair request format ${JSON.stringify(v)?.slice(0, 20)} (this node reads ${REPAIR_FORMAT})`);
  if (typeof subject !== 'string' || subject.length > 1024 || !isDataSubject(subject)) throw new RepairError('repair request names no data subject of this stream');
  if (!Number.isInteger(epoch) || (epoch as number) < 0 || (epoch as number) > 0xffff_ffff) throw new RepairError('repair request epoch is not a uint32');
  if (!isSeq(from) || !isSeq(to) || from > to) throw new RepairError('repair request span is not 1 ≤ from ≤ to < 2^53');
  return { subject, epoch: epoch as number, from, to };
}

function isSeq(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 1;
}

export function encodeRepairAnswer(span: HistorySpan): Buffer {
  let length = HEADER_BYTES;
  for (const envelope of span.envelopes) length += 4 + envelope.length;
  const out = Buffer.allocUnsafe(length);
  out[0] = REPAIR_FORMAT;
  out[1] = span.more ? 1 : 0;
  writeUint53(out, 2, span.goneThrough);
  let at = HEADER_BYTES;
  for (const envelope of span.envelopes) {
    out.writeUInt32BE(envelope.length, at);
    envelope.copy(out, at + 4);
    at += 4 + envelope.length;
  }
  return out;
}

/**
 * An answer's parts; its envelopes are views into `data` (the caller unwraps and checks them).
 * @throws RepairError when `data` is not a version-1 answer (an owner's `{"error":…}` included)
 */
export function decodeRepairAnswer(data: Uint8Array): { goneThrough: number; envelopes: Buffer[]; more: boolean } {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (buf.length > 0 && buf[0] === 0x7b) throw new RepairError(`the owner refused the repair: ${buf.toString('utf8', 0, Math.min(buf.length, 200))}`);
  if (buf.length < HEADER_BYTES) throw new RepairError(`repair answer of ${buf.length} bytes is too short`);
  if (buf[0] !== REPAIR_FORMAT) throw new RepairError(`repair answer format ${buf[0]} (this node reads ${REPAIR_FORMAT})`);
  if ((buf[1] as number) > 1) throw new RepairError(`repair answer flags ${buf[1]} are unknown`);
  const high = buf.readUInt32BE(2);
  if (high >= 0x20_0000) throw new RepairError('repair answer goneThrough is not below 2^53');
  const goneThrough = high * 0x1_0000_0000 + buf.readUInt32BE(6);
  const envelopes: Buffer[] = [];
  let at = HEADER_BYTES;
  while (at < buf.length) {
    if (at + 4 > buf.length) throw new RepairError('repair answer ends inside a length');
    const length = buf.readUInt32BE(at);
    if (at + 4 + length > buf.length) throw new RepairError('repair answer ends inside an envelope');
    envelopes.push(buf.subarray(at + 4, at + 4 + length));
    at += 4 + length;
  }
  return { goneThrough, envelopes, more: buf[1] === 1 };
}

function writeUint53(out: Buffer, at: number, value: number): void {
  out.writeUInt32BE(Math.floor(value / 0x1_0000_0000), at);
  out.writeUInt32BE(value >>> 0, at + 4);
}
