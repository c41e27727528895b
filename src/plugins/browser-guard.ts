/**
 * What a browser page may not do to the gateway (DESIGN.md §11). Browsers always send `Origin`
 * cross-site and SDKs, curl and load balancers never do, so a foreign `Origin` is refused (403)
 * unless ALLOWED_ORIGINS lists it; a POST body declared as anything but JSON — the "simple
 * request" a page can send cross-site without a preflight — gets 415; and an open loopback
 * gateway answers only to loopback `Host` names, which defeats DNS rebinding. The hook runs on
 * every request, WebSocket upgrades included (@fastify/websocket routes them through Fastify).
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { isLoopback } from '../config.js';

/** A refusal: the status and the problem's detail. */
interface Refusal {
  status: 403 | 415;
  detail: string;
  reason: string;
}

/**
 * Whether a `Host` header names this machine: `localhost`, `*.localhost`, 127.0.0.0/8 or `[::1]`,
 * each with an optional port, or the configured HOST itself.
 */
export function isLoopbackHostHeader(value: string, configuredHost: string): boolean {
  const match = /^(\[[^\]]*\]|[^:[\]]+)(?::\d{1,5})?$/.exec(value);
  if (match === null) return false;
  const bracketed = match[1]!.toLowerCase();
  const name = bracketed.startsWith('[') ? bracketed.slice(1, -1) : bracketed;
  // Browsers resolve every `*.localhost` name to this machine themselves, without DNS.
  return isLoopback(name) || name.endsWith('.localhost') || name === configuredHost.toLowerCase().replace(/^\[(.*)\]$/, '$1');
}

/** Whether a `Content-Type` value is JSON: `application/json`, parameters allowed. */
export function isJsonContentType(value: string): boolean {
  return value.split(';')[0]!.trim().toLowerCase() === 'application/json';
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(', ') : value;
}

export default fp(
  async (fastify) => {
    const { config } = fastify;
    const allowedOrigins = new Set(config.allowedOrigins);
    // Protected mode authenticates every stream and control request; only an open gateway needs the Host check.
    const checkHost = isLoopback(config.host) && (config.clients.keys === undefined || config.controlToken === undefined);

    // Fastify parses text/plain by default; nothing here takes it, so no such body is ever read.
    fastify.removeContentTypeParser('text/plain');

    function refusalOf(request: FastifyRequest): Refusal | undefined {
      const origin = single(request.headers.origin);
      if (origin !== undefined && !allowedOrigins.has(origin.toLowerCase())) {
        return { status: 403, reason: 'origin not allowed', detail: `the origin ${JSON.stringify(origin)} is not allowed (ALLOWED_ORIGINS)` };
      }
      const host = single(request.headers.host);
      if (checkHost && host !== undefined && !isLoopbackHostHeader(host, config.host)) {
        return {
          status: 403,
          reason: 'host not loopback',
          detail: `the host ${JSON.stringify(host)} is not a loopback name; an open loopback gateway answers to localhost, 127.0.0.0/8 and [::1] only`,
        };
      }
      const type = single(request.headers['content-type']);
      if (request.method === 'POST' && type !== undefined && !isJsonContentType(type)) {
        return { status: 415, reason: 'body not JSON', detail: `the content-type of a POST body must be application/json, not ${JSON.stringify(type)}` };
      }
      return undefined;
    }

    fastify.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
      const refusal = refusalOf(request);
      if (refusal === undefined) return;
      request.log.warn({ origin: request.headers.origin, host: request.headers.host, upgrade: request.ws }, `request refused: ${refusal.reason}`);
      // A refused upgrade is answered over HTTP; @fastify/websocket's onResponse hook then destroys the socket.
      if (request.ws) reply.header('connection', 'close');
      return reply.problem(refusal.status, refusal.detail);
    });
  },
  // After @fastify/websocket: its onRequest hook must have marked `request.ws` for the refusal to close the socket.
  { name: 'tickmux-browser-guard', dependencies: ['tickmux-gateway', 'tickmux-problems', 'tickmux-websocket'] },
);
