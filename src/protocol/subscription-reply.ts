/**
 * One client's `subscription` reply, kept encoded. The vendor answers every subscribe and
 * unsubscribe with the client's whole set, so a client holding tens of thousands of pairs gets a
 * reply of hundreds of kilobytes each time; encoding it afresh per request would let one client
 * stall the gateway with small requests (DESIGN.md §11). Each channel's list is encoded once and
 * kept until that channel changes; a request that changes nothing reuses the whole frame.
 *
 * The bytes are exactly what `encodeFrame([subscriptionReply(lists, kind)], encoding)` gives: the
 * reply keys and their order are the stream kind's.
 */
import type { ChannelSet } from './channel-set.js';
import type { Encoding } from './frame.js';
import { MsgpackWriter } from './msgpack.js';
import { type Channel, STOCKS, type StreamKind } from './streams.js';

interface Framing {
  readonly head: Buffer;
  readonly keys: Buffer[];
  readonly tail: Buffer;
}

/** The fixed parts of the frame around each list of a kind's reply, per encoding. */
function framing(kind: StreamKind, encoding: Encoding): Framing {
  const replyKeys = kind.replyKeys;
  if (encoding === 'json') {
    return {
      head: Buffer.from('[{"T":"subscription"'),
      keys: replyKeys.map(([key]) => Buffer.from(`,${JSON.stringify(key)}:`)),
      tail: Buffer.from('}]'),
    };
  }
  const head = new MsgpackWriter(32);
  head.arrayHeader(1);
  head.mapHeader(replyKeys.length + 1);
  head.str('T');
  head.str('subscription');
  return {
    head: head.finish(),
    keys: replyKeys.map(([key]) => {
      const writer = new MsgpackWriter(16);
      writer.str(key);
      return writer.finish();
    }),
    tail: Buffer.alloc(0),
  };
}

/** Framings by kind and encoding, built once each. */
const FRAMINGS = new Map<StreamKind, Record<Encoding, Framing>>();

function framingOf(kind: StreamKind, encoding: Encoding): Framing {
  let byEncoding = FRAMINGS.get(kind);
  if (byEncoding === undefined) {
    byEncoding = { json: framing(kind, 'json'), msgpack: framing(kind, 'msgpack') };
    FRAMINGS.set(kind, byEncoding);
  }
  return byEncoding[encoding];
}

function encodeList(symbols: ReadonlySet<string>, encoding: Encoding): Buffer {
  if (encoding === 'json') return Buffer.from(JSON.stringify([...symbols]));
  const writer = new MsgpackWriter(16 + symbols.size * 8);
  writer.arrayHeader(symbols.size);
  for (const symbol of symbols) writer.str(symbol);
  return writer.finish();
}

/** The reply for an empty set, by kind and encoding: every idle client shares it. */
const EMPTY_REPLIES = new Map<StreamKind, Partial<Record<Encoding, Buffer>>>();

function emptyReply(kind: StreamKind, encoding: Encoding, set: ChannelSet): Buffer {
  let byEncoding = EMPTY_REPLIES.get(kind);
  if (byEncoding === undefined) {
    byEncoding = {};
    EMPTY_REPLIES.set(kind, byEncoding);
  }
  return (byEncoding[encoding] ??= joinReply(kind, encoding, (channel) => encodeList(set.symbols(channel), encoding)));
}

function joinReply(kind: StreamKind, encoding: Encoding, list: (channel: Channel) => Buffer): Buffer {
  const { head, keys, tail } = framingOf(kind, encoding);
  const parts: Buffer[] = [head];
  kind.replyKeys.forEach(([, channel], i) => parts.push(keys[i] as Buffer, list(channel)));
  parts.push(tail);
  return Buffer.concat(parts);
}

export class SubscriptionReplyCache {
  readonly #encoding: Encoding;
  readonly #kind: StreamKind;
  /** encoded lists by channel, created with the first non-empty reply (an idle client has none) */
  #lists: Map<Channel, Buffer> | undefined;
  #frame: Buffer | undefined;

  /** A cache for replies in `encoding` on a stream of `kind` (its reply keys, in its order). */
  constructor(encoding: Encoding, kind: StreamKind = STOCKS) {
    this.#encoding = encoding;
    this.#kind = kind;
  }

  /** Whether this cache holds encoded lists or a frame of its own (an empty set's reply is shared). */
  get allocated(): boolean {
    return this.#lists !== undefined || this.#frame !== undefined;
  }

  /** `channel` changed: its list is encoded again on the next reply, the others are kept. */
  changed(channel: Channel): void {
    this.#lists?.delete(channel);
    this.#frame = undefined;
  }

  /** Forgets everything (the set was emptied). */
  clear(): void {
    this.#lists = undefined;
    this.#frame = undefined;
  }

  /** The reply frame for `set`, which must be the set this cache was told about. */
  frame(set: ChannelSet): Buffer {
    if (this.#frame !== undefined) return this.#frame;
    if (set.isEmpty) {
      this.#lists = undefined;
      return emptyReply(this.#kind, this.#encoding, set);
    }
    const lists = (this.#lists ??= new Map());
    for (const channel of this.#kind.channels) {
      if (!lists.has(channel)) lists.set(channel, encodeList(set.symbols(channel), this.#encoding));
    }
    this.#frame = joinReply(this.#kind, this.#encoding, (channel) => lists.get(channel) as Buffer);
    return this.#frame;
  }
}
