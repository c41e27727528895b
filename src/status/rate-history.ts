/**
 * The status page's rates: every interval (a second by default, on the gateway's injected clock)
 * it reads the counters the core already keeps — the vendor link's data messages and the hub's
 * deliveries — and keeps, per stream, the last few minutes of per-second rates in a fixed ring.
 * Nothing on the hot path changes: a sample costs two counter reads per stream.
 */
import type { Clock } from '../clock.js';

/** One sample: when it was taken (clock ms) and the rates since the one before (per second). */
export interface RatePoint {
  readonly at: number;
  /** vendor data messages per second on the stream's link */
  readonly messages: number;
  /** messages per second delivered to clients (one per client a message reached) */
  readonly deliveries: number;
}

/** The running totals a sample reads for one stream. */
export interface RateSource {
  readonly path: string;
  /** vendor data messages received so far */
  messages(): number;
  /** deliveries to clients so far */
  deliveries(): number;
}

export interface RateHistoryOptions {
  readonly sources: readonly RateSource[];
  readonly clock: Clock;
  /** between samples (default 1000 ms) */
  readonly intervalMs?: number;
  /** samples kept per stream (default 300: five minutes at one a second) */
  readonly points?: number;
  /** called after each sample, on the clock's timer */
  readonly onSample?: () => void;
}

/** A fixed ring of the last `capacity` points. */
class PointRing {
  readonly #points: RatePoint[] = [];
  #next = 0;

  constructor(readonly capacity: number) {}

  push(point: RatePoint): void {
    if (this.#points.length < this.capacity) this.#points.push(point);
    else this.#points[this.#next] = point;
    this.#next = (this.#next + 1) % this.capacity;
  }

  /** Oldest first. */
  toArray(): RatePoint[] {
    if (this.#points.length < this.capacity) return [...this.#points];
    return [...this.#points.slice(this.#next), ...this.#points.slice(0, this.#next)];
  }

  get latest(): RatePoint | undefined {
    if (this.#points.length === 0) return undefined;
    return this.#points[(this.#next - 1 + this.capacity) % this.capacity];
  }
}

interface Tracked {
  readonly source: RateSource;
  readonly ring: PointRing;
  messages: number;
  deliveries: number;
}

/** Per-stream rates over the last minutes, sampled on a clock. */
export class RateHistory {
  readonly intervalMs: number;
  readonly points: number;
  readonly #clock: Clock;
  readonly #tracked: Map<string, Tracked>;
  readonly #onSample: (() => void) | undefined;
  #lastAt: number;
  #timer: unknown;
  #running = false;

  constructor(options: RateHistoryOptions) {
    this.#clock = options.clock;
    this.intervalMs = options.intervalMs ?? 1000;
    this.points = options.points ?? 300;
    this.#onSample = options.onSample;
    this.#lastAt = this.#clock.now();
    this.#tracked = new Map(
      options.sources.map((source) => [source.path, { source, ring: new PointRing(this.points), messages: source.messages(), deliveries: source.deliveries() }]),
    );
  }

  /** Starts sampling every `intervalMs` (idempotent). */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#lastAt = this.#clock.now();
    for (const tracked of this.#tracked.values()) {
      tracked.messages = tracked.source.messages();
      tracked.deliveries = tracked.source.deliveries();
    }
    this.#schedule();
  }

  /** Stops sampling; no timer is left behind (idempotent). */
  stop(): void {
    this.#running = false;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #schedule(): void {
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      if (!this.#running) return;
      this.sample();
      this.#schedule();
      this.#onSample?.();
    }, this.intervalMs);
  }

  /** Takes one sample now: the rates since the last one, per second of clock time. */
  sample(): void {
    const now = this.#clock.now();
    const seconds = Math.max(now - this.#lastAt, 1) / 1000;
    this.#lastAt = now;
    for (const tracked of this.#tracked.values()) {
      const messages = tracked.source.messages();
      const deliveries = tracked.source.deliveries();
      // A counter that started over (a new link object) is not a negative rate.
      tracked.ring.push({ at: now, messages: Math.max(0, messages - tracked.messages) / seconds, deliveries: Math.max(0, deliveries - tracked.deliveries) / seconds });
      tracked.messages = messages;
      tracked.deliveries = deliveries;
    }
  }

  /** The points of the stream at `path`, oldest first (empty before the first sample). */
  history(path: string): RatePoint[] {
    return this.#tracked.get(path)?.ring.toArray() ?? [];
  }

  /** The stream's latest point, if any. */
  latest(path: string): RatePoint | undefined {
    return this.#tracked.get(path)?.ring.latest;
  }
}
