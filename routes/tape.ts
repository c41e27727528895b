/**
 * `GET /tape`: what the tape holds (DESIGN.md §12) — per stream its recorded range, bytes,
 * messages and gaps, and whether recording is on, off or degraded. Behind the control token like
 * GET /subscriptions: it reads every segment's index.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { streamListing } from '../src/tape/tape-list.js';
import { answer, ControlTokenSecurity, CorrelationHeaders, Forbidden, TapeStatus, Unauthorized } from '../src/schemas.js';
import { tapeHealth } from './health.js';

const tapeRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get(
    '/tape',
    {
      preHandler: fastify.requireControlToken,
      schema: {
        tags: ['tape'],
        operationId: 'getTape',
        summary: 'What the tape holds: per stream its range, bytes, messages and gaps',
        description:
          'Recording state (off without TAPE_DIR; degraded while a disk is full, refuses writes or is too slow) and, per recorded stream, the first and last receive time, bytes, vendor data messages, segments and gaps (recorder gaps and vendor-link outages, with their reasons).',
        headers: CorrelationHeaders,
        security: ControlTokenSecurity,
        response: { 200: answer(TapeStatus, 'The tape, stream by stream (empty when recording is off).'), 401: Unauthorized, 403: Forbidden },
      },
    },
    async () => {
      const { state, reason } = tapeHealth(fastify.gateway);
      const tape = fastify.clusterTape ?? fastify.gateway.tape;
      if (tape === undefined) return { state, reason, streams: [] };
      const { streams } = await tape.status();
      return {
        state,
        reason,
        streams: streams.map(streamListing),
      };
    },
  );
};

export default tapeRoutes;
