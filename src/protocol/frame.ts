/**
 * Frames and the message units they are cut into.
 *
 * Every frame on the stream is an array of messages. The fan-out never decodes a vendor frame:
 * `splitFrame` walks it once, records each message's byte range with its `T` and `S`, and the
 * units are re-batched per client by `joinFrame`, which only concatenates bytes. A unit converts
 * to the other encoding at most once and caches the result, so a message costs one conversion
 * however many clients of the other encoding receive it.
 */
import { decode, ExtensionCodec } from '@msgpack/msgpack';
import { ProtocolError } from '../errors.js';
import { JsonCursor, JsonNumber, JsonObject, type JsonValue, parseJson, peekJsonMessage } from './json.js';
import { assertUtf8Strings, MsgpackWriter, peekMessage, readHeader } from './msgpack.js';
import { STOCKS, type StreamKind, symbolsOf } from './streams.js';
import { EXT_TIMESTAMP, Timestamp } from './timestamp.js';
import { encodeMessageMsgpack, jsonToMsgpack, msgpackToJson, type WireValue } from './transcode.js';

export type Encoding = 'json' | 'msgpack';

/** One message of a frame: its type, symbol, and its bytes in one or both encodings. */
export class MessageUnit {
  /** `T`, or undefined when the message has none (it is then forwarded as unknown). */
  readonly type: string | undefined;
  /** `S`, or undefined for messages without a symbol. */
  readonly symbol: string | undefined;
  /** the `symbols` list of a kind that names its symbols there (news), else undefined */
  readonly #symbols: readonly string[] | undefined;
  #json: Buffer | undefined;
  #msgpack: Buffer | undefined;

  /** The encoding this message arrived in: its bytes there are the sender's own. */
  readonly sourceEncoding: Encoding;
  /** The kind of stream it came from: its float and timestamp fields steer JSON → msgpack. */
  readonly kind: StreamKind;

  constructor(
    encoding: Encoding,
    bytes: Buffer,
    type: string | undefined,
    symbol: string | undefined,
    kind: StreamKind = STOCKS,
    symbols?: readonly string[],
  ) {
    this.type = type;
    this.symbol = symbol;
    this.#symbols = symbols;
    this.sourceEncoding = encoding;
    this.kind = kind;
    if (encoding === 'json') this.#json = bytes;
    else this.#msgpack = bytes;
  }

  /**
   * The message's bytes in `encoding`: the original bytes when it arrived that way, else a
   * lossless conversion made once and cached.
   * @throws ConversionError when the value has no form in that encoding (NaN in JSON)
   */
  encoded(encoding: Encoding): Buffer {
    if (encoding === 'json') {
      this.#json ??= Buffer.from(msgpackToJson(this.#msgpack as Buffer));
      return this.#json;
    }
    this.#msgpack ??= jsonToMsgpack(this.#json as Buffer, 0, (this.#json as Buffer).length, this.kind);
    return this.#msgpack;
  }

  /**
   * Gives this message bytes of its own (exactly sized, copied once), so whoever keeps it — the
   * last-value cache, a lagging client's backlog — does not keep alive the whole vendor frame it
   * was cut from, or a shared allocation pool. Idempotent.
   */
  detach(): this {
    if (this.#json !== undefined && this.#json.byteLength !== this.#json.buffer.byteLength) this.#json = ownCopy(this.#json);
    if (this.#msgpack !== undefined && this.#msgpack.byteLength !== this.#msgpack.buffer.byteLength) this.#msgpack = ownCopy(this.#msgpack);
    return this;
  }

  /**
   * The symbols this message is about, for routing: its kind's `symbols` list (news; empty: about
   * nothing in particular), else its `S` alone. Made on demand: the `S` kinds' hot path reads `symbol`.
   */
  get symbols(): readonly string[] {
    if (this.kind.symbolsField === 'symbols') return this.#symbols ?? NO_SYMBOLS;
    return this.symbol === undefined ? NO_SYMBOLS : [this.symbol];
  }

  /**
   * The memory this message keeps alive: the allocations behind its bytes in both encodings, each
   * whole (a view into a vendor frame keeps the whole frame). For tests and diagnostics of bounds.
   */
  get retainedBytes(): number {
    return (this.#json?.buffer.byteLength ?? 0) + (this.#msgpack?.buffer.byteLength ?? 0);
  }

  #stateKey: string | undefined;

  /**
   * `type` and `symbol` as one string, made once per message and shared by every client that
   * keeps this message in a conflation map (its hash is computed once too).
   */
  get stateKey(): string {
    this.#stateKey ??= `${this.type ?? ''}\u0000${this.symbol ?? ''}`;
    return this.#stateKey;
  }

  #unconvertible: Encoding | undefined;

  /**
   * Set once a newer message of the same type and symbol has arrived (the hub's last-value cache
   * sees every one): a lagging client's backlog may skip this one for it (conflation, DESIGN.md §6).
   */
  superseded = false;

  /** The encoding this message could not be converted to, once that was tried. */
  get unconvertible(): Encoding | undefined {
    return this.#unconvertible;
  }

  /**
   * Like `encoded`, but a value the other encoding cannot hold (NaN in JSON, an integer past 64
   * bits in msgpack) gives undefined instead of a throw, and the verdict is cached.
   */
  tryEncoded(encoding: Encoding): Buffer | undefined {
    if (this.#unconvertible === encoding) return undefined;
    try {
      return this.encoded(encoding);
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      this.#unconvertible = encoding;
      return undefined;
    }
  }

  /** Byte length in `encoding` (converting if needed). */
  byteLength(encoding: Encoding): number {
    return this.encoded(encoding).length;
  }
}

const NO_SYMBOLS: readonly string[] = Object.freeze([]);

/** A copy of `bytes` in an allocation of exactly its size. */
function ownCopy(bytes: Buffer): Buffer {
  const copy = Buffer.allocUnsafeSlow(bytes.byteLength);
  bytes.copy(copy);
  return copy;
}

/**
 * Cuts a frame of a stream of `kind` into message units without decoding it (beyond `T`, `S`
 * and, for kinds that name their symbols in a list, that list).
 * @throws ProtocolError when the frame is not an array or is malformed anywhere
 */
export function splitFrame(data: Buffer, encoding: Encoding, kind: StreamKind = STOCKS): MessageUnit[] {
  return encoding === 'json' ? splitJsonFrame(data, kind) : splitMsgpackFrame(data, kind);
}

function splitMsgpackFrame(data: Buffer, kind: StreamKind): MessageUnit[] {
  const symbolsList = kind.symbolsField === 'symbols';
  const h = readHeader(data, 0);
  if (h.kind !== 'array') throw new ProtocolError('frame is not an array');
  const units: MessageUnit[] = new Array(h.count);
  let p = h.start;
  for (let i = 0; i < h.count; i++) {
    const peek = peekMessage(data, p, symbolsList);
    units[i] = new MessageUnit('msgpack', data.subarray(p, peek.end), peek.type, peek.symbol, kind, peek.symbols);
    p = peek.end;
  }
  if (p !== data.length) throw new ProtocolError('trailing bytes after msgpack frame');
  return units;
}

/**
 * How many messages the msgpack frame `data` holds if `accept` takes every one of them by its `T`
 * and `S` (read as `splitFrame` reads them), else -1 — without cutting it into units: whoever
 * takes the frame whole (a replay of a recorded frame) only needs to know it may.
 * @throws ProtocolError where `splitFrame` would
 */
export function countMessagesIf(data: Buffer, accept: (type: string | undefined, symbol: string | undefined) => boolean): number {
  const h = readHeader(data, 0);
  if (h.kind !== 'array') throw new ProtocolError('frame is not an array');
  let p = h.start;
  for (let i = 0; i < h.count; i++) {
    const peek = peekMessage(data, p);
    if (!accept(peek.type, peek.symbol)) return -1;
    p = peek.end;
  }
  if (p !== data.length) throw new ProtocolError('trailing bytes after msgpack frame');
  return h.count;
}

function splitJsonFrame(data: Buffer, kind: StreamKind): MessageUnit[] {
  const symbolsList = kind.symbolsField === 'symbols';
  const cursor = new JsonCursor(data);
  cursor.expect(0x5b);
  const units: MessageUnit[] = [];
  if (!cursor.accept(0x5d)) {
    do {
      cursor.skipWhitespace();
      const start = cursor.pos;
      cursor.value(false);
      const peek = peekJsonMessage(data, start, cursor.pos, symbolsList);
      units.push(new MessageUnit('json', data.subarray(start, cursor.pos), peek.type, peek.symbol, kind, peek.symbols));
    } while (cursor.accept(0x2c));
    cursor.expect(0x5d);
  }
  cursor.skipWhitespace();
  if (!cursor.atEnd) throw new ProtocolError('trailing data after JSON frame');
  return units;
}

/**
 * One message on its own (not in a frame) as a unit, validated like a frame's messages.
 * @throws ProtocolError when the bytes are not exactly one well-formed message
 */
export function splitMessage(data: Buffer, encoding: Encoding, kind: StreamKind = STOCKS): MessageUnit {
  const symbolsList = kind.symbolsField === 'symbols';
  if (encoding === 'msgpack') {
    const peek = peekMessage(data, 0, symbolsList);
    if (peek.end !== data.length) throw new ProtocolError('trailing bytes after msgpack message');
    return new MessageUnit('msgpack', data, peek.type, peek.symbol, kind, peek.symbols);
  }
  const cursor = new JsonCursor(data);
  cursor.skipWhitespace();
  const start = cursor.pos;
  cursor.value(false);
  const end = cursor.pos;
  cursor.skipWhitespace();
  if (!cursor.atEnd) throw new ProtocolError('trailing data after JSON message');
  const peek = peekJsonMessage(data, start, end, symbolsList);
  return new MessageUnit('json', data.subarray(start, end), peek.type, peek.symbol, kind, peek.symbols);
}

const OPEN = Buffer.from('[');
const COMMA = Buffer.from(',');
const CLOSE = Buffer.from(']');

/** One frame holding `units` in `encoding`, built by concatenating their bytes. */
export function joinFrame(units: readonly MessageUnit[], encoding: Encoding): Buffer {
  const parts: Buffer[] = [];
  if (encoding === 'json') {
    parts.push(OPEN);
    for (let i = 0; i < units.length; i++) {
      if (i > 0) parts.push(COMMA);
      parts.push((units[i] as MessageUnit).encoded('json'));
    }
    parts.push(CLOSE);
  } else {
    const header = new MsgpackWriter(8);
    header.arrayHeader(units.length);
    parts.push(header.finish());
    for (const unit of units) parts.push(unit.encoded('msgpack'));
  }
  return Buffer.concat(parts);
}

/**
 * Frames of one encoding, each with its count of messages, as one frame holding all their
 * messages in order: each frame's messages are copied as they are, only the array around them is new.
 * @throws ProtocolError when a part is not an array
 */
export function mergeFrames(frames: readonly { readonly frame: Buffer; readonly messages: number }[], encoding: Encoding): { frame: Buffer; messages: number } {
  let messages = 0;
  for (const part of frames) messages += part.messages;
  if (frames.length === 1) return { frame: (frames[0] as { frame: Buffer }).frame, messages };
  const parts: Buffer[] = [];
  if (encoding === 'msgpack') {
    const header = new MsgpackWriter(8);
    header.arrayHeader(messages);
    parts.push(header.finish());
    for (const { frame } of frames) {
      const h = readHeader(frame, 0);
      if (h.kind !== 'array') throw new ProtocolError('frame is not an array');
      parts.push(frame.subarray(h.start));
    }
  } else {
    parts.push(OPEN);
    let first = true;
    for (const { frame, messages: n } of frames) {
      if (n === 0) continue;
      const cursor = new JsonCursor(frame);
      cursor.expect(0x5b);
      let end = frame.length;
      while (end > cursor.pos && frame[end - 1] !== 0x5d) end -= 1; // `]`, after any trailing whitespace
      if (!first) parts.push(COMMA);
      parts.push(frame.subarray(cursor.pos, end - 1));
      first = false;
    }
    parts.push(CLOSE);
  }
  return { frame: Buffer.concat(parts), messages };
}

/**
 * Encodes messages of the value model as one unit each (`T` first, the float fields of `kind`'s
 * types kept float64).
 */
export function encodeUnits(messages: readonly WireValue[], encoding: Encoding, kind: StreamKind = STOCKS): MessageUnit[] {
  return messages.map((message) => {
    const writer = new MsgpackWriter();
    encodeMessageMsgpack(writer, message, kind);
    const packed = writer.finish();
    const record = message as Record<string, unknown> | null;
    const type = typeof record?.T === 'string' ? record.T : undefined;
    const symbol = typeof record?.S === 'string' ? record.S : undefined;
    const symbols = kind.symbolsField === 'symbols' && record !== null ? symbolsOf(kind, record) : undefined;
    const unit = new MessageUnit('msgpack', packed, type, symbol, kind, symbols);
    return encoding === 'msgpack' ? unit : new MessageUnit('json', unit.encoded('json'), type, symbol, kind, symbols);
  });
}

/** Encodes one message of the value model on its own, not in a frame (what clients send: auth, subscribe). */
export function encodeMessage(message: WireValue, encoding: Encoding): Buffer {
  const [unit] = encodeUnits([message], encoding);
  return (unit as MessageUnit).encoded(encoding);
}

/** Encodes messages of the value model as one frame, with the float fields of `kind`. */
export function encodeFrame(messages: readonly WireValue[], encoding: Encoding, kind: StreamKind = STOCKS): Buffer {
  return joinFrame(encodeUnits(messages, encoding, kind), encoding);
}

const extensionCodec = new ExtensionCodec();
extensionCodec.register({
  type: EXT_TIMESTAMP,
  encode: () => null,
  decode: (data: Uint8Array) => Timestamp.fromMsgpackExtData(data),
});

/**
 * Sets a key as an own property: a peer's `"__proto__"` key stays a plain key (JSON says it is one)
 * instead of replacing the object's prototype.
 */
function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  else target[key] = value;
}

/** Integers in the safe range as numbers, larger ones as bigint, whatever form carried them. */
function normalizeIntegers(value: unknown): unknown {
  if (typeof value === 'bigint') {
    return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
  }
  if (Array.isArray(value)) return value.map(normalizeIntegers);
  if (value !== null && typeof value === 'object' && !(value instanceof Timestamp) && !(value instanceof Uint8Array)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) setOwn(out, k, normalizeIntegers(v));
    return out;
  }
  return value;
}

/**
 * Fully decodes a msgpack value, losslessly: timestamps as `Timestamp`, 64-bit integers beyond
 * 2^53 as bigint.
 * @throws ProtocolError on malformed input
 */
export function decodeMsgpack(data: Uint8Array): unknown {
  try {
    return normalizeIntegers(decode(data, { extensionCodec, useBigInt64: true }));
  } catch (err) {
    if (err instanceof ProtocolError) throw err;
    if (err instanceof Error) throw new ProtocolError(`invalid msgpack: ${err.message}`, { cause: err });
    throw err;
  }
}

/** A lossless JSON value as the value model: exact integers (bigint beyond 2^53), keys in order. */
export function jsonValueToWire(value: JsonValue): unknown {
  if (value instanceof JsonNumber) {
    if (!value.integer) return Number(value.raw);
    const n = Number(value.raw);
    return Number.isSafeInteger(n) ? n : BigInt(value.raw);
  }
  if (Array.isArray(value)) return value.map(jsonValueToWire);
  if (value instanceof JsonObject) {
    const out: Record<string, unknown> = {};
    value.keys.forEach((k, i) => setOwn(out, k, jsonValueToWire(value.values[i] as JsonValue)));
    return out;
  }
  return value;
}

/**
 * Fully decodes a frame to the value model, the same for both encodings: a JSON frame goes
 * through the msgpack conversion, so its timestamps come back as `Timestamp` too.
 */
export function decodeFrame(data: Buffer, encoding: Encoding, kind: StreamKind = STOCKS): unknown[] {
  const packed = encoding === 'msgpack' ? data : joinFrame(splitFrame(data, 'json', kind), 'msgpack');
  const value = decodeMsgpack(packed);
  if (!Array.isArray(value)) throw new ProtocolError('frame is not an array');
  return value;
}

/**
 * Decodes one inbound control message (auth, subscribe…): binary frames are msgpack, text frames
 * JSON, whatever the session negotiated — the SDKs send msgpack, hand-written clients JSON.
 * @throws ProtocolError on malformed input
 */
export function decodeControlMessage(data: Buffer, isBinary: boolean): unknown {
  if (!isBinary) return jsonValueToWire(parseJson(data));
  // ws checks text frames' UTF-8; msgpack strings nobody checks, and the decoder takes overlong forms.
  assertUtf8Strings(data);
  return decodeMsgpack(data);
}
