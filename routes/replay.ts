/**
 * `GET /replay/{stream path}?from=…&to=…&speed=…`: a recorded window served over WebSocket as the
 * vendor would have served it (DESIGN.md §12). The route checks what can be checked before the
 * upgrade — recording on, the stream recorded, the window well-formed, a free replay slot — and
 * hands the socket to a replay; the replay speaks the protocol.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type } from '@sinclair/typebox';
import { listSegments } from '../src/tape/segment-files.js';
import { replayWindow, WindowError } from '../src/tape/replay-window.js';
import type { ReplayWindow } from '../src/tape/replay.js';
import { recordedStreams } from '../src/tape/tape-catalog.js';
import { TapeUnavailableError } from '../src/cluster/cluster-tape.js';
import { streamProblem } from '../src/plugins/problems.js';
import { releaseUpgrade } from '../src/plugins/websocket.js';
import { streamKindOf, type StreamKind } from '../src/protocol/streams.js';
import { answer, BadRequest, Forbidden, Problem, StreamProblem } from '../src/schemas.js';
import { clientInfo, flag, knownUnder, TEMPLATES } from './stream.js';

const Query = Type.Object({
  from: Type.String({ description: 'the start of the window: RFC 3339 with up to nine fractional digits, or Unix milliseconds' }),
  to: Type.Optional(Type.String({ description: 'the end of the window (same forms); default: the end of the tape when the replay starts' })),
  speed: Type.Optional(Type.String({ description: '`1` (default) as recorded, any positive number (`10`: ten times as fast), or `max`: as fast as the client reads' })),
  snapshot: flag('`1` or `true`: the last values as of the replay position of newly subscribed symbols, sent on subscribe'),
  events: flag('`1` or `true`: the recorded marks as `{"T":"gateway","event":"upstream_down"|"upstream_up"|"tape_gap",…}` notices at their place, and `replay_end` after the last message'),
});

interface ReplayQuery {
  from: string;
  to?: string;
  speed?: string;
  snapshot?: string;
  events?: string;
}

type ReplayRequest = FastifyRequest<{ Params: Record<string, string>; Querystring: ReplayQuery }>;

declare module 'fastify' {
  interface FastifyRequest {
    /** the replay's window, set once the upgrade request is checked */
    replayWindow?: ReplayWindow;
  }
}

const DESCRIPTION =
  "Upgrade to WebSocket and replay the recorded window of this stream as the vendor: the `connected` greeting, auth with the gateway's client credentials, subscribe/unsubscribe with the client's own set in every reply, JSON or msgpack (`Content-Type: application/msgpack`). From the first subscribe on, the recorded messages of the window that the client's set holds are sent in recorded order, with the vendor's own bytes, paced by their recorded receive times ÷ `speed`; a crypto book starts with a reset equal to the book as of the replay position. The socket stays open after the window until the client closes it. Needs TAPE_DIR (standalone) or TAPE=1 (a cluster: the tape in JetStream, replayed from any node).";

export default async function replayRoutes(fastify: FastifyInstance): Promise<void> {
  const { gateway, clusterTape } = fastify;
  // Standalone: the tape folder; on a cluster (TAPE=1): the JetStream tape, through the same replay engine.
  const tape = clusterTape ?? gateway.tape;

  /** Whether `path` is recorded, the end of its tape now, and (when it is not) the streams that are. */
  async function recorded(path: string): Promise<{ found: boolean; endNs: bigint | undefined; streams: string[] }> {
    if (clusterTape !== undefined) {
      const endNs = streamKindOf(path) === undefined || gateway.stream(path) === undefined ? undefined : await clusterTape.endOf(path);
      if (endNs !== undefined) return { found: true, endNs, streams: [path] };
      const streams = (await Promise.all(gateway.paths.map(async (p) => ((await clusterTape.endOf(p)) === undefined ? [] : [p])))).flat();
      return { found: false, endNs, streams };
    }
    const dir = (gateway.tape as NonNullable<typeof gateway.tape>).config.dir;
    const segments = streamKindOf(path) === undefined ? [] : await listSegments(`${dir}/${path}`);
    if (segments.length > 0) return { found: true, endNs: gateway.tape?.endOf(path), streams: [path] };
    return { found: false, endNs: undefined, streams: await recordedStreams(dir) };
  }

  async function check(request: ReplayRequest, reply: FastifyReply, path: string): Promise<void> {
    if (tape === undefined) {
      await reply.problem(404, 'recording is off on this gateway (TAPE_DIR is unset, or TAPE is not 1 on a cluster): there is no tape to replay');
      return;
    }
    let found: { found: boolean; endNs: bigint | undefined; streams: string[] };
    try {
      found = await recorded(path);
    } catch (err) {
      if (!(err instanceof TapeUnavailableError)) throw err;
      await reply.problem(503, err.message);
      return;
    }
    if (!found.found) {
      await streamProblem(request, reply, `nothing is recorded for /${path}; recorded: ${found.streams.map((p) => `/replay/${p}`).join(', ') || 'none yet'}`, path, found.streams);
      return;
    }
    try {
      request.replayWindow = replayWindow(request.query.from, request.query.to, request.query.speed, found.endNs);
    } catch (err) {
      if (!(err instanceof WindowError)) throw err;
      await reply.problem(400, err.message);
      return;
    }
    if (!request.ws) return;
    if (!tape.replays.admit()) {
      request.log.warn({ remote: request.ip, max: tape.replays.max }, 'replay refused: REPLAY_MAX_SESSIONS');
      await reply.header('connection', 'close').problem(503, `${tape.replays.max} replays are running (REPLAY_MAX_SESSIONS); try again later`);
      return;
    }
    // A slot taken for an upgrade that never completes is given back when its socket goes.
    let started = false;
    request.raw.socket.once('close', () => {
      if (!started) tape.replays.release();
    });
    request.replayStarted = () => {
      started = true;
    };
  }

  for (const [prefix, param] of TEMPLATES) {
    const pathOf = (request: ReplayRequest): string => `${prefix}/${request.params[param]}`;
    fastify.route<{ Params: Record<string, string>; Querystring: ReplayQuery }>({
      method: 'GET',
      url: `/replay/${prefix}/:${param}`,
      config: { stream: true },
      schema: {
        tags: ['replay'],
        operationId: `replay${prefix.split('/').map((part) => part[0]?.toUpperCase() + part.slice(1)).join('')}`,
        summary: `A recorded window of the ${prefix} streams, replayed as the vendor over WebSocket (${knownUnder(prefix)})`,
        description: DESCRIPTION,
        params: Type.Object({ [param]: Type.String({ description: `the last segment of a recorded stream path (${knownUnder(prefix)})` }) }),
        querystring: Query,
        response: {
          400: answer(Problem, 'The window cannot be used: `from` missing or not a time, `to` before `from`, `speed` not a positive number or max; the detail says which.'),
          403: Forbidden,
          404: answer(
            Type.Union([Problem, StreamProblem]),
            'Recording is off (TAPE_DIR unset; on a cluster TAPE is not 1), or nothing is recorded for this stream: the problem names it (`stream`) and the recorded streams (`served`).',
          ),
          426: answer(Problem, 'A plain HTTP request to the WebSocket endpoint (the answer carries `Upgrade: websocket`).', { upgrade: Type.Literal('websocket') }),
          503: answer(Problem, 'REPLAY_MAX_SESSIONS replays are running: the upgrade is refused and the socket closed after this answer. Try again later.'),
        },
      },
      preValidation: async (request, reply) => check(request, reply, pathOf(request)),
      handler: async (request, reply) => {
        await reply.code(426).header('upgrade', 'websocket').problem(426, 'this endpoint speaks WebSocket (the vendor stream protocol, replayed); upgrade the connection');
      },
      wsHandler: (socket, request) => {
        const path = pathOf(request);
        releaseUpgrade(socket, request);
        request.replayStarted?.();
        (tape as NonNullable<typeof tape>).replays.start(socket, clientInfo(request), {
          dir: gateway.tape?.config.dir ?? '',
          source: clusterTape === undefined ? undefined : (stream, fromNs) => clusterTape.source(stream, fromNs),
          stream: path,
          kind: streamKindOf(path) as StreamKind,
          window: request.replayWindow as ReplayWindow,
          clients: fastify.config.clients,
          clock: gateway.clock,
          logger: request.log as never,
        });
      },
    });
  }
}

declare module 'fastify' {
  interface FastifyRequest {
    /** marks the replay slot as handed to a running replay */
    replayStarted?: () => void;
  }
}
