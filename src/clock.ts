import { Timestamp } from './protocol/timestamp.js';

/**
 * Time as the core sees it, injected everywhere so tests control it: `now()` in epoch
 * milliseconds for deadlines, `nanos()` for nanosecond wall-clock timestamps, and timers.
 */
export interface Clock {
  now(): number;
  nanos(): bigint;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

// Wall time from the high-resolution time origin (microsecond precision, unlike Date.now()), so
// two processes on one machine agree closely enough to measure latency between them.
const monotonicAnchor = process.hrtime.bigint();
const wallAnchorNanos = BigInt(Math.round((performance.timeOrigin + performance.now()) * 1000)) * 1000n;

/** The real clock: wall time anchored once, then advanced by the monotonic high-resolution timer. */
export const systemClock: Clock = {
  now: () => Date.now(),
  nanos: () => wallAnchorNanos + (process.hrtime.bigint() - monotonicAnchor),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/** The clock's current time as a nanosecond `Timestamp`. */
export function timestampNow(clock: Clock): Timestamp {
  return Timestamp.fromEpochNanos(clock.nanos());
}
