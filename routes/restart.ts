/**
 * POST /restart: stop and start a vendor link with subscriptions restored (and a terminal `failed`
 * state cleared) — the stream named in the body, or every served stream when none is. Calls while
 * one is in flight, or within RESTART_COALESCE_MS after it settled, share its id (each link
 * decides); its log lines carry the starting request's correlation id.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { unknownStream } from '../src/plugins/problems.js';
import { CorrelationHeaders, Problem, RestartAccepted, RestartRequest, StreamProblem } from '../src/schemas.js';

const restartRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { gateway } = fastify;
  fastify.post(
    '/restart',
    {
      schema: {
        headers: CorrelationHeaders,
        body: RestartRequest,
        response: { 202: RestartAccepted, 400: Problem, 401: Problem, 403: Problem, 404: StreamProblem, 415: Problem },
      },
      // `curl -X POST …/restart` sends no body: that means every stream.
      preValidation: async (request) => {
        request.body ??= {};
      },
      preHandler: fastify.requireControlToken,
    },
    async (request, reply) => {
      const named = request.body.stream;
      const stream = named === undefined ? undefined : gateway.stream(named);
      if (named !== undefined && stream === undefined) return unknownStream(request, reply, named, gateway.paths);
      const restarts = (stream === undefined ? gateway.streams : [stream]).map(({ path, link }) => {
        const restart = link.restart({ correlationId: request.id });
        request.log.info({ stream: path, restartId: restart.id, joined: restart.joined }, restart.joined ? 'joined a restart' : 'vendor link restart requested');
        return { stream: path, restartId: restart.id, state: link.state, joined: restart.joined };
      });
      return reply.code(202).send({ restarts });
    },
  );
};

export default restartRoutes;
