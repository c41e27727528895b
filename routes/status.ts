/**
 * The live status page: `GET /status` is one self-contained HTML page (inline script and style,
 * nothing fetched from elsewhere) that opens `GET /status/events`, a server-sent event stream of
 * snapshots — one at once with the last minutes of rates, then one a second. Open like /streams
 * and /cluster (a browser cannot send a bearer token with a page load or an EventSource) and
 * behind the same browser guard: a foreign `Origin` gets 403, an open loopback gateway answers to
 * loopback `Host` names only. What it shows is what /streams, /cluster, /health and /metrics
 * already show openly: states and counts, never a subscription list or a credential.
 */
import type { OutgoingHttpHeaders } from 'node:http';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Static } from '@sinclair/typebox';
import type { ServedStream } from '../src/hub/gateway.js';
import type { StatusBoard } from '../src/plugins/status.js';
import { STATUS_PAGE } from '../src/status/status-page.js';
import { serverSentEvent } from '../src/status/status-viewers.js';
import { answer, ClusterStatus, CorrelationHeaders, Forbidden, Problem, type StreamStatus } from '../src/schemas.js';
import { VERSION } from '../src/version.js';
import { clusterStatus } from './cluster.js';
import { tapeHealth } from './health.js';
import { streamStatus } from './streams.js';

/** Rates with one decimal: what a person reads, and a smaller event. */
const rounded = (value: number): number => Math.round(value * 10) / 10;

/** One stream as the page shows it. */
export interface StreamSnapshot extends Static<typeof StreamStatus> {
  /** clients with a backlog above their high-water mark (conflating) */
  lagging: number;
  /** clients closed with 407 slow client since start */
  slowClientCloses: number;
  /** clients refused with 406 (MAX_CLIENTS) since start */
  rejectedConnections: number;
  /** (channel, symbol) pairs clients and pins want, and those the vendor holds on this node's link (null where another node runs it) */
  subscriptions: { desired: number; atVendor: number | null };
  /** the last sample's rates per second, and when it was taken (null before the first) */
  rates: { at: string | null; messages: number; deliveries: number };
  /** the last minutes of rates per second, oldest first (only in a viewer's first snapshot) */
  history?: { messages: number[]; deliveries: number[] };
}

/** What each event of GET /status/events carries. */
export interface StatusSnapshot {
  at: string;
  version: string;
  uptimeSeconds: number;
  /** between samples */
  intervalMs: number;
  clients: { authenticated: number; viewers: number; maxClients: number; maxViewers: number };
  streams: StreamSnapshot[];
  /** as GET /cluster answers; nulls and nothing listed when standalone */
  cluster: Static<typeof ClusterStatus>;
  /** the recording; `bytesWritten` is what this process wrote to TAPE_DIR since it started (null when off or on a cluster's JetStream tape) */
  tape: { state: 'off' | 'recording' | 'degraded'; reason: string | null; bytesWritten: number | null };
}

const statusRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { gateway, config } = fastify;
  const board: StatusBoard = fastify.status;

  function streamSnapshot(stream: ServedStream, role: string | undefined, withHistory: boolean): StreamSnapshot {
    const { hub, link, kind, path } = stream;
    const stats = hub.stats;
    let desired = 0;
    for (const channel of kind.channels) desired += hub.desiredCount(channel);
    const latest = board.history.latest(path);
    const snapshot: StreamSnapshot = {
      ...streamStatus(stream, gateway),
      lagging: hub.laggingClients,
      slowClientCloses: stats.slowClientCloses,
      rejectedConnections: stats.rejectedConnections,
      // On a cluster only the owner's link holds the vendor's set.
      subscriptions: { desired, atVendor: role === undefined || role === 'owner' ? link.acknowledgedPairs : null },
      rates: { at: latest === undefined ? null : new Date(latest.at).toISOString(), messages: rounded(latest?.messages ?? 0), deliveries: rounded(latest?.deliveries ?? 0) },
    };
    if (withHistory) {
      const points = board.history.history(path);
      snapshot.history = { messages: points.map((p) => rounded(p.messages)), deliveries: points.map((p) => rounded(p.deliveries)) };
    }
    return snapshot;
  }

  /** A snapshot for every viewer, or (`forNewViewer`) with the history for one about to be admitted, who counts itself. */
  async function snapshot(forNewViewer: boolean): Promise<StatusSnapshot> {
    const cluster = await clusterStatus(fastify.cluster, gateway);
    const { state, reason } = tapeHealth(gateway);
    const recorders = gateway.tape?.recorders;
    let authenticated = 0;
    for (const stream of gateway.streams) authenticated += stream.hub.stats.authenticated;
    return {
      at: new Date(gateway.clock.now()).toISOString(),
      version: VERSION,
      uptimeSeconds: Math.round((gateway.clock.now() - gateway.startedAt) / 1000),
      intervalMs: board.history.intervalMs,
      clients: { authenticated, viewers: board.viewers.count + (forNewViewer ? 1 : 0), maxClients: config.clients.maxClients, maxViewers: board.viewers.maxViewers },
      streams: gateway.streams.map((stream) => streamSnapshot(stream, fastify.cluster === undefined ? undefined : cluster.streams[stream.path]?.role, forNewViewer)),
      cluster,
      tape: { state, reason, bytesWritten: recorders === undefined ? null : recorders.reduce((n, r) => n + r.stats.bytesWritten, 0) },
    };
  }
  board.snapshots = async (forNewViewer) => JSON.stringify(await snapshot(forNewViewer));

  fastify.get(
    '/status',
    {
      schema: {
        tags: ['observability'],
        operationId: 'getStatusPage',
        summary: 'The live status page (HTML) for a person at a browser',
        description:
          'One self-contained page (no script or style from elsewhere) showing per stream the link state, since, reason, breaker, vendor messages/s and deliveries/s over the last minutes, clients and lagging clients, 407s and subscriptions at the vendor; on a cluster the lease owner of each stream and every node with its clients; the tape. It updates from GET /status/events and says so when the gateway stops answering. Open like /streams, behind the same browser guard.',
        headers: CorrelationHeaders,
        produces: ['text/html'],
        response: { 200: answer(Type.String(), 'The page.'), 403: Forbidden },
      },
    },
    async (_request, reply) =>
      reply
        .type('text/html; charset=utf-8')
        .header('cache-control', 'no-store')
        .header('x-content-type-options', 'nosniff')
        .header('x-frame-options', 'DENY')
        .header('content-security-policy', "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
        .send(STATUS_PAGE),
  );

  const unavailable = answer(
    Problem,
    'STATUS_MAX_VIEWERS viewers are watching, or MAX_CLIENTS connections (stream clients and viewers together) are open: try again later.',
  );

  fastify.get(
    '/status/events',
    {
      // A HEAD would be admitted as a viewer that never gets a byte.
      exposeHeadRoute: false,
      schema: {
        tags: ['observability'],
        operationId: 'getStatusEvents',
        summary: "The status page's live updates (server-sent events)",
        description:
          "A `text/event-stream` of `snapshot` events, each one line of JSON: at once with the last minutes of per-second rates (`history`), then every second with the latest rates. A viewer counts against MAX_CLIENTS with the stream clients and against STATUS_MAX_VIEWERS; one that stops reading is cut once it holds 128 KiB unsent (nothing more is queued for it). The stream ends when the gateway shuts down.",
        headers: CorrelationHeaders,
        produces: ['text/event-stream'],
        response: { 200: answer(Type.String(), 'The event stream.'), 403: Forbidden, 503: unavailable },
      },
    },
    async (request: FastifyRequest, reply: FastifyReply) => {
      const refusal = (): FastifyReply | undefined => {
        const limit = board.viewers.refusal();
        if (limit === undefined) return undefined;
        board.viewers.refused += 1;
        request.log.warn({ remote: request.ip, viewers: board.viewers.count, limit }, 'status viewer refused');
        const detail =
          limit === 'viewers'
            ? `${board.viewers.maxViewers} status viewers are watching (STATUS_MAX_VIEWERS); try again later`
            : `${config.clients.maxClients} connections are open (MAX_CLIENTS counts stream clients and status viewers); try again later`;
        return reply.header('retry-after', '5').problem(503, detail);
      };
      const early = refusal();
      if (early !== undefined) return early;
      const first = serverSentEvent('snapshot', board.nextId(), await board.snapshots!(true));
      // Checked again after the await: the admission below is synchronous, so two viewers cannot both take the last place.
      const late = refusal();
      if (late !== undefined) return late;
      reply.hijack();
      const response = reply.raw;
      // Gone while its first snapshot was built: nothing to watch for.
      if (response.destroyed || request.raw.socket.destroyed) return reply;
      const headers: OutgoingHttpHeaders = {
        ...(reply.getHeaders() as OutgoingHttpHeaders),
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-store',
        'x-content-type-options': 'nosniff',
      };
      response.writeHead(200, headers);
      // `retry`: how soon a browser reconnects after the stream ends.
      board.viewers.add(response, request.ip, `retry: 2000\n\n${first}`);
      return reply;
    },
  );
};

export default statusRoutes;
