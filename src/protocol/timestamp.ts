import { ProtocolError } from '../errors.js';

const NANOS_PER_SECOND = 1_000_000_000;
const MAX_TIMESTAMP32_SECONDS = 0xffff_ffff;
const MAX_TIMESTAMP64_SECONDS = 2 ** 34 - 1;
/** The range `Date` (and so RFC 3339 formatting) can represent, in seconds. */
const MAX_DATE_SECONDS = 8.64e12;

/** The msgpack extension type of the timestamp extension. */
export const EXT_TIMESTAMP = -1;

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

/**
 * A point in time with nanosecond precision, as the vendor sends it: whole seconds since the
 * epoch plus 0–999,999,999 nanoseconds. Converts losslessly between the msgpack timestamp
 * extension and RFC 3339 text; `Date` (milliseconds) is never on the path.
 */
export class Timestamp {
  readonly seconds: number;
  readonly nanoseconds: number;

  constructor(seconds: number, nanoseconds: number) {
    if (!Number.isSafeInteger(seconds) || Math.abs(seconds) > MAX_DATE_SECONDS) {
      throw new ProtocolError(`timestamp seconds out of range: ${seconds}`);
    }
    if (!Number.isInteger(nanoseconds) || nanoseconds < 0 || nanoseconds >= NANOS_PER_SECOND) {
      throw new ProtocolError(`timestamp nanoseconds out of range: ${nanoseconds}`);
    }
    this.seconds = seconds;
    this.nanoseconds = nanoseconds;
  }

  /** From nanoseconds since the epoch. */
  static fromEpochNanos(nanos: bigint): Timestamp {
    const second = BigInt(NANOS_PER_SECOND);
    let seconds = nanos / second;
    let rest = nanos % second;
    if (rest < 0n) {
      rest += second;
      seconds -= 1n;
    }
    return new Timestamp(Number(seconds), Number(rest));
  }

  /** Nanoseconds since the epoch. */
  toEpochNanos(): bigint {
    return BigInt(this.seconds) * BigInt(NANOS_PER_SECOND) + BigInt(this.nanoseconds);
  }

  /**
   * Parses RFC 3339 with up to nine fractional digits and any offset, to UTC.
   * @throws ProtocolError when the text is not such a timestamp
   */
  static parse(text: string): Timestamp {
    const m = RFC3339.exec(text);
    if (m === null) throw new ProtocolError(`not an RFC 3339 timestamp: ${JSON.stringify(text.slice(0, 64))}`);
    const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
    const millis = Date.UTC(year, month - 1, day, hour, minute, second);
    const check = new Date(millis);
    // Date.UTC rolls over out-of-range fields (Feb 30 → Mar 2); a real timestamp survives the trip.
    if (
      check.getUTCFullYear() !== year ||
      check.getUTCMonth() !== month - 1 ||
      check.getUTCDate() !== day ||
      check.getUTCHours() !== hour ||
      check.getUTCMinutes() !== minute ||
      check.getUTCSeconds() !== second
    ) {
      throw new ProtocolError(`not a valid date and time: ${JSON.stringify(text)}`);
    }
    let seconds = millis / 1000;
    if (m[9] !== undefined) {
      const offset = (Number(m[10]) * 60 + Number(m[11])) * 60;
      seconds -= m[9] === '-' ? -offset : offset;
    }
    const fraction = m[7] ?? '';
    const nanoseconds = fraction === '' ? 0 : Number(fraction.padEnd(9, '0'));
    return new Timestamp(seconds, nanoseconds);
  }

  /**
   * RFC 3339 in UTC with trailing fractional zeros trimmed, the vendor's JSON style (Go's
   * RFC3339Nano): `…44.208Z`, `…45.335689322Z`, `…19:15:00Z`.
   */
  toString(): string {
    const base = new Date(this.seconds * 1000).toISOString().slice(0, 19);
    if (this.nanoseconds === 0) return `${base}Z`;
    const fraction = String(this.nanoseconds).padStart(9, '0').replace(/0+$/, '');
    return `${base}.${fraction}Z`;
  }

  toJSON(): string {
    return this.toString();
  }

  equals(other: Timestamp): boolean {
    return this.seconds === other.seconds && this.nanoseconds === other.nanoseconds;
  }

  /**
   * The msgpack timestamp extension's data bytes in the smallest of its three forms
   * (timestamp32, timestamp64, timestamp96), as the msgpack spec and Go's encoder choose.
   */
  toMsgpackExtData(): Uint8Array {
    const { seconds, nanoseconds } = this;
    if (seconds >= 0 && seconds <= MAX_TIMESTAMP64_SECONDS) {
      if (nanoseconds === 0 && seconds <= MAX_TIMESTAMP32_SECONDS) {
        const out = new Uint8Array(4);
        new DataView(out.buffer).setUint32(0, seconds);
        return out;
      }
      const out = new Uint8Array(8);
      const view = new DataView(out.buffer);
      // 30-bit nanoseconds in the high bits, 34-bit seconds in the low bits.
      const secondsHigh = Math.floor(seconds / 2 ** 32);
      view.setUint32(0, nanoseconds * 4 + secondsHigh);
      view.setUint32(4, seconds >>> 0);
      return out;
    }
    const out = new Uint8Array(12);
    const view = new DataView(out.buffer);
    view.setUint32(0, nanoseconds);
    view.setBigInt64(4, BigInt(seconds));
    return out;
  }

  /**
   * Reads the timestamp extension's data bytes (4, 8 or 12 of them).
   * @throws ProtocolError on any other length or an out-of-range nanosecond field
   */
  static fromMsgpackExtData(data: Uint8Array): Timestamp {
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    switch (data.byteLength) {
      case 4:
        return new Timestamp(view.getUint32(0), 0);
      case 8: {
        const high = view.getUint32(0);
        const low = view.getUint32(4);
        return new Timestamp((high & 0x3) * 2 ** 32 + low, high >>> 2);
      }
      case 12: {
        const seconds = view.getBigInt64(4);
        if (seconds > BigInt(MAX_DATE_SECONDS) || seconds < -BigInt(MAX_DATE_SECONDS)) {
          throw new ProtocolError(`timestamp seconds out of range: ${seconds}`);
        }
        return new Timestamp(Number(seconds), view.getUint32(0));
      }
      default:
        throw new ProtocolError(`timestamp extension with ${data.byteLength} data bytes`);
    }
  }
}
