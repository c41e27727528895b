import type { Random } from '../random.js';

/**
 * Exponential backoff with jitter: attempt n waits a uniform amount between half and all of
 * `min(max, base · 2^n)` ("equal jitter"), so a fleet of gateways does not reconnect in step and
 * no wait is ever shorter than half its nominal value. `reset()` starts over after a stable link.
 */
export class Backoff {
  readonly #baseMs: number;
  readonly #maxMs: number;
  readonly #random: Random;
  #attempt = 0;

  constructor(baseMs: number, maxMs: number, random: Random) {
    this.#baseMs = baseMs;
    this.#maxMs = maxMs;
    this.#random = random;
  }

  /** How many delays were handed out since the last reset. */
  get attempt(): number {
    return this.#attempt;
  }

  /** The next delay in milliseconds (whole numbers). */
  next(): number {
    const nominal = Math.min(this.#maxMs, this.#baseMs * 2 ** Math.min(this.#attempt, 52));
    this.#attempt += 1;
    return Math.round(nominal / 2 + (this.#random() * nominal) / 2);
  }

  reset(): void {
    this.#attempt = 0;
  }
}
