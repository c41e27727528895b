/**
 * Error classes with stable codes, and the vendor's stream error table.
 *
 * Every error tickmux raises on purpose is a `TickmuxError` with a `code` that callers, logs and
 * tests can match on; the message is for people and never carries a secret.
 */

/** Base class: a stable machine-readable `code` plus an optional structured `details`. */
export class TickmuxError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A configuration value is missing, malformed or not allowed; the message names the variable. */
export class ConfigError extends TickmuxError {
  readonly variable: string;

  constructor(variable: string, message: string) {
    super('ERR_CONFIG', `${variable}: ${message}`);
    this.variable = variable;
  }
}

/** Bytes on a wire that do not follow the vendor protocol or its encodings. */
export class ProtocolError extends TickmuxError {
  constructor(message: string, options?: { cause?: unknown; code?: string }) {
    super(options?.code ?? 'ERR_PROTOCOL', message, options);
  }
}

/** A value that one encoding holds and the other cannot (for example NaN in JSON). */
export class ConversionError extends ProtocolError {
  constructor(message: string) {
    super(message, { code: 'ERR_CONVERSION' });
  }
}

/** The vendor link failed: connect, handshake, timeout, or a close the manager did not ask for. */
export class UpstreamError extends TickmuxError {
  constructor(message: string, options?: { cause?: unknown; code?: string }) {
    super(options?.code ?? 'ERR_UPSTREAM', message, options);
  }
}

/** The vendor (or tickmux, towards its clients) answered with one of its stream error codes. */
export class VendorError extends TickmuxError {
  readonly vendorCode: number;

  constructor(vendorCode: number, message = vendorErrorMessage(vendorCode)) {
    super(`ERR_VENDOR_${vendorCode}`, message);
    this.vendorCode = vendorCode;
  }
}

/** Credentials were refused (vendor 402, or a downstream client's key/secret). */
export class AuthError extends TickmuxError {
  constructor(message: string, code = 'ERR_AUTH') {
    super(code, message);
  }
}

/** A subscription change was refused (vendor 405/409/410, or a tickmux limit). */
export class SubscriptionError extends TickmuxError {
  readonly vendorCode: number;

  constructor(vendorCode: number, message = vendorErrorMessage(vendorCode)) {
    super('ERR_SUBSCRIPTION', message);
    this.vendorCode = vendorCode;
  }
}

/** A consumer fell behind past its buffer limit (vendor 407). */
export class SlowClientError extends TickmuxError {
  constructor(message = 'slow client') {
    super('ERR_SLOW_CLIENT', message);
  }
}

/**
 * The vendor's stream error codes and their exact texts (PROTOCOL.md §1.8). tickmux sends these
 * texts unchanged to its own clients, so SDKs that match on code or message keep working.
 */
export const VENDOR_ERRORS = Object.freeze({
  400: 'invalid syntax',
  401: 'not authenticated',
  402: 'auth failed',
  403: 'already authenticated',
  404: 'auth timeout',
  405: 'symbol limit exceeded',
  406: 'connection limit exceeded',
  407: 'slow client',
  408: 'v2 not enabled',
  409: 'insufficient subscription',
  410: 'invalid subscribe action for this feed',
  411: 'insufficient scope',
  412: 'option messages are only available in MsgPack format',
  413: 'star subscription is not allowed for option quotes',
  500: 'internal error',
} as const);

export type VendorErrorCode = keyof typeof VENDOR_ERRORS;

/** The vendor's text for a code; unknown codes get a neutral text rather than a throw. */
export function vendorErrorMessage(code: number): string {
  return (VENDOR_ERRORS as Record<number, string>)[code] ?? `error ${code}`;
}

/** Whether `code` is one the vendor documents. */
export function isKnownVendorCode(code: number): code is VendorErrorCode {
  return Object.hasOwn(VENDOR_ERRORS, code);
}
