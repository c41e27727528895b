/**
 * Health for load balancers and orchestrators: `/health` and `/health/ready` are 200 only while
 * every served stream's vendor link is live, and the body names each stream's state;
 * `/health/live` is 200 while the process answers at all.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Static } from '@sinclair/typebox';
import type { Gateway } from '../src/hub/gateway.js';
import { CorrelationHeaders, Health, Liveness, Problem } from '../src/schemas.js';
import { VERSION } from '../src/version.js';
import { streamStatus } from './streams.js';

function health(gateway: Gateway): { code: 200 | 503; body: Static<typeof Health> } {
  const streams = gateway.streams.map(streamStatus);
  const live = streams.every((stream) => stream.state === 'live');
  const clients = { connected: 0, authenticated: 0 };
  for (const stream of streams) {
    clients.connected += stream.clients.connected;
    clients.authenticated += stream.clients.authenticated;
  }
  return {
    code: live ? 200 : 503,
    body: {
      status: live ? 'ok' : 'degraded',
      streams,
      clients,
      version: VERSION,
      uptimeSeconds: Math.round((Date.now() - gateway.startedAt) / 1000),
    },
  };
}

const healthRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const schema = { headers: CorrelationHeaders, response: { 200: Health, 403: Problem, 503: Health } };
  fastify.get('/health', { schema }, async (_request, reply) => {
    const { code, body } = health(fastify.gateway);
    return reply.code(code).send(body);
  });
  fastify.get('/health/ready', { schema }, async (_request, reply) => {
    const { code, body } = health(fastify.gateway);
    return reply.code(code).send(body);
  });
  fastify.get('/health/live', { schema: { headers: CorrelationHeaders, response: { 200: Liveness, 403: Problem } } }, async () => ({
    status: 'ok' as const,
    uptimeSeconds: Math.round((Date.now() - fastify.gateway.startedAt) / 1000),
  }));
};

export default healthRoutes;
