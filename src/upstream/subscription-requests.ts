/**
 * Subscribe/unsubscribe requests for the vendor link, split so no frame exceeds 32 KiB: the
 * vendor (and SDK experience, PROTOCOL.md §1.4) shows very large single requests failing.
 */
import { TickmuxError } from '../errors.js';
import { type ChannelSet } from '../protocol/channel-set.js';
import { CHANNELS, type Channel } from '../protocol/channels.js';
import { type Encoding, encodeMessage } from '../protocol/frame.js';

/** The largest subscribe/unsubscribe frame tickmux sends to the vendor. */
export const MAX_REQUEST_BYTES = 32 * 1024;

/** Bytes a symbol adds to a request at most: its text, quotes or a msgpack header, a comma. */
function symbolCost(symbol: string): number {
  return Buffer.byteLength(symbol) + 5;
}

/** Bytes a channel key and its array header add at most. */
function channelCost(channel: Channel): number {
  return channel.length + 10;
}

export interface SubscriptionRequest {
  readonly action: 'subscribe' | 'unsubscribe';
  readonly set: Partial<Record<Channel, string[]>>;
  readonly frame: Buffer;
}

/** The requests that apply `action` for every pair of `set`, each frame at most `maxBytes`. */
export function buildRequests(action: 'subscribe' | 'unsubscribe', set: ChannelSet, encoding: Encoding, maxBytes = MAX_REQUEST_BYTES): SubscriptionRequest[] {
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
  for (const channel of CHANNELS) {
    for (const symbol of set.symbols(channel)) {
      const cost = symbolCost(symbol) + (current[channel] === undefined ? channelCost(channel) : 0);
      if (size + cost > maxBytes) flush();
      const list = (current[channel] ??= []);
      size += symbolCost(symbol) + (list.length === 0 ? channelCost(channel) : 0);
      list.push(symbol);
    }
  }
  flush();
  return requests;
}
