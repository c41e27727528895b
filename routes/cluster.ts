/**
 * GET /cluster: this node's view of the cluster (DESIGN.md §10) — its NATS connection, the live
 * nodes, and per served stream the lease holder, this node's role and the link state. A
 * standalone gateway answers 200 with nulls and nothing listed, so one probe works on both. Open
 * like /streams.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Static } from '@sinclair/typebox';
import type { ClusterNode } from '../src/cluster/cluster-node.js';
import type { Gateway } from '../src/hub/gateway.js';
import { answer, ClusterStatus, CorrelationHeaders, Forbidden } from '../src/schemas.js';

/** This node's view of the cluster (the lease holders read from NATS now); nulls when standalone. The status page shows the same. */
export async function clusterStatus(cluster: ClusterNode | undefined, gateway: Gateway): Promise<Static<typeof ClusterStatus>> {
  if (cluster === undefined) return { cluster: null, node: null, nats: null, nodes: [], streams: {} };
  const owners = await cluster.owners();
  const streams: Static<typeof ClusterStatus>['streams'] = {};
  for (const { path, upstream } of gateway.streams) {
    streams[path] = { owner: owners.get(path) ?? null, role: cluster.role(path), state: upstream.state, since: new Date(upstream.since).toISOString() };
  }
  return { cluster: cluster.name, node: cluster.nodeId, nats: cluster.nats, nodes: cluster.nodes(), streams };
}

const clusterRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get(
    '/cluster',
    {
      schema: {
        tags: ['observability'],
        operationId: 'getCluster',
        summary: "The cluster's nodes and the owner of each stream's vendor link",
        description:
          "The live nodes with their clients and streams, and per served stream the node holding its lease (read from NATS at request time), this node's role, and the vendor link's state as this node sees it. Standalone (NATS_URL unset): `cluster`, `node` and `nats` are null, `nodes` and `streams` empty.",
        headers: CorrelationHeaders,
        response: { 200: answer(ClusterStatus, "This node's view of the cluster, or nulls when standalone."), 403: Forbidden },
      },
    },
    async (): Promise<Static<typeof ClusterStatus>> => clusterStatus(fastify.cluster, fastify.gateway),
  );
};

export default clusterRoutes;
