/**
 * The order books the vendor has streamed on the current link session, per symbol, so a client
 * that starts holding a book the vendor already streams gets it whole (PROTOCOL-STREAMS.md §1.3).
 * The vendor sends a book's reset only when its own subscription starts: a second holder of the
 * same book would otherwise get updates to a book it never had, with no sequence number to tell.
 *
 * A book is known once its reset has passed through on this link session; updates before that
 * are ignored (the reset is on its way and reaches every holder by normal routing). Every book
 * goes when the link leaves `live`: a restored link resubscribes and the vendor sends fresh resets.
 *
 * A book is kept while the link stays live even after its last client leaves: a pair that leaves
 * and re-enters the desired set within the link's sync interval keeps its vendor subscription and
 * gets no new reset, so deleting the book would leave that late subscriber without one. The
 * memory is bounded by the order-book symbols subscribed during one link session.
 */
import type { Logger } from 'pino';
import { WILDCARD } from '../protocol/channels.js';
import type { Encoding, MessageUnit } from '../protocol/frame.js';
import { type BookLevel, type BookMessage, bookResetUnit, type RawValue, readBookMessage } from '../protocol/order-book-message.js';
import type { StreamKind } from '../protocol/streams.js';

/** One symbol's book: size by price per side, and the latest `t` as the vendor wrote it. */
class OrderBook {
  readonly #bids = new Map<number, number>();
  readonly #asks = new Map<number, number>();
  #t: RawValue | undefined;
  /** the encoding of its last message, for a reset written without a `t` */
  #encoding: Encoding;
  /** the reset written for the book as it is now, shared by the clients that join before it changes */
  #reset: MessageUnit | undefined;

  constructor(encoding: Encoding) {
    this.#encoding = encoding;
  }

  /** Sets each level of the message (`s` 0 removes it) and keeps its `t`. */
  apply(message: BookMessage, encoding: Encoding): void {
    setLevels(this.#bids, message.bids);
    setLevels(this.#asks, message.asks);
    if (message.t !== undefined) this.#t = message.t;
    this.#encoding = encoding;
    this.#reset = undefined;
  }

  resetUnit(symbol: string, type: string, kind: StreamKind): MessageUnit {
    this.#reset ??= bookResetUnit({ symbol, t: this.#t, bids: sorted(this.#bids, 'desc'), asks: sorted(this.#asks, 'asc') }, type, kind, this.#encoding).detach();
    return this.#reset;
  }
}

function setLevels(side: Map<number, number>, levels: readonly BookLevel[]): void {
  for (const { p, s } of levels) {
    if (s === 0) side.delete(p);
    else side.set(p, s);
  }
}

function sorted(side: Map<number, number>, order: 'asc' | 'desc'): BookLevel[] {
  const prices = [...side.keys()].sort((x, y) => (order === 'asc' ? x - y : y - x));
  return prices.map((p) => ({ p, s: side.get(p) as number }));
}

export class OrderBooks {
  readonly #kind: StreamKind;
  /** the kind's order-book message type (`o`) */
  readonly #type: string;
  readonly #logger: Logger;
  readonly #books = new Map<string, OrderBook>();

  /** Books for a stream of `kind`, or undefined when it carries none (stocks, options, news). */
  static for(kind: StreamKind, logger: Logger): OrderBooks | undefined {
    const type = Object.keys(kind.typeToChannel).find((t) => kind.typeToChannel[t] === 'orderbooks');
    return type === undefined ? undefined : new OrderBooks(kind, type, logger);
  }

  private constructor(kind: StreamKind, type: string, logger: Logger) {
    this.#kind = kind;
    this.#type = type;
    this.#logger = logger;
  }

  /** Follows the order-book messages among a vendor frame's units. */
  apply(units: readonly MessageUnit[]): void {
    for (const unit of units) if (unit.type === this.#type && unit.symbol !== undefined) this.#applyOne(unit, unit.symbol);
  }

  #applyOne(unit: MessageUnit, symbol: string): void {
    const message = readBookMessage(unit);
    if (message === undefined) {
      // A book that missed a change is wrong until the vendor's next reset: better none than that.
      if (this.#books.delete(symbol)) this.#logger.warn({ symbol }, 'unreadable order-book message; the book is unknown until the next reset');
      return;
    }
    let book = this.#books.get(symbol);
    if (message.reset) {
      book = new OrderBook(unit.sourceEncoding);
      this.#books.set(symbol, book);
    }
    book?.apply(message, unit.sourceEncoding);
  }

  /** Forgets every book (the link left `live`: what comes next starts from fresh resets). */
  clear(): void {
    this.#books.clear();
  }

  /** The current book of `symbol` as a reset message, none when it is unknown; for `*`, every known book. */
  resets(symbol: string): MessageUnit[] {
    if (symbol === WILDCARD) return [...this.#books].map(([s, book]) => book.resetUnit(s, this.#type, this.#kind));
    const book = this.#books.get(symbol);
    return book === undefined ? [] : [book.resetUnit(symbol, this.#type, this.#kind)];
  }

  /** Forgets one symbol's book (a cluster follower no longer receives its updates). */
  forget(symbol: string): void {
    this.#books.delete(symbol);
  }

  /** The symbols whose books are known. */
  symbols(): string[] {
    return [...this.#books.keys()];
  }

  /** How many books are known. */
  get size(): number {
    return this.#books.size;
  }
}
