/**
 * A synthetic news wire as Alpaca's `v1beta1/news` streams it (PROTOCOL-STREAMS.md §3): one item
 * per news interval while anyone holds news, with every key the SDKs require (`url` may be null,
 * `content` may be empty or several kilobytes of HTML) and a list of `symbols` instead of `S`.
 *
 * Ids run in sequence, so a consumer can check for gaps. `created_at`/`updated_at` are whole
 * seconds, as in every vendor example (VERIFY: sub-second dates).
 */
import type { ChannelSet } from '../protocol/channel-set.js';
import { NEWS } from '../protocol/streams.js';
import { Timestamp } from '../protocol/timestamp.js';
import { pick, type Random } from '../random.js';
import { type MarketMessage, type StreamMarket } from './stream-market.js';

export const DEFAULT_NEWS_UNIVERSE = ['AAPL', 'MSFT', 'NVDA', 'TSLA', 'BRK.B', 'SPY', 'BTCUSD', 'ETHUSD'];

/** The first article id (DOC-NEWS examples are around here). */
const FIRST_ID = 24_918_784;
const AUTHORS = ['Benzinga Newsdesk', 'Globe Newswire', 'Erica Kollmann', 'Business Wire'];
const VERBS = ['beats estimates', 'announces buyback', 'files 8-K', 'sees unusual options activity', 'raises guidance', 'prices offering'];

export class NewsWire implements StreamMarket {
  readonly kind = NEWS;
  readonly universe: readonly string[];
  readonly #random: Random;
  #nextId = FIRST_ID;

  constructor(random: Random, options: { universe?: readonly string[] } = {}) {
    this.#random = random;
    this.universe = options.universe ?? DEFAULT_NEWS_UNIVERSE;
  }

  /** One item about a held symbol (and maybe others); every fifth about nothing in particular. */
  news(held: ChannelSet, t: Timestamp): MarketMessage[] {
    const symbols = [...held.symbols('news')];
    if (symbols.length === 0) return [];
    return [this.item(this.#nextId % 5 === 4 ? [] : this.#symbolsFor(pick(this.#random, symbols)), t)];
  }

  #symbolsFor(main: string): string[] {
    const out = new Set([main]);
    const extra = Math.floor(this.#random() * 3);
    for (let i = 0; i < extra; i++) out.add(pick(this.#random, this.universe));
    return [...out];
  }

  /** An article about `symbols`; every third carries several kilobytes of content. */
  item(symbols: readonly string[], t: Timestamp): MarketMessage {
    const id = this.#nextId++;
    const subject = symbols[0] ?? 'Markets';
    const headline = `${subject} ${pick(this.#random, VERBS)}`;
    const paragraph = `<p>${headline}. ${symbols.length > 1 ? `Also mentioned: ${symbols.slice(1).join(', ')}.` : ''} Shares moved in early trading as investors weighed the news.</p>`;
    const content = id % 3 === 0 ? paragraph.repeat(60) : id % 3 === 1 ? paragraph : '';
    const created = new Timestamp(t.seconds, 0);
    return {
      T: 'n',
      id,
      headline,
      summary: `${headline}.`,
      author: pick(this.#random, AUTHORS),
      created_at: created,
      updated_at: created,
      url: id % 4 === 0 ? null : `https://www.benzinga.com/news/${id}`,
      content,
      symbols: [...symbols],
      source: 'benzinga',
    };
  }
}
