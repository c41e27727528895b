/**
 * The soak's client population of one stream (issues #8, #19), run inside the harness process
 * against a gateway: healthy clients that check every trade id (stocks, crypto), rebuild order
 * books (crypto), keep every trade (options: no ids, so readers are compared with each other) or
 * every news item (news: once each), slow readers, churners, reconnecters, hostile peers, and a
 * watcher of the stream's `?events=1` notices that records its vendor outage windows.
 *
 * Times are harness milliseconds (`performance.now()`), so gaps and outages compare on one clock.
 * Every socket and timer is owned by the population and released by `stop()`.
 */
import { WebSocket } from 'ws';
import { ProtocolError } from '../src/errors.js';
import { decodeFrame, type Encoding } from '../src/protocol/frame.js';
import type { StreamKind } from '../src/protocol/streams.js';
import { pick, type Random } from '../src/random.js';
import { bookDifference, ReaderBook, type StreamProfile } from './soak-streams.js';

const now = (): number => performance.now();

export interface PopulationOptions {
  /** the gateway's URL of this stream */
  url: string;
  profile: StreamProfile;
  random: Random;
  healthy: number;
  slow: number;
  churning: number;
  reconnecting: number;
  hostile: number;
  /** the gateway's CLIENT_AUTH_TIMEOUT_MS: never-authenticating peers are expected closed after it */
  authTimeoutMs: number;
  /** the gateway's MAX_SYMBOLS_PER_CLIENT: a longer list is expected to get 405 */
  maxSymbolsPerClient: number;
  /** how long a slow client stops reading: long enough to fill ~10 MB of loopback buffers and the gateway's limit */
  slowPauseMs: number;
}

/** A trade-id gap seen by a healthy client: ids after `afterId` up to the one seen at `seenAt` are missing. */
export interface Gap {
  client: number;
  /** a trade's symbol; news: `*` (ids run over the whole wire) */
  symbol: string;
  afterId: string;
  missing: string;
  /** when the last id before the gap arrived, and when the id after it arrived */
  lastAt: number;
  seenAt: number;
}

/** A vendor outage as the gateway announced it (down → up), harness time. */
export interface Outage {
  downAt: number;
  upAt: number | undefined;
  reason: string | undefined;
}

interface Tally {
  attempts: number;
  expected: number;
  unexpected: Record<string, number>;
}

function bump(map: Record<string, number>, key: string | number, by = 1): void {
  map[key] = (map[key] ?? 0) + by;
}

function pickSome<T>(random: Random, items: readonly T[], n: number): T[] {
  const pool = [...items];
  const out: T[] = [];
  while (out.length < n && pool.length > 0) out.push(pool.splice(Math.floor(random() * pool.length), 1)[0] as T);
  return out;
}

/** A client request as the SDKs send it: one JSON object (text), or one msgpack map (binary). */
function request(ws: WebSocket, body: Record<string, unknown>): void {
  if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(body));
}

type Message = Record<string, unknown>;

/** Decodes a frame losslessly (ids past 2^53 as bigint); undefined when it is not the protocol. */
function decode(data: Buffer, isBinary: boolean, kind: StreamKind): Message[] | undefined {
  try {
    return decodeFrame(data, isBinary ? 'msgpack' : 'json', kind) as Message[];
  } catch (err) {
    if (err instanceof ProtocolError) return undefined;
    throw err;
  }
}

/** One comparison of the healthy readers' books with the vendor's. */
export interface BookCheck {
  at: number;
  books: number;
  agreed: number;
  mismatches: { client: number; symbol: string; difference: string; resetAt: number | undefined }[];
}

export class Population {
  readonly #o: PopulationOptions;
  readonly profile: StreamProfile;
  /** healthy symbols churners touch too, and everything churners hold */
  readonly #churnSymbols: string[];
  readonly #sockets = new Set<WebSocket>();
  readonly #timers = new Set<NodeJS.Timeout>();
  /** pending sleeps: stop() wakes them so every loop sees `stopping` and ends */
  readonly #sleepers = new Map<NodeJS.Timeout, () => void>();
  #stopping = false;
  readonly #loops: Promise<void>[] = [];

  /** Every vendor outage the gateway announced. */
  readonly outages: Outage[] = [];
  /** Vendor faults that take the data away (drops, stalls), from injection to their end; the harness adds them. */
  readonly faultWindows: { start: number; end: number }[] = [];
  readonly gaps: Gap[] = [];
  gapCount = 0;
  readonly healthy = {
    clients: 0,
    tradesChecked: 0n,
    messages: 0,
    /** ids at or below the last one (a duplicate or a reordering) */
    outOfOrder: 0,
    undecodableFrames: 0,
    errors: {} as Record<string, number>,
    /** pairs the gateway took out of a healthy client's set without being asked */
    pairsLost: 0,
    pairsLostEvents: [] as { client: number; at: number; code: number | undefined; lost: string[] }[],
    resubscribes: 0,
    /** healthy clients closed while the soak ran: always a failure */
    closed: [] as { client: number; code: number; reason: string; at: number }[],
    /** (client, symbol) pairs that got no trade for STARVED_MS outside an outage while held */
    starved: [] as { client: number; symbol: string; silentMs: number; at: number }[],
  };
  readonly slow = { cycles: 0, saw407: 0, closeCodes: {} as Record<string, number>, notCut: 0 };
  readonly churning = { clients: 0, requests: 0, replies: 0, errors: {} as Record<string, number>, closes: 0 };
  readonly reconnecting = { cycles: 0, completed: 0, errors: {} as Record<string, number>, unexpectedCloses: {} as Record<string, number> };
  readonly hostile: Record<string, Tally> = {};
  readonly events = { notices: 0, watcherCloses: 0 };
  #healthyClients: HealthyClient[] = [];

  /** news: items per holder (ids seen, duplicates); options: every trade per reader, for the comparison */
  readonly news = { items: 0, duplicates: 0, duplicateEvents: [] as { client: number; id: number }[], idGaps: 0 };
  readonly options = { trades: 0 };

  constructor(options: PopulationOptions) {
    this.#o = options;
    this.profile = options.profile;
    const { churnOnly, healthy } = options.profile;
    // Churners also touch healthy symbols: their unsubscribes must never take a pair from a healthy client.
    this.#churnSymbols = [...churnOnly, ...healthy.slice(0, 6)];
  }

  #decode(data: Buffer, isBinary: boolean): Message[] | undefined {
    return decode(data, isBinary, this.profile.kind);
  }

  /** Connects the events watcher and the healthy clients (awaited: the soak starts from a known state), then starts the loops. */
  async start(): Promise<void> {
    await this.#watchEvents();
    const ready: Promise<void>[] = [];
    for (let i = 0; i < this.#o.healthy; i++) {
      // News: every other reader holds `*` (ids run in sequence over the wire), the others a few symbols, in both encodings.
      const news = this.profile.main === 'news';
      const encoding = (news ? Math.floor(i / 2) : i) % 2 === 0 ? 'json' : 'msgpack';
      const symbols = news && i % 2 === 0 ? ['*'] : pickSome(this.#o.random, this.profile.healthy, news ? 3 : 4);
      const client = new HealthyClient(this, i, encoding, symbols);
      this.#healthyClients.push(client);
      ready.push(client.connect());
    }
    await Promise.all(ready);
    this.healthy.clients = this.#healthyClients.length;
    if (this.profile.busy.length > 0) for (let i = 0; i < this.#o.slow; i++) this.#loops.push(this.#slowLoop());
    for (let i = 0; i < this.#o.churning; i++) this.#loops.push(this.#churnLoop());
    for (let i = 0; i < this.#o.reconnecting; i++) this.#loops.push(this.#reconnectLoop());
    for (let i = 0; i < this.#o.hostile; i++) this.#loops.push(this.#hostileLoop());
  }

  get stopping(): boolean {
    return this.#stopping;
  }

  /**
   * Whether [from, to] touches a vendor outage: one the gateway announced, or a fault window the
   * harness injected (a drop or stall starts before the gateway can notice it), padded by `padMs`.
   */
  inOutage(from: number, to: number, padMs: number): boolean {
    const windows = [...this.outages.map((o) => ({ start: o.downAt, end: o.upAt ?? Infinity })), ...this.faultWindows];
    return windows.some((w) => from <= w.end + padMs && to >= w.start - padMs);
  }

  /** Whether the vendor link is down right now, as the gateway last announced. */
  get linkDown(): boolean {
    const last = this.outages.at(-1);
    return last !== undefined && last.upAt === undefined;
  }

  /** Checks every healthy (client, symbol) for silence; called once a second by the harness. News is sparse by nature: not judged. */
  checkStarvation(starvedMs: number): void {
    if (this.linkDown || this.profile.main === 'news') return;
    const t = now();
    for (const client of this.#healthyClients) client.checkStarvation(t, starvedMs);
  }

  /** Closes everything; healthy closes from here on are the soak's own. */
  async stop(): Promise<void> {
    this.#stopping = true;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    for (const [timer, wake] of this.#sleepers) {
      clearTimeout(timer);
      wake();
    }
    this.#sleepers.clear();
    for (const ws of this.#sockets) ws.terminate();
    await Promise.allSettled(this.#loops);
    for (const ws of this.#sockets) ws.terminate();
  }

  /** Sends each healthy reader's set again (a no-op) and waits for the replies: what the gateway routed before is then delivered. */
  async barrier(timeoutMs: number): Promise<boolean> {
    const replies = await Promise.all(this.#healthyClients.map((c) => c.barrier(timeoutMs)));
    return replies.every(Boolean);
  }

  /** Compares every book each healthy reader keeps with the vendor's books (`GET /books`, taken while the kind's rate is 0). */
  compareBooks(vendor: Record<string, { b: { p: number; s: number }[]; a: { p: number; s: number }[] }>): BookCheck {
    const check: BookCheck = { at: now(), books: 0, agreed: 0, mismatches: [] };
    for (const client of this.#healthyClients) {
      for (const [symbol, book] of client.books) {
        if (book.resetAt === undefined) continue;
        check.books += 1;
        const difference = bookDifference(book.levels(), vendor[symbol]);
        if (difference === undefined) check.agreed += 1;
        else check.mismatches.push({ client: client.id, symbol, difference, resetAt: book.resetAt });
      }
    }
    return check;
  }

  /** Healthy readers' books that saw a level update before any reset (the gateway owes a reset first). */
  get orphanBookUpdates(): number {
    return this.#healthyClients.reduce((sum, c) => sum + [...c.books.values()].reduce((n, b) => n + b.orphanUpdates, 0), 0);
  }

  /**
   * What one healthy reader got that another holding the same symbol (or news item's symbol) did
   * not, outside this stream's outages: options trades (no ids to check) and news items of
   * per-symbol holders against the `*` holders. A record counts only while the other reader held
   * it for `padMs` on both sides.
   */
  crossCheck(padMs: number): { compared: number; missing: number; firstMissing: { from: number; to: number; symbol: string; key: string; at: number }[] } {
    const out = { compared: 0, missing: 0, firstMissing: [] as { from: number; to: number; symbol: string; key: string; at: number }[] };
    const clients = this.#healthyClients;
    for (const a of clients) {
      for (const b of clients) {
        if (a === b) continue;
        for (const record of a.records) {
          // News: `*` holders are the reference for items about what b holds; options: every reader for every other.
          if (this.profile.main === 'news' && !a.holdsAll) continue;
          const symbols = b.holdsAll ? ['*'] : record.symbols.filter((s) => b.wants(s));
          if (symbols.length === 0) continue;
          const window = b.heldWindow(symbols[0] as string);
          if (window === undefined || record.at < window.from + padMs || record.at > window.to - padMs) continue;
          if (this.inOutage(record.at - padMs, record.at + padMs, 0)) continue;
          out.compared += 1;
          if (b.has(record.key)) continue;
          out.missing += 1;
          if (out.firstMissing.length < 5) out.firstMissing.push({ from: a.id, to: b.id, symbol: symbols[0] as string, key: record.key, at: Math.round(record.at) });
        }
      }
    }
    return out;
  }

  // ---------------------------------------------------------------- plumbing

  /** A socket the population owns until it closes. */
  open(path: string, encoding: Encoding): WebSocket {
    const headers: Record<string, string> = encoding === 'msgpack' ? { 'Content-Type': 'application/msgpack' } : {};
    const ws = new WebSocket(`${this.#o.url}${path}`, { headers, perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 });
    this.#sockets.add(ws);
    ws.on('close', () => this.#sockets.delete(ws));
    // Errors (refused, reset) end in 'close'; each caller judges the close code.
    ws.on('error', () => undefined);
    return ws;
  }

  /** Resolves after `ms` (or at once when stopping); the timer is owned and cleared on stop. */
  sleep(ms: number): Promise<void> {
    if (this.#stopping) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#sleepers.delete(timer);
        resolve();
      }, ms);
      this.#sleepers.set(timer, resolve);
    });
  }

  // ---------------------------------------------------------------- events watcher

  #watchEvents(): Promise<void> {
    return new Promise((resolve, reject) => {
      const ws = this.open('?events=1', 'json');
      ws.on('message', (data: Buffer, isBinary) => {
        for (const m of this.#decode(data, isBinary) ?? []) {
          if (m.T === 'success' && m.msg === 'connected') request(ws, { action: 'auth', key: 'soak-events', secret: 'x' });
          else if (m.T === 'success' && m.msg === 'authenticated') resolve();
          else if (m.T === 'gateway') this.#onNotice(m);
        }
      });
      ws.once('close', (code) => {
        reject(new Error(`the events watcher was closed (${code}) before it authenticated`));
        if (this.#stopping) return;
        this.events.watcherCloses += 1;
        void this.sleep(200).then(() => {
          // A failed reconnect is counted by its own close; the watcher keeps trying while the soak runs.
          if (!this.#stopping) this.#watchEvents().catch(() => undefined);
        });
      });
    });
  }

  #onNotice(m: Message): void {
    this.events.notices += 1;
    const last = this.outages.at(-1);
    if (m.event === 'upstream_down' && (last === undefined || last.upAt !== undefined)) {
      this.outages.push({ downAt: now(), upAt: undefined, reason: typeof m.reason === 'string' ? m.reason : undefined });
    } else if (m.event === 'upstream_up' && last !== undefined && last.upAt === undefined) {
      last.upAt = now();
    }
  }

  // ---------------------------------------------------------------- slow

  /** Subscribes to a busy set, stops reading, and expects 407 and a close; then again. */
  async #slowLoop(): Promise<void> {
    while (!this.#stopping) {
      this.slow.cycles += 1;
      // JSON: the larger encoding fills the buffers sooner.
      const ws = this.open('', 'json');
      let saw407 = false;
      const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
      ws.on('message', (data: Buffer) => {
        // Megabytes arrive on resume: a look at the text is enough, nothing here is decoded.
        const text = data.toString();
        if (text.includes('"msg":"connected"')) request(ws, { action: 'auth', key: 'soak-slow', secret: 'x' });
        else if (text.includes('"msg":"authenticated"')) request(ws, { action: 'subscribe', trades: [...this.profile.busy, ...this.profile.healthy, ...this.profile.churnOnly] });
        else if (text.startsWith('[{"T":"subscription"')) subscribed = true;
        if (text.includes('"code":407')) saw407 = true;
      });
      let subscribed = false;
      const socket = (): { pause(): void; resume(): void } | undefined => (ws as unknown as { _socket?: { pause(): void; resume(): void } })._socket;
      // Stop reading once subscribed: the kernel buffers fill (~4 MB on loopback), then the gateway's
      // buffer grows to its limit. Paused again and again: ws resumes its socket when its parser drains.
      const hold = setInterval(() => subscribed && socket()?.pause(), 20);
      this.#timers.add(hold);
      // Loopback buffers grow to ~10 MB for a paused reader before the gateway holds a byte: the
      // pause scales with the vendor rate so the gateway's limit is reached within it.
      await this.sleep(this.#o.slowPauseMs * (1 + this.#o.random() * 0.2));
      clearInterval(hold);
      this.#timers.delete(hold);
      socket()?.resume();
      const code = await Promise.race([closed, this.sleep(5000).then(() => undefined)]);
      if (code === undefined) {
        if (!this.#stopping) this.slow.notCut += 1;
        ws.terminate();
        await closed;
      } else {
        if (!this.#stopping) bump(this.slow.closeCodes, code);
      }
      if (saw407) this.slow.saw407 += 1;
      await this.sleep(200);
    }
  }

  // ---------------------------------------------------------------- churning

  /** Subscribes and unsubscribes a few symbols every few milliseconds, without waiting for replies. */
  async #churnLoop(): Promise<void> {
    while (!this.#stopping) {
      this.churning.clients += 1;
      const ws = this.open('', pick(this.#o.random, ['json', 'msgpack'] as const));
      const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
      let authenticated = false;
      ws.on('message', (data: Buffer, isBinary) => {
        for (const m of this.#decode(data, isBinary) ?? []) {
          if (m.T === 'success' && m.msg === 'connected') request(ws, { action: 'auth', key: 'soak-churn', secret: 'x' });
          else if (m.T === 'success' && m.msg === 'authenticated') authenticated = true;
          else if (m.T === 'subscription') this.churning.replies += 1;
          else if (m.T === 'error') bump(this.churning.errors, String(m.code));
        }
      });
      const held = new Set<string>();
      let open = true;
      void closed.then(() => (open = false));
      while (open && !this.#stopping) {
        await this.sleep(2 + this.#o.random() * 8);
        if (!authenticated || ws.bufferedAmount > 64 * 1024) continue;
        const subscribe = held.size < 3 || this.#o.random() < 0.5;
        const symbols = subscribe ? pickSome(this.#o.random, this.#churnSymbols, 1 + Math.floor(this.#o.random() * 3)) : pickSome(this.#o.random, [...held], 1 + Math.floor(this.#o.random() * 3));
        for (const s of symbols) if (subscribe) held.add(s);
        else held.delete(s);
        const channel = weighted(this.#o.random(), this.profile.churn);
        request(ws, { action: subscribe ? 'subscribe' : 'unsubscribe', [channel]: symbols });
        this.churning.requests += 1;
      }
      if (!open && !this.#stopping) this.churning.closes += 1;
      ws.terminate();
      await closed;
    }
  }

  // ---------------------------------------------------------------- reconnecting

  /** Connect, auth, subscribe, hold a moment, disconnect (cleanly or not); again. */
  async #reconnectLoop(): Promise<void> {
    while (!this.#stopping) {
      this.reconnecting.cycles += 1;
      const ws = this.open('', pick(this.#o.random, ['json', 'msgpack'] as const));
      let done = false;
      const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
      const subscribed = new Promise<boolean>((resolve) => {
        ws.on('message', (data: Buffer, isBinary) => {
          for (const m of this.#decode(data, isBinary) ?? []) {
            if (m.T === 'success' && m.msg === 'connected') request(ws, { action: 'auth', key: 'soak-reconnect', secret: 'x' });
            else if (m.T === 'success' && m.msg === 'authenticated') {
              const symbols = pickSome(this.#o.random, [...this.profile.healthy, ...this.profile.churnOnly], 1 + Math.floor(this.#o.random() * 3));
              const second = this.profile.extra[0];
              request(ws, { action: 'subscribe', [this.profile.main]: symbols, ...(second === undefined ? {} : { [second]: symbols.slice(0, 1) }) });
            } else if (m.T === 'subscription') resolve(true);
            else if (m.T === 'error') bump(this.reconnecting.errors, String(m.code));
          }
        });
        void closed.then(() => resolve(false));
      });
      const ok = await Promise.race([subscribed, this.sleep(5000).then(() => false)]);
      if (ok) await this.sleep(100 + this.#o.random() * 700);
      done = true;
      if (ws.readyState !== WebSocket.OPEN) {
        if (!this.#stopping) bump(this.reconnecting.unexpectedCloses, ws.readyState === WebSocket.CONNECTING ? 'never-opened' : 'closed-early');
      } else if (ok) this.reconnecting.completed += 1;
      if (done && this.#o.random() < 0.3) ws.terminate();
      else ws.close(1000);
      await Promise.race([closed, this.sleep(3000)]);
      ws.terminate();
      await this.sleep(50 + this.#o.random() * 250);
    }
  }

  // ---------------------------------------------------------------- hostile

  #tally(name: string): Tally {
    return (this.hostile[name] ??= { attempts: 0, expected: 0, unexpected: {} });
  }

  /** One hostile act after another; each records whether the gateway answered as §11 says. */
  async #hostileLoop(): Promise<void> {
    const acts: [string, () => Promise<string | true>][] = [
      ['garbageAfterAuth', () => this.#garbageAfterAuth()],
      ['oversizedPreAuth', () => this.#oversizedPreAuth()],
      ['neverAuthenticates', () => this.#neverAuthenticates()],
      ['subscribeBeforeAuth', () => this.#subscribeBeforeAuth()],
      ['noopFlood', () => this.#noopFlood()],
      ['hugeSymbolList', () => this.#hugeList(2000, 'subscription')],
      ['overLimitSymbolList', () => this.#hugeList(this.#o.maxSymbolsPerClient + 2000, 405)],
    ];
    const pending = new Set<Promise<void>>();
    while (!this.#stopping) {
      const [name, act] = pick(this.#o.random, acts);
      const tally = this.#tally(name);
      tally.attempts += 1;
      // Acts overlap (a never-authenticating peer waits seconds); a few at a time at most.
      const run = act().then(
        (outcome) => {
          if (this.#stopping) return;
          if (outcome === true) tally.expected += 1;
          else bump(tally.unexpected, outcome);
        },
        (err: unknown) => bump(tally.unexpected, `threw: ${(err as Error).message}`),
      );
      pending.add(run);
      void run.finally(() => pending.delete(run));
      if (pending.size >= 4) await Promise.race(pending);
      await this.sleep(100 + this.#o.random() * 300);
    }
    await Promise.allSettled(pending);
  }

  /** Opens a hostile socket and collects what it receives until `settle` says it has what it needs. */
  #hostileSocket(
    setup: (ws: WebSocket, messages: Message[]) => void,
    settle: (messages: Message[], closeCode: number | undefined) => string | true | undefined,
    limitMs: number,
  ): Promise<string | true> {
    return new Promise((resolve) => {
      const ws = this.open('', 'json');
      const messages: Message[] = [];
      let closeCode: number | undefined;
      let finished = false;
      const finish = (verdict: string | true): void => {
        const outcome = verdict === true ? true : `${verdict}; ${describe(messages, closeCode)}`;
        if (finished) return;
        finished = true;
        clearTimeout(timer);
        this.#timers.delete(timer);
        ws.terminate();
        resolve(outcome);
      };
      const check = (): void => {
        const outcome = settle(messages, closeCode);
        if (outcome !== undefined) finish(outcome);
      };
      const timer = setTimeout(() => finish(settle(messages, closeCode) ?? `no verdict in ${limitMs} ms`), limitMs);
      this.#timers.add(timer);
      ws.on('message', (data: Buffer, isBinary) => {
        messages.push(...(this.#decode(data, isBinary) ?? [{ T: 'undecodable' }]));
        check();
      });
      ws.once('open', () => setup(ws, messages));
      ws.once('close', (code) => {
        closeCode = code;
        check();
        finish(settle(messages, closeCode) ?? `closed ${code}`);
      });
    });
  }

  /** Broken JSON, binary junk and an unknown action after auth: 400 each, and the connection stays. */
  #garbageAfterAuth(): Promise<string | true> {
    return this.#hostileSocket(
      (ws) =>
        ws.on('message', (data: Buffer) => {
          const text = data.toString();
          if (text.includes('"connected"')) request(ws, { action: 'auth', key: 'soak-hostile', secret: 'x' });
          else if (text.includes('"authenticated"')) {
            ws.send('{"action":"subscribe","trades":[');
            ws.send(Buffer.from([0xc1, 0xff, 0x00, 0x92]), { binary: true });
            request(ws, { action: 'dance' });
          }
        }),
      (messages, code) => {
        if (code !== undefined) return `closed ${code}`;
        return messages.filter((m) => m.T === 'error' && m.code === 400).length >= 3 ? true : undefined;
      },
      3000,
    );
  }

  #oversizedPreAuth(): Promise<string | true> {
    return this.#hostileSocket(
      (ws) => ws.send(Buffer.alloc(8 * 1024, 0x61), { binary: false }),
      (_messages, code) => (code === undefined ? undefined : code === 1009 ? true : `closed ${code}`),
      3000,
    );
  }

  #neverAuthenticates(): Promise<string | true> {
    return this.#hostileSocket(
      () => undefined,
      (messages, code) => {
        if (code === undefined) return undefined;
        return messages.some((m) => m.T === 'error' && m.code === 404) ? true : `closed ${code} without 404`;
      },
      this.#o.authTimeoutMs + 3000,
    );
  }

  #subscribeBeforeAuth(): Promise<string | true> {
    return this.#hostileSocket(
      (ws) => {
        for (let i = 0; i < 20; i++) request(ws, { action: 'subscribe', [this.profile.main]: this.profile.healthy });
      },
      (messages, code) => {
        if (code !== undefined) return `closed ${code}`;
        const errors = messages.filter((m) => m.T === 'error');
        if (errors.some((m) => m.code !== 401)) return `error ${errors.find((m) => m.code !== 401)?.code}`;
        if (messages.some((m) => m.T === 'subscription')) return 'subscribed without auth';
        return errors.length >= 20 ? true : undefined;
      },
      3000,
    );
  }

  /** Empty and repeated requests: each gets its reply and must cost the vendor nothing. */
  #noopFlood(): Promise<string | true> {
    const symbol = pick(this.#o.random, this.profile.healthy);
    const { main, absent } = this.profile;
    const other = this.profile.extra[0] ?? main;
    const total = 1 + 300;
    return this.#hostileSocket(
      (ws) => {
        ws.once('message', () => {
          request(ws, { action: 'auth', key: 'soak-hostile', secret: 'x' });
          request(ws, { action: 'subscribe', [main]: [symbol] });
          for (let i = 0; i < 100; i++) request(ws, { action: 'subscribe', [main]: [symbol] });
          for (let i = 0; i < 100; i++) request(ws, { action: 'subscribe' });
          for (let i = 0; i < 100; i++) request(ws, { action: 'unsubscribe', [other]: [absent] });
        });
      },
      (messages, code) => {
        if (code !== undefined) return `closed ${code}`;
        const errors = messages.filter((m) => m.T === 'error');
        if (errors.length > 0) return `error ${errors[0]?.code}`;
        return messages.filter((m) => m.T === 'subscription').length >= total ? true : undefined;
      },
      5000,
    );
  }

  #hugeList(count: number, expect: 'subscription' | 405): Promise<string | true> {
    const symbols = this.profile.many(count);
    return this.#hostileSocket(
      (ws) =>
        ws.once('message', () => {
          request(ws, { action: 'auth', key: 'soak-hostile', secret: 'x' });
          request(ws, { action: 'subscribe', [this.profile.main]: symbols });
        }),
      (messages, code) => {
        const reply = messages.find((m) => m.T === 'subscription' || m.T === 'error');
        if (reply === undefined) return code === undefined ? undefined : `closed ${code}`;
        const got = reply.T === 'error' ? (reply.code as number) : 'subscription';
        return got === expect ? true : `got ${got}`;
      },
      5000,
    );
  }

  /** Records a healthy client's close while the soak runs. */
  healthyClosed(client: number, code: number, reason: string): void {
    if (!this.#stopping) this.healthy.closed.push({ client, code, reason, at: now() });
  }

  recordGap(gap: Gap): void {
    this.gapCount += 1;
    if (this.gaps.length < 1000) this.gaps.push(gap);
  }
}

/** The channel `roll` (0 to 1) falls on, by weight. */
function weighted(roll: number, choices: readonly (readonly [string, number])[]): string {
  const total = choices.reduce((sum, [, w]) => sum + w, 0);
  let at = roll * total;
  for (const [channel, weight] of choices) {
    if ((at -= weight) < 0) return channel;
  }
  return (choices.at(-1) as readonly [string, number])[0];
}

function describe(messages: Message[], code: number | undefined): string {
  const errors = messages.filter((m) => m.T === 'error').map((m) => m.code);
  return `errors [${[...new Set(errors)].join(',')}]`;
}

/** What a healthy reader kept of a message another reader must have too (options trades, news items). */
interface Kept {
  key: string;
  symbols: string[];
  at: number;
}

/**
 * A well-behaved client of one stream: holds the main channel (trades, or news) and the profile's
 * extras for a few symbols; checks every trade id (stocks, crypto), rebuilds its order books
 * (crypto), keeps every options trade and news item for the comparison with other readers.
 */
class HealthyClient {
  readonly #population: Population;
  readonly id: number;
  readonly #encoding: Encoding;
  /** the symbols it wants, and those the gateway says it holds */
  readonly #wanted: string[];
  #held = new Set<string>();
  /** per held symbol: when the gateway's reply first and last said it was held (undefined `to`: still held) */
  readonly #windows = new Map<string, { from: number; to: number | undefined }>();
  /** per held symbol: the last trade id (undefined until the first, or without ids) and when it, or the hold, began */
  readonly #last = new Map<string, { id: bigint | undefined; at: number }>();
  /** pairs already reported starved in the current silence */
  readonly #starved = new Set<string>();
  /** crypto: the books it rebuilds */
  readonly books = new Map<string, ReaderBook>();
  /** options trades and news items, for `Population.crossCheck` */
  readonly records: Kept[] = [];
  readonly #keys = new Map<string, number>();
  /** news: the last id of a `*` holder */
  #lastNewsId: { id: number; at: number } | undefined;
  #ws: WebSocket | undefined;
  #resubscribePending = false;
  readonly #replyWaiters: (() => void)[] = [];

  constructor(population: Population, id: number, encoding: Encoding, symbols: string[]) {
    this.#population = population;
    this.id = id;
    this.#encoding = encoding;
    this.#wanted = symbols;
  }

  /** a news reader holding `*`: every item is its own */
  get holdsAll(): boolean {
    return this.#wanted.includes('*');
  }

  wants(symbol: string): boolean {
    return this.#wanted.includes(symbol);
  }

  has(key: string): boolean {
    return (this.#keys.get(key) ?? 0) > 0;
  }

  /** when the gateway said it held `symbol` (`*` for a wildcard holder) */
  heldWindow(symbol: string): { from: number; to: number } | undefined {
    const window = this.#windows.get(this.holdsAll ? '*' : symbol);
    return window === undefined ? undefined : { from: window.from, to: window.to ?? now() };
  }

  connect(): Promise<void> {
    return new Promise((resolve, reject) => {
      const ws = this.#population.open('', this.#encoding);
      this.#ws = ws;
      const profile = this.#population.profile;
      ws.on('message', (data: Buffer, isBinary) => {
        const messages = decode(data, isBinary, profile.kind);
        if (messages === undefined) {
          this.#population.healthy.undecodableFrames += 1;
          return;
        }
        for (const m of messages) {
          if (m.T === 't') this.#onTrade(m, m.i);
          else if (m.T === 'c') this.#onTrade(m, m.ci); // a correction's new trade takes the next id
          else if (m.T === 'q') this.#population.healthy.messages += 1;
          else if (m.T === 'o') this.#onBook(m);
          else if (m.T === 'n') this.#onNews(m);
          else if (m.T === 'subscription') {
            this.#onSubscription(m);
            this.#replyWaiters.shift()?.();
            resolve();
          } else if (m.T === 'success' && m.msg === 'connected') request(ws, { action: 'auth', key: `soak-healthy-${this.id}`, secret: 'x' });
          else if (m.T === 'success' && m.msg === 'authenticated') this.#subscribe();
          else if (m.T === 'error') {
            bump(this.#population.healthy.errors, String(m.code));
            this.#lastError = typeof m.code === 'number' ? m.code : undefined;
          }
        }
      });
      ws.once('close', (code, reason) => {
        reject(new Error(`healthy client ${this.id} closed (${code}) before it subscribed`));
        this.#population.healthyClosed(this.id, code, reason.toString());
      });
    });
  }

  #lastError: number | undefined;

  #subscribe(): void {
    const { main, extra, books } = this.#population.profile;
    const body: Record<string, unknown> = { action: 'subscribe', [main]: this.#wanted };
    for (const channel of extra) body[channel] = channel === 'orderbooks' && books ? this.#wanted.slice(0, 2) : this.#wanted;
    if (this.#ws !== undefined) request(this.#ws, body);
  }

  /** The same set again (a no-op): resolves true on its reply, false after `timeoutMs`. */
  barrier(timeoutMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        const at = this.#replyWaiters.indexOf(done);
        if (at >= 0) this.#replyWaiters.splice(at, 1);
        resolve(false);
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      this.#replyWaiters.push(done);
      this.#subscribe();
    });
  }

  #onTrade(m: Message, tradeId: unknown): void {
    const symbol = m.S as string;
    const healthy = this.#population.healthy;
    healthy.messages += 1;
    if (!this.#held.has(symbol)) return;
    const t = now();
    this.#starved.delete(symbol);
    if (!this.#population.profile.tradeIds) {
      // Options trades carry no id: kept whole, for the comparison with the other readers.
      this.#last.set(symbol, { id: undefined, at: t });
      this.#population.options.trades += 1;
      this.#keep(`${symbol}|${String(m.t)}|${String(m.p)}|${String(m.s)}|${String(m.x)}|${String(m.c)}`, [symbol], t);
      return;
    }
    healthy.tradesChecked += 1n;
    const id = BigInt(tradeId as number | bigint);
    const last = this.#last.get(symbol);
    this.#last.set(symbol, { id, at: t });
    if (last === undefined || last.id === undefined || id === last.id + 1n) return;
    if (id <= last.id) {
      healthy.outOfOrder += 1;
      return;
    }
    this.#population.recordGap({ client: this.id, symbol, afterId: last.id.toString(), missing: (id - last.id - 1n).toString(), lastAt: last.at, seenAt: t });
  }

  #onBook(m: Message): void {
    this.#population.healthy.messages += 1;
    const symbol = m.S as string;
    let book = this.books.get(symbol);
    if (book === undefined) this.books.set(symbol, (book = new ReaderBook()));
    book.apply(m, now());
  }

  /** An item once per holder: a repeated id is a duplicate; a `*` holder's ids run in sequence over the wire. */
  #onNews(m: Message): void {
    const population = this.#population;
    population.healthy.messages += 1;
    population.news.items += 1;
    const id = Number(m.id);
    const t = now();
    const key = String(id);
    if (this.has(key)) {
      population.news.duplicates += 1;
      if (population.news.duplicateEvents.length < 20) population.news.duplicateEvents.push({ client: this.id, id });
    }
    this.#keep(key, Array.isArray(m.symbols) ? (m.symbols as string[]) : [], t);
    if (!this.holdsAll) return;
    const last = this.#lastNewsId;
    this.#lastNewsId = { id, at: t };
    if (last === undefined || id === last.id + 1 || id <= last.id) {
      if (last !== undefined && id <= last.id) population.healthy.outOfOrder += 1;
      return;
    }
    population.news.idGaps += 1;
    population.recordGap({ client: this.id, symbol: '*', afterId: String(last.id), missing: String(id - last.id - 1), lastAt: last.at, seenAt: t });
  }

  #keep(key: string, symbols: string[], at: number): void {
    this.#keys.set(key, (this.#keys.get(key) ?? 0) + 1);
    this.records.push({ key, symbols, at });
  }

  /** The gateway's view of this client's set: a pair it dropped unasked is a loss; ask again later. */
  #onSubscription(m: Message): void {
    const main = this.#population.profile.main;
    const listed = new Set(Array.isArray(m[main]) ? (m[main] as string[]) : []);
    const t = now();
    const lost = [...this.#held].filter((s) => !listed.has(s));
    for (const s of lost) {
      // Not held means no continuity is owed: the id run starts over when it is held again.
      this.#last.delete(s);
      this.#starved.delete(s);
      const window = this.#windows.get(s);
      if (window !== undefined) window.to = t;
    }
    for (const s of listed) {
      if (this.#held.has(s)) continue;
      this.#last.set(s, { id: undefined, at: t });
      // A new hold: what another reader got before it is not owed (the comparison starts here).
      this.#windows.set(s, { from: t, to: undefined });
    }
    this.#held = listed;
    if (lost.length === 0) return;
    const healthy = this.#population.healthy;
    healthy.pairsLost += lost.length;
    if (healthy.pairsLostEvents.length < 200) healthy.pairsLostEvents.push({ client: this.id, at: t, code: this.#lastError, lost });
    if (this.#resubscribePending) return;
    this.#resubscribePending = true;
    // An application that was told its subscription is gone asks again, a little later.
    void this.#population.sleep(1000).then(() => {
      this.#resubscribePending = false;
      if (this.#population.stopping) return;
      this.#population.healthy.resubscribes += 1;
      this.#subscribe();
    });
  }

  checkStarvation(t: number, starvedMs: number): void {
    for (const symbol of this.#held) {
      const last = this.#last.get(symbol);
      if (last === undefined || this.#starved.has(symbol)) continue;
      const silent = t - last.at;
      if (silent < starvedMs) continue;
      if (this.#population.inOutage(last.at, t, 0)) continue;
      this.#starved.add(symbol);
      this.#population.healthy.starved.push({ client: this.id, symbol, silentMs: Math.round(silent), at: t });
    }
  }
}
