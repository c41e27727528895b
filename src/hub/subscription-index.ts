/**
 * Who holds what: per (channel, symbol) the clients that subscribed to it, plus the operator's
 * pinned set. It is both the fan-out's routing index and the reference count behind the vendor
 * link's desired set: a pair is desired while anyone (a client or the pin) holds it.
 */
import { ChannelSet } from '../protocol/channel-set.js';
import { CHANNELS, type Channel, WILDCARD } from '../protocol/channels.js';

export class SubscriptionIndex<C> {
  readonly #holders: Record<Channel, Map<string, Set<C>>>;
  #pinned = new ChannelSet();
  /** the union of every holder's pairs, kept incrementally */
  readonly #union = new ChannelSet();

  constructor() {
    this.#holders = Object.fromEntries(CHANNELS.map((c) => [c, new Map<string, Set<C>>()])) as Record<Channel, Map<string, Set<C>>>;
  }

  /** Clients holding `symbol` on `channel` explicitly (not through `*`). */
  holders(channel: Channel, symbol: string): ReadonlySet<C> | undefined {
    return this.#holders[channel].get(symbol);
  }

  /** Clients holding `*` on `channel`. */
  wildcardHolders(channel: Channel): ReadonlySet<C> | undefined {
    return this.#holders[channel].get(WILDCARD);
  }

  /** Records that `client` now also holds these pairs. */
  add(client: C, pairs: Iterable<[Channel, string]>): void {
    for (const [channel, symbol] of pairs) {
      let set = this.#holders[channel].get(symbol);
      if (set === undefined) {
        set = new Set();
        this.#holders[channel].set(symbol, set);
      }
      set.add(client);
      this.#union.add(channel, symbol);
    }
  }

  /** Records that `client` no longer holds these pairs; a pair nobody holds leaves the union. */
  remove(client: C, pairs: Iterable<[Channel, string]>): void {
    for (const [channel, symbol] of pairs) {
      const set = this.#holders[channel].get(symbol);
      if (set === undefined) continue;
      set.delete(client);
      if (set.size === 0) {
        this.#holders[channel].delete(symbol);
        if (!this.#pinned.has(channel, symbol)) this.#union.delete(channel, symbol);
      }
    }
  }

  get pinned(): ChannelSet {
    return this.#pinned.clone();
  }

  /** Replaces the operator-pinned set; pinned pairs stay desired with no client holding them. */
  setPinned(pinned: ChannelSet): void {
    for (const [channel, symbol] of this.#pinned.pairs()) {
      if (!pinned.has(channel, symbol) && !this.#holders[channel].has(symbol)) this.#union.delete(channel, symbol);
    }
    this.#pinned = pinned.clone();
    this.#union.addAll(this.#pinned);
  }

  /** Every pair held by a client or pinned: what the vendor should hold. */
  union(): ChannelSet {
    return this.#union.clone();
  }

  /** Pairs held by clients (without the pin). */
  clientUnion(): ChannelSet {
    const out = new ChannelSet();
    for (const channel of CHANNELS) for (const symbol of this.#holders[channel].keys()) out.add(channel, symbol);
    return out;
  }

  /** How many clients hold the pair (the pin not counted). */
  count(channel: Channel, symbol: string): number {
    return this.#holders[channel].get(symbol)?.size ?? 0;
  }
}
