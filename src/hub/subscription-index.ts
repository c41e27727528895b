/**
 * Who holds what: per (channel, symbol) the clients that subscribed to it, plus the operator's
 * pinned set. It is both the fan-out's routing index and the reference count behind the vendor
 * link's desired set: a pair is desired while anyone (a client or the pin) holds it.
 *
 * Every change costs work in proportion to the pairs it names and reports which pairs entered or
 * left the desired set, so the vendor link is told only the difference (DESIGN.md §11).
 */
import { ChannelSet, type Pair, SymbolCount } from '../protocol/channel-set.js';
import { CHANNELS, type Channel, WILDCARD } from '../protocol/channels.js';

/** Pairs that entered and left the desired set with one change. */
export interface UnionDelta {
  readonly added: Pair[];
  readonly removed: Pair[];
}

export class SubscriptionIndex<C> {
  readonly #holders: Record<Channel, Map<string, Set<C>>>;
  #pinned = new ChannelSet();
  /** the union of every holder's pairs and the pin, kept incrementally */
  readonly #union = new ChannelSet();
  /** the union's distinct explicit symbols (the plan counts symbols) */
  readonly #symbols = new SymbolCount();

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
  add(client: C, pairs: Iterable<Pair>): UnionDelta {
    const added: Pair[] = [];
    for (const pair of pairs) {
      const [channel, symbol] = pair;
      let set = this.#holders[channel].get(symbol);
      if (set === undefined) {
        set = new Set();
        this.#holders[channel].set(symbol, set);
      }
      set.add(client);
      if (this.#enter(channel, symbol)) added.push(pair);
    }
    return { added, removed: [] };
  }

  /** Records that `client` no longer holds these pairs; a pair nobody holds leaves the union. */
  remove(client: C, pairs: Iterable<Pair>): UnionDelta {
    const removed: Pair[] = [];
    for (const pair of pairs) {
      const [channel, symbol] = pair;
      const set = this.#holders[channel].get(symbol);
      if (set === undefined || !set.delete(client) || set.size > 0) continue;
      this.#holders[channel].delete(symbol);
      if (!this.#pinned.has(channel, symbol) && this.#leave(channel, symbol)) removed.push(pair);
    }
    return { added: [], removed };
  }

  get pinned(): ChannelSet {
    return this.#pinned.clone();
  }

  /** Pins and unpins pairs; pinned pairs stay desired with no client holding them. */
  changePinned(pin: Iterable<Pair>, unpin: Iterable<Pair>): UnionDelta {
    const added: Pair[] = [];
    const removed: Pair[] = [];
    for (const pair of pin) {
      const [channel, symbol] = pair;
      if (this.#pinned.has(channel, symbol)) continue;
      this.#pinned.add(channel, symbol);
      if (this.#enter(channel, symbol)) added.push(pair);
    }
    for (const pair of unpin) {
      const [channel, symbol] = pair;
      if (!this.#pinned.has(channel, symbol)) continue;
      this.#pinned.delete(channel, symbol);
      if (!this.#holders[channel].has(symbol) && this.#leave(channel, symbol)) removed.push(pair);
    }
    return { added, removed };
  }

  /** Distinct explicit symbols of the union (what a vendor plan's symbol limit counts). */
  get distinctSymbols(): number {
    return this.#symbols.size;
  }

  /** How many symbols these pairs would add to the union's distinct count. */
  newSymbolsAmong(pairs: Iterable<Pair>): number {
    return this.#symbols.newAmong(pairs);
  }

  /** Desired pairs on `channel`. */
  countOn(channel: Channel): number {
    return this.#union.symbols(channel).size;
  }

  /** Every pair held by a client or pinned: what the vendor should hold (a copy). */
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

  /** Adds the pair to the union; true when it was not there. */
  #enter(channel: Channel, symbol: string): boolean {
    if (this.#union.has(channel, symbol)) return false;
    this.#union.add(channel, symbol);
    this.#symbols.add(symbol);
    return true;
  }

  /** Takes the pair out of the union; true when it was there. */
  #leave(channel: Channel, symbol: string): boolean {
    if (!this.#union.has(channel, symbol)) return false;
    this.#union.delete(channel, symbol);
    this.#symbols.delete(symbol);
    return true;
  }
}
