import { ProtocolError } from '../errors.js';
import { decodeControlMessage } from './frame.js';

/** What a client sent on the stream, after decoding: one of the vendor protocol's actions. */
export type ClientRequest =
  | { readonly action: 'auth'; readonly key: unknown; readonly secret: unknown }
  | { readonly action: 'subscribe' | 'unsubscribe'; readonly body: Record<string, unknown> }
  /** not the protocol (answered with 400 invalid syntax) */
  | { readonly action: 'invalid'; readonly reason: string };

/**
 * Decodes a client frame (binary: msgpack, text: JSON) into a request. Anything that is not an
 * object with a known `action` is `invalid`, with the reason for the log; nothing here throws.
 */
export function parseClientRequest(data: Buffer, isBinary: boolean): ClientRequest {
  let message: unknown;
  try {
    message = decodeControlMessage(data, isBinary);
  } catch (err) {
    if (!(err instanceof ProtocolError)) throw err;
    return { action: 'invalid', reason: err.message };
  }
  if (message === null || typeof message !== 'object' || Array.isArray(message)) return { action: 'invalid', reason: 'not an object' };
  const body = message as Record<string, unknown>;
  switch (body.action) {
    case 'auth':
      return { action: 'auth', key: body.key, secret: body.secret };
    case 'subscribe':
    case 'unsubscribe':
      return { action: body.action, body };
    default:
      return { action: 'invalid', reason: 'unknown action' };
  }
}
