/**
 * One client's `subscription` reply, kept encoded. The vendor answers every subscribe and
 * unsubscribe with the client's whole set, so a client holding tens of thousands of pairs gets a
 * reply of hundreds of kilobytes each time; encoding it afresh per request would let one client
 * stall the gateway with small requests (DESIGN.md §11). Each channel's list is encoded once and
 * kept until that channel changes; a request that changes nothing reuses the whole frame.
 *
 * The bytes are exactly what `encodeFrame([subscriptionReply(lists)], encoding)` gives.
 */
import type { ChannelSet } from './channel-set.js';
import { type Channel, CHANNELS } from './channels.js';
import type { Encoding } from './frame.js';
import { MsgpackWriter } from './msgpack.js';

/** The reply's keys after `T`, in the vendor's order, with the channel each one lists. */
const REPLY_KEYS: readonly (readonly [string, Channel])[] = [
  ['trades', 'trades'],
  ['quotes', 'quotes'],
  ['bars', 'bars'],
  ['updatedBars', 'updatedBars'],
  ['dailyBars', 'dailyBars'],
  ['statuses', 'statuses'],
  ['lulds', 'lulds'],
  ['corrections', 'trades'],
  ['cancelErrors', 'trades'],
  ['imbalances', 'imbalances'],
];

/** The fixed parts of the frame around each list, per encoding. */
function framing(encoding: Encoding): { head: Buffer; keys: Buffer[]; tail: Buffer } {
  if (encoding === 'json') {
    return {
      head: Buffer.from('[{"T":"subscription"'),
      keys: REPLY_KEYS.map(([key]) => Buffer.from(`,${JSON.stringify(key)}:`)),
      tail: Buffer.from('}]'),
    };
  }
  const head = new MsgpackWriter(32);
  head.arrayHeader(1);
  head.mapHeader(REPLY_KEYS.length + 1);
  head.str('T');
  head.str('subscription');
  return {
    head: head.finish(),
    keys: REPLY_KEYS.map(([key]) => {
      const writer = new MsgpackWriter(16);
      writer.str(key);
      return writer.finish();
    }),
    tail: Buffer.alloc(0),
  };
}

const FRAMING: Record<Encoding, ReturnType<typeof framing>> = { json: framing('json'), msgpack: framing('msgpack') };

function encodeList(symbols: ReadonlySet<string>, encoding: Encoding): Buffer {
  if (encoding === 'json') return Buffer.from(JSON.stringify([...symbols]));
  const writer = new MsgpackWriter(16 + symbols.size * 8);
  writer.arrayHeader(symbols.size);
  for (const symbol of symbols) writer.str(symbol);
  return writer.finish();
}

export class SubscriptionReplyCache {
  readonly #encoding: Encoding;
  readonly #lists = new Map<Channel, Buffer>();
  #frame: Buffer | undefined;

  constructor(encoding: Encoding) {
    this.#encoding = encoding;
  }

  /** `channel` changed: its list is encoded again on the next reply, the others are kept. */
  changed(channel: Channel): void {
    this.#lists.delete(channel);
    this.#frame = undefined;
  }

  /** Forgets everything (the set was emptied). */
  clear(): void {
    this.#lists.clear();
    this.#frame = undefined;
  }

  /** The reply frame for `set`, which must be the set this cache was told about. */
  frame(set: ChannelSet): Buffer {
    if (this.#frame !== undefined) return this.#frame;
    for (const channel of CHANNELS) {
      if (!this.#lists.has(channel)) this.#lists.set(channel, encodeList(set.symbols(channel), this.#encoding));
    }
    const { head, keys, tail } = FRAMING[this.#encoding];
    const parts: Buffer[] = [head];
    REPLY_KEYS.forEach(([, channel], i) => parts.push(keys[i] as Buffer, this.#lists.get(channel) as Buffer));
    parts.push(tail);
    this.#frame = Buffer.concat(parts);
    return this.#frame;
  }
}
