/**
 * @fastify/websocket with the limits of the downstream protocol, an upgrade refused before the
 * handshake on any path that serves no stream, and client protocol errors kept out of the error
 * log (a hostile client could otherwise flood it with stack traces).
 */
import websocket from '@fastify/websocket';
import fp from 'fastify-plugin';
import { notServed } from './problems.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** the route serves the vendor stream protocol over WebSocket */
    stream?: boolean;
  }
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
