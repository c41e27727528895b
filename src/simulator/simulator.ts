/**
 * The simulated vendor: a real WebSocket server that speaks every Alpaca market-data stream of
 * DESIGN.md §9 — stocks, crypto, options, news — on one port, each path the way the vendor does
 * (PROTOCOL.md, PROTOCOL-STREAMS.md), fed by one synthetic market per stream kind, with fault
 * controls for tests.
 *
 * Usable as a library (`new VendorSimulator({ port: 0 })`, `await start()`, `await stop()`) and
 * as a process (`tickmux simulate`). It is the embedded upstream of `npm start` and the vendor in
 * every test and benchmark; nothing here imports Fastify.
 */
import { EventEmitter } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { pino, type Logger } from 'pino';
import { WebSocketServer } from 'ws';
import { type Clock, systemClock, timestampNow } from '../clock.js';
import { TickmuxError } from '../errors.js';
import { type Feed, isFeed } from '../protocol/channels.js';
import { ChannelSet } from '../protocol/channel-set.js';
import { parseClientRequest } from '../protocol/client-request.js';
import { encodeFrame, encodeUnits } from '../protocol/frame.js';
import { type Channel, STOCKS, STREAM_PATHS, type StreamKind, type StreamKindName, streamKindOf, WILDCARD } from '../protocol/streams.js';
import { CryptoMarket } from './crypto-market.js';
import { DEFAULT_TRADE_ID_BASE, StockMarket } from './market.js';
import { NewsWire } from './news-wire.js';
import { OptionMarket } from './option-market.js';
import { type Random, seededRandom } from '../random.js';
import type { MarketMessage, StreamMarket } from './stream-market.js';
import { type SimulatedPlan, type VendorContext, VendorSession } from './vendor-session.js';

export interface SimulatedCredential {
  readonly key: string;
  readonly secret: string;
  readonly plan?: SimulatedPlan;
}

export interface SimulatorOptions {
  readonly host?: string;
  readonly port?: number;
  /** stream paths served (default: every path of DESIGN.md §9) */
  readonly paths?: readonly string[];
  /** shorthand for `paths`: only these stock feeds (`v2/{feed}`) */
  readonly feeds?: readonly Feed[];
  /** accepted keys; omitted: any non-empty key and secret is accepted */
  readonly credentials?: readonly SimulatedCredential[];
  /** market messages per second across all symbols, per stream kind (default 100; 0: no data) */
  readonly rate?: number;
  /** generation tick (default 10 ms) */
  readonly tickMs?: number;
  /** most messages in one frame (default 50) */
  readonly batchSize?: number;
  /** minute bars, daily bars and updated bars every this many ms (default 60000) */
  readonly barIntervalMs?: number;
  /** statuses, LULDs and imbalances every this many ms (default 30000) */
  readonly statusIntervalMs?: number;
  /** one news item every this many ms while anyone holds news (default 5000; not tied to `rate`) */
  readonly newsIntervalMs?: number;
  /** probability that a trade is followed by a correction or a cancel (default 0.001) */
  readonly correctionRate?: number;
  /** stock symbols generated for `*` subscribers (default: a dozen large caps) */
  readonly universe?: readonly string[];
  /** symbols `*` brings in on the other kinds (defaults: a few pairs, contracts and tickers) */
  readonly universes?: { readonly crypto?: readonly string[]; readonly options?: readonly string[]; readonly news?: readonly string[] };
  readonly authTimeoutMs?: number;
  /** unsent bytes per connection before 407 slow client (default 16 MiB) */
  readonly maxBufferBytes?: number;
  /** largest client frame; a larger one gets 400 and close code 1009 (default 1 MiB) */
  readonly maxPayloadBytes?: number;
  readonly tradeIdBase?: bigint;
  readonly seed?: number;
  readonly random?: Random;
  readonly clock?: Clock;
  readonly logger?: Logger;
}

export const DEFAULT_UNIVERSE = ['AAPL', 'MSFT', 'AMZN', 'NVDA', 'GOOGL', 'META', 'TSLA', 'BRK.B', 'JPM', 'V', 'SPY', 'QQQ'];

/** Malformed frames a test can make the vendor send. */
export type MalformedKind = 'garbage' | 'not-array' | 'unknown-type' | 'unknown-error' | 'not-object';

const MALFORMED_KINDS: readonly MalformedKind[] = ['garbage', 'not-array', 'unknown-type', 'unknown-error', 'not-object'];

/** A summary of one connection, for tests and the control endpoint. */
export interface SessionInfo {
  id: number;
  /** the stream path, e.g. `v2/iex` */
  path: string;
  kind: StreamKindName;
  /** the path's last segment: `iex`, `us`, `indicative`, `news`… */
  feed: string;
  encoding: 'json' | 'msgpack';
  authenticated: boolean;
  key: string | undefined;
  subscriptions: Record<Channel, string[]>;
  inboundSizes: number[];
  /** once closed: the code the peer's close carried (1006: cut without a close frame) */
  closeCode: number | undefined;
}

export interface SimulatorStats {
  /** upgrade requests received, refused ones included */
  upgrades: number;
  /** upgrades accepted */
  connections: number;
  /** successful auths */
  authentications: number;
  /** most authenticated connections one key held on one stream path at once (the vendor allows 1) */
  maxConcurrentPerKey: number;
  /** subscribe/unsubscribe requests applied */
  subscriptionChanges: number;
  /** data messages sent, summed over connections */
  messagesSent: number;
  /** subscribe/unsubscribe frames received from clients, applied, refused or ignored alike */
  subscriptionFrames: number;
  /** most subscription frames received within any 1-second window (by the simulator's clock) */
  maxSubscriptionFramesPerSecond: number;
}

/** One stream path's share of the figures, for a harness that judges every link on its own. */
export interface StreamStats {
  connectionsNow: number;
  authenticatedNow: number;
  /** most authenticated connections one key held on this path at once */
  maxConcurrentPerKey: number;
  subscriptionFrames: number;
  maxSubscriptionFramesPerSecond: number;
  /** the market rate of the path's kind (every path of a kind shares its market) */
  rate: number;
  stalled: boolean;
}

/** An order book as the vendor holds it now: levels best first, as a reset carries them. */
export interface BookLevels {
  b: { p: number; s: number }[];
  a: { p: number; s: number }[];
}

/** Counts frames and the most of them within any 1-second window of the clock. */
class FrameRate {
  count = 0;
  max = 0;
  /** arrival times (clock ms) of the frames of the last second, oldest first from `#head` */
  #times: number[] = [];
  #head = 0;

  add(now: number): void {
    this.count += 1;
    const times = this.#times;
    times.push(now);
    while (this.#head < times.length && (times[this.#head] as number) <= now - 1000) this.#head += 1;
    this.max = Math.max(this.max, times.length - this.#head);
    // Compact now and then so the array holds about one second of arrivals.
    if (this.#head > 1024 && this.#head * 2 > times.length) {
      this.#times = times.slice(this.#head);
      this.#head = 0;
    }
  }
}

type InjectedErrors = { auth: number[]; subscribe: number[] };

/**
 * Events: `session` (SessionInfo) when a connection opens, `authenticated`, `subscription`
 * ({ session, action, bytes }), `slow-client` (SessionInfo) when one is judged slow, `closed`.
 */
export class VendorSimulator extends EventEmitter {
  readonly #options: Required<Omit<SimulatorOptions, 'credentials' | 'random' | 'logger' | 'clock' | 'seed' | 'feeds' | 'universes'>>;
  readonly #credentials: Map<string, SimulatedCredential> | undefined;
  readonly #logger: Logger;
  readonly #clock: Clock;
  readonly #random: Random;
  /** one market per stream kind, each flowing at the full rate */
  readonly #markets: ReadonlyMap<StreamKind, { market: StreamMarket; budget: number }>;
  readonly #sessions = new Set<VendorSession>();
  readonly #stats: SimulatorStats = {
    upgrades: 0,
    connections: 0,
    authentications: 0,
    maxConcurrentPerKey: 0,
    subscriptionChanges: 0,
    messagesSent: 0,
    subscriptionFrames: 0,
    maxSubscriptionFramesPerSecond: 0,
  };
  readonly #frames = new FrameRate();
  /** per stream path: its subscription frames and the most per key at once */
  readonly #pathFrames = new Map<string, FrameRate>();
  readonly #pathMaxPerKey = new Map<string, number>();
  /** errors for the next auths or subscription requests: of any path, and of one path (taken first) */
  readonly #injected: InjectedErrors = { auth: [], subscribe: [] };
  readonly #injectedOn = new Map<string, InjectedErrors>();
  /** per kind: a rate set for that kind alone (`setRate(rate, path)`) */
  readonly #kindRates = new Map<StreamKind, number>();
  /** per stream path: stalled until this clock time */
  readonly #pathStalledUntil = new Map<string, number>();
  #server: Server | undefined;
  #wss: WebSocketServer | undefined;
  #rate: number;
  #tick: NodeJS.Timeout | undefined;
  /** when the markets last flowed: each tick's budget is the time since, not the nominal tick */
  #lastFlow = 0;
  #lastBars = 0;
  #lastStatuses = 0;
  #lastNews = 0;
  #stalledUntil = 0;
  #refuseStatus: number | undefined;
  #keepOnUnsubscribe = false;
  #context: VendorContext;

  constructor(options: SimulatorOptions = {}) {
    super();
    this.#options = {
      host: options.host ?? '127.0.0.1',
      port: options.port ?? 0,
      paths: servedPaths(options),
      rate: options.rate ?? 100,
      tickMs: options.tickMs ?? 10,
      batchSize: options.batchSize ?? 50,
      barIntervalMs: options.barIntervalMs ?? 60_000,
      statusIntervalMs: options.statusIntervalMs ?? 30_000,
      newsIntervalMs: options.newsIntervalMs ?? 5000,
      correctionRate: options.correctionRate ?? 0.001,
      universe: options.universe ?? DEFAULT_UNIVERSE,
      authTimeoutMs: options.authTimeoutMs ?? 10_000,
      maxBufferBytes: options.maxBufferBytes ?? 16 * 1024 * 1024,
      maxPayloadBytes: options.maxPayloadBytes ?? 1024 * 1024,
      tradeIdBase: options.tradeIdBase ?? DEFAULT_TRADE_ID_BASE,
    };
    this.#credentials = options.credentials === undefined ? undefined : new Map(options.credentials.map((c) => [c.key, c]));
    this.#logger = options.logger ?? pino({ level: 'silent' });
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? seededRandom(options.seed ?? 42);
    const tradeIdBase = this.#options.tradeIdBase;
    const markets: StreamMarket[] = [
      new StockMarket(this.#random, { universe: this.#options.universe, tradeIdBase, correctionRate: this.#options.correctionRate }),
      new CryptoMarket(this.#random, { universe: options.universes?.crypto, tradeIdBase }),
      new OptionMarket(this.#random, { universe: options.universes?.options }),
      new NewsWire(this.#random, { universe: options.universes?.news }),
    ];
    this.#markets = new Map(markets.map((market) => [market.kind, { market, budget: 0 }]));
    this.#rate = this.#options.rate;
    this.#context = this.#makeContext();
  }

  /** Listens; resolves once the port is bound. Calling it twice is an error. */
  async start(): Promise<void> {
    if (this.#server !== undefined) throw new Error('simulator already started');
    const server = createServer((req, res) => this.#onHttp(req, res));
    // ws itself cuts frames past 4× the limit before buffering them; up to that, sessions answer 400.
    const wss = new WebSocketServer({ noServer: true, autoPong: false, maxPayload: this.#options.maxPayloadBytes * 4, perMessageDeflate: false });
    server.on('upgrade', (req, socket, head) => this.#onUpgrade(wss, req, socket, head));
    this.#server = server;
    this.#wss = wss;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#options.port, this.#options.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const now = this.#clock.now();
    this.#lastFlow = now;
    this.#lastBars = now;
    this.#lastStatuses = now;
    this.#lastNews = now;
    this.#tick = setInterval(() => this.#generate(), this.#options.tickMs);
    this.#logger.info({ port: this.port, paths: this.paths }, 'simulator listening');
  }

  /** Closes every connection and the server; leaves no socket or timer behind. Idempotent. */
  async stop(): Promise<void> {
    const server = this.#server;
    if (server === undefined) return;
    this.#server = undefined;
    if (this.#tick !== undefined) clearInterval(this.#tick);
    this.#tick = undefined;
    for (const session of this.#sessions) session.close(1001, true);
    this.#wss?.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  get port(): number {
    const address = this.#server?.address() as AddressInfo | null | undefined;
    if (!address) throw new Error('simulator not listening');
    return address.port;
  }

  /** `ws://HOST:PORT`: what a gateway's `UPSTREAM_URL` may be to reach every path served. */
  get baseUrl(): string {
    return `ws://${this.#options.host}:${this.port}`;
  }

  /**
   * The URL of a stream: a path (`v1beta3/crypto/us`, `v2/iex`) or a stock feed's name (`iex`),
   * e.g. `ws://127.0.0.1:PORT/v2/iex`.
   * @throws TickmuxError ERR_UNKNOWN_STREAM for anything else
   */
  url(stream: string = 'iex'): string {
    return `${this.baseUrl}/${streamPath(stream)}`;
  }

  /** The stream paths served, as in `url(path)`. */
  get paths(): readonly string[] {
    return this.#options.paths;
  }

  get stats(): Readonly<SimulatorStats> {
    return { ...this.#stats };
  }

  /** Open connections. */
  sessions(): SessionInfo[] {
    return [...this.#sessions].map((s) => this.#info(s));
  }

  /** Authenticated connections right now. */
  authenticatedCount(): number {
    return [...this.#sessions].filter((s) => s.authenticated).length;
  }

  get rate(): number {
    return this.#rate;
  }

  // ---- fault controls ----

  /**
   * Sets the markets' message rate (per second, all symbols); with `path`, only the rate of that
   * path's kind (every path of the kind shares one market), which then keeps it.
   * @throws TickmuxError ERR_UNKNOWN_STREAM for an unknown path
   */
  setRate(rate: number, path?: string): void {
    if (!Number.isFinite(rate) || rate < 0) throw new RangeError('rate must be a finite number >= 0');
    if (path === undefined) this.#rate = rate;
    else this.#kindRates.set(streamKindOf(streamPath(path)) as StreamKind, rate);
  }

  /** The rate of a stream kind's market: its own when set, else the common one. */
  #rateOf(kind: StreamKind): number {
    return this.#kindRates.get(kind) ?? this.#rate;
  }

  /**
   * Drops every connection (of one stream `path` when given): a clean close with `code`, or a cut
   * TCP connection when `terminate`; with `error`, the vendor's error message for that code goes
   * out first (407 slow client…).
   */
  dropAll(options: { code?: number; terminate?: boolean; error?: number; path?: string } = {}): void {
    for (const session of this.#sessions) {
      if (options.path !== undefined && session.path !== streamPath(options.path)) continue;
      if (options.error !== undefined) session.sendError(options.error);
      session.close(options.code ?? 1011, options.terminate ?? false);
    }
  }

  /**
   * Stops sending data and answering pings or requests for `ms` (a connected but mute vendor): on
   * every path, or on the stream `path` alone.
   */
  stall(ms: number, path?: string): void {
    if (path === undefined) this.#stalledUntil = this.#clock.now() + ms;
    else this.#pathStalledUntil.set(streamPath(path), this.#clock.now() + ms);
  }

  /** Ends every stall early. */
  resume(): void {
    this.#stalledUntil = 0;
    this.#pathStalledUntil.clear();
  }

  /** Whether every path is stalled (a stall of one path alone: `isStalled(path)`). */
  get stalled(): boolean {
    return this.#clock.now() < this.#stalledUntil;
  }

  /** Whether the stream `path` answers nothing now: every path stalled, or this one. */
  isStalled(path: string): boolean {
    return this.#stalledOn(streamPath(path));
  }

  /** `isStalled` of a path as sessions spell it (exact, no lookup): on the per-tick fan-out path. */
  #stalledOn(path: string): boolean {
    if (this.stalled) return true;
    const until = this.#pathStalledUntil.get(path);
    return until !== undefined && this.#clock.now() < until;
  }

  /** The next `times` auth attempts (on the stream `path` alone, when given) are answered with `code` (402, 406, 409, 500…). */
  rejectAuth(code = 402, times = 1, path?: string): void {
    const queue = this.#injectedQueue(path).auth;
    for (let i = 0; i < times; i++) queue.push(code);
  }

  /** The next `times` subscribe/unsubscribe requests (on the stream `path` alone, when given) are answered with `code` (405, 409, 410, 500…). */
  rejectSubscribe(code: number, times = 1, path?: string): void {
    const queue = this.#injectedQueue(path).subscribe;
    for (let i = 0; i < times; i++) queue.push(code);
  }

  #injectedQueue(path: string | undefined): InjectedErrors {
    if (path === undefined) return this.#injected;
    const exact = streamPath(path);
    let queue = this.#injectedOn.get(exact);
    if (queue === undefined) this.#injectedOn.set(exact, (queue = { auth: [], subscribe: [] }));
    return queue;
  }

  /** Acknowledges unsubscribes from now on but keeps the pairs (until called with false). */
  keepOnUnsubscribe(keep = true): void {
    this.#keepOnUnsubscribe = keep;
  }

  /** Refuses WebSocket upgrades with this HTTP status (429, 503…) until called with undefined. */
  refuseUpgrades(status: number | undefined): void {
    this.#refuseStatus = status;
  }

  /** Clears every injected fault. */
  clearFaults(): void {
    this.#injected.auth.length = 0;
    this.#injected.subscribe.length = 0;
    this.#injectedOn.clear();
    this.#stalledUntil = 0;
    this.#pathStalledUntil.clear();
    this.#refuseStatus = undefined;
    this.#keepOnUnsubscribe = false;
  }

  /** Sends a malformed frame to every authenticated connection (of the stream `path` alone, when given); returns how many got it. */
  sendMalformed(kind: MalformedKind, path?: string): number {
    const exact = path === undefined ? undefined : streamPath(path);
    let sent = 0;
    for (const session of this.#sessions) {
      if (!session.authenticated || (exact !== undefined && session.path !== exact)) continue;
      session.sendRaw(malformedFrame(kind, session.encoding));
      sent += 1;
    }
    return sent;
  }

  /** Per stream path served: sessions now, the most per key at once, subscription frames, rate. */
  streamStats(): Record<string, StreamStats> {
    const out: Record<string, StreamStats> = {};
    for (const path of this.#options.paths) {
      const sessions = [...this.#sessions].filter((s) => s.path === path);
      const frames = this.#pathFrames.get(path);
      out[path] = {
        connectionsNow: sessions.length,
        authenticatedNow: sessions.filter((s) => s.authenticated).length,
        maxConcurrentPerKey: this.#pathMaxPerKey.get(path) ?? 0,
        subscriptionFrames: frames?.count ?? 0,
        maxSubscriptionFramesPerSecond: frames?.max ?? 0,
        rate: this.#rateOf(streamKindOf(path) as StreamKind),
        stalled: this.isStalled(path),
      };
    }
    return out;
  }

  /**
   * The order books of a stream's market as they are now, by symbol: every book it has built
   * (what a fresh subscription's reset would carry). Empty for a kind without books.
   * @throws TickmuxError ERR_UNKNOWN_STREAM for an unknown path
   */
  books(path: string): Record<string, BookLevels> {
    const kind = streamKindOf(streamPath(path)) as StreamKind;
    return this.#markets.get(kind)?.market.books?.() ?? {};
  }

  /**
   * Sends these messages now, as data, to every authenticated connection that wants them: on the
   * stream `path` (or stock feed name) when given, else on every stock path.
   * @throws TickmuxError ERR_UNKNOWN_STREAM for an unknown path
   */
  publish(messages: readonly MarketMessage[], path?: string): void {
    const exact = path === undefined ? undefined : streamPath(path);
    const kind = exact === undefined ? STOCKS : (streamKindOf(exact) as StreamKind);
    this.#fanOut(kind, messages, exact);
  }

  // ---- internals ----

  #makeContext(): VendorContext {
    const simulator = this;
    return {
      logger: this.#logger,
      checkCredentials: (key, secret) => {
        if (key === '' || secret === '') return undefined;
        if (this.#credentials === undefined) return {};
        const found = this.#credentials.get(key);
        return found !== undefined && found.secret === secret ? (found.plan ?? {}) : undefined;
      },
      planFor: (key) => this.#credentials?.get(key)?.plan ?? {},
      takeInjectedError: (on, path) => this.#injectedOn.get(path)?.[on].shift() ?? this.#injected[on].shift(),
      isKeyInUse: (key, path, except) => [...this.#sessions].some((s) => s !== except && s.authenticated && s.key === key && s.path === path),
      onAuthenticated: (session) => {
        this.#stats.authentications += 1;
        const concurrent = [...this.#sessions].filter((s) => s.authenticated && s.key === session.key && s.path === session.path).length;
        this.#stats.maxConcurrentPerKey = Math.max(this.#stats.maxConcurrentPerKey, concurrent);
        this.#pathMaxPerKey.set(session.path, Math.max(this.#pathMaxPerKey.get(session.path) ?? 0, concurrent));
        this.emit('authenticated', this.#info(session));
      },
      onSubscriptionChange: (session, action, bytes, added) => {
        this.#stats.subscriptionChanges += 1;
        this.#sendSnapshots(session, added);
        this.emit('subscription', { session: this.#info(session), action, bytes });
      },
      onSlowClient: (session) => {
        this.emit('slow-client', this.#info(session));
      },
      onClosed: (session) => {
        this.#sessions.delete(session);
        this.emit('closed', this.#info(session));
      },
      isStalled: (path) => simulator.#stalledOn(path),
      get keepOnUnsubscribe() {
        return simulator.#keepOnUnsubscribe;
      },
    };
  }

  #info(session: VendorSession): SessionInfo {
    return {
      id: session.id,
      path: session.path,
      kind: session.kind.name,
      feed: session.feed,
      encoding: session.encoding,
      authenticated: session.authenticated,
      key: session.key,
      subscriptions: session.subscriptions(),
      inboundSizes: [...session.inboundSizes],
      closeCode: session.closeCode,
    };
  }

  #onUpgrade(wss: WebSocketServer, req: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.#stats.upgrades += 1;
    const path = new URL(req.url ?? '/', 'http://simulator').pathname.slice(1);
    const kind = streamKindOf(path);
    if (kind === undefined || !this.#options.paths.includes(path)) {
      rejectUpgrade(socket, 404, { error: 'not found', paths: this.#options.paths });
      return;
    }
    if (this.#refuseStatus !== undefined) {
      rejectUpgrade(socket, this.#refuseStatus, { error: 'refused' });
      return;
    }
    const contentType = String(req.headers['content-type'] ?? '').toLowerCase();
    const encoding = contentType.startsWith('application/msgpack') ? 'msgpack' : 'json';
    const headerKey = header(req, 'apca-api-key-id');
    const headerSecret = header(req, 'apca-api-secret-key');
    wss.handleUpgrade(req, socket, head, (ws) => {
      const session = new VendorSession(ws, path, kind, encoding, this.#context, {
        authTimeoutMs: this.#options.authTimeoutMs,
        maxBufferBytes: this.#options.maxBufferBytes,
        maxPayloadBytes: this.#options.maxPayloadBytes,
      });
      this.#sessions.add(session);
      this.#stats.connections += 1;
      ws.on('message', (data, isBinary) => this.#countSubscriptionFrame(path, data as Buffer, isBinary));
      session.open(headerKey, headerSecret);
      this.emit('session', this.#info(session));
    });
  }

  /** Counts a client frame that is a subscribe or unsubscribe, and the busiest 1-second window, in all and on its path. */
  #countSubscriptionFrame(path: string, data: Buffer, isBinary: boolean): void {
    // Cheap pre-check: only frames that mention "subscribe" (JSON or msgpack string) are parsed.
    if (data.length < 9 || !data.includes('subscribe')) return;
    const request = parseClientRequest(data, isBinary);
    if (request.action !== 'subscribe' && request.action !== 'unsubscribe') return;
    const now = this.#clock.now();
    this.#frames.add(now);
    this.#stats.subscriptionFrames = this.#frames.count;
    this.#stats.maxSubscriptionFramesPerSecond = this.#frames.max;
    let frames = this.#pathFrames.get(path);
    if (frames === undefined) this.#pathFrames.set(path, (frames = new FrameRate()));
    frames.add(now);
  }

  /** A tiny control surface for the simulator as a process (benchmarks, soak runs, manual fault drills). */
  #onHttp(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://simulator');
    const reply = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    };
    if (req.method === 'GET' && url.pathname === '/health') {
      reply(200, { status: 'ok', connections: this.#sessions.size, rate: this.#rate, stalled: this.stalled });
      return;
    }
    // `?path=` names one stream path served: the stats, books or fault of that path alone.
    const pathParam = url.searchParams.get('path') ?? undefined;
    const path = pathParam === undefined ? undefined : servedPath(pathParam, this.#options.paths);
    if (path === null) {
      reply(400, { error: 'path must be a stream path served', paths: this.#options.paths });
      return;
    }
    if (req.method === 'GET' && url.pathname === '/stats') {
      const streams = this.streamStats();
      reply(200, { ...this.#stats, connectionsNow: this.#sessions.size, authenticatedNow: this.authenticatedCount(), rate: this.#rate, stalled: this.stalled, streams });
      return;
    }
    if (req.method === 'GET' && url.pathname === '/books') {
      if (path === undefined) return reply(400, { error: 'path is required', paths: this.#options.paths });
      reply(200, { path, books: this.books(path) });
      return;
    }
    if (req.method !== 'POST' || !url.pathname.startsWith('/control/')) {
      reply(404, { error: 'not found' });
      return;
    }
    const on = path === undefined ? {} : { path };
    const value = Number(url.searchParams.get('value') ?? url.searchParams.get('ms') ?? NaN);
    const code = Number(url.searchParams.get('code') ?? NaN);
    const times = Number(url.searchParams.get('times') ?? 1);
    const badCode = !Number.isInteger(code) || code < 100 || code > 999;
    const badTimes = !Number.isInteger(times) || times < 1 || times > 10_000;
    switch (url.pathname) {
      case '/control/rate':
        if (!Number.isFinite(value) || value < 0) return reply(400, { error: 'value must be a number >= 0' });
        this.setRate(value, path);
        return reply(200, { rate: path === undefined ? this.#rate : value, ...on });
      case '/control/drop':
        this.dropAll({ terminate: url.searchParams.get('terminate') === '1', path });
        return reply(200, { dropped: true, ...on });
      case '/control/stall':
        if (!Number.isFinite(value) || value < 0) return reply(400, { error: 'ms must be a number >= 0' });
        this.stall(value, path);
        return reply(200, { stalledMs: value, ...on });
      case '/control/resume':
        this.resume();
        return reply(200, { stalled: false });
      case '/control/reject-subscribe':
        if (badCode || badTimes) return reply(400, { error: 'code must be an integer from 100 to 999 and times from 1 to 10000' });
        this.rejectSubscribe(code, times, path);
        return reply(200, { rejectSubscribe: code, times, ...on });
      case '/control/reject-auth':
        if (badCode || badTimes) return reply(400, { error: 'code must be an integer from 100 to 999 and times from 1 to 10000' });
        this.rejectAuth(code, times, path);
        return reply(200, { rejectAuth: code, times, ...on });
      case '/control/malformed': {
        const kind = url.searchParams.get('kind') ?? 'garbage';
        if (!(MALFORMED_KINDS as readonly string[]).includes(kind)) return reply(400, { error: `kind must be one of ${MALFORMED_KINDS.join(', ')}` });
        const sessions = this.sendMalformed(kind as MalformedKind, path);
        return reply(200, { malformed: kind, sessions, ...on });
      }
      case '/control/clear':
        this.clearFaults();
        return reply(200, { cleared: true });
      default:
        return reply(404, { error: 'not found' });
    }
  }

  /** One tick of every market: flow at the configured rate, bars, statuses and news on their intervals. */
  #generate(): void {
    const now = this.#clock.now();
    if (this.stalled) {
      this.#lastFlow = now; // a mute vendor owes nothing when it speaks again
      return;
    }
    const barsDue = now - this.#lastBars >= this.#options.barIntervalMs;
    const statusesDue = now - this.#lastStatuses >= this.#options.statusIntervalMs;
    const newsDue = now - this.#lastNews >= this.#options.newsIntervalMs;
    if (barsDue) this.#lastBars = now;
    if (statusesDue) this.#lastStatuses = now;
    if (newsDue) this.#lastNews = now;
    // A timer that fires late (a busy machine) must not lower the rate: the budget is the time
    // that really passed — up to MAX_CATCH_UP_MS, so a machine that cannot keep up is not driven
    // into ever larger batches and a long pause does not come out as one burst.
    const elapsedMs = Math.min(Math.max(now - this.#lastFlow, 0), MAX_CATCH_UP_MS);
    this.#lastFlow = now;
    const t = timestampNow(this.#clock);
    for (const [kind, entry] of this.#markets) {
      entry.budget += (this.#rateOf(kind) * elapsedMs) / 1000;
      const count = Math.floor(entry.budget);
      entry.budget -= count;
      const held = this.#heldSymbols(kind, entry.market.universe);
      if (held.isEmpty) continue;
      const messages = entry.market.flow?.(held, count, t) ?? [];
      if (barsDue) messages.push(...(entry.market.bars?.(held, t) ?? []));
      if (statusesDue) messages.push(...(entry.market.statuses?.(held, t) ?? []));
      if (newsDue) messages.push(...(entry.market.news?.(held, t) ?? []));
      if (messages.length > 0) this.#fanOut(kind, messages, undefined, true);
    }
  }

  /**
   * The symbols authenticated connections of `kind` hold per channel; `*` brings in the universe.
   * A stalled path's sessions hold nothing meanwhile: a mute vendor generates nothing for them.
   */
  #heldSymbols(kind: StreamKind, universe: readonly string[]): ChannelSet {
    const held = new ChannelSet();
    for (const session of this.#sessions) {
      if (!session.authenticated || session.kind !== kind || this.#stalledOn(session.path)) continue;
      for (const [channel, symbol] of session.held()) addExpanded(held, channel, symbol, universe);
    }
    return held;
  }

  /** What a session gets right after its reply, before any other data: order-book resets for new books. */
  #sendSnapshots(session: VendorSession, added: ChannelSet): void {
    if (added.isEmpty) return;
    const entry = this.#markets.get(session.kind);
    if (entry === undefined) return;
    const expanded = new ChannelSet();
    for (const [channel, symbol] of added.pairs()) addExpanded(expanded, channel, symbol, entry.market.universe);
    const messages = entry.market.snapshots?.(expanded, timestampNow(this.#clock)) ?? [];
    if (messages.length === 0) return;
    this.#stats.messagesSent += messages.length;
    session.sendData(encodeUnits(messages, 'msgpack', session.kind), this.#options.batchSize);
  }

  /**
   * Sends `messages` of `kind` to the sessions of that kind (on `path` only, when given) that want
   * each; the market's own flow (`generated`) skips a stalled path, as `publish` never did.
   */
  #fanOut(kind: StreamKind, messages: readonly MarketMessage[], path?: string, generated = false): void {
    const units = encodeUnits(messages, 'msgpack', kind);
    const routes = units.map((unit) => unit.symbols); // once per message, not per session
    for (const session of this.#sessions) {
      if (session.kind !== kind || (path !== undefined && session.path !== path) || (generated && this.#stalledOn(session.path))) continue;
      const wanted = units.filter((u, i) => session.wants(u.type, routes[i] as readonly string[]));
      if (wanted.length === 0) continue;
      this.#stats.messagesSent += wanted.length;
      session.sendData(wanted, this.#options.batchSize);
    }
  }
}

/** Adds a pair, `*` as every symbol of the universe. */
function addExpanded(set: ChannelSet, channel: Channel, symbol: string, universe: readonly string[]): void {
  if (symbol === WILDCARD) for (const s of universe) set.add(channel, s);
  else set.add(channel, symbol);
}

/** The most time one tick makes up for (a late timer's slip, not a stall). */
const MAX_CATCH_UP_MS = 100;

/** A stream path from a path or a stock feed's name. */
function streamPath(stream: string): string {
  if (isFeed(stream)) return `v2/${stream}`;
  const path = stream.startsWith('/') ? stream.slice(1) : stream;
  if (streamKindOf(path) === undefined) throw new TickmuxError('ERR_UNKNOWN_STREAM', `unknown stream ${JSON.stringify(stream)}; known paths: ${STREAM_PATHS.join(', ')}`);
  return path;
}

/** A `?path=` of the control surface as a served path; null when it is unknown or not served. */
function servedPath(value: string, served: readonly string[]): string | null {
  try {
    const path = streamPath(value);
    return served.includes(path) ? path : null;
  } catch (err) {
    if (err instanceof TickmuxError) return null;
    throw err;
  }
}

/** The paths a simulator serves: `paths`, else the stock `feeds`, else every known path. */
function servedPaths(options: SimulatorOptions): readonly string[] {
  if (options.paths !== undefined) return options.paths.map(streamPath);
  if (options.feeds !== undefined) return options.feeds.map((feed) => `v2/${feed}`);
  return STREAM_PATHS;
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** Answers an upgrade request with a plain HTTP error and a JSON body, then closes. */
function rejectUpgrade(socket: Duplex, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  socket.end(
    `HTTP/1.1 ${status} ${status === 404 ? 'Not Found' : 'Refused'}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`,
  );
}

function malformedFrame(kind: MalformedKind, encoding: 'json' | 'msgpack'): Buffer {
  switch (kind) {
    case 'garbage':
      return encoding === 'json' ? Buffer.from('[{"T":"t","S":') : Buffer.from([0x91, 0xc1, 0xff]);
    case 'not-array':
      return encoding === 'json' ? Buffer.from('{"T":"t","S":"AAPL"}') : Buffer.from([0x81, 0xa1, 0x54, 0xa1, 0x74]);
    case 'not-object':
      return encodeFrame([42], encoding);
    case 'unknown-type':
      return encodeFrame([{ T: 'zz', S: 'AAPL', note: 'a type the gateway has never seen' }], encoding);
    case 'unknown-error':
      return encodeFrame([{ T: 'error', code: 499, msg: 'a code the gateway has never seen' }], encoding);
  }
}
