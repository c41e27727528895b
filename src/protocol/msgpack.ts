/**
 * msgpack at the byte level: a writer that picks the smallest form for every value (as Go's
 * encoder does, so re-encoding a vendor frame reproduces its bytes), and a reader that walks a
 * frame without decoding it — to find message boundaries and peek at `T` and `S` on the fan-out
 * hot path. Full decoding for control messages and tests goes through `@msgpack/msgpack`.
 *
 * Hand-written because no msgpack library exposes value boundaries, and none lets a caller force
 * float64 for a given field (needed to keep `127.0` a float, see `StreamKind.floatFields`).
 */
import { isUtf8 } from 'node:buffer';
import { ProtocolError } from '../errors.js';

/** Nesting deeper than this is refused rather than recursed into. */
export const MAX_DEPTH = 64;

const INT64_MIN = -(2n ** 63n);
const UINT64_MAX = 2n ** 64n - 1n;

/** A growable output buffer with one method per msgpack form. */
export class MsgpackWriter {
  #buf: Buffer;
  #pos = 0;

  constructor(initialSize = 256) {
    this.#buf = Buffer.allocUnsafe(initialSize);
  }

  #ensure(extra: number): void {
    const needed = this.#pos + extra;
    if (needed <= this.#buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(needed, this.#buf.length * 2));
    this.#buf.copy(next, 0, 0, this.#pos);
    this.#buf = next;
  }

  /** The bytes written so far (a copy, safe to keep). */
  finish(): Buffer {
    return Buffer.from(this.#buf.subarray(0, this.#pos));
  }

  bytes(data: Uint8Array): void {
    this.#ensure(data.length);
    this.#buf.set(data, this.#pos);
    this.#pos += data.length;
  }

  nil(): void {
    this.#ensure(1);
    this.#buf[this.#pos++] = 0xc0;
  }

  bool(value: boolean): void {
    this.#ensure(1);
    this.#buf[this.#pos++] = value ? 0xc3 : 0xc2;
  }

  /** An integer in the smallest form; safe integers only (use `bigint` beyond). */
  int(value: number): void {
    const b = this.#buf;
    this.#ensure(9);
    let p = this.#pos;
    if (value >= 0) {
      if (value < 0x80) b[p++] = value;
      else if (value <= 0xff) {
        b[p++] = 0xcc;
        b[p++] = value;
      } else if (value <= 0xffff) {
        b[p++] = 0xcd;
        p = b.writeUInt16BE(value, p);
      } else if (value <= 0xffff_ffff) {
        b[p++] = 0xce;
        p = b.writeUInt32BE(value, p);
      } else {
        b[p++] = 0xcf;
        p = b.writeBigUInt64BE(BigInt(value), p);
      }
    } else if (value >= -32) {
      b[p++] = value & 0xff;
    } else if (value >= -0x80) {
      b[p++] = 0xd0;
      p = b.writeInt8(value, p);
    } else if (value >= -0x8000) {
      b[p++] = 0xd1;
      p = b.writeInt16BE(value, p);
    } else if (value >= -0x8000_0000) {
      b[p++] = 0xd2;
      p = b.writeInt32BE(value, p);
    } else {
      b[p++] = 0xd3;
      p = b.writeBigInt64BE(BigInt(value), p);
    }
    this.#pos = p;
  }

  /** A 64-bit integer; values that fit a smaller form use it. */
  bigint(value: bigint): void {
    if (value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER)) {
      this.int(Number(value));
      return;
    }
    if (value < INT64_MIN || value > UINT64_MAX) {
      throw new ProtocolError(`integer outside 64 bits: ${value}`);
    }
    this.#ensure(9);
    if (value > 0n) {
      this.#buf[this.#pos++] = 0xcf;
      this.#pos = this.#buf.writeBigUInt64BE(value, this.#pos);
    } else {
      this.#buf[this.#pos++] = 0xd3;
      this.#pos = this.#buf.writeBigInt64BE(value, this.#pos);
    }
  }

  float64(value: number): void {
    this.#ensure(9);
    this.#buf[this.#pos++] = 0xcb;
    this.#pos = this.#buf.writeDoubleBE(value, this.#pos);
  }

  /** A JS number: integers in the smallest int form, everything else float64. */
  number(value: number): void {
    if (Number.isSafeInteger(value) && !Object.is(value, -0)) this.int(value);
    else this.float64(value);
  }

  str(value: string): void {
    const length = Buffer.byteLength(value);
    this.#ensure(length + 5);
    const b = this.#buf;
    if (length < 32) b[this.#pos++] = 0xa0 | length;
    else if (length <= 0xff) {
      b[this.#pos++] = 0xd9;
      b[this.#pos++] = length;
    } else if (length <= 0xffff) {
      b[this.#pos++] = 0xda;
      this.#pos = b.writeUInt16BE(length, this.#pos);
    } else {
      b[this.#pos++] = 0xdb;
      this.#pos = b.writeUInt32BE(length, this.#pos);
    }
    this.#pos += b.write(value, this.#pos, 'utf8');
  }

  bin(value: Uint8Array): void {
    const length = value.length;
    this.#ensure(length + 5);
    const b = this.#buf;
    if (length <= 0xff) {
      b[this.#pos++] = 0xc4;
      b[this.#pos++] = length;
    } else if (length <= 0xffff) {
      b[this.#pos++] = 0xc5;
      this.#pos = b.writeUInt16BE(length, this.#pos);
    } else {
      b[this.#pos++] = 0xc6;
      this.#pos = b.writeUInt32BE(length, this.#pos);
    }
    this.bytes(value);
  }

  arrayHeader(length: number): void {
    this.#collectionHeader(length, 0x90, 0xdc);
  }

  mapHeader(length: number): void {
    this.#collectionHeader(length, 0x80, 0xde);
  }

  #collectionHeader(length: number, fix: number, wide16: number): void {
    this.#ensure(5);
    const b = this.#buf;
    if (length < 16) b[this.#pos++] = fix | length;
    else if (length <= 0xffff) {
      b[this.#pos++] = wide16;
      this.#pos = b.writeUInt16BE(length, this.#pos);
    } else {
      b[this.#pos++] = wide16 + 1;
      this.#pos = b.writeUInt32BE(length, this.#pos);
    }
  }

  /** An extension value in the smallest form (fixext 1/2/4/8/16 or ext 8/16/32). */
  ext(type: number, data: Uint8Array): void {
    const length = data.length;
    this.#ensure(length + 6);
    const b = this.#buf;
    const fixCode = FIXEXT_CODES.get(length);
    if (fixCode !== undefined) b[this.#pos++] = fixCode;
    else if (length <= 0xff) {
      b[this.#pos++] = 0xc7;
      b[this.#pos++] = length;
    } else if (length <= 0xffff) {
      b[this.#pos++] = 0xc8;
      this.#pos = b.writeUInt16BE(length, this.#pos);
    } else {
      b[this.#pos++] = 0xc9;
      this.#pos = b.writeUInt32BE(length, this.#pos);
    }
    this.#pos = b.writeInt8(type, this.#pos);
    this.bytes(data);
  }
}

const FIXEXT_CODES = new Map([
  [1, 0xd4],
  [2, 0xd5],
  [4, 0xd6],
  [8, 0xd7],
  [16, 0xd8],
]);

/** Throws unless `count` bytes from `pos` lie inside `buf`. */
function need(buf: Uint8Array, pos: number, count: number): void {
  if (pos + count > buf.length) throw new ProtocolError('truncated msgpack data');
}

/**
 * The header of the value at `pos`: what kind it is, how many child values follow (arrays: n,
 * maps: 2n), and where its payload starts and ends. Every msgpack form is covered; 0xc1 (never
 * used) is an error.
 */
export interface Header {
  kind: 'nil' | 'bool' | 'int' | 'uint' | 'float32' | 'float64' | 'str' | 'bin' | 'array' | 'map' | 'ext';
  /** first byte after the header */
  start: number;
  /** for scalars, str, bin, ext: end of the payload; for array and map: same as start */
  end: number;
  /** array length or map pair count */
  count: number;
  /** ext type */
  extType: number;
}

export function readHeader(buf: Buffer, pos: number): Header {
  need(buf, pos, 1);
  const b = buf[pos] as number;
  const at = pos + 1;
  if (b <= 0x7f || b >= 0xe0) return scalar('int', at, 0);
  if (b <= 0x8f) return collection('map', at, b & 0x0f);
  if (b <= 0x9f) return collection('array', at, b & 0x0f);
  if (b <= 0xbf) return sized(buf, 'str', at, 0, b & 0x1f);
  switch (b) {
    case 0xc0:
      return scalar('nil', at, 0);
    case 0xc2:
    case 0xc3:
      return scalar('bool', at, 0);
    case 0xc4:
      return sized(buf, 'bin', at, 1, -1);
    case 0xc5:
      return sized(buf, 'bin', at, 2, -1);
    case 0xc6:
      return sized(buf, 'bin', at, 4, -1);
    case 0xc7:
      return extension(buf, at, 1, -1);
    case 0xc8:
      return extension(buf, at, 2, -1);
    case 0xc9:
      return extension(buf, at, 4, -1);
    case 0xca:
      return scalar('float32', at, 4);
    case 0xcb:
      return scalar('float64', at, 8);
    case 0xcc:
      return scalar('uint', at, 1);
    case 0xcd:
      return scalar('uint', at, 2);
    case 0xce:
      return scalar('uint', at, 4);
    case 0xcf:
      return scalar('uint', at, 8);
    case 0xd0:
      return scalar('int', at, 1);
    case 0xd1:
      return scalar('int', at, 2);
    case 0xd2:
      return scalar('int', at, 4);
    case 0xd3:
      return scalar('int', at, 8);
    case 0xd4:
      return extension(buf, at, 0, 1);
    case 0xd5:
      return extension(buf, at, 0, 2);
    case 0xd6:
      return extension(buf, at, 0, 4);
    case 0xd7:
      return extension(buf, at, 0, 8);
    case 0xd8:
      return extension(buf, at, 0, 16);
    case 0xd9:
      return sized(buf, 'str', at, 1, -1);
    case 0xda:
      return sized(buf, 'str', at, 2, -1);
    case 0xdb:
      return sized(buf, 'str', at, 4, -1);
    case 0xdc:
      need(buf, at, 2);
      return collection('array', at + 2, buf.readUInt16BE(at));
    case 0xdd:
      need(buf, at, 4);
      return collection('array', at + 4, buf.readUInt32BE(at));
    case 0xde:
      need(buf, at, 2);
      return collection('map', at + 2, buf.readUInt16BE(at));
    case 0xdf:
      need(buf, at, 4);
      return collection('map', at + 4, buf.readUInt32BE(at));
    default:
      throw new ProtocolError(`invalid msgpack byte 0x${b.toString(16)}`);
  }

  function scalar(kind: Header['kind'], start: number, length: number): Header {
    need(buf, start, length);
    return { kind, start, end: start + length, count: 0, extType: 0 };
  }
  function collection(kind: 'array' | 'map', start: number, count: number): Header {
    return { kind, start, end: start, count, extType: 0 };
  }
}

function readLength(buf: Buffer, at: number, width: number): number {
  need(buf, at, width);
  return width === 1 ? (buf[at] as number) : width === 2 ? buf.readUInt16BE(at) : buf.readUInt32BE(at);
}

function sized(buf: Buffer, kind: 'str' | 'bin', at: number, width: number, fixed: number): Header {
  const length = fixed >= 0 ? fixed : readLength(buf, at, width);
  const start = at + (fixed >= 0 ? 0 : width);
  need(buf, start, length);
  return { kind, start, end: start + length, count: 0, extType: 0 };
}

function extension(buf: Buffer, at: number, width: number, fixed: number): Header {
  const length = fixed >= 0 ? fixed : readLength(buf, at, width);
  const typeAt = at + (fixed >= 0 ? 0 : width);
  need(buf, typeAt, 1 + length);
  return { kind: 'ext', start: typeAt + 1, end: typeAt + 1 + length, count: 0, extType: buf.readInt8(typeAt) };
}

/**
 * Walks the value at `pos` header by header and returns the offset just past it; `visit` sees
 * each header. Iterative, so hostile nesting cannot overflow the stack; truncated data throws.
 */
function walkValue(buf: Buffer, pos: number, visit?: (header: Header, at: number) => void): number {
  let remaining = 1;
  let p = pos;
  while (remaining > 0) {
    remaining -= 1;
    const h = readHeader(buf, p);
    if (h.kind === 'array') remaining += h.count;
    else if (h.kind === 'map') remaining += h.count * 2;
    visit?.(h, p);
    p = h.end;
  }
  return p;
}

/** Payload bytes after the first byte of each form whose size the first byte fixes (scalars, fixext): -1 where it does not. */
const FIXED_SIZE = new Int8Array(256).fill(-1);
for (let b = 0x00; b <= 0x7f; b++) FIXED_SIZE[b] = 0;
for (let b = 0xe0; b <= 0xff; b++) FIXED_SIZE[b] = 0;
for (let b = 0xa0; b <= 0xbf; b++) FIXED_SIZE[b] = b & 0x1f;
for (const [b, size] of [
  [0xc0, 0], [0xc2, 0], [0xc3, 0], [0xca, 4], [0xcb, 8], [0xcc, 1], [0xcd, 2], [0xce, 4], [0xcf, 8],
  [0xd0, 1], [0xd1, 2], [0xd2, 4], [0xd3, 8], [0xd4, 2], [0xd5, 3], [0xd6, 5], [0xd7, 9], [0xd8, 17],
] as const) FIXED_SIZE[b] = size;

/**
 * The offset just past the value at `pos` (truncated data and 0xc1 throw). The same walk as
 * `walkValue` without a `Header` per value: every message the fan-out splits is skipped field by
 * field, so this is the hot path of the vendor link and of a replay.
 */
export function skipValue(buf: Buffer, pos: number): number {
  const length = buf.length;
  let remaining = 1;
  let p = pos;
  while (remaining > 0) {
    remaining -= 1;
    if (p >= length) throw new ProtocolError('truncated msgpack data');
    const b = buf[p] as number;
    const fixed = FIXED_SIZE[b] as number;
    if (fixed >= 0) {
      p += 1 + fixed;
      continue;
    }
    if (b <= 0x8f) {
      remaining += (b & 0x0f) * 2;
      p += 1;
      continue;
    }
    if (b <= 0x9f) {
      remaining += b & 0x0f;
      p += 1;
      continue;
    }
    switch (b) {
      case 0xc4:
      case 0xd9:
        need(buf, p + 1, 1);
        p += 2 + (buf[p + 1] as number);
        break;
      case 0xc5:
      case 0xda:
        need(buf, p + 1, 2);
        p += 3 + buf.readUInt16BE(p + 1);
        break;
      case 0xc6:
      case 0xdb:
        need(buf, p + 1, 4);
        p += 5 + buf.readUInt32BE(p + 1);
        break;
      case 0xc7:
        need(buf, p + 1, 1);
        p += 3 + (buf[p + 1] as number);
        break;
      case 0xc8:
        need(buf, p + 1, 2);
        p += 4 + buf.readUInt16BE(p + 1);
        break;
      case 0xc9:
        need(buf, p + 1, 4);
        p += 6 + buf.readUInt32BE(p + 1);
        break;
      case 0xdc:
        need(buf, p + 1, 2);
        remaining += buf.readUInt16BE(p + 1);
        p += 3;
        break;
      case 0xdd:
        need(buf, p + 1, 4);
        remaining += buf.readUInt32BE(p + 1);
        p += 5;
        break;
      case 0xde:
        need(buf, p + 1, 2);
        remaining += buf.readUInt16BE(p + 1) * 2;
        p += 3;
        break;
      case 0xdf:
        need(buf, p + 1, 4);
        remaining += buf.readUInt32BE(p + 1) * 2;
        p += 5;
        break;
      default:
        throw new ProtocolError(`invalid msgpack byte 0x${b.toString(16)}`);
    }
  }
  if (p > length) throw new ProtocolError('truncated msgpack data');
  return p;
}

/**
 * Checks that every string of the value at `pos` is valid UTF-8 (an overlong or broken sequence
 * would otherwise decode to some other text).
 * @throws ProtocolError naming the first bad string's offset
 */
export function assertUtf8Strings(buf: Buffer, pos = 0): void {
  walkValue(buf, pos, (h, at) => {
    if (h.kind === 'str' && !isUtf8(buf.subarray(h.start, h.end))) throw new ProtocolError(`invalid UTF-8 in the msgpack string at byte ${at}`);
  });
}

/** The string at `pos`, or undefined when the value there is not a string. */
export function readString(buf: Buffer, pos: number): string | undefined {
  const h = readHeader(buf, pos);
  return h.kind === 'str' ? buf.toString('utf8', h.start, h.end) : undefined;
}

/**
 * Strings of up to 7 ASCII characters read by `readShortString`, by a number made of their length
 * and characters (7 bits each: at most 52 bits, exact in a double). Types and symbols repeat in
 * every message; reading each from the cache instead of decoding it spares an allocation per field.
 */
const shortStrings = new Map<number, string>();
/** Distinct short strings kept before the cache starts over (symbols of a whole market fit). */
const SHORT_STRINGS_MAX = 65_536;

/**
 * Like `readString`, for a value that is usually one of a few short strings (`T`, `S`): up to
 * 7 ASCII characters come from a cache, anything else is read as `readString` reads it.
 */
export function readShortString(buf: Buffer, pos: number): string | undefined {
  const b = buf[pos] as number;
  let start = pos + 1;
  let length: number;
  if (b >= 0xa0 && b <= 0xbf) length = b & 0x1f;
  else if (b === 0xd9 && pos + 1 < buf.length) {
    length = buf[pos + 1] as number;
    start += 1;
  } else return readString(buf, pos);
  if (length > 7 || start + length > buf.length) return readString(buf, pos);
  let key = length;
  for (let i = start; i < start + length; i++) {
    const c = buf[i] as number;
    if (c >= 0x80) return readString(buf, pos);
    key = key * 128 + c;
  }
  let text = shortStrings.get(key);
  if (text === undefined) {
    if (shortStrings.size >= SHORT_STRINGS_MAX) shortStrings.clear();
    text = buf.toString('latin1', start, start + length);
    shortStrings.set(key, text);
  }
  return text;
}

/** Whether the value at `pos` is the one-character string `char` (the `T`/`S` keys). */
function isOneCharKey(buf: Buffer, pos: number, charCode: number): boolean {
  const b = buf[pos];
  if (b === 0xa1) return buf[pos + 1] === charCode;
  // Non-minimal encoders may write a one-byte key as str8.
  return b === 0xd9 && buf[pos + 1] === 1 && buf[pos + 2] === charCode;
}

const CODE_T = 0x54;
const CODE_S = 0x53;

/** The element's `T` and `S` string values (undefined when absent or not strings) and its end. */
export interface Peek {
  type: string | undefined;
  symbol: string | undefined;
  /** the string items of its `symbols` list, when asked for and present (news) */
  symbols?: string[];
  end: number;
}

const SYMBOLS_KEY = Buffer.from([0xa7, ...Buffer.from('symbols')]);

/** The string items of the array at `pos` (others skipped), or undefined when it is no array. */
function readStringList(buf: Buffer, pos: number): string[] | undefined {
  const h = readHeader(buf, pos);
  if (h.kind !== 'array') return undefined;
  const list: string[] = [];
  let p = h.start;
  for (let i = 0; i < h.count; i++) {
    const item = readString(buf, p);
    if (item !== undefined) list.push(item);
    p = skipValue(buf, p);
  }
  return list;
}

/**
 * Reads `T` and `S` of the map at `pos` without decoding anything else; with `symbolsList`, its
 * `symbols` list too (a news item names its symbols there and has no `S`).
 */
export function peekMessage(buf: Buffer, pos: number, symbolsList = false): Peek {
  const h = readHeader(buf, pos);
  if (h.kind !== 'map') return { type: undefined, symbol: undefined, end: skipValue(buf, pos) };
  let type: string | undefined;
  let symbol: string | undefined;
  let symbols: string[] | undefined;
  let p = h.start;
  for (let i = 0; i < h.count; i++) {
    const isT = isOneCharKey(buf, p, CODE_T);
    const isS = !isT && isOneCharKey(buf, p, CODE_S);
    const keyAt = p;
    p = skipValue(buf, p); // the key is whole before it is compared
    const isList = symbolsList && !isT && !isS && isSymbolsKey(buf, keyAt);
    if (isT) type = readShortString(buf, p);
    else if (isS) symbol = readShortString(buf, p);
    else if (isList) symbols = readStringList(buf, p) ?? [];
    p = skipValue(buf, p);
  }
  return symbols === undefined ? { type, symbol, end: p } : { type, symbol, symbols, end: p };
}

/** Whether the value at `pos` is the string `symbols`, in any string form. */
function isSymbolsKey(buf: Buffer, pos: number): boolean {
  if (buf[pos] === 0xa7) return buf.compare(SYMBOLS_KEY, 0, SYMBOLS_KEY.length, pos, pos + SYMBOLS_KEY.length) === 0;
  const b = buf[pos];
  if (b !== 0xd9 && b !== 0xda && b !== 0xdb) return false; // non-minimal str8/16/32
  return readString(buf, pos) === 'symbols';
}
