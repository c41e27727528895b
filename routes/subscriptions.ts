/**
 * The operator-pinned set of one stream: symbols its vendor link keeps whether or not a client
 * holds them. `stream` (body or query) names the stream; without it, the first served one.
 * POST answers once the vendor acknowledged the change, or 202 while the link is down (the change
 * is applied on reconnect) or the vendor is slow to answer.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Static } from '@sinclair/typebox';
import { OwnerUnavailableError } from '../src/cluster/cluster-stream.js';
import { UpstreamError } from '../src/errors.js';
import type { ServedStream } from '../src/hub/gateway.js';
import { unknownStream } from '../src/plugins/problems.js';
import { pairsOf } from '../src/protocol/channel-set.js';
import { type ChannelSymbols, parseChannels, type StreamKind } from '../src/protocol/streams.js';
import {
  answer,
  BadRequest,
  ControlTokenSecurity,
  CorrelationHeaders,
  Forbidden,
  NotServed,
  StreamControlProblems,
  StreamQuery,
  SubscriptionChange,
  SubscriptionState,
  Unauthorized,
} from '../src/schemas.js';

/** The lists of the kind's own channels (the other kinds' keys would always be empty). */
function own(lists: Partial<ChannelSymbols>, kind: StreamKind): Partial<ChannelSymbols> {
  return Object.fromEntries(kind.channels.map((channel) => [channel, lists[channel] ?? []]));
}

function state(stream: ServedStream): Static<typeof SubscriptionState> {
  const { hub, link, kind } = stream;
  const status = link.status();
  return {
    stream: stream.path,
    pinned: own(hub.pinned.toLists(), kind),
    clients: own(hub.clientUnion(), kind),
    desired: own(hub.desired().toLists(), kind),
    acknowledged: own(status.acknowledged, kind),
    refused: own(status.refused, kind),
    upstream: stream.upstream.state,
  };
}

/** What each vendor code from `parseChannels` means to an operator. */
function invalidChange(code: number, stream: ServedStream): string {
  const channels = stream.kind.channels.join(', ');
  switch (code) {
    case 410:
      return `a channel ${stream.path} does not carry has symbols; its channels are ${channels}`;
    case 413:
      return `"*" is not allowed on this channel of ${stream.path}`;
    default:
      return `a symbol is not valid on ${stream.path} (a ${stream.kind.name} stream)`;
  }
}

const subscriptionRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { gateway } = fastify;
  const find = (named: string | undefined): ServedStream | undefined => (named === undefined ? gateway.defaultStream : gateway.stream(named));

  fastify.get(
    '/subscriptions',
    {
      schema: {
        tags: ['control'],
        operationId: 'getSubscriptions',
        summary: "One stream's pinned set, union of client sets, and the desired, acknowledged and refused sets",
        description: "`?stream=` names the stream (default: the first served). The lists are the stream kind's own channels.",
        security: ControlTokenSecurity,
        headers: CorrelationHeaders,
        querystring: StreamQuery,
        response: { 200: answer(SubscriptionState, "The stream's subscription state."), 400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotServed },
      },
      preHandler: fastify.requireControlToken,
    },
    async (request, reply) => {
      const stream = find(request.query.stream);
      if (stream === undefined) return unknownStream(request, reply, request.query.stream as string, gateway.paths);
      return state(stream);
    },
  );

  fastify.post(
    '/subscriptions',
    {
      schema: {
        tags: ['control'],
        operationId: 'changeSubscriptions',
        summary: "Change one stream's operator-pinned set (kept even with no client)",
        description:
          "Like the stream's own subscribe message, with an optional `stream` (default: the first served). Answers with the resulting state once the vendor acknowledged the change (200), or 202 while the vendor link is down or slow to answer; the change is then applied on reconnect. In a cluster the pinned set is the cluster's: any node changes it, and the stream's owner holds it at the vendor (503 while this node cannot reach NATS). A channel the stream's kind does not carry, or a symbol not valid on it, is 400.",
        security: ControlTokenSecurity,
        headers: CorrelationHeaders,
        body: SubscriptionChange,
        response: {
          200: answer(SubscriptionState, 'Applied and acknowledged by the vendor (`applied: true`).'),
          202: answer(SubscriptionState, 'Accepted; the vendor has not acknowledged it yet, the link being down or slow (`applied: false`).'),
          ...StreamControlProblems,
        },
      },
      preHandler: fastify.requireControlToken,
    },
    async (request, reply) => {
      const { action, stream: named, ...lists } = request.body;
      const stream = find(named);
      if (stream === undefined) return unknownStream(request, reply, named as string, gateway.paths);
      const parsed = parseChannels(lists, stream.kind);
      if (typeof parsed === 'number') return reply.problem(400, invalidChange(parsed, stream));
      const pairs = [...pairsOf(parsed)];
      request.log.info({ stream: stream.path, action, pairs: pairs.length }, 'pinned set change');
      const cluster = fastify.cluster;
      const view = cluster?.view(stream.path);
      if (cluster !== undefined && view !== undefined) {
        // The cluster's pinned set (every node mirrors it); the stream's owner holds it at the vendor.
        let revision: number;
        try {
          revision = await cluster.pin(stream.path, action, pairs);
        } catch (err) {
          if (!(err instanceof OwnerUnavailableError)) throw err;
          return reply.problem(503, err.message);
        }
        const applied = await view.synced(revision, gateway.config.upstream.subscribeTimeoutMs).catch((err: unknown) => {
          if (!(err instanceof OwnerUnavailableError)) throw err;
          request.log.warn({ stream: stream.path, reason: err.message }, 'pinned change not acknowledged yet');
          return false;
        });
        return reply.code(applied ? 200 : 202).send({ ...state(stream), applied });
      }
      stream.hub.changePinned(action, pairs, request.id);
      if (stream.link.state !== 'live') return reply.code(202).send({ ...state(stream), applied: false });
      try {
        await stream.link.whenSynced(gateway.config.upstream.subscribeTimeoutMs);
      } catch (err) {
        if (!(err instanceof UpstreamError)) throw err;
        request.log.warn({ stream: stream.path, reason: err.message }, 'pinned change not acknowledged yet');
        return reply.code(202).send({ ...state(stream), applied: false });
      }
      return reply.code(200).send({ ...state(stream), applied: true });
    },
  );
};

export default subscriptionRoutes;
