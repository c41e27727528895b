/**
 * @fastify/websocket with the limits of the downstream protocol, an upgrade refused before the
 * handshake on any path that serves no stream, and client protocol errors kept out of the error
 * log (a hostile client could otherwise flood it with stack traces).
 */
import { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import websocket from '@fastify/websocket';
import type { FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { WebSocket } from 'ws';
import { notServed } from './problems.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** the route serves the vendor stream protocol over WebSocket */
    stream?: boolean;
  }
}

/**
 * Lets go of the upgrade request once its socket is handed to a session. @fastify/websocket leaves
 * the HTTP response it built for routing attached to the TCP socket, and its 'error' listener on
 * the WebSocket closes over the request and reply, so each connection kept for its whole life its
 * IncomingMessage, ServerResponse, Fastify Request and Reply, their child logger and headers
 * (about 3 KB of heap; issue #11). The session's own 'error' listener does what that one did.
 * Must be followed at once by a listener for 'error' (an unheard 'error' event throws).
 */
export function releaseUpgrade(socket: WebSocket, request: FastifyRequest): void {
  socket.removeAllListeners('error');
  // What Node does itself when a response finishes; this one never finishes.
  const tcp = request.raw.socket as (Socket & { _httpMessage?: unknown }) | null;
  const response = tcp?._httpMessage;
  if (tcp !== null && response instanceof ServerResponse) response.detachSocket(tcp);
}

export default fp(
  async (fastify) => {
    await fastify.register(websocket, {
      options: {
        // Frames past 4× MAX_MESSAGE_BYTES are cut by ws before they are buffered; below that the
        // session answers an oversized frame with 400 and closes 1009.
        maxPayload: fastify.config.clients.maxMessageBytes * 4,
        perMessageDeflate: false,
      },
      // A client's broken frame (bad UTF-8, a reserved opcode…): ws has sent its close code already.
      errorHandler: (error, socket, request) => {
        request.log.debug({ err: { message: error.message, code: (error as { code?: string }).code } }, 'client websocket error');
        socket.terminate();
      },
      preClose: async function closeClients() {
        await fastify.gateway.closeClients(1001, 'going away');
        await new Promise<void>((resolve) => fastify.websocketServer.close(() => resolve()));
      },
    });
    // After @fastify/websocket's own hook, which marks `request.ws`; its onResponse hook then
    // closes the refused socket. Without this, any route would complete the handshake and close.
    fastify.addHook('onRequest', async (request, reply) => {
      if (!request.ws || request.routeOptions.config?.stream === true) return;
      reply.header('connection', 'close');
      const path = (request.url.split('?')[0] ?? '').replace(/^\/+/, '');
      await notServed(request, reply, path, fastify.gateway.paths);
    });
  },
  { name: 'tickmux-websocket', dependencies: ['tickmux-gateway', 'tickmux-problems'] },
);
