/**
 * The fan-out: vendor messages to the clients that hold them (DESIGN.md §6).
 *
 * Hot path: each vendor frame arrives as message units (byte ranges of the vendor's frame). A
 * unit is routed by a lookup of (channel, symbol) in the index plus the channel's wildcard
 * holders, and added to each client's batch; at the end of the event-loop turn every touched
 * client gets one frame. A unit converts to the other encoding at most once (cached on the unit),
 * and a batch that every client of an encoding shares is joined once for all of them.
 */
import { type Logger } from 'pino';
import type { WebSocket } from 'ws';
import type { ClientsConfig } from '../config.js';
import type { Clock } from '../clock.js';
import { ChannelSet, type Pair } from '../protocol/channel-set.js';
import { type Channel, type ChannelSymbols, WILDCARD } from '../protocol/channels.js';
import { STOCKS, type StreamKind } from '../protocol/streams.js';
import type { Encoding, MessageUnit } from '../protocol/frame.js';
import type { WireValue } from '../protocol/transcode.js';
import type { LinkState, Refusal, StateChange } from '../upstream/stream-manager.js';
import { ClientAuthenticator } from './client-auth.js';
import { ClientSession, type SessionHost, type SessionOptions } from './client-session.js';
import { LastValues } from './last-values.js';
import { OrderBooks } from './order-books.js';
import { DRAIN_TURN_BYTES, DrainScheduler, type QueueCounters, SharedBatch } from './outbound-queue.js';
import { SubscriptionIndex } from './subscription-index.js';

/** The part of the vendor link the hub uses. */
export interface UpstreamLink {
  readonly state: LinkState;
  /** the kind of stream the link carries (a `StreamManager` knows it) */
  readonly kind?: StreamKind;
  /** pairs that entered and left the desired set */
  change(added: Iterable<Pair>, removed: Iterable<Pair>, options?: { correlationId?: string }): void;
  on(event: 'refused', listener: (refusal: Refusal) => void): unknown;
  on(event: 'state', listener: (change: StateChange) => void): unknown;
  /**
   * True while data reaches the hub relayed by another node (a cluster follower): the hub then
   * knows only what arrived since its clients took a pair, forgets a pair's last values and book
   * when it is released, and asks `catchUp` for what it lacks.
   */
  readonly relayed?: boolean;
  /**
   * Asks the node carrying the vendor link for what it has of these pairs (book resets, and last
   * values if `values`); `done` runs in order with the data that arrives around the answer. False
   * when there is nothing to ask.
   */
  catchUp?(pairs: readonly Pair[], values: boolean, done: (answer: MessageUnit[] | Error) => void): boolean;
  /** stops handing on data until `resumeIntake` (a source that cannot pause leaves them out) */
  pauseIntake?(): void;
  resumeIntake?(): void;
}

/**
 * Deliveries (a unit for a client) routed in one event-loop turn before the hub stops reading
 * the vendor until it has flushed (frames already read wait for the next turn): under overload a
 * turn stays a few tens of milliseconds, so probes, client I/O and timers interleave with the
 * fan-out instead of waiting behind seconds of it.
 */
export const TURN_DELIVERIES = 200_000;

/**
 * Clients flushed per event-loop turn. Each costs a socket write (on loopback the kernel's work
 * for the receiver too): a thousand take tens of milliseconds, so a turn's flush goes on over
 * several turns, the vendor's data waiting, and probes are answered in between.
 */
export const FLUSH_SLICE = 200;

/**
 * Milliseconds of one event-loop turn that flushing may take, whatever the count: on loopback
 * under TCP memory pressure (the kernel holding gigabytes for clients that read slower than the
 * fan-out) one socket write can take a millisecond, and 200 of them held probes for 100 ms and
 * more (issue #19). Like the drain's slice (`DRAIN_TURN_MS`), it ends after the write that
 * crosses it; at least one client is flushed per turn.
 */
export const FLUSH_SLICE_MS = 10;

/** A turn's clients being flushed, slice by slice. */
interface Flushing {
  readonly sessions: ClientSession[];
  next: number;
  readonly turnUnits: number;
  readonly startedAt: number;
  readonly shared: Map<Encoding, SharedBatch>;
}

export interface HubOptions {
  /** the kind of stream this hub serves (default: the link's, else stocks) */
  readonly kind?: StreamKind;
  /** the stream path served (`v2/iex`…), named in `?events=1` notices */
  readonly stream?: string;
  /** clients authenticated on every stream of the process, this one's included (default: this hub's): what MAX_CLIENTS counts */
  readonly authenticatedInProcess?: () => number;
  readonly clients: ClientsConfig;
  /** the plan's distinct-symbol limit upstream (0: none) */
  readonly upstreamMaxSymbols: number;
  readonly link: UpstreamLink;
  readonly logger: Logger;
  readonly clock: Clock;
  /** the per-turn bounds (default TURN_DELIVERIES, FLUSH_SLICE, FLUSH_SLICE_MS); tests make them tiny to take every path */
  readonly turnDeliveries?: number;
  readonly flushSlice?: number;
  /** the time bound of a flush slice (default FLUSH_SLICE_MS), on `clock` */
  readonly flushSliceMs?: number;
  /**
   * Whether every routed message updates the last-value cache (default true). A replay's hub,
   * whose one client neither asked for snapshots nor lags past conflation, keeps none: what it
   * needs as of the replay's start it learns through `prime`.
   */
  readonly keepLastValues?: boolean;
}

export interface HubStats extends QueueCounters {
  /** vendor messages a client encoding cannot hold (NaN in JSON…), not sent to those clients */
  unconvertible: number;
  connected: number;
  authenticated: number;
  messagesIn: number;
  slowClientCloses: number;
  rejectedConnections: number;
  /** frames clients sent (auth, subscribe, anything) */
  clientRequests: number;
  /** subscribe/unsubscribe requests that changed nothing (answered from the cached reply) */
  noopRequests: number;
}

/** What the upgrade request says about a new client. */
export interface ClientInfo {
  readonly encoding: Encoding;
  readonly options: SessionOptions;
  readonly remoteAddress: string;
  readonly headerKey?: string;
  readonly headerSecret?: string;
}

export class Hub {
  readonly kind: StreamKind;
  /** whether data names its symbols in a list (news) rather than one `S` */
  readonly #routesByList: boolean;
  readonly #options: HubOptions;
  readonly #keepLastValues: boolean;
  readonly #logger: Logger;
  readonly #auth: ClientAuthenticator;
  readonly #index = new SubscriptionIndex<ClientSession>();
  readonly #lastValues: LastValues;
  /** the vendor's order books, for clients that join one it already streams; none for kinds without books */
  readonly #books: OrderBooks | undefined;
  readonly #sessions = new Set<ClientSession>();
  /** the kind's order-book message type, if it has books */
  readonly #bookType: string | undefined;
  /**
   * Relayed hubs: book symbols (or `*`) a session waits for the owner's reset of. Updates meanwhile
   * are already in that reset (the owner answers after them), so they are not sent before it.
   */
  readonly #awaitingBooks = new Map<ClientSession, Set<string>>();
  readonly #authenticated = new Set<ClientSession>();
  readonly #eventListeners = new Set<ClientSession>();
  /** clients touched this turn (each session's `routed` counts what `onData` gave it) */
  #dirty: ClientSession[] = [];
  /** the current turn's number; a session whose `turn` differs has not been touched in it */
  #turn = 1;
  #turnUnits = 0;
  /** deliveries routed this turn (TURN_DELIVERIES) */
  #turnDeliveries = 0;
  #intakePaused = false;
  /** vendor frames that arrived while the intake was paused, routed once the turn is flushed */
  #held: (MessageUnit[] | (() => void))[] = [];
  /** when the first vendor frame of this turn arrived (performance.now() ms) */
  #turnStartedAt = 0;
  /** observes, per turn, seconds from a vendor frame's arrival to its frames leaving (metrics) */
  observeFanout: ((seconds: number) => void) | undefined;
  readonly #closeWaiters = new Map<ClientSession, () => void>();
  #flushScheduled = false;
  /** the turn being flushed, while its clients are more than one slice */
  #flushing: Flushing | undefined;
  readonly #stats: HubStats = {
    connected: 0,
    authenticated: 0,
    messagesIn: 0,
    messagesOut: 0,
    bytesOut: 0,
    conflated: 0,
    slowClientCloses: 0,
    rejectedConnections: 0,
    unconvertible: 0,
    clientRequests: 0,
    noopRequests: 0,
  };
  readonly #host: SessionHost;
  readonly #drains: DrainScheduler;

  constructor(options: HubOptions) {
    this.#options = options;
    this.#keepLastValues = options.keepLastValues ?? true;
    this.kind = options.kind ?? options.link.kind ?? STOCKS;
    this.#routesByList = this.kind.symbolsField === 'symbols';
    this.#lastValues = new LastValues(this.kind);
    this.#logger = options.logger.child({ component: 'hub' });
    this.#books = OrderBooks.for(this.kind, this.#logger);
    this.#bookType = Object.keys(this.kind.typeToChannel).find((type) => this.kind.typeToChannel[type] === 'orderbooks');
    this.#auth = new ClientAuthenticator(options.clients.keys);
    this.#drains = new DrainScheduler(DRAIN_TURN_BYTES, () => options.clock.now());
    this.#host = this.#makeHost();
    options.link.on('refused', (refusal) => this.#onRefused(refusal));
    options.link.on('state', (change) => this.#onLinkState(change));
  }

  get stats(): Readonly<HubStats> {
    return { ...this.#stats, connected: this.#sessions.size, authenticated: this.#authenticated.size };
  }

  /** The connected sessions, for tests and diagnostics. */
  get sessions(): ClientSession[] {
    return [...this.#sessions];
  }

  /** Clients with a backlog above their high-water mark now (walks the sessions: for the status page, not the hot path). */
  get laggingClients(): number {
    let n = 0;
    for (const session of this.#sessions) if (session.queue.lagging) n += 1;
    return n;
  }

  /** Unauthenticated connections (their own cap, MAX_PENDING_AUTH, is checked before the upgrade). */
  get pendingAuth(): number {
    return this.#sessions.size - this.#authenticated.size;
  }

  /** Takes a new client connection; it counts against MAX_CLIENTS once it authenticates. */
  accept(socket: WebSocket, info: ClientInfo): ClientSession {
    const session = new ClientSession(socket, info.encoding, info.options, info.remoteAddress, this.#host);
    this.#sessions.add(session);
    session.open(info.headerKey, info.headerSecret);
    return session;
  }

  /** The vendor link's consumer: routes one frame's units to the clients that hold them. */
  onData(units: MessageUnit[]): void {
    // Paused for this turn: frames the vendor's socket had already read wait for the next, in order.
    if (this.#intakePaused) {
      this.#held.push(units);
      return;
    }
    if (this.#turnUnits === 0) this.#turnStartedAt = performance.now();
    this.#stats.messagesIn += units.length;
    this.#turnUnits += units.length;
    this.#books?.apply(units);
    for (const unit of units) {
      const channel = unit.type === undefined ? undefined : this.kind.typeToChannel[unit.type];
      if (channel === undefined) {
        // The vendor may add message types at any time; they go to every client unchanged.
        for (const session of this.#authenticated) this.#deliver(session, unit);
        continue;
      }
      if (this.#keepLastValues) this.#lastValues.store(unit);
      if (this.#routesByList) {
        this.#routeByList(channel, unit);
        continue;
      }
      const explicit = unit.symbol === undefined ? undefined : this.#index.holders(channel, unit.symbol);
      if (explicit !== undefined) {
        for (const session of explicit) this.#deliver(session, unit);
        this.#turnDeliveries += explicit.size;
      }
      const wildcard = this.#index.wildcardHolders(channel);
      if (wildcard !== undefined) {
        for (const session of wildcard) if (explicit === undefined || !explicit.has(session)) this.#deliver(session, unit);
        this.#turnDeliveries += wildcard.size;
      }
    }
    if (this.#turnDeliveries > (this.#options.turnDeliveries ?? TURN_DELIVERIES) && !this.#intakePaused && this.#options.link.pauseIntake !== undefined) {
      this.#intakePaused = true;
      this.#options.link.pauseIntake();
    }
    this.#scheduleFlush();
  }

  /**
   * Hands `session` a frame it holds every message of (`messages` of them, in its encoding; none
   * a book or a control message), as it is: a replay's recorded frame, whole instead of split,
   * routed and joined again; it goes out with the turn's flush. False, with nothing done, when the
   * hub must see the messages one by one: it keeps last values, awaits a book for a client, holds
   * back frames, or the client lags.
   */
  deliverFrame(session: ClientSession, frame: Buffer, messages: number): boolean {
    if (this.#intakePaused || this.#keepLastValues || this.#awaitingBooks.size !== 0 || this.#flushing !== undefined) return false;
    if (!session.queue.enqueueFrame(frame, messages, this.kind)) return false;
    this.#stats.messagesIn += messages;
    this.#touch(session);
    this.#scheduleFlush();
    return true;
  }

  /**
   * A message about a list of symbols (a news item): every session holding any of them, and every
   * `*` holder, gets it once, however many of its symbols a session holds.
   */
  #routeByList(channel: Channel, unit: MessageUnit): void {
    const reached = new Set<ClientSession>();
    for (const symbol of unit.symbols) {
      for (const session of this.#index.holders(channel, symbol) ?? []) reached.add(session);
    }
    for (const session of this.#index.wildcardHolders(channel) ?? []) reached.add(session);
    for (const session of reached) this.#deliver(session, unit);
  }

  /**
   * Whether `unit` has a form in the session's encoding. Converted at most once per message (the
   * unit caches the result); a value the encoding cannot hold (NaN in JSON…) is not sent to that
   * encoding's clients rather than breaking their frames.
   */
  #convertible(unit: MessageUnit, encoding: Encoding): boolean {
    const known = unit.unconvertible;
    if (unit.tryEncoded(encoding) !== undefined) return true;
    if (known === undefined) {
      this.#stats.unconvertible += 1;
      this.#logger.warn({ type: unit.type, symbol: unit.symbol, encoding }, 'vendor message has no form in this encoding; not sent to its clients');
    }
    return false;
  }

  /** The innermost loop of the fan-out: property writes only, no map lookups. */
  #deliver(session: ClientSession, unit: MessageUnit): void {
    if (this.#awaitingBooks.size !== 0 && unit.type === this.#bookType && this.#awaitsBook(session, unit.symbol)) return;
    if (session.encoding !== unit.sourceEncoding && !this.#convertible(unit, session.encoding)) return;
    session.queue.enqueue(unit);
    this.#touch(session);
    if (session.routed >= 0) session.routed += 1;
  }

  #awaitsBook(session: ClientSession, symbol: string | undefined): boolean {
    const awaited = this.#awaitingBooks.get(session);
    return awaited !== undefined && (awaited.has(WILDCARD) || (symbol !== undefined && awaited.has(symbol)));
  }

  #touch(session: ClientSession): void {
    if (session.turn === this.#turn) return;
    session.turn = this.#turn;
    session.routed = 0;
    this.#dirty.push(session);
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    // After every I/O callback of this turn: frames that arrived together go out together.
    setImmediate(() => this.#flush());
  }

  #flush(): void {
    this.#flushScheduled = false;
    // A turn still being flushed goes out first, whole: its clients' frames stay in order.
    if (this.#flushing !== undefined) this.#flushSlice(this.#flushing, Infinity);
    this.#lastValues.settle();
    const flushing = { sessions: this.#dirty, next: 0, turnUnits: this.#turnUnits, startedAt: this.#turnStartedAt, shared: new Map<Encoding, SharedBatch>() };
    this.#dirty = [];
    this.#turn += 1;
    this.#drains.turn = this.#turn;
    this.#turnUnits = 0;
    this.#turnDeliveries = 0;
    this.#flushing = flushing;
    this.#flushSlice(flushing, this.#options.flushSlice ?? FLUSH_SLICE);
  }

  /**
   * Flushes up to `limit` of a turn's clients, for at most `FLUSH_SLICE_MS`; the rest in the next
   * event-loop turn, the vendor's data waiting meanwhile (intake paused), so probes and socket I/O
   * run between the slices.
   */
  #flushSlice(flushing: Flushing, limit: number): void {
    if (this.#flushing !== flushing) return; // finished by the next turn's flush
    const { sessions, turnUnits, shared } = flushing;
    const end = Math.min(sessions.length, flushing.next + limit);
    const clock = this.#options.clock;
    const until = limit === Infinity ? Infinity : clock.now() + (this.#options.flushSliceMs ?? FLUSH_SLICE_MS);
    const first = flushing.next;
    for (; flushing.next < end; flushing.next++) {
      if (flushing.next > first && until !== Infinity && clock.now() >= until) break;
      const session = sessions[flushing.next] as ClientSession;
      const routed = session.routed;
      const pending = session.queue.pending;
      if (!session.queue.hasPending) continue;
      // A client that got every unit of the turn and nothing else (a broadcast) shares one batch:
      // one joined frame, and one entry in the backlog of every client that lags.
      let batch: SharedBatch | undefined;
      if (pending.length > 0 && routed === turnUnits && pending.length === routed) {
        batch = shared.get(session.encoding);
        if (batch === undefined) {
          batch = new SharedBatch(pending, session.encoding);
          shared.set(session.encoding, batch);
        }
      }
      session.queue.flush(batch);
    }
    if (flushing.next < sessions.length) {
      if (!this.#intakePaused && this.#options.link.pauseIntake !== undefined) {
        this.#intakePaused = true;
        this.#options.link.pauseIntake();
      }
      setImmediate(() => this.#flushSlice(flushing, this.#options.flushSlice ?? FLUSH_SLICE));
      return;
    }
    this.#flushing = undefined;
    for (const batch of shared.values()) batch.release();
    if (turnUnits > 0) this.observeFanout?.((performance.now() - flushing.startedAt) / 1000);
    if (this.#intakePaused) {
      this.#intakePaused = false;
      const held = this.#held;
      this.#held = [];
      // Routing them may spend the next turn's budget: the rest are held again, still in order
      // (an owner's catch-up answer among them waits for the data that arrived before it).
      for (const item of held) {
        if (typeof item !== 'function') this.onData(item);
        else if (this.#intakePaused) this.#held.push(item);
        else item();
      }
      if (!this.#intakePaused) this.#options.link.resumeIntake?.();
    }
  }

  /** Pins (operator) pairs so the vendor keeps them with no client holding them, or unpins them. */
  changePinned(action: 'subscribe' | 'unsubscribe', pairs: Iterable<Pair>, correlationId?: string): void {
    const delta = action === 'subscribe' ? this.#index.changePinned(pairs, []) : this.#index.changePinned([], pairs);
    this.#options.link.change(delta.added, delta.removed, { correlationId });
  }

  /** Makes the pinned set equal `set` (a cluster mirrors its shared pinned set this way). */
  setPinned(set: ChannelSet, correlationId?: string): void {
    const pinned = this.#index.pinned;
    const delta = this.#index.changePinned(set.minus(pinned).pairs(), pinned.minus(set).pairs());
    if (delta.added.length > 0 || delta.removed.length > 0) this.#options.link.change(delta.added, delta.removed, { correlationId });
  }

  /** The last message of (channel, symbol), or of every symbol for `*` (what `?snapshot=1` sends). */
  lastValuesOf(channel: Channel, symbol: string): MessageUnit[] {
    return this.#lastValues.get(channel, symbol);
  }

  /** The known order book of `symbol` (every one for `*`) as a reset; none for other channels. */
  bookResetsOf(channel: Channel, symbol: string): MessageUnit[] {
    return channel === 'orderbooks' && this.#books !== undefined ? this.#books.resets(symbol) : [];
  }

  get pinned(): ChannelSet {
    return this.#index.pinned;
  }

  /** Pairs held by clients. */
  clientUnion(): ChannelSymbols {
    return this.#index.clientUnion().toLists();
  }

  /** Pairs the vendor should hold (clients ∪ pinned), as a copy. */
  desired(): ChannelSet {
    return this.#index.union();
  }

  /** How many pairs of `channel` the vendor should hold (no copy: for metrics scrapes). */
  desiredCount(channel: Channel): number {
    return this.#index.countOn(channel);
  }

  /** Closes every client with `code` (1001 on shutdown) and waits for them to go. */
  async closeAll(code = 1001, reason = 'going away'): Promise<void> {
    const closed = [...this.#sessions].map(
      (session) =>
        new Promise<void>((resolve) => {
          if (!this.#sessions.has(session)) return resolve();
          this.#closeWaiters.set(session, resolve);
          session.close(code, reason);
        }),
    );
    await Promise.all(closed);
  }

  #makeHost(): SessionHost {
    const clients = this.#options.clients;
    return {
      kind: this.kind,
      logger: this.#logger,
      clock: this.#options.clock,
      limits: {
        highWaterBytes: clients.highWaterBytes,
        maxBufferBytes: clients.maxBufferBytes,
        maxSymbolsPerClient: clients.maxSymbolsPerClient,
        authTimeoutMs: clients.authTimeoutMs,
        maxMessageBytes: clients.maxMessageBytes,
      },
      counters: this.#stats,
      drains: this.#drains,
      authenticate: (key, secret) => this.#auth.check(key, secret),
      admitClient: (session) => {
        const authenticated = this.#options.authenticatedInProcess?.() ?? this.#authenticated.size;
        if (authenticated < clients.maxClients) return true;
        this.#stats.rejectedConnections += 1;
        this.#logger.warn({ client: session.id, remote: session.remoteAddress, maxClients: clients.maxClients }, 'client refused: connection limit');
        return false;
      },
      admit: (added) => this.#admit(added),
      hold: (session, pairs) => {
        const delta = this.#index.add(session, pairs);
        if (delta.added.length > 0) this.#options.link.change(delta.added, []);
      },
      release: (session, pairs) => {
        const delta = this.#index.remove(session, pairs);
        if (delta.removed.length === 0) return;
        if (this.#options.link.relayed === true) this.#forget(delta.removed);
        this.#options.link.change([], delta.removed);
      },
      lastValues: (channel, symbol) => this.#lastValues.get(channel, symbol),
      bookResets: (channel, symbol) => this.bookResetsOf(channel, symbol),
      remoteCatchUp: (session, pairs) => this.#remoteCatchUp(session, pairs),
      scheduleFlush: (session) => {
        this.#touch(session);
        session.routed = -1; // other units than this turn's were queued: no shared frame
        this.#scheduleFlush();
      },
      onAuthenticated: (session) => {
        this.#authenticated.add(session);
        if (session.options.events) this.#eventListeners.add(session);
      },
      onSlowClient: (session, heldBytes) => {
        this.#stats.slowClientCloses += 1;
        // What it held when it went past the limit (the queue is already emptied).
        this.#logger.warn({ client: session.id, clientKey: session.key, buffered: heldBytes }, 'slow client closed with 407');
      },
      onClosed: (session) => {
        this.#sessions.delete(session);
        this.#awaitingBooks.delete(session);
        this.#authenticated.delete(session);
        this.#eventListeners.delete(session);
        this.#closeWaiters.get(session)?.();
        this.#closeWaiters.delete(session);
      },
    };
  }

  /**
   * A relayed hub no longer receives these pairs: what it knows of them would go stale, so a later
   * subscriber gets the owner's values instead. A pair still covered (a `*`, or a symbol under a
   * released `*`) stays.
   */
  #forget(removed: readonly Pair[]): void {
    for (const [channel, symbol] of removed) {
      const symbols = symbol === WILDCARD ? [...this.#lastValues.symbols(channel), ...(channel === 'orderbooks' ? (this.#books?.symbols() ?? []) : [])] : [symbol];
      for (const s of symbols) {
        if (this.#index.holders(channel, s) !== undefined || this.#index.wildcardHolders(channel) !== undefined) continue;
        this.#lastValues.forget(channel, s);
        if (channel === 'orderbooks') this.#books?.forget(s);
      }
    }
  }

  /**
   * A relayed hub's client took pairs it has nothing for: the owner's book resets (and last values
   * with `?snapshot=1`) are asked for. The answer comes after every relayed message published
   * before the owner read its values, so a value this hub still lacks when it lands is the latest;
   * one it has meanwhile was routed to the client already. Books are adopted by the hub too.
   */
  #remoteCatchUp(session: ClientSession, pairs: readonly Pair[]): void {
    const link = this.#options.link;
    if (link.relayed !== true || link.catchUp === undefined) return;
    const values = session.options.snapshot;
    const missing = pairs.filter(([channel, symbol]) => {
      if (symbol === WILDCARD) return true;
      if (channel === 'orderbooks' && this.#books !== undefined) return this.#books.resets(symbol).length === 0;
      return values && !this.#lastValues.has(channel, symbol);
    });
    const books = missing.filter(([channel]) => channel === 'orderbooks' && this.#books !== undefined).map(([, symbol]) => symbol);
    const settle = (): void => {
      const awaited = this.#awaitingBooks.get(session);
      for (const symbol of books) awaited?.delete(symbol);
      if (awaited?.size === 0) this.#awaitingBooks.delete(session);
    };
    const arrived = (answer: MessageUnit[] | Error): void => {
      settle();
      if (!this.#sessions.has(session)) return;
      if (!(answer instanceof Error)) return this.#catchUpArrived(session, answer);
      this.#logger.warn({ client: session.id, pairs: missing.length, err: String(answer) }, 'could not get catch-up values from the stream owner');
      // What this hub learned meanwhile is the best there is for the books it held back.
      this.#catchUpArrived(session, books.flatMap((symbol) => this.bookResetsOf('orderbooks', symbol)));
    };
    // The answer comes after every message published before it: those this hub holds for the
    // next turn are routed first.
    const asked = link.catchUp(missing, values, (answer) => (this.#intakePaused ? this.#held.push(() => arrived(answer)) : arrived(answer)));
    if (!asked || books.length === 0) return;
    const awaited = this.#awaitingBooks.get(session) ?? new Set<string>();
    for (const symbol of books) awaited.add(symbol);
    this.#awaitingBooks.set(session, awaited);
  }

  /** Queues the owner's catch-up for `session`, skipping what this hub has newer of (see #remoteCatchUp). */
  #catchUpArrived(session: ClientSession, units: readonly MessageUnit[]): void {
    const sent = new Set<string>();
    let queued = 0;
    for (const unit of units) {
      const channel = unit.type === undefined ? undefined : this.kind.typeToChannel[unit.type];
      const symbol = unit.symbol;
      if (channel === undefined || symbol === undefined || !session.wants(unit)) continue;
      let out: MessageUnit | undefined = unit;
      if (channel === 'orderbooks' && this.#books !== undefined) {
        // A book this hub learned meanwhile is newer than the owner's answer.
        if (this.#books.resets(symbol).length === 0) this.#books.apply([unit]);
        out = this.#books.resets(symbol)[0];
      } else if (this.#lastValues.has(channel, symbol)) {
        continue;
      } else {
        this.#lastValues.store(unit);
      }
      if (out === undefined || sent.has(out.stateKey) || out.tryEncoded(session.encoding) === undefined) continue;
      sent.add(out.stateKey);
      session.queue.enqueue(out);
      queued += 1;
    }
    if (queued > 0) this.#host.scheduleFlush(session);
  }

  /** Refuses new pairs that would take the vendor past the plan's symbol limit (work ∝ the pairs). */
  #admit(added: readonly Pair[]): number | undefined {
    const limit = this.#options.upstreamMaxSymbols;
    if (limit === 0) return undefined;
    return this.#index.distinctSymbols + this.#index.newSymbolsAmong(added) > limit ? 405 : undefined;
  }

  /** A vendor refusal reaches every client that holds a refused pair. */
  #onRefused(refusal: Refusal): void {
    if (refusal.action !== 'subscribe') return;
    const refused = new ChannelSet(refusal.set);
    const affected = new Set<ClientSession>();
    for (const [channel, symbol] of refused.pairs()) {
      for (const session of this.#index.holders(channel as Channel, symbol) ?? []) affected.add(session);
    }
    this.#logger.warn({ code: refusal.code, pairs: refused.size, clients: affected.size, correlationId: refusal.correlationId }, 'vendor refused symbols');
    for (const session of affected) session.refuse(refusal.code, refusal.message, refused);
  }

  /**
   * Books are known only from the current connection's resets; `?events=1` clients hear when the
   * vendor link goes down and comes back.
   */
  #onLinkState(change: StateChange): void {
    // Any state but live: the connection that streamed the books is gone, or a new one is not yet
    // restored. A restore resubscribes before it counts as live, so `live` itself keeps its resets.
    if (change.to !== 'live') this.#books?.clear();
    let event: string | undefined;
    if (change.to === 'live') event = 'upstream_up';
    else if (change.from === 'live') event = 'upstream_down';
    if (event === undefined) return;
    const at = change.atText ?? new Date(change.at).toISOString();
    this.notify({ T: 'gateway', event, ...(this.#options.stream === undefined ? {} : { stream: this.#options.stream }), state: change.to, reason: change.reason, at });
  }

  /** Sends a `{"T":"gateway",…}` notice to every `?events=1` client, after the data routed before it. */
  notify(notice: Record<string, unknown>): void {
    for (const session of this.#eventListeners) session.sendControl(notice as WireValue);
  }

  /**
   * Sends `notice` to the `?events=1` clients that hold `symbol` on `channel` (by name or `*`);
   * without a symbol to those holding anything on `channel` (a news subject names no one symbol),
   * without a channel to every one (types the gateway does not know reach every client). After the
   * data routed before it, frames held back by the intake's brake included.
   */
  notifyHolders(channel: Channel | undefined, symbol: string | undefined, notice: Record<string, unknown>): void {
    if (this.#intakePaused) {
      this.#held.push(() => this.notifyHolders(channel, symbol, notice));
      return;
    }
    for (const session of this.#eventListeners) {
      if (channel !== undefined) {
        const holds =
          symbol === undefined
            ? session.subscriptions.symbols(channel).size > 0 // a copy, but only on this rare path
            : this.#index.holders(channel, symbol)?.has(session) === true || this.#index.wildcardHolders(channel)?.has(session) === true;
        if (!holds) continue;
      }
      session.sendControl(notice as WireValue);
    }
  }

  /**
   * Learns what a source knew before its clients came (a replay starting mid-tape): order books
   * and last values, as if those units had been routed to nobody. `clear` first forgets the books
   * (the vendor session they belonged to ended).
   */
  prime(units: readonly MessageUnit[], clear = false): void {
    if (clear) this.#books?.clear();
    this.#books?.apply(units);
    for (const unit of units) if (unit.type !== undefined && this.kind.typeToChannel[unit.type] !== undefined) this.#lastValues.store(unit);
    this.#lastValues.settle();
  }
}
