/**
 * JSON at the byte level, for frames the vendor (or a client) sends as text: a strict validating
 * scanner that finds value boundaries without building anything (the fan-out splits frames with
 * it), and a lossless parser whose numbers keep their exact digits (64-bit ids survive, which
 * `JSON.parse` cannot promise).
 *
 * Works on UTF-8 bytes: every structural character is ASCII and no multi-byte UTF-8 sequence
 * contains an ASCII byte, so byte offsets are safe to cut at.
 */
import { ProtocolError } from '../errors.js';
import { MAX_DEPTH } from './msgpack.js';

/** A number exactly as written: `raw` is the JSON token, `integer` whether it has no fraction/exponent. */
export class JsonNumber {
  constructor(
    readonly raw: string,
    readonly integer: boolean,
  ) {}
}

/** An object with its keys in source order (plain objects reorder integer-like keys). */
export class JsonObject {
  readonly keys: string[] = [];
  readonly values: JsonValue[] = [];
}

export type JsonValue = null | boolean | string | JsonNumber | JsonValue[] | JsonObject;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

function isWhitespace(c: number | undefined): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

function isDigit(c: number | undefined): boolean {
  return c !== undefined && c >= 0x30 && c <= 0x39;
}

/**
 * A cursor over one JSON text. `value(true)` parses the value at the cursor, `value(false)`
 * validates and skips it; both share one grammar so the scanner and the parser cannot disagree.
 */
export class JsonCursor {
  pos: number;
  readonly #buf: Buffer;
  readonly #end: number;

  constructor(buf: Buffer, start = 0, end = buf.length) {
    this.#buf = buf;
    this.pos = start;
    this.#end = end;
  }

  get atEnd(): boolean {
    return this.pos >= this.#end;
  }

  #fail(what: string): never {
    throw new ProtocolError(`invalid JSON at byte ${this.pos}: ${what}`);
  }

  #peek(): number | undefined {
    return this.pos < this.#end ? this.#buf[this.pos] : undefined;
  }

  skipWhitespace(): void {
    while (this.pos < this.#end && isWhitespace(this.#buf[this.pos])) this.pos++;
  }

  /** Consumes `char` (after whitespace) or throws. */
  expect(char: number): void {
    this.skipWhitespace();
    if (this.#peek() !== char) this.#fail(`expected '${String.fromCharCode(char)}'`);
    this.pos++;
  }

  /** Consumes `char` (after whitespace) if it is next. */
  accept(char: number): boolean {
    this.skipWhitespace();
    if (this.#peek() !== char) return false;
    this.pos++;
    return true;
  }

  /** Parses (build) or skips (!build) the value at the cursor. */
  value(build: true, depth?: number): JsonValue;
  value(build: false, depth?: number): undefined;
  value(build: boolean, depth?: number): JsonValue | undefined;
  value(build: boolean, depth = 0): JsonValue | undefined {
    if (depth > MAX_DEPTH) this.#fail('nesting too deep');
    this.skipWhitespace();
    const c = this.#peek();
    switch (c) {
      case 0x7b: // {
        return this.#object(build, depth);
      case 0x5b: // [
        return this.#array(build, depth);
      case QUOTE:
        return this.string(build);
      case 0x74: // t
        return this.#literal('true', true, build);
      case 0x66: // f
        return this.#literal('false', false, build);
      case 0x6e: // n
        return this.#literal('null', null, build);
      default:
        if (c === 0x2d || isDigit(c)) return this.#number(build);
        return this.#fail(c === undefined ? 'unexpected end' : 'unexpected character');
    }
  }

  #literal<V>(word: string, value: V, build: boolean): V | undefined {
    if (this.pos + word.length > this.#end || this.#buf.toString('latin1', this.pos, this.pos + word.length) !== word) {
      this.#fail('bad literal');
    }
    this.pos += word.length;
    return build ? value : undefined;
  }

  #number(build: boolean): JsonNumber | undefined {
    const start = this.pos;
    let integer = true;
    if (this.#peek() === 0x2d) this.pos++;
    if (this.#peek() === 0x30) this.pos++;
    else if (isDigit(this.#peek())) this.#digits();
    else this.#fail('bad number');
    if (this.#peek() === 0x2e) {
      integer = false;
      this.pos++;
      if (!isDigit(this.#peek())) this.#fail('bad fraction');
      this.#digits();
    }
    const e = this.#peek();
    if (e === 0x65 || e === 0x45) {
      integer = false;
      this.pos++;
      const sign = this.#peek();
      if (sign === 0x2b || sign === 0x2d) this.pos++;
      if (!isDigit(this.#peek())) this.#fail('bad exponent');
      this.#digits();
    }
    return build ? new JsonNumber(this.#buf.toString('latin1', start, this.pos), integer) : undefined;
  }

  #digits(): void {
    while (isDigit(this.#peek())) this.pos++;
  }

  /** Parses or skips the string at the cursor (which must be a `"`). */
  string(build: true): string;
  string(build: boolean): string | undefined;
  string(build: boolean): string | undefined {
    const b = this.#buf;
    const start = this.pos;
    this.pos++;
    let escaped = false;
    for (;;) {
      if (this.pos >= this.#end) this.#fail('unterminated string');
      const c = b[this.pos] as number;
      if (c === QUOTE) break;
      if (c < 0x20) this.#fail('control character in string');
      if (c === BACKSLASH) {
        escaped = true;
        this.pos += 2;
      } else this.pos++;
    }
    this.pos++;
    if (!build && !escaped) return undefined;
    if (!escaped) return b.toString('utf8', start + 1, this.pos - 1);
    // Escapes are rare on this wire; the engine's parser decodes (and validates) them.
    try {
      return JSON.parse(b.toString('utf8', start, this.pos)) as string;
    } catch (err) {
      if (err instanceof SyntaxError) return this.#fail('bad escape in string');
      throw err;
    }
  }

  #array(build: boolean, depth: number): JsonValue[] | undefined {
    this.pos++;
    const items: JsonValue[] | undefined = build ? [] : undefined;
    if (this.accept(0x5d)) return items;
    do {
      const item = this.value(build, depth + 1);
      if (items !== undefined) items.push(item as JsonValue);
    } while (this.accept(0x2c));
    this.expect(0x5d);
    return items;
  }

  #object(build: boolean, depth: number): JsonObject | undefined {
    this.pos++;
    const object = build ? new JsonObject() : undefined;
    if (this.accept(0x7d)) return object;
    do {
      this.skipWhitespace();
      if (this.#peek() !== QUOTE) this.#fail('expected a key');
      const key = this.string(build);
      this.expect(0x3a);
      const item = this.value(build, depth + 1);
      if (object !== undefined) {
        object.keys.push(key as string);
        object.values.push(item as JsonValue);
      }
    } while (this.accept(0x2c));
    this.expect(0x7d);
    return object;
  }
}

/** Parses one JSON text losslessly; trailing non-whitespace is an error. */
export function parseJson(buf: Buffer, start = 0, end = buf.length): JsonValue {
  const cursor = new JsonCursor(buf, start, end);
  const value = cursor.value(true);
  cursor.skipWhitespace();
  if (!cursor.atEnd) throw new ProtocolError(`invalid JSON at byte ${cursor.pos}: trailing data`);
  return value;
}

/** A top-level object's `T` and `S` when they are strings. */
export function peekJsonMessage(buf: Buffer, start: number, end: number, symbolsList = false): { type?: string; symbol?: string; symbols?: string[] } {
  const cursor = new JsonCursor(buf, start, end);
  cursor.skipWhitespace();
  if (!cursor.accept(0x7b) || cursor.accept(0x7d)) return {};
  const found: { type?: string; symbol?: string; symbols?: string[] } = {};
  do {
    cursor.skipWhitespace();
    const key = cursor.string(true);
    cursor.expect(0x3a);
    cursor.skipWhitespace();
    const wanted = key === 'T' ? 'type' : key === 'S' ? 'symbol' : undefined;
    if (wanted !== undefined && buf[cursor.pos] === QUOTE) found[wanted] = cursor.string(true);
    else if (symbolsList && key === 'symbols' && buf[cursor.pos] === 0x5b) {
      // Only this list is built (a news item's symbols): every other value is skipped unread.
      const list = cursor.value(true);
      found.symbols = Array.isArray(list) ? list.filter((s): s is string => typeof s === 'string') : [];
    } else cursor.value(false);
  } while (cursor.accept(0x2c));
  return found;
}
