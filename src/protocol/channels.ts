/**
 * Names on the Alpaca v2 stock stream as the stock-only parts of tickmux use them: feeds, the
 * stock channels, message types and how they map onto each other (PROTOCOL.md §1.1, §1.5). The
 * knowledge itself lives per kind in `streams.ts`; these are the stock kind's values, kept under
 * their old names. `CHANNELS`, `Channel` and `ChannelSymbols` span every kind.
 */
import { CHANNELS, type Channel, STOCKS } from './streams.js';

export {
  type Channel,
  CHANNELS,
  type ChannelSymbols,
  emptyChannelSymbols,
  parseChannels,
  STOCK_CHANNELS,
  type StockChannel,
  subscriptionReply,
  WILDCARD,
} from './streams.js';

/** Stock feeds served under `/v2/{feed}`. */
export const FEEDS = ['iex', 'sip', 'delayed_sip', 'test'] as const;
export type Feed = (typeof FEEDS)[number];

export function isFeed(value: string): value is Feed {
  return (FEEDS as readonly string[]).includes(value);
}

/** Keys of a stock `subscription` reply that cannot be subscribed to: they follow `trades`. */
export const DERIVED_CHANNELS = ['corrections', 'cancelErrors'] as const;
export type DerivedChannel = (typeof DERIVED_CHANNELS)[number];

/** Keys of other streams a stock client may still send empty (the Go SDK sends every key); symbols in them are 410. */
export const FOREIGN_CHANNELS = ['orderbooks', 'news', 'pricing'] as const;

/** Stock channel → the data type letter it is named after. */
export const CHANNEL_TO_TYPE: Readonly<Partial<Record<Channel, string>>> = Object.freeze(
  Object.fromEntries(STOCKS.channels.map((channel) => [channel, Object.keys(STOCKS.typeToChannel).find((type) => STOCKS.typeToChannel[type] === channel)])),
);

/** Control message types: always alone in a frame, never data. */
export const CONTROL_TYPES = ['success', 'error', 'subscription'] as const;

/** Stock data message type letter → the channel a client subscribes to for it. */
export const TYPE_TO_CHANNEL: Readonly<Record<string, Channel>> = STOCKS.typeToChannel;

/** Stock types whose latest message replaces a queued one for the same symbol when a client lags. */
export const CONFLATABLE_TYPES: ReadonlySet<string> = STOCKS.conflatable;

/** Stock types the last-value cache keeps for snapshots. */
export const LAST_VALUE_TYPES: ReadonlySet<string> = STOCKS.lastValueTypes;

/** Whether `value` is a well-formed stock symbol or the wildcard. */
export function isValidSymbol(value: unknown): value is string {
  return STOCKS.isValidSymbol(value);
}

/** Whether `value` is a channel of some stream. */
export function isChannel(value: string): value is Channel {
  return (CHANNELS as readonly string[]).includes(value);
}

/** Top-level float fields per stock data type (see `StreamKind.floatFields`). */
export const FLOAT_FIELDS: Readonly<Record<string, ReadonlySet<string>>> = Object.freeze(
  Object.fromEntries(Object.entries(STOCKS.floatFields).map(([type, floats]) => [type, floats.fields])),
);

/** Top-level fields of stock data messages that hold a timestamp. */
export const TIMESTAMP_FIELDS: ReadonlySet<string> = STOCKS.timestampFields;
