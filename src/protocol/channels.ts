/**
 * Names on the Alpaca v2 stock stream: feeds, subscribable channels, message types and how they
 * map onto each other (PROTOCOL.md §1.1, §1.5).
 */

/** Stock feeds served under `/v2/{feed}`. */
export const FEEDS = ['iex', 'sip', 'delayed_sip', 'test'] as const;
export type Feed = (typeof FEEDS)[number];

export function isFeed(value: string): value is Feed {
  return (FEEDS as readonly string[]).includes(value);
}

/** Channels a stock client may subscribe to, in the order the vendor lists them. */
export const CHANNELS = ['trades', 'quotes', 'bars', 'updatedBars', 'dailyBars', 'statuses', 'lulds', 'imbalances'] as const;
export type Channel = (typeof CHANNELS)[number];

/** Channels that appear in a `subscription` reply but cannot be subscribed to: they follow `trades`. */
export const DERIVED_CHANNELS = ['corrections', 'cancelErrors'] as const;
export type DerivedChannel = (typeof DERIVED_CHANNELS)[number];

/**
 * Channel keys other Alpaca streams use that stock clients may still send (the Go SDK sends every
 * key, often as nil). An empty or null value is accepted; symbols in them are refused with 410.
 */
export const FOREIGN_CHANNELS = ['orderbooks', 'news', 'pricing'] as const;

export function isChannel(value: string): value is Channel {
  return (CHANNELS as readonly string[]).includes(value);
}

/** The wildcard symbol: every symbol of the channel. */
export const WILDCARD = '*';

/** Control message types: always alone in a frame, never data. */
export const CONTROL_TYPES = ['success', 'error', 'subscription'] as const;

/** Data message type letter → the channel a client subscribes to for it. */
export const TYPE_TO_CHANNEL: Readonly<Record<string, Channel>> = Object.freeze({
  t: 'trades',
  c: 'trades', // corrections follow trades
  x: 'trades', // cancel/errors follow trades
  q: 'quotes',
  b: 'bars',
  u: 'updatedBars',
  d: 'dailyBars',
  s: 'statuses',
  l: 'lulds',
  i: 'imbalances',
});

/** Channel → the data type letter it carries first (the one a channel is named after). */
export const CHANNEL_TO_TYPE: Readonly<Record<Channel, string>> = Object.freeze({
  trades: 't',
  quotes: 'q',
  bars: 'b',
  updatedBars: 'u',
  dailyBars: 'd',
  statuses: 's',
  lulds: 'l',
  imbalances: 'i',
});

/**
 * Fields that are floating point on the wire for each data type. A JSON number like `127` is an
 * integer token, but the vendor's msgpack carries a float64 there; converting JSON → msgpack uses
 * this table so the float stays a float and a round trip is byte-exact.
 */
export const FLOAT_FIELDS: Readonly<Record<string, ReadonlySet<string>>> = Object.freeze({
  t: new Set(['p']),
  q: new Set(['ap', 'bp']),
  b: new Set(['o', 'h', 'l', 'c', 'vw']),
  u: new Set(['o', 'h', 'l', 'c', 'vw']),
  d: new Set(['o', 'h', 'l', 'c', 'vw']),
  c: new Set(['op', 'cp']),
  x: new Set(['p']),
  l: new Set(['u', 'd']),
  i: new Set(['p']),
});

/** Top-level fields that hold a timestamp (msgpack ext −1, JSON RFC 3339) in data messages. */
export const TIMESTAMP_FIELDS: ReadonlySet<string> = new Set(['t', 'created_at', 'updated_at']);

/** One set of symbols per subscribable channel, as in a subscribe message or a reply. */
export type ChannelSymbols = Record<Channel, string[]>;

/** An empty set for every channel. */
export function emptyChannelSymbols(): ChannelSymbols {
  return {
    trades: [],
    quotes: [],
    bars: [],
    updatedBars: [],
    dailyBars: [],
    statuses: [],
    lulds: [],
    imbalances: [],
  };
}

/**
 * The `subscription` reply for a set: every channel key present, `corrections` and
 * `cancelErrors` mirroring `trades` (DESIGN.md §3), `T` first.
 */
export function subscriptionReply(set: ChannelSymbols): Record<string, unknown> {
  return {
    T: 'subscription',
    trades: set.trades,
    quotes: set.quotes,
    bars: set.bars,
    updatedBars: set.updatedBars,
    dailyBars: set.dailyBars,
    statuses: set.statuses,
    lulds: set.lulds,
    corrections: set.trades,
    cancelErrors: set.trades,
    imbalances: set.imbalances,
  };
}

/**
 * What a well-formed stock symbol looks like: upper-case letters, digits and the class/suffix
 * separators the US tapes use (BRK.B, BF/B, TEST-A), 1 to 21 characters; or the wildcard.
 */
const SYMBOL_PATTERN = /^[A-Z0-9][A-Z0-9./\-^=]{0,20}$/;

export function isValidSymbol(value: unknown): value is string {
  return typeof value === 'string' && (value === WILDCARD || SYMBOL_PATTERN.test(value));
}

/**
 * The channel lists of a subscribe/unsubscribe request, or the vendor error code for it: 400 for
 * a list that is not strings or a symbol that is not a symbol, 410 for symbols on a channel this
 * stream does not carry. Null, missing and empty lists are fine (the Go SDK sends nil for all).
 */
export function parseChannels(request: Record<string, unknown>): ChannelSymbols | number {
  const parsed = emptyChannelSymbols();
  for (const [key, value] of Object.entries(request)) {
    if (key === 'action' || value === null || value === undefined) continue;
    const known = (CHANNELS as readonly string[]).includes(key);
    const foreign = (FOREIGN_CHANNELS as readonly string[]).includes(key) || (DERIVED_CHANNELS as readonly string[]).includes(key);
    if (!known && !foreign) continue; // unknown keys are tolerated, as the vendor does
    if (!Array.isArray(value)) return 400;
    if (!value.every(isValidSymbol)) return 400;
    if (foreign) {
      if (value.length > 0) return 410;
      continue;
    }
    parsed[key as Channel] = [...new Set(value as string[])];
  }
  return parsed;
}
