import { type DestinationStream, type Logger, type LoggerOptions, pino } from 'pino';
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

export type { Logger };
