/**
 * Correlation ids and RFC 9457 problem responses for the whole app: every response echoes
 * `x-correlation-id`; every 4xx/5xx is `application/problem+json` naming the field at fault for
 * validation errors; a 5xx never shows internals.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { ProblemBody } from '../schemas.js';

export const CORRELATION_HEADER = 'x-correlation-id';

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  426: 'Upgrade Required',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

declare module 'fastify' {
  interface FastifyReply {
    /** Sends an RFC 9457 problem with the request's correlation id. */
    problem(status: number, detail: string, type?: string): FastifyReply;
  }
}

/** The body of a problem response. */
export function problemBody(request: FastifyRequest, status: number, detail: string, type?: string): ProblemBody {
  return {
    type: type ?? `https://tickmux.dev/problems/${status}`,
    title: TITLES[status] ?? 'Error',
    status,
    detail,
    correlationId: request.id,
    instance: request.url.split('?')[0],
  };
}

function sendProblem(reply: FastifyReply, status: number, detail: string, type?: string): FastifyReply {
  return reply.code(status).type('application/problem+json').send(problemBody(reply.request, status, detail, type));
}

/** A 404 naming the stream paths served (`stream` and `served` without a leading `/`). */
export function streamProblem(request: FastifyRequest, reply: FastifyReply, detail: string, stream: string, served: readonly string[]): FastifyReply {
  return reply
    .code(404)
    .type('application/problem+json')
    .send({ ...problemBody(request, 404, detail), stream, served });
}

/** An upgrade or a GET on a path that serves no stream here. */
export function notServed(request: FastifyRequest, reply: FastifyReply, path: string, served: readonly string[]): FastifyReply {
  const where = served.map((p) => `/${p}`).join(', ');
  return streamProblem(request, reply, `/${path} serves no stream here; this gateway serves ${where}`, path, served);
}

/** A control-plane request naming a stream that is not served. */
export function unknownStream(request: FastifyRequest, reply: FastifyReply, stream: string, served: readonly string[]): FastifyReply {
  return streamProblem(request, reply, `stream ${JSON.stringify(stream)} is not served; this gateway serves ${served.join(', ')}`, stream, served);
}

/**
 * Fastify's `frameworkErrors` handler: what it meets before routing (a URL it cannot decode, a
 * path parameter past its limit) is answered like any other problem, with the correlation id; on a
 * WebSocket upgrade the socket is closed after the answer, which no route hook would do (they never
 * run for these).
 */
export function answerFrameworkError(error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  request.log.info({ code: error.code }, 'request refused before routing');
  if (request.headers.upgrade !== undefined) {
    reply.header('connection', 'close');
    reply.raw.once('finish', () => request.raw.socket.destroy());
  }
  void sendProblem(reply.header(CORRELATION_HEADER, request.id), error.statusCode ?? 400, error.message);
}

/** Which field a validation error is about, e.g. `body.trades[0]` or `header x-correlation-id`. */
function validationDetail(error: FastifyError): string {
  const first = error.validation?.[0];
  if (first === undefined) return error.message;
  const context = error.validationContext ?? 'request';
  const path = first.instancePath.replace(/^\//, '').replace(/\/(\d+)/g, '[$1]').replaceAll('/', '.');
  const extra = (first.params as { additionalProperty?: string }).additionalProperty;
  const field = [context, path, extra].filter(Boolean).join('.');
  return `${field} ${extra !== undefined ? 'is not a known field' : first.message ?? 'is invalid'}`;
}

export default fp(
  async (fastify) => {
    fastify.decorateReply('problem', function problem(this: FastifyReply, status: number, detail: string, type?: string) {
      return sendProblem(this, status, detail, type);
    });
    fastify.addHook('onRequest', async (request, reply) => {
      reply.header(CORRELATION_HEADER, request.id);
    });
    fastify.setNotFoundHandler((request, reply) => sendProblem(reply, 404, `no route for ${request.method} ${request.url.split('?')[0]}`));
    fastify.setErrorHandler((error: FastifyError, request, reply) => {
      if (error.validation !== undefined) return sendProblem(reply, 400, validationDetail(error), 'https://tickmux.dev/problems/validation');
      const status = error.statusCode ?? 500;
      if (status >= 500) {
        request.log.error({ err: error }, 'request failed');
        return sendProblem(reply, status, 'the gateway could not complete the request; the correlation id finds it in the logs');
      }
      return sendProblem(reply, status, error.message);
    });
  },
  { name: 'tickmux-problems' },
);

/** Fastify's id generator: the caller's correlation id when valid, else a fresh UUID. */
export function correlationId(header: string | string[] | undefined, fresh: () => string): string {
  const value = Array.isArray(header) ? header[0] : header;
  return value !== undefined && /^[A-Za-z0-9._:-]{1,128}$/.test(value) ? value : fresh();
}
