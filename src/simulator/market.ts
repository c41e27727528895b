/**
 * A synthetic US stock market: random-walk prices per symbol, and the vendor's message shapes
 * for trades, quotes, bars, statuses, LULD bands, corrections, cancels and imbalances.
 *
 * Trade ids run per symbol in sequence from `tradeIdBase`, which by default sits just below
 * 2^53, so every symbol's ids cross into the range a double cannot hold after a few trades and a
 * consumer can check for gaps.
 */
import type { ChannelSet } from '../protocol/channel-set.js';
import { STOCKS } from '../protocol/streams.js';
import { Timestamp } from '../protocol/timestamp.js';
import { pick, type Random } from '../random.js';
import { type MarketMessage, type StreamMarket, wireId } from './stream-market.js';

export type { MarketMessage } from './stream-market.js';

/** Just below 2^53: the fifth trade of each symbol needs 64-bit precision. */
export const DEFAULT_TRADE_ID_BASE = 2n ** 53n - 4n;

const EXCHANGES = ['V', 'Q', 'N', 'P', 'K', 'Z'];
const CONDITIONS = [['@'], ['@', 'I'], ['@', 'F'], [' ', 'T']];

interface SymbolState {
  price: number;
  nextTradeId: bigint;
  lastTradeId: bigint | undefined;
  bar: { o: number; h: number; l: number; c: number; v: number; n: number; notional: number } | undefined;
  day: { o: number; h: number; l: number; v: number; n: number; notional: number } | undefined;
}

function cents(value: number): number {
  return Math.round(value * 100) / 100;
}

export class SyntheticMarket {
  readonly #random: Random;
  readonly #tradeIdBase: bigint;
  readonly #symbols = new Map<string, SymbolState>();

  constructor(random: Random, tradeIdBase: bigint = DEFAULT_TRADE_ID_BASE) {
    this.#random = random;
    this.#tradeIdBase = tradeIdBase;
  }

  #state(symbol: string): SymbolState {
    let state = this.#symbols.get(symbol);
    if (state === undefined) {
      state = { price: cents(20 + this.#random() * 480), nextTradeId: this.#tradeIdBase, lastTradeId: undefined, bar: undefined, day: undefined };
      this.#symbols.set(symbol, state);
    }
    return state;
  }

  #walk(state: SymbolState): number {
    const step = (this.#random() - 0.5) * state.price * 0.002;
    state.price = Math.max(0.01, cents(state.price + step));
    return state.price;
  }

  /** The next trade of `symbol`, updating its minute and daily bar. */
  trade(symbol: string, t: Timestamp): MarketMessage {
    const state = this.#state(symbol);
    const price = this.#walk(state);
    const size = 1 + Math.floor(this.#random() * 500);
    const id = state.nextTradeId;
    state.nextTradeId += 1n;
    state.lastTradeId = id;
    const bar = (state.bar ??= { o: price, h: price, l: price, c: price, v: 0, n: 0, notional: 0 });
    bar.h = Math.max(bar.h, price);
    bar.l = Math.min(bar.l, price);
    bar.c = price;
    bar.v += size;
    bar.n += 1;
    bar.notional += price * size;
    const day = (state.day ??= { o: price, h: price, l: price, v: 0, n: 0, notional: 0 });
    day.h = Math.max(day.h, price);
    day.l = Math.min(day.l, price);
    day.v += size;
    day.n += 1;
    day.notional += price * size;
    return { T: 't', S: symbol, i: wireId(id), x: pick(this.#random, EXCHANGES), p: price, s: size, c: pick(this.#random, CONDITIONS), t, z: 'C' };
  }

  /** An NBBO quote around the current price. */
  quote(symbol: string, t: Timestamp): MarketMessage {
    const state = this.#state(symbol);
    const mid = this.#walk(state);
    const spread = Math.max(0.01, cents(mid * 0.0005));
    return {
      T: 'q',
      S: symbol,
      bx: pick(this.#random, EXCHANGES),
      bp: cents(Math.max(0.01, mid - spread)),
      bs: 1 + Math.floor(this.#random() * 10),
      ax: pick(this.#random, EXCHANGES),
      ap: cents(mid + spread),
      as: 1 + Math.floor(this.#random() * 10),
      c: ['R'],
      t,
      z: 'C',
    };
  }

  /**
   * The minute bar (`b`) for the minute that `t` closes, then resets it; `u` for an updated bar.
   * A symbol without trades that minute gets a flat bar at its price.
   */
  bar(symbol: string, t: Timestamp, type: 'b' | 'u' = 'b'): MarketMessage {
    const state = this.#state(symbol);
    const bar = state.bar ?? { o: state.price, h: state.price, l: state.price, c: state.price, v: 0, n: 0, notional: 0 };
    if (type === 'b') state.bar = undefined;
    const minute = new Timestamp(Math.floor(t.seconds / 60) * 60 - 60, 0);
    const vw = bar.v === 0 ? bar.c : Math.round((bar.notional / bar.v) * 1e6) / 1e6;
    return { T: type, S: symbol, o: bar.o, h: bar.h, l: bar.l, c: bar.c, v: bar.v, t: minute, n: bar.n, vw };
  }

  /** The daily bar so far. */
  dailyBar(symbol: string, t: Timestamp): MarketMessage {
    const state = this.#state(symbol);
    const day = state.day ?? { o: state.price, h: state.price, l: state.price, v: 0, n: 0, notional: 0 };
    const midnight = new Timestamp(Math.floor(t.seconds / 86_400) * 86_400, 0);
    const vw = day.v === 0 ? state.price : Math.round((day.notional / day.v) * 1e6) / 1e6;
    return { T: 'd', S: symbol, o: day.o, h: day.h, l: day.l, c: state.price, v: day.v, t: midnight, n: day.n, vw };
  }

  /** A trading status message: halts and resumptions alternate at random. */
  status(symbol: string, t: Timestamp): MarketMessage {
    const halted = this.#random() < 0.5;
    return halted
      ? { T: 's', S: symbol, sc: 'H', sm: 'Trading Halt', rc: 'T12', rm: 'Trading Halted; For information requested by NASDAQ', t, z: 'C' }
      : { T: 's', S: symbol, sc: 'T', sm: 'Trading Resumption', rc: 'T1', rm: 'Halt News Pending', t, z: 'C' };
  }

  /** Limit-up/limit-down bands 5% around the price. */
  luld(symbol: string, t: Timestamp): MarketMessage {
    const price = this.#state(symbol).price;
    return { T: 'l', S: symbol, u: cents(price * 1.05), d: cents(price * 0.95), i: 'B', t, z: 'C' };
  }

  /** A correction of the symbol's last trade (a trade first if it has none). */
  correction(symbol: string, t: Timestamp): MarketMessage {
    const state = this.#state(symbol);
    if (state.lastTradeId === undefined) this.trade(symbol, t);
    const id = state.lastTradeId as bigint;
    const corrected = state.nextTradeId;
    state.nextTradeId += 1n;
    return {
      T: 'c',
      S: symbol,
      x: pick(this.#random, EXCHANGES),
      oi: wireId(id),
      op: state.price,
      os: 100,
      oc: [' '],
      ci: wireId(corrected),
      cp: cents(state.price + 0.01),
      cs: 100,
      cc: [' '],
      t,
      z: 'C',
    };
  }

  /** A cancel of the symbol's last trade. */
  cancel(symbol: string, t: Timestamp): MarketMessage {
    const state = this.#state(symbol);
    if (state.lastTradeId === undefined) this.trade(symbol, t);
    return { T: 'x', S: symbol, i: wireId(state.lastTradeId as bigint), x: pick(this.#random, EXCHANGES), p: state.price, s: 100, a: 'C', t, z: 'C' };
  }

  /** An order imbalance. */
  imbalance(symbol: string, t: Timestamp): MarketMessage {
    return { T: 'i', S: symbol, p: this.#state(symbol).price, z: 'C', t };
  }
}

/** The stock stream's market for the simulator: trades (now and then corrected or cancelled), quotes, bars and statuses. */
export class StockMarket implements StreamMarket {
  readonly kind = STOCKS;
  readonly universe: readonly string[];
  readonly #market: SyntheticMarket;
  readonly #random: Random;
  readonly #correctionRate: number;

  constructor(random: Random, options: { universe: readonly string[]; tradeIdBase: bigint; correctionRate: number }) {
    this.#random = random;
    this.#market = new SyntheticMarket(random, options.tradeIdBase);
    this.universe = options.universe;
    this.#correctionRate = options.correctionRate;
  }

  flow(held: ChannelSet, count: number, t: Timestamp): MarketMessage[] {
    const ticking = [...new Set([...held.symbols('trades'), ...held.symbols('quotes')])];
    const out: MarketMessage[] = [];
    if (ticking.length === 0) return out;
    for (let i = 0; i < count; i++) {
      const symbol = ticking[Math.floor(this.#random() * ticking.length)] as string;
      const wantsTrades = held.has('trades', symbol);
      const isTrade = wantsTrades && (!held.has('quotes', symbol) || this.#random() < 0.4);
      if (!isTrade) {
        out.push(this.#market.quote(symbol, t));
        continue;
      }
      out.push(this.#market.trade(symbol, t));
      const roll = this.#random();
      if (roll < this.#correctionRate / 2) out.push(this.#market.correction(symbol, t));
      else if (roll < this.#correctionRate) out.push(this.#market.cancel(symbol, t));
    }
    return out;
  }

  bars(held: ChannelSet, t: Timestamp): MarketMessage[] {
    return [
      ...[...held.symbols('bars')].map((symbol) => this.#market.bar(symbol, t)),
      ...[...held.symbols('updatedBars')].map((symbol) => this.#market.bar(symbol, t, 'u')),
      ...[...held.symbols('dailyBars')].map((symbol) => this.#market.dailyBar(symbol, t)),
    ];
  }

  statuses(held: ChannelSet, t: Timestamp): MarketMessage[] {
    return [
      ...[...held.symbols('statuses')].map((symbol) => this.#market.status(symbol, t)),
      ...[...held.symbols('lulds')].map((symbol) => this.#market.luld(symbol, t)),
      ...[...held.symbols('imbalances')].map((symbol) => this.#market.imbalance(symbol, t)),
    ];
  }
}
