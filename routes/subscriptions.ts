/**
 * The operator-pinned set: symbols the vendor link keeps whether or not a client holds them.
 * POST answers once the vendor acknowledged the change, or 202 while the link is down (the change
 * is applied on reconnect) or the vendor is slow to answer.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Static } from '@sinclair/typebox';
import { UpstreamError } from '../src/errors.js';
import type { Gateway } from '../src/hub/gateway.js';
import { pairsOf } from '../src/protocol/channel-set.js';
import { CorrelationHeaders, Problem, SubscriptionChange, SubscriptionState } from '../src/schemas.js';

function state(gateway: Gateway): Static<typeof SubscriptionState> {
  const status = gateway.link.status();
  return {
    pinned: gateway.hub.pinned.toLists(),
    clients: gateway.hub.clientUnion(),
    desired: gateway.hub.desired().toLists(),
    acknowledged: status.acknowledged,
    refused: status.refused,
    upstream: status.state,
  };
}

const subscriptionRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { gateway } = fastify;
  fastify.get(
    '/subscriptions',
    {
      schema: { headers: CorrelationHeaders, response: { 200: SubscriptionState, 401: Problem, 403: Problem } },
      preHandler: fastify.requireControlToken,
    },
    async () => state(gateway),
  );

  fastify.post(
    '/subscriptions',
    {
      schema: {
        headers: CorrelationHeaders,
        body: SubscriptionChange,
        response: { 200: SubscriptionState, 202: SubscriptionState, 400: Problem, 401: Problem, 403: Problem, 413: Problem, 415: Problem },
      },
      preHandler: fastify.requireControlToken,
    },
    async (request, reply) => {
      const pairs = [...pairsOf(request.body)];
      request.log.info({ action: request.body.action, pairs: pairs.length }, 'pinned set change');
      gateway.hub.changePinned(request.body.action, pairs, request.id);
      if (gateway.link.state !== 'live') return reply.code(202).send({ ...state(gateway), applied: false });
      try {
        await gateway.link.whenSynced(gateway.config.upstream.subscribeTimeoutMs);
      } catch (err) {
        if (!(err instanceof UpstreamError)) throw err;
        request.log.warn({ reason: err.message }, 'pinned change not acknowledged yet');
        return reply.code(202).send({ ...state(gateway), applied: false });
      }
      return reply.code(200).send({ ...state(gateway), applied: true });
    },
  );
};

export default subscriptionRoutes;
