/**
 * POST /restart: stop and start the vendor link with subscriptions restored (and a terminal
 * `failed` state cleared). Calls while one is in flight, or within RESTART_COALESCE_MS after it
 * settled, share its id (the link decides); its log lines carry the starting request's correlation id.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { CorrelationHeaders, Problem, RestartAccepted } from '../src/schemas.js';

const restartRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.post(
    '/restart',
    {
      schema: { headers: CorrelationHeaders, response: { 202: RestartAccepted, 400: Problem, 401: Problem, 403: Problem, 415: Problem } },
      preHandler: fastify.requireControlToken,
    },
    async (request, reply) => {
      const restart = fastify.gateway.link.restart({ correlationId: request.id });
      request.log.info({ restartId: restart.id, joined: restart.joined }, restart.joined ? 'joined a restart' : 'vendor link restart requested');
      return reply.code(202).send({ restartId: restart.id, state: fastify.gateway.link.state, joined: restart.joined });
    },
  );
};

export default restartRoutes;
