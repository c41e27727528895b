/**
 * A replay's window as people write it (DESIGN.md §12): instants in RFC 3339 with up to nine
 * fractional digits, or a Unix time in milliseconds; a speed that is a positive number or `max`.
 * Used by the gateway's `/replay/…` query and by `tickmux replay` / `tickmux tape export`.
 */
import { ProtocolError, TickmuxError } from '../errors.js';
import { Timestamp } from '../protocol/timestamp.js';
import type { ReplayWindow } from './replay.js';

/** A window or instant that cannot be used; the message says which value and why. */
export class WindowError extends TickmuxError {
  constructor(message: string) {
    super('ERR_REPLAY_WINDOW', message);
  }
}

/** ns since the epoch of `text`: RFC 3339 (any offset, up to ns) or whole Unix milliseconds. */
export function parseInstant(name: string, text: string): bigint {
  if (/^\d{1,16}$/.test(text)) return BigInt(text) * 1_000_000n;
  try {
    return Timestamp.parse(text).toEpochNanos();
  } catch (err) {
    if (err instanceof ProtocolError) throw new WindowError(`${name} must be an RFC 3339 time (up to nanoseconds, e.g. 2026-12-06T14:30:00.123456789Z) or Unix milliseconds; got ${JSON.stringify(text.slice(0, 64))}`);
    throw err;
  }
}

/** RFC 3339 with every nanosecond digit (trailing zeros trimmed, as the vendor writes its times). */
export function nsText(ns: bigint): string {
  return Timestamp.fromEpochNanos(ns).toString();
}

/** `1` (as recorded), any positive number, or `max` (as fast as the client reads). */
export function parseSpeed(text: string | undefined): number | 'max' {
  if (text === undefined) return 1;
  if (text === 'max') return 'max';
  const speed = /^\d+(\.\d+)?$/.test(text) ? Number(text) : Number.NaN;
  if (!(speed > 0) || !Number.isFinite(speed)) throw new WindowError(`speed must be a positive number (1 = as recorded) or max; got ${JSON.stringify(text.slice(0, 32))}`);
  return speed;
}

/** The window of `from`, `to` and `speed`; `to` absent: `endNs` (the end of the tape now, if known). */
export function replayWindow(from: string | undefined, to: string | undefined, speed: string | undefined, endNs?: bigint): ReplayWindow {
  if (from === undefined) throw new WindowError('from is required: the start of the window (RFC 3339 or Unix milliseconds)');
  const fromNs = parseInstant('from', from);
  const toNs = to === undefined ? endNs : parseInstant('to', to);
  if (toNs !== undefined && to !== undefined && toNs < fromNs) throw new WindowError('to is before from');
  return { fromNs, toNs, speed: parseSpeed(speed) };
}
