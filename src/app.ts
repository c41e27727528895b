/**
 * The application as one Fastify plugin: shared plugins first, then the routes, one file per
 * resource. Routes are imported explicitly rather than autoloaded: the same code then runs
 * under tap's TypeScript loader and from `dist/`, and the compiler checks every one.
 */
import { randomUUID } from 'node:crypto';
import { type FastifyBaseLogger, type FastifyHttpOptions, type FastifyInstance, LogController } from 'fastify';
import type { Server } from 'node:http';
import clusterRoutes from '../routes/cluster.js';
import healthRoutes from '../routes/health.js';
import metricsRoutes from '../routes/metrics.js';
import openapiRoutes from '../routes/openapi.js';
import replayRoutes from '../routes/replay.js';
import restartRoutes from '../routes/restart.js';
import statusRoutes from '../routes/status.js';
import streamRoutes from '../routes/stream.js';
import streamsRoutes from '../routes/streams.js';
import subscriptionRoutes from '../routes/subscriptions.js';
import tapeRoutes from '../routes/tape.js';
import type { Clock } from './clock.js';
import type { Config } from './config.js';
import type { TapeFiles } from './tape/stream-recorder.js';
import browserGuardPlugin from './plugins/browser-guard.js';
import controlAuthPlugin from './plugins/control-auth.js';
import gatewayPlugin from './plugins/gateway.js';
import metricsPlugin from './plugins/metrics.js';
import statusPlugin from './plugins/status.js';
import problemsPlugin, { answerFrameworkError, CORRELATION_HEADER, correlationId } from './plugins/problems.js';
import websocketPlugin from './plugins/websocket.js';

export interface AppOptions {
  config: Config;
  clock?: Clock;
  /** the tape's file operations (tests inject a failing disk) */
  tapeFiles?: TapeFiles;
}

/**
 * Options for the Fastify instance that serves the app (server.ts and the tests use the same):
 * request ids are correlation ids, logged as `correlationId`; control bodies are small.
 */
export function fastifyOptions(logger: FastifyBaseLogger): FastifyHttpOptions<Server, FastifyBaseLogger> {
  return {
    loggerInstance: logger,
    genReqId: (req) => correlationId(req.headers[CORRELATION_HEADER], randomUUID),
    requestIdHeader: false,
    logController: new LogController({ requestIdLogLabel: 'correlationId' }),
    bodyLimit: 1024 * 1024,
    frameworkErrors: answerFrameworkError,
    ajv: { customOptions: { allErrors: false, coerceTypes: false, removeAdditional: false } },
  };
}

export default async function app(fastify: FastifyInstance, options: AppOptions): Promise<void> {
  await fastify.register(gatewayPlugin, { config: options.config, clock: options.clock, tapeFiles: options.tapeFiles });
  await fastify.register(problemsPlugin);
  await fastify.register(controlAuthPlugin);
  await fastify.register(metricsPlugin);
  await fastify.register(statusPlugin);
  await fastify.register(websocketPlugin);
  // After the websocket plugin, so a refused upgrade is known as one and its socket closed.
  await fastify.register(browserGuardPlugin);
  await fastify.register(healthRoutes);
  await fastify.register(subscriptionRoutes);
  await fastify.register(restartRoutes);
  await fastify.register(metricsRoutes);
  await fastify.register(openapiRoutes);
  await fastify.register(streamsRoutes);
  await fastify.register(clusterRoutes);
  await fastify.register(tapeRoutes);
  await fastify.register(statusRoutes);
  await fastify.register(streamRoutes);
  await fastify.register(replayRoutes);
}
