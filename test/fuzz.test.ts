/**
 * Seeded fuzz of every door a hostile peer can knock on (issues #8, #19): thousands of generated
 * frames over WebSocket (before and after auth, fragmented or not) on every stream path the
 * embedded vendor serves (DESIGN.md §9: stocks `v2/iex`, crypto `v1beta3/crypto/us`, options
 * `v1beta1/indicative`, news `v1beta1/news`), each in its own words (channels, symbols right and
 * wrong, the channels it lacks); raw TCP (garbage HTTP, malformed upgrades, upgrades of every
 * served and of unserved paths, broken WebSocket frames, cut frames, early closes, silent
 * connections) and the control plane. The gateway runs for real on 127.0.0.1:0, in this process
 * with its embedded vendor, so every input is answered by the code under test (not a stale
 * build), a crash is an uncaught exception that fails the run, and the test can publish known
 * sequences through the vendor and look at each hub's own client count.
 *
 * Witnesses hold the test's sequences for the whole run and must lose nothing and stay
 * connected: trades of WIT (JSON, msgpack; ids crossing 2^53); crypto trades of WIT/USD in order
 * by their 64-bit ids with fractional sizes, and its order book, every message as sent, rebuilt
 * equal to the vendor's — also by two clients that join the book mid-run and must be given it as
 * one reset; option trades of one OCC contract (JSON transcoded from the vendor's msgpack, and
 * msgpack); news items naming several symbols, each exactly once per holder (`*` or symbols).
 *
 * Every input's answer is reduced to an outcome key ("error 400", "error 402 → close 1008",
 * "close 1007", "http 400", "end"…) and checked against the answer the contract (DESIGN.md §3,
 * §4, §9, §11, PROTOCOL.md §1.8, PROTOCOL-STREAMS.md) names for it. Replay a failure with
 * FUZZ_SEED=<seed>; the case id and a preview of its bytes are in the failure's diagnostics.
 */
import { request as httpRequest } from 'node:http';
import type { Socket } from 'node:net';
import t, { type Test } from 'tap';
import { systemClock, timestampNow } from '../src/clock.js';
import { EMBEDDED_DEFAULT_STREAMS } from '../src/config.js';
import type { ServedStream } from '../src/hub/gateway.js';
import { STOCK_CHANNELS as CHANNELS, type Channel } from '../src/protocol/channels.js';
import { Timestamp } from '../src/protocol/timestamp.js';
import type { WireValue } from '../src/protocol/transcode.js';
import type { MarketMessage } from '../src/simulator/market.js';
import { startGateway } from './helpers/gateway.js';
import {
  CRYPTO_VOCABULARY,
  Dice,
  FOREIGN_CHANNELS,
  INVALID_SYMBOLS,
  NEWS_VOCABULARY,
  OPTION_VOCABULARY,
  preview,
  seedFor,
  STOCK_VOCABULARY,
  VALID_SYMBOLS,
  type Vocabulary,
  type WsCase,
  wsCases,
  wsFamilies,
} from './helpers/fuzz-inputs.js';
import { buildFrame, closePayload, FuzzSocket, type Message, RawPeer, upgradeRequest } from './helpers/fuzz-wire.js';
import type { StreamClient } from './helpers/stream-client.js';
import { eventually } from './helpers/wait.js';

const SEED = Number(process.env.FUZZ_SEED ?? 20_260_808);

// ---- the gateway under fuzz ----
const MAX_MESSAGE_BYTES = 65_536;
/** DESIGN.md §11: before auth, a frame over 4 KiB closes the socket with 1009. */
const PRE_AUTH_MAX_BYTES = 4096;
const MAX_SYMBOLS_PER_CLIENT = 200;
const CLIENT_AUTH_TIMEOUT_MS = 3000;
const CONTROL_TOKEN = 'fuzz-control-token';
const FUZZ_KEY = { key: 'fuzz', secret: 'fuzz-secret' };
const CRYPTO_PATH = 'v1beta3/crypto/us';
const OPTION_PATH = 'v1beta1/indicative';
const NEWS_PATH = 'v1beta1/news';
const ENV = {
  // What the gateway serves with no UPSTREAM_URL (DESIGN.md §9); the test checks it is that.
  STREAMS: EMBEDDED_DEFAULT_STREAMS.join(','),
  CLIENT_KEYS: 'witness:witness-secret,fuzz:fuzz-secret',
  CONTROL_TOKEN,
  MAX_MESSAGE_BYTES: String(MAX_MESSAGE_BYTES),
  MAX_SYMBOLS_PER_CLIENT: String(MAX_SYMBOLS_PER_CLIENT),
  CLIENT_AUTH_TIMEOUT_MS: String(CLIENT_AUTH_TIMEOUT_MS),
  SUBSCRIBE_TIMEOUT_MS: '5000',
  LOG_LEVEL: 'warn',
};

/** How long one answer may take before it counts as a hang; it measures nothing. */
const DEADLINE_MS = 10_000;
/** After this many hangs the rest of the cases are skipped: a dead gateway fails fast, readably. */
const MAX_HANGS = 10;

// ---- what the contract allows at all ----
const VENDOR_CODES = new Set([400, 401, 402, 403, 404, 405, 406, 407, 409, 410]);
const CLOSE_CODES = new Set([1000, 1001, 1002, 1007, 1008, 1009]);

/**
 * Whether an outcome is one the contract allows for some input: a vendor error (maybe followed by
 * an allowed close), a subscription reply, an auth success, an allowed close, an HTTP 4xx, the
 * TCP connection ending, or our own early close. A hang, a 500, a close with 1006/1011 or a
 * second answer to one request never is.
 */
function allowedAtAll(key: string): boolean {
  if (['subscription', 'authenticated', 'end', 'open', 'client closed'].includes(key)) return true;
  const error = /^error (\d+)(?: → close (\d+))?$/.exec(key);
  if (error !== null) return VENDOR_CODES.has(Number(error[1])) && (error[2] === undefined || CLOSE_CODES.has(Number(error[2])));
  const close = /^close (\d+)$/.exec(key);
  if (close !== null) return CLOSE_CODES.has(Number(close[1]));
  return /^http 4\d\d$/.test(key);
}

interface Mismatch {
  id: string;
  note: string;
  input?: string;
  expected: string;
  got: string;
}

/** Outcomes per family, and the cases that did not get the answer the contract names. */
class Tally {
  readonly families = new Map<string, { cases: number; outcomes: Record<string, number> }>();
  /** an answer of an allowed kind, but not the one the contract names for this input */
  readonly contract = new Map<string, Mismatch[]>();
  /** a hang, a 500, an unexpected close, a crash-like answer */
  readonly fatal = new Map<string, Mismatch[]>();
  hangs = 0;

  record(family: string, got: string, ok: boolean, mismatch: Omit<Mismatch, 'got'>): void {
    const entry = this.families.get(family) ?? { cases: 0, outcomes: {} };
    entry.cases += 1;
    entry.outcomes[got] = (entry.outcomes[got] ?? 0) + 1;
    this.families.set(family, entry);
    if (got.includes('timeout')) this.hangs += 1;
    if (ok) return;
    const bucket = allowedAtAll(got) ? this.contract : this.fatal;
    const list = bucket.get(family) ?? [];
    list.push({ ...mismatch, got });
    bucket.set(family, list);
  }

  get exhausted(): boolean {
    return this.hangs >= MAX_HANGS;
  }

  /** One JSON object: family → { cases, outcome → count }, for docs/reliability.md. */
  summary(): Record<string, unknown> {
    return Object.fromEntries([...this.families].map(([family, { cases, outcomes }]) => [family, { cases, ...outcomes }]));
  }

  /** One assertion per family and kind of failure, with the first few cases as diagnostics. */
  assert(t: Test, families: readonly string[]): void {
    for (const family of families) {
      const cases = this.families.get(family)?.cases ?? 0;
      const fatal = this.fatal.get(family) ?? [];
      const contract = this.contract.get(family) ?? [];
      t.equal(fatal.length, 0, `${family}: ${cases} cases, every answer of a kind the contract allows: no hang, no 500, no unexpected close or status (seed ${SEED})`, { failures: fatal.slice(0, 6) });
      t.equal(contract.length, 0, `${family}: every case got the answer the contract names (seed ${SEED})`, {
        failures: contract.slice(0, 6),
        byOutcome: countBy(contract, (m) => `${m.expected} ⇒ got ${m.got}`),
      });
    }
  }
}

function countBy<T>(items: readonly T[], key: (item: T) => string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const item of items) out[key(item)] = (out[key(item)] ?? 0) + 1;
  return out;
}

/** Runs `work` over `items` with at most `lanes` at a time, each lane taking the next item. */
async function inLanes<T>(items: readonly T[], lanes: number, work: (item: T, lane: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: lanes }, async (_, lane) => {
      while (next < items.length) await work(items[next++] as T, lane);
    }),
  );
}

// ---- the WebSocket contract ----

/** A client's own subscription set on one stream, as the gateway must report it in every reply. */
class HeldSet {
  readonly vocabulary: Vocabulary;
  readonly sets: Map<Channel, Set<string>>;

  constructor(vocabulary: Vocabulary) {
    this.vocabulary = vocabulary;
    this.sets = new Map(vocabulary.channels.map((c) => [c, new Set<string>()]));
  }

  distinctAfterAdding(lists: Partial<Record<Channel, string[]>>): number {
    const all = new Set<string>();
    for (const set of this.sets.values()) for (const s of set) all.add(s);
    for (const list of Object.values(lists)) for (const s of list ?? []) all.add(s);
    all.delete('*');
    return all.size;
  }

  /** The reply lists this set (reply keys following their channels) and has exactly the stream's reply keys. */
  matches(reply: Message): boolean {
    const same = (key: string, set: Set<string>): boolean => {
      const list = reply[key];
      return Array.isArray(list) && list.length === set.size && list.every((s) => set.has(s as string));
    };
    const keys = Object.keys(reply).filter((k) => k !== 'T');
    const expectedKeys = this.vocabulary.reply.map(([key]) => key);
    if (keys.length !== expectedKeys.length || !expectedKeys.every((k) => keys.includes(k))) return false;
    return this.vocabulary.reply.every(([key, channel]) => same(key, this.sets.get(channel) as Set<string>));
  }

  /** Takes the set the gateway reported, so one divergence is reported once. */
  adopt(reply: Message): void {
    for (const [key, channel] of this.vocabulary.reply) {
      if (key !== channel) continue;
      const list = reply[key];
      this.sets.set(channel, new Set(Array.isArray(list) ? (list as string[]) : []));
    }
  }

  apply(action: 'subscribe' | 'unsubscribe', lists: Partial<Record<Channel, string[]>>): void {
    for (const [channel, list] of Object.entries(lists) as [Channel, string[]][]) {
      const set = this.sets.get(channel) as Set<string>;
      for (const s of list) {
        if (action === 'subscribe') set.add(s);
        else set.delete(s);
      }
    }
  }
}

/**
 * The answers the contract names for a request, given whether the client has authenticated and
 * what it holds (DESIGN.md §3, §9 and §11, PROTOCOL.md §1.8, PROTOCOL-STREAMS.md).
 */
function expectedAnswers(c: WsCase, phase: 'pre' | 'post', held: HeldSet): string[] {
  const size = c.data.length;
  const utf8 = c.meaning.kind === 'invalid-utf8' ? ['close 1007'] : [];
  // The WebSocket layer cuts anything past 4× MAX_MESSAGE_BYTES before the gateway sees it.
  if (size > 4 * MAX_MESSAGE_BYTES) return ['close 1009', 'error 400 → close 1009'];
  if (phase === 'pre') {
    // Before auth: over 4 KiB closes with 1009 (a vendor error first is tolerated).
    if (size > PRE_AUTH_MAX_BYTES) return ['close 1009', 'error 400 → close 1009', 'error 401 → close 1009', ...utf8];
    if (utf8.length > 0) return utf8;
    const m = c.meaning;
    if (m.kind !== 'auth') return ['error 401'];
    if (typeof m.key !== 'string' || typeof m.secret !== 'string') return ['error 400'];
    return m.key === FUZZ_KEY.key && m.secret === FUZZ_KEY.secret ? ['authenticated'] : ['error 402 → close 1008'];
  }
  if (size > MAX_MESSAGE_BYTES) return ['error 400 → close 1009', 'close 1009', ...utf8];
  if (utf8.length > 0) return utf8;
  const m = c.meaning;
  switch (m.kind) {
    case 'noise':
      return ['error 400'];
    case 'auth':
      return typeof m.key === 'string' && typeof m.secret === 'string' ? ['error 403'] : ['error 400'];
    case 'change':
      // Several faults: any of them (and a code the contract leaves open) is a right answer.
      if (m.faults.length > 0) return [...m.faults, ...(m.tolerated ?? [])].map((code) => `error ${code}`);
      if (m.action === 'subscribe' && held.distinctAfterAdding(m.lists) > MAX_SYMBOLS_PER_CLIENT) return ['error 405'];
      return ['subscription', ...(m.tolerated ?? []).map((code) => `error ${code}`)];
    default:
      return ['?'];
  }
}

const WS_COUNTS: Record<string, { post: number; pre: number }> = {
  'random text': { post: 200, pre: 120 },
  'random bytes as text': { post: 150, pre: 80 },
  'random bytes as binary': { post: 200, pre: 100 },
  'broken JSON': { post: 220, pre: 100 },
  'wrong shapes': { post: 250, pre: 100 },
  'subscription changes': { post: 600, pre: 150 },
  'huge arrays': { post: 40, pre: 20 },
  'deep nesting': { post: 40, pre: 30 },
  'bad msgpack': { post: 250, pre: 100 },
  'auth shapes': { post: 60, pre: 100 },
  'prototype keys': { post: 10, pre: 10 },
  'invalid UTF-8 text': { post: 60, pre: 30 },
};

/** A served stream under fuzz: its path, its words, and its share of WS_COUNTS (the stock stream keeps them all). */
interface FuzzStream {
  readonly path: string;
  readonly vocabulary: Vocabulary;
  readonly scale: number;
  readonly headerCases: number;
  /** WebSocket inputs it must have sent at least */
  readonly minInputs: number;
}

/** The four paths the embedded vendor serves by default (DESIGN.md §9). */
const STREAMS: readonly FuzzStream[] = [
  { path: 'v2/iex', vocabulary: STOCK_VOCABULARY, scale: 1, headerCases: 40, minInputs: 3000 },
  { path: 'v1beta3/crypto/us', vocabulary: CRYPTO_VOCABULARY, scale: 0.8, headerCases: 16, minInputs: 2400 },
  { path: 'v1beta1/indicative', vocabulary: OPTION_VOCABULARY, scale: 0.8, headerCases: 16, minInputs: 2400 },
  { path: 'v1beta1/news', vocabulary: NEWS_VOCABULARY, scale: 0.8, headerCases: 16, minInputs: 2400 },
];

const scaled = (count: number, scale: number): number => (scale === 1 ? count : Math.max(4, Math.round(count * scale)));

// ---- what the witnesses hold, and what the test publishes to them through the embedded vendor ----
const CRYPTO_PAIR = 'WIT/USD';
/** DOC-CRY's example id: crypto ids need all 64 bits. */
const CRYPTO_FIRST_ID = 3_447_222_699_101_865_076n;
const OPTION_CONTRACT = 'WIT250117C00100000';
const NEWS_FIRST_ID = 5_000_000_000;
/** Symbol lists of the test's news items: none, one, both, repeated, and ones no witness holds alone. */
const NEWS_SYMBOLS: readonly (readonly string[])[] = [[], ['WITN'], ['WITM'], ['WITN', 'WITM'], ['WITM', 'WITN', 'AAPL'], ['AAPL'], ['WITN', 'WITN'], ['TSLA', 'WITM'], ['BTCUSD']];
/** What each news witness holds. */
const NEWS_HOLDINGS: readonly { encoding: 'json' | 'msgpack'; news: string[] }[] = [
  { encoding: 'json', news: ['*'] },
  { encoding: 'msgpack', news: ['*'] },
  { encoding: 'json', news: ['WITN', 'WITM'] },
  { encoding: 'msgpack', news: ['WITN', 'WITM'] },
  { encoding: 'json', news: ['WITM'] },
];

/** A book side as a map of price → size. */
type Side = Map<number, number>;

/** The levels of a message side, or undefined when it is not a list of numeric {p, s}. */
function levelsOf(value: unknown): { p: number; s: number }[] | undefined {
  if (!Array.isArray(value)) return undefined;
  const out: { p: number; s: number }[] = [];
  for (const level of value as Message[]) {
    if (typeof level?.p !== 'number' || typeof level?.s !== 'number') return undefined;
    out.push({ p: level.p, s: level.s });
  }
  return out;
}

const sideList = (side: Side): [number, number][] => [...side].sort((x, y) => x[0] - y[0]);

/** One order-book message as levels, in the order it carries them: what a witness compares with what was sent. */
interface BookStep {
  reset: boolean;
  b: [number, number][] | null;
  a: [number, number][] | null;
}

function stepOf(m: Message): BookStep {
  const side = (value: unknown): [number, number][] | null => levelsOf(value)?.map(({ p, s }) => [p, s] as [number, number]) ?? null;
  return { reset: m.r === true, b: side(m.b), a: side(m.a) };
}

/** The book a client holds after these steps, sides sorted by price. */
function replayBook(steps: readonly BookStep[]): { bids: [number, number][]; asks: [number, number][] } {
  const bids: Side = new Map();
  const asks: Side = new Map();
  for (const step of steps) {
    if (step.reset) {
      bids.clear();
      asks.clear();
    }
    for (const [side, levels] of [[bids, step.b], [asks, step.a]] as const) {
      for (const [p, s] of levels ?? []) {
        if (s === 0) side.delete(p);
        else side.set(p, s);
      }
    }
  }
  return { bids: sideList(bids), asks: sideList(asks) };
}

const stepsOf = (w: StreamClient, symbol: string): BookStep[] => w.messages.filter((m) => m.T === 'o' && m.S === symbol).map(stepOf);
const firstDifference = (got: readonly BookStep[], sent: readonly BookStep[]): { at: number; sent: BookStep | null; got: BookStep | null } | null => {
  const at = got.findIndex((step, k) => JSON.stringify(step) !== JSON.stringify(sent[k]));
  return at < 0 ? null : { at, sent: sent[at] ?? null, got: got[at] ?? null };
};

t.test(`a seeded fuzz of hostile peers on every stream (seed ${SEED}): the gateway answers every input per contract, never crashes, and witnesses lose nothing`, async (t) => {
  const gw = await startGateway(t, ENV);
  t.same(gw.gateway.paths, [...EMBEDDED_DEFAULT_STREAMS], 'the gateway serves the embedded vendor’s default streams');
  const port = Number(new URL(gw.base).port);
  // Every connection the server accepts, to find the ones it never closes.
  const serverSockets = new Set<Socket>();
  gw.app.server.on('connection', (socket: Socket) => {
    serverSockets.add(socket);
    socket.once('close', () => serverSockets.delete(socket));
  });
  const simulator = gw.simulator;
  if (simulator === undefined) throw new Error('the embedded vendor is missing');
  const served = (path: string): ServedStream => {
    const stream = gw.gateway.stream(path);
    if (stream === undefined) throw new Error(`${path} is not served`);
    return stream;
  };

  // ---- witnesses: on every stream, clients that hold the test's own sequence throughout ----
  const witnessesOf = new Map<string, StreamClient[]>();
  const witness = async (path: string, encoding: 'json' | 'msgpack', request: Record<string, WireValue>, query = ''): Promise<StreamClient> => {
    const w = await gw.connect({ encoding, stream: path, query });
    t.same(await w.auth('witness', 'witness-secret'), { T: 'success', msg: 'authenticated' });
    const reply = await w.request({ action: 'subscribe', ...request });
    t.equal(reply.T, 'subscription', `a ${encoding} witness on ${path}${query ? `?${query}` : ''} holds ${JSON.stringify(request)}`);
    witnessesOf.set(path, [...(witnessesOf.get(path) ?? []), w]);
    return w;
  };
  const stockWitnesses = [await witness('v2/iex', 'json', { trades: ['WIT'] }), await witness('v2/iex', 'msgpack', { trades: ['WIT'] })];
  const cryptoWitnesses = [
    await witness(CRYPTO_PATH, 'json', { trades: [CRYPTO_PAIR], orderbooks: [CRYPTO_PAIR] }),
    await witness(CRYPTO_PATH, 'msgpack', { trades: [CRYPTO_PAIR], orderbooks: [CRYPTO_PAIR] }),
  ];
  const optionWitnesses = [await witness(OPTION_PATH, 'json', { trades: [OPTION_CONTRACT] }), await witness(OPTION_PATH, 'msgpack', { trades: [OPTION_CONTRACT] })];
  const newsWitnesses: { client: StreamClient; holds: string[] }[] = [];
  for (const { encoding, news } of NEWS_HOLDINGS) newsWitnesses.push({ client: await witness(NEWS_PATH, encoding, { news }), holds: news });
  for (const stream of STREAMS) await served(stream.path).link.whenSynced(DEADLINE_MS);
  // The vendor's own reset of the new book came right after its reply: the test's reset follows it.
  for (const w of cryptoWitnesses) await w.waitFor((m) => m.T === 'o' && m.S === CRYPTO_PAIR, `the ${w.encoding} witness's first book of ${CRYPTO_PAIR}`);

  // Stocks: trade ids cross 2^53 during the run, so the witnesses also check that no id loses precision.
  const firstId = 2n ** 53n - 1000n;
  let nextId = firstId;
  // Crypto: 64-bit trade ids with fractional sizes, and an order book the test keeps itself.
  let cryptoNextId = CRYPTO_FIRST_ID;
  const cryptoSize = (id: bigint): number => Number(id % 1000n) / 1000 + 0.000000001;
  const bookDice = new Dice(seedFor(SEED, 'order book'));
  const book = { bids: new Map<number, number>() as Side, asks: new Map<number, number>() as Side, resets: 0 };
  /** every book message the test sent, in order */
  const bookSent: BookStep[] = [];
  const bookSize = (): number => (1 + bookDice.int(5_000_000_000)) / 1e9;
  const bookReset = (t: Timestamp): MarketMessage => {
    book.bids = new Map(Array.from({ length: 10 }, (_, i) => [(25_000 - 1 - i) / 100, bookSize()] as [number, number]));
    book.asks = new Map(Array.from({ length: 10 }, (_, i) => [(25_000 + 1 + i) / 100, bookSize()] as [number, number]));
    book.resets += 1;
    const side = (s: Side): MarketMessage[] => [...s].map(([p, size]) => ({ p, s: size }));
    return { T: 'o', S: CRYPTO_PAIR, t, b: side(book.bids), a: side(book.asks), r: true };
  };
  const bookUpdate = (t: Timestamp): MarketMessage => {
    const change = (side: Side, base: number, direction: number): MarketMessage[] => {
      const p = (base + direction * (1 + bookDice.int(20))) / 100;
      const s = side.has(p) && bookDice.chance(0.35) ? 0 : bookSize();
      if (s === 0) side.delete(p);
      else side.set(p, s);
      return [{ p, s }];
    };
    const roll = bookDice.next();
    const b = roll < 0.6 ? change(book.bids, 25_000, -1) : [];
    const a = roll >= 0.4 ? change(book.asks, 25_000, 1) : [];
    // An absent `r` means false (PROTOCOL-STREAMS §1.3); now and then it is sent as false.
    return bookDice.chance(0.1) ? { T: 'o', S: CRYPTO_PAIR, t, b, a, r: false } : { T: 'o', S: CRYPTO_PAIR, t, b, a };
  };
  // Options: no trade id at the vendor; the integer size runs 1, 2, 3… so order and loss show.
  let optionSeq = 0;
  // News: items naming several symbols; each must reach each holder exactly once.
  let newsNextId = NEWS_FIRST_ID;
  const newsPublished: { id: number; symbols: readonly string[] }[] = [];
  const newsDice = new Dice(seedFor(SEED, 'news items'));

  let ticks = 0;
  const publish = (): void => {
    const t = timestampNow(systemClock);
    const stocks: MarketMessage[] = [];
    for (let k = 0; k < 2; k++) {
      const id = nextId++;
      stocks.push({ T: 't', S: 'WIT', i: id <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(id) : id, x: 'V', p: 101.25, s: 100, c: ['@'], t, z: 'C' });
    }
    simulator.publish(stocks, 'v2/iex');
    const crypto: MarketMessage[] = [];
    const id = cryptoNextId++;
    crypto.push({ T: 't', S: CRYPTO_PAIR, p: 250 + Number(id % 100n) / 100, s: cryptoSize(id), t, i: id, tks: id % 2n === 0n ? 'B' : 'S' });
    // A reset at the start and one more early on; the late joiners (after tick 150) then depend on
    // the book the gateway hands them, not on a reset of the vendor's.
    const bookMessage = ticks === 0 || ticks === 100 ? bookReset(t) : bookUpdate(t);
    bookSent.push(stepOf(bookMessage as Message));
    crypto.push(bookMessage);
    simulator.publish(crypto, CRYPTO_PATH);
    optionSeq += 1;
    simulator.publish([{ T: 't', S: OPTION_CONTRACT, t, p: (125 + (optionSeq % 100)) / 100, s: optionSeq, x: 'C', c: 'I' }], OPTION_PATH);
    if (ticks % 2 === 0) {
      const newsId = newsNextId++;
      const symbols = newsDice.pick(NEWS_SYMBOLS);
      newsPublished.push({ id: newsId, symbols });
      const created = new Timestamp(t.seconds, 0);
      const item: MarketMessage = {
        T: 'n',
        id: newsId,
        headline: `WIT item ${newsId}`,
        summary: `Item ${newsId}.`,
        author: 'Fuzz Newsdesk',
        created_at: created,
        updated_at: created,
        url: newsId % 4 === 0 ? null : `https://example.com/news/${newsId}`,
        content: newsId % 10 === 0 ? '<p>several kilobytes of content</p>'.repeat(120) : '',
        symbols: [...symbols],
        source: 'benzinga',
      };
      simulator.publish([item], NEWS_PATH);
    }
    ticks += 1;
  };
  const publisher = setInterval(publish, 4);
  t.teardown(() => clearInterval(publisher));
  const vendorConnections = simulator.stats.connections;
  // Late joiners of the book, while the fuzz runs: the vendor sends them no reset (it already
  // streams the book), so the gateway must give them the book whole before any update (PROTOCOL-STREAMS §1.3).
  const lateBookWitnesses = (async (): Promise<StreamClient[]> => {
    await eventually(() => ticks >= 150, 'the publisher to pass its 150th tick', 60_000);
    return [
      await witness(CRYPTO_PATH, 'json', { orderbooks: [CRYPTO_PAIR] }, 'snapshot=1'),
      await witness(CRYPTO_PATH, 'msgpack', { orderbooks: [CRYPTO_PAIR] }),
    ];
  })();

  const tally = new Tally();
  const shuffle = <T>(items: T[], d: Dice): T[] => {
    for (let i = items.length - 1; i > 0; i--) {
      const j = d.int(i + 1);
      [items[i], items[j]] = [items[j] as T, items[i] as T];
    }
    return items;
  };

  const sockets = new Set<FuzzSocket>();
  t.teardown(async () => {
    await Promise.all([...sockets].map((s) => s.close()));
  });
  const openSocket = async (path: string, encoding: 'json' | 'msgpack', headers: Record<string, string> = {}, query = ''): Promise<FuzzSocket | undefined> => {
    const socket = new FuzzSocket(gw.url(query, path), encoding, headers);
    sockets.add(socket);
    void socket.closed.then(() => sockets.delete(socket));
    return (await socket.greeted(DEADLINE_MS)) ? socket : undefined;
  };
  const inputOf = (c: WsCase): string => `${c.binary ? 'binary' : 'text'}${c.fragments > 1 ? ` in ${c.fragments} fragments` : ''}: ${preview(c.data, c.binary)}`;

  /** Every WebSocket family of the stock fuzz, in the words of `stream`, before and after auth, and header auth. */
  const runStream = async (stream: FuzzStream): Promise<void> => {
    const { path, vocabulary, scale } = stream;
    const families = wsFamilies({ goodKey: FUZZ_KEY.key, goodSecret: FUZZ_KEY.secret, maxMessageBytes: MAX_MESSAGE_BYTES, vocabulary });
    const casesOf = (phase: 'post' | 'pre'): WsCase[] =>
      shuffle(
        Object.entries(WS_COUNTS).flatMap(([name, counts]) => wsCases(SEED, name, families[name] as never, scaled(counts[phase], scale), `${path}/${phase}`)),
        new Dice(seedFor(SEED, `${path} ${phase} order`)),
      );
    const postCases = casesOf('post');
    const preCases = casesOf('pre');

    /** After auth: one authenticated socket per lane, reused until it closes. */
    const runPost = async (): Promise<void> => {
      const lanes: { socket: FuzzSocket | undefined; held: HeldSet }[] = Array.from({ length: scale === 1 ? 6 : 4 }, () => ({ socket: undefined, held: new HeldSet(vocabulary) }));
      await inLanes(postCases, lanes.length, async (c, index) => {
        const family = `ws ${path} after auth/${c.family}`;
        const lane = lanes[index] as (typeof lanes)[number];
        if (tally.exhausted) return tally.record(family, 'skipped', false, { id: c.id, note: 'skipped after too many hangs', expected: '-' });
        if (lane.socket === undefined || !lane.socket.open || lane.socket.uses >= 150) {
          void lane.socket?.close();
          // Every third lane also asks for snapshots and link notices: catch-up data follows its replies.
          const fresh = await openSocket(path, index % 2 === 0 ? 'json' : 'msgpack', {}, index % 3 === 2 ? 'snapshot=1&events=1' : '');
          const auth = fresh === undefined ? 'no greeting' : await fresh.exchange(Buffer.from(JSON.stringify({ action: 'auth', ...FUZZ_KEY })), false, 1, DEADLINE_MS);
          if (auth !== 'authenticated') return tally.record(family, `setup: ${auth}`, false, { id: c.id, note: 'could not open an authenticated socket', expected: 'authenticated' });
          lane.socket = fresh;
          lane.held = new HeldSet(vocabulary);
        }
        const socket = lane.socket as FuzzSocket;
        const expected = expectedAnswers(c, 'post', lane.held);
        let got = await socket.exchange(c.data, c.binary, c.fragments, DEADLINE_MS);
        if (got === 'subscription') {
          const reply = socket.lastReply as Message;
          if (expected.includes('subscription') && c.meaning.kind === 'change') {
            lane.held.apply(c.meaning.action, c.meaning.lists);
            if (!lane.held.matches(reply)) got = 'subscription (not the client’s own set in the stream’s reply shape)';
          }
          lane.held.adopt(reply);
        }
        tally.record(family, got, expected.includes(got), { id: c.id, note: c.note, input: inputOf(c), expected: expected.join(' | ') });
      });
      await Promise.all(lanes.map((l) => l.socket?.close()));
    };

    /** Before auth: sockets reused while they stay unauthenticated and open (a few cases each, well inside the auth deadline). */
    const runPre = async (): Promise<void> => {
      const lanes: (FuzzSocket | undefined)[] = Array.from({ length: scale === 1 ? 4 : 2 }, () => undefined);
      await inLanes(preCases, lanes.length, async (c, index) => {
        const family = `ws ${path} before auth/${c.family}`;
        if (tally.exhausted) return tally.record(family, 'skipped', false, { id: c.id, note: 'skipped after too many hangs', expected: '-' });
        const expected = expectedAnswers(c, 'pre', new HeldSet(vocabulary));
        let got = '';
        // A socket that outlived the auth deadline gets 404 rightly; that case is run again on a fresh one.
        for (let attempt = 0; attempt < 2; attempt++) {
          let socket = lanes[index];
          if (socket === undefined || !socket.open || socket.uses >= 12) {
            void socket?.close();
            socket = await openSocket(path, index % 2 === 0 ? 'msgpack' : 'json');
            lanes[index] = socket;
          }
          if (socket === undefined) {
            got = 'no greeting';
            break;
          }
          got = await socket.exchange(c.data, c.binary, c.fragments, DEADLINE_MS);
          if (got === 'authenticated') {
            void socket.close();
            lanes[index] = undefined;
          }
          if (got !== 'error 404 → close 1008' || attempt > 0) break;
        }
        tally.record(family, got, expected.includes(got), { id: c.id, note: c.note, input: inputOf(c), expected: expected.join(' | ') });
      });
      await Promise.all(lanes.map((s) => s?.close()));
    };

    /** Credentials in the upgrade headers, right and wrong. */
    const runHeaderAuth = async (): Promise<void> => {
      const d = new Dice(seedFor(SEED, `${path} header auth`));
      const probe = Buffer.from(JSON.stringify({ action: 'subscribe', [vocabulary.channels[0] as string]: [vocabulary.validSymbols[0]] }));
      const cases = Array.from({ length: stream.headerCases }, (_, i) => {
        const key = d.pick([FUZZ_KEY.key, 'witness', '', 'mallory', 'FUZZ', 'k'.repeat(4000), undefined]);
        // (HTTP trims a header value's outer whitespace, so a trailing space is not a different secret.)
        const secret = d.pick([FUZZ_KEY.secret, 'witness-secret', '', 'nope', FUZZ_KEY.secret.slice(0, -1), 's'.repeat(4000), undefined]);
        const good = (key === FUZZ_KEY.key && secret === FUZZ_KEY.secret) || (key === 'witness' && secret === 'witness-secret');
        const headers: Record<string, string> = {};
        if (key !== undefined) headers['APCA-API-KEY-ID'] = key;
        if (secret !== undefined) headers['APCA-API-SECRET-KEY'] = secret;
        // Without either header nothing happens until the client speaks: a subscribe then gets 401.
        const silent = key === undefined && secret === undefined;
        const expected = silent ? 'error 401' : good ? 'authenticated' : 'error 402 → close 1008';
        const encoding: 'json' | 'msgpack' = d.chance(0.5) ? 'json' : 'msgpack';
        return { id: `${path} header auth#${i}`, headers, silent, expected, encoding, note: `key ${JSON.stringify(key?.slice(0, 12))} secret ${JSON.stringify(secret === FUZZ_KEY.secret ? '<good>' : secret?.slice(0, 12))}` };
      });
      await inLanes(cases, scale === 1 ? 4 : 2, async (c) => {
        const socket = await openSocket(path, c.encoding, c.headers);
        let got: string;
        if (socket === undefined) got = 'no greeting';
        else if (c.silent) got = await socket.exchange(probe, false, 1, DEADLINE_MS);
        else got = await socket.settle(DEADLINE_MS);
        await socket?.close();
        tally.record(`ws ${path} header auth`, got, got === c.expected, { id: c.id, note: c.note, expected: c.expected });
      });
    };
    await Promise.all([timed(`${path} post`, runPost), timed(`${path} pre`, runPre), timed(`${path} header`, runHeaderAuth)]);
  };

  const rawFamilies = rawCases(port, gw.gateway.paths);
  const runRaw = async (): Promise<void> => {
    await inLanes(rawFamilies, 24, async (c) => {
      if (tally.exhausted) return tally.record(`raw tcp/${c.family}`, 'skipped', false, { id: c.id, note: 'skipped after too many hangs', expected: '-' });
      const got = await c.run(`${c.id} ${c.note}`);
      tally.record(`raw tcp/${c.family}`, got, c.expected.test(got), { id: c.id, note: c.note, expected: c.expected.source });
    });
  };

  const controlCases = controlPlaneCases(gw.base, STREAMS);
  const runControl = async (): Promise<void> => {
    await inLanes(controlCases, 4, async (c) => {
      if (tally.exhausted) return tally.record(`control plane/${c.family}`, 'skipped', false, { id: c.id, note: 'skipped after too many hangs', expected: '-' });
      const { key, detail } = await c.run();
      tally.record(`control plane/${c.family}`, key, c.expected.test(key), { id: c.id, note: detail === undefined ? c.note : `${c.note} — ${detail}`, expected: c.expected.source });
    });
  };

  const started = performance.now();
  async function timed(name: string, run: () => Promise<void>): Promise<void> {
    await run();
    if (process.env.FUZZ_DEBUG) t.comment(`${name} done after ${Math.round(performance.now() - started)} ms`);
  }
  await Promise.all([...STREAMS.map((stream) => runStream(stream)), timed('raw', runRaw), timed('control', runControl)]);
  const lateJoiners = await lateBookWitnesses;

  // ---- the verdicts ----
  const inputs: Record<string, number> = {};
  for (const [family, { cases }] of tally.families) {
    const door = family.startsWith('ws ') ? `websocket ${family.split(' ')[1] as string}` : (family.split('/')[0] as string);
    inputs[door] = (inputs[door] ?? 0) + cases;
  }
  t.comment(`fuzz summary ${JSON.stringify({ seed: SEED, inputs, outcomes: tally.summary() })}`);
  tally.assert(t, [...tally.families.keys()].sort());
  for (const stream of STREAMS) {
    const sent = inputs[`websocket ${stream.path}`] ?? 0;
    t.ok(sent >= stream.minInputs, `at least ${stream.minInputs} WebSocket inputs were sent to ${stream.path} (${sent})`);
  }

  clearInterval(publisher);
  const settle = async (w: StreamClient, done: () => boolean, what: string): Promise<void> => {
    await w.until(() => done() || w.closeCode !== undefined, what).catch(() => undefined);
  };
  const nameOf = (w: StreamClient, path: string): string => `the ${w.encoding === 'json' ? 'JSON' : 'msgpack'} witness on ${path}`;

  // Stocks: every trade of WIT, in order, ids exact.
  const lastId = nextId - 1n;
  for (const w of stockWitnesses) {
    const ids = (): bigint[] => w.messages.filter((m) => m.T === 't' && m.S === 'WIT').map((m) => BigInt(m.i as number | bigint));
    await settle(w, () => ids().at(-1) === lastId, `${nameOf(w, 'v2/iex')}'s last trade`);
    const got = ids();
    const gap = got.findIndex((id, k) => id !== firstId + BigInt(k));
    t.same(
      { count: got.length, firstMismatch: gap < 0 ? null : { at: gap, expected: String(firstId + BigInt(gap)), got: String(got[gap]) }, closeCode: w.closeCode ?? null },
      { count: Number(lastId - firstId + 1n), firstMismatch: null, closeCode: null },
      `${nameOf(w, 'v2/iex')} received every one of the ${lastId - firstId + 1n} trades in order, none lost or rounded, and stayed connected`,
    );
  }

  // Crypto: every trade of the pair in order by its 64-bit id with its fractional size, and the book as published.
  const cryptoLastId = cryptoNextId - 1n;
  for (const w of cryptoWitnesses) {
    const trades = (): Message[] => w.messages.filter((m) => m.T === 't' && m.S === CRYPTO_PAIR);
    await settle(w, () => BigInt((trades().at(-1)?.i as number | bigint | undefined) ?? -1) === cryptoLastId, `${nameOf(w, CRYPTO_PATH)}'s last trade`);
    const got = trades();
    const gap = got.findIndex((m, k) => BigInt(m.i as number | bigint) !== CRYPTO_FIRST_ID + BigInt(k) || m.s !== cryptoSize(CRYPTO_FIRST_ID + BigInt(k)));
    t.same(
      {
        count: got.length,
        firstMismatch: gap < 0 ? null : { at: gap, expected: { i: String(CRYPTO_FIRST_ID + BigInt(gap)), s: cryptoSize(CRYPTO_FIRST_ID + BigInt(gap)) }, got: { i: String(got[gap]?.i), s: got[gap]?.s } },
        closeCode: w.closeCode ?? null,
      },
      { count: Number(cryptoLastId - CRYPTO_FIRST_ID + 1n), firstMismatch: null, closeCode: null },
      `${nameOf(w, CRYPTO_PATH)} received every one of the ${cryptoLastId - CRYPTO_FIRST_ID + 1n} trades in order by id, 64-bit ids and fractional sizes exact, and stayed connected`,
    );
    // Before the test's first reset, the one book its subscription brought (the vendor's, or the gateway's copy of it).
    const steps = stepsOf(w, CRYPTO_PAIR);
    const before = steps.slice(0, Math.max(0, steps.length - bookSent.length));
    t.same(
      { before: before.map((step) => step.reset), count: steps.length - before.length, firstDifference: firstDifference(steps.slice(before.length), bookSent), book: replayBook(steps) },
      { before: [true], count: bookSent.length, firstDifference: null, book: { bids: sideList(book.bids), asks: sideList(book.asks) } },
      `${nameOf(w, CRYPTO_PATH)} got every one of the ${bookSent.length} book messages of ${CRYPTO_PAIR} (${book.resets} resets) as sent (both sides in each), in order, and its rebuilt book equals the vendor's`,
    );
  }

  const expectedBook = { bids: sideList(book.bids), asks: sideList(book.asks) };
  for (const w of lateJoiners) {
    // Its messages carry no id to wait for: it is waited for until its book is the vendor's (or it closed).
    await settle(w, () => JSON.stringify(replayBook(stepsOf(w, CRYPTO_PAIR))) === JSON.stringify(expectedBook), `${nameOf(w, CRYPTO_PATH)} (a late joiner)'s book`);
    const [first, ...rest] = stepsOf(w, CRYPTO_PAIR);
    const joinedAt = bookSent.length - rest.length;
    t.same(
      {
        firstIsReset: first?.reset ?? null,
        // Both sides, possibly empty: the Python SDK's model requires `b` and `a` (PROTOCOL-STREAMS §1.3).
        resetHasBothSides: first !== undefined && first.b !== null && first.a !== null,
        // The reset it was given is the book as of the updates it then got: the vendor's book at that point.
        reset: first === undefined ? null : replayBook([first]),
        updates: firstDifference(rest, bookSent.slice(joinedAt)),
        book: replayBook(first === undefined ? [] : [first, ...rest]),
        closeCode: w.closeCode ?? null,
      },
      { firstIsReset: true, resetHasBothSides: true, reset: replayBook(bookSent.slice(0, joinedAt)), updates: null, book: expectedBook, closeCode: null },
      `${nameOf(w, CRYPTO_PATH)} that joined the book of ${CRYPTO_PAIR} after ${joinedAt} vendor messages got it whole as one reset, then the ${rest.length} messages since exactly as sent, and its rebuilt book equals the vendor's`,
    );
  }

  // Options: every trade of the contract in order (sizes 1, 2, 3…), JSON transcoded from the vendor's msgpack.
  for (const w of optionWitnesses) {
    const sizes = (): number[] => w.messages.filter((m) => m.T === 't' && m.S === OPTION_CONTRACT).map((m) => Number(m.s));
    await settle(w, () => sizes().at(-1) === optionSeq, `${nameOf(w, OPTION_PATH)}'s last trade`);
    const got = sizes();
    const gap = got.findIndex((s, k) => s !== k + 1);
    t.same(
      { count: got.length, firstMismatch: gap < 0 ? null : { at: gap, expected: gap + 1, got: got[gap] }, closeCode: w.closeCode ?? null, encoding: w.raw.every((f) => f.isBinary === (w.encoding === 'msgpack')) },
      { count: optionSeq, firstMismatch: null, closeCode: null, encoding: true },
      `${nameOf(w, OPTION_PATH)} received every one of the ${optionSeq} trades of ${OPTION_CONTRACT} in order, in its own encoding, and stayed connected`,
    );
  }

  // News: each item exactly once per holder of any of its symbols (or of `*`), in order.
  for (const { client: w, holds } of newsWitnesses) {
    const wildcard = holds.includes('*');
    const expected = newsPublished.filter((item) => wildcard || item.symbols.some((s) => holds.includes(s))).map((item) => item.id);
    const ids = (): number[] => w.messages.filter((m) => m.T === 'n' && Number(m.id) >= NEWS_FIRST_ID).map((m) => Number(m.id));
    await settle(w, () => ids().length >= expected.length, `${nameOf(w, NEWS_PATH)}'s last item`);
    const got = ids();
    const gap = got.findIndex((id, k) => id !== expected[k]);
    t.same(
      { count: got.length, firstMismatch: gap < 0 ? null : { at: gap, expected: expected[gap] ?? null, got: got[gap] }, closeCode: w.closeCode ?? null },
      { count: expected.length, firstMismatch: null, closeCode: null },
      `${nameOf(w, NEWS_PATH)} holding ${JSON.stringify(holds)} received each of its ${expected.length} items (of ${newsPublished.length}) exactly once, in order, and stayed connected`,
    );
  }
  t.equal(simulator.stats.connections, vendorConnections, 'no vendor link reconnected');

  await Promise.all([...sockets].map((s) => s.close()));
  // DESIGN.md §11: a refused upgrade's socket is closed; no connection outlives its client.
  const witnesses = [...witnessesOf.values()].flat();
  const witnessPorts = new Set(witnesses.map((w) => (w.socket as unknown as { _socket: Socket })._socket.localPort));
  const leaked = (): Socket[] => [...serverSockets].filter((s) => !witnessPorts.has(s.remotePort));
  await eventually(() => leaked().length === 0, 'every server-side socket to close', 5000).catch(() => undefined);
  t.same(
    leaked().map((s) => RawPeer.labels.get(s.remotePort ?? 0) ?? `a socket from port ${s.remotePort}`),
    [],
    'no server-side socket is left open after its client went away',
  );
  // Leaked ones would hold the gateway's close (and this test) open: they are cut here, after the verdict.
  for (const socket of leaked()) socket.destroy();
  const hubCounts = (): Record<string, { connected: number; authenticated: number }> =>
    Object.fromEntries(STREAMS.map(({ path }) => [path, { connected: served(path).hub.stats.connected, authenticated: served(path).hub.stats.authenticated }]));
  const witnessCounts = Object.fromEntries(STREAMS.map(({ path }) => [path, { connected: witnessesOf.get(path)?.length ?? 0, authenticated: witnessesOf.get(path)?.length ?? 0 }]));
  await eventually(() => JSON.stringify(hubCounts()) === JSON.stringify(witnessCounts), 'every hub to hold only its witnesses').catch(() => undefined);
  t.same(hubCounts(), witnessCounts, 'no session leaked: the hub of every stream holds only its witnesses');
  const live = await fetch(`${gw.base}/health/live`);
  t.equal(live.status, 200, '/health/live answers 200');
  // @fastify/websocket logs a client's protocol error (WS_ERR_…) at level error: counted, not a gateway fault.
  const errors = gw.logs().filter((line) => /"level":(50|60)/.test(line));
  const clientFaults = errors.filter((line) => /"code":"WS_ERR_/.test(line));
  t.same(
    errors.filter((line) => !clientFaults.includes(line)).slice(0, 5),
    [],
    'no gateway fault was logged (a caught exception would have been a 500 to some client)',
  );
  t.comment(`client protocol errors logged at level "error": ${JSON.stringify(countBy(clientFaults, (l) => /"code":"(WS_ERR_[A-Z_0-9]+)"/.exec(l)?.[1] ?? '?'))}`);
  if (process.env.FUZZ_DEBUG) t.comment(`body done after ${Math.round(performance.now() - started)} ms`);
});

// ---- raw TCP ----

interface RawCase {
  id: string;
  family: string;
  note: string;
  expected: RegExp;
  /** runs the case; `label` names its connections in a leak report */
  run: (label: string) => Promise<string>;
}

/** `http N` once the answer's head arrives, and whether the server then closed the connection. */
async function httpAnswer(peer: RawPeer, mustClose: boolean): Promise<string> {
  const arrived = await peer.until(() => (peer.status !== undefined || peer.ended ? true : undefined), DEADLINE_MS);
  if (arrived === undefined) {
    peer.destroy();
    return 'timeout';
  }
  if (peer.status === undefined) return 'end';
  let key = `http ${peer.status}`;
  if (mustClose && peer.status >= 400 && !peer.ended) {
    const closed = await peer.until(() => (peer.ended ? true : undefined), DEADLINE_MS);
    if (closed === undefined) key += ' (left open)';
  }
  peer.destroy();
  return key;
}

/** A raw upgrade to a stream (the stock one unless told): resolves with the peer once the greeting arrived. */
async function rawUpgrade(port: number, auth: boolean, label: string, path = '/v2/iex', headers: Record<string, string | undefined> = {}): Promise<RawPeer | string> {
  const peer = await RawPeer.open(port, label);
  peer.write(upgradeRequest(path, headers));
  const greeted = await peer.until(() => (peer.messages().length > 0 || peer.ended ? true : undefined), DEADLINE_MS);
  if (greeted === undefined || peer.status !== 101) {
    peer.destroy();
    return `no greeting (http ${peer.status ?? '-'})`;
  }
  if (auth) {
    peer.write(buildFrame({ opcode: 1, payload: Buffer.from(JSON.stringify({ action: 'auth', ...FUZZ_KEY })) }));
    const ok = await peer.until(() => (peer.messages().length > 1 || peer.ended ? true : undefined), DEADLINE_MS);
    if (ok === undefined || peer.messages()[1]?.msg !== 'authenticated') {
      peer.destroy();
      return 'auth failed';
    }
  }
  return peer;
}

/**
 * What the server did after `bytes`: its control messages after the greeting (and auth), then
 * its close frame's code, "open" when it answered a ping sent behind the bytes (it took them as
 * fine), "end" when the connection ended without a close frame, or "timeout".
 */
async function wsAnswer(peer: RawPeer, bytes: Buffer, options: { ping: boolean; end: boolean; skip: number }): Promise<string> {
  peer.write(bytes);
  if (options.ping) peer.write(buildFrame({ opcode: 9, payload: Buffer.from('probe') }));
  if (options.end) peer.end();
  const done = await peer.until(() => (peer.closeCode() !== undefined || peer.ended || peer.frames.some((f) => f.opcode === 10) ? true : undefined), DEADLINE_MS);
  const messages = peer
    .messages()
    .slice(options.skip)
    .map((m) => (m.T === 'error' ? `error ${String(m.code)}` : m.T === 'subscription' ? 'subscription' : `other ${String(m.T)}`));
  const code = peer.closeCode();
  const last = done === undefined ? 'timeout' : code !== undefined ? `close ${code}` : peer.frames.some((f) => f.opcode === 10) ? 'open' : 'end';
  peer.destroy();
  return [...messages, last].join(' → ');
}

/**
 * The answer to an upgrade of a path that serves nothing: "http 404" when it is a 404 whose
 * problem body names every served path (DESIGN.md §9) and the socket was closed, else what is wrong.
 */
async function notServedAnswer(peer: RawPeer, served: readonly string[]): Promise<string> {
  const arrived = await peer.until(() => (peer.status !== undefined || peer.ended ? true : undefined), DEADLINE_MS);
  if (arrived === undefined || peer.status === undefined) {
    peer.destroy();
    return arrived === undefined ? 'timeout' : 'end';
  }
  const closed = await peer.until(() => (peer.ended ? true : undefined), DEADLINE_MS);
  peer.destroy();
  let key = `http ${peer.status}`;
  if (closed === undefined) return `${key} (left open)`;
  if (peer.status !== 404) return key;
  let body: { served?: unknown; detail?: unknown } | undefined;
  try {
    body = JSON.parse(peer.body.toString()) as typeof body;
  } catch (err) {
    if (!(err instanceof SyntaxError)) throw err;
  }
  const names = Array.isArray(body?.served) && served.every((p) => (body?.served as unknown[]).includes(p)) && typeof body?.detail === 'string' && served.every((p) => (body?.detail as string).includes(`/${p}`));
  if (!names) key += ' (the body does not name the served paths)';
  return key;
}

function rawCases(port: number, served: readonly string[]): RawCase[] {
  const d = new Dice(seedFor(SEED, 'raw tcp'));
  const cases: RawCase[] = [];
  const add = (family: string, note: string, expected: RegExp, run: (label: string) => Promise<string>): void => {
    cases.push({ id: `raw/${family}#${cases.filter((c) => c.family === family).length}`, family, note, expected, run });
  };
  const http4xxOrEnd = /^(http 4\d\d|end)$/;

  // Garbage where an HTTP request belongs.
  for (let i = 0; i < 60; i++) {
    const bytes = d.bytes(d.between(1, 300));
    bytes[0] = d.chance(0.5) ? d.int(0x20) : 0x80 + d.int(0x80); // never a method's first letter
    add('garbage instead of HTTP', `${bytes.length} random bytes: ${preview(bytes, true)}`, http4xxOrEnd, async (label) => {
      const peer = await RawPeer.open(port, label);
      peer.write(bytes);
      return httpAnswer(peer, false);
    });
  }
  const badRequests = [
    'GET / HTTP/9.9\r\n\r\n',
    'GET  / HTTP/1.1\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n',
    'POST /subscriptions HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n',
    'POST /subscriptions HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello',
    'POST /subscriptions HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
    'POST /subscriptions HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n',
    'GET / HTTP/1.1\r\nHost a\r\n\r\n',
    'GET / HTTP/1.1\r\nHost : a\r\n\r\n',
    'GET / HTTP/1.1\r\nX: a\u0000b\r\n\r\n',
    'GET / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n',
    `GET / HTTP/1.1\r\nX: ${'a'.repeat(20_000)}\r\n\r\n`,
    `GET /${'a'.repeat(20_000)} HTTP/1.1\r\n\r\n`,
    '\r\n\r\n\r\n\r\nGARBAGE\r\n\r\n',
    'GET\r\n\r\n',
    'get / http/1.1\r\n\r\n',
    'GET / HTTP/1.1\nHost: a\n\n\u0001',
  ];
  for (const text of badRequests) {
    add('malformed HTTP', JSON.stringify(text.slice(0, 80)), http4xxOrEnd, async (label) => {
      const peer = await RawPeer.open(port, label);
      peer.write(Buffer.from(text, 'latin1'));
      return httpAnswer(peer, false);
    });
  }

  // Upgrade requests that must be refused with an HTTP answer and a closed socket (DESIGN.md §11).
  const refused: [string, string, Record<string, string | undefined>][] = [
    ['no Sec-WebSocket-Key', '/v2/iex', { 'Sec-WebSocket-Key': undefined }],
    ['a key that is not 16 bytes', '/v2/iex', { 'Sec-WebSocket-Key': 'abc' }],
    ['version 7', '/v2/iex', { 'Sec-WebSocket-Version': '7' }],
    ['version 14', '/v2/iex', { 'Sec-WebSocket-Version': '14' }],
    ['version abc', '/v2/iex', { 'Sec-WebSocket-Version': 'abc' }],
    ['Upgrade: foo', '/v2/iex', { Upgrade: 'foo' }],
    ['a feed not served', '/v2/sip', {}],
    ['an unknown path', '/nope', {}],
    ['a bad query', '/v2/iex?snapshot=2', {}],
    ['a bad query on crypto', '/v1beta3/crypto/us?events=yes', {}],
    ['a bad query on options', '/v1beta1/indicative?snapshot=2', {}],
    ['a bad query on news', '/v1beta1/news?snapshot=%00', {}],
    ['no Sec-WebSocket-Key on crypto', '/v1beta3/crypto/us', { 'Sec-WebSocket-Key': undefined }],
    ['version 7 on news', '/v1beta1/news', { 'Sec-WebSocket-Version': '7' }],
    ['a non-stream route', '/health/live', {}],
    ['percent garbage in the path', '/v2/%zz', {}],
  ];
  for (const [note, path, headers] of refused) {
    for (let k = 0; k < 3; k++) {
      add('refused upgrades', note, /^http 4\d\d$/, async (label) => {
        const peer = await RawPeer.open(port, label);
        peer.write(upgradeRequest(path, headers));
        return httpAnswer(peer, true);
      });
    }
  }

  // Upgrades of paths that serve no stream here: known paths not in STREAMS, near misses of the
  // served ones, unknown ones. Each gets a 404 naming the served paths, and its socket closed.
  const unserved = [
    '/v2/sip',
    '/v2/test',
    '/v2/delayed_sip',
    '/v1beta1/boats',
    '/v1beta1/overnight',
    '/v1beta1/opra',
    '/v1beta3/crypto/us-1',
    '/v1beta3/crypto/eu-1',
    '/v1beta3/crypto',
    '/v1beta3/crypto/xx',
    '/v1beta3/crypto/US',
    '/v1beta3/crypto/us/x',
    '/v1beta2/crypto/us',
    '/v1beta1/crypto-perps/global',
    '/v1beta1/Indicative',
    '/V1beta1/news',
    '/v1beta1/news/',
    '/v1beta1/news/x',
    '/v2',
    '/v1beta1',
    '/nope',
    '/',
  ];
  for (const path of unserved) {
    for (let k = 0; k < 2; k++) {
      add('unserved paths', path, /^http 404$/, async (label) => {
        const peer = await RawPeer.open(port, label);
        peer.write(upgradeRequest(path, d.chance(0.5) ? { 'Content-Type': 'application/msgpack' } : {}));
        return notServedAnswer(peer, served);
      });
    }
  }

  // Good upgrades of every served path, with and without msgpack and query flags: greeted, then authenticated.
  for (const path of served) {
    for (const query of ['', '?snapshot=1', '?events=1', '?snapshot=true&events=0']) {
      const headers = d.chance(0.5) ? { 'Content-Type': 'application/msgpack' } : {};
      add('upgrades of every served path', `/${path}${query} ${JSON.stringify(headers)}`, /^authenticated$/, async (label) => {
        const peer = await rawUpgrade(port, true, label, `/${path}${query}`, headers);
        if (typeof peer === 'string') return peer;
        peer.destroy();
        return 'authenticated';
      });
    }
  }

  // Broken WebSocket frames after a good upgrade, before and after auth.
  const text = (s: string): Buffer => Buffer.from(s);
  const frameCases: [string, () => Buffer, RegExp, { end?: boolean; ping?: boolean; beforeAuth?: RegExp }?][] = [];
  for (const opcode of [3, 4, 5, 6, 7, 11, 12, 13, 14, 15]) frameCases.push([`opcode ${opcode}`, () => buildFrame({ opcode, payload: text('{}') }), /^close 1002$/]);
  frameCases.push(['an unmasked client frame', () => buildFrame({ opcode: 1, masked: false, payload: text('{"action":"subscribe","trades":["AAPL"]}') }), /^close 1002$/]);
  for (const rsv of [1, 2, 4, 7]) frameCases.push([`reserved bits ${rsv}`, () => buildFrame({ opcode: 1, rsv, payload: text('{}') }), /^close 1002$/]);
  frameCases.push(['a length of 2^62', () => buildFrame({ opcode: 1, declaredLength: 2n ** 62n, payload: text('{}') }), /^close 1009$/]);
  frameCases.push(['a length of 2^63 + 5', () => buildFrame({ opcode: 2, declaredLength: 2n ** 63n + 5n }), /^close (1009|1002)$/]);
  frameCases.push(['a length past 4× MAX_MESSAGE_BYTES', () => buildFrame({ opcode: 2, declaredLength: BigInt(4 * MAX_MESSAGE_BYTES + 1) }), /^close 1009$/]);
  frameCases.push(['a ping of 126 bytes', () => buildFrame({ opcode: 9, payload: Buffer.alloc(126, 0x61) }), /^close 1002$/]);
  frameCases.push(['a fragmented ping', () => buildFrame({ opcode: 9, fin: false, payload: text('x') }), /^close 1002$/]);
  frameCases.push(['a continuation with no message', () => buildFrame({ opcode: 0, payload: text('{}') }), /^close 1002$/]);
  frameCases.push([
    'a new message inside a fragmented one',
    () => Buffer.concat([buildFrame({ opcode: 1, fin: false, payload: text('{"act') }), buildFrame({ opcode: 1, payload: text('ion":1}') })]),
    /^close 1002$/,
  ]);
  frameCases.push(['a close frame of 1 byte', () => buildFrame({ opcode: 8, payload: Buffer.from([0x03]) }), /^close 1002$/]);
  for (const code of [0, 999, 1004, 1005, 1006, 1015, 1100, 2000, 2999, 5000, 65535]) {
    frameCases.push([`a close with code ${code}`, () => buildFrame({ opcode: 8, payload: closePayload(code) }), /^close 1002$/]);
  }
  for (const code of [1000, 1001, 3000, 4999]) {
    frameCases.push([`a close with code ${code}`, () => buildFrame({ opcode: 8, payload: closePayload(code, text('bye')) }), new RegExp(`^(close ${code}|end)$`)]);
  }
  frameCases.push(['a close reason that is not UTF-8', () => buildFrame({ opcode: 8, payload: closePayload(1000, Buffer.from([0xc0, 0xaf])) }), /^close 1007$/]);
  frameCases.push(['a text frame that is not UTF-8', () => buildFrame({ opcode: 1, payload: Buffer.from([0x7b, 0xed, 0xa0, 0x80, 0x7d]) }), /^close 1007$/]);
  frameCases.push([
    'invalid UTF-8 split across fragments',
    () => Buffer.concat([buildFrame({ opcode: 1, fin: false, payload: Buffer.from([0x22, 0xe2]) }), buildFrame({ opcode: 0, payload: Buffer.from([0x28, 0xa1, 0x22]) })]),
    /^close 1007$/,
  ]);
  frameCases.push(['a compressed frame without the extension', () => buildFrame({ opcode: 1, rsv: 4, payload: Buffer.from([0xaa, 0x56, 0x4a]) }), /^close 1002$/]);
  frameCases.push(['a good ping', () => buildFrame({ opcode: 9, payload: text('hello') }), /^open$/, { ping: false }]);
  frameCases.push(['a frame cut inside its header, then the end', () => Buffer.from([0x81]), /^end$/, { end: true, ping: false }]);
  frameCases.push(['a frame cut inside its mask, then the end', () => Buffer.from([0x81, 0x85, 0x01]), /^end$/, { end: true, ping: false }]);
  frameCases.push(['a frame cut inside its payload, then the end', () => buildFrame({ opcode: 1, payload: text('{"action":"subscribe","trades":["AAPL"]}') }).subarray(0, 20), /^end$/, { end: true, ping: false }]);
  // Before auth a header claiming more than 4 KiB is refused from the header alone (close 1009); after, it is just cut short.
  frameCases.push(['a frame claiming 60000 bytes with 10, then the end', () => buildFrame({ opcode: 2, declaredLength: 60_000n, payload: Buffer.alloc(10) }), /^end$/, { end: true, ping: false, beforeAuth: /^close 1009$/ }]);
  frameCases.push(['the end with no close frame', () => Buffer.alloc(0), /^end$/, { end: true, ping: false }]);
  for (const [note, bytes, expected, options] of frameCases) {
    for (const auth of [false, true]) {
      add(`broken frames ${auth ? 'after' : 'before'} auth`, note, (!auth && options?.beforeAuth) || expected, async (label) => {
        const peer = await rawUpgrade(port, auth, label);
        if (typeof peer === 'string') return peer;
        return wsAnswer(peer, bytes(), { ping: options?.ping ?? true, end: options?.end ?? false, skip: auth ? 2 : 1 });
      });
    }
  }

  // Early closes: the client goes away at every step; only the hub's count afterwards can tell.
  const early: [string, (peer: RawPeer) => Promise<void>][] = [
    ['connect, then close with nothing sent', async () => undefined],
    ['half an upgrade request, then close', async (peer) => peer.write(upgradeRequest('/v2/iex').subarray(0, 40))],
    ['a whole upgrade request, then close at once', async (peer) => peer.write(upgradeRequest('/v2/iex'))],
    [
      'upgrade, greeting, half a frame, then close',
      async (peer) => {
        peer.write(upgradeRequest('/v2/iex'));
        await peer.until(() => (peer.messages().length > 0 || peer.ended ? true : undefined), DEADLINE_MS);
        peer.write(buildFrame({ opcode: 1, payload: Buffer.from('{"action":"auth","key":"fuzz"}') }).subarray(0, 12));
      },
    ],
    [
      'upgrade, a close frame, then close without waiting',
      async (peer) => {
        peer.write(upgradeRequest('/v2/iex'));
        await peer.until(() => (peer.messages().length > 0 || peer.ended ? true : undefined), DEADLINE_MS);
        peer.write(buildFrame({ opcode: 8, payload: closePayload(1000) }));
      },
    ],
    [
      'upgrade, auth, subscribe, then close without a close frame',
      async (peer) => {
        peer.write(upgradeRequest('/v2/iex'));
        await peer.until(() => (peer.messages().length > 0 || peer.ended ? true : undefined), DEADLINE_MS);
        peer.write(buildFrame({ opcode: 1, payload: Buffer.from(JSON.stringify({ action: 'auth', ...FUZZ_KEY })) }));
        peer.write(buildFrame({ opcode: 1, payload: Buffer.from('{"action":"subscribe","trades":["WIT","AAPL"],"quotes":["*"]}') }));
        await peer.until(() => (peer.messages().length > 2 || peer.ended ? true : undefined), DEADLINE_MS);
      },
    ],
  ];
  for (const [note, act] of early) {
    for (let k = 0; k < 6; k++) {
      add('early closes', note, /^client closed$/, async (label) => {
        const peer = await RawPeer.open(port, label);
        await act(peer);
        peer.destroy();
        return 'client closed';
      });
    }
  }
  for (let k = 0; k < 4; k++) {
    add('early closes', 'half an upgrade request, then our FIN', http4xxOrEnd, async (label) => {
      const peer = await RawPeer.open(port, label);
      peer.write(upgradeRequest('/v2/iex').subarray(0, 30));
      peer.end();
      return httpAnswer(peer, false);
    });
  }

  // Silent connections: upgraded, greeted, then nothing — the auth deadline must close them.
  for (let k = 0; k < 20; k++) {
    add('silent after upgrade', 'sends nothing after the upgrade', /^error 404 → close 1008$/, async (label) => {
      const peer = await rawUpgrade(port, false, label);
      if (typeof peer === 'string') return peer;
      const done = await peer.until(() => (peer.closeCode() !== undefined || peer.ended ? true : undefined), CLIENT_AUTH_TIMEOUT_MS + DEADLINE_MS);
      const messages = peer
        .messages()
        .slice(1)
        .map((m) => (m.T === 'error' ? `error ${String(m.code)}` : `other ${String(m.T)}`));
      const code = peer.closeCode();
      peer.destroy();
      return [...messages, done === undefined ? 'timeout' : code !== undefined ? `close ${code}` : 'end'].join(' → ');
    });
  }
  return cases;
}

// ---- control plane ----

interface ControlCase {
  id: string;
  family: string;
  note: string;
  expected: RegExp;
  run: () => Promise<{ key: string; detail?: string }>;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const VALID_CORRELATION = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * Sends one request and reduces the answer to "http N", adding what is wrong with it: a 4xx/5xx
 * that is not problem+json with its status and correlation id, a correlation id not echoed (or
 * not replaced by a UUID when invalid).
 */
function controlRequest(base: string, method: string, path: string, headers: Record<string, string | string[]>, body?: Buffer): Promise<{ key: string; detail?: string }> {
  const url = new URL(base);
  return new Promise((resolve) => {
    const req = httpRequest({ host: url.hostname, port: url.port, method, path, headers: { connection: 'close', ...headers }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', () => resolve({ key: 'response error' }));
      res.on('end', () => {
        clearTimeout(timer);
        const status = res.statusCode ?? 0;
        const problems: string[] = [];
        const sent = headers['x-correlation-id'];
        const echoed = res.headers['x-correlation-id'];
        if (typeof sent === 'string' && VALID_CORRELATION.test(sent)) {
          if (echoed !== sent) problems.push('correlation id not echoed');
        } else if (typeof echoed !== 'string' || !UUID.test(echoed)) problems.push('no generated correlation id');
        if (status >= 400 && method !== 'HEAD') {
          const type = String(res.headers['content-type'] ?? '');
          let problem: Record<string, unknown> | undefined;
          try {
            problem = JSON.parse(Buffer.concat(chunks).toString()) as Record<string, unknown>;
          } catch (err) {
            if (!(err instanceof SyntaxError)) throw err;
          }
          if (!type.startsWith('application/problem+json')) problems.push(`content-type ${type}`);
          else if (problem?.status !== status || problem?.correlationId !== echoed || typeof problem?.title !== 'string' || typeof problem?.detail !== 'string') {
            problems.push('problem body incomplete');
          }
        }
        const text = Buffer.concat(chunks).toString();
        resolve({ key: `http ${status}${problems.length > 0 ? ` (${problems.join(', ')})` : ''}`, detail: status >= 400 ? text.slice(0, 200) : undefined });
      });
    });
    const timer = setTimeout(() => {
      req.destroy();
      resolve({ key: 'timeout' });
    }, DEADLINE_MS + 10_000);
    req.on('error', (err) => {
      clearTimeout(timer);
      resolve({ key: `request error ${(err as NodeJS.ErrnoException).code ?? err.message}` });
    });
    req.end(body);
  });
}

function controlPlaneCases(base: string, streams: readonly FuzzStream[]): ControlCase[] {
  const d = new Dice(seedFor(SEED, 'control plane'));
  const cases: ControlCase[] = [];
  const add = (family: string, note: string, expected: RegExp, run: () => Promise<{ key: string; detail?: string }>): void => {
    cases.push({ id: `control/${family}#${cases.filter((c) => c.family === family).length}`, family, note, expected, run });
  };
  const correlation = (): string | string[] | undefined =>
    d.pick<string | string[] | undefined>([undefined, 'fuzz-1', 'a'.repeat(128), 'a'.repeat(129), '', 'a b', 'a/b', 'caf\u00e9', 'x;y', ['one', 'two'], '..', 'id:with:colons', '\t']);
  const headersWith = (extra: Record<string, string | undefined>): Record<string, string | string[]> => {
    const out: Record<string, string | string[]> = {};
    const id = correlation();
    if (id !== undefined) out['x-correlation-id'] = id;
    for (const [k, v] of Object.entries(extra)) if (v !== undefined) out[k] = v;
    return out;
  };
  const auth = `Bearer ${CONTROL_TOKEN}`;

  const bodies: [string, () => string, RegExp][] = [
    ['malformed JSON', () => d.pick(['{', '{"action":"subscribe",', "{'action':'subscribe'}", '{"action":"subscribe","trades":["AAPL",]}', 'nul', '{"a":1}}', '\u0000', '{"action":"subscribe"}x']), /^http 400$/],
    ['not an object', () => JSON.stringify(d.pick<unknown>([5, 'subscribe', [1], null, true, [{ action: 'subscribe' }]])), /^http 400$/],
    ['action wrong', () => JSON.stringify({ action: d.pick<unknown>([5, 'Subscribe', '', null, ['subscribe'], 'dance']), trades: ['AAPL'] }), /^http 400$/],
    ['a list of the wrong type', () => JSON.stringify({ action: 'subscribe', [d.pick(CHANNELS)]: d.pick<unknown>(['AAPL', 5, [1, 2], [null], [['AAPL']], { 0: 'A' }, true]) }), /^http 400$/],
    ['an invalid symbol', () => JSON.stringify({ action: 'subscribe', [d.pick(CHANNELS)]: [d.pick(INVALID_SYMBOLS)] }), /^http 400$/],
    ['an unknown or foreign channel', () => JSON.stringify({ action: 'subscribe', [d.pick([...FOREIGN_CHANNELS, 'foo', 'Trades'])]: ['AAPL'] }), /^http 400$/],
    ['10,001 symbols (over maxItems)', () => JSON.stringify({ action: 'subscribe', trades: Array.from({ length: 10_001 }, (_, i) => `P${i}`) }), /^http 400$/],
    ['10,000 nested arrays', () => '['.repeat(10_000) + ']'.repeat(10_000), /^http 400$/],
    ['a trades list nested 10,000 deep', () => `{"action":"subscribe","trades":${'['.repeat(10_000)}"AAPL"${']'.repeat(10_000)}}`, /^http 400$/],
    ['10,000 nested objects', () => '{"a":'.repeat(10_000) + '1' + '}'.repeat(10_000), /^http 400$/],
    ['"__proto__" keys', () => d.pick(['{"__proto__":{"action":"subscribe"}}', '{"action":"subscribe","__proto__":{"trades":["AAPL"]}}', '{"action":"subscribe","constructor":{"prototype":{"x":1}}}']), /^http 400$/],
    ['an empty body', () => '', /^http 400$/],
    ['a body over 1 MiB', () => JSON.stringify({ action: 'subscribe', trades: Array.from({ length: 1 }, () => 'A'.repeat(1_100_000)) }), /^http 413$/],
    ['a valid change', () => JSON.stringify({ action: d.pick(['subscribe', 'unsubscribe']), [d.pick(CHANNELS)]: [d.pick(VALID_SYMBOLS)] }), /^http 20[02]$/],
    ['a valid change of 3,000 symbols', () => JSON.stringify({ action: d.pick(['subscribe', 'unsubscribe']), quotes: Array.from({ length: 3000 }, (_, i) => `P${i}`) }), /^http 20[02]$/],
  ];
  const weights = [30, 15, 15, 20, 20, 15, 3, 3, 3, 3, 6, 4, 2, 12, 2];
  bodies.forEach(([note, make, expected], index) => {
    for (let k = 0; k < (weights[index] as number); k++) {
      const body = Buffer.from(make());
      const headers = headersWith({ authorization: auth, 'content-type': 'application/json' });
      add('POST /subscriptions bodies', `${note}: ${preview(body, false)}`, expected, () => controlRequest(base, 'POST', '/subscriptions', headers, body));
    }
  });
  // The same on every stream, named by `stream` (DESIGN.md §9): each kind's own channels and symbols.
  const q = (value: string): string => encodeURIComponent(value);
  for (const { path, vocabulary: v } of streams) {
    const streamBodies: [string, () => unknown, RegExp][] = [
      ['a valid change', () => ({ action: d.pick(['subscribe', 'unsubscribe']), stream: path, [d.pick(v.channels)]: [d.pick(v.validSymbols)] }), /^http 20[02]$/],
      ['an invalid symbol', () => ({ action: 'subscribe', stream: path, [d.pick(v.channels)]: [d.pick(v.validSymbols), d.pick(v.invalidSymbols)] }), /^http 400$/],
      ['a foreign channel', () => ({ action: 'subscribe', stream: path, [d.pick(v.foreignChannels)]: [d.pick(v.validSymbols)] }), /^http 400$/],
      ['a list of the wrong type', () => ({ action: 'subscribe', stream: path, [d.pick(v.channels)]: d.pick<unknown>([v.validSymbols[0], 5, [1], [null], [[v.validSymbols[0]]], true]) }), /^http 400$/],
    ];
    for (const [channel, code] of Object.entries(v.wildcardRefusals)) {
      if (code !== undefined) streamBodies.push([`* on ${channel}`, () => ({ action: 'subscribe', stream: path, [channel]: ['*'] }), /^http 400$/]);
    }
    for (const [note, make, expected] of streamBodies) {
      for (let k = 0; k < 4; k++) {
        const body = Buffer.from(JSON.stringify(make()));
        const headers = headersWith({ authorization: auth, 'content-type': 'application/json' });
        add('POST /subscriptions on every stream', `${path}: ${note}: ${preview(body, false)}`, expected, () => controlRequest(base, 'POST', '/subscriptions', headers, body));
      }
    }
    const headers = headersWith({ authorization: auth });
    add('GET /subscriptions on every stream', path, /^http 200$/, () => controlRequest(base, 'GET', `/subscriptions?stream=${q(path)}`, headers));
  }
  for (let k = 0; k < 12; k++) {
    const named = d.pick(['v2/sip', 'v1beta1/opra', 'v1beta3/crypto/us-1', 'V2/IEX', 'v1beta3/crypto', 'nope', 'v1beta1/news/x']);
    const body = Buffer.from(JSON.stringify({ action: 'subscribe', stream: named, trades: ['AAPL'] }));
    add('streams not served', `POST ${named}`, /^http 404$/, () => controlRequest(base, 'POST', '/subscriptions', headersWith({ authorization: auth, 'content-type': 'application/json' }), body));
    add('streams not served', `GET ${named}`, /^http 404$/, () => controlRequest(base, 'GET', `/subscriptions?stream=${q(named)}`, headersWith({ authorization: auth })));
  }
  for (let k = 0; k < 8; k++) {
    const named = d.pick<unknown>([5, null, true, ['v2/iex'], { path: 'v2/iex' }, 'v'.repeat(65)]);
    const body = Buffer.from(JSON.stringify({ action: 'subscribe', stream: named, trades: ['AAPL'] }));
    add('streams not served', `POST stream ${JSON.stringify(named).slice(0, 30)}`, /^http 400$/, () => controlRequest(base, 'POST', '/subscriptions', headersWith({ authorization: auth, 'content-type': 'application/json' }), body));
  }
  const contentTypes: [string | undefined, RegExp][] = [
    ['text/plain', /^http 415$/],
    ['application/x-www-form-urlencoded', /^http 415$/],
    ['multipart/form-data; boundary=x', /^http 415$/],
    ['application/msgpack', /^http 415$/],
    ['application/xml', /^http 415$/],
    ['', /^http (400|415)$/],
    [undefined, /^http (400|415)$/],
    ['application/json; charset=utf-16', /^http (400|415|20[02])$/],
    ['application/jsonx', /^http (400|415)$/],
    ['Application/JSON', /^http (400|20[02])$/],
  ];
  for (let k = 0; k < 40; k++) {
    const [type, expected] = d.pick(contentTypes);
    const body = Buffer.from('{"action":"subscribe","trades":["AAPL"]}');
    const headers = headersWith({ authorization: auth, 'content-type': type });
    add('bad content types', `content-type ${JSON.stringify(type)}`, expected, () => controlRequest(base, 'POST', '/subscriptions', headers, body));
  }
  for (let k = 0; k < 30; k++) {
    const token = d.pick([undefined, 'Bearer', 'Bearer ', 'Bearer wrong', `bearer ${CONTROL_TOKEN}`, `Bearer ${CONTROL_TOKEN}x`, `Basic ${CONTROL_TOKEN}`, 'Bearer ' + 'x'.repeat(5000)]);
    const path = d.pick(['/subscriptions', '/restart']);
    const method = path === '/restart' ? 'POST' : d.pick(['GET', 'POST']);
    const body = method === 'POST' && path === '/subscriptions' ? Buffer.from('{"action":"subscribe","trades":["AAPL"]}') : undefined;
    const headers = headersWith({ authorization: token, 'content-type': body === undefined ? undefined : 'application/json' });
    add('bad tokens', `${method} ${path} with ${JSON.stringify(token?.slice(0, 20))}`, /^http 401$/, () => controlRequest(base, method, path, headers, body));
  }

  // Random methods and paths, never with the token (so POST /restart can only be refused).
  const paths = ['/health', '/health/live', '/health/ready', '/subscriptions', '/restart', '/metrics', '/openapi.yaml', '/v2/iex', '/v2/sip', '/', '/health/', '//health', '/HEALTH', '/health/live/../ready', ...streams.map((s) => `/${s.path}`), '/v1beta1/opra', '/streams'];
  for (let k = 0; k < 120; k++) {
    const method = d.pick(['GET', 'GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD', 'PROPFIND', 'SEARCH']);
    let path = d.pick(paths);
    const r = d.int(6);
    if (r === 0) path += `/${encodeURIComponent(d.text(d.between(1, 12)))}`;
    else if (r === 1) path += d.pick(['%00', '%ff', '%zz', '%', '%2e%2e/', ';x', '?a=%zz', '?' + 'q'.repeat(5000), '#frag']);
    else if (r === 2) path = `/${'x/'.repeat(d.between(1, 2000))}`;
    else if (r === 3) path += `?snapshot=${d.pick(['2', '', 'yes', '%00'])}&events=${d.pick(['1', 'x'])}`;
    const body = method === 'POST' || method === 'PUT' || method === 'PATCH' ? Buffer.from(d.chance(0.5) ? '{"x":1}' : d.text(20)) : undefined;
    const headers = headersWith({ 'content-type': body === undefined ? undefined : d.pick(['application/json', 'text/plain']) });
    // Anything but a 5xx; the stream path answers plain HTTP with 426.
    add('random methods and paths', `${method} ${path.slice(0, 80)}`, /^http (200|401|400|404|405|413|415|426|503)$/, () => controlRequest(base, method, path, headers, body));
  }
  return cases;
}
