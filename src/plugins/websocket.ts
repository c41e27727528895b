/** @fastify/websocket with the limits of the downstream protocol. */
import websocket from '@fastify/websocket';
import fp from 'fastify-plugin';

export default fp(
  async (fastify) => {
    await fastify.register(websocket, {
      options: {
        // Frames past 4× MAX_MESSAGE_BYTES are cut by ws before they are buffered; below that the
        // session answers an oversized frame with 400 and closes 1009.
        maxPayload: fastify.config.clients.maxMessageBytes * 4,
        perMessageDeflate: false,
      },
      preClose: async function closeClients() {
        await fastify.gateway.hub.closeAll(1001, 'going away');
        await new Promise<void>((resolve) => fastify.websocketServer.close(() => resolve()));
      },
    });
  },
  { name: 'tickmux-websocket', dependencies: ['tickmux-gateway'] },
);
