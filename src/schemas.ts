/**
 * TypeBox schemas of the control plane, in one place: route bodies, headers and every response,
 * with the answers the routes share. `openapi.yaml` is generated from them and the routes
 * (`npm run openapi`); a test fails when it is stale.
 */
// Type only, erased from the build: @fastify/swagger's declarations let a route schema carry its
// OpenAPI operation (summary, description, tags, operationId, security); the server never loads it.
import type {} from '@fastify/swagger';
import { type Static, type TOptional, type TSchema, Type } from '@sinclair/typebox';
import { CHANNELS } from './protocol/streams.js';

/** RFC 9457 problem details, with the request's correlation id. */
export const Problem = Type.Object({
  type: Type.String(),
  title: Type.String(),
  status: Type.Integer(),
  detail: Type.String(),
  correlationId: Type.String(),
  instance: Type.Optional(Type.String()),
});
export type ProblemBody = Static<typeof Problem>;

/** A path that serves no stream: the problem names it and the stream paths served. */
export const StreamProblem = Type.Intersect([Problem, Type.Object({ stream: Type.String(), served: Type.Array(Type.String()) })]);

/** One channel's symbols: tickers, crypto pairs, option contracts, or `*` where the channel allows it. */
export const Symbols = Type.Array(Type.String({ pattern: '^(\\*|[A-Z0-9][A-Z0-9./\\-^=]{0,20})$' }), {
  maxItems: 10_000,
  description: 'tickers (AAPL), crypto pairs (BTC/USD), option contracts (AAPL250117C00150000), or * for all where the channel allows it',
});

type ChannelName = (typeof CHANNELS)[number];

/** One list of symbols per channel of the stream's kind (the keys of another kind are absent). */
export const ChannelLists = Type.Object(Object.fromEntries(CHANNELS.map((c) => [c, Type.Optional(Symbols)])) as Record<ChannelName, TOptional<typeof Symbols>>, {
  additionalProperties: false,
});

const StreamPath = Type.String({ description: 'a served stream path, e.g. v2/iex or v1beta3/crypto/us; default: the first served', maxLength: 64 });

/** POST /subscriptions: like the stream's subscribe message, applied to the operator-pinned set of one stream. */
export const SubscriptionChange = Type.Object(
  {
    action: Type.Union([Type.Literal('subscribe'), Type.Literal('unsubscribe')]),
    stream: Type.Optional(StreamPath),
    ...(Object.fromEntries(CHANNELS.map((c) => [c, Type.Optional(Symbols)])) as Record<ChannelName, TOptional<typeof Symbols>>),
  },
  { additionalProperties: false },
);
export type SubscriptionChangeBody = Static<typeof SubscriptionChange>;

export const StreamQuery = Type.Object({ stream: Type.Optional(StreamPath) }, { additionalProperties: false });

export const SubscriptionState = Type.Object({
  stream: Type.String(),
  pinned: ChannelLists,
  clients: ChannelLists,
  desired: ChannelLists,
  acknowledged: ChannelLists,
  refused: ChannelLists,
  upstream: Type.String({ description: "the stream's vendor link state" }),
  applied: Type.Optional(Type.Boolean({ description: 'POST only: whether the vendor acknowledged the change before the answer' })),
});

const Clients = Type.Object({ connected: Type.Integer(), authenticated: Type.Integer() });

/** One served stream: its vendor link and its clients (GET /streams, /health). */
export const StreamStatus = Type.Object({
  stream: Type.String({ description: 'the stream path, e.g. v2/iex' }),
  kind: Type.String({ description: 'stocks, crypto, options or news' }),
  state: Type.String({ description: "the vendor link's state: stopped, connecting, authenticating, live, backoff, breaker-open, failed or stopping" }),
  since: Type.String({ description: 'when the link entered that state (ISO 8601)' }),
  reason: Type.Union([Type.String(), Type.Null()], { description: 'why the link left live (or failed), until it is live again' }),
  lastMessageAt: Type.Union([Type.String(), Type.Null()], { description: 'the last vendor message (ISO 8601); null before the first' }),
  reconnects: Type.Integer(),
  breaker: Type.String({ description: 'the connect breaker: closed, half-open or open' }),
  clients: Clients,
  tape: Type.Union([Type.Literal('off'), Type.Literal('recording'), Type.Literal('degraded')], {
    description: "this stream's recording: off (TAPE_DIR unset), recording, or degraded (the disk is full, refuses writes or is too slow: clients keep their data, the tape has a gap)",
  }),
});

const TapeStateSchema = Type.Union([Type.Literal('off'), Type.Literal('recording'), Type.Literal('degraded')]);

/** GET /tape: what the tape holds per stream (DESIGN.md §12). */
export const TapeStatus = Type.Object({
  state: TapeStateSchema,
  reason: Type.Union([Type.String(), Type.Null()], { description: 'why recording is degraded, while it is' }),
  streams: Type.Array(
    Type.Object({
      stream: Type.String({ description: 'the stream path, e.g. v2/iex' }),
      from: Type.Union([Type.String(), Type.Null()], { description: 'the first recorded receive time (RFC 3339, nanoseconds); null with nothing recorded' }),
      to: Type.Union([Type.String(), Type.Null()], { description: 'the last recorded receive time (RFC 3339, nanoseconds)' }),
      bytes: Type.Integer({ description: 'bytes of its segment files' }),
      messages: Type.Integer({ description: 'vendor data messages recorded' }),
      segments: Type.Integer(),
      gaps: Type.Array(
        Type.Object({
          from: Type.String({ description: 'RFC 3339, nanoseconds' }),
          to: Type.Union([Type.String(), Type.Null()], { description: 'null while it lasts' }),
          reason: Type.String({ description: 'a recorder gap (queue full, write failed, gateway not running) or the vendor link down' }),
        }),
      ),
    }),
  ),
});

export const Streams = Type.Object({ streams: Type.Array(StreamStatus) });

/** GET /cluster: this node, its NATS connection and who holds each stream's lease (DESIGN.md §10). */
export const ClusterStatus = Type.Object({
  cluster: Type.Union([Type.String(), Type.Null()], { description: 'CLUSTER_NAME; null on a standalone gateway (NATS_URL unset)' }),
  node: Type.Union([Type.String(), Type.Null()], { description: "this node's NODE_ID; null when standalone" }),
  nats: Type.Union([Type.Literal('connecting'), Type.Literal('connected'), Type.Literal('reconnecting'), Type.Literal('closed'), Type.Null()], {
    description: 'the NATS connection: connecting (unreachable at start, retried with backoff), connected, reconnecting or closed; null when standalone',
  }),
  nodes: Type.Array(
    Type.Object({
      id: Type.String({ description: 'the NODE_ID' }),
      version: Type.String({ description: "the node's tickmux version" }),
      clients: Type.Integer({ description: 'its authenticated clients over every stream' }),
      streams: Type.Array(Type.String(), { description: 'the stream paths it serves' }),
      lastSeen: Type.String({ description: 'when its entry was last rewritten, as this node saw it (ISO 8601; every LEASE_TTL_MS/3 while alive)' }),
    }),
    { description: 'the live nodes, from their entries in the nodes bucket (an entry not rewritten within 2 × LEASE_TTL_MS is gone); empty when standalone' },
  ),
  streams: Type.Record(
    Type.String({ description: 'the stream path, e.g. v2/iex' }),
    Type.Object({
      owner: Type.Union([Type.String(), Type.Null()], { description: "the lease holder's NODE_ID as NATS has it now; null when none holds it or it cannot be read" }),
      role: Type.Union([Type.Literal('owner'), Type.Literal('follower'), Type.Literal('unknown')], {
        description: "owner: this node holds the stream's lease and runs its vendor link; follower: another node may; unknown: NATS not connected or the lease not started",
      }),
      state: Type.String({ description: 'the vendor link as this node sees it: stopped, connecting, authenticating, live, backoff, breaker-open, failed or stopping' }),
      since: Type.String({ description: 'when it entered that state (ISO 8601)' }),
    }),
    { description: 'every served stream; `state` is the vendor link as this node sees it (its own, or the owner’s as last published); empty when standalone' },
  ),
});

export const Health = Type.Object({
  status: Type.Union([Type.Literal('ok'), Type.Literal('degraded')]),
  streams: Type.Array(StreamStatus),
  clients: Clients,
  tape: Type.Object(
    { state: TapeStateSchema, reason: Type.Union([Type.String(), Type.Null()]) },
    { description: 'the recording: degraded does not make the gateway unhealthy (clients keep their data); it is reported here and in GET /tape' },
  ),
  version: Type.String(),
  uptimeSeconds: Type.Number(),
});

export const Liveness = Type.Object({ status: Type.Literal('ok'), uptimeSeconds: Type.Number() });

/** POST /restart: one stream, or every stream when none is named. */
export const RestartRequest = Type.Object({ stream: Type.Optional(StreamPath) }, { additionalProperties: false });

export const RestartAccepted = Type.Object({
  restarts: Type.Array(Type.Object({ stream: Type.String(), restartId: Type.String(), state: Type.String(), joined: Type.Boolean() })),
});

export const CorrelationHeaders = Type.Object({
  'x-correlation-id': Type.Optional(Type.String({ description: '1–128 of A-Za-z0-9._:- ; replaced by a UUID when absent or invalid' })),
});

/**
 * `schema` as one status's answer, described for the spec: @fastify/swagger takes
 * `x-response-description` as the response's description and `headers` as its headers; Fastify's
 * serializer ignores both, so the answer serializes exactly like `schema`.
 */
export function answer<T extends TSchema>(schema: T, description: string, headers?: Record<string, TSchema>): T {
  return { ...schema, 'x-response-description': description, ...(headers === undefined ? {} : { headers }) };
}

/** Routes behind `Authorization: Bearer $CONTROL_TOKEN` (the spec's `bearer` scheme). */
export const ControlTokenSecurity = [{ bearer: [] }];

export const BadRequest = answer(Problem, 'The request does not match its schema (malformed JSON, a wrong type, an unknown field or query parameter); the detail names the field.');

export const Unauthorized = answer(Problem, 'A bearer token is missing or wrong (CONTROL_TOKEN is set).', {
  'www-authenticate': Type.Literal('Bearer realm="tickmux"'),
});

export const Forbidden = answer(
  Problem,
  'A browser request: the `Origin` header names an origin not listed in ALLOWED_ORIGINS, or, on an open loopback gateway (CLIENT_KEYS or CONTROL_TOKEN unset), the `Host` header is not a loopback name (DNS rebinding). A refused WebSocket upgrade gets this answer and its socket is closed.',
);

export const NotServed = answer(StreamProblem, 'The stream named is not served here: the problem names it (`stream`) and the stream paths this gateway serves (`served`).');

export const NoOwner = answer(Problem, 'In a cluster: NATS is not connected, or no node owns the stream (or its owner did not answer in time); retry shortly.');

export const TooLarge = answer(Problem, 'The body is larger than the limit (1 MiB).');

export const UnsupportedMediaType = answer(Problem, 'The body is declared as something other than application/json (a body-less POST needs no content type).');

/** What a control-plane POST about a stream may answer besides its own success. */
export const StreamControlProblems = {
  400: BadRequest,
  401: Unauthorized,
  403: Forbidden,
  404: NotServed,
  413: TooLarge,
  415: UnsupportedMediaType,
  503: NoOwner,
} as const;
