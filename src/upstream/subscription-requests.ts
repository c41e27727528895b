/**
 * Subscribe/unsubscribe requests for the vendor link, split so no frame exceeds 32 KiB: the
 * vendor (and SDK experience, PROTOCOL.md §1.4) shows very large single requests failing.
 */
import { TickmuxError } from '../errors.js';
import { type ChannelSet } from '../protocol/channel-set.js';
import { type Channel } from '../protocol/channels.js';
import { type Encoding, encodeMessage } from '../protocol/frame.js';
import { STOCKS, type StreamKind } from '../protocol/streams.js';

/** The largest subscribe/unsubscribe frame tickmux sends to the vendor. */
export const MAX_REQUEST_BYTES = 32 * 1024;

/** Bytes a symbol adds to a request at most: in JSON its quoted text and a comma, in msgpack its string header and bytes. */
function symbolCost(symbol: string, encoding: Encoding): number {
  if (encoding === 'json') return Buffer.byteLength(JSON.stringify(symbol)) + 1;
  const length = Buffer.byteLength(symbol);
  return length + (length < 32 ? 1 : length < 256 ? 2 : 3);
}

/** Bytes a channel key and its (largest) array header add at most: `"key":[]` and a comma, or str + array32 header. */
function channelCost(channel: Channel): number {
  return channel.length + 6;
}

export interface SubscriptionRequest {
  readonly action: 'subscribe' | 'unsubscribe';
  readonly set: Partial<Record<Channel, string[]>>;
  readonly frame: Buffer;
}

/**
 * The requests that apply `action` for every pair of `set` on a stream of `kind` (its channels
 * only: the vendor refuses another stream's keys with 410), each frame at most `maxBytes`.
 */
export function buildRequests(
  action: 'subscribe' | 'unsubscribe',
  set: ChannelSet,
  encoding: Encoding,
  maxBytes = MAX_REQUEST_BYTES,
  kind: StreamKind = STOCKS,
): SubscriptionRequest[] {
  const requests: SubscriptionRequest[] = [];
  const overhead = encodeMessage({ action }, encoding).length;
  let current: Partial<Record<Channel, string[]>> = {};
  let size = overhead;
  const flush = (): void => {
    if (Object.keys(current).length === 0) return;
    const frame = encodeMessage({ action, ...current }, encoding);
    if (frame.length > maxBytes) throw new TickmuxError('ERR_INTERNAL', `subscription request of ${frame.length} bytes exceeds ${maxBytes}`);
    requests.push({ action, set: current, frame });
    current = {};
    size = overhead;
  };
  for (const channel of kind.channels) {
    for (const symbol of set.symbols(channel)) {
      const cost = (sym: string): number => symbolCost(sym, encoding) + (current[channel] === undefined ? channelCost(channel) : 0);
      if (size + cost(symbol) > maxBytes) flush();
      size += cost(symbol);
      (current[channel] ??= []).push(symbol);
    }
  }
  flush();
  return requests;
}
