/**
 * Names the cluster puts into NATS (DESIGN.md §10). A stream path or a symbol becomes one token
 * that is valid both as a NATS subject token and as a JetStream KV key, and the mapping is
 * injective and reversible, so two different inputs never share a key or a subject.
 *
 * The escaping: ASCII letters, digits and `-` stand for themselves; every other UTF-8 byte,
 * `_` included, becomes `_` and two upper-case hex digits (`v2/iex` → `v2_2Fiex`). Because `_`
 * only ever starts an escape, decoding is unambiguous.
 */
import { TickmuxError } from '../errors.js';

const PLAIN = /^[A-Za-z0-9-]$/;

/** The name is not one `escapeToken` could have produced. */
export class TokenError extends TickmuxError {
  constructor(message: string) {
    super('ERR_CLUSTER_TOKEN', message);
  }
}

/** Escapes any non-empty string into a single NATS-subject and KV-key safe token. */
export function escapeToken(text: string): string {
  if (text === '') throw new TokenError('cannot escape an empty name');
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    const char = String.fromCharCode(byte);
    out += byte < 0x80 && PLAIN.test(char) ? char : `_${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** Reverses `escapeToken`; anything it could not have produced is a `TokenError`. */
export function unescapeToken(token: string): string {
  if (!/^(?:[A-Za-z0-9-]|_[0-9A-F]{2})+$/.test(token)) throw new TokenError(`${JSON.stringify(token)} is not an escaped token`);
  const bytes: number[] = [];
  for (let i = 0; i < token.length; i++) {
    if (token[i] === '_') {
      const byte = Number.parseInt(token.slice(i + 1, i + 3), 16);
      if (byte < 0x80 && PLAIN.test(String.fromCharCode(byte))) throw new TokenError(`${JSON.stringify(token)} escapes a plain character`);
      bytes.push(byte);
      i += 2;
    } else {
      bytes.push(token.charCodeAt(i));
    }
  }
  const text = Buffer.from(bytes).toString('utf8');
  if (escapeToken(text) !== token) throw new TokenError(`${JSON.stringify(token)} is not valid UTF-8 once unescaped`);
  return text;
}

/** A name usable as-is as a NATS subject token and KV bucket prefix (`CLUSTER_NAME`, `NODE_ID`). */
export const SAFE_NAME = /^[A-Za-z0-9_-]{1,64}$/;

/** The KV bucket holding one lease per stream path. */
export function leaseBucketName(clusterName: string): string {
  return `${clusterName}-leases`;
}

/** The lease key of a stream path (`v2/iex` → `v2_2Fiex`). */
export function leaseKey(streamPath: string): string {
  return escapeToken(streamPath);
}

/** The KV bucket holding each node's entry (its clients' interest per stream), with a max age. */
export function nodesBucketName(clusterName: string): string {
  return `${clusterName}-nodes`;
}

/** The KV bucket holding the operator-pinned set per stream path; it has no max age. */
export function pinnedBucketName(clusterName: string): string {
  return `${clusterName}-pinned`;
}

/**
 * Where the owner publishes a stream's vendor messages: one subject per (stream, channel, symbol),
 * `<cluster>.data.<stream>.<channel>.<symbol>`. A message without a channel or a single symbol
 * (a type the gateway does not know; a news item, which names a list) goes to
 * `<cluster>.data.<stream>._.<channel or _>`; `symbol` `*` gives the channel's wildcard subject.
 */
export function dataSubject(clusterName: string, streamPath: string, channel: string | undefined, symbol: string | undefined): string {
  const prefix = `${clusterName}.data.${escapeToken(streamPath)}`;
  if (channel === undefined || symbol === undefined) return `${prefix}._.${channel ?? '_'}`;
  return `${prefix}.${channel}.${symbol === '*' ? '*' : escapeToken(symbol)}`;
}

/** The owner's link state for a stream, published on change and as a heartbeat. */
export function stateSubject(clusterName: string, streamPath: string): string {
  return `${clusterName}.state.${escapeToken(streamPath)}`;
}

/** The vendor's refusals of symbols on a stream, for every node's clients. */
export function refusedSubject(clusterName: string, streamPath: string): string {
  return `${clusterName}.refused.${escapeToken(streamPath)}`;
}

/** Requests only the stream's owner answers (`restart`, `snapshot`, `sync`). */
export function ownerSubject(clusterName: string, streamPath: string, operation: string): string {
  return `${clusterName}.owner.${escapeToken(streamPath)}.${operation}`;
}

/** What a concrete data subject names (`dataSubject`'s arguments back); each is absent on a `_` subject. */
export interface DataSubjectParts {
  readonly channel: string | undefined;
  readonly symbol: string | undefined;
}

/**
 * Reverses `dataSubject` for one stream: the channel and symbol of a subject the owner could have
 * published on, or undefined for anything else (another stream, a wildcard, a symbol token that is
 * no escape's output). Channels are not checked against the stream's kind here.
 */
export function dataSubjectParts(clusterName: string, streamPath: string, subject: string): DataSubjectParts | undefined {
  const prefix = `${clusterName}.data.${escapeToken(streamPath)}.`;
  if (!subject.startsWith(prefix)) return undefined;
  const tokens = subject.slice(prefix.length).split('.');
  if (tokens.length !== 2) return undefined;
  const [first, second] = tokens as [string, string];
  if (first === '_') return second === '' ? undefined : { channel: second === '_' ? undefined : second, symbol: undefined };
  if (first === '' || second === '*' || second === '>') return undefined;
  try {
    return { channel: first, symbol: unescapeToken(second) };
  } catch (err) {
    if (err instanceof TokenError) return undefined;
    throw err;
  }
}
