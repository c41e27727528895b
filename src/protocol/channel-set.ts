import { CHANNELS, type Channel, type ChannelSymbols, emptyChannelSymbols, WILDCARD } from './channels.js';

/** One (channel, symbol) subscription. */
export type Pair = [Channel, string];

/** What an absent channel reads as: shared, never written. */
const NO_SYMBOLS: ReadonlySet<string> = new Set();

/**
 * A set of symbols per channel, in insertion order: a subscription, desired or acknowledged.
 * A channel's Set exists only while it holds a symbol: every client has one of these, and most
 * hold one or two channels of ten, or none while idle (issue #11).
 */
export class ChannelSet {
  readonly #sets: Partial<Record<Channel, Set<string>>> = {};

  constructor(lists?: Partial<Record<Channel, readonly string[]>>) {
    if (lists === undefined) return;
    for (const channel of CHANNELS) {
      const list = lists[channel];
      if (list !== undefined && list.length > 0) this.#sets[channel] = new Set(list);
    }
  }

  /** A copy that shares nothing with this one. */
  clone(): ChannelSet {
    return new ChannelSet(this.toLists());
  }

  has(channel: Channel, symbol: string): boolean {
    return this.#sets[channel]?.has(symbol) === true;
  }

  /** Whether a message of `channel` for `symbol` is covered, by the symbol or by `*`. */
  covers(channel: Channel, symbol: string | undefined): boolean {
    const set = this.#sets[channel];
    return set !== undefined && (set.has(WILDCARD) || (symbol !== undefined && set.has(symbol)));
  }

  symbols(channel: Channel): ReadonlySet<string> {
    return this.#sets[channel] ?? NO_SYMBOLS;
  }

  add(channel: Channel, symbol: string): void {
    (this.#sets[channel] ??= new Set()).add(symbol);
  }

  delete(channel: Channel, symbol: string): void {
    const set = this.#sets[channel];
    if (set === undefined) return;
    set.delete(symbol);
    if (set.size === 0) this.#sets[channel] = undefined;
  }

  /** The channels that have a Set now: the others cost nothing (tests check an emptied one lets go). */
  get allocatedChannels(): Channel[] {
    return CHANNELS.filter((c) => this.#sets[c] !== undefined);
  }

  /** Adds every pair of `other`. */
  addAll(other: ChannelSet | Partial<ChannelSymbols>): void {
    for (const [channel, symbol] of pairsOf(other)) this.add(channel, symbol);
  }

  /** Removes every pair of `other`. */
  deleteAll(other: ChannelSet | Partial<ChannelSymbols>): void {
    for (const [channel, symbol] of pairsOf(other)) this.delete(channel, symbol);
  }

  /** The pairs of this set that `other` lacks. */
  minus(other: ChannelSet): ChannelSet {
    const out = new ChannelSet();
    for (const [channel, symbol] of this.pairs()) if (!other.has(channel, symbol)) out.add(channel, symbol);
    return out;
  }

  /** Every (channel, symbol) pair. */
  *pairs(): Generator<[Channel, string]> {
    for (const channel of CHANNELS) for (const symbol of this.symbols(channel)) yield [channel, symbol];
  }

  get isEmpty(): boolean {
    return CHANNELS.every((c) => this.#sets[c] === undefined);
  }

  /** Number of (channel, symbol) pairs. */
  get size(): number {
    return CHANNELS.reduce((n, c) => n + this.symbols(c).size, 0);
  }

  /** Distinct explicit symbols across channels (`*` excluded): what a plan's symbol limit counts. */
  get distinctSymbols(): number {
    const all = new Set<string>();
    for (const [, symbol] of this.pairs()) if (symbol !== WILDCARD) all.add(symbol);
    return all.size;
  }

  equals(other: ChannelSet): boolean {
    return CHANNELS.every((c) => this.symbols(c).size === other.symbols(c).size && [...this.symbols(c)].every((s) => other.has(c, s)));
  }

  /** Plain lists per channel (every channel present). */
  toLists(): ChannelSymbols {
    const lists = emptyChannelSymbols();
    for (const channel of CHANNELS) lists[channel] = [...this.symbols(channel)];
    return lists;
  }

  toJSON(): ChannelSymbols {
    return this.toLists();
  }
}

/**
 * Distinct explicit symbols across channels (`*` aside), kept incrementally: a symbol counts while
 * any channel holds it. What a plan's symbol limit and `MAX_SYMBOLS_PER_CLIENT` count.
 */
export class SymbolCount {
  /** symbol → how many channels hold it; created with the first symbol (an idle client has none) */
  #channels: Map<string, number> | undefined;

  get size(): number {
    return this.#channels?.size ?? 0;
  }

  has(symbol: string): boolean {
    return this.#channels?.has(symbol) === true;
  }

  /** One more channel holds `symbol`. */
  add(symbol: string): void {
    if (symbol === WILDCARD) return;
    const channels = (this.#channels ??= new Map());
    channels.set(symbol, (channels.get(symbol) ?? 0) + 1);
  }

  /** One channel fewer holds `symbol`. */
  delete(symbol: string): void {
    const channels = this.#channels;
    if (symbol === WILDCARD || channels === undefined) return;
    const left = (channels.get(symbol) ?? 1) - 1;
    if (left > 0) channels.set(symbol, left);
    else if (channels.size === 1 && channels.has(symbol)) this.#channels = undefined;
    else channels.delete(symbol);
  }

  /** Whether the count holds its Map (only while it counts a symbol). */
  get allocated(): boolean {
    return this.#channels !== undefined;
  }

  clear(): void {
    this.#channels = undefined;
  }

  /** How many symbols of these pairs are not counted yet, each once: what adding them would add. */
  newAmong(pairs: Iterable<Pair>): number {
    const fresh = new Set<string>();
    for (const [, symbol] of pairs) if (symbol !== WILDCARD && !this.has(symbol)) fresh.add(symbol);
    return fresh.size;
  }
}

/** The pairs of a set or of per-channel lists (missing channels are empty). */
export function* pairsOf(source: ChannelSet | Partial<Record<Channel, readonly string[]>>): Generator<Pair> {
  if (source instanceof ChannelSet) {
    yield* source.pairs();
    return;
  }
  for (const channel of CHANNELS) for (const symbol of source[channel] ?? []) yield [channel, symbol];
}
