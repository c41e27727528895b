/**
 * `Authorization: Bearer $CONTROL_TOKEN` for the control plane's writes and GET /subscriptions,
 * compared in constant time. With no token configured the control plane is open — allowed only
 * on a loopback HOST (protected mode, enforced by the configuration).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';

declare module 'fastify' {
  interface FastifyInstance {
    /** preHandler for routes that need the control token */
    requireControlToken(request: FastifyRequest, reply: FastifyReply): Promise<void>;
  }
}

const digest = (value: string): Buffer => createHash('sha256').update(value).digest();

export default fp(
  async (fastify) => {
    const token = fastify.config.controlToken;
    const expected = token === undefined ? undefined : digest(token.reveal());
    fastify.decorate('requireControlToken', async (request: FastifyRequest, reply: FastifyReply) => {
      if (expected === undefined) return;
      const header = request.headers.authorization ?? '';
      const presented = header.startsWith('Bearer ') ? header.slice(7) : '';
      if (presented !== '' && timingSafeEqual(digest(presented), expected)) return;
      reply.header('www-authenticate', 'Bearer realm="tickmux"');
      await reply.problem(401, presented === '' ? 'a bearer token is required (Authorization: Bearer …)' : 'the bearer token is not valid');
    });
  },
  { name: 'tickmux-control-auth', dependencies: ['tickmux-gateway', 'tickmux-problems'] },
);
