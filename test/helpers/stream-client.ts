/**
 * A plain WebSocket client for tests that speaks the stream protocol by hand: it records every
 * frame decoded losslessly and lets a test wait for the message it expects. Waiting is driven by
 * events; the deadline only turns a hang into a readable failure, it measures nothing.
 */
import { WebSocket } from 'ws';
import { ProtocolError } from '../../src/errors.js';
import { decodeFrame, type Encoding, encodeFrame } from '../../src/protocol/frame.js';
import type { WireValue } from '../../src/protocol/transcode.js';

export type Message = Record<string, unknown>;

export interface ClientOptions {
  encoding?: Encoding;
  headers?: Record<string, string>;
}

/** How long a wait may hang before the test fails with a description of what never came. */
export const WAIT_LIMIT_MS = 10_000;

export class StreamClient {
  readonly socket: WebSocket;
  readonly encoding: Encoding;
  /** every message received, in order */
  readonly messages: Message[] = [];
  /** every frame received, as message arrays */
  readonly frames: Message[][] = [];
  /** raw frames with their kind (text or binary) */
  readonly raw: { data: Buffer; isBinary: boolean }[] = [];
  /** frames that did not decode, with the reason */
  readonly undecodable: { data: Buffer; reason: string }[] = [];
  closeCode: number | undefined;
  closeReason = '';
  readonly closed: Promise<number>;
  readonly #waiters = new Set<() => void>();

  constructor(url: string, options: ClientOptions = {}) {
    this.encoding = options.encoding ?? 'json';
    const headers = { ...(options.headers ?? {}) };
    if (this.encoding === 'msgpack') headers['Content-Type'] = 'application/msgpack';
    this.socket = new WebSocket(url, { headers, perMessageDeflate: false });
    this.socket.on('message', (data, isBinary) => {
      const buffer = data as Buffer;
      this.raw.push({ data: buffer, isBinary });
      try {
        const frame = decodeFrame(buffer, isBinary ? 'msgpack' : 'json') as Message[];
        this.frames.push(frame);
        this.messages.push(...frame);
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw err;
        this.undecodable.push({ data: buffer, reason: err.message });
      }
      this.#notify();
    });
    this.socket.on('error', () => this.#notify());
    this.closed = new Promise((resolve) => {
      this.socket.on('close', (code, reason) => {
        this.closeCode = code;
        this.closeReason = reason.toString();
        this.#notify();
        resolve(code);
      });
    });
  }

  #notify(): void {
    for (const waiter of this.#waiters) waiter();
  }

  /** Resolves when the socket is open; rejects with the HTTP refusal when the upgrade fails. */
  opened(): Promise<void> {
    if (this.socket.readyState === WebSocket.OPEN) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.socket.once('open', () => resolve());
      this.socket.once('unexpected-response', (_req, res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => (body += chunk.toString()));
        res.on('end', () => reject(Object.assign(new Error(`upgrade refused: ${res.statusCode}`), { statusCode: res.statusCode, body })));
      });
      this.socket.once('error', reject);
    });
  }

  /** Sends a message of the value model in this client's encoding (or raw bytes/text as given). */
  send(message: WireValue | string | Buffer, options: { binary?: boolean } = {}): void {
    if (typeof message === 'string' || Buffer.isBuffer(message)) {
      this.socket.send(message, { binary: options.binary ?? Buffer.isBuffer(message) });
      return;
    }
    const frame = encodeFrame([message], this.encoding);
    // A client sends one object, not an array: strip the array header.
    const single = this.encoding === 'json' ? frame.subarray(1, frame.length - 1) : frame.subarray(1);
    this.socket.send(single, { binary: this.encoding === 'msgpack' });
  }

  /** Waits until `predicate` holds for some message received after index `from`. */
  async waitFor(predicate: (m: Message) => boolean, what = 'a matching message', from = 0): Promise<Message> {
    const found = await this.until(() => this.messages.slice(from).find(predicate), what);
    return found;
  }

  /** Waits until `check` returns a value other than undefined/false. */
  until<T>(check: () => T | undefined | false, what: string): Promise<T> {
    return new Promise((resolve, reject) => {
      const attempt = (): void => {
        const value = check();
        if (value !== undefined && value !== false) {
          this.#waiters.delete(attempt);
          clearTimeout(timer);
          resolve(value);
        }
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(attempt);
        reject(new Error(`gave up waiting for ${what}; last messages: ${describe(this.messages.slice(-3))}`));
      }, WAIT_LIMIT_MS);
      this.#waiters.add(attempt);
      attempt();
    });
  }

  /** Authenticates by message and waits for the reply (success or error). */
  async auth(key = 'key', secret = 'secret'): Promise<Message> {
    await this.waitFor((m) => m.T === 'success' && m.msg === 'connected', 'the connected greeting');
    const from = this.messages.length;
    this.send({ action: 'auth', key, secret });
    return this.waitFor((m) => (m.T === 'success' && m.msg === 'authenticated') || m.T === 'error', 'the auth reply', from);
  }

  /** Sends a subscribe/unsubscribe and waits for its reply (subscription or error). */
  async request(message: Record<string, WireValue>): Promise<Message> {
    const from = this.messages.length;
    this.send(message);
    return this.waitFor((m) => m.T === 'subscription' || m.T === 'error', `the reply to ${message.action}`, from);
  }

  /** Closes and waits for the close to complete. */
  async close(): Promise<void> {
    if (this.socket.readyState === WebSocket.CLOSED) return;
    if (this.socket.readyState === WebSocket.CONNECTING) {
      this.socket.terminate();
    } else {
      this.socket.close();
      // A peer that stopped answering must not keep the test waiting for a close handshake.
      const timer = setTimeout(() => this.socket.terminate(), 1000);
      await this.closed;
      clearTimeout(timer);
      return;
    }
    await this.closed;
  }
}

function describe(messages: Message[]): string {
  return JSON.stringify(messages, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
}
