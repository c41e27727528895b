/**
 * What the simulator asks of a synthetic market, whatever the stream kind: messages for what
 * sessions hold, at the configured rate and on the bar, status and news intervals, plus what a
 * session gets right after it subscribes (an order book's reset).
 */
import type { ChannelSet } from '../protocol/channel-set.js';
import type { StreamKind } from '../protocol/streams.js';
import type { Timestamp } from '../protocol/timestamp.js';
import type { WireValue } from '../protocol/transcode.js';

/** A message as the simulator builds it, before encoding. */
export type MarketMessage = { readonly [key: string]: WireValue };

/** A kind's market implements only what its stream carries; a missing method means nothing of that sort. */
export interface StreamMarket {
  readonly kind: StreamKind;
  /** the symbols a `*` subscription brings in */
  readonly universe: readonly string[];
  /** `count` rate-driven messages (trades, quotes, book updates) for the pairs `held` (no `*` in it) */
  flow?(held: ChannelSet, count: number, t: Timestamp): MarketMessage[];
  /** what is due every bar interval */
  bars?(held: ChannelSet, t: Timestamp): MarketMessage[];
  /** what is due every status interval */
  statuses?(held: ChannelSet, t: Timestamp): MarketMessage[];
  /** what is due every news interval */
  news?(held: ChannelSet, t: Timestamp): MarketMessage[];
  /** what a session gets right after the reply that added `added` (no `*` in it), before any other data */
  snapshots?(added: ChannelSet, t: Timestamp): MarketMessage[];
  /** every order book built so far, as a reset would carry it now (kinds with books) */
  books?(): Record<string, { b: { p: number; s: number }[]; a: { p: number; s: number }[] }>;
}

/** Rounds to `digits` decimals (prices in cents, sizes in satoshi-like steps). */
export function round(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

/** 64-bit ids travel as bigint once they pass 2^53, as a lossless decoder returns them. */
export function wireId(value: bigint): number | bigint {
  return value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
}
