/**
 * One WebSocket to the vendor, for one connect attempt: open and greeting, auth, one
 * subscription request in flight at a time, pings, and a bounded close. The stream manager
 * creates one per attempt and owns its lifecycle; this class knows nothing of retries.
 */
import type { Logger } from 'pino';
import { WebSocket } from 'ws';
import type { Clock } from '../clock.js';
import { ProtocolError, UpstreamError, VendorError, vendorErrorMessage } from '../errors.js';
import { isControlType } from '../protocol/channels.js';
import { decodeMsgpack, type Encoding, encodeMessage, type MessageUnit, splitFrame } from '../protocol/frame.js';
import type { Secret } from '../secret.js';
import { STOCKS, type StreamKind } from '../protocol/streams.js';

export interface ConnectionHandlers {
  /** data messages of one frame, in order (unknown types included) */
  onData(units: MessageUnit[]): void;
  /** a control message nobody was waiting for (an error code, a subscription update) */
  onUnsolicited(message: Record<string, unknown>): void;
  /** a frame that is not the vendor's protocol */
  onMalformed(error: ProtocolError, bytes: number): void;
  onClose(code: number, reason: string): void;
  onPong(): void;
  /** bytes of every frame received */
  onBytes(bytes: number): void;
  /** every well-formed frame as the vendor sent it, with how many data messages it holds (the tape records it) */
  onFrame?(data: Buffer, encoding: Encoding, dataMessages: number): void;
}

interface Waiter {
  what: string;
  accept(message: Record<string, unknown>): boolean;
  resolve(message: Record<string, unknown>): void;
  reject(error: Error): void;
  timer: unknown;
}

export interface OpenOptions {
  url: string;
  encoding: Encoding;
  /** the kind of stream at `url`: how its frames are cut (default stocks) */
  kind?: StreamKind;
  clock: Clock;
  logger: Logger;
  handlers: ConnectionHandlers;
}

export class VendorConnection {
  readonly #socket: WebSocket;
  readonly #encoding: Encoding;
  readonly #kind: StreamKind;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #handlers: ConnectionHandlers;
  #waiter: Waiter | undefined;
  #closed = false;
  readonly #closedPromise: Promise<void>;

  private constructor(options: OpenOptions) {
    this.#encoding = options.encoding;
    this.#kind = options.kind ?? STOCKS;
    this.#clock = options.clock;
    this.#logger = options.logger;
    this.#handlers = options.handlers;
    const headers = options.encoding === 'msgpack' ? { 'Content-Type': 'application/msgpack' } : undefined;
    // The vendor's compression is optional; without it the bytes we forward are the bytes it sent.
    this.#socket = new WebSocket(options.url, { headers, perMessageDeflate: false, maxPayload: 0 });
    this.#closedPromise = new Promise((resolve) => {
      this.#socket.on('close', (code, reason) => {
        this.#closed = true;
        this.#failWaiter(new UpstreamError(`vendor connection closed (${code})`, { code: 'ERR_UPSTREAM_CLOSED' }));
        this.#handlers.onClose(code, reason.toString());
        resolve();
      });
    });
    this.#socket.on('message', (data, isBinary) => this.#onMessage(data as Buffer, isBinary));
    this.#socket.on('pong', () => this.#handlers.onPong());
    this.#socket.on('error', (err) => {
      this.#logger.debug({ err: { message: err.message, code: (err as { code?: string }).code } }, 'vendor socket error');
      this.#failWaiter(new UpstreamError(`vendor connection failed: ${err.message}`, { code: 'ERR_UPSTREAM_SOCKET', cause: err }));
    });
    this.#socket.on('unexpected-response', (req, res) => {
      this.#failWaiter(new UpstreamError(`vendor refused the upgrade with HTTP ${res.statusCode}`, { code: 'ERR_UPSTREAM_HANDSHAKE' }));
      res.resume();
      req.destroy();
    });
  }

  /** Starts connecting; `greeting()` waits for the vendor's hello. */
  static create(options: OpenOptions): VendorConnection {
    return new VendorConnection(options);
  }

  /**
   * Waits for the vendor's `connected` greeting (the socket opening included).
   * @throws UpstreamError on timeout, refusal or close; VendorError if the vendor greets with an error
   */
  async greeting(timeoutMs: number): Promise<void> {
    await this.#wait('the greeting', timeoutMs, (m) => m.T === 'success' && m.msg === 'connected', 'ERR_CONNECT_TIMEOUT');
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Stops reading from the vendor (its data waits in the socket's buffers; TCP pushes back) until `resume`. */
  pause(): void {
    this.#socket.pause();
  }

  resume(): void {
    this.#socket.resume();
  }

  /**
   * Sends the auth message (the only place the secret leaves its wrapper) and waits for the reply.
   * @throws VendorError with the vendor's code (402, 406, 409…); UpstreamError on timeout or close
   */
  async authenticate(key: Secret, secret: Secret, timeoutMs: number): Promise<void> {
    this.#ensureOpen();
    const reply = this.#wait('the auth reply', timeoutMs, (m) => m.T === 'success' && m.msg === 'authenticated', 'ERR_AUTH_TIMEOUT');
    this.#send(encodeMessage({ action: 'auth', key: key.reveal(), secret: secret.reveal() }, this.#encoding));
    await reply;
  }

  /**
   * Sends one subscribe/unsubscribe frame and waits for the vendor's `subscription` reply.
   * @throws VendorError when the vendor refuses it; UpstreamError on timeout or close
   */
  async request(frame: Buffer, timeoutMs: number): Promise<Record<string, unknown>> {
    // Checked before the wait is set up: a throw after it would leave a reply promise nobody awaits.
    this.#ensureOpen();
    const reply = this.#wait('the subscription reply', timeoutMs, (m) => m.T === 'subscription', 'ERR_SUBSCRIBE_TIMEOUT');
    this.#send(frame);
    return reply;
  }

  ping(): void {
    if (this.#socket.readyState === WebSocket.OPEN) this.#socket.ping();
  }

  /** Closes with 1000 and waits for the vendor's close, cutting the connection after `timeoutMs`. */
  async close(timeoutMs: number): Promise<void> {
    if (this.#closed) return;
    if (this.#socket.readyState === WebSocket.OPEN) this.#socket.close(1000, 'tickmux closing');
    else this.#socket.terminate();
    const timer = this.#clock.setTimeout(() => this.#socket.terminate(), timeoutMs);
    await this.#closedPromise;
    this.#clock.clearTimeout(timer);
  }

  /** Cuts the connection at once (dead or misbehaving vendor). */
  terminate(): void {
    this.#socket.terminate();
  }

  /** Resolves once the socket has closed. */
  whenClosed(): Promise<void> {
    return this.#closedPromise;
  }

  #ensureOpen(): void {
    if (this.#socket.readyState !== WebSocket.OPEN) throw new UpstreamError('vendor connection is not open', { code: 'ERR_UPSTREAM_CLOSED' });
  }

  /** Sends on an open socket (callers check with #ensureOpen first; ws reports write errors as events). */
  #send(frame: Buffer): void {
    this.#socket.send(frame, { binary: this.#encoding === 'msgpack' });
  }

  #wait(what: string, timeoutMs: number, accept: (m: Record<string, unknown>) => boolean, timeoutCode: string): Promise<Record<string, unknown>> {
    if (this.#waiter !== undefined) throw new UpstreamError(`already waiting for ${this.#waiter.what}`, { code: 'ERR_INTERNAL' });
    if (this.#closed) return Promise.reject(new UpstreamError('vendor connection closed', { code: 'ERR_UPSTREAM_CLOSED' }));
    return new Promise((resolve, reject) => {
      const timer = this.#clock.setTimeout(() => {
        this.#failWaiter(new UpstreamError(`${what} did not come within ${timeoutMs} ms`, { code: timeoutCode }));
      }, timeoutMs);
      this.#waiter = { what, accept, resolve, reject, timer };
    });
  }

  #settle(): Waiter | undefined {
    const waiter = this.#waiter;
    if (waiter !== undefined) this.#clock.clearTimeout(waiter.timer);
    this.#waiter = undefined;
    return waiter;
  }

  #failWaiter(error: Error): void {
    this.#settle()?.reject(error);
  }

  #onMessage(data: Buffer, isBinary: boolean): void {
    this.#handlers.onBytes(data.length);
    let units: MessageUnit[];
    try {
      units = splitFrame(data, isBinary ? 'msgpack' : 'json', this.#kind);
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      this.#handlers.onMalformed(err, data.length);
      return;
    }
    if (this.#handlers.onFrame !== undefined) {
      let dataMessages = 0;
      for (const unit of units) if (!isControlType(unit.type)) dataMessages += 1;
      this.#handlers.onFrame(data, isBinary ? 'msgpack' : 'json', dataMessages);
    }
    let data_: MessageUnit[] | undefined;
    for (const unit of units) {
      if (!isControlType(unit.type)) {
        (data_ ??= []).push(unit);
        continue;
      }
      if (data_ !== undefined) {
        this.#handlers.onData(data_);
        data_ = undefined;
      }
      this.#onControl(unit);
    }
    if (data_ !== undefined) this.#handlers.onData(data_);
  }

  #onControl(unit: MessageUnit): void {
    let message: Record<string, unknown>;
    try {
      message = decodeMsgpack(unit.encoded('msgpack')) as Record<string, unknown>;
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      this.#handlers.onMalformed(err, unit.byteLength('msgpack'));
      return;
    }
    const waiter = this.#waiter;
    if (waiter !== undefined && waiter.accept(message)) {
      this.#settle()?.resolve(message);
      return;
    }
    if (waiter !== undefined && message.T === 'error') {
      const code = typeof message.code === 'number' ? message.code : 500;
      this.#settle()?.reject(new VendorError(code, typeof message.msg === 'string' ? message.msg : vendorErrorMessage(code)));
      return;
    }
    this.#handlers.onUnsolicited(message);
  }
}
