/**
 * TypeBox schemas of the control plane, in one place: route bodies, headers and every response.
 * `openapi.yaml` describes the same shapes; a test keeps the two in agreement.
 */
import { type Static, type TOptional, Type } from '@sinclair/typebox';
import { STOCK_CHANNELS } from './protocol/channels.js';

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

const Symbols = Type.Array(Type.String({ pattern: '^(\\*|[A-Z0-9][A-Z0-9./\\-^=]{0,20})$' }), { maxItems: 10_000 });

/** One list of symbols per channel, every channel present (the control plane serves the stock stream). */
export const ChannelLists = Type.Object(Object.fromEntries(STOCK_CHANNELS.map((c) => [c, Symbols])) as Record<(typeof STOCK_CHANNELS)[number], typeof Symbols>, {
  additionalProperties: false,
});

/** POST /subscriptions: like the stream's subscribe message, applied to the operator-pinned set. */
export const SubscriptionChange = Type.Object(
  {
    action: Type.Union([Type.Literal('subscribe'), Type.Literal('unsubscribe')]),
    ...(Object.fromEntries(STOCK_CHANNELS.map((c) => [c, Type.Optional(Symbols)])) as Record<(typeof STOCK_CHANNELS)[number], TOptional<typeof Symbols>>),
  },
  { additionalProperties: false },
);
export type SubscriptionChangeBody = Static<typeof SubscriptionChange>;

export const SubscriptionState = Type.Object({
  pinned: ChannelLists,
  clients: ChannelLists,
  desired: ChannelLists,
  acknowledged: ChannelLists,
  refused: ChannelLists,
  upstream: Type.String(),
  /** POST only: whether the vendor acknowledged the change before the answer */
  applied: Type.Optional(Type.Boolean()),
});

export const Health = Type.Object({
  status: Type.Union([Type.Literal('ok'), Type.Literal('degraded')]),
  upstream: Type.Object({
    state: Type.String(),
    since: Type.String(),
    reason: Type.Union([Type.String(), Type.Null()]),
    lastMessageAt: Type.Union([Type.String(), Type.Null()]),
    reconnects: Type.Integer(),
    breaker: Type.String(),
  }),
  clients: Type.Object({ connected: Type.Integer(), authenticated: Type.Integer() }),
  version: Type.String(),
  uptimeSeconds: Type.Number(),
});

export const Liveness = Type.Object({ status: Type.Literal('ok'), uptimeSeconds: Type.Number() });

export const RestartAccepted = Type.Object({ restartId: Type.String(), state: Type.String(), joined: Type.Boolean() });

export const CorrelationHeaders = Type.Object({
  'x-correlation-id': Type.Optional(Type.String({ description: '1–128 of A-Za-z0-9._:- ; replaced by a UUID when absent or invalid' })),
});
