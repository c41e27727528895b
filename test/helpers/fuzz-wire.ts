/**
 * Wire-level tools for the fuzz test: WebSocket frames built byte by byte (any opcode, reserved
 * bits, masking or declared length), a raw TCP peer that reads the server's HTTP answer and
 * frames, and a thin `ws` client that turns each request into one outcome ("error 400",
 * "error 402 → close 1008", "close 1007"…). Waits are driven by events; deadlines only turn a
 * hang into an outcome named "timeout".
 */
import { connect, type Socket } from 'node:net';
import { WebSocket } from 'ws';
import { ProtocolError } from '../../src/errors.js';
import { decodeFrame, type Encoding } from '../../src/protocol/frame.js';

export type Message = Record<string, unknown>;

/** Vendor control message types: always alone in a frame, each one an answer to something. */
const CONTROL = new Set(['success', 'error', 'subscription']);

/** A fixed handshake key: the fuzz is deterministic, and the key's value does not matter. */
export const HANDSHAKE_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';

export interface FrameSpec {
  opcode: number;
  payload?: Buffer;
  fin?: boolean;
  /** RSV1..3 as a 3-bit number */
  rsv?: number;
  masked?: boolean;
  /** the length the header claims, when it should lie */
  declaredLength?: bigint;
}

/** One WebSocket frame as a client sends it (masked unless told otherwise). */
export function buildFrame(spec: FrameSpec): Buffer {
  const payload = spec.payload ?? Buffer.alloc(0);
  const masked = spec.masked ?? true;
  const length = spec.declaredLength ?? BigInt(payload.length);
  const first = ((spec.fin ?? true) ? 0x80 : 0) | (((spec.rsv ?? 0) & 7) << 4) | (spec.opcode & 0x0f);
  const maskBit = masked ? 0x80 : 0;
  let header: Buffer;
  if (length < 126n) {
    header = Buffer.from([first, maskBit | Number(length)]);
  } else if (length < 65536n) {
    header = Buffer.alloc(4);
    header[0] = first;
    header[1] = maskBit | 126;
    header.writeUInt16BE(Number(length), 2);
  } else {
    header = Buffer.alloc(10);
    header[0] = first;
    header[1] = maskBit | 127;
    header.writeBigUInt64BE(length, 2);
  }
  if (!masked) return Buffer.concat([header, payload]);
  const mask = Buffer.from([0x37, 0xfa, 0x21, 0x3d]);
  const body = Buffer.alloc(payload.length);
  for (let i = 0; i < payload.length; i++) body[i] = (payload[i] as number) ^ (mask[i & 3] as number);
  return Buffer.concat([header, mask, body]);
}

/** A close frame's payload: the code, then the reason bytes. */
export function closePayload(code: number, reason: Buffer = Buffer.alloc(0)): Buffer {
  const out = Buffer.alloc(2 + reason.length);
  out.writeUInt16BE(code, 0);
  reason.copy(out, 2);
  return out;
}

/** An HTTP/1.1 upgrade request for `path`, with `extra` headers replacing or adding to the usual ones. */
export function upgradeRequest(path: string, extra: Record<string, string | undefined> = {}): Buffer {
  const headers: Record<string, string | undefined> = {
    Host: '127.0.0.1',
    Upgrade: 'websocket',
    Connection: 'Upgrade',
    'Sec-WebSocket-Key': HANDSHAKE_KEY,
    'Sec-WebSocket-Version': '13',
    ...extra,
  };
  const lines = Object.entries(headers)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}: ${v}`);
  return Buffer.from(`GET ${path} HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n`, 'latin1');
}

export interface ServerFrame {
  opcode: number;
  payload: Buffer;
}

/** Checks that wait for a condition on a peer, looked at again whenever the peer hears something. */
class Waiters {
  readonly #waiting = new Set<() => void>();

  /** Resolves with `check()`'s value once it has one, or with undefined at the deadline. */
  until<T>(check: () => T | undefined, limitMs: number): Promise<T | undefined> {
    return new Promise((resolve) => {
      const attempt = (): void => {
        const value = check();
        if (value === undefined) return;
        this.#waiting.delete(attempt);
        clearTimeout(timer);
        resolve(value);
      };
      const timer = setTimeout(() => {
        this.#waiting.delete(attempt);
        resolve(undefined);
      }, limitMs);
      this.#waiting.add(attempt);
      attempt();
    });
  }

  notify(): void {
    for (const attempt of [...this.#waiting]) attempt();
  }
}

/**
 * A raw TCP connection to the gateway that parses what the server sends: an HTTP answer, then
 * (after a 101) the server's WebSocket frames, decoded as far as they go.
 */
export class RawPeer {
  readonly socket: Socket;
  /** the status of the HTTP answer, once its head arrived */
  status: number | undefined;
  readonly frames: ServerFrame[] = [];
  /** what followed the head of an answer other than a 101 (its body, as far as it came) */
  body = Buffer.alloc(0);
  /** the server ended or the connection closed */
  ended = false;
  #buffer = Buffer.alloc(0);
  #headDone = false;
  readonly #waiters = new Waiters();

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.#buffer = Buffer.concat([this.#buffer, chunk]);
      this.#parse();
      this.#notify();
    });
    const done = (): void => {
      this.ended = true;
      this.#notify();
    };
    socket.on('end', done);
    socket.on('close', done);
    // A reset by the server is one way of ending; it is recorded as the end, not thrown.
    socket.on('error', done);
  }

  /** our local port → the label of the case that opened it, to name a connection the server leaks */
  static readonly labels = new Map<number, string>();

  static open(port: number, label = ''): Promise<RawPeer> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port });
      socket.once('connect', () => {
        RawPeer.labels.set(socket.localPort as number, label);
        socket.off('error', reject);
        resolve(new RawPeer(socket));
      });
      socket.once('error', reject);
    });
  }

  write(data: Buffer): void {
    if (!this.socket.destroyed && this.socket.writable) this.socket.write(data);
  }

  /** Our side is done sending (a FIN); the server may still answer. */
  end(): void {
    if (!this.socket.destroyed) this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }

  /** Control messages in the server's text/binary frames so far, in order. */
  messages(): Message[] {
    const out: Message[] = [];
    for (const frame of this.frames) {
      if (frame.opcode !== 1 && frame.opcode !== 2) continue;
      try {
        out.push(...(decodeFrame(frame.payload, frame.opcode === 2 ? 'msgpack' : 'json') as Message[]));
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw err;
        out.push({ T: 'undecodable' });
      }
    }
    return out;
  }

  /** The code of the server's close frame, if one came (1005 when it carried none). */
  closeCode(): number | undefined {
    const frame = this.frames.find((f) => f.opcode === 8);
    if (frame === undefined) return undefined;
    return frame.payload.length >= 2 ? frame.payload.readUInt16BE(0) : 1005;
  }

  /** Resolves with `check()`'s value once it has one, or with undefined at the deadline. */
  until<T>(check: () => T | undefined, limitMs: number): Promise<T | undefined> {
    return this.#waiters.until(check, limitMs);
  }

  #notify(): void {
    this.#waiters.notify();
  }

  #parse(): void {
    if (!this.#headDone) {
      const end = this.#buffer.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = this.#buffer.subarray(0, end).toString('latin1');
      const match = /^HTTP\/1\.[01] (\d{3})/.exec(head);
      this.status = match === null ? -1 : Number(match[1]);
      this.#headDone = true;
      // Only a 101 is followed by frames; any other answer's body is kept as it is.
      this.#buffer = this.#buffer.subarray(end + 4);
    }
    if (this.status !== 101) {
      this.body = Buffer.concat([this.body, this.#buffer]);
      this.#buffer = Buffer.alloc(0);
      return;
    }
    for (;;) {
      const buf = this.#buffer;
      if (buf.length < 2) return;
      const opcode = (buf[0] as number) & 0x0f;
      let length = (buf[1] as number) & 0x7f;
      let offset = 2;
      if (length === 126) {
        if (buf.length < 4) return;
        length = buf.readUInt16BE(2);
        offset = 4;
      } else if (length === 127) {
        if (buf.length < 10) return;
        length = Number(buf.readBigUInt64BE(2));
        offset = 10;
      }
      if (buf.length < offset + length) return;
      this.frames.push({ opcode, payload: Buffer.from(buf.subarray(offset, offset + length)) });
      this.#buffer = buf.subarray(offset + length);
    }
  }
}

/** What one request to the stream came to, as a short key: "error 400", "subscription", "close 1009"… */
export type OutcomeKey = string;

/** The key of a control message: "error 400", "subscription", "authenticated", or "other …". */
export function messageKey(message: Message): OutcomeKey {
  if (message.T === 'error') return `error ${String(message.code)}`;
  if (message.T === 'subscription') return 'subscription';
  if (message.T === 'success' && message.msg === 'authenticated') return 'authenticated';
  return `other ${JSON.stringify(message, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}`;
}

/**
 * A `ws` client for the fuzz: it keeps the server's control messages in a queue (data frames for
 * whatever it subscribed to are counted and dropped) and answers "what did that request come to".
 */
export class FuzzSocket {
  readonly ws: WebSocket;
  readonly encoding: Encoding;
  /** control messages not yet taken by `exchange` */
  readonly #control: Message[] = [];
  #pongs = 0;
  closeCode: number | undefined;
  dataMessages = 0;
  /** requests this socket carried */
  uses = 0;
  /** the control message the last `settle` took as the answer */
  lastReply: Message | undefined;
  readonly closed: Promise<number>;
  readonly #waiters = new Waiters();

  constructor(url: string, encoding: Encoding, headers: Record<string, string> = {}) {
    this.encoding = encoding;
    const all = { ...headers };
    if (encoding === 'msgpack') all['Content-Type'] = 'application/msgpack';
    this.ws = new WebSocket(url, { headers: all, perMessageDeflate: false, maxPayload: 0 });
    this.ws.on('message', (data, isBinary) => {
      let frame: Message[];
      try {
        frame = decodeFrame(data as Buffer, isBinary ? 'msgpack' : 'json') as Message[];
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw err;
        frame = [{ T: 'undecodable' }];
      }
      for (const message of frame) {
        if (typeof message.T === 'string' && CONTROL.has(message.T)) this.#control.push(message);
        else if (message.T === 'undecodable') this.#control.push(message);
        else this.dataMessages += 1;
      }
      this.#notify();
    });
    this.ws.on('pong', () => {
      this.#pongs += 1;
      this.#notify();
    });
    // A refused upgrade or a reset shows up as the close that follows it.
    this.ws.on('error', () => this.#notify());
    this.closed = new Promise((resolve) => {
      this.ws.on('close', (code) => {
        this.closeCode = code;
        this.#notify();
        resolve(code);
      });
    });
  }

  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  /** Resolves once the greeting arrived (true), or false when the socket closed or the deadline passed first. */
  async greeted(limitMs: number): Promise<boolean> {
    const first = await this.#until(() => (this.#control.length > 0 ? this.#control[0] : this.closeCode !== undefined ? null : undefined), limitMs);
    if (first === undefined || first === null) return false;
    const greeting = this.#control.shift() as Message;
    return greeting.T === 'success' && greeting.msg === 'connected';
  }

  /** The next control message, "close N" when the socket closed first, or undefined at the deadline. */
  async next(limitMs: number): Promise<Message | number | undefined> {
    return this.#until(() => (this.#control.length > 0 ? this.#control.shift() : this.closeCode), limitMs);
  }

  /**
   * Sends `data` as one message (in `fragments` frames when > 1) and returns what it came to:
   * the first control message, followed by " → close N" when the server closed right after it
   * (a ping sent after the reply tells: the server pongs unless it already sent its close), or
   * "close N" when the socket closed without an answer, or "timeout".
   */
  async exchange(data: Buffer, binary: boolean, fragments: number, limitMs: number): Promise<OutcomeKey> {
    this.uses += 1;
    if (!this.open) return this.closeCode === undefined ? 'not open' : `close ${this.closeCode}`;
    sendFragmented(this.ws, data, binary, fragments);
    return this.settle(limitMs);
  }

  /** What the next answer is (see `exchange`). */
  async settle(limitMs: number): Promise<OutcomeKey> {
    const reply = await this.next(limitMs);
    if (reply === undefined) return 'timeout';
    if (typeof reply === 'number') return `close ${reply}`;
    this.lastReply = reply;
    let key = messageKey(reply);
    const pongs = this.#pongs;
    if (this.open) this.ws.ping();
    const after = await this.#until(() => (this.closeCode !== undefined ? this.closeCode : this.#pongs > pongs ? 'open' : undefined), limitMs);
    if (after === undefined) return `${key} → timeout`;
    if (typeof after === 'number') key += ` → close ${after}`;
    // Every request gets exactly one answer: anything queued beside it is a second one.
    while (this.#control.length > 0) key += ` + ${messageKey(this.#control.shift() as Message)}`;
    return key;
  }

  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    if (this.ws.readyState === WebSocket.CONNECTING) this.ws.terminate();
    else this.ws.close();
    const timer = setTimeout(() => this.ws.terminate(), 1000);
    await this.closed;
    clearTimeout(timer);
  }

  #notify(): void {
    this.#waiters.notify();
  }

  #until<T>(check: () => T | undefined, limitMs: number): Promise<T | undefined> {
    return this.#waiters.until(check, limitMs);
  }
}

/** Sends one message as `fragments` frames (ws continuation frames), synchronously. */
function sendFragmented(ws: WebSocket, data: Buffer, binary: boolean, fragments: number): void {
  const count = Math.max(1, Math.min(fragments, data.length));
  if (count === 1) {
    ws.send(data, { binary, fin: true });
    return;
  }
  const step = Math.ceil(data.length / count);
  for (let start = 0; start < data.length; start += step) {
    const end = Math.min(data.length, start + step);
    ws.send(data.subarray(start, end), { binary, fin: end === data.length });
  }
}
