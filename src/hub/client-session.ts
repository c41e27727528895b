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
import { ChannelSet, type Pair, pairsOf, SymbolCount } from '../protocol/channel-set.js';
import { type Channel, WILDCARD } from '../protocol/channels.js';
import { parseChannels, type StreamKind } from '../protocol/streams.js';
import { parseClientRequest } from '../protocol/client-request.js';
import { SubscriptionReplyCache } from '../protocol/subscription-reply.js';
import { type Encoding, encodeFrame, type MessageUnit } from '../protocol/frame.js';
import type { WireValue } from '../protocol/transcode.js';
import { type DrainScheduler, OutboundQueue, type QueueCounters, type QueueLimits } from './outbound-queue.js';
import { lowerReceiveLimit } from './receive-limit.js';

/** Error codes after which the gateway closes the client (1008), as the vendor does. */
export const CLOSING_CODES: ReadonlySet<number> = new Set([402, 404, 406, 407]);

/** The largest frame a client may send before it has authenticated (an auth message is ~100 bytes). */
export const PRE_AUTH_MAX_BYTES = 4096;

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
  /** the kind of stream served: its channels, symbols, reply keys and message types */
  readonly kind: StreamKind;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly limits: QueueLimits & { maxSymbolsPerClient: number; authTimeoutMs: number; maxMessageBytes: number };
  readonly counters: QueueCounters & { clientRequests: number; noopRequests: number };
  /** drains lagging clients' backlogs a bounded amount per event-loop turn */
  readonly drains?: DrainScheduler;
  authenticate(key: string, secret: string): boolean;
  /** whether one more authenticated client fits (MAX_CLIENTS) */
  admitClient(session: ClientSession): boolean;
  /** undefined when these new pairs may be held; else the vendor error code that refuses them */
  admit(added: readonly Pair[]): number | undefined;
  /** records that the session holds these pairs too (index and vendor link) */
  hold(session: ClientSession, pairs: readonly Pair[]): void;
  /** records that the session no longer holds these pairs */
  release(session: ClientSession, pairs: readonly Pair[]): void;
  /** the last message of (channel, symbol); for `*`, the last of every symbol on the channel */
  lastValues(channel: Channel, symbol: string): MessageUnit[];
  /** the current order book of (channel, symbol) as a reset when the hub knows it; for `*`, every known book */
  bookResets(channel: Channel, symbol: string): MessageUnit[];
  /** catch-up this hub may lack (a cluster follower asks the owner), queued when it arrives */
  remoteCatchUp?(session: ClientSession, pairs: readonly Pair[]): void;
  /** flushes this session's queue at the end of the turn */
  scheduleFlush(session: ClientSession): void;
  onAuthenticated(session: ClientSession): void;
  /** the session went past CLIENT_MAX_BUFFER_BYTES holding `heldBytes` after conflation; it is being closed with 407 */
  onSlowClient(session: ClientSession, heldBytes: number): void;
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
  #set = new ChannelSet();
  /** the distinct explicit symbols of `#set` (MAX_SYMBOLS_PER_CLIENT counts them) */
  readonly #symbols = new SymbolCount();
  /** the encoded `subscription` reply for `#set`, re-encoded per channel as channels change */
  readonly #reply: SubscriptionReplyCache;
  /** raises the inbound frame limit back to the server's once authenticated */
  #restoreReceiveLimit: (() => void) | undefined;
  #authTimer: unknown;
  #killTimer: unknown;
  #closing = false;

  constructor(socket: WebSocket, encoding: Encoding, options: SessionOptions, remoteAddress: string, host: SessionHost) {
    this.#socket = socket;
    this.encoding = encoding;
    this.options = options;
    this.remoteAddress = remoteAddress;
    this.#host = host;
    this.#reply = new SubscriptionReplyCache(encoding, host.kind);
    const binary = encoding === 'msgpack';
    this.queue = new OutboundQueue(
      encoding,
      (frame, done) => {
        if (socket.readyState === WebSocket.OPEN) socket.send(frame, { binary }, done);
      },
      host.limits,
      (heldBytes) => this.#slow(heldBytes),
      host.counters,
      host.drains,
    );
    // Before auth nothing larger than an auth message is read at all.
    this.#restoreReceiveLimit = lowerReceiveLimit(socket, PRE_AUTH_MAX_BYTES);
    // Listeners go on synchronously: a message that arrives during an await would be lost.
    socket.on('message', (data, isBinary) => {
      try {
        this.#onMessage(data as Buffer, isBinary);
      } catch (err) {
        // The one deliberate catch-all: a fault in handling one client's request costs that
        // client its request (the vendor's 500), not every client their gateway.
        this.#host.logger.error({ client: this.id, err }, 'client request failed');
        this.fail(500);
      }
    });
    socket.on('close', () => this.#onClose());
    socket.on('error', (err) => {
      // ws refused a frame (too big, not the protocol) and has sent its close code: release and cut.
      this.#host.logger.debug({ client: this.id, err: { message: err.message, code: (err as { code?: string }).code } }, 'client socket error');
      this.close(1002, 'protocol error');
      socket.terminate();
    });
  }

  /** This client's own subscription set. */
  get subscriptions(): ChannelSet {
    return this.#set.clone();
  }

  /**
   * What this session holds beyond its fixed fields, by name: per-channel sets, symbol counts,
   * encoded reply lists, a backlog, a pending timer. An idle authenticated session holds none
   * (issue #11): tests check that.
   */
  get footprint(): string[] {
    const held = this.#set.allocatedChannels.map((channel) => `set:${channel}`);
    if (this.#symbols.allocated) held.push('symbolCount');
    if (this.#reply.allocated) held.push('replyLists');
    if (this.queue.hasBacklog) held.push('backlog');
    if (this.#authTimer !== undefined) held.push('authTimer');
    if (this.#killTimer !== undefined) held.push('killTimer');
    if (this.#restoreReceiveLimit !== undefined) held.push('receiveLimit');
    return held;
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
    if (!this.#closing) this.#sendControlFrame(encodeFrame([message], this.encoding));
  }

  #sendControlFrame(frame: Buffer): void {
    if (this.#closing) return;
    this.queue.flush(); // data routed before this reply goes first
    this.queue.sendControl(frame);
  }

  /** This client's whole set, as the vendor replies to every subscribe/unsubscribe. */
  #sendReply(): void {
    this.#sendControlFrame(this.#reply.frame(this.#set));
  }

  /** Sends the vendor's error for `code`; for the codes the vendor disconnects on, closes. */
  fail(code: number, detail?: string): void {
    if (this.#closing) return;
    this.#host.logger.info({ client: this.id, code, detail }, 'client error');
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
    const held = this.#drop(pairs.pairs());
    if (held.length === 0) return;
    this.sendControl({ T: 'error', code, msg: message });
    this.#sendReply();
  }

  /** Takes the pairs this client holds out of its set and the index; returns them. */
  #drop(pairs: Iterable<Pair>): Pair[] {
    const dropped: Pair[] = [];
    for (const pair of pairs) {
      const [channel, symbol] = pair;
      if (!this.#set.has(channel, symbol)) continue;
      this.#set.delete(channel, symbol);
      this.#symbols.delete(symbol);
      this.#reply.changed(channel);
      dropped.push(pair);
    }
    if (dropped.length > 0) this.#host.release(this, dropped);
    return dropped;
  }

  #slow(heldBytes: number): void {
    this.#host.onSlowClient(this, heldBytes);
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
    if (!this.#set.isEmpty) this.#host.release(this, [...this.#set.pairs()]);
    this.#set = new ChannelSet();
    this.#symbols.clear();
    this.#reply.clear();
    this.queue.close();
  }

  #onClose(): void {
    this.#host.clock.clearTimeout(this.#killTimer);
    this.#killTimer = undefined;
    if (!this.#closing) this.#release();
    this.#host.onClosed(this);
  }

  #onMessage(data: Buffer, isBinary: boolean): void {
    if (this.#closing) return;
    this.#host.counters.clientRequests += 1;
    if (!this.authenticated) {
      this.#onMessageBeforeAuth(data, isBinary);
      return;
    }
    if (data.length > this.#host.limits.maxMessageBytes) {
      this.sendControl({ T: 'error', code: 400, msg: vendorErrorMessage(400) });
      this.close(1009, 'message too big');
      return;
    }
    const request = parseClientRequest(data, isBinary);
    switch (request.action) {
      case 'auth':
        if (typeof request.key !== 'string' || typeof request.secret !== 'string') this.fail(400, 'auth needs key and secret strings');
        else this.fail(403);
        return;
      case 'subscribe':
      case 'unsubscribe':
        this.#change(request.action, request.body);
        return;
      case 'invalid':
        this.fail(400, request.reason);
    }
  }

  /** Before auth only an auth message is looked at; anything else costs one 401. */
  #onMessageBeforeAuth(data: Buffer, isBinary: boolean): void {
    // ws refuses such frames itself when the receive limit could be lowered; this is the fallback.
    if (data.length > PRE_AUTH_MAX_BYTES) {
      this.close(1009, 'message too big');
      return;
    }
    const request = parseClientRequest(data, isBinary);
    if (request.action !== 'auth') {
      this.fail(401, request.action === 'invalid' ? request.reason : `${request.action} before auth`);
      return;
    }
    if (typeof request.key !== 'string' || typeof request.secret !== 'string') this.fail(400, 'auth needs key and secret strings');
    else this.#authenticate(request.key, request.secret);
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
    // MAX_CLIENTS counts authenticated clients: the vendor, too, refuses a session at auth.
    if (!this.#host.admitClient(this)) {
      this.fail(406);
      return;
    }
    this.#host.clock.clearTimeout(this.#authTimer);
    this.#authTimer = undefined; // a cleared Timeout is still an object this session would keep
    this.authenticated = true;
    this.key = key;
    this.#restoreReceiveLimit?.();
    this.#restoreReceiveLimit = undefined;
    this.#host.logger.info({ client: this.id, clientKey: key, encoding: this.encoding, remote: this.remoteAddress }, 'client authenticated');
    this.#host.onAuthenticated(this);
    this.sendControl({ T: 'success', msg: 'authenticated' });
  }

  /**
   * A subscribe/unsubscribe: work in proportion to the pairs it names, and a request that changes
   * nothing is answered from the cached reply without touching the index or the vendor link.
   */
  #change(action: 'subscribe' | 'unsubscribe', request: Record<string, unknown>): void {
    const parsed = parseChannels(request, this.#host.kind);
    if (typeof parsed === 'number') {
      this.fail(parsed, 'bad channel lists');
      return;
    }
    if (action === 'unsubscribe') {
      const dropped = this.#drop(pairsOf(parsed));
      if (dropped.length === 0) this.#host.counters.noopRequests += 1;
      // Nothing for a dropped pair may follow the acknowledgement.
      else this.queue.purge((unit) => this.wants(unit));
      this.#sendReply();
      return;
    }
    const added: Pair[] = [];
    for (const pair of pairsOf(parsed)) if (!this.#set.has(pair[0], pair[1])) added.push(pair);
    if (added.length === 0) {
      this.#host.counters.noopRequests += 1;
      this.#sendReply();
      return;
    }
    // The whole request is refused and the set stays as it was (the vendor's 405 rule).
    if (this.#symbols.size + this.#symbols.newAmong(added) > this.#host.limits.maxSymbolsPerClient) {
      this.fail(405, 'client symbol limit');
      return;
    }
    const refusal = this.#host.admit(added);
    if (refusal !== undefined) {
      this.fail(refusal, 'upstream limit');
      return;
    }
    const { units: catchUp, asked } = this.#catchUpOf(added);
    for (const [channel, symbol] of added) {
      this.#set.add(channel, symbol);
      this.#symbols.add(symbol);
      this.#reply.changed(channel);
    }
    this.#host.hold(this, added);
    this.#sendReply();
    // Queued before this turn ends, so ahead of anything the vendor sends for these pairs from now on.
    if (catchUp.length > 0) {
      for (const unit of catchUp) this.queue.enqueue(unit);
      this.#host.scheduleFlush(this);
    }
    if (asked.length > 0) this.#host.remoteCatchUp?.(this, asked);
  }

  /**
   * What a client gets at once for pairs about to be added, only for what it does not already
   * receive — nothing for a symbol its `*` covers, and for a new `*`, every symbol but those it
   * held explicitly. Taken before the set changes.
   */
  #catchUpOf(added: readonly Pair[]): { units: MessageUnit[]; asked: Pair[] } {
    const wildcardAdded = new Set<Channel>();
    for (const [channel, symbol] of added) if (symbol === WILDCARD) wildcardAdded.add(channel);
    const units: MessageUnit[] = [];
    const asked: Pair[] = [];
    for (const [channel, symbol] of added) {
      if (symbol === WILDCARD) {
        for (const unit of this.#catchUp(channel, WILDCARD)) if (!this.#set.has(channel, unit.symbol as string)) units.push(unit);
      } else if (!this.#set.has(channel, WILDCARD) && !wildcardAdded.has(channel)) {
        units.push(...this.#catchUp(channel, symbol));
      } else {
        continue;
      }
      if (this.options.snapshot || channel === 'orderbooks') asked.push([channel, symbol]);
    }
    return { units: units.filter((unit) => unit.tryEncoded(this.encoding) !== undefined), asked };
  }

  /**
   * What one pair brings at once: its order book as a reset whether or not the client asked for
   * snapshots — the vendor sends a reset when its own subscription starts, not to a client joining
   * a book it already streams (PROTOCOL-STREAMS §1.3) — and with `?snapshot=1` its last values.
   */
  #catchUp(channel: Channel, symbol: string): MessageUnit[] {
    const book = this.#host.bookResets(channel, symbol);
    return this.options.snapshot ? [...book, ...this.#host.lastValues(channel, symbol)] : book;
  }

  /** Whether this client's set holds `symbol` on `channel`, itself or by `*`. */
  covers(channel: Channel, symbol: string | undefined): boolean {
    return this.#set.covers(channel, symbol);
  }

  /** Whether this client's set covers a data unit (unknown types go to every client). */
  wants(unit: MessageUnit): boolean {
    const channel = unit.type === undefined ? undefined : this.#host.kind.typeToChannel[unit.type];
    if (channel === undefined) return true;
    if (this.#host.kind.symbolsField === 'symbols') return this.#set.covers(channel, undefined) || unit.symbols.some((symbol) => this.#set.has(channel, symbol));
    return this.#set.covers(channel, unit.symbol);
  }
}
