/**
 * GET /streams: each served stream with its vendor link's state and its clients (DESIGN.md §9).
 * Open like /health: it carries no subscription lists, only what a dashboard or a probe reads.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Static } from '@sinclair/typebox';
import type { Gateway, ServedStream } from '../src/hub/gateway.js';
import { answer, CorrelationHeaders, Forbidden, Streams, type StreamStatus } from '../src/schemas.js';

const iso = (ms: number | undefined): string | null => (ms === undefined ? null : new Date(ms).toISOString());

/** The cheap fields of one stream (probed every few seconds: no copies of subscription lists). */
export function streamStatus(stream: ServedStream, gateway?: Pick<Gateway, 'sharedTape'>): Static<typeof StreamStatus> {
  const { link, upstream, hub } = stream;
  const stats = link.stats;
  const clients = hub.stats;
  return {
    stream: stream.path,
    kind: stream.kind.name,
    // In a cluster: the owner's link as last published, when another node owns the stream.
    state: upstream.state,
    since: new Date(upstream.since).toISOString(),
    reason: upstream.reason ?? null,
    lastMessageAt: iso(upstream.lastMessageAt ?? stats.lastMessageAt),
    reconnects: stats.reconnects,
    breaker: link.breakerState,
    clients: { connected: clients.connected, authenticated: clients.authenticated },
    // A cluster's tape (TAPE=1) is one for every stream.
    tape: gateway?.sharedTape !== undefined ? gateway.sharedTape.state : stream.recorder === undefined ? 'off' : stream.recorder.state === 'degraded' ? 'degraded' : 'recording',
  };
}

const streamsRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get(
    '/streams',
    {
      schema: {
        tags: ['observability'],
        operationId: 'getStreams',
        summary: "Every served stream with its vendor link's state and its clients",
        description: 'Open like /health, for dashboards and probes: link state, since when, the last failure, last message, reconnects, breaker and client counts; no subscription lists.',
        headers: CorrelationHeaders,
        response: { 200: answer(Streams, 'The served streams, in STREAMS order (the first is the default stream).'), 403: Forbidden },
      },
    },
    async () => ({
      streams: fastify.gateway.streams.map((stream) => streamStatus(stream, fastify.gateway)),
    }),
  );
};

export default streamsRoutes;
