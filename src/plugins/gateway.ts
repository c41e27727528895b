/**
 * Wires the core gateway (vendor link + hub) into Fastify: `fastify.gateway`, started when the
 * server is ready, stopped (clients closed with 1001, vendor link closed) when it closes.
 */
import fp from 'fastify-plugin';
import type { Clock } from '../clock.js';
import type { Config } from '../config.js';
import { Gateway } from '../hub/gateway.js';

declare module 'fastify' {
  interface FastifyInstance {
    gateway: Gateway;
    config: Config;
  }
}

export interface GatewayPluginOptions {
  config: Config;
  clock?: Clock;
}

export default fp<GatewayPluginOptions>(
  async (fastify, options) => {
    const gateway = await Gateway.create({ config: options.config, logger: fastify.log as never, clock: options.clock });
    fastify.decorate('gateway', gateway);
    fastify.decorate('config', options.config);
    fastify.addHook('onReady', async () => {
      gateway.start();
    });
    // preClose runs before the WebSocket plugin closes clients: the link is told first.
    fastify.addHook('preClose', async () => {
      void gateway.beginShutdown();
    });
    fastify.addHook('onClose', async () => {
      await gateway.stop();
    });
  },
  { name: 'tickmux-gateway' },
);
