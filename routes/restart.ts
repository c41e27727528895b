/**
 * POST /restart: stop and start the vendor link with subscriptions restored (and a terminal
 * `failed` state cleared). Concurrent calls share one restart and one id; its log lines carry the
 * correlation id of the request that started it.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { CorrelationHeaders, Problem, RestartAccepted } from '../src/schemas.js';

const restartRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  let current: { id: string; done: Promise<void> } | undefined;
  fastify.post(
    '/restart',
    {
      schema: { headers: CorrelationHeaders, response: { 202: RestartAccepted, 400: Problem, 401: Problem, 403: Problem, 415: Problem } },
      preHandler: fastify.requireControlToken,
    },
    async (request, reply) => {
      const joined = current !== undefined;
      if (current === undefined) {
        const id = randomUUID();
        request.log.info({ restartId: id }, 'vendor link restart requested');
        const done = fastify.gateway.link.restart({ correlationId: request.id }).finally(() => {
          if (current?.id === id) current = undefined;
        });
        current = { id, done };
      } else {
        request.log.info({ restartId: current.id }, 'joined the restart in progress');
      }
      return reply.code(202).send({ restartId: current.id, state: fastify.gateway.link.state, joined });
    },
  );
};

export default restartRoutes;
