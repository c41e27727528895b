/**
 * POST /restart: stop and start a vendor link with subscriptions restored (and a terminal `failed`
 * state cleared) — the stream named in the body, or every served stream when none is. Calls while
 * one is in flight, or within RESTART_COALESCE_MS after it settled, share its id (each link
 * decides); its log lines carry the starting request's correlation id.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { OwnerUnavailableError } from '../src/cluster/cluster-stream.js';
import { unknownStream } from '../src/plugins/problems.js';
import { answer, ControlTokenSecurity, CorrelationHeaders, RestartAccepted, RestartRequest, StreamControlProblems } from '../src/schemas.js';

const restartRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { gateway } = fastify;
  fastify.post(
    '/restart',
    {
      schema: {
        tags: ['control'],
        operationId: 'restart',
        summary: 'Restart vendor links (stop → start, subscriptions restored; clears a failed state)',
        description:
          'Restarts the stream named in the body, or every served stream when none is (a body-less POST does that too). Calls while a link restarts, or within RESTART_COALESCE_MS after its restart settled, join it: the same `restartId`, `joined: true`, no second reconnect.',
        security: ControlTokenSecurity,
        headers: CorrelationHeaders,
        body: RestartRequest,
        // For the spec: the body may be left out (preValidation below); @fastify/swagger copies `x-` keys onto the operation.
        'x-body-optional': true,
        response: {
          202: answer(RestartAccepted, 'The restarts are under way, one per stream.'),
          ...StreamControlProblems,
        },
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
      const cluster = fastify.cluster;
      const unavailable: string[] = [];
      const restarts = await Promise.all(
        (stream === undefined ? gateway.streams : [stream]).map(async ({ path, link }) => {
          // In a cluster the owner's link restarts, on whichever node it runs.
          const view = cluster?.view(path);
          let restart: { restartId: string; state: string; joined: boolean };
          if (view === undefined) {
            const ticket = link.restart({ correlationId: request.id });
            restart = { restartId: ticket.id, state: link.state, joined: ticket.joined };
          } else {
            try {
              restart = await view.restart(request.id);
            } catch (err) {
              if (!(err instanceof OwnerUnavailableError)) throw err;
              request.log.warn({ stream: path, reason: err.message }, 'restart: the stream has no owner to ask');
              unavailable.push(path);
              return undefined;
            }
          }
          request.log.info({ stream: path, restartId: restart.restartId, joined: restart.joined }, restart.joined ? 'joined a restart' : 'vendor link restart requested');
          return { stream: path, ...restart };
        }),
      );
      if (unavailable.length > 0) {
        const done = restarts.filter((r) => r !== undefined).map((r) => r.stream);
        return reply.problem(503, `no owner answered for ${unavailable.join(', ')}${done.length > 0 ? `; restarted: ${done.join(', ')}` : ''}`);
      }
      return reply.code(202).send({ restarts: restarts.filter((r) => r !== undefined) });
    },
  );
};

export default restartRoutes;
