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
import { ChannelSet } from '../protocol/channel-set.js';
import { CHANNELS, type Channel, type ChannelSymbols } from '../protocol/channels.js';
import type { UpstreamConfig } from '../config.js';
import type { MessageUnit } from '../protocol/frame.js';
import type { Secret } from '../secret.js';
import { Backoff } from './backoff.js';
import { type BreakerState, ConnectBreaker, isBreakerOpenError } from './connect-breaker.js';
import { StaleWatchdog } from './stale-watchdog.js';
import { buildRequests, type SubscriptionRequest } from './subscription-requests.js';
import { type ConnectionHandlers, VendorConnection } from './vendor-connection.js';

export type LinkState = 'stopped' | 'connecting' | 'authenticating' | 'live' | 'backoff' | 'breaker-open' | 'failed' | 'stopping';

/** Vendor codes after which reconnecting cannot help: wrong keys, feed or scope not in the plan. */
const TERMINAL_CODES = new Set([402, 408, 409, 411]);

/** Channels whose silence means something: the watchdog only judges links that carry them. */
const FLOWING_CHANNELS: readonly Channel[] = ['trades', 'quotes'];

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
>;

export interface StreamManagerOptions extends LinkSettings {
  readonly url: string;
  readonly keyId: Secret;
  readonly secretKey: Secret;
  readonly logger: Logger;
  readonly clock?: Clock;
  readonly random?: Random;
  /** receives every data message, one frame at a time; a throw is contained and logged */
  readonly onData: (units: MessageUnit[]) => void;
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
  #restarting: Promise<void> | undefined;

  #desired = new ChannelSet();
  #acknowledged = new ChannelSet();
  /** pairs the vendor refused; not asked for again until they leave and re-enter the desired set or the link reconnects */
  #refused = new ChannelSet();
  /** pairs the vendor acknowledged a request for without listing them (it normalised them away) */
  #absorbed = new ChannelSet();
  #syncing = false;
  #syncScheduled = false;
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
  };

  constructor(options: StreamManagerOptions) {
    super();
    this.#options = options;
    this.#logger = options.logger.child({ component: 'vendor-link' });
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? Math.random;
    this.#backoff = new Backoff(options.retryBaseMs, options.retryMaxMs, this.#random);
    this.#watchdog = new StaleWatchdog(options.staleAfterMs);
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
    if (to === 'live' || to === 'failed' || (to === 'stopped' && this.#restarting === undefined)) this.#settleLiveWaiters(to);
  }

  // ---------------------------------------------------------------- lifecycle

  /**
   * Starts the link. On a running link it is a logged no-op; from `failed` it starts over.
   * Returns at once; `whenLive()` waits for the outcome.
   */
  start(options: OperationOptions = {}): void {
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
    this.#log().info({ url: redactUrl(this.#options.url), encoding: this.#options.encoding }, 'vendor link starting');
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
   * Concurrent calls share one restart, which lasts until the new link settles (live, failed,
   * backoff or breaker-open).
   */
  restart(options: OperationOptions = {}): Promise<void> {
    if (this.#restarting !== undefined) {
      this.#log(options.correlationId).info('restart joined the one in progress');
      return this.#restarting;
    }
    const correlationId = options.correlationId ?? randomUUID();
    this.#restarting = (async () => {
      this.#log(correlationId).info({ state: this.#state }, 'vendor link restart');
      await this.stop({ correlationId });
      this.start({ correlationId });
      await this.#settled();
    })().finally(() => {
      this.#restarting = undefined;
    });
    return this.#restarting;
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
    try {
      this.#acknowledged = new ChannelSet();
      this.#refused = new ChannelSet();
      this.#absorbed = new ChannelSet();
      await this.#syncLoop(generation, true);
    } catch (err) {
      this.#linkLost(generation, describe(err));
      return;
    }
    if (generation !== this.#generation) return;
    if (this.#everLive) this.#stats.reconnects += 1;
    this.#everLive = true;
    this.#watchdog.reset();
    this.#transition('live');
    this.#operationId = undefined;
    this.#startLinkTimers(generation);
    this.#scheduleSync();
  }

  /** Connects and authenticates one socket; on failure the socket is closed before this throws. */
  async #handshake(generation: number): Promise<void> {
    await this.#connection?.whenClosed();
    const connection = VendorConnection.create({
      url: this.#options.url,
      encoding: this.#options.encoding,
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

  /** The established link died: cut it, forget its acknowledgements, and retry with backoff. */
  #linkLost(generation: number, reason: string): void {
    if (generation !== this.#generation) return;
    this.#generation += 1;
    this.#clearLinkTimers();
    this.#connection?.terminate();
    this.#acknowledged = new ChannelSet();
    this.emit('acknowledged', this.#acknowledged.clone());
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

  #startLinkTimers(generation: number): void {
    const beat = (): void => {
      if (generation !== this.#generation) return;
      const now = this.#clock.now();
      const flowing = FLOWING_CHANNELS.some((c) => this.#acknowledged.symbols(c).size > 0);
      if (this.#watchdog.isStale(now, flowing)) {
        this.#stats.staleReconnects += 1;
        this.#linkLost(generation, `no data for ${now - (this.#stats.lastMessageAt ?? now)} ms while trades or quotes are subscribed (threshold ${this.#watchdog.thresholdMs} ms)`);
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
   * Sets the set the vendor should hold. The change is applied on the live link as incremental
   * subscribe/unsubscribe requests (no reconnect), coalesced with other changes of the same turn.
   */
  setDesired(set: ChannelSet | ChannelSymbols, options: OperationOptions = {}): void {
    const next = set instanceof ChannelSet ? set.clone() : new ChannelSet(set);
    // Pairs that left or entered the desired set are asked about afresh.
    for (const changed of [next.minus(this.#desired), this.#desired.minus(next)]) {
      this.#refused.deleteAll(changed);
      this.#absorbed.deleteAll(changed);
    }
    this.#desired = next;
    if (options.correlationId !== undefined) this.#syncCorrelationId = options.correlationId;
    this.#scheduleSync();
  }

  /**
   * Resolves when the vendor holds the desired set (refused pairs aside); rejects when the link
   * is not live or the wait passes `timeoutMs`.
   */
  whenSynced(timeoutMs?: number): Promise<void> {
    if (this.#state === 'live' && !this.#syncing && !this.#syncScheduled && this.#pendingChanges().isEmpty) return Promise.resolve();
    if (this.#state === 'stopped' || this.#state === 'failed') {
      return Promise.reject(new UpstreamError(`the vendor link is ${this.#state}`, { code: 'ERR_UPSTREAM_DOWN' }));
    }
    return this.#waitOn(this.#syncWaiters, timeoutMs, 'the vendor to acknowledge the subscriptions');
  }

  /** What still has to be sent: missing pairs plus pairs to drop. */
  #pendingChanges(): ChannelSet {
    const missing = this.#desired.minus(this.#acknowledged).minus(this.#refused).minus(this.#absorbed);
    const extra = this.#acknowledged.minus(this.#desired);
    missing.addAll(extra);
    return missing;
  }

  #scheduleSync(): void {
    if (this.#syncScheduled || this.#state !== 'live') return;
    this.#syncScheduled = true;
    // Changes made in the same turn (many clients joining at once) go out together.
    queueMicrotask(() => {
      this.#syncScheduled = false;
      const generation = this.#generation;
      if (this.#state !== 'live') return;
      this.#syncLoop(generation, false).catch((err: unknown) => this.#linkLost(generation, describe(err)));
    });
  }

  /**
   * Sends what the vendor lacks and what it should drop, one request in flight at a time, until
   * nothing is pending. With `restoring`, it runs before the link counts as live.
   * @throws UpstreamError when the link fails under it (timeout, close)
   */
  async #syncLoop(generation: number, restoring: boolean): Promise<void> {
    if (this.#syncing) return;
    this.#syncing = true;
    const log = this.#log(this.#syncCorrelationId);
    try {
      for (;;) {
        if (generation !== this.#generation) return;
        const add = this.#desired.minus(this.#acknowledged).minus(this.#refused).minus(this.#absorbed);
        const remove = this.#acknowledged.minus(this.#desired);
        if (add.isEmpty && remove.isEmpty) break;
        const requests = [...buildRequests('subscribe', add, this.#options.encoding), ...buildRequests('unsubscribe', remove, this.#options.encoding)];
        log.info({ subscribe: add.size, unsubscribe: remove.size, frames: requests.length, restoring }, 'syncing vendor subscriptions');
        for (const request of requests) {
          if (generation !== this.#generation) return;
          await this.#send(request, generation, log);
        }
      }
      this.#syncCorrelationId = undefined;
    } finally {
      this.#syncing = false;
    }
    if (restoring) return;
    // Changes that arrived while the last request was in flight.
    if (!this.#pendingChanges().isEmpty) this.#scheduleSync();
    else this.#settleSyncWaiters();
  }

  async #send(request: SubscriptionRequest, generation: number, log: Logger): Promise<void> {
    const connection = this.#connection;
    if (connection === undefined) throw new UpstreamError('no vendor connection', { code: 'ERR_UPSTREAM_CLOSED' });
    let reply: Record<string, unknown>;
    try {
      reply = await connection.request(request.frame, this.#options.subscribeTimeoutMs);
    } catch (err) {
      if (!(err instanceof VendorError)) throw err;
      if (generation !== this.#generation) return;
      const set = new ChannelSet(request.set);
      if (request.action === 'subscribe') this.#refused.addAll(set);
      const refusal: Refusal = { code: err.vendorCode, message: err.message, action: request.action, set: set.toLists(), correlationId: this.#syncCorrelationId };
      log.warn({ code: err.vendorCode, msg: err.message, action: request.action, pairs: set.size }, 'vendor refused a subscription request');
      this.emit('refused', refusal);
      if (request.action === 'unsubscribe') {
        // The vendor keeps what it would not drop; stop asking until the desired set changes.
        this.#absorbed.addAll(set);
      }
      return;
    }
    if (generation !== this.#generation) return;
    this.#acknowledge(reply);
    const sent = new ChannelSet(request.set);
    for (const [channel, symbol] of sent.pairs()) {
      const held = this.#acknowledged.has(channel, symbol);
      if ((request.action === 'subscribe' && !held) || (request.action === 'unsubscribe' && held)) this.#absorbed.add(channel, symbol);
    }
  }

  /** The vendor's reply is its whole current set: take it as the acknowledged set. */
  #acknowledge(reply: Record<string, unknown>): void {
    const lists: Partial<Record<Channel, string[]>> = {};
    for (const channel of CHANNELS) {
      const value = reply[channel];
      if (Array.isArray(value)) lists[channel] = value.filter((s): s is string => typeof s === 'string');
    }
    this.#acknowledged = new ChannelSet(lists);
    this.emit('acknowledged', this.#acknowledged.clone());
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

