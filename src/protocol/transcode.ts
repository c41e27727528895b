/**
 * Lossless conversion between the vendor's two encodings, one message at a time, plus the
 * encoder for messages tickmux builds itself (control replies, the simulator's market).
 *
 * msgpack → JSON walks the bytes and writes text directly: 64-bit integers become their digits,
 * timestamp extensions become RFC 3339 with every nanosecond. JSON → msgpack parses with exact
 * number tokens, puts `T` first, turns data timestamps back into the extension and keeps
 * floating-point fields float64 (the stream kind's `floatFields`), so msgpack → JSON → msgpack
 * reproduces the vendor's bytes.
 */
import { ConversionError, ProtocolError } from '../errors.js';
import { isControlType } from './channels.js';
import { JsonNumber, JsonObject, type JsonValue, parseJson } from './json.js';
import { MAX_DEPTH, MsgpackWriter, readHeader } from './msgpack.js';
import { type FloatFields, STOCKS, type StreamKind } from './streams.js';
import { EXT_TIMESTAMP, Timestamp } from './timestamp.js';

const NO_FIELDS: ReadonlySet<string> = new Set();
const NO_FLOATS: FloatFields = { fields: NO_FIELDS };

/** Formats a float the way JSON (and Go) would, keeping `-0`; non-finite values have no JSON form. */
export function jsonFloat(value: number): string {
  if (!Number.isFinite(value)) throw new ConversionError(`${value} cannot be represented in JSON`);
  return Object.is(value, -0) ? '-0' : String(value);
}

/** The JSON text of the msgpack value in `buf[start, end)`. */
export function msgpackToJson(buf: Buffer, start = 0, end = buf.length): string {
  const out: string[] = [];
  const stop = writeJson(buf, start, out, 0);
  if (stop !== end) throw new ProtocolError('trailing bytes after msgpack value');
  return out.join('');
}

function writeJson(buf: Buffer, pos: number, out: string[], depth: number): number {
  if (depth > MAX_DEPTH) throw new ProtocolError('msgpack nesting too deep');
  const h = readHeader(buf, pos);
  switch (h.kind) {
    case 'nil':
      out.push('null');
      return h.end;
    case 'bool':
      out.push(buf[pos] === 0xc3 ? 'true' : 'false');
      return h.end;
    case 'int':
    case 'uint':
      out.push(readInteger(buf, pos, h.start, h.end - h.start));
      return h.end;
    case 'float32':
      out.push(jsonFloat(buf.readFloatBE(h.start)));
      return h.end;
    case 'float64':
      out.push(jsonFloat(buf.readDoubleBE(h.start)));
      return h.end;
    case 'str':
      out.push(JSON.stringify(buf.toString('utf8', h.start, h.end)));
      return h.end;
    case 'ext':
      if (h.extType !== EXT_TIMESTAMP) throw new ConversionError(`msgpack extension ${h.extType} has no JSON form`);
      out.push(`"${Timestamp.fromMsgpackExtData(buf.subarray(h.start, h.end)).toString()}"`);
      return h.end;
    case 'bin':
      throw new ConversionError('msgpack binary has no JSON form');
    case 'array': {
      out.push('[');
      let p = h.start;
      for (let i = 0; i < h.count; i++) {
        if (i > 0) out.push(',');
        p = writeJson(buf, p, out, depth + 1);
      }
      out.push(']');
      return p;
    }
    case 'map': {
      out.push('{');
      let p = h.start;
      for (let i = 0; i < h.count; i++) {
        if (i > 0) out.push(',');
        const key = readHeader(buf, p);
        if (key.kind !== 'str') throw new ConversionError('msgpack map key that is not a string has no JSON form');
        out.push(JSON.stringify(buf.toString('utf8', key.start, key.end)), ':');
        p = writeJson(buf, key.end, out, depth + 1);
      }
      out.push('}');
      return p;
    }
  }
}

function readInteger(buf: Buffer, pos: number, start: number, width: number): string {
  const first = buf[pos] as number;
  if (width === 0) return String(first >= 0xe0 ? first - 0x100 : first); // fixint
  const unsigned = first >= 0xcc && first <= 0xcf;
  switch (width) {
    case 1:
      return String(unsigned ? buf.readUInt8(start) : buf.readInt8(start));
    case 2:
      return String(unsigned ? buf.readUInt16BE(start) : buf.readInt16BE(start));
    case 4:
      return String(unsigned ? buf.readUInt32BE(start) : buf.readInt32BE(start));
    default:
      return (unsigned ? buf.readBigUInt64BE(start) : buf.readBigInt64BE(start)).toString();
  }
}

/**
 * The msgpack bytes of the JSON message in `buf[start, end)`, with the float and timestamp
 * fields of a stream of `kind`.
 */
export function jsonToMsgpack(buf: Buffer, start = 0, end = buf.length, kind: StreamKind = STOCKS): Buffer {
  const writer = new MsgpackWriter();
  writeJsonMessage(writer, parseJson(buf, start, end), kind);
  return writer.finish();
}

function floatsOf(kind: StreamKind, type: unknown): FloatFields {
  return typeof type === 'string' ? (kind.floatFields[type] ?? NO_FLOATS) : NO_FLOATS;
}

/** A top-level message: `T` first, float fields as float64, data timestamps as the extension. */
function writeJsonMessage(writer: MsgpackWriter, value: JsonValue, kind: StreamKind): void {
  if (!(value instanceof JsonObject)) {
    writeJsonValue(writer, value);
    return;
  }
  const typeIndex = value.keys.indexOf('T');
  const type = typeIndex >= 0 ? value.values[typeIndex] : undefined;
  const floats = floatsOf(kind, type);
  const timestamps = typeof type === 'string' && !isControlType(type) ? kind.timestampFields : NO_FIELDS;
  writer.mapHeader(value.keys.length);
  const order = orderTypeFirst(value.keys.length, typeIndex);
  for (const i of order) {
    const key = value.keys[i] as string;
    const item = value.values[i] as JsonValue;
    writer.str(key);
    const itemFloats = floats.items?.[key];
    if (item instanceof JsonNumber && floats.fields.has(key)) writer.float64(Number(item.raw));
    else if (typeof item === 'string' && timestamps.has(key)) writeMaybeTimestamp(writer, item);
    else if (itemFloats !== undefined && Array.isArray(item)) writeJsonItems(writer, item, itemFloats);
    else writeJsonValue(writer, item);
  }
}

/** A list of maps (order-book levels) whose `floats` fields stay float64. */
function writeJsonItems(writer: MsgpackWriter, items: readonly JsonValue[], floats: ReadonlySet<string>): void {
  writer.arrayHeader(items.length);
  for (const item of items) {
    if (!(item instanceof JsonObject)) {
      writeJsonValue(writer, item);
      continue;
    }
    writer.mapHeader(item.keys.length);
    for (let i = 0; i < item.keys.length; i++) {
      const key = item.keys[i] as string;
      const field = item.values[i] as JsonValue;
      writer.str(key);
      if (field instanceof JsonNumber && floats.has(key)) writer.float64(Number(field.raw));
      else writeJsonValue(writer, field);
    }
  }
}

function orderTypeFirst(length: number, typeIndex: number): number[] {
  const order = Array.from({ length }, (_, i) => i);
  if (typeIndex > 0) {
    order.splice(typeIndex, 1);
    order.unshift(typeIndex);
  }
  return order;
}

function writeMaybeTimestamp(writer: MsgpackWriter, text: string): void {
  let timestamp: Timestamp;
  try {
    timestamp = Timestamp.parse(text);
  } catch (err) {
    // Not every string in a timestamp field must be one (unknown types); carry it as text.
    if (err instanceof ProtocolError) {
      writer.str(text);
      return;
    }
    throw err;
  }
  writer.ext(EXT_TIMESTAMP, timestamp.toMsgpackExtData());
}

function writeJsonValue(writer: MsgpackWriter, value: JsonValue): void {
  if (value === null) writer.nil();
  else if (typeof value === 'boolean') writer.bool(value);
  else if (typeof value === 'string') writer.str(value);
  else if (value instanceof JsonNumber) writeJsonNumber(writer, value);
  else if (Array.isArray(value)) {
    writer.arrayHeader(value.length);
    for (const item of value) writeJsonValue(writer, item);
  } else {
    writer.mapHeader(value.keys.length);
    for (let i = 0; i < value.keys.length; i++) {
      writer.str(value.keys[i] as string);
      writeJsonValue(writer, value.values[i] as JsonValue);
    }
  }
}

function writeJsonNumber(writer: MsgpackWriter, value: JsonNumber): void {
  if (!value.integer) {
    writer.float64(Number(value.raw));
    return;
  }
  if (value.raw === '-0') {
    writer.float64(-0);
    return;
  }
  const asNumber = Number(value.raw);
  if (Number.isSafeInteger(asNumber)) writer.int(asNumber);
  else {
    try {
      writer.bigint(BigInt(value.raw));
    } catch (err) {
      if (err instanceof ProtocolError) throw new ConversionError(`integer ${value.raw} does not fit msgpack's 64 bits`);
      throw err;
    }
  }
}

/**
 * The value model of messages tickmux builds itself: plain objects (key order kept, `T` written
 * first), numbers, bigints for 64-bit integers, strings, arrays, null, booleans, `Timestamp`s and
 * byte arrays. `undefined` properties are left out.
 */
export type WireValue =
  | null
  | undefined
  | boolean
  | number
  | bigint
  | string
  | Timestamp
  | Uint8Array
  | readonly WireValue[]
  | { readonly [key: string]: WireValue };

/**
 * Encodes one message of the value model to msgpack, with the same rules as the JSON path and
 * the float fields of a stream of `kind`.
 */
export function encodeMessageMsgpack(writer: MsgpackWriter, message: WireValue, kind: StreamKind = STOCKS): void {
  if (message === null || typeof message !== 'object' || Array.isArray(message) || message instanceof Timestamp || message instanceof Uint8Array) {
    writeWireValue(writer, message, 0);
    return;
  }
  const record = message as { readonly [key: string]: WireValue };
  const floats = floatsOf(kind, record.T);
  const keys = Object.keys(record).filter((k) => record[k] !== undefined);
  const typeIndex = keys.indexOf('T');
  writer.mapHeader(keys.length);
  for (const i of orderTypeFirst(keys.length, typeIndex)) {
    const key = keys[i] as string;
    const item = record[key];
    writer.str(key);
    const itemFloats = floats.items?.[key];
    if (typeof item === 'number' && floats.fields.has(key)) writer.float64(item);
    else if (itemFloats !== undefined && Array.isArray(item)) writeWireItems(writer, item as readonly WireValue[], itemFloats);
    else writeWireValue(writer, item, 1);
  }
}

/** A list of maps (order-book levels) whose `floats` fields stay float64. */
function writeWireItems(writer: MsgpackWriter, items: readonly WireValue[], floats: ReadonlySet<string>): void {
  writer.arrayHeader(items.length);
  for (const item of items) {
    if (item === null || typeof item !== 'object' || Array.isArray(item) || item instanceof Timestamp || item instanceof Uint8Array) {
      writeWireValue(writer, item, 2);
      continue;
    }
    const record = item as { readonly [key: string]: WireValue };
    const keys = Object.keys(record).filter((k) => record[k] !== undefined);
    writer.mapHeader(keys.length);
    for (const key of keys) {
      const field = record[key];
      writer.str(key);
      if (typeof field === 'number' && floats.has(key)) writer.float64(field);
      else writeWireValue(writer, field, 3);
    }
  }
}

function writeWireValue(writer: MsgpackWriter, value: WireValue, depth: number): void {
  if (depth > MAX_DEPTH) throw new ProtocolError('value nesting too deep');
  if (value === null || value === undefined) writer.nil();
  else if (typeof value === 'boolean') writer.bool(value);
  else if (typeof value === 'number') writer.number(value);
  else if (typeof value === 'bigint') writer.bigint(value);
  else if (typeof value === 'string') writer.str(value);
  else if (value instanceof Timestamp) writer.ext(EXT_TIMESTAMP, value.toMsgpackExtData());
  else if (value instanceof Uint8Array) writer.bin(value);
  else if (Array.isArray(value)) {
    writer.arrayHeader(value.length);
    for (const item of value as readonly WireValue[]) writeWireValue(writer, item, depth + 1);
  } else {
    const record = value as { readonly [key: string]: WireValue };
    const keys = Object.keys(record).filter((k) => record[k] !== undefined);
    writer.mapHeader(keys.length);
    for (const key of keys) {
      writer.str(key);
      writeWireValue(writer, record[key], depth + 1);
    }
  }
}
