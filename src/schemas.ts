/**
 * TypeBox schemas of the control plane, in one place: route bodies, headers and every response.
 * `openapi.yaml` describes the same shapes; a test keeps the two in agreement.
 */
import { type Static, type TOptional, Type } from '@sinclair/typebox';
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

const Symbols = Type.Array(Type.String({ pattern: '^(\\*|[A-Z0-9][A-Z0-9./\\-^=]{0,20})$' }), { maxItems: 10_000 });

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
  upstream: Type.String(),
  /** POST only: whether the vendor acknowledged the change before the answer */
  applied: Type.Optional(Type.Boolean()),
});

const Clients = Type.Object({ connected: Type.Integer(), authenticated: Type.Integer() });

/** One served stream: its vendor link and its clients (GET /streams, /health). */
export const StreamStatus = Type.Object({
  stream: Type.String(),
  kind: Type.String(),
  state: Type.String(),
  since: Type.String(),
  reason: Type.Union([Type.String(), Type.Null()]),
  lastMessageAt: Type.Union([Type.String(), Type.Null()]),
  reconnects: Type.Integer(),
  breaker: Type.String(),
  clients: Clients,
});

export const Streams = Type.Object({ streams: Type.Array(StreamStatus) });

export const Health = Type.Object({
  status: Type.Union([Type.Literal('ok'), Type.Literal('degraded')]),
  streams: Type.Array(StreamStatus),
  clients: Clients,
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
