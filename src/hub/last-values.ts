/**
 * The last message seen per (channel, symbol), for `?snapshot=1`: a client that subscribes gets
 * the latest trade, quote, bar… of each newly subscribed symbol at once instead of waiting. As it
 * sees every vendor message, it also marks a state message `superseded` when a newer one arrives,
 * which is all conflation needs (outbound-queue.ts).
 */
import type { Channel } from '../protocol/channels.js';
import type { MessageUnit } from '../protocol/frame.js';
import { STOCKS, type StreamKind } from '../protocol/streams.js';

export class LastValues {
  readonly #kind: StreamKind;
  readonly #values = new Map<Channel, Map<string, MessageUnit>>();
  /** stored since the last settle(); most are replaced within the turn and never need a copy */
  #fresh: MessageUnit[] = [];

  /** A cache for a stream of `kind`: it keeps the kind's last-value types. */
  constructor(kind: StreamKind = STOCKS) {
    this.#kind = kind;
  }

  /** Remembers `unit` if it is the kind of message a snapshot carries. */
  store(unit: MessageUnit): void {
    if (unit.type === undefined || unit.symbol === undefined || !this.#kind.lastValueTypes.has(unit.type)) return;
    const channel = this.#kind.typeToChannel[unit.type];
    if (channel === undefined) return;
    let bySymbol = this.#values.get(channel);
    if (bySymbol === undefined) {
      bySymbol = new Map();
      this.#values.set(channel, bySymbol);
    }
    const older = bySymbol.get(unit.symbol);
    // The kind's state messages (quotes, bars…) are conflatable: a lagging client may skip the older.
    if (older !== undefined && older.type === unit.type && this.#kind.conflatable.has(unit.type)) older.superseded = true;
    bySymbol.set(unit.symbol, unit);
    this.#fresh.push(unit);
  }

  /**
   * End of a fan-out turn: the values still current get bytes of their own, so the cache never
   * holds a whole vendor frame for the sake of one message (DESIGN.md §11).
   */
  settle(): void {
    const fresh = this.#fresh;
    if (fresh.length === 0) return;
    this.#fresh = [];
    for (const unit of fresh) {
      const channel = this.#kind.typeToChannel[unit.type as string] as Channel;
      if (this.#values.get(channel)?.get(unit.symbol as string) === unit) unit.detach();
    }
  }

  /** The last message of `channel` for `symbol`; for `*`, the last of every symbol. */
  get(channel: Channel, symbol: string): MessageUnit[] {
    const bySymbol = this.#values.get(channel);
    if (bySymbol === undefined) return [];
    if (symbol === '*') return [...bySymbol.values()];
    const unit = bySymbol.get(symbol);
    return unit === undefined ? [] : [unit];
  }

  /** Forgets the last value of (channel, symbol) (a cluster follower no longer receives them). */
  forget(channel: Channel, symbol: string): void {
    this.#values.get(channel)?.delete(symbol);
  }

  /** The symbols of `channel` with a last value. */
  symbols(channel: Channel): string[] {
    return [...(this.#values.get(channel)?.keys() ?? [])];
  }

  /** Whether (channel, symbol) has a last value. */
  has(channel: Channel, symbol: string): boolean {
    return this.#values.get(channel)?.has(symbol) === true;
  }

  get size(): number {
    let n = 0;
    for (const bySymbol of this.#values.values()) n += bySymbol.size;
    return n;
  }
}
