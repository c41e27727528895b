/**
 * Lossless conversion between the vendor's two encodings, one message at a time, plus the
 * encoder for messages tickmux builds itself (control replies, the simulator's market).
 *
 * msgpack → JSON walks the bytes and writes text directly: 64-bit integers become their digits,
 * timestamp extensions become RFC 3339 with every nanosecond. JSON → msgpack parses with exact
 * number tokens, puts `T` first, turns data timestamps back into the extension and keeps
 * floating-point fields float64 (FLOAT_FIELDS), so msgpack → JSON → msgpack reproduces the
 * vendor's bytes.
 */
import { ConversionError, ProtocolError } from '../errors.js';
import { CONTROL_TYPES, FLOAT_FIELDS, TIMESTAMP_FIELDS } from './channels.js';
import { JsonNumber, JsonObject, type JsonValue, parseJson } from './json.js';
import { MAX_DEPTH, MsgpackWriter, readHeader } from './msgpack.js';
import { EXT_TIMESTAMP, Timestamp } from './timestamp.js';

const NO_FIELDS: ReadonlySet<string> = new Set();

function isControlType(type: unknown): boolean {
  return (CONTROL_TYPES as readonly unknown[]).includes(type);
}

/** Formats a float the way JSON (and Go) would, keeping `-0`; non-finite values have no JSON form. */
function jsonFloat(value: number): string {
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

/** The msgpack bytes of the JSON message in `buf[start, end)`. */
export function jsonToMsgpack(buf: Buffer, start = 0, end = buf.length): Buffer {
  const writer = new MsgpackWriter();
  writeJsonMessage(writer, parseJson(buf, start, end));
  return writer.finish();
}

/** A top-level message: `T` first, float fields as float64, data timestamps as the extension. */
function writeJsonMessage(writer: MsgpackWriter, value: JsonValue): void {
  if (!(value instanceof JsonObject)) {
    writeJsonValue(writer, value);
    return;
  }
  const typeIndex = value.keys.indexOf('T');
  const type = typeIndex >= 0 ? value.values[typeIndex] : undefined;
  const floats = typeof type === 'string' ? (FLOAT_FIELDS[type] ?? NO_FIELDS) : NO_FIELDS;
  const timestamps = typeof type === 'string' && !isControlType(type) ? TIMESTAMP_FIELDS : NO_FIELDS;
  writer.mapHeader(value.keys.length);
  const order = orderTypeFirst(value.keys.length, typeIndex);
  for (const i of order) {
    const key = value.keys[i] as string;
    const item = value.values[i] as JsonValue;
    writer.str(key);
    if (item instanceof JsonNumber && floats.has(key)) writer.float64(Number(item.raw));
    else if (typeof item === 'string' && timestamps.has(key)) writeMaybeTimestamp(writer, item);
    else writeJsonValue(writer, item);
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

/** Encodes one message of the value model to msgpack, with the same rules as the JSON path. */
export function encodeMessageMsgpack(writer: MsgpackWriter, message: WireValue): void {
  if (message === null || typeof message !== 'object' || Array.isArray(message) || message instanceof Timestamp || message instanceof Uint8Array) {
    writeWireValue(writer, message, 0);
    return;
  }
  const record = message as { readonly [key: string]: WireValue };
  const type = record.T;
  const floats = typeof type === 'string' ? (FLOAT_FIELDS[type] ?? NO_FIELDS) : NO_FIELDS;
  const keys = Object.keys(record).filter((k) => record[k] !== undefined);
  const typeIndex = keys.indexOf('T');
  writer.mapHeader(keys.length);
  for (const i of orderTypeFirst(keys.length, typeIndex)) {
    const key = keys[i] as string;
    const item = record[key];
    writer.str(key);
    if (typeof item === 'number' && floats.has(key)) writer.float64(item);
    else writeWireValue(writer, item, 1);
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
