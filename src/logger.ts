import { type DestinationStream, type Logger, type LoggerOptions, pino } from 'pino';
import pretty from 'pino-pretty';
import { REDACT_PATHS } from './secret.js';

/** pino options every tickmux logger uses: level, secret redaction, no pid/hostname noise. */
export function loggerOptions(level: string): LoggerOptions {
  return {
    level,
    base: { service: 'tickmux' },
    redact: { paths: [...REDACT_PATHS], censor: '[redacted]' },
  };
}

/** A logger for the process, or for a test that captures `destination`. */
export function createLogger(level = 'info', destination?: DestinationStream): Logger {
  return destination === undefined ? pino(loggerOptions(level)) : pino(loggerOptions(level), destination);
}

/**
 * The process's logger: one JSON object per line for collectors, and readable lines (pino-pretty,
 * in this thread, synchronously) when stdout is a terminal, as for `npm start` by hand. Redaction
 * happens before either, so secrets are censored in both.
 */
export function processLogger(level = 'info', terminal = process.stdout.isTTY === true): Logger {
  if (!terminal) return createLogger(level);
  return createLogger(level, pretty({ colorize: true, sync: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'service' }));
}

export type { Logger };
