/**
 * Health for load balancers and orchestrators: `/health` and `/health/ready` are 200 only while
 * every served stream's vendor link is live, and the body names each stream's state;
 * `/health/live` is 200 while the process answers at all.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply } from 'fastify';
import type { Static } from '@sinclair/typebox';
import type { Gateway } from '../src/hub/gateway.js';
import { answer, CorrelationHeaders, Forbidden, Health, Liveness } from '../src/schemas.js';
import { VERSION } from '../src/version.js';
import { streamStatus } from './streams.js';

/** The tape's state and, while degraded, why (the first degraded stream's reason). */
export function tapeHealth(gateway: Gateway): { state: 'off' | 'recording' | 'degraded'; reason: string | null } {
  const tape = gateway.tape;
  if (gateway.sharedTape !== undefined) return { state: gateway.sharedTape.state, reason: gateway.sharedTape.reason };
  if (tape === undefined) return { state: 'off', reason: null };
  const degraded = tape.recorders.find((r) => r.state === 'degraded');
  return { state: tape.state, reason: degraded === undefined ? null : `${degraded.stream}: ${degraded.reason ?? 'degraded'}` };
}

function health(gateway: Gateway): { code: 200 | 503; body: Static<typeof Health> } {
  const streams = gateway.streams.map((stream) => streamStatus(stream, gateway));
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
      tape: tapeHealth(gateway),
      version: VERSION,
      uptimeSeconds: Math.round((Date.now() - gateway.startedAt) / 1000),
    },
  };
}

const healthy = answer(Health, "Every served stream's vendor link is live (authenticated, subscriptions restored).");
const degraded = answer(Health, 'At least one vendor link is not live (down, reconnecting, failed or behind an open breaker); `streams` says which.');

const healthRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const response = { 200: healthy, 403: Forbidden, 503: degraded };
  /** `/health` and `/health/ready` answer alike. */
  const answerHealth = async (_request: unknown, reply: FastifyReply): Promise<void> => {
    const { code, body } = health(fastify.gateway);
    reply.code(code).send(body);
  };
  fastify.get(
    '/health',
    {
      schema: {
        tags: ['health'],
        operationId: 'getHealth',
        summary: 'Health of every vendor link (200 only while all are live)',
        description:
          "For monitoring: each served stream's link state, since when, its last failure, last message, reconnects, breaker and clients, with the client totals, version and uptime.",
        headers: CorrelationHeaders,
        response,
      },
    },
    answerHealth,
  );
  fastify.get(
    '/health/ready',
    {
      schema: {
        tags: ['health'],
        operationId: 'getReady',
        summary: 'Readiness for load-balancer rotation (the same status and body as /health)',
        headers: CorrelationHeaders,
        response,
      },
    },
    answerHealth,
  );
  fastify.get(
    '/health/live',
    {
      schema: {
        tags: ['health'],
        operationId: 'getLive',
        summary: 'Liveness (200 while the process answers; does not fail on a vendor outage)',
        headers: CorrelationHeaders,
        response: { 200: answer(Liveness, 'The process is responsive.'), 403: Forbidden },
      },
    },
    async () => ({
      status: 'ok' as const,
      uptimeSeconds: Math.round((Date.now() - fastify.gateway.startedAt) / 1000),
    }),
  );
};

export default healthRoutes;
