/**
 * One downstream client, speaking the vendor's protocol (DESIGN.md §3): the greeting, auth by
 * message or headers, subscribe/unsubscribe with this client's own full set in every reply, the
 * vendor's error codes, and its outbound queue. What it holds is recorded through the hub, which
 * owns the shared index and the vendor link.
 */
import type { Logger } from 'pino';
import { WebSocket } from 'ws';
import type { Clock } from '../clock.js';
import { vendorErrorMessage } from '../errors.js';
import { ChannelSet } from '../protocol/channel-set.js';
import { parseChannels, subscriptionReply, TYPE_TO_CHANNEL } from '../protocol/channels.js';
import { parseClientRequest } from '../protocol/client-request.js';
import { type Encoding, encodeFrame, type MessageUnit } from '../protocol/frame.js';
import type { WireValue } from '../protocol/transcode.js';
import { OutboundQueue, type QueueCounters, type QueueLimits } from './outbound-queue.js';

/** Codes after which the client is disconnected, as the vendor does. */
const CLOSING_CODES = new Set([402, 404, 406, 407]);

/** How long a closing client may take to answer our close before its connection is cut. */
const CLOSE_GRACE_MS = 2000;

export interface SessionOptions {
  /** `?snapshot=1`: last values on subscribe */
  readonly snapshot: boolean;
  /** `?events=1`: gateway notices about the vendor link */
  readonly events: boolean;
}

/** What a session needs from the hub. */
export interface SessionHost {
  readonly logger: Logger;
  readonly clock: Clock;
  readonly limits: QueueLimits & { maxSymbolsPerClient: number; authTimeoutMs: number; maxMessageBytes: number };
  readonly counters: QueueCounters;
  authenticate(key: string, secret: string): boolean;
  /** undefined when the change may go ahead; else the vendor error code that refuses it */
  admit(session: ClientSession, add: ChannelSet): number | undefined;
  /** records the change in the shared index and tells the vendor link */
  apply(session: ClientSession, add: ChannelSet, remove: ChannelSet): void;
  /** last values for newly held pairs (`?snapshot=1`) */
  snapshot(add: ChannelSet, encoding: Encoding): MessageUnit[];
  /** flushes this session's queue at the end of the turn */
  scheduleFlush(session: ClientSession): void;
  onAuthenticated(session: ClientSession): void;
  onSlowClient(session: ClientSession): void;
  onClosed(session: ClientSession): void;
}

let nextId = 1;

export class ClientSession {
  readonly id = nextId++;
  readonly encoding: Encoding;
  readonly options: SessionOptions;
  readonly queue: OutboundQueue;
  readonly remoteAddress: string;
  authenticated = false;
  /** hub bookkeeping: the fan-out turn this session was last touched in */
  turn = 0;
  /** hub bookkeeping: units routed to it in that turn (-1: other units were queued too) */
  routed = 0;
  /** the key this client authenticated with (not secret: it names the client in logs) */
  key: string | undefined;
  readonly #socket: WebSocket;
  readonly #host: SessionHost;
  readonly #log: Logger;
  #set = new ChannelSet();
  #authTimer: unknown;
  #killTimer: unknown;
  #closing = false;

  constructor(socket: WebSocket, encoding: Encoding, options: SessionOptions, remoteAddress: string, host: SessionHost) {
    this.#socket = socket;
    this.encoding = encoding;
    this.options = options;
    this.remoteAddress = remoteAddress;
    this.#host = host;
    this.#log = host.logger.child({ client: this.id });
    const binary = encoding === 'msgpack';
    this.queue = new OutboundQueue(
      encoding,
      (frame, done) => {
        if (socket.readyState === WebSocket.OPEN) socket.send(frame, { binary }, done);
      },
      host.limits,
      () => this.#slow(),
      host.counters,
    );
    // Listeners go on synchronously: a message that arrives during an await would be lost.
    socket.on('message', (data, isBinary) => {
      try {
        this.#onMessage(data as Buffer, isBinary);
      } catch (err) {
        // The one deliberate catch-all: a fault in handling one client's request costs that
        // client its request (the vendor's 500), not every client their gateway.
        this.#log.error({ err }, 'client request failed');
        this.fail(500);
      }
    });
    socket.on('close', () => this.#onClose());
    socket.on('error', (err) => this.#log.debug({ err: { message: err.message } }, 'client socket error'));
  }

  /** This client's own subscription set. */
  get subscriptions(): ChannelSet {
    return this.#set.clone();
  }

  get closing(): boolean {
    return this.#closing;
  }

  /** Greets, starts the auth deadline, and checks header credentials if the upgrade carried them. */
  open(headerKey: string | undefined, headerSecret: string | undefined): void {
    this.sendControl({ T: 'success', msg: 'connected' });
    this.#authTimer = this.#host.clock.setTimeout(() => this.fail(404), this.#host.limits.authTimeoutMs);
    if (headerKey !== undefined || headerSecret !== undefined) this.#authenticate(headerKey ?? '', headerSecret ?? '');
  }

  /** Sends a control message now (replies, errors, notices), ahead of queued data. */
  sendControl(message: WireValue): void {
    if (this.#closing) return;
    this.queue.flush(); // data routed before this reply goes first
    this.queue.sendControl(encodeFrame([message], this.encoding));
  }

  /** Sends the vendor's error for `code`; for the codes the vendor disconnects on, closes. */
  fail(code: number, detail?: string): void {
    if (this.#closing) return;
    this.#log.info({ code, detail }, 'client error');
    this.sendControl({ T: 'error', code, msg: vendorErrorMessage(code) });
    if (CLOSING_CODES.has(code)) this.close(1008, vendorErrorMessage(code));
  }

  /** Closes with `code` and releases everything this client holds; cut if it never answers. */
  close(code: number, reason = ''): void {
    if (this.#closing) return;
    this.#release();
    this.#socket.close(code, reason);
    this.#killTimer = this.#host.clock.setTimeout(() => this.#socket.terminate(), CLOSE_GRACE_MS);
  }

  /**
   * Removes pairs the vendor refused from this client's set, tells it with the vendor's error,
   * then sends its corrected set.
   */
  refuse(code: number, message: string, pairs: ChannelSet): void {
    if (this.#closing) return;
    const held = new ChannelSet();
    for (const [channel, symbol] of pairs.pairs()) if (this.#set.has(channel, symbol)) held.add(channel, symbol);
    if (held.isEmpty) return;
    this.#set.deleteAll(held);
    this.#host.apply(this, new ChannelSet(), held);
    this.sendControl({ T: 'error', code, msg: message });
    this.sendControl(subscriptionReply(this.#set.toLists()) as WireValue);
  }

  #slow(): void {
    this.#host.onSlowClient(this);
    // The queue is closed: this goes out behind whatever the socket still holds, if it ever reads.
    if (this.#socket.readyState === WebSocket.OPEN) {
      this.#socket.send(encodeFrame([{ T: 'error', code: 407, msg: vendorErrorMessage(407) }], this.encoding), { binary: this.encoding === 'msgpack' });
    }
    this.close(1008, vendorErrorMessage(407));
  }

  /** Stops sending and gives back everything this client held (once, from close or a dropped socket). */
  #release(): void {
    this.#closing = true;
    this.#host.clock.clearTimeout(this.#authTimer);
    if (!this.#set.isEmpty) this.#host.apply(this, new ChannelSet(), this.#set);
    this.#set = new ChannelSet();
    this.queue.close();
  }

  #onClose(): void {
    this.#host.clock.clearTimeout(this.#killTimer);
    if (!this.#closing) this.#release();
    this.#host.onClosed(this);
  }

  #onMessage(data: Buffer, isBinary: boolean): void {
    if (this.#closing) return;
    if (data.length > this.#host.limits.maxMessageBytes) {
      this.sendControl({ T: 'error', code: 400, msg: vendorErrorMessage(400) });
      this.close(1009, 'message too big');
      return;
    }
    const request = parseClientRequest(data, isBinary);
    switch (request.action) {
      case 'auth':
        if (typeof request.key !== 'string' || typeof request.secret !== 'string') this.fail(400, 'auth needs key and secret strings');
        else this.#authenticate(request.key, request.secret);
        return;
      case 'subscribe':
      case 'unsubscribe':
        this.#change(request.action, request.body);
        return;
      case 'invalid':
        this.fail(400, request.reason);
    }
  }

  #authenticate(key: string, secret: string): void {
    if (this.authenticated) {
      this.fail(403);
      return;
    }
    if (!this.#host.authenticate(key, secret)) {
      this.fail(402);
      return;
    }
    this.#host.clock.clearTimeout(this.#authTimer);
    this.authenticated = true;
    this.key = key;
    this.#log.info({ clientKey: key, encoding: this.encoding, remote: this.remoteAddress }, 'client authenticated');
    this.#host.onAuthenticated(this);
    this.sendControl({ T: 'success', msg: 'authenticated' });
  }

  #change(action: 'subscribe' | 'unsubscribe', request: Record<string, unknown>): void {
    if (!this.authenticated) {
      this.fail(401);
      return;
    }
    const parsed = parseChannels(request);
    if (typeof parsed === 'number') {
      this.fail(parsed, 'bad channel lists');
      return;
    }
    const requested = new ChannelSet(parsed);
    if (action === 'subscribe') {
      const add = requested.minus(this.#set);
      const next = this.#set.clone();
      next.addAll(add);
      // The whole request is refused and the set stays as it was (the vendor's 405 rule).
      if (next.distinctSymbols > this.#host.limits.maxSymbolsPerClient) {
        this.fail(405, 'client symbol limit');
        return;
      }
      const refusal = this.#host.admit(this, add);
      if (refusal !== undefined) {
        this.fail(refusal, 'upstream limit');
        return;
      }
      this.#set = next;
      this.#host.apply(this, add, new ChannelSet());
      this.sendControl(subscriptionReply(this.#set.toLists()) as WireValue);
      if (this.options.snapshot && !add.isEmpty) {
        for (const unit of this.#host.snapshot(add, this.encoding)) this.queue.enqueue(unit);
        this.#host.scheduleFlush(this);
      }
      return;
    }
    const remove = new ChannelSet();
    for (const [channel, symbol] of requested.pairs()) if (this.#set.has(channel, symbol)) remove.add(channel, symbol);
    this.#set.deleteAll(remove);
    this.#host.apply(this, new ChannelSet(), remove);
    // Nothing for a dropped pair may follow the acknowledgement.
    this.queue.purge((unit) => this.wants(unit));
    this.sendControl(subscriptionReply(this.#set.toLists()) as WireValue);
  }

  /** Whether this client's set covers a data unit (unknown types go to every client). */
  wants(unit: MessageUnit): boolean {
    const channel = unit.type === undefined ? undefined : TYPE_TO_CHANNEL[unit.type];
    if (channel === undefined) return true;
    return this.#set.covers(channel, unit.symbol);
  }
}
