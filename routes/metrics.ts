/** GET /metrics: Prometheus text format. Open to scrapers, like /health. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { Problem } from '../src/schemas.js';

const metricsRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/metrics', { schema: { response: { 200: Type.String(), 403: Problem } } }, async (_request, reply) => {
    const text = await fastify.metrics.metrics();
    return reply.type(fastify.metrics.contentType).send(text);
  });
};

export default metricsRoutes;
