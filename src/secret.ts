import { inspect } from 'node:util';
import { ConfigError } from './errors.js';

/** What a secret looks like in every log line, error and `inspect()` output. */
export const REDACTED = '[redacted]';

/**
 * A credential that cannot leak by accident: `String()`, `JSON.stringify`, `util.inspect` and
 * pino's serializer all print {@link REDACTED}. The value is reachable only through `reveal()`,
 * called where it is written to the wire or compared.
 */
export class Secret {
  readonly #value: string;

  /** @param name what the secret is (for the error when it is empty); never its value. */
  constructor(value: string, name = 'secret') {
    if (typeof value !== 'string' || value.length === 0) {
      throw new ConfigError(name, 'must not be empty');
    }
    this.#value = value;
  }

  /** The plain value, for the one place that writes it to the wire or compares it. */
  reveal(): string {
    return this.#value;
  }

  toString(): string {
    return REDACTED;
  }

  toJSON(): string {
    return REDACTED;
  }

  [inspect.custom](): string {
    return `Secret(${REDACTED})`;
  }
}

/**
 * pino `redact` paths for secrets that arrive as plain strings before they are wrapped: HTTP
 * authorization headers, the vendor's key headers, and auth frames' `secret`.
 */
export const REDACT_PATHS: readonly string[] = Object.freeze([
  'req.headers.authorization',
  'req.headers["apca-api-secret-key"]',
  'req.headers["apca-api-key-id"]',
  'headers.authorization',
  'headers["apca-api-secret-key"]',
  'headers["apca-api-key-id"]',
  'secret',
  'key',
  '*.secret',
  '*.key',
  'token',
  '*.token',
  'controlToken',
]);
