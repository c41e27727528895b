/**
 * Three gateway nodes in one process, one nats-server and one simulated vendor (issue #10,
 * slice 3): the owner relays the vendor's messages through NATS, every node serves its own
 * clients, and the control plane works from any node.
 */
import t from 'tap';
import { type GatewayFixture, startGateway } from '../helpers/gateway.js';
import { NATS_SKIP, startNats } from '../helpers/nats.js';
import { startSimulator } from '../helpers/simulator.js';
import type { Message, StreamClient } from '../helpers/stream-client.js';
import { sampleSessions } from '../helpers/vendor-sessions.js';
import { eventually } from '../helpers/wait.js';

const STOCKS = 'v2/iex';
const TOKEN = 'relay-token';

const trades = (client: StreamClient, symbol: string): Message[] => client.messages.filter((m) => m.T === 't' && m.S === symbol);
const ids = (messages: Message[]): bigint[] => messages.map((m) => BigInt(m.i as number | bigint));

async function control(node: GatewayFixture, method: 'GET' | 'POST', url: string, payload?: object): Promise<{ statusCode: number; body: Record<string, unknown> }> {
  const res = await node.app.inject({ method, url, headers: { authorization: `Bearer ${TOKEN}` }, ...(payload === undefined ? {} : { payload }) });
  return { statusCode: res.statusCode, body: res.json() as Record<string, unknown> };
}

t.test('three nodes: one vendor session, the same trades on every node, and the control plane from any node', { skip: NATS_SKIP }, async (t) => {
  const nats = await startNats(t);
  const sim = await startSimulator(t);
  const sampler = sampleSessions(t, sim);
  const env = (node: string): Record<string, string> => ({
    UPSTREAM_URL: sim.baseUrl,
    STREAMS: STOCKS,
    APCA_API_KEY_ID: 'AKRELAY',
    APCA_API_SECRET_KEY: 'relay-secret',
    RETRY_BASE_MS: '20',
    RETRY_MAX_MS: '200',
    CONTROL_TOKEN: TOKEN,
    NATS_URL: nats.url,
    CLUSTER_NAME: 'relay',
    NODE_ID: node,
    LEASE_TTL_MS: '1500',
  });
  const nodes = [await startGateway(t, env('node-a')), await startGateway(t, env('node-b')), await startGateway(t, env('node-c'))];
  await eventually(() => nodes.every((n) => n.gateway.defaultStream.upstream.state === 'live'), 'every node ready (its own link or a live owner)');
  const owner = nodes.find((n) => n.app.cluster?.role(STOCKS) === 'owner') as GatewayFixture;
  const [f1, f2] = nodes.filter((n) => n !== owner) as [GatewayFixture, GatewayFixture];
  t.equal(nodes.filter((n) => n.app.cluster?.role(STOCKS) === 'owner').length, 1, 'exactly one owner');
  for (const n of [f1, f2]) t.equal(n.gateway.defaultStream.link.state, 'stopped', 'a follower runs no vendor link');

  // Clients: AAPL on the owner (JSON) and on a follower (msgpack); only QUIET on the other follower.
  const onOwner = await owner.connect();
  const onF1 = await f1.connect({ encoding: 'msgpack' });
  const onF2 = await f2.connect();
  for (const [client, key] of [[onOwner, 'o'], [onF1, 'f1'], [onF2, 'f2']] as const) t.match(await client.auth(key, 's'), { T: 'success', msg: 'authenticated' });
  await onOwner.request({ action: 'subscribe', trades: ['AAPL'], quotes: ['AAPL'] });
  await onF1.request({ action: 'subscribe', trades: ['AAPL'], quotes: ['AAPL'] });
  await onF2.request({ action: 'subscribe', trades: ['QUIET'] });
  const ownerLink = owner.gateway.defaultStream.link;
  await eventually(() => ownerLink.desired.has('trades', 'AAPL') && ownerLink.desired.has('quotes', 'AAPL') && ownerLink.desired.has('trades', 'QUIET'), 'the owner holds every node’s set at the vendor');
  await ownerLink.whenSynced(10_000);

  const first = 9_007_199_254_740_993n; // beyond 2^53: exact through every hop or not at all
  const t0 = '2026-11-27T14:30:00.123456789Z';
  const N = 40;
  for (let k = 0; k < N; k++) {
    sim.publish([
      { T: 't', S: 'AAPL', i: first + BigInt(k), x: 'V', p: 187.25 + k / 100, s: 100 + k, c: ['@'], t: t0, z: 'C' },
      { T: 'q', S: 'AAPL', bx: 'V', bp: 187 + k / 100, bs: 1, ax: 'V', ap: 188, as: 2, c: ['R'], t: t0, z: 'C' },
      ...(k % 10 === 0 ? [{ T: 't', S: 'QUIET', i: BigInt(k), x: 'V', p: 1.5, s: 1, c: ['@'], t: t0, z: 'C' }] : []),
    ]);
  }
  const expected = Array.from({ length: N }, (_, k) => first + BigInt(k));
  await eventually(() => trades(onOwner, 'AAPL').length === N && trades(onF1, 'AAPL').length === N && trades(onF2, 'QUIET').length === N / 10, 'every client’s trades');
  t.same(ids(trades(onOwner, 'AAPL')), expected, 'the owner’s client: every AAPL trade, in order');
  t.same(ids(trades(onF1, 'AAPL')), expected, 'a follower’s msgpack client: the same trades, in the same order');
  const plain = (m: Message): Message => ({ ...m, t: String(m.t) }); // both decode `t` as a Timestamp
  t.same(trades(onF1, 'AAPL').map(plain), trades(onOwner, 'AAPL').map(plain), 'and the same values (prices, nanosecond timestamps)');
  t.equal(String(trades(onF1, 'AAPL')[0]?.t), t0, 'nanoseconds intact across NATS');
  t.same(
    onF1.messages.filter((m) => m.T === 'q').map((m) => m.bp),
    onOwner.messages.filter((m) => m.T === 'q').map((m) => m.bp),
    'quotes alike',
  );
  const f2View = f2.app.cluster?.view(STOCKS);
  t.equal(f2View?.counters.received, N / 10, 'the QUIET-only node received from NATS exactly the QUIET trades, nothing else');
  t.equal(f1.app.cluster?.view(STOCKS)?.counters.received, 2 * N, 'the AAPL node: its trades and quotes');
  t.match(f1.app.cluster?.view(STOCKS)?.counters, { lost: 0, duplicates: 0 }, 'none lost, none twice');
  t.equal(owner.app.cluster?.view(STOCKS)?.counters.published, 2 * N + N / 10, 'the owner published each vendor message once');
  t.notOk(onF2.messages.some((m) => m.S === 'AAPL'), 'no AAPL on the QUIET client');
  const followerStream = ((await control(f1, 'GET', '/streams')).body.streams as Record<string, unknown>[])[0];
  t.match(followerStream, { state: 'live', reconnects: 0, lastMessageAt: /^\d{4}-/ }, 'a follower’s /streams: the owner’s state, and when relayed data last arrived');

  // Snapshot on a follower that never held AAPL: the owner's last values, then live data.
  const snap = await f2.connect({ query: 'snapshot=1' });
  await snap.auth('snap', 's');
  const reply = snap.messages.length;
  await snap.request({ action: 'subscribe', trades: ['AAPL'], quotes: ['AAPL'] });
  await snap.waitFor((m) => m.T === 't' && m.S === 'AAPL', 'the snapshot trade', reply);
  t.same(ids(trades(snap, 'AAPL')), [expected[N - 1]], 'a follower’s snapshot client gets the last AAPL trade, asked of the owner');
  await snap.waitFor((m) => m.T === 'q' && m.S === 'AAPL', 'the snapshot quote', reply);
  await eventually(() => ownerLink.desired.has('trades', 'AAPL'), 'still held');
  sim.publish([{ T: 't', S: 'AAPL', i: first + BigInt(N), x: 'V', p: 190, s: 1, c: ['@'], t: t0, z: 'C' }]);
  await eventually(() => trades(snap, 'AAPL').length === 2 && trades(onF1, 'AAPL').length === N + 1, 'the next trade on both followers');
  t.same(ids(trades(snap, 'AAPL')), [expected[N - 1], first + BigInt(N)], 'then live trades, no duplicate of the snapshot');

  // Pin from a follower: the owner holds it at the vendor, every node lists it.
  const pinned = await control(f1, 'POST', '/subscriptions', { action: 'subscribe', bars: ['PINNED'] });
  t.equal(pinned.statusCode, 200, 'a follower’s pin is answered once the vendor acknowledged it');
  t.match(pinned.body, { applied: true, pinned: { bars: ['PINNED'] } });
  const vendorSession = sim.sessions().find((s) => s.authenticated && s.closeCode === undefined);
  t.same(vendorSession?.subscriptions.bars, ['PINNED'], 'the vendor session holds the pinned bar');
  for (const node of nodes) {
    await eventually(() => node.gateway.defaultStream.hub.pinned.has('bars', 'PINNED'), 'every node mirrors the pinned set');
    t.match((await control(node, 'GET', '/subscriptions')).body, { pinned: { bars: ['PINNED'] } });
  }

  // Restart from the other follower: the owner's link reconnects, still one session, data again.
  const before = vendorSession?.id;
  const restart = await control(f2, 'POST', '/restart', {});
  t.equal(restart.statusCode, 202);
  t.match(restart.body, { restarts: [{ stream: STOCKS, restartId: String, joined: false }] });
  await eventually(() => ownerLink.state === 'live' && sim.sessions().some((s) => s.authenticated && s.closeCode === undefined && s.id !== before), 'a new vendor session');
  await ownerLink.whenSynced(10_000);
  sim.publish([{ T: 't', S: 'AAPL', i: first + BigInt(N + 1), x: 'V', p: 191, s: 1, c: ['@'], t: t0, z: 'C' }]);
  await eventually(() => trades(onF1, 'AAPL').length === N + 2, 'data after the restart on a follower');

  // GET /cluster: the same owner and the three nodes seen from every node.
  for (const node of nodes) {
    const { body } = await control(node, 'GET', '/cluster');
    t.match(body, { streams: { [STOCKS]: { owner: owner.app.cluster?.nodeId, state: 'live' } } });
    t.same((body.nodes as { id: string }[]).map((n) => n.id), ['node-a', 'node-b', 'node-c']);
  }
  t.match(((await control(owner, 'GET', '/cluster')).body.nodes as { id: string; clients: number }[]).find((n) => n.id === f2.app.cluster?.nodeId), { clients: 2 });

  // Metrics: the relay's counters and who owns the stream.
  const metrics = async (node: GatewayFixture): Promise<string> => (await node.app.inject({ method: 'GET', url: '/metrics' })).body;
  t.match(await metrics(owner), /tickmux_cluster_owner\{stream="v2\/iex"\} 1/);
  t.match(await metrics(owner), new RegExp(`tickmux_cluster_published_total\\{stream="v2/iex"\\} ${2 * N + N / 10 + 2}`));
  t.match(await metrics(f2), /tickmux_cluster_owner\{stream="v2\/iex"\} 0/);
  t.match(await metrics(f2), /tickmux_cluster_nodes 3/);
  t.match(await metrics(f1), /tickmux_cluster_received_total\{stream="v2\/iex"\} \d+/);

  t.equal(sampler.most(), 1, 'never two authenticated vendor sessions at any sampled instant');
});

type Level = { p: number; s: number };

/** The book a client holds after `messages`, applied as the SDKs do (a reset replaces it; s: 0 removes a level). */
function replay(messages: readonly Message[]): { b: Level[]; a: Level[] } {
  const sides = { b: new Map<number, number>(), a: new Map<number, number>() };
  for (const m of messages) {
    if (m.r === true) for (const side of Object.values(sides)) side.clear();
    for (const key of ['b', 'a'] as const) for (const { p, s } of m[key] as Level[]) (s === 0 ? sides[key].delete(p) : sides[key].set(p, s));
  }
  const sorted = (side: Map<number, number>, sign: number): Level[] => [...side].sort(([x], [y]) => sign * (x - y)).map(([p, s]) => ({ p, s }));
  return { b: sorted(sides.b, -1), a: sorted(sides.a, 1) };
}

t.test('an order book joined on a follower starts from the owner’s reset and ends equal to the owner’s', { skip: NATS_SKIP }, async (t) => {
  const CRYPTO = 'v1beta3/crypto/us';
  const BOOK = 'BTC/USD';
  const nats = await startNats(t);
  const sim = await startSimulator(t, { rate: 0 });
  const env = (node: string): Record<string, string> => ({
    UPSTREAM_URL: sim.baseUrl,
    STREAMS: CRYPTO,
    APCA_API_KEY_ID: 'AKBOOK',
    APCA_API_SECRET_KEY: 'book-secret',
    NATS_URL: nats.url,
    CLUSTER_NAME: 'books',
    NODE_ID: node,
    LEASE_TTL_MS: '1500',
  });
  const owner = await startGateway(t, env('owner'));
  await eventually(() => owner.app.cluster?.role(CRYPTO) === 'owner' && owner.gateway.defaultStream.link.state === 'live', 'the first node owns the stream');
  const follower = await startGateway(t, env('follower'));
  await eventually(() => follower.gateway.defaultStream.upstream.state === 'live', 'the follower follows');

  const reader = await owner.connect();
  await reader.auth('r', 's');
  await reader.request({ action: 'subscribe', trades: [BOOK], orderbooks: [BOOK] });
  await owner.gateway.defaultStream.link.whenSynced(10_000);
  sim.setRate(2000);
  await reader.until(() => reader.messages.filter((m) => m.T === 'o').length >= 30, 'the vendor’s reset and updates');

  const late = await follower.connect({ encoding: 'msgpack' });
  await late.auth('l', 's');
  await late.request({ action: 'subscribe', trades: [BOOK], orderbooks: [BOOK] });
  await late.until(() => late.messages.filter((m) => m.T === 'o').length >= 20, 'the follower client’s reset and updates');

  // Quiesce: no more flow, then a marker trade every client must get, after everything before it.
  sim.setRate(0);
  await owner.gateway.defaultStream.link.whenSynced(10_000);
  sim.publish([{ T: 't', S: BOOK, p: 1, s: 1, t: '2026-11-27T15:00:00Z', i: 42, tks: 'B' }], CRYPTO);
  for (const c of [reader, late]) await c.waitFor((m) => m.T === 't' && m.i === 42, 'the marker trade');

  const lateBooks = late.messages.filter((m) => m.T === 'o' && m.S === BOOK);
  t.equal(lateBooks[0]?.r, true, 'the follower client’s first book message is a reset');
  t.ok(lateBooks.slice(1).every((m) => m.r === undefined), 'then updates only');
  const readerBooks = reader.messages.filter((m) => m.T === 'o' && m.S === BOOK);
  t.same(replay(lateBooks), replay(readerBooks), 'its book ends equal to the owner’s client’s');
  const updates = lateBooks.slice(1);
  t.same(updates.map((m) => m.t === undefined ? '' : String(m.t)), readerBooks.slice(readerBooks.length - updates.length).map((m) => String(m.t)), 'and its updates are the owner’s last ones, in order');
});
