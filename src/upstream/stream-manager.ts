/**
 * The vendor link: one connection to the vendor, kept alive through every failure (DESIGN.md §5).
 *
 * States: stopped → connecting → authenticating → live → (backoff | breaker-open) → … →
 * stopping → stopped, plus `failed` for what retrying cannot fix (402 auth failed, 409, 411)
 * until an operator restarts. Every change goes through `#transition`, which logs it once.
 *
 * Each connect attempt and each established link has a generation number; anything a socket,
 * timer or promise of an older generation reports is ignored, so a late event can never act on
 * a newer link. The manager never holds two sockets: a new attempt waits for the old socket to
 * close first.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { type Clock, systemClock } from '../clock.js';
import { type ProtocolError, UpstreamError, VendorError } from '../errors.js';
import type { Random } from '../random.js';
import { ChannelSet, type Pair, pairsOf } from '../protocol/channel-set.js';
import { type Channel, type ChannelSymbols } from '../protocol/channels.js';
import type { Encoding, MessageUnit } from '../protocol/frame.js';
import { STOCKS, type StreamKind, streamKindOfUrl, upstreamEncodingOf } from '../protocol/streams.js';
import type { UpstreamConfig } from '../config.js';
import type { Secret } from '../secret.js';
import { Backoff } from './backoff.js';
import { type BreakerState, ConnectBreaker, isBreakerOpenError } from './connect-breaker.js';
import { StaleWatchdog } from './stale-watchdog.js';
import { buildRequests, type SubscriptionRequest } from './subscription-requests.js';
import { type ConnectionHandlers, VendorConnection } from './vendor-connection.js';

/** Every state a vendor link can be in. */
export const LINK_STATES = ['stopped', 'connecting', 'authenticating', 'live', 'backoff', 'breaker-open', 'failed', 'stopping'] as const;

export type LinkState = (typeof LINK_STATES)[number];

/** Vendor codes after which reconnecting cannot help: wrong keys, feed or scope not in the plan. */
const TERMINAL_CODES = new Set([402, 408, 409, 411]);

/** The vendor's symbol-level refusals; any other error on a subscription request is transient. */
const REFUSAL_CODES = new Set([405, 409, 410]);

/** The vendor-link settings of the configuration that the manager uses. */
export type LinkSettings = Pick<
  UpstreamConfig,
  | 'encoding'
  | 'connectTimeoutMs'
  | 'authTimeoutMs'
  | 'retryBaseMs'
  | 'retryMaxMs'
  | 'retryAfter406Ms'
  | 'stableAfterMs'
  | 'breakerFailures'
  | 'breakerResetMs'
  | 'heartbeatMs'
  | 'pongTimeoutMs'
  | 'staleAfterMs'
  | 'stopTimeoutMs'
  | 'subscribeTimeoutMs'
  | 'subscribeMinIntervalMs'
>;

export interface StreamManagerOptions extends LinkSettings {
  readonly url: string;
  /** the kind of stream at `url` (default: the kind of its path, else stocks) */
  readonly kind?: StreamKind;
  readonly keyId: Secret;
  readonly secretKey: Secret;
  readonly logger: Logger;
  readonly clock?: Clock;
  readonly random?: Random;
  /** receives every data message, one frame at a time; a throw is contained and logged */
  readonly onData: (units: MessageUnit[]) => void;
  /** restarts asked for within this long after one settled join it (default 1000) */
  readonly restartCoalesceMs?: number;
  /** every frame of the live connection as the vendor sent it, before its data reaches `onData` (the tape) */
  readonly onFrame?: (data: Buffer, encoding: Encoding, dataMessages: number) => void;
}

/** A restart as its caller sees it: one id for every request that shares it. */
export interface RestartTicket {
  readonly id: string;
  /** whether this request joined a restart in flight or one that settled moments ago */
  readonly joined: boolean;
  /** resolves once the restarted link settles (live, failed, backoff or breaker-open) */
  readonly settled: Promise<void>;
}

/** Options every operation takes: a correlation id that appears in every log line it causes. */
export interface OperationOptions {
  readonly correlationId?: string;
}

export interface StateChange {
  readonly from: LinkState;
  readonly to: LinkState;
  readonly at: number;
  readonly reason?: string;
  /** for `backoff`: how long until the next attempt */
  readonly delayMs?: number;
  readonly correlationId?: string;
  /** when it happened as RFC 3339 text, where milliseconds are not enough (a replayed mark's nanoseconds) */
  readonly atText?: string;
}

export interface Refusal {
  readonly code: number;
  readonly message: string;
  readonly action: 'subscribe' | 'unsubscribe';
  /** the pairs of the refused request */
  readonly set: ChannelSymbols;
  readonly correlationId?: string;
}

export interface LinkStats {
  /** connect attempts made (each through the breaker) */
  attempts: number;
  /** times the link became live again after the first time since start */
  reconnects: number;
  /** data messages received */
  messages: number;
  /** bytes of every frame received */
  bytes: number;
  /** clock time of the last data message */
  lastMessageAt: number | undefined;
  malformedFrames: number;
  consumerErrors: number;
  pongTimeouts: number;
  staleReconnects: number;
  /** subscribe/unsubscribe frames sent to the vendor */
  subscriptionFrames: number;
  /** answers to those frames, acknowledgements and errors alike */
  subscriptionReplies: number;
  /** subscription requests the vendor answered with a transient error (retried) */
  transientSubscriptionErrors: number;
}

export interface LinkStatus {
  state: LinkState;
  since: number;
  reason: string | undefined;
  breaker: BreakerState;
  desired: ChannelSymbols;
  acknowledged: ChannelSymbols;
  refused: ChannelSymbols;
  stats: LinkStats;
}

interface LiveWaiter {
  resolve(): void;
  reject(error: Error): void;
  timer: unknown;
}

export interface StreamManagerEvents {
  state: [StateChange];
  /** the set the vendor holds changed (its `subscription` reply differs from the last) */
  acknowledged: [ChannelSet];
  refused: [Refusal];
  'vendor-error': [{ code: number; message: string }];
}

export class StreamManager extends EventEmitter<StreamManagerEvents> {
  readonly #options: StreamManagerOptions;
  readonly #logger: Logger;
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #watchdog: StaleWatchdog;
  #backoff: Backoff;
  #breaker: ConnectBreaker | undefined;
  #state: LinkState = 'stopped';
  #since: number;
  #reason: string | undefined;
  #generation = 0;
  #connection: VendorConnection | undefined;
  #everLive = false;
  /** true while a socket is being opened and authenticated */
  #handshaking = false;
  /** the correlation id of the operation in progress (start/stop/restart), cleared when it settles */
  #operationId: string | undefined;
  #stopping: Promise<void> | undefined;
  #restarting: RestartTicket | undefined;
  /** the last restart and when it settled: requests within the coalescing window join it */
  #lastRestart: { id: string; settledAt: number } | undefined;
  /** set by shutdown(): no start or restart ever again */
  #shutDown = false;

  #desired = new ChannelSet();
  #acknowledged = new ChannelSet();
  /** pairs the vendor refused; not asked for again until they leave and re-enter the desired set or the link reconnects */
  #refused = new ChannelSet();
  /** pairs the vendor acknowledged a request for without listing them (it normalised them away) */
  #absorbed = new ChannelSet();
  /** pairs that may need a request: changed since the last sync (or all, on a new connection) */
  #pending = new ChannelSet();
  #syncing = false;
  /** clock time the last sync round started (the rate floor counts from it) */
  #lastSyncAt = Number.NEGATIVE_INFINITY;
  #syncTimer: unknown;
  #syncWake: (() => void) | undefined;
  readonly #syncBackoff: Backoff;
  readonly #subscribeMinIntervalMs: number;
  #syncCorrelationId: string | undefined;
  readonly #syncWaiters = new Set<LiveWaiter>();
  readonly #liveWaiters = new Set<LiveWaiter>();

  #retryTimer: unknown;
  #heartbeatTimer: unknown;
  #pongTimer: unknown;
  #stableTimer: unknown;
  #offHalfOpen: (() => void) | undefined;

  readonly #stats: LinkStats = {
    attempts: 0,
    reconnects: 0,
    messages: 0,
    bytes: 0,
    lastMessageAt: undefined,
    malformedFrames: 0,
    consumerErrors: 0,
    pongTimeouts: 0,
    staleReconnects: 0,
    subscriptionFrames: 0,
    subscriptionReplies: 0,
    transientSubscriptionErrors: 0,
  };

  /** the kind of stream this link carries: its channels, reply keys and how its frames are cut */
  readonly kind: StreamKind;
  /** the encoding used upstream: the configured one, unless the kind's vendor lacks it (options: msgpack only) */
  readonly encoding: Encoding;

  constructor(options: StreamManagerOptions) {
    super();
    this.#options = options;
    this.kind = options.kind ?? streamKindOfUrl(options.url) ?? STOCKS;
    this.encoding = upstreamEncodingOf(this.kind, options.encoding);
    this.#logger = options.logger.child({ component: 'vendor-link' });
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? Math.random;
    this.#backoff = new Backoff(options.retryBaseMs, options.retryMaxMs, this.#random);
    this.#watchdog = new StaleWatchdog(options.staleAfterMs);
    this.#syncBackoff = new Backoff(options.retryBaseMs, options.retryMaxMs, this.#random);
    this.#subscribeMinIntervalMs = options.subscribeMinIntervalMs;
    this.#since = this.#clock.now();
  }

  get state(): LinkState {
    return this.#state;
  }

  /** When the current state began (clock milliseconds). */
  get since(): number {
    return this.#since;
  }

  /** Why the link left `live` (or failed), until it is live again. */
  get reason(): string | undefined {
    return this.#reason;
  }

  get breakerState(): BreakerState {
    return this.#breaker?.state ?? 'closed';
  }

  /**
   * Stops reading vendor data for a moment: the consumer has had as much as it can route in one
   * event-loop turn (the hub calls `resumeIntake` once it has flushed). Data waits in the socket.
   */
  pauseIntake(): void {
    this.#connection?.pause();
  }

  resumeIntake(): void {
    this.#connection?.resume();
  }

  get stats(): Readonly<LinkStats> {
    return { ...this.#stats };
  }

  /** Everything health and the control plane report about the link. */
  status(): LinkStatus {
    return {
      state: this.#state,
      since: this.#since,
      reason: this.#reason,
      breaker: this.breakerState,
      desired: this.#desired.toLists(),
      acknowledged: this.#acknowledged.toLists(),
      refused: this.#refused.toLists(),
      stats: this.stats,
    };
  }

  /** How many (channel, symbol) pairs the vendor holds on the current link (0 while down), without copying the set. */
  get acknowledgedPairs(): number {
    return this.#acknowledged.size;
  }

  /** The set the vendor has acknowledged on the current link (empty while down). */
  get acknowledged(): ChannelSet {
    return this.#acknowledged.clone();
  }

  get desired(): ChannelSet {
    return this.#desired.clone();
  }

  #log(correlationId?: string): Logger {
    const id = correlationId ?? this.#operationId;
    return id === undefined ? this.#logger : this.#logger.child({ correlationId: id });
  }

  #transition(to: LinkState, details: { reason?: string; delayMs?: number; correlationId?: string } = {}): void {
    const from = this.#state;
    if (from === to && details.reason === undefined) return;
    this.#state = to;
    this.#since = this.#clock.now();
    if (details.reason !== undefined || to === 'live' || to === 'stopped') this.#reason = details.reason;
    const correlationId = details.correlationId ?? this.#operationId;
    const level = to === 'failed' ? 'error' : to === 'backoff' || to === 'breaker-open' ? 'warn' : 'info';
    this.#log(correlationId)[level]({ from, to, reason: details.reason, delayMs: details.delayMs }, 'vendor link state');
    this.emit('state', { from, to, at: this.#since, reason: details.reason, delayMs: details.delayMs, correlationId });
    // A restart passes through `stopped` on its way back up: waiters keep waiting through it.
    if (to === 'live' || to === 'failed' || (to === 'stopped' && (this.#restarting === undefined || this.#shutDown))) this.#settleLiveWaiters(to);
  }

  // ---------------------------------------------------------------- lifecycle

  /**
   * Starts the link. On a running link it is a logged no-op; from `failed` it starts over.
   * Returns at once; `whenLive()` waits for the outcome.
   */
  start(options: OperationOptions = {}): void {
    if (this.#shutDown) {
      this.#log(options.correlationId).warn('start ignored: the link is shut down');
      return;
    }
    if (this.#stopping !== undefined) {
      this.#log(options.correlationId).warn({ state: this.#state }, 'start ignored: the link is stopping');
      return;
    }
    if (this.#state !== 'stopped' && this.#state !== 'failed') {
      this.#log(options.correlationId).info({ state: this.#state }, 'start ignored: the link is already running');
      return;
    }
    this.#operationId = options.correlationId;
    this.#breaker?.shutdown();
    this.#breaker = new ConnectBreaker(this.#options.breakerFailures, this.#options.breakerResetMs);
    this.#backoff.reset();
    this.#everLive = false;
    this.#log().info({ url: redactUrl(this.#options.url), encoding: this.encoding, kind: this.kind.name }, 'vendor link starting');
    this.#beginAttempt();
  }

  /**
   * Stops the link: closes the socket (cleanly, cut after the stop timeout) and clears every timer
   * and listener. Concurrent calls share one stop; stopping a stopped link is a no-op.
   */
  stop(options: OperationOptions = {}): Promise<void> {
    if (this.#stopping !== undefined) return this.#stopping;
    if (this.#state === 'stopped') return Promise.resolve();
    if (options.correlationId !== undefined) this.#operationId = options.correlationId;
    this.#stopping = this.#doStop().finally(() => {
      this.#stopping = undefined;
    });
    return this.#stopping;
  }

  async #doStop(): Promise<void> {
    this.#generation += 1; // everything in flight now belongs to the past
    this.#transition('stopping');
    this.#clearLinkTimers();
    this.#clock.clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    this.#offHalfOpen?.();
    this.#offHalfOpen = undefined;
    const connection = this.#connection;
    this.#connection = undefined;
    this.#cancelSync();
    if (connection !== undefined) await connection.close(this.#options.stopTimeoutMs);
    this.#breaker?.shutdown();
    this.#breaker = undefined;
    this.#acknowledged = new ChannelSet();
    this.#failSyncWaiters(new UpstreamError('the vendor link stopped', { code: 'ERR_UPSTREAM_STOPPED' }));
    this.#transition('stopped');
    this.#operationId = undefined;
  }

  /**
   * Stop, then start with the desired subscriptions restored; clears `failed` and the breaker.
   * Calls while a restart is in flight, or within `restartCoalesceMs` after it settled, join it:
   * same id, no second reconnect. After `shutdown()` nothing restarts.
   */
  restart(options: OperationOptions = {}): RestartTicket {
    if (this.#shutDown) {
      this.#log(options.correlationId).warn('restart ignored: the link is shut down');
      return { id: randomUUID(), joined: false, settled: Promise.resolve() };
    }
    if (this.#restarting !== undefined) {
      this.#log(options.correlationId).info({ restartId: this.#restarting.id }, 'restart joined the one in progress');
      return { ...this.#restarting, joined: true };
    }
    const last = this.#lastRestart;
    if (last !== undefined && this.#clock.now() - last.settledAt < (this.#options.restartCoalesceMs ?? 1000)) {
      this.#log(options.correlationId).info({ restartId: last.id }, 'restart joined the one that just settled');
      return { id: last.id, joined: true, settled: Promise.resolve() };
    }
    const id = randomUUID();
    const correlationId = options.correlationId ?? id;
    const settled = (async () => {
      this.#log(correlationId).info({ state: this.#state, restartId: id }, 'vendor link restart');
      await this.stop({ correlationId });
      // A shutdown that began meanwhile wins: no new vendor connection after it.
      if (this.#shutDown) return;
      this.start({ correlationId });
      await this.#settled();
    })()
      .catch((err: unknown) => this.#log(correlationId).error({ err, restartId: id }, 'restart failed'))
      .finally(() => {
        this.#restarting = undefined;
        this.#lastRestart = { id, settledAt: this.#clock.now() };
      });
    this.#restarting = { id, joined: false, settled };
    return this.#restarting;
  }

  /**
   * Stops the link for good (process shutdown): a restart in progress does not start it again,
   * and later start() or restart() calls are ignored.
   */
  shutdown(options: OperationOptions = {}): Promise<void> {
    this.#shutDown = true;
    return this.stop(options);
  }

  /** Resolves once the state is one an attempt ends in. */
  #settled(): Promise<void> {
    const done = (s: LinkState): boolean => ['live', 'failed', 'backoff', 'breaker-open', 'stopped'].includes(s);
    if (done(this.#state)) return Promise.resolve();
    return new Promise((resolve) => {
      const listener = (change: StateChange): void => {
        if (!done(change.to)) return;
        this.off('state', listener);
        resolve();
      };
      this.on('state', listener);
    });
  }

  /**
   * Resolves when the link is live (at once if it is); rejects if it fails, stops, or is not
   * live within `timeoutMs`.
   */
  whenLive(timeoutMs?: number): Promise<void> {
    if (this.#state === 'live') return Promise.resolve();
    if (this.#state === 'stopped' || this.#state === 'failed') {
      return Promise.reject(new UpstreamError(`the vendor link is ${this.#state}`, { code: 'ERR_UPSTREAM_DOWN' }));
    }
    return this.#waitOn(this.#liveWaiters, timeoutMs, 'the vendor link to be live');
  }

  #waitOn(waiters: Set<LiveWaiter>, timeoutMs: number | undefined, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const waiter: LiveWaiter = {
        resolve,
        reject,
        timer:
          timeoutMs === undefined
            ? undefined
            : this.#clock.setTimeout(() => {
                waiters.delete(waiter);
                reject(new UpstreamError(`timed out after ${timeoutMs} ms waiting for ${what}`, { code: 'ERR_UPSTREAM_TIMEOUT' }));
              }, timeoutMs),
      };
      waiters.add(waiter);
    });
  }

  #settleLiveWaiters(state: LinkState): void {
    for (const waiter of this.#liveWaiters) {
      this.#clock.clearTimeout(waiter.timer);
      if (state === 'live') waiter.resolve();
      else waiter.reject(new UpstreamError(`the vendor link is ${state}${this.#reason ? `: ${this.#reason}` : ''}`, { code: 'ERR_UPSTREAM_DOWN' }));
    }
    this.#liveWaiters.clear();
  }

  // ---------------------------------------------------------------- attempts

  #beginAttempt(): void {
    const generation = ++this.#generation;
    void this.#runAttempt(generation);
  }

  async #runAttempt(generation: number): Promise<void> {
    const breaker = this.#breaker as ConnectBreaker;
    if (breaker.state === 'open') {
      this.#waitForHalfOpen(generation, breaker);
      return;
    }
    this.#transition('connecting');
    this.#stats.attempts += 1;
    let failure: unknown;
    try {
      await breaker.fire(() => this.#handshake(generation));
    } catch (err) {
      failure = err;
    }
    if (generation !== this.#generation) return;
    if (failure !== undefined) {
      this.#afterFailedAttempt(generation, failure);
      return;
    }
    // A new connection holds nothing: every desired pair is restored in one pass before the link
    // counts as live. Heartbeats run meanwhile, as a restore may wait out a vendor's transient errors.
    this.#acknowledged = new ChannelSet();
    this.#refused = new ChannelSet();
    this.#absorbed = new ChannelSet();
    this.#pending = this.#desired.clone();
    this.#watchdog.reset();
    this.#startHeartbeat(generation);
    try {
      await this.#syncLoop(generation);
    } catch (err) {
      this.#linkLost(generation, describe(err), { clean: true });
      return;
    }
    if (generation !== this.#generation) return;
    if (this.#everLive) this.#stats.reconnects += 1;
    this.#everLive = true;
    this.#transition('live');
    this.#operationId = undefined;
    this.#startStableTimer(generation);
    this.#afterSync(generation);
  }

  /** Connects and authenticates one socket; on failure the socket is closed before this throws. */
  async #handshake(generation: number): Promise<void> {
    await this.#connection?.whenClosed();
    const connection = VendorConnection.create({
      url: this.#options.url,
      encoding: this.encoding,
      kind: this.kind,
      clock: this.#clock,
      logger: this.#logger,
      handlers: this.#handlersFor(generation),
    });
    this.#connection = connection;
    this.#handshaking = true;
    try {
      await connection.greeting(this.#options.connectTimeoutMs);
      if (generation !== this.#generation) throw new UpstreamError('attempt superseded', { code: 'ERR_UPSTREAM_SUPERSEDED' });
      this.#transition('authenticating');
      await connection.authenticate(this.#options.keyId, this.#options.secretKey, this.#options.authTimeoutMs);
    } catch (err) {
      connection.terminate();
      await connection.whenClosed();
      if (this.#connection === connection) this.#connection = undefined;
      throw err;
    } finally {
      this.#handshaking = false;
    }
  }

  #afterFailedAttempt(generation: number, err: unknown): void {
    const reason = describe(err);
    if (err instanceof VendorError && TERMINAL_CODES.has(err.vendorCode)) {
      this.#transition('failed', { reason: `${err.vendorCode} ${err.message}: retrying cannot fix this; restart once it is fixed` });
      this.#operationId = undefined;
      return;
    }
    const breaker = this.#breaker as ConnectBreaker;
    if (isBreakerOpenError(err) || breaker.state === 'open') {
      this.#transition('breaker-open', { reason: `${breaker.failures} consecutive failed attempts; last: ${reason}` });
      this.#waitForHalfOpen(generation, breaker);
      return;
    }
    let delayMs = this.#backoff.next();
    if (err instanceof VendorError && err.vendorCode === 406) delayMs = Math.max(delayMs, this.#options.retryAfter406Ms);
    this.#scheduleRetry(delayMs, reason);
  }

  #scheduleRetry(delayMs: number, reason: string): void {
    this.#transition('backoff', { reason, delayMs });
    const generation = this.#generation;
    this.#retryTimer = this.#clock.setTimeout(() => {
      this.#retryTimer = undefined;
      if (generation === this.#generation) this.#beginAttempt();
    }, delayMs);
  }

  #waitForHalfOpen(generation: number, breaker: ConnectBreaker): void {
    if (this.#state !== 'breaker-open') this.#transition('breaker-open', { reason: 'the breaker is open' });
    this.#offHalfOpen?.();
    this.#offHalfOpen = breaker.onHalfOpen(() => {
      this.#offHalfOpen?.();
      this.#offHalfOpen = undefined;
      if (generation !== this.#generation) return;
      this.#log().info('breaker half-open: one probe goes through');
      this.#beginAttempt();
    });
  }

  /**
   * The established link died or must be replaced: close it, forget its acknowledgements, and
   * retry with backoff. `clean` closes with 1000 (cut after the stop timeout) for a socket that
   * still answers, so the vendor does not hold a half-dead session against the next connect;
   * otherwise the socket is cut at once. The next attempt waits for it to be gone.
   */
  #linkLost(generation: number, reason: string, options: { clean?: boolean } = {}): void {
    if (generation !== this.#generation) return;
    this.#generation += 1;
    this.#cancelSync();
    this.#clearLinkTimers();
    const connection = this.#connection;
    if (options.clean === true) void connection?.close(this.#options.stopTimeoutMs);
    else connection?.terminate();
    this.#acknowledged = new ChannelSet();
    this.#scheduleRetry(this.#backoff.next(), reason);
  }

  #handlersFor(generation: number): ConnectionHandlers {
    const current = (): boolean => generation === this.#generation;
    return {
      onData: (units: MessageUnit[]) => {
        if (!current()) return;
        const now = this.#clock.now();
        this.#stats.messages += units.length;
        this.#stats.lastMessageAt = now;
        this.#watchdog.onData(now);
        try {
          this.#options.onData(units);
        } catch (err) {
          // The consumer's failure is its own: contain it, count it, keep the link.
          this.#stats.consumerErrors += 1;
          this.#logger.error({ err }, 'data consumer threw; the link carries on');
        }
      },
      onUnsolicited: (message: Record<string, unknown>) => {
        if (!current()) return;
        this.#onUnsolicited(message);
      },
      onMalformed: (error: ProtocolError, bytes: number) => {
        if (!current()) return;
        this.#stats.malformedFrames += 1;
        this.#logger.warn({ bytes, reason: error.message }, 'malformed frame from the vendor; skipped');
      },
      onClose: (code: number, reason: string) => {
        // During the handshake the attempt itself sees the close and decides what follows.
        if (!current() || this.#handshaking) return;
        this.#linkLost(generation, `vendor closed the connection (${code}${reason ? ` ${reason}` : ''})`);
      },
      onPong: () => {
        if (!current()) return;
        this.#clock.clearTimeout(this.#pongTimer);
        this.#pongTimer = undefined;
      },
      onBytes: (bytes: number) => {
        if (current()) this.#stats.bytes += bytes;
      },
      onFrame:
        this.#options.onFrame === undefined
          ? undefined
          : (data: Buffer, encoding: Encoding, dataMessages: number) => {
              if (current()) this.#options.onFrame?.(data, encoding, dataMessages);
            },
    };
  }

  #onUnsolicited(message: Record<string, unknown>): void {
    if (message.T === 'error') {
      const code = typeof message.code === 'number' ? message.code : -1;
      const text = typeof message.msg === 'string' ? message.msg : '';
      this.#logger.warn({ code, msg: text }, 'vendor error');
      this.emit('vendor-error', { code, message: text });
      return;
    }
    if (message.T === 'subscription') {
      this.#acknowledge(message);
      return;
    }
    this.#logger.info({ type: message.T, msg: message.msg }, 'vendor control message');
  }

  // ---------------------------------------------------------------- liveness

  #startHeartbeat(generation: number): void {
    const beat = (): void => {
      if (generation !== this.#generation) return;
      const now = this.#clock.now();
      const flowing = this.kind.flowingChannels.some((c) => this.#acknowledged.symbols(c).size > 0);
      if (this.#watchdog.isStale(now, flowing)) {
        this.#stats.staleReconnects += 1;
        // The socket still answers pings: close it cleanly rather than leave the vendor a zombie.
        this.#linkLost(generation, `no data for ${now - (this.#stats.lastMessageAt ?? now)} ms while ${this.kind.flowingChannels.join(' or ')} are subscribed (threshold ${this.#watchdog.thresholdMs} ms)`, { clean: true });
        return;
      }
      if (this.#pongTimer === undefined) {
        this.#connection?.ping();
        this.#pongTimer = this.#clock.setTimeout(() => {
          this.#pongTimer = undefined;
          if (generation !== this.#generation) return;
          this.#stats.pongTimeouts += 1;
          this.#linkLost(generation, `no pong within ${this.#options.pongTimeoutMs} ms`);
        }, this.#options.pongTimeoutMs);
      }
      this.#heartbeatTimer = this.#clock.setTimeout(beat, this.#options.heartbeatMs);
    };
    this.#heartbeatTimer = this.#clock.setTimeout(beat, this.#options.heartbeatMs);
  }

  #startStableTimer(generation: number): void {
    this.#stableTimer = this.#clock.setTimeout(() => {
      if (generation !== this.#generation) return;
      this.#backoff.reset();
      this.#logger.debug({ stableAfterMs: this.#options.stableAfterMs }, 'link stable: backoff reset');
    }, this.#options.stableAfterMs);
  }

  #clearLinkTimers(): void {
    for (const timer of [this.#heartbeatTimer, this.#pongTimer, this.#stableTimer]) this.#clock.clearTimeout(timer);
    this.#heartbeatTimer = this.#pongTimer = this.#stableTimer = undefined;
  }

  // ---------------------------------------------------------------- subscriptions

  /**
   * Adds and removes pairs of the set the vendor should hold: the incremental path, costing work
   * in proportion to the pairs given. The change is applied on the live link as
   * subscribe/unsubscribe requests (no reconnect), coalesced with other changes and sent at most
   * once per `subscribeMinIntervalMs`.
   */
  change(added: Iterable<Pair>, removed: Iterable<Pair>, options: OperationOptions = {}): void {
    let changed = false;
    for (const [channel, symbol] of added) {
      // A channel this stream lacks is never asked for (the vendor would answer 410); callers
      // validate per kind already, so such a pair is a caller's slip: logged, not kept.
      if (!this.#carries(channel)) {
        this.#logger.warn({ channel, symbol, stream: this.kind.name }, 'pair on a channel this stream lacks ignored');
        continue;
      }
      if (this.#desired.has(channel, symbol)) continue;
      this.#desired.add(channel, symbol);
      this.#touched(channel, symbol);
      changed = true;
    }
    for (const [channel, symbol] of removed) {
      if (!this.#desired.has(channel, symbol)) continue;
      this.#desired.delete(channel, symbol);
      this.#touched(channel, symbol);
      changed = true;
    }
    if (!changed) return;
    if (options.correlationId !== undefined) this.#syncCorrelationId = options.correlationId;
    this.#scheduleSync();
  }

  #carries(channel: Channel): boolean {
    return (this.kind.channels as readonly Channel[]).includes(channel);
  }

  /** Replaces the desired set (the difference goes through `change`): for operators and tests. */
  setDesired(set: ChannelSet | ChannelSymbols, options: OperationOptions = {}): void {
    const next = set instanceof ChannelSet ? set : new ChannelSet(set);
    this.change(next.minus(this.#desired).pairs(), this.#desired.minus(next).pairs(), options);
  }

  /** A pair left or entered the desired set: it is asked about afresh on the next sync. */
  #touched(channel: Channel, symbol: string): void {
    this.#refused.delete(channel, symbol);
    this.#absorbed.delete(channel, symbol);
    this.#pending.add(channel, symbol);
  }

  /**
   * Resolves when the vendor holds the desired set (refused and absorbed pairs aside); rejects
   * when the link is not live or the wait passes `timeoutMs`.
   */
  whenSynced(timeoutMs?: number): Promise<void> {
    if (this.#state === 'live' && this.#inSync()) return Promise.resolve();
    if (this.#state === 'stopped' || this.#state === 'failed') {
      return Promise.reject(new UpstreamError(`the vendor link is ${this.#state}`, { code: 'ERR_UPSTREAM_DOWN' }));
    }
    return this.#waitOn(this.#syncWaiters, timeoutMs, 'the vendor to acknowledge the subscriptions');
  }

  #inSync(): boolean {
    return !this.#syncing && this.#pending.isEmpty;
  }

  /** What a pair needs from the vendor now, if anything. */
  #needed(channel: Channel, symbol: string): 'subscribe' | 'unsubscribe' | undefined {
    if (this.#absorbed.has(channel, symbol)) return undefined;
    const wanted = this.#desired.has(channel, symbol);
    const held = this.#acknowledged.has(channel, symbol);
    if (wanted && !held && !this.#refused.has(channel, symbol)) return 'subscribe';
    if (!wanted && held) return 'unsubscribe';
    return undefined;
  }

  /** Starts the sync loop on a live link unless it runs already. */
  #scheduleSync(): void {
    if (this.#syncing || this.#state !== 'live' || this.#pending.isEmpty) return;
    const generation = this.#generation;
    this.#syncLoop(generation).then(
      () => this.#afterSync(generation),
      (err: unknown) => this.#linkLost(generation, describe(err), { clean: true }),
    );
  }

  #afterSync(generation: number): void {
    if (generation !== this.#generation || this.#state !== 'live') return;
    if (this.#pending.isEmpty) this.#settleSyncWaiters();
    else this.#scheduleSync();
  }

  /**
   * Sends what the vendor lacks and what it should drop until nothing is pending: rounds start at
   * most once per `subscribeMinIntervalMs` whatever clients do; a round sends its frames one at a
   * time, each waiting for the vendor's reply. A transient vendor error (anything but the
   * symbol-level refusals 405, 409, 410) puts the round's pairs back and waits a growing backoff.
   * @throws UpstreamError when the link fails under it (reply timeout, close)
   */
  async #syncLoop(generation: number): Promise<void> {
    this.#syncing = true;
    try {
      for (;;) {
        // Changes of the same turn (many clients joining at once) go out together.
        await Promise.resolve();
        if (generation !== this.#generation) return;
        this.#prunePending();
        if (this.#pending.isEmpty) return;
        const wait = this.#lastSyncAt + this.#subscribeMinIntervalMs - this.#clock.now();
        if (wait > 0) {
          if (!(await this.#sleep(wait, generation))) return;
          continue;
        }
        this.#lastSyncAt = this.#clock.now();
        if ((await this.#round(generation)) === 'transient') {
          const delayMs = this.#syncBackoff.next();
          this.#log(this.#syncCorrelationId).warn({ delayMs }, 'vendor subscription request failed; retrying after a backoff, subscriptions kept');
          if (!(await this.#sleep(delayMs, generation))) return;
        }
      }
    } finally {
      if (generation === this.#generation) this.#syncing = false;
    }
  }

  /** Forgets pending pairs that need no request (changed and changed back, refused, absorbed). */
  #prunePending(): void {
    for (const [channel, symbol] of this.#pending.pairs()) {
      if (this.#needed(channel, symbol) === undefined) this.#pending.delete(channel, symbol);
    }
  }

  /** Waits on the clock; false when the link moved on meanwhile (the wait was cancelled). */
  #sleep(ms: number, generation: number): Promise<boolean> {
    return new Promise((resolve) => {
      this.#syncWake = () => {
        this.#clock.clearTimeout(this.#syncTimer);
        this.#syncTimer = undefined;
        this.#syncWake = undefined;
        resolve(generation === this.#generation);
      };
      this.#syncTimer = this.#clock.setTimeout(() => this.#syncWake?.(), ms);
    });
  }

  /** Cancels a sync wait: the loop that waited ends. */
  #cancelSync(): void {
    this.#syncWake?.();
    this.#syncing = false;
  }

  /**
   * One round: every pending pair, in frames of at most 32 KiB. The loop pruned `#pending` just
   * before (no await between), so each pair needs a request: a wanted one a subscribe, else an
   * unsubscribe.
   */
  async #round(generation: number): Promise<'done' | 'transient'> {
    const add = new ChannelSet();
    const remove = new ChannelSet();
    for (const [channel, symbol] of this.#pending.pairs()) (this.#desired.has(channel, symbol) ? add : remove).add(channel, symbol);
    this.#pending = new ChannelSet();
    const log = this.#log(this.#syncCorrelationId);
    const requests = [
      ...buildRequests('subscribe', add, this.encoding, undefined, this.kind),
      ...buildRequests('unsubscribe', remove, this.encoding, undefined, this.kind),
    ];
    log.info({ subscribe: add.size, unsubscribe: remove.size, frames: requests.length }, 'syncing vendor subscriptions');
    for (let i = 0; i < requests.length; i++) {
      if (generation !== this.#generation) return 'done';
      const outcome = await this.#send(requests[i] as SubscriptionRequest, generation, log);
      if (outcome === 'transient') {
        // Nothing is refused or dropped for it: these pairs are asked for again after the backoff.
        for (const request of requests.slice(i)) this.#pending.addAll(request.set);
        return 'transient';
      }
    }
    this.#syncBackoff.reset();
    this.#syncCorrelationId = undefined;
    return 'done';
  }

  async #send(request: SubscriptionRequest, generation: number, log: Logger): Promise<'done' | 'transient'> {
    const connection = this.#connection;
    if (connection === undefined) throw new UpstreamError('no vendor connection', { code: 'ERR_UPSTREAM_CLOSED' });
    this.#stats.subscriptionFrames += 1;
    let reply: Record<string, unknown>;
    try {
      reply = await connection.request(request.frame, this.#options.subscribeTimeoutMs);
    } catch (err) {
      if (!(err instanceof VendorError)) throw err;
      this.#stats.subscriptionReplies += 1;
      if (generation !== this.#generation) return 'done';
      const set = new ChannelSet(request.set);
      if (!REFUSAL_CODES.has(err.vendorCode)) {
        this.#stats.transientSubscriptionErrors += 1;
        log.warn({ code: err.vendorCode, msg: err.message, action: request.action, pairs: set.size }, 'vendor error on a subscription request (transient)');
        return 'transient';
      }
      // A subscribe refused is not asked for again until the pair changes; an unsubscribe refused
      // means the vendor keeps the pair: stop asking until the desired set changes.
      if (request.action === 'subscribe') this.#refused.addAll(set);
      else this.#absorbed.addAll(set);
      const refusal: Refusal = { code: err.vendorCode, message: err.message, action: request.action, set: set.toLists(), correlationId: this.#syncCorrelationId };
      log.warn({ code: err.vendorCode, msg: err.message, action: request.action, pairs: set.size }, 'vendor refused a subscription request');
      this.emit('refused', refusal);
      return 'done';
    }
    this.#stats.subscriptionReplies += 1;
    if (generation !== this.#generation) return 'done';
    this.#acknowledge(reply, request);
    return 'done';
  }

  /**
   * The vendor's reply is its whole current set: it becomes the acknowledged set. Pairs of the
   * request the vendor did not take as asked are absorbed (never asked about in a loop); when the
   * reply differs elsewhere too (an unsolicited change), every pair is reconsidered once.
   */
  #acknowledge(reply: Record<string, unknown>, request?: SubscriptionRequest): void {
    const previous = this.#acknowledged;
    const lists: Partial<Record<Channel, string[]>> = {};
    // A kind's reply keys that name its own channels (stocks' corrections/cancelErrors follow trades).
    for (const channel of this.kind.channels) {
      const value = reply[channel];
      if (Array.isArray(value)) lists[channel] = value.filter((s): s is string => typeof s === 'string');
    }
    const next = new ChannelSet(lists);
    this.#acknowledged = next;
    if (!next.equals(previous)) this.emit('acknowledged', next);
    let expected = previous.size;
    if (request !== undefined) {
      for (const [channel, symbol] of pairsOf(request.set)) {
        const was = previous.has(channel, symbol);
        const now = next.has(channel, symbol);
        expected += Number(now) - Number(was);
        if (now !== (request.action === 'subscribe')) this.#absorbed.add(channel, symbol);
      }
    }
    if (request === undefined || next.size !== expected) {
      this.#pending.addAll(this.#desired.minus(next));
      this.#pending.addAll(next.minus(this.#desired));
      this.#scheduleSync();
    }
  }

  #settleSyncWaiters(): void {
    for (const waiter of this.#syncWaiters) {
      this.#clock.clearTimeout(waiter.timer);
      waiter.resolve();
    }
    this.#syncWaiters.clear();
  }

  #failSyncWaiters(error: Error): void {
    for (const waiter of this.#syncWaiters) {
      this.#clock.clearTimeout(waiter.timer);
      waiter.reject(error);
    }
    this.#syncWaiters.clear();
  }
}

/** A one-line reason for logs and state: the error's code and message, never its stack. */
function describe(err: unknown): string {
  if (err instanceof VendorError) return `vendor error ${err.vendorCode} ${err.message}`;
  if (err instanceof Error) return `${(err as { code?: string }).code ?? err.name}: ${err.message}`;
  return String(err);
}

/** The URL without any query string or credentials, for logs. */
function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.protocol}//${parsed.host}${parsed.pathname}`;
  } catch (err) {
    if (err instanceof TypeError) return '[invalid url]';
    throw err;
  }
}
