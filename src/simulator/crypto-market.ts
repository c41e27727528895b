/**
 * A synthetic crypto market as Alpaca's `v1beta3/crypto/{loc}` streams it (PROTOCOL-STREAMS.md
 * §1): trades with fractional sizes, 64-bit ids and the taker side, quotes with fractional sizes,
 * bars with fractional volume, and order books — a full book with `r: true` right after a
 * subscription, then level updates where `s: 0` removes a level and a side without change is an
 * empty list (both `b` and `a` always present).
 *
 * Trade ids run per pair in sequence from `tradeIdBase` (by default just below 2^53), so a
 * consumer can check for gaps and the ids soon need 64 bits.
 */
import type { ChannelSet } from '../protocol/channel-set.js';
import { CRYPTO } from '../protocol/streams.js';
import { Timestamp } from '../protocol/timestamp.js';
import { pick, type Random } from '../random.js';
import { type MarketMessage, round, type StreamMarket, wireId } from './stream-market.js';

export const DEFAULT_CRYPTO_UNIVERSE = ['BTC/USD', 'ETH/USD', 'SOL/USD', 'ETH/BTC', 'AVAX/USD', 'USDT/USD'];

/** Levels per side of a fresh book. */
const BOOK_DEPTH = 10;

interface Bar {
  o: number;
  h: number;
  l: number;
  c: number;
  v: number;
  n: number;
  notional: number;
}

interface PairState {
  price: number;
  /** price step of the book, in the price's units */
  tick: number;
  nextTradeId: bigint;
  bar: Bar | undefined;
  day: Bar | undefined;
  /** book levels by price in ticks (integers, so a level is found again exactly) */
  bids: Map<number, number> | undefined;
  asks: Map<number, number> | undefined;
}

export class CryptoMarket implements StreamMarket {
  readonly kind = CRYPTO;
  readonly universe: readonly string[];
  readonly #random: Random;
  readonly #tradeIdBase: bigint;
  readonly #pairs = new Map<string, PairState>();

  constructor(random: Random, options: { universe?: readonly string[]; tradeIdBase: bigint }) {
    this.#random = random;
    this.universe = options.universe ?? DEFAULT_CRYPTO_UNIVERSE;
    this.#tradeIdBase = options.tradeIdBase;
  }

  #state(symbol: string): PairState {
    let state = this.#pairs.get(symbol);
    if (state === undefined) {
      // Prices from about 1 to about 100k: a stablecoin, altcoins and bitcoin alike.
      const price = round(10 ** (this.#random() * 5), 2) || 1;
      state = { price, tick: Math.max(0.01, round(price / 20_000, 2)), nextTradeId: this.#tradeIdBase, bar: undefined, day: undefined, bids: undefined, asks: undefined };
      this.#pairs.set(symbol, state);
    }
    return state;
  }

  #walk(state: PairState): number {
    state.price = Math.max(state.tick, round(state.price + (this.#random() - 0.5) * state.tick * 10, 2));
    return state.price;
  }

  /** A fractional amount with up to nine decimals, as crypto sizes are. */
  #size(): number {
    return round(0.000001 + this.#random() ** 3 * 5, 9);
  }

  flow(held: ChannelSet, count: number, t: Timestamp): MarketMessage[] {
    const ticking = [...new Set([...held.symbols('trades'), ...held.symbols('quotes'), ...held.symbols('orderbooks')])];
    const out: MarketMessage[] = [];
    if (ticking.length === 0) return out;
    for (let i = 0; i < count; i++) {
      const symbol = pick(this.#random, ticking);
      const choices = (['trades', 'quotes', 'orderbooks'] as const).filter((c) => held.has(c, symbol));
      const channel = pick(this.#random, choices);
      if (channel === 'trades') out.push(this.trade(symbol, t));
      else if (channel === 'quotes') out.push(this.quote(symbol, t));
      else out.push(this.bookUpdate(symbol, t));
    }
    return out;
  }

  /** The next trade of `symbol`, updating its bars. */
  trade(symbol: string, t: Timestamp): MarketMessage {
    const state = this.#state(symbol);
    const price = this.#walk(state);
    const size = this.#size();
    const id = state.nextTradeId;
    state.nextTradeId += 1n;
    for (const bar of [(state.bar ??= newBar(price)), (state.day ??= newBar(price))]) {
      bar.h = Math.max(bar.h, price);
      bar.l = Math.min(bar.l, price);
      bar.c = price;
      bar.v = round(bar.v + size, 9);
      bar.n += 1;
      bar.notional += price * size;
    }
    return { T: 't', S: symbol, p: price, s: size, t, i: wireId(id), tks: this.#random() < 0.5 ? 'B' : 'S' };
  }

  /** A quote around the current price. */
  quote(symbol: string, t: Timestamp): MarketMessage {
    const state = this.#state(symbol);
    const mid = this.#walk(state);
    return { T: 'q', S: symbol, bp: round(mid - state.tick, 2), bs: this.#size(), ap: round(mid + state.tick, 2), as: this.#size(), t };
  }

  bars(held: ChannelSet, t: Timestamp): MarketMessage[] {
    const minute = new Timestamp(Math.floor(t.seconds / 60) * 60 - 60, 0);
    const midnight = new Timestamp(Math.floor(t.seconds / 86_400) * 86_400, 0);
    const out: MarketMessage[] = [];
    for (const symbol of held.symbols('bars')) {
      const state = this.#state(symbol);
      out.push(barMessage('b', symbol, state.bar ?? newBar(state.price), minute));
      state.bar = undefined;
    }
    for (const symbol of held.symbols('updatedBars')) {
      const state = this.#state(symbol);
      out.push(barMessage('u', symbol, state.bar ?? newBar(state.price), minute));
    }
    for (const symbol of held.symbols('dailyBars')) {
      const state = this.#state(symbol);
      out.push(barMessage('d', symbol, { ...(state.day ?? newBar(state.price)), c: state.price }, midnight));
    }
    return out;
  }

  /** The whole book of each newly subscribed pair, flagged as a reset (DOC-CRY: "typically sent as the first message after subscription"). */
  snapshots(added: ChannelSet, t: Timestamp): MarketMessage[] {
    return [...added.symbols('orderbooks')].map((symbol) => {
      const { bids, asks, tick } = this.#book(symbol);
      return { T: 'o', S: symbol, t, b: levels(bids, tick, 'desc'), a: levels(asks, tick, 'asc'), r: true };
    });
  }

  /** Every book built so far, levels best first, as `snapshots` would send them now. */
  books(): Record<string, { b: { p: number; s: number }[]; a: { p: number; s: number }[] }> {
    const out: Record<string, { b: { p: number; s: number }[]; a: { p: number; s: number }[] }> = {};
    for (const [symbol, state] of this.#pairs) {
      if (state.bids === undefined || state.asks === undefined) continue;
      out[symbol] = { b: levels(state.bids, state.tick, 'desc'), a: levels(state.asks, state.tick, 'asc') };
    }
    return out;
  }

  #book(symbol: string): { bids: Map<number, number>; asks: Map<number, number>; tick: number } {
    const state = this.#state(symbol);
    if (state.bids === undefined || state.asks === undefined) {
      const top = Math.round(state.price / state.tick);
      state.bids = new Map();
      state.asks = new Map();
      for (let i = 1; i <= BOOK_DEPTH; i++) {
        state.bids.set(top - i, this.#size());
        state.asks.set(top + i, this.#size());
      }
    }
    return { bids: state.bids, asks: state.asks, tick: state.tick };
  }

  /**
   * A change to one side of the book, now and then to both: a level set to a new size, a new
   * level, or a level removed (`s: 0`). The side without change is sent as an empty list.
   */
  bookUpdate(symbol: string, t: Timestamp): MarketMessage {
    const { bids, asks, tick } = this.#book(symbol);
    const roll = this.#random();
    const changeBids = roll < 0.6;
    const changeAsks = roll >= 0.4;
    const b = changeBids ? [this.#changeLevel(bids, asks, tick, 'bid')] : [];
    const a = changeAsks ? [this.#changeLevel(asks, bids, tick, 'ask')] : [];
    return { T: 'o', S: symbol, t, b, a };
  }

  #changeLevel(side: Map<number, number>, other: Map<number, number>, tick: number, which: 'bid' | 'ask'): { p: number; s: number } {
    const prices = [...side.keys()];
    if (prices.length > 2 && this.#random() < 0.3) {
      const gone = pick(this.#random, prices);
      side.delete(gone);
      return { p: round(gone * tick, 2), s: 0 };
    }
    // A new or resized level near the inside, never crossing the other side.
    const best = which === 'bid' ? Math.max(...prices, -Infinity) : Math.min(...prices, Infinity);
    const otherBest = which === 'bid' ? Math.min(...other.keys(), Infinity) : Math.max(...other.keys(), -Infinity);
    let level = (Number.isFinite(best) ? best : which === 'bid' ? otherBest - 1 : otherBest + 1) + Math.floor(this.#random() * 7) - 3;
    if (which === 'bid' && level >= otherBest) level = otherBest - 1;
    if (which === 'ask' && level <= otherBest) level = otherBest + 1;
    const size = this.#size();
    side.set(level, size);
    return { p: round(level * tick, 2), s: size };
  }
}

function newBar(price: number): Bar {
  return { o: price, h: price, l: price, c: price, v: 0, n: 0, notional: 0 };
}

/** A bar message; a minute without trades has `v: 0, n: 0` and the price as `vw`. */
function barMessage(type: 'b' | 'u' | 'd', symbol: string, bar: Bar, t: Timestamp): MarketMessage {
  const vw = bar.v === 0 ? bar.c : round(bar.notional / bar.v, 6);
  return { T: type, S: symbol, o: bar.o, h: bar.h, l: bar.l, c: bar.c, v: bar.v, t, n: bar.n, vw };
}

function levels(side: Map<number, number>, tick: number, order: 'asc' | 'desc'): { p: number; s: number }[] {
  const prices = [...side.keys()].sort((x, y) => (order === 'asc' ? x - y : y - x));
  return prices.map((level) => ({ p: round(level * tick, 2), s: side.get(level) as number }));
}
