/**
 * Every Alpaca market-data stream tickmux knows, and what each kind of stream carries (DESIGN.md
 * §9, PROTOCOL.md §1, PROTOCOL-STREAMS.md). This is the one place that knows a kind: its paths,
 * subscribe keys, reply shape, message types, float and timestamp fields, symbol syntax,
 * encodings and which messages are state. Everything else asks a `StreamKind` and never branches
 * on a stream's name.
 */
import type { Encoding } from './frame.js';

/** Every channel (subscribe key) of every kind, stocks' first in the vendor's order. */
export const CHANNELS = ['trades', 'quotes', 'bars', 'updatedBars', 'dailyBars', 'statuses', 'lulds', 'imbalances', 'orderbooks', 'news'] as const;
export type Channel = (typeof CHANNELS)[number];

/** The wildcard symbol: every symbol of the channel. */
export const WILDCARD = '*';

/**
 * Keys the vendor knows on some stream but never subscribes to on the given one. The Go SDK sends
 * every one of them on every change (nil or empty): empty is accepted, symbols are refused (410).
 * `corrections`/`cancelErrors` are reply-only keys; `pricing` is the crypto-perpetuals channel.
 */
const VENDOR_KEYS: ReadonlySet<string> = new Set([...CHANNELS, 'corrections', 'cancelErrors', 'pricing']);

export type StreamKindName = 'stocks' | 'crypto' | 'options' | 'news';

/** Fields of a message type that are float64 on the wire, and float fields inside its list items. */
export interface FloatFields {
  /** top-level fields */
  readonly fields: ReadonlySet<string>;
  /** field holding a list of maps → the float fields of each map (order-book levels) */
  readonly items?: Readonly<Record<string, ReadonlySet<string>>>;
}

/** What one kind of stream carries. */
export interface StreamKind {
  readonly name: StreamKindName;
  /** stream paths of this kind, as in `wss://stream.data.alpaca.markets/{path}` */
  readonly paths: readonly string[];
  /** subscribe keys, in the vendor's order */
  readonly channels: readonly Channel[];
  /** the `subscription` reply's keys after `T`, in the vendor's order, each with the channel it lists */
  readonly replyKeys: readonly (readonly [string, Channel])[];
  /** data type letter → the channel a client subscribes to for it */
  readonly typeToChannel: Readonly<Record<string, Channel>>;
  /** per data type: the fields that stay float64 when JSON → msgpack (`127` is an integer token) */
  readonly floatFields: Readonly<Record<string, FloatFields>>;
  /** top-level fields of data messages that hold a timestamp (msgpack ext −1, JSON RFC 3339) */
  readonly timestampFields: ReadonlySet<string>;
  /** encodings the vendor serves on this kind's paths */
  readonly encodings: readonly Encoding[];
  /** types whose newest message may replace a queued older one for the same symbol (a lagging client) */
  readonly conflatable: ReadonlySet<string>;
  /** types a last-value cache keeps per symbol for snapshots */
  readonly lastValueTypes: ReadonlySet<string>;
  /** channels whose silence on a subscribed link means it went mute (the stale watchdog); sparse ones are never judged */
  readonly flowingChannels: readonly Channel[];
  /** where a data message names its symbols: `S` (one) or `symbols` (a list: news, which has no `S`) */
  readonly symbolsField: 'S' | 'symbols';
  /** channels on which `*` is refused, with the vendor's code */
  readonly wildcardRefusals: Readonly<Partial<Record<Channel, number>>>;
  /** the syntax of this kind's symbols (`*` aside): what `isValidSymbol` checks, and what asyncapi.yaml says */
  readonly symbolPattern: RegExp;
  /** whether `value` is a symbol (or `*`) this kind accepts; anything else is 400 invalid syntax */
  isValidSymbol(value: unknown): value is string;
}

const floats = (...fields: string[]): FloatFields => ({ fields: new Set(fields) });
const BAR_FLOATS = floats('o', 'h', 'l', 'c', 'vw');

/**
 * A stock ticker: upper-case letters, digits and the class/suffix separators the US tapes use
 * (BRK.B, BF/B, TEST-A), 1 to 21 characters.
 */
const TICKER = /^[A-Z0-9][A-Z0-9./\-^=]{0,20}$/;
/**
 * Crypto pairs are `BASE/QUOTE` in upper case (BTC/USD, ETH/BTC, SOL/USDT). VERIFY: the vendor's
 * answer to `BTCUSD` on v1beta3 is undocumented; like any malformed symbol it is 400 here.
 */
const CRYPTO_PAIR = /^[A-Z0-9]{1,10}\/[A-Z0-9]{1,10}$/;
/**
 * An OCC contract as Alpaca spells it: root (1–6 letters, no padding), YYMMDD, C or P, strike ×
 * 1000 in 8 digits. VERIFY: lower-case or padded forms are treated as malformed (400).
 */
const OCC_CONTRACT = /^[A-Z]{1,6}\d\d(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])[CP]\d{8}$/;

function symbolCheck(pattern: RegExp): (value: unknown) => value is string {
  return (value: unknown): value is string => typeof value === 'string' && (value === WILDCARD || pattern.test(value));
}

/** The stock stream's subscribe keys, as a tuple type for schemas that list them. */
export const STOCK_CHANNELS = ['trades', 'quotes', 'bars', 'updatedBars', 'dailyBars', 'statuses', 'lulds', 'imbalances'] as const satisfies readonly Channel[];

export const STOCKS: StreamKind = Object.freeze({
  name: 'stocks',
  paths: ['v2/iex', 'v2/sip', 'v2/delayed_sip', 'v2/test', 'v1beta1/boats', 'v1beta1/overnight'],
  channels: STOCK_CHANNELS,
  replyKeys: [
    ['trades', 'trades'],
    ['quotes', 'quotes'],
    ['bars', 'bars'],
    ['updatedBars', 'updatedBars'],
    ['dailyBars', 'dailyBars'],
    ['statuses', 'statuses'],
    ['lulds', 'lulds'],
    ['corrections', 'trades'], // corrections and cancel/errors follow trades (DOC-STK)
    ['cancelErrors', 'trades'],
    ['imbalances', 'imbalances'],
  ],
  typeToChannel: Object.freeze({ t: 'trades', c: 'trades', x: 'trades', q: 'quotes', b: 'bars', u: 'updatedBars', d: 'dailyBars', s: 'statuses', l: 'lulds', i: 'imbalances' }),
  floatFields: Object.freeze({
    t: floats('p'),
    q: floats('ap', 'bp'),
    b: BAR_FLOATS,
    u: BAR_FLOATS,
    d: BAR_FLOATS,
    c: floats('op', 'cp'),
    x: floats('p'),
    l: floats('u', 'd'),
    i: floats('p'),
  }),
  // News dates too, as before streams had kinds: harmless on stocks and kept for identical bytes.
  timestampFields: new Set(['t', 'created_at', 'updated_at']),
  encodings: ['json', 'msgpack'],
  conflatable: new Set(['q', 'b', 'u', 'd', 's', 'l']),
  // Corrections and cancels refer to earlier trades; they are not "the last trade".
  lastValueTypes: new Set(['t', 'q', 'b', 'u', 'd', 's', 'l', 'i']),
  flowingChannels: ['trades', 'quotes'],
  symbolsField: 'S',
  wildcardRefusals: Object.freeze({}),
  symbolPattern: TICKER,
  isValidSymbol: symbolCheck(TICKER),
} satisfies StreamKind);

const CRYPTO_BAR_FLOATS = floats('o', 'h', 'l', 'c', 'v', 'vw'); // crypto volume is fractional
const BOOK_LEVEL_FLOATS = new Set(['p', 's']);

export const CRYPTO: StreamKind = Object.freeze({
  name: 'crypto',
  paths: ['v1beta3/crypto/us', 'v1beta3/crypto/us-1', 'v1beta3/crypto/eu-1'],
  channels: ['trades', 'quotes', 'bars', 'updatedBars', 'dailyBars', 'orderbooks'],
  // The order of DOC-CRY's reply example.
  replyKeys: [
    ['trades', 'trades'],
    ['quotes', 'quotes'],
    ['orderbooks', 'orderbooks'],
    ['bars', 'bars'],
    ['updatedBars', 'updatedBars'],
    ['dailyBars', 'dailyBars'],
  ],
  typeToChannel: Object.freeze({ t: 'trades', q: 'quotes', b: 'bars', u: 'updatedBars', d: 'dailyBars', o: 'orderbooks' }),
  floatFields: Object.freeze({
    t: floats('p', 's'),
    q: floats('bp', 'bs', 'ap', 'as'),
    b: CRYPTO_BAR_FLOATS,
    u: CRYPTO_BAR_FLOATS,
    d: CRYPTO_BAR_FLOATS,
    o: { fields: new Set<string>(), items: { b: BOOK_LEVEL_FLOATS, a: BOOK_LEVEL_FLOATS } },
  }),
  timestampFields: new Set(['t']),
  encodings: ['json', 'msgpack'],
  // Never order books: an update replaced by a later one loses a level (PROTOCOL-STREAMS §1.3).
  conflatable: new Set(['q', 'b', 'u', 'd']),
  // A book's last update is no book: a snapshot of a book must be built from the levels, not cached.
  lastValueTypes: new Set(['t', 'q', 'b', 'u', 'd']),
  // A subscribed book updates whenever the market moves, like quotes.
  flowingChannels: ['trades', 'quotes', 'orderbooks'],
  symbolsField: 'S',
  wildcardRefusals: Object.freeze({}),
  symbolPattern: CRYPTO_PAIR,
  isValidSymbol: symbolCheck(CRYPTO_PAIR),
} satisfies StreamKind);

export const OPTIONS: StreamKind = Object.freeze({
  name: 'options',
  paths: ['v1beta1/indicative', 'v1beta1/opra'],
  channels: ['trades', 'quotes'],
  // VERIFY: undocumented; the stream's own keys, as crypto and news reply (PROTOCOL-STREAMS §2.4).
  replyKeys: [
    ['trades', 'trades'],
    ['quotes', 'quotes'],
  ],
  typeToChannel: Object.freeze({ t: 'trades', q: 'quotes' }),
  // Option sizes are integers (GO `Size uint32`).
  floatFields: Object.freeze({ t: floats('p'), q: floats('bp', 'ap') }),
  timestampFields: new Set(['t']),
  encodings: ['msgpack'],
  conflatable: new Set(['q']),
  lastValueTypes: new Set(['t', 'q']),
  flowingChannels: ['trades', 'quotes'],
  // "You cannot subscribe to `*` for option quotes" (DOC-OPT). VERIFY: `*` on trades is allowed.
  symbolsField: 'S',
  wildcardRefusals: Object.freeze({ quotes: 413 }),
  symbolPattern: OCC_CONTRACT,
  isValidSymbol: symbolCheck(OCC_CONTRACT),
} satisfies StreamKind);

export const NEWS: StreamKind = Object.freeze({
  name: 'news',
  paths: ['v1beta1/news'],
  channels: ['news'],
  replyKeys: [['news', 'news']],
  typeToChannel: Object.freeze({ n: 'news' }),
  floatFields: Object.freeze({}),
  timestampFields: new Set(['created_at', 'updated_at']),
  encodings: ['json', 'msgpack'],
  // Every item is news to someone: never replaced, never a "last value".
  conflatable: new Set<string>(),
  lastValueTypes: new Set<string>(),
  // News is legitimately sparse (hours between items on a symbol): never judged stale, like bars.
  flowingChannels: [],
  symbolsField: 'symbols',
  wildcardRefusals: Object.freeze({}),
  // Stock tickers, and crypto without the slash (BTCUSD). VERIFY: the vendor's exact spelling.
  symbolPattern: TICKER,
  isValidSymbol: symbolCheck(TICKER),
} satisfies StreamKind);

/** Every kind, in the order of DESIGN.md §9. */
export const STREAM_KINDS: readonly StreamKind[] = [STOCKS, CRYPTO, OPTIONS, NEWS];

const KIND_OF_PATH: ReadonlyMap<string, StreamKind> = new Map(STREAM_KINDS.flatMap((kind) => kind.paths.map((path) => [path, kind] as const)));

/** Every known stream path (`v2/iex`, `v1beta3/crypto/us`, …), kinds in §9's order. */
export const STREAM_PATHS: readonly string[] = STREAM_KINDS.flatMap((kind) => kind.paths);

/** The kind of the stream at `path` (with or without a leading `/`), or undefined for an unknown path. */
export function streamKindOf(path: string): StreamKind | undefined {
  return KIND_OF_PATH.get(path.startsWith('/') ? path.slice(1) : path);
}

/**
 * The encoding a link of `kind` uses upstream: the configured one where the vendor serves it, else
 * the kind's own (options are msgpack only).
 */
export function upstreamEncodingOf(kind: StreamKind, configured: Encoding): Encoding {
  return kind.encodings.includes(configured) ? configured : (kind.encodings[0] as Encoding);
}

/**
 * The stream path a URL points at: the known path its path ends in (`wss://host/v1beta3/crypto/us`,
 * or behind a proxy's prefix), else undefined (a bare base, an unknown path, not a URL).
 */
export function streamPathOfUrl(url: string): string | undefined {
  let pathname: string;
  try {
    pathname = new URL(url).pathname;
  } catch (err) {
    if (err instanceof TypeError) return undefined;
    throw err;
  }
  return streamPathEnding(pathname);
}

/** The known stream path a URL's path ends in (trailing slashes aside), else undefined. */
export function streamPathEnding(pathname: string): string | undefined {
  const trimmed = pathname.replace(/\/+$/, '');
  return STREAM_PATHS.find((p) => trimmed === `/${p}` || trimmed.endsWith(`/${p}`));
}

/** The kind of the stream a vendor URL points at (see `streamPathOfUrl`), else undefined. */
export function streamKindOfUrl(url: string): StreamKind | undefined {
  const path = streamPathOfUrl(url);
  return path === undefined ? undefined : streamKindOf(path);
}

/**
 * The symbols a data message of `kind` is about, for routing: its `S`, or its `symbols` list (a
 * news item with an empty list is about nothing in particular and reaches `*` only).
 */
export function symbolsOf(kind: StreamKind, message: Readonly<Record<string, unknown>>): readonly string[] {
  const value = message[kind.symbolsField];
  if (typeof value === 'string') return [value];
  return Array.isArray(value) ? value.filter((s): s is string => typeof s === 'string') : [];
}

/** One list of symbols per channel of every kind, as in a subscribe message or a reply. */
export type ChannelSymbols = Record<Channel, string[]>;

/** An empty list for every channel. */
export function emptyChannelSymbols(): ChannelSymbols {
  return Object.fromEntries(CHANNELS.map((c) => [c, []])) as unknown as ChannelSymbols;
}

/** Whether `value` is a symbol on some stream: what a key the stream lacks may hold before its 410. */
function isAnySymbol(value: unknown): value is string {
  return STREAM_KINDS.some((kind) => kind.isValidSymbol(value));
}

/**
 * The channel lists of a subscribe/unsubscribe request on a stream of `kind`, or the vendor error
 * code for it: 400 for a list that is not strings or a symbol the kind does not accept, 410 for
 * symbols on a key the stream lacks, the kind's refusal (413) for `*` where it is not allowed.
 * Null, missing and empty lists of any vendor key are fine (the Go SDK sends every key); keys no
 * stream knows are ignored, as the vendor does.
 */
export function parseChannels(request: Record<string, unknown>, kind: StreamKind = STOCKS): ChannelSymbols | number {
  const parsed = emptyChannelSymbols();
  for (const [key, value] of Object.entries(request)) {
    if (key === 'action' || value === null || value === undefined || !VENDOR_KEYS.has(key)) continue;
    if (!Array.isArray(value)) return 400;
    const own = (kind.channels as readonly string[]).includes(key);
    if (!own) {
      if (!value.every(isAnySymbol)) return 400;
      if (value.length > 0) return 410;
      continue;
    }
    if (!value.every((s) => kind.isValidSymbol(s))) return 400;
    const channel = key as Channel;
    const refusal = kind.wildcardRefusals[channel];
    if (refusal !== undefined && value.includes(WILDCARD)) return refusal;
    parsed[channel] = [...new Set(value as string[])];
  }
  return parsed;
}

/** The `subscription` reply for a set on a stream of `kind`: its reply keys in order, `T` first. */
export function subscriptionReply(set: Partial<ChannelSymbols>, kind: StreamKind = STOCKS): Record<string, unknown> {
  const reply: Record<string, unknown> = { T: 'subscription' };
  for (const [key, channel] of kind.replyKeys) reply[key] = set[channel] ?? [];
  return reply;
}
