/**
 * A synthetic options market as Alpaca's `v1beta1/indicative` and `v1beta1/opra` stream it
 * (PROTOCOL-STREAMS.md §2): trades and quotes on OCC contracts, integer sizes, OPRA participant
 * letters as exchanges, one condition as a string. No trade ids: options trades carry none.
 *
 * VERIFY (indicative trades are delayed 15 minutes at the vendor): stamped with the time they
 * are sent, as the sources do not say whether `t` is the original time.
 */
import type { ChannelSet } from '../protocol/channel-set.js';
import { OPTIONS } from '../protocol/streams.js';
import type { Timestamp } from '../protocol/timestamp.js';
import { pick, type Random } from '../random.js';
import { type MarketMessage, round, type StreamMarket } from './stream-market.js';

export const DEFAULT_OPTION_UNIVERSE = [
  'AAPL250117C00150000',
  'AAPL250117P00150000',
  'SPY250321C00500000',
  'SPXW250327P04925000',
  'TSLA250620C00250000',
  'NVDA250117C00120000',
];

/** OPRA participant ids (one letter per options exchange). */
const EXCHANGES = ['A', 'B', 'C', 'D', 'E', 'H', 'I', 'J', 'M', 'N', 'P', 'Q', 'S', 'T', 'U', 'V', 'W', 'X', 'Z'];
/** OPRA condition codes seen on the stream; case-sensitive. */
const TRADE_CONDITIONS = ['I', 'S', 'a', 'e', 'f', 'g'];
const QUOTE_CONDITIONS = ['A'];

export class OptionMarket implements StreamMarket {
  readonly kind = OPTIONS;
  readonly universe: readonly string[];
  readonly #random: Random;
  readonly #prices = new Map<string, number>();

  constructor(random: Random, options: { universe?: readonly string[] } = {}) {
    this.#random = random;
    this.universe = options.universe ?? DEFAULT_OPTION_UNIVERSE;
  }

  #walk(symbol: string): number {
    const previous = this.#prices.get(symbol) ?? round(0.5 + this.#random() * 20, 2);
    const price = Math.max(0.01, round(previous + (this.#random() - 0.5) * 0.1, 2));
    this.#prices.set(symbol, price);
    return price;
  }

  flow(held: ChannelSet, count: number, t: Timestamp): MarketMessage[] {
    const ticking = [...new Set([...held.symbols('trades'), ...held.symbols('quotes')])];
    const out: MarketMessage[] = [];
    if (ticking.length === 0) return out;
    for (let i = 0; i < count; i++) {
      const symbol = pick(this.#random, ticking);
      const isTrade = held.has('trades', symbol) && (!held.has('quotes', symbol) || this.#random() < 0.3);
      out.push(isTrade ? this.trade(symbol, t) : this.quote(symbol, t));
    }
    return out;
  }

  trade(symbol: string, t: Timestamp): MarketMessage {
    const p = this.#walk(symbol);
    return { T: 't', S: symbol, t, p, s: 1 + Math.floor(this.#random() ** 2 * 50), x: pick(this.#random, EXCHANGES), c: pick(this.#random, TRADE_CONDITIONS) };
  }

  quote(symbol: string, t: Timestamp): MarketMessage {
    const mid = this.#walk(symbol);
    return {
      T: 'q',
      S: symbol,
      t,
      bx: pick(this.#random, EXCHANGES),
      bp: Math.max(0.01, round(mid - 0.05, 2)),
      bs: 1 + Math.floor(this.#random() * 100),
      ax: pick(this.#random, EXCHANGES),
      ap: round(mid + 0.05, 2),
      as: 1 + Math.floor(this.#random() * 100),
      c: pick(this.#random, QUOTE_CONDITIONS),
    };
  }
}
