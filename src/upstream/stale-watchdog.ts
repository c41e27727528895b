/**
 * Decides when a vendor link that is open, and answers pings, has gone mute (alpaca-py #740).
 *
 * The rule, explicit because quiet is normal on a market-data stream:
 * 1. It only judges a link whose acknowledged set includes one of its kind's flowing channels
 *    (`StreamKind.flowingChannels`: trades, quotes, order books). Bars, daily bars, statuses,
 *    LULDs, imbalances and news are legitimately silent for minutes.
 * 2. It only judges a link that has delivered data since it connected: a symbol set that has
 *    been quiet from the start (closed market, illiquid names) is quiet, not dead.
 * 3. The link is stale when its silence reaches `max(staleAfterMs, gapFactor × the longest gap
 *    between two data messages seen on this link)`: a feed that is naturally sparse earns a
 *    longer allowance than the fixed threshold.
 */
export class StaleWatchdog {
  readonly #staleAfterMs: number;
  readonly #gapFactor: number;
  #lastDataAt: number | undefined;
  #longestGapMs = 0;

  constructor(staleAfterMs: number, gapFactor = 10) {
    this.#staleAfterMs = staleAfterMs;
    this.#gapFactor = gapFactor;
  }

  /** A new connection: nothing seen yet. */
  reset(): void {
    this.#lastDataAt = undefined;
    this.#longestGapMs = 0;
  }

  /** Data arrived at `now`. */
  onData(now: number): void {
    if (this.#lastDataAt !== undefined) this.#longestGapMs = Math.max(this.#longestGapMs, now - this.#lastDataAt);
    this.#lastDataAt = now;
  }

  /** The silence that counts as stale on this link now. */
  get thresholdMs(): number {
    return Math.max(this.#staleAfterMs, this.#gapFactor * this.#longestGapMs);
  }

  /** Whether the link is stale at `now`, given whether a flowing channel is subscribed. */
  isStale(now: number, flowingSubscribed: boolean): boolean {
    if (!flowingSubscribed || this.#lastDataAt === undefined) return false;
    return now - this.#lastDataAt >= this.thresholdMs;
  }
}
