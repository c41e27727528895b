/**
 * The crypto stream's order-book message (`o`, PROTOCOL-STREAMS.md §1.2–1.3) at the byte level:
 * reading the levels, reset flag and timestamp out of a vendor unit, and writing a reset that a
 * client cannot tell from one the vendor would have sent.
 *
 * The timestamp is kept as the bytes the vendor wrote (its msgpack extension, or its JSON string
 * token), so a written reset carries it exactly; a reset is written in that same encoding and
 * reaches the other encoding's clients through the conversion every vendor unit goes through.
 */
import { ProtocolError } from '../errors.js';
import { decodeMsgpack, type Encoding, MessageUnit } from './frame.js';
import { JsonCursor, JsonNumber, JsonObject, type JsonValue } from './json.js';
import { MsgpackWriter, readHeader, readString, skipValue } from './msgpack.js';
import type { StreamKind } from './streams.js';
import { jsonFloat } from './transcode.js';

/** One price level: `s` 0 in an update removes the level. */
export interface BookLevel {
  readonly p: number;
  readonly s: number;
}

/** A value exactly as its sender wrote it, in one encoding. */
export interface RawValue {
  readonly encoding: Encoding;
  /** an exactly sized copy: it keeps no vendor frame alive */
  readonly bytes: Uint8Array;
}

/** What an order-book message says. */
export interface BookMessage {
  /** `r: true`: the whole book, replacing the one held (an absent `r` means false) */
  readonly reset: boolean;
  /** `t` as written, when present */
  readonly t: RawValue | undefined;
  /** `b` (an absent side has no change) */
  readonly bids: readonly BookLevel[];
  /** `a` */
  readonly asks: readonly BookLevel[];
}

/**
 * Reads the order-book message in `unit` (from its own bytes: nothing is converted), or
 * undefined when it does not have the shape of one (a side that is not a list of numeric `p`,
 * `s` maps, a message that is not a map).
 */
export function readBookMessage(unit: MessageUnit): BookMessage | undefined {
  const encoding = unit.sourceEncoding;
  const bytes = unit.encoded(encoding);
  try {
    return encoding === 'json' ? readJson(bytes) : readMsgpack(bytes);
  } catch (err) {
    // The frame was walked whole when it was cut; a value inside it may still not decode.
    if (err instanceof ProtocolError) return undefined;
    throw err;
  }
}

interface Fields {
  reset: boolean;
  t: RawValue | undefined;
  bids: readonly BookLevel[];
  asks: readonly BookLevel[];
}

const NO_LEVELS: readonly BookLevel[] = Object.freeze([]);

function emptyFields(): Fields {
  return { reset: false, t: undefined, bids: NO_LEVELS, asks: NO_LEVELS };
}

function readMsgpack(buf: Buffer): BookMessage | undefined {
  const h = readHeader(buf, 0);
  if (h.kind !== 'map') return undefined;
  const fields = emptyFields();
  let p = h.start;
  for (let i = 0; i < h.count; i++) {
    const key = readString(buf, p);
    p = skipValue(buf, p);
    const end = skipValue(buf, p);
    if (key === 'b' || key === 'a') {
      const levels = levelsOf(decodeMsgpack(buf.subarray(p, end)));
      if (levels === undefined) return undefined;
      fields[key === 'b' ? 'bids' : 'asks'] = levels;
    } else if (key === 'r') fields.reset = buf[p] === 0xc3;
    else if (key === 't') fields.t = { encoding: 'msgpack', bytes: new Uint8Array(buf.subarray(p, end)) };
    p = end;
  }
  return fields;
}

/** `{p, s}` maps of numbers from the value model. */
function levelsOf(value: unknown): BookLevel[] | undefined {
  if (!Array.isArray(value)) return undefined;
  const levels: BookLevel[] = [];
  for (const item of value as unknown[]) {
    const { p, s } = (item ?? {}) as { p?: unknown; s?: unknown };
    if (typeof p !== 'number' || typeof s !== 'number') return undefined;
    levels.push({ p, s });
  }
  return levels;
}

function readJson(buf: Buffer): BookMessage | undefined {
  const cursor = new JsonCursor(buf);
  if (!cursor.accept(0x7b)) return undefined;
  const fields = emptyFields();
  if (cursor.accept(0x7d)) return fields;
  do {
    cursor.skipWhitespace();
    const key = cursor.string(true);
    cursor.expect(0x3a);
    cursor.skipWhitespace();
    const start = cursor.pos;
    if (key === 'b' || key === 'a') {
      const levels = jsonLevelsOf(cursor.value(true));
      if (levels === undefined) return undefined;
      fields[key === 'b' ? 'bids' : 'asks'] = levels;
    } else if (key === 'r') fields.reset = cursor.value(true) === true;
    else {
      cursor.value(false);
      if (key === 't') fields.t = { encoding: 'json', bytes: new Uint8Array(buf.subarray(start, cursor.pos)) };
    }
  } while (cursor.accept(0x2c));
  return fields;
}

/**
 * `{p, s}` objects of numbers, read as the JSON → msgpack conversion reads float fields; a number
 * too large for float64 has no JSON form to write back, so it makes the side unreadable.
 */
function jsonLevelsOf(value: JsonValue): BookLevel[] | undefined {
  if (!Array.isArray(value)) return undefined;
  const levels: BookLevel[] = [];
  for (const item of value) {
    if (!(item instanceof JsonObject)) return undefined;
    const p = numberOf(item.values[item.keys.indexOf('p')]);
    const s = numberOf(item.values[item.keys.indexOf('s')]);
    if (p === undefined || s === undefined) return undefined;
    levels.push({ p, s });
  }
  return levels;
}

function numberOf(value: JsonValue | undefined): number | undefined {
  if (!(value instanceof JsonNumber)) return undefined;
  const n = Number(value.raw);
  return Number.isFinite(n) ? n : undefined;
}

/** A whole book, bids best (highest) first and asks best (lowest) first, as the vendor orders them. */
export interface Book {
  readonly symbol: string;
  readonly t: RawValue | undefined;
  readonly bids: readonly BookLevel[];
  readonly asks: readonly BookLevel[];
}

/**
 * `book` as a reset message of `type` on a stream of `kind`:
 * `{"T":type,"S":…,"t":…,"b":[…],"a":[…],"r":true}`, in the encoding its `t` was written in
 * (`fallback` for a book that never had one). Both sides are always there, possibly empty: the
 * Python SDK's model reads both keys. `p` and `s` are float64 in msgpack, as the vendor writes
 * them and as the kind's float fields convert them.
 */
export function bookResetUnit(book: Book, type: string, kind: StreamKind, fallback: Encoding): MessageUnit {
  const encoding = book.t?.encoding ?? fallback;
  const bytes = encoding === 'json' ? jsonReset(book, type) : msgpackReset(book, type);
  return new MessageUnit(encoding, bytes, type, book.symbol, kind);
}

function msgpackReset(book: Book, type: string): Buffer {
  const writer = new MsgpackWriter();
  writer.mapHeader(book.t === undefined ? 5 : 6);
  writer.str('T');
  writer.str(type);
  writer.str('S');
  writer.str(book.symbol);
  if (book.t !== undefined) {
    writer.str('t');
    writer.bytes(book.t.bytes);
  }
  for (const [key, levels] of [['b', book.bids], ['a', book.asks]] as const) {
    writer.str(key);
    writer.arrayHeader(levels.length);
    for (const level of levels) {
      writer.mapHeader(2);
      writer.str('p');
      writer.float64(level.p);
      writer.str('s');
      writer.float64(level.s);
    }
  }
  writer.str('r');
  writer.bool(true);
  return writer.finish();
}

function jsonReset(book: Book, type: string): Buffer {
  const side = (levels: readonly BookLevel[]): string => `[${levels.map((l) => `{"p":${jsonFloat(l.p)},"s":${jsonFloat(l.s)}}`).join(',')}]`;
  const head = `{"T":${JSON.stringify(type)},"S":${JSON.stringify(book.symbol)}`;
  const tail = `"b":${side(book.bids)},"a":${side(book.asks)},"r":true}`;
  if (book.t === undefined) return Buffer.from(`${head},${tail}`);
  return Buffer.concat([Buffer.from(`${head},"t":`), book.t.bytes, Buffer.from(`,${tail}`)]);
}
