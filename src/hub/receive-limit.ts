/**
 * A per-connection cap on inbound frame size, below the server's. `ws` has one limit per server;
 * its receiver keeps it in a field that it checks on every frame header, so lowering it there
 * makes ws refuse a larger frame with 1009 *before buffering it* — which is the point: a client
 * that has not authenticated must not make the gateway read and unmask megabytes (DESIGN.md §11).
 *
 * The field is not public API: it is feature-detected, and when it is missing (a future ws) the
 * session falls back to checking each frame's length once ws has delivered it.
 */
import type { WebSocket } from 'ws';

interface ReceiverFields {
  _maxPayload?: unknown;
}

/**
 * Lowers the largest frame `socket` accepts to `bytes`. Returns a function that restores the
 * server's limit, or undefined when this ws has no such field to set.
 */
export function lowerReceiveLimit(socket: WebSocket, bytes: number): (() => void) | undefined {
  const receiver = (socket as unknown as { _receiver?: ReceiverFields | null })._receiver;
  if (receiver === undefined || receiver === null || typeof receiver._maxPayload !== 'number') return undefined;
  const original = receiver._maxPayload;
  receiver._maxPayload = bytes;
  return () => {
    receiver._maxPayload = original;
  };
}
