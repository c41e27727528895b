/**
 * GET /cluster: this node's view of the cluster (DESIGN.md §10) — its NATS connection and, per
 * served stream, its role and the lease holder. A standalone gateway answers 200 with
 * `cluster: null` and no streams, so one probe works on both. Open like /streams.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Static } from '@sinclair/typebox';
import { answer, ClusterStatus, CorrelationHeaders, Forbidden } from '../src/schemas.js';

const clusterRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get(
    '/cluster',
    {
      schema: {
        tags: ['observability'],
        operationId: 'getCluster',
        summary: "This node's NATS connection and the owner of each stream's vendor link",
        description:
          "Per served stream: this node's role (owner, follower or unknown) and the node holding the stream's lease, read from NATS at request time. Standalone (NATS_URL unset): `cluster`, `node` and `nats` are null and `streams` is empty.",
        headers: CorrelationHeaders,
        response: { 200: answer(ClusterStatus, "This node's view of the cluster, or nulls when standalone."), 403: Forbidden },
      },
    },
    async (): Promise<Static<typeof ClusterStatus>> => {
      const cluster = fastify.cluster;
      if (cluster === undefined) return { cluster: null, node: null, nats: null, streams: [] };
      const owners = await cluster.owners();
      return {
        cluster: cluster.name,
        node: cluster.nodeId,
        nats: cluster.nats,
        streams: fastify.gateway.paths.map((stream) => ({ stream, role: cluster.role(stream), owner: owners.get(stream) ?? null })),
      };
    },
  );
};

export default clusterRoutes;
