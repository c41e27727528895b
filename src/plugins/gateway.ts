/**
 * Wires the core gateway (a vendor link and a hub per served stream) into Fastify:
 * `fastify.gateway`, started when the server is ready, stopped (clients closed with 1001, vendor
 * links closed) when it closes. This is where configuration decides what the links connect to:
 * `UPSTREAM_URL`'s base, or — when it is unset — an embedded simulated vendor on 127.0.0.1:0 that
 * serves every stream path (`fastify.simulator`).
 */
import fp from 'fastify-plugin';
import type { Clock } from '../clock.js';
import type { Config } from '../config.js';
import { Gateway } from '../hub/gateway.js';
import { VendorSimulator } from '../simulator/index.js';

declare module 'fastify' {
  interface FastifyInstance {
    gateway: Gateway;
    config: Config;
    /** the embedded vendor when `UPSTREAM_URL` is unset */
    simulator: VendorSimulator | undefined;
  }
}

export interface GatewayPluginOptions {
  config: Config;
  clock?: Clock;
}

export default fp<GatewayPluginOptions>(
  async (fastify, options) => {
    const { config } = options;
    let simulator: VendorSimulator | undefined;
    let upstreamBase = config.upstream.base;
    if (upstreamBase === undefined) {
      simulator = new VendorSimulator({ port: 0, rate: config.simulatorRate, logger: fastify.log.child({ component: 'embedded-vendor' }) as never });
      await simulator.start();
      upstreamBase = simulator.baseUrl;
    }
    const gateway = new Gateway({ config, logger: fastify.log as never, clock: options.clock, upstreamBase });
    fastify.decorate('gateway', gateway);
    fastify.decorate('config', config);
    fastify.decorate('simulator', simulator);
    fastify.addHook('onReady', async () => {
      gateway.start();
    });
    // preClose runs before the WebSocket plugin closes clients: the links are told first.
    fastify.addHook('preClose', async () => {
      void gateway.beginShutdown();
    });
    fastify.addHook('onClose', async () => {
      await gateway.stop();
      await simulator?.stop();
    });
  },
  { name: 'tickmux-gateway' },
);
