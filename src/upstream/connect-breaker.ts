import { EventEmitter } from 'node:events';
import CircuitBreaker from 'opossum';

export type BreakerState = 'closed' | 'open' | 'half-open';

/**
 * An opossum circuit breaker around vendor connect attempts, tuned to open after `failures`
 * **consecutive** failed attempts: the rolling window has one bucket, rotated (emptied) on every
 * success, so its counts are always "failures since the last success"; with `volumeThreshold`
 * at `failures` and every counted attempt a failure, the Nth one opens it. After `resetMs`
 * opossum lets one probe through (half-open): success closes it, failure re-opens it.
 *
 * The window is rotated by us, not by a timer, and snapshots are off, so the only timer is
 * opossum's reset timer (unref'd) and `shutdown()` clears it.
 */
export class ConnectBreaker {
  readonly #breaker: CircuitBreaker<[() => Promise<void>], void>;
  readonly #rotate = new EventEmitter();

  constructor(failures: number, resetMs: number) {
    this.#breaker = new CircuitBreaker((attempt: () => Promise<void>) => attempt(), {
      timeout: false, // the link has its own connect and auth deadlines
      resetTimeout: resetMs,
      volumeThreshold: failures,
      errorThresholdPercentage: 50,
      rollingCountBuckets: 1,
      rollingCountTimeout: 1000, // unused: buckets rotate on success only
      rotateBucketController: this.#rotate,
      enableSnapshots: false,
      rollingPercentilesEnabled: false,
      name: 'vendor-connect',
    });
    this.#breaker.on('success', () => this.#rotate.emit('rotate'));
  }

  get state(): BreakerState {
    if (this.#breaker.opened) return 'open';
    return this.#breaker.halfOpen ? 'half-open' : 'closed';
  }

  /** Consecutive failed attempts since the last success. */
  get failures(): number {
    return this.#breaker.stats.failures;
  }

  /**
   * Runs one attempt through the breaker.
   * @throws the attempt's own error, or opossum's `EOPENBREAKER` error while open
   */
  fire(attempt: () => Promise<void>): Promise<void> {
    return this.#breaker.fire(attempt);
  }

  /** Calls `listener` when the reset time has passed and one probe may go through. */
  onHalfOpen(listener: () => void): () => void {
    this.#breaker.on('halfOpen', listener);
    return () => this.#breaker.off('halfOpen', listener);
  }

  onOpen(listener: () => void): () => void {
    this.#breaker.on('open', listener);
    return () => this.#breaker.off('open', listener);
  }

  /** Closes the breaker and forgets its failures (an operator's restart). */
  reset(): void {
    this.#rotate.emit('rotate');
    this.#breaker.close();
  }

  /** Clears opossum's timer and listeners; the breaker refuses every attempt afterwards. */
  shutdown(): void {
    this.#breaker.shutdown();
  }
}

/** Whether `err` is opossum's refusal of an attempt while the breaker is open. */
export function isBreakerOpenError(err: unknown): boolean {
  return err instanceof Error && (err as { code?: string }).code === 'EOPENBREAKER';
}
