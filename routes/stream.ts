/**
 * `GET /{stream path}` (`/v2/iex`, `/v1beta3/crypto/us`…): the vendor's stream protocol, served to
 * clients (DESIGN.md §3, §9). A served path hands the socket to its stream's hub; any other
 * answers 404 naming those that are. The route only checks the path, the pending-auth cap and
 * the upgrade headers; the hub does the rest.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import { Type } from '@sinclair/typebox';
import type { ServedStream } from '../src/hub/gateway.js';
import type { ClientInfo } from '../src/hub/hub.js';
import { notServed, problemBody } from '../src/plugins/problems.js';
import { releaseUpgrade } from '../src/plugins/websocket.js';
import { STREAM_PATHS, streamKindOf } from '../src/protocol/streams.js';
import { answer, BadRequest, Forbidden, NotServed, Problem } from '../src/schemas.js';

export const flag = (description: string) =>
  Type.Optional(Type.Union([Type.Literal('1'), Type.Literal('0'), Type.Literal('true'), Type.Literal('false')], { description }));
const Query = Type.Object({
  snapshot: flag('`1` or `true`: the last values of newly subscribed symbols, sent on subscribe'),
  events: flag('`1` or `true`: `{"T":"gateway",…}` notices when the vendor link goes down and comes back'),
});

type StreamRequest = FastifyRequest<{ Params: Record<string, string>; Querystring: { snapshot?: string; events?: string } }>;

/**
 * The stream paths as route templates (the vendor's own names for the last segment): one route per
 * template, so the spec shows three paths, not thirteen. Every known path must fit one.
 */
export const TEMPLATES: readonly (readonly [string, string])[] = [
  ['v2', 'feed'],
  ['v1beta1', 'feed'],
  ['v1beta3/crypto', 'loc'],
];
const fits = (prefix: string, path: string): boolean => path.startsWith(`${prefix}/`) && !path.slice(prefix.length + 1).includes('/');
for (const path of STREAM_PATHS) {
  if (!TEMPLATES.some(([prefix]) => fits(prefix, path))) throw new Error(`no route template for ${path}`);
}

/** The known last segments under `prefix`, by kind: `stocks: boats, overnight; options: indicative, opra; news: news`. */
export function knownUnder(prefix: string): string {
  const byKind = new Map<string, string[]>();
  for (const path of STREAM_PATHS.filter((p) => fits(prefix, p))) {
    const kind = streamKindOf(path)?.name as string;
    byKind.set(kind, [...(byKind.get(kind) ?? []), path.slice(prefix.length + 1)]);
  }
  return [...byKind].map(([kind, names]) => `${kind}: ${names.join(', ')}`).join('; ');
}

const DESCRIPTION =
  "Upgrade to WebSocket and speak the vendor's stream protocol of the path's kind (stocks, crypto, options or news), as the vendor does: a `connected` greeting, auth by message or by the APCA-API-KEY-ID / APCA-API-SECRET-KEY headers, subscribe/unsubscribe with this client's own set in every reply. JSON text frames by default, msgpack with `Content-Type: application/msgpack` on the upgrade; options are served as JSON too, transcoded losslessly from the vendor's msgpack. Only the stream paths in STREAMS are served; any other path answers 404 naming those that are.";

function header(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

const enabled = (value: string | undefined): boolean => value === '1' || value === 'true';

/** What the upgrade request says of a stream client: its encoding, `?snapshot`/`?events`, header credentials. */
export function clientInfo(request: FastifyRequest<{ Querystring: { snapshot?: string; events?: string } }>): ClientInfo {
  const contentType = (header(request, 'content-type') ?? '').toLowerCase();
  return {
    encoding: contentType.startsWith('application/msgpack') ? 'msgpack' : 'json',
    options: { snapshot: enabled(request.query.snapshot), events: enabled(request.query.events) },
    remoteAddress: request.ip,
    headerKey: header(request, 'apca-api-key-id'),
    headerSecret: header(request, 'apca-api-secret-key'),
  };
}

export default async function streamRoutes(fastify: FastifyInstance): Promise<void> {
  const { gateway } = fastify;
  const served = gateway.paths;
  const maxPending = fastify.config.clients.maxPendingAuth;

  /** Unauthenticated sessions have their own cap (DESIGN.md §11): beyond it the upgrade gets 503. */
  async function checkPendingAuth(request: StreamRequest, reply: FastifyReply): Promise<void> {
    if (!request.ws) return;
    const pending = gateway.pendingAuth;
    if (pending < maxPending) return;
    request.log.warn({ remote: request.ip, pending, maxPendingAuth: maxPending }, 'client refused: pending-auth limit');
    await reply
      .header('connection', 'close')
      .problem(503, 'too many connections are waiting to authenticate (MAX_PENDING_AUTH); try again later');
  }

  function accept(stream: ServedStream, socket: WebSocket, request: StreamRequest): void {
    releaseUpgrade(socket, request);
    stream.hub.accept(socket, clientInfo(request));
  }

  for (const [prefix, param] of TEMPLATES) {
    const pathOf = (request: StreamRequest): string => `${prefix}/${request.params[param]}`;
    fastify.route<{ Params: Record<string, string>; Querystring: { snapshot?: string; events?: string } }>({
      method: 'GET',
      url: `/${prefix}/:${param}`,
      config: { stream: true },
      schema: {
        tags: ['stream'],
        operationId: `stream${prefix.split('/').map((part) => part[0]?.toUpperCase() + part.slice(1)).join('')}`,
        summary: `The vendor's ${prefix} streams over WebSocket (${knownUnder(prefix)})`,
        description: DESCRIPTION,
        params: Type.Object({ [param]: Type.String({ description: `the last segment of a stream path (${knownUnder(prefix)}), served if STREAMS lists it` }) }),
        querystring: Query,
        response: {
          400: BadRequest,
          403: Forbidden,
          404: NotServed,
          426: answer(Problem, 'A plain HTTP request to the WebSocket endpoint (the answer carries `Upgrade: websocket`).', { upgrade: Type.Literal('websocket') }),
          503: answer(
            Problem,
            'MAX_PENDING_AUTH connections are already waiting to authenticate: the upgrade is refused and the socket closed after this answer. Try again later.',
          ),
        },
      },
      preValidation: [
        async (request, reply) => {
          if (gateway.stream(pathOf(request)) === undefined) await notServed(request, reply, pathOf(request), served);
        },
        checkPendingAuth,
      ],
      handler: async (request, reply) => {
        await reply
          .code(426)
          .header('upgrade', 'websocket')
          .type('application/problem+json')
          .send(problemBody(request, 426, 'this endpoint speaks WebSocket (the vendor stream protocol); upgrade the connection'));
      },
      wsHandler: (socket, request) => accept(gateway.stream(pathOf(request)) as ServedStream, socket, request),
    });
  }
}
