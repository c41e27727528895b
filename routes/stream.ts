/**
 * `GET /v2/{feed}`: the vendor's stream protocol, served to clients (DESIGN.md §3). The route
 * only checks the feed, the pending-auth cap and the upgrade headers; the hub does the rest.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type } from '@sinclair/typebox';
import { problemBody } from '../src/plugins/problems.js';
import { Problem } from '../src/schemas.js';

const Params = Type.Object({ feed: Type.String() });
const Query = Type.Object({
  snapshot: Type.Optional(Type.Union([Type.Literal('1'), Type.Literal('0'), Type.Literal('true'), Type.Literal('false')])),
  events: Type.Optional(Type.Union([Type.Literal('1'), Type.Literal('0'), Type.Literal('true'), Type.Literal('false')])),
});

const FeedProblem = Type.Intersect([Problem, Type.Object({ feed: Type.String(), served: Type.String() })]);

type StreamRequest = FastifyRequest<{ Params: { feed: string }; Querystring: { snapshot?: string; events?: string } }>;

function header(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

const enabled = (value: string | undefined): boolean => value === '1' || value === 'true';

export default async function streamRoutes(fastify: FastifyInstance): Promise<void> {
  const served = fastify.config.upstream.feed;

  /** Another feed than the one served: refuse the upgrade with 404 and say which feed is served. */
  async function checkFeed(request: StreamRequest, reply: FastifyReply): Promise<void> {
    if (request.params.feed !== served) {
      await reply
        .code(404)
        .type('application/problem+json')
        .send({ ...problemBody(request, 404, `this gateway serves the ${served} feed at /v2/${served}`), feed: request.params.feed, served });
    }
  }

  const maxPending = fastify.config.clients.maxPendingAuth;

  /** Unauthenticated sessions have their own cap (DESIGN.md §11): beyond it the upgrade gets 503. */
  async function checkPendingAuth(request: StreamRequest, reply: FastifyReply): Promise<void> {
    if (!request.ws) return;
    const pending = fastify.gateway.hub.pendingAuth;
    if (pending < maxPending) return;
    request.log.warn({ remote: request.ip, pending, maxPendingAuth: maxPending }, 'client refused: pending-auth limit');
    await reply
      .header('connection', 'close')
      .problem(503, 'too many connections are waiting to authenticate (MAX_PENDING_AUTH); try again later');
  }

  fastify.route<{ Params: { feed: string }; Querystring: { snapshot?: string; events?: string } }>({
    method: 'GET',
    url: '/v2/:feed',
    config: { stream: true },
    schema: { params: Params, querystring: Query, response: { 400: Problem, 403: Problem, 404: FeedProblem, 426: Problem, 503: Problem } },
    preValidation: [checkFeed, checkPendingAuth],
    handler: async (request, reply) => {
      await reply
        .code(426)
        .header('upgrade', 'websocket')
        .type('application/problem+json')
        .send(problemBody(request, 426, 'this endpoint speaks WebSocket (the vendor stream protocol); upgrade the connection'));
    },
    wsHandler: (socket, request) => {
      const contentType = (header(request, 'content-type') ?? '').toLowerCase();
      fastify.gateway.hub.accept(socket, {
        encoding: contentType.startsWith('application/msgpack') ? 'msgpack' : 'json',
        options: { snapshot: enabled(request.query.snapshot), events: enabled(request.query.events) },
        remoteAddress: request.ip,
        headerKey: header(request, 'apca-api-key-id'),
        headerSecret: header(request, 'apca-api-secret-key'),
      });
    },
  });
}
