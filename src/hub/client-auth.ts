import { createHash, timingSafeEqual } from 'node:crypto';
import type { Secret } from '../secret.js';

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

/**
 * Checks downstream credentials against `CLIENT_KEYS` in constant time: both sides are hashed to
 * equal length first, so neither the secret's length nor its prefix leaks through timing. With no
 * keys configured (loopback only, protected mode) any non-empty key and secret is accepted.
 */
export class ClientAuthenticator {
  readonly #keys: ReadonlyMap<string, Buffer> | undefined;

  constructor(keys: ReadonlyMap<string, Secret> | undefined) {
    this.#keys = keys === undefined ? undefined : new Map([...keys].map(([key, secret]) => [key, digest(secret.reveal())]));
  }

  get open(): boolean {
    return this.#keys === undefined;
  }

  check(key: string, secret: string): boolean {
    if (key === '' || secret === '') return false;
    if (this.#keys === undefined) return true;
    const expected = this.#keys.get(key);
    // Compare against something even for an unknown key, so both paths cost the same.
    const ok = timingSafeEqual(expected ?? digest(''), digest(secret));
    return expected !== undefined && ok;
  }
}
