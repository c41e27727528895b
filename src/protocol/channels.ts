/**
 * Names the stock-only parts of tickmux use: the stock feeds served under `/v2/{feed}` and the
 * control message types (PROTOCOL.md §1.1, §1.7). What each stream kind carries — channels,
 * message types, reply shapes, symbol syntax — lives per kind in `streams.ts`; the names below
 * are re-exported from there for the modules that import them from here.
 */
export {
  type Channel,
  CHANNELS,
  type ChannelSymbols,
  emptyChannelSymbols,
  STOCK_CHANNELS,
  subscriptionReply,
  WILDCARD,
} from './streams.js';

/** Stock feeds served under `/v2/{feed}`. */
export const FEEDS = ['iex', 'sip', 'delayed_sip', 'test'] as const;
export type Feed = (typeof FEEDS)[number];

export function isFeed(value: string): value is Feed {
  return (FEEDS as readonly string[]).includes(value);
}

/** Control message types: always alone in a frame, never data. */
export const CONTROL_TYPES = ['success', 'error', 'subscription'] as const;

const CONTROL_TYPE_SET: ReadonlySet<unknown> = new Set(CONTROL_TYPES);

/** Whether a message's `T` is a control type (`success`, `error`, `subscription`). */
export function isControlType(type: unknown): boolean {
  return CONTROL_TYPE_SET.has(type);
}
