/**
 * Two gateway nodes in one process, one nats-server and one simulated vendor: the stream leases
 * decide which node holds each stream's vendor link (issue #10, slice 2).
 */
import t from 'tap';
import { type GatewayFixture, startGateway } from '../helpers/gateway.js';
import { freePort, NATS_SKIP, startNats } from '../helpers/nats.js';
import { startSimulator } from '../helpers/simulator.js';
import { sampleSessions, sessionsPerPath } from '../helpers/vendor-sessions.js';
import { eventually } from '../helpers/wait.js';

const STOCKS = 'v2/iex';
const CRYPTO = 'v1beta3/crypto/us';
const PATHS = [STOCKS, CRYPTO];

interface ClusterBody {
  cluster: string | null;
  node: string | null;
  nats: string | null;
  nodes: { id: string; clients: number; streams: string[]; lastSeen: string }[];
  streams: Record<string, { role: string; owner: string | null; state: string; since: string }>;
}

async function getCluster(node: GatewayFixture): Promise<ClusterBody> {
  const res = await node.app.inject({ method: 'GET', url: '/cluster' });
  if (res.statusCode !== 200) throw new Error(`GET /cluster answered ${res.statusCode}: ${res.body}`);
  return res.json() as ClusterBody;
}

const ownersOf = (body: ClusterBody): Record<string, string | null> => Object.fromEntries(Object.entries(body.streams).map(([stream, s]) => [stream, s.owner]));

t.test('standalone, GET /cluster answers 200 with cluster null and no streams', async (t) => {
  const gw = await startGateway(t);
  t.same(await getCluster(gw), { cluster: null, node: null, nats: null, nodes: [], streams: {} });
});

t.test('two nodes share one vendor session per stream, and a clean close of the owner hands over', { skip: NATS_SKIP }, async (t) => {
  // Teardowns run in reverse: the gateways close first, then the simulator, then nats-server.
  const nats = await startNats(t);
  const sim = await startSimulator(t);
  const sampler = sampleSessions(t, sim);
  const env = (node: string): Record<string, string> => ({
    UPSTREAM_URL: sim.baseUrl,
    STREAMS: PATHS.join(','),
    APCA_API_KEY_ID: 'AKCLUSTER',
    APCA_API_SECRET_KEY: 'cluster-secret',
    RETRY_BASE_MS: '20',
    RETRY_MAX_MS: '200',
    NATS_URL: nats.url,
    CLUSTER_NAME: 'slice2',
    NODE_ID: node,
    LEASE_TTL_MS: '1500',
  });
  const a = await startGateway(t, env('node-a'));
  const b = await startGateway(t, env('node-b'));
  const nodes = { 'node-a': a, 'node-b': b };

  // (a) after start: exactly one authenticated vendor session per path, on the node that owns it.
  await eventually(() => PATHS.every((path) => sessionsPerPath(sim, PATHS).get(path) === 1), 'one vendor session per stream path');
  await eventually(() => PATHS.every((path) => [a, b].some((n) => n.gateway.stream(path)?.link.state === 'live')), 'every stream live on some node');
  for (const path of PATHS) {
    const live = [a, b].filter((n) => n.gateway.stream(path)?.link.state === 'live');
    t.equal(live.length, 1, `${path}: one node's link is live`);
    t.equal(a.app.cluster?.role(path) === 'owner', a.gateway.stream(path)?.link.state === 'live', `${path}: node-a's role matches its link`);
    t.equal(b.app.cluster?.role(path) === 'owner', b.gateway.stream(path)?.link.state === 'live', `${path}: node-b's role matches its link`);
  }

  // (c) both nodes agree on the owners, and each owner is the node whose link is live.
  const [viewA, viewB] = await Promise.all([getCluster(a), getCluster(b)]);
  t.match(viewA, { cluster: 'slice2', node: 'node-a', nats: 'connected' });
  t.match(viewB, { cluster: 'slice2', node: 'node-b', nats: 'connected' });
  t.same(ownersOf(viewA), ownersOf(viewB), 'both nodes name the same owners');
  for (const [stream, { owner, role }] of Object.entries(viewA.streams)) {
    t.ok(owner === 'node-a' || owner === 'node-b', `${stream} has an owner`);
    t.equal(role, owner === 'node-a' ? 'owner' : 'follower', `${stream}: node-a's role`);
    t.equal(nodes[owner as keyof typeof nodes].gateway.stream(stream)?.link.state, 'live', `${stream}: the owner's link is live`);
  }

  // (b) close the node that owns the stocks stream: the other takes every stream over at once.
  const ownerId = ownersOf(viewA)[STOCKS] as keyof typeof nodes;
  const survivorId = ownerId === 'node-a' ? 'node-b' : 'node-a';
  const survivor = nodes[survivorId];
  await nodes[ownerId].app.close();
  await Promise.all(PATHS.map((path) => eventually(() => survivor.gateway.stream(path)?.link.state === 'live', `${survivorId} live on ${path}`)));
  // A clean close deletes the leases: the survivor sees the delete through its watch rather than
  // waiting out the TTL and finding the lease expired by a poll.
  const acquired = survivor.logs().filter((line) => line.includes('"msg":"lease acquired"') && line.includes(STOCKS));
  t.match(acquired.at(-1), /"via":"watch"/, 'the stocks lease was taken over through the watch, at once');
  t.same(Object.fromEntries(sessionsPerPath(sim, PATHS)), Object.fromEntries(PATHS.map((path) => [path, 1])), 'still one session per path');
  const after = await getCluster(survivor);
  t.same(ownersOf(after), Object.fromEntries(PATHS.map((path) => [path, survivorId])), 'the survivor owns every stream');
  t.ok(Object.values(after.streams).every((s) => s.role === 'owner'));
  t.same(after.nodes.map((n) => n.id), [survivorId], 'the closed node\'s entry is gone');

  t.equal(sampler.most(), 1, 'never two authenticated vendor sessions on one path at any sampled instant');
});

t.test('an unreachable NATS at start is retried and reported, and no vendor link starts meanwhile', { skip: NATS_SKIP }, async (t) => {
  const sim = await startSimulator(t);
  const port = await freePort();
  const gw = await startGateway(t, {
    UPSTREAM_URL: sim.baseUrl,
    STREAMS: STOCKS,
    APCA_API_KEY_ID: 'AKCLUSTER',
    APCA_API_SECRET_KEY: 'cluster-secret',
    NATS_URL: `nats://127.0.0.1:${port}`,
    NODE_ID: 'lonely',
    LEASE_TTL_MS: '1500',
  });
  await eventually(() => gw.logs().some((line) => line.includes('cluster cannot reach NATS; retrying')), 'a retry is logged');
  t.match(await getCluster(gw), { cluster: 'tickmux', node: 'lonely', nats: 'connecting', nodes: [], streams: { [STOCKS]: { role: 'unknown', owner: null, state: 'connecting' } } });
  t.equal(gw.gateway.defaultStream.link.state, 'stopped', 'no vendor link without a lease');
  t.equal(sim.sessions().length, 0);
  const health = await gw.app.inject({ method: 'GET', url: '/health' });
  t.equal(health.statusCode, 503, 'not ready: it serves nothing it cannot serve correctly');
});
