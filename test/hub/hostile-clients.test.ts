/**
 * Clients and operators that cost the gateway what they can: each test is one of the
 * reproductions of issue #8, asserting the work a request causes (vendor frames, calls into the
 * vendor link, replies, bytes queued) rather than how long anything takes (DESIGN.md §11).
 */
import t, { type Test } from 'tap';
import { WebSocket } from 'ws';
import type { Pair } from '../../src/protocol/channel-set.js';
import { Timestamp } from '../../src/protocol/timestamp.js';
import { startGateway } from '../helpers/gateway.js';
import { startSimulator } from '../helpers/simulator.js';
import type { Message } from '../helpers/stream-client.js';
import { eventually } from '../helpers/wait.js';

/**
 * A bare JSON client that keeps the raw frames it receives without decoding them (a 600 KB
 * subscription reply decoded 200 times would measure the test, not the gateway).
 */
async function rawClient(t: Test, url: string): Promise<{ ws: WebSocket; frames: Buffer[]; closed: Promise<number>; send(value: unknown): void }> {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  const frames: Buffer[] = [];
  ws.on('message', (data: Buffer) => frames.push(data));
  const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
  ws.on('error', () => {});
  t.teardown(async () => {
    if (ws.readyState !== WebSocket.CLOSED) ws.terminate();
    await closed;
  });
  await new Promise((resolve) => ws.once('open', resolve));
  await eventually(() => frames.length >= 1, 'the greeting');
  return { ws, frames, closed, send: (value) => ws.send(JSON.stringify(value)) };
}

/** Counts calls into the vendor link's incremental path. */
function spyOnLink(link: { change(added: Iterable<Pair>, removed: Iterable<Pair>, options?: { correlationId?: string }): void }): { calls: () => number } {
  let calls = 0;
  const original = link.change.bind(link);
  link.change = (added, removed, options) => {
    calls += 1;
    original(added, removed, options);
  };
  return { calls: () => calls };
}

const SYMBOLS = Array.from({ length: 10_000 }, (_, i) => `S${String(i).padStart(5, '0')}`);
/** 60,000 pairs: ten thousand symbols on six channels. */
const BIG_SET = { trades: SYMBOLS, quotes: SYMBOLS, bars: SYMBOLS, updatedBars: SYMBOLS, dailyBars: SYMBOLS, statuses: SYMBOLS };

/** A raw client holding BIG_SET, its reply received (frames: greeting, authenticated, reply). */
async function bigClient(t: Test, url: string): Promise<Awaited<ReturnType<typeof rawClient>>> {
  const big = await rawClient(t, url);
  big.send({ action: 'auth', key: 'big', secret: 's' });
  big.send({ action: 'subscribe', ...BIG_SET });
  await eventually(() => big.frames.length >= 3, 'the big client’s reply');
  return big;
}

t.test('no-op requests from a client holding 60,000 pairs are answered from one cached reply; nothing reaches the index or the vendor', async (t) => {
  const gw = await startGateway(t);
  const big = await bigClient(t, gw.url());
  await gw.gateway.defaultStream.link.whenSynced(30_000);
  const first = big.frames[2] as Buffer;
  t.ok(first.length > 500_000, `the reply holds the client's whole set (${first.length} bytes)`);
  const link = spyOnLink(gw.gateway.defaultStream.link);
  const vendorFrames = gw.gateway.defaultStream.link.stats.subscriptionFrames;
  const noops = gw.gateway.defaultStream.hub.stats.noopRequests;
  // Ten at a time: a client that reads gets every reply (a burst past 8 MiB unread would be a 407).
  for (let i = 0; i < 200; i++) {
    big.send(i % 2 === 0 ? { action: 'subscribe' } : { action: 'subscribe', trades: ['S00042'], bars: ['S09999'] });
    if (i % 10 === 9) await eventually(() => big.frames.length === 3 + i + 1, `reply ${i + 1}`);
  }
  t.equal(gw.gateway.defaultStream.hub.stats.noopRequests - noops, 200, 'every one recognised as changing nothing');
  t.equal(link.calls(), 0, 'the vendor link was not asked anything (before: a union copy and a diff each)');
  t.equal(gw.gateway.defaultStream.link.stats.subscriptionFrames, vendorFrames, 'no frame went to the vendor');
  t.ok(
    big.frames.slice(3).every((frame) => frame.equals(first)),
    'every reply is the same full set, as the vendor would answer',
  );
  t.equal(big.ws.readyState, WebSocket.OPEN, 'a client that reads its replies stays connected');
});

t.test('unsubscribes from a client that holds nothing cost nothing while another holds 60,000 pairs', async (t) => {
  const gw = await startGateway(t);
  await bigClient(t, gw.url());
  const small = await gw.connect();
  await small.auth('small', 's');
  const link = spyOnLink(gw.gateway.defaultStream.link);
  for (let i = 0; i < 100; i++) small.send({ action: 'unsubscribe', trades: ['S00001'], quotes: ['*'] });
  await eventually(() => small.messages.filter((m) => m.T === 'subscription').length === 100, 'a hundred replies');
  t.equal(link.calls(), 0, 'nothing reached the vendor link (before: 50 ms each, copying the union)');
  t.ok(small.messages.filter((m) => m.T === 'subscription').every((m) => (m.trades as string[]).length === 0), 'each answered with its own empty set');
});

t.test('a client that asks and never reads is closed with 407 once its replies pass CLIENT_MAX_BUFFER_BYTES', async (t) => {
  const gw = await startGateway(t, { CLIENT_HIGH_WATER_BYTES: '65536', CLIENT_MAX_BUFFER_BYTES: '262144' });
  const greedy = await rawClient(t, gw.url());
  greedy.send({ action: 'auth', key: 'greedy', secret: 's' });
  const symbols = SYMBOLS.slice(0, 2000);
  greedy.send({ action: 'subscribe', trades: symbols, quotes: symbols, bars: symbols, statuses: symbols });
  await eventually(() => greedy.frames.length >= 3, 'the reply');
  greedy.ws.pause(); // reads nothing more
  const other = await gw.connect();
  await other.auth('other', 's');
  // ~90 KB a reply: the loopback buffers take a few MB before the gateway holds any of it.
  for (let i = 0; i < 400 && gw.gateway.defaultStream.hub.stats.slowClientCloses === 0; i++) {
    greedy.send({ action: 'subscribe' });
    if (i % 20 === 19) await new Promise((resolve) => setImmediate(resolve));
  }
  await eventually(() => gw.gateway.defaultStream.hub.stats.slowClientCloses === 1, 'the 407 (before: 36 MB queued and no close)');
  t.same(await other.request({ action: 'subscribe', trades: ['AAPL'] }), { T: 'subscription', trades: ['AAPL'], quotes: [], bars: [], updatedBars: [], dailyBars: [], statuses: [], lulds: [], corrections: ['AAPL'], cancelErrors: ['AAPL'], imbalances: [] }, 'another client is served as usual');
  greedy.ws.resume();
  t.equal(await greedy.closed > 0, true, 'the greedy client is gone');
});

t.test('a transient 500 on the restore after a vendor drop leaves clients their sets, and data resumes', async (t) => {
  const sim = await startSimulator(t);
  const gw = await startGateway(t, { UPSTREAM_URL: sim.url('iex'), APCA_API_KEY_ID: 'AKGW', APCA_API_SECRET_KEY: 'gw-secret', RETRY_BASE_MS: '20', RETRY_MAX_MS: '200' });
  await gw.gateway.defaultStream.link.whenLive(10_000);
  const client = await gw.connect({ query: 'events=1' });
  await client.auth('c', 's');
  await client.request({ action: 'subscribe', trades: ['AAPL'] });
  await gw.gateway.defaultStream.link.whenSynced(10_000);
  const t1 = Timestamp.parse('2024-01-02T14:30:00.000000001Z');
  sim.publish([{ T: 't', S: 'AAPL', i: 1, x: 'V', p: 100, s: 1, c: ['@'], t: t1, z: 'C' }]);
  await client.waitFor((m) => m.T === 't', 'the first trade');
  const from = client.messages.length;
  sim.rejectSubscribe(500, 1);
  sim.dropAll({ terminate: true });
  await client.waitFor((m) => m.T === 'gateway' && m.event === 'upstream_up', 'the link back up', from);
  t.equal(gw.gateway.defaultStream.link.stats.transientSubscriptionErrors, 1, 'the restore met the 500 and retried');
  sim.publish([{ T: 't', S: 'AAPL', i: 2, x: 'V', p: 100.5, s: 1, c: ['@'], t: t1, z: 'C' }]);
  await client.waitFor((m) => m.T === 't' && m.i === 2, 'the next trade (before: never: the set was emptied)', from);
  const after: Message[] = client.messages.slice(from);
  t.same(after.filter((m) => m.T === 'error' || m.T === 'subscription'), [], 'no error and no emptied set reached the client');
});

t.test('POST /restart and then a shutdown: no vendor connection is opened once the shutdown began', async (t) => {
  const sim = await startSimulator(t);
  const gw = await startGateway(t, { UPSTREAM_URL: sim.url('iex'), APCA_API_KEY_ID: 'AKGW', APCA_API_SECRET_KEY: 'gw-secret' });
  await gw.gateway.defaultStream.link.whenLive(10_000);
  const states: string[] = [];
  const restart = await gw.app.inject({ method: 'POST', url: '/restart' });
  t.equal(restart.statusCode, 202);
  gw.gateway.defaultStream.link.on('state', (change) => states.push(change.to));
  await gw.app.close(); // what SIGTERM does
  t.notOk(states.includes('connecting'), `no attempt after the shutdown began (states: ${states.join(' → ')})`);
  t.equal(gw.gateway.defaultStream.link.state, 'stopped');
  await eventually(() => sim.sessions().length === 0, 'the vendor to see no session');
  t.equal(sim.stats.connections, 1, 'the restart never reconnected (before: a second connection, cut by the exit)');
});

t.test('ten concurrent POST /restart and more within RESTART_COALESCE_MS share one id and one reconnect', async (t) => {
  const sim = await startSimulator(t);
  const gw = await startGateway(t, { UPSTREAM_URL: sim.url('iex'), APCA_API_KEY_ID: 'AKGW', APCA_API_SECRET_KEY: 'gw-secret', RESTART_COALESCE_MS: '60000' });
  await gw.gateway.defaultStream.link.whenLive(10_000);
  const first = await Promise.all(Array.from({ length: 10 }, () => gw.app.inject({ method: 'POST', url: '/restart' })));
  await eventually(() => gw.gateway.defaultStream.link.state === 'live' && sim.stats.authentications === 2, 'the restarted link');
  const late = await Promise.all(Array.from({ length: 3 }, () => gw.app.inject({ method: 'POST', url: '/restart' })));
  const bodies = [...first, ...late].map((r) => (r.json() as { restarts: { restartId: string; joined: boolean }[] }).restarts[0]!);
  t.equal(new Set(bodies.map((b) => b.restartId)).size, 1, 'one restart id for all thirteen');
  t.equal(bodies.filter((b) => !b.joined).length, 1, 'one started it; the others joined');
  await new Promise((resolve) => setTimeout(resolve, 50));
  t.equal(sim.stats.authentications, 2, 'one reconnect');
});

t.test('before auth: a frame over 4 KiB closes with 1009 without being read; anything but auth costs one 401', async (t) => {
  const gw = await startGateway(t);
  const requests = gw.gateway.defaultStream.hub.stats.clientRequests;
  for (let i = 0; i < 20; i++) {
    const hostile = await rawClient(t, gw.url());
    hostile.ws.send(Buffer.alloc(1024 * 1024, 0x20)); // 1 MiB of spaces (before: parsed, 1.5 s of CPU for twenty)
    t.equal(await hostile.closed, 1009);
  }
  t.equal(gw.gateway.defaultStream.hub.stats.clientRequests, requests, 'none of the twenty frames reached a parser');
  const early = await gw.connect();
  t.same(await early.request({ action: 'subscribe', trades: ['AAPL'] }), { T: 'error', code: 401, msg: 'not authenticated' });
  early.send('{"not json');
  t.same(await early.waitFor((m) => m.T === 'error', 'the answer to garbage', early.messages.length), { T: 'error', code: 401, msg: 'not authenticated' });
  t.same(await early.auth('late', 's'), { T: 'success', msg: 'authenticated' }, 'the connection still takes an auth');
  const big = JSON.stringify({ action: 'subscribe', trades: SYMBOLS.slice(0, 1000) });
  t.ok(big.length > 4096, 'after auth, frames above 4 KiB are fine');
  t.equal((await early.request(JSON.parse(big) as Record<string, never>)).T, 'subscription');
  // A client that does not wait for the auth reply: the limit is lifted before ws reads the next frame.
  const eager = await rawClient(t, gw.url());
  eager.send({ action: 'auth', key: 'eager', secret: 's' });
  eager.ws.send(big);
  await eventually(() => eager.frames.length >= 3, 'the reply to the big subscribe');
  t.match(eager.frames[2]?.toString(), /^\[\{"T":"subscription"/, 'auth and a 10 KB subscribe back to back: both served');
});
