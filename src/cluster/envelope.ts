/**
 * How the owner wraps a vendor message for NATS (DESIGN.md §10): a 14-byte header, then the
 * vendor's own bytes of that one message, untouched.
 *
 *   byte 0      format version (1): a node of another format logs the message and ignores it
 *   byte 1      the bytes' encoding: 0 JSON, 1 msgpack
 *   bytes 2–5   the publisher's epoch (random per owner term, big-endian uint32)
 *   bytes 6–13  the message's sequence number on its subject in that epoch (big-endian, from 1,
 *               integer < 2^53)
 *
 * NATS delivers one publisher's messages in order, so per subject a receiver sees 1, 2, 3…: a
 * number it has seen is the second copy of a message two of its subscriptions match (a symbol and
 * the channel's `*`), and a skipped one is a message lost on the way (a slow consumer).
 */
import { TickmuxError } from '../errors.js';
import type { Encoding } from '../protocol/frame.js';

export const ENVELOPE_VERSION = 1;
export const ENVELOPE_HEADER_BYTES = 14;

/** A cluster message that is not one this node can read. */
export class EnvelopeError extends TickmuxError {
  constructor(message: string) {
    super('ERR_CLUSTER_MESSAGE', message);
  }
}

export interface Envelope {
  readonly encoding: Encoding;
  readonly epoch: number;
  readonly seq: number;
  /** the vendor's bytes of one message */
  readonly body: Buffer;
}

/** How the cluster's messages name an encoding in one byte: 0 JSON, 1 msgpack. */
export function encodingByte(encoding: Encoding): number {
  return encoding === 'json' ? 0 : 1;
}

/** @throws EnvelopeError for a byte that names no encoding */
export function encodingOfByte(byte: number): Encoding {
  if (byte !== 0 && byte !== 1) throw new EnvelopeError(`cluster message encoding ${byte} is unknown`);
  return byte === 0 ? 'json' : 'msgpack';
}

/** The header and `body` in one new buffer. */
export function wrap(encoding: Encoding, epoch: number, seq: number, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(ENVELOPE_HEADER_BYTES + body.length);
  out[0] = ENVELOPE_VERSION;
  out[1] = encodingByte(encoding);
  out.writeUInt32BE(epoch >>> 0, 2);
  out.writeUInt32BE(Math.floor(seq / 0x1_0000_0000), 6);
  out.writeUInt32BE(seq >>> 0, 10);
  body.copy(out, ENVELOPE_HEADER_BYTES);
  return out;
}

/** @throws EnvelopeError when `data` is not a version-1 envelope */
export function unwrap(data: Uint8Array): Envelope {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (buf.length < ENVELOPE_HEADER_BYTES + 1) throw new EnvelopeError(`cluster message of ${buf.length} bytes is too short`);
  if (buf[0] !== ENVELOPE_VERSION) throw new EnvelopeError(`cluster message format ${buf[0]} (this node reads ${ENVELOPE_VERSION}): a node of another version?`);
  return {
    encoding: encodingOfByte(buf[1] as number),
    epoch: buf.readUInt32BE(2),
    seq: buf.readUInt32BE(6) * 0x1_0000_0000 + buf.readUInt32BE(10),
    body: buf.subarray(ENVELOPE_HEADER_BYTES),
  };
}
