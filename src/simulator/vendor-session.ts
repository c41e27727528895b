/**
 * One client connection to the simulated vendor on one stream path: the handshake, auth,
 * subscriptions as the stream's kind takes them, the error replies, and per-connection
 * slow-client enforcement.
 */
import type { Logger } from 'pino';
import type { WebSocket } from 'ws';
import { vendorErrorMessage } from '../errors.js';
import { parseClientRequest } from '../protocol/client-request.js';
import { ChannelSet } from '../protocol/channel-set.js';
import { type Encoding, encodeFrame, joinFrame, type MessageUnit } from '../protocol/frame.js';
import { type Channel, CHANNELS, type ChannelSymbols, parseChannels, type StreamKind, subscriptionReply, WILDCARD } from '../protocol/streams.js';
import type { WireValue } from '../protocol/transcode.js';

/** What a key may do on the simulated vendor (a plan). */
export interface SimulatedPlan {
  /** feeds the key may use, named by their path's last segment: `iex`, `sip`, `us`, `opra`, `news`… (default: all) */
  readonly feeds?: readonly string[];
  /** distinct symbols across channels (default: unlimited) */
  readonly maxSymbols?: number;
  /** whether `*` is allowed (default: true) */
  readonly wildcard?: boolean;
}

/** The simulator as a session sees it: credentials, the connection registry, injected faults. */
export interface VendorContext {
  readonly logger: Logger;
  /** the key's plan when key and secret are right, else undefined */
  checkCredentials(key: string, secret: string): SimulatedPlan | undefined;
  planFor(key: string): SimulatedPlan;
  /** an error code to answer the next auth or subscribe with, consumed when returned */
  takeInjectedError(on: 'auth' | 'subscribe', path: string): number | undefined;
  /** whether another authenticated session holds this key on this stream path */
  isKeyInUse(key: string, path: string, except: VendorSession): boolean;
  onAuthenticated(session: VendorSession): void;
  /** after the reply to a change: `added` holds the pairs it added (for order-book resets) */
  onSubscriptionChange(session: VendorSession, action: 'subscribe' | 'unsubscribe', frameBytes: number, added: ChannelSet): void;
  onClosed(session: VendorSession): void;
  onSlowClient(session: VendorSession): void;
  /** whether the vendor is stalled on this stream path (answers nothing) */
  isStalled(path: string): boolean;
  /** whether unsubscribes are acknowledged but the pairs kept (a vendor quirk a link must survive) */
  readonly keepOnUnsubscribe: boolean;
}

export interface SessionLimits {
  readonly authTimeoutMs: number;
  readonly maxBufferBytes: number;
  /** larger client frames get 400 and a 1009 close */
  readonly maxPayloadBytes: number;
}

/** Codes after which the vendor closes the connection. */
const CLOSING_CODES = new Set([402, 404, 406, 407, 408, 409, 411, 412]);

/** How long a closing peer may take to answer the close before its TCP connection is cut. */
const KILL_AFTER_MS = 5000;

let nextId = 1;

export class VendorSession {
  readonly id = nextId++;
  /** the stream path, e.g. `v2/iex`, `v1beta3/crypto/us` */
  readonly path: string;
  /** the path's last segment: `iex`, `us`, `indicative`, `news`… */
  readonly feed: string;
  readonly kind: StreamKind;
  readonly encoding: Encoding;
  key: string | undefined;
  authenticated = false;
  /** frames received from the client, their sizes in bytes (tests check the 32 KiB split) */
  readonly inboundSizes: number[] = [];
  /** the close code the peer's close carried (1006 when the connection was cut without one) */
  closeCode: number | undefined;
  readonly #socket: WebSocket;
  readonly #context: VendorContext;
  readonly #limits: SessionLimits;
  #symbols = new ChannelSet();
  #authTimer: NodeJS.Timeout | undefined;
  #killTimer: NodeJS.Timeout | undefined;
  #closing = false;

  constructor(socket: WebSocket, path: string, kind: StreamKind, encoding: Encoding, context: VendorContext, limits: SessionLimits) {
    this.#socket = socket;
    this.path = path;
    this.feed = path.slice(path.lastIndexOf('/') + 1);
    this.kind = kind;
    this.encoding = encoding;
    this.#context = context;
    this.#limits = limits;
  }

  /** Greets the client and starts the auth deadline; header credentials are checked at once. */
  open(headerKey: string | undefined, headerSecret: string | undefined): void {
    const socket = this.#socket;
    socket.on('message', (data, isBinary) => this.#onMessage(data as Buffer, isBinary));
    socket.on('ping', (data) => {
      if (!this.#context.isStalled(this.path)) socket.pong(data);
    });
    socket.on('close', (code) => {
      this.closeCode = code;
      this.#onClose();
    });
    socket.on('error', (err) => this.#context.logger.debug({ session: this.id, err }, 'simulator socket error'));
    if (!this.kind.encodings.includes(this.encoding)) {
      // VERIFY (PROTOCOL-STREAMS §2.1): read as "the session is refused at once": 412 instead of the welcome, then close.
      this.#fail(412);
      return;
    }
    this.#sendControl({ T: 'success', msg: 'connected' });
    this.#authTimer = setTimeout(() => this.#fail(404), this.#limits.authTimeoutMs);
    if (headerKey !== undefined || headerSecret !== undefined) this.#authenticate(headerKey, headerSecret);
  }

  /** This session's current subscription set, in insertion order. */
  subscriptions(): ChannelSymbols {
    return this.#symbols.toLists();
  }

  /**
   * Whether this session should receive a data message of `type` about `symbols` (its `S`, or a
   * news item's list: any one held is enough, none reaches `*` only).
   */
  wants(type: string | undefined, symbols: readonly string[]): boolean {
    if (!this.authenticated || type === undefined) return false;
    const channel = this.kind.typeToChannel[type];
    if (channel === undefined) return true; // unknown types go to everyone, as the vendor may add any
    if (symbols.length === 0) return this.#symbols.covers(channel, undefined);
    return symbols.some((symbol) => this.#symbols.covers(channel, symbol));
  }

  /** Every (channel, symbol) this session holds, for the market to know what to generate. */
  held(): Generator<[Channel, string]> {
    return this.#symbols.pairs();
  }

  /**
   * Sends data units as frames of at most `batchSize` messages. A client whose unsent bytes
   * exceed the limit gets 407 and is closed, like the vendor's slow-client rule.
   */
  sendData(units: readonly MessageUnit[], batchSize: number): void {
    if (this.#closing || units.length === 0) return;
    for (let i = 0; i < units.length; i += batchSize) {
      if (this.#socket.bufferedAmount > this.#limits.maxBufferBytes) {
        this.#context.onSlowClient(this);
        this.#fail(407);
        return;
      }
      this.#socket.send(joinFrame(units.slice(i, i + batchSize), this.encoding), { binary: this.encoding === 'msgpack' });
    }
  }

  /** Sends a raw frame as is, in this session's frame kind (fault injection). */
  sendRaw(frame: Buffer): void {
    if (!this.#closing) this.#socket.send(frame, { binary: this.encoding === 'msgpack' });
  }

  /** Closes cleanly with `code`, or cuts the TCP connection when `terminate`. */
  close(code = 1000, terminate = false): void {
    this.#closing = true;
    if (terminate) this.#socket.terminate();
    else this.#socket.close(code);
  }

  #sendControl(message: WireValue): void {
    if (this.#closing) return;
    this.#socket.send(encodeFrame([message], this.encoding), { binary: this.encoding === 'msgpack' });
  }

  /** Sends the vendor's error message for `code`. */
  sendError(code: number): void {
    this.#sendControl({ T: 'error', code, msg: vendorErrorMessage(code) });
  }

  /** Sends the error; for the codes the vendor closes on, closes (and cuts it if the peer never answers). */
  #fail(code: number): void {
    this.sendError(code);
    if (!CLOSING_CODES.has(code) || this.#closing) return;
    this.#closing = true;
    this.#clearAuthTimer();
    this.#socket.close(1008, vendorErrorMessage(code));
    this.#killTimer = setTimeout(() => this.#socket.terminate(), KILL_AFTER_MS);
  }

  #clearAuthTimer(): void {
    if (this.#authTimer !== undefined) clearTimeout(this.#authTimer);
    this.#authTimer = undefined;
  }

  #onClose(): void {
    this.#closing = true;
    this.#clearAuthTimer();
    if (this.#killTimer !== undefined) clearTimeout(this.#killTimer);
    this.#context.onClosed(this);
  }

  #onMessage(data: Buffer, isBinary: boolean): void {
    this.inboundSizes.push(data.length);
    if (this.#context.isStalled(this.path) || this.#closing) return;
    if (data.length > this.#limits.maxPayloadBytes) {
      this.sendError(400);
      this.close(1009);
      return;
    }
    const request = parseClientRequest(data, isBinary);
    switch (request.action) {
      case 'auth':
        this.#authenticate(request.key, request.secret);
        return;
      case 'subscribe':
      case 'unsubscribe':
        this.#changeSubscriptions(request.action, request.body, data.length);
        return;
      case 'invalid':
        this.#context.logger.debug({ session: this.id, reason: request.reason }, 'simulator: invalid client frame');
        this.sendError(400);
    }
  }

  #authenticate(key: unknown, secret: unknown): void {
    if (this.authenticated) {
      this.sendError(403);
      return;
    }
    if (typeof key !== 'string' || typeof secret !== 'string') {
      this.sendError(400);
      return;
    }
    const injected = this.#context.takeInjectedError('auth', this.path);
    if (injected !== undefined) {
      this.#fail(injected);
      return;
    }
    const plan = this.#context.checkCredentials(key, secret);
    if (plan === undefined) {
      this.#fail(402);
      return;
    }
    const feeds = plan.feeds;
    if (feeds !== undefined && !feeds.includes(this.feed)) {
      this.#fail(409);
      return;
    }
    if (this.#context.isKeyInUse(key, this.path, this)) {
      this.#fail(406);
      return;
    }
    this.#clearAuthTimer();
    this.key = key;
    this.authenticated = true;
    this.#context.onAuthenticated(this);
    this.#sendControl({ T: 'success', msg: 'authenticated' });
  }

  #changeSubscriptions(action: 'subscribe' | 'unsubscribe', request: Record<string, unknown>, frameBytes: number): void {
    if (!this.authenticated) {
      this.sendError(401);
      return;
    }
    const parsed = parseChannels(request, this.kind);
    if (typeof parsed === 'number') {
      this.sendError(parsed);
      return;
    }
    const plan = this.#context.planFor(this.key as string);
    if (action === 'subscribe' && plan.wildcard === false && CHANNELS.some((c) => parsed[c].includes(WILDCARD))) {
      this.sendError(409);
      return;
    }
    const injected = this.#context.takeInjectedError('subscribe', this.path);
    if (injected !== undefined) {
      this.sendError(injected);
      return;
    }
    // Apply to a copy first: a refused request leaves the set exactly as it was (vendor 405 rule).
    const next = this.#symbols.clone();
    if (action === 'subscribe') next.addAll(parsed);
    else if (!this.#context.keepOnUnsubscribe) next.deleteAll(parsed);
    if (plan.maxSymbols !== undefined && next.distinctSymbols > plan.maxSymbols) {
      this.sendError(405);
      return;
    }
    const added = next.minus(this.#symbols);
    this.#symbols = next;
    this.#sendControl(subscriptionReply(this.subscriptions(), this.kind) as WireValue);
    this.#context.onSubscriptionChange(this, action, frameBytes, added);
  }
}
