/**
 * Health for load balancers and orchestrators: `/health` and `/health/ready` are 200 only while
 * the vendor link is live; `/health/live` is 200 while the process answers at all.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Static } from '@sinclair/typebox';
import type { Gateway } from '../src/hub/gateway.js';
import { CorrelationHeaders, Health, Liveness, Problem } from '../src/schemas.js';
import { VERSION } from '../src/version.js';

const iso = (ms: number | undefined): string | null => (ms === undefined ? null : new Date(ms).toISOString());

function health(gateway: Gateway): { code: 200 | 503; body: Static<typeof Health> } {
  // Probed every few seconds: only the cheap fields, not the subscription lists status() copies.
  const { link } = gateway;
  const stats = link.stats;
  const live = link.state === 'live';
  const hub = gateway.hub.stats;
  return {
    code: live ? 200 : 503,
    body: {
      status: live ? 'ok' : 'degraded',
      upstream: {
        state: link.state,
        since: new Date(link.since).toISOString(),
        reason: link.reason ?? null,
        lastMessageAt: iso(stats.lastMessageAt),
        reconnects: stats.reconnects,
        breaker: link.breakerState,
      },
      clients: { connected: hub.connected, authenticated: hub.authenticated },
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
