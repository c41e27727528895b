/**
 * The application as one Fastify plugin: shared plugins first, then the routes, one file per
 * resource. Routes are imported explicitly rather than autoloaded: the same code then runs
 * under tap's TypeScript loader and from `dist/`, and the compiler checks every one.
 */
import type { FastifyInstance } from 'fastify';
import streamRoutes from '../routes/stream.js';
import type { Clock } from './clock.js';
import type { Config } from './config.js';
import gatewayPlugin from './plugins/gateway.js';
import websocketPlugin from './plugins/websocket.js';

export interface AppOptions {
  config: Config;
  clock?: Clock;
}

export default async function app(fastify: FastifyInstance, options: AppOptions): Promise<void> {
  await fastify.register(gatewayPlugin, { config: options.config, clock: options.clock });
  await fastify.register(websocketPlugin);
  await fastify.register(streamRoutes);
}
