/** GET /metrics: Prometheus text format. Open to scrapers, like /health. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { answer, Forbidden } from '../src/schemas.js';

const metricsRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get(
    '/metrics',
    {
      schema: {
        tags: ['observability'],
        operationId: 'getMetrics',
        summary: 'Prometheus metrics',
        description: 'Per-link metrics carry a `stream` label.',
        produces: ['text/plain'],
        response: { 200: answer(Type.String(), 'Prometheus text exposition format.'), 403: Forbidden },
      },
    },
    async (_request, reply) => {
      const text = await fastify.metrics.metrics();
      return reply.type(fastify.metrics.contentType).send(text);
    },
  );
};

export default metricsRoutes;
