import type { Clock } from '../../src/clock.js';

interface Timer {
  id: number;
  at: number;
  fn: () => void;
}

/**
 * A clock that moves only when the test says so. Timers run in due order when `advance` passes
 * them, including timers those timers schedule, so backoff, heartbeats and deadlines run without
 * any real wait.
 */
export class FakeClock implements Clock {
  #now: number;
  #seq = 0;
  readonly #timers = new Map<number, Timer>();

  constructor(start = Date.UTC(2024, 0, 2, 14, 30)) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  nanos(): bigint {
    return BigInt(this.#now) * 1_000_000n;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.#seq;
    this.#timers.set(id, { id, at: this.#now + Math.max(0, ms), fn });
    return id;
  }

  clearTimeout(handle: unknown): void {
    if (typeof handle === 'number') this.#timers.delete(handle);
  }

  /** Pending timers, soonest first, with how far away each is. */
  pending(): { at: number; inMs: number }[] {
    return [...this.#timers.values()].sort((a, b) => a.at - b.at || a.id - b.id).map((t) => ({ at: t.at, inMs: t.at - this.#now }));
  }

  /** Moves time forward by `ms`, running every timer that falls due on the way. */
  advance(ms: number): void {
    const end = this.#now + ms;
    for (;;) {
      const next = [...this.#timers.values()].filter((t) => t.at <= end).sort((a, b) => a.at - b.at || a.id - b.id)[0];
      if (next === undefined) break;
      this.#timers.delete(next.id);
      this.#now = Math.max(this.#now, next.at);
      next.fn();
    }
    this.#now = end;
  }
}
