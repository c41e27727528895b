import { inspect } from 'node:util';
import { encode } from '@msgpack/msgpack';
import t from 'tap';
import { FakeClock } from '../helpers/fake-clock.js';
import { startGateway } from '../helpers/gateway.js';
import { StreamClient } from '../helpers/stream-client.js';

const EMPTY = { trades: [], quotes: [], bars: [], updatedBars: [], dailyBars: [], statuses: [], lulds: [], corrections: [], cancelErrors: [], imbalances: [] };
const KEYS = { CLIENT_KEYS: 'alice:alice-secret,bob:bob-secret' };

t.test('the vendor flow: greeting, auth by message, this client’s own full set in every reply', async (t) => {
  const gw = await startGateway(t, KEYS);
  const alice = await gw.connect();
  t.same(await alice.auth('alice', 'alice-secret'), { T: 'success', msg: 'authenticated' });
  t.same(alice.messages[0], { T: 'success', msg: 'connected' });
  t.same(await alice.request({ action: 'subscribe', trades: ['AAPL'], quotes: ['AMD', 'CLDR'], bars: ['*'] }), {
    ...EMPTY,
    T: 'subscription',
    trades: ['AAPL'],
    quotes: ['AMD', 'CLDR'],
    bars: ['*'],
    corrections: ['AAPL'],
    cancelErrors: ['AAPL'],
  });
  const bob = await gw.connect({ encoding: 'msgpack' });
  await bob.auth('bob', 'bob-secret');
  t.same(await bob.request({ action: 'subscribe', quotes: ['AMD'] }), { ...EMPTY, T: 'subscription', quotes: ['AMD'] }, 'bob sees his set, not the union');
  t.same(await alice.request({ action: 'unsubscribe', quotes: ['AMD'], bars: ['*'] }), {
    ...EMPTY,
    T: 'subscription',
    trades: ['AAPL'],
    quotes: ['CLDR'],
    corrections: ['AAPL'],
    cancelErrors: ['AAPL'],
  });
  t.ok(bob.raw.every((f) => f.isBinary), 'msgpack clients get binary frames');
  t.ok(alice.raw.every((f) => !f.isBinary), 'JSON clients get text frames');
  const wrong = await gw.connect();
  await wrong.auth('alice', 'bob-secret');
  const logs = gw.logs().join('\n');
  t.match(logs, 'client authenticated', 'the session was logged');
  for (const secret of ['alice-secret', 'bob-secret']) t.notMatch(logs, secret, `${secret} never reaches a log line`);
  t.notMatch(inspect(gw.gateway, { depth: 6 }), 'alice-secret', 'nor inspect() of the gateway');
});

t.test('auth by the APCA key headers at upgrade', async (t) => {
  const gw = await startGateway(t, KEYS);
  const c = await gw.connect({ headers: { 'APCA-API-KEY-ID': 'bob', 'APCA-API-SECRET-KEY': 'bob-secret' } });
  await c.waitFor((m) => m.msg === 'authenticated', 'authenticated');
  t.same(c.messages.slice(0, 2), [
    { T: 'success', msg: 'connected' },
    { T: 'success', msg: 'authenticated' },
  ]);
  const bad = await gw.connect({ headers: { 'APCA-API-KEY-ID': 'bob', 'APCA-API-SECRET-KEY': 'alice-secret' } });
  await bad.waitFor((m) => m.code === 402, '402');
  t.equal(await bad.closed, 1008);
});

t.test('every client-side error code, with the vendor’s text, and the closes that follow', async (t) => {
  const clock = new FakeClock();
  const gw = await startGateway(t, { ...KEYS, MAX_SYMBOLS_PER_CLIENT: '3', CLIENT_AUTH_TIMEOUT_MS: '10000' }, clock);

  const wrong = await gw.connect();
  t.same(await wrong.auth('alice', 'bob-secret'), { T: 'error', code: 402, msg: 'auth failed' }, 'a secret of another key');
  t.equal(await wrong.closed, 1008, '402 closes');
  const unknown = await gw.connect();
  t.same(await unknown.auth('mallory', 'x'), { T: 'error', code: 402, msg: 'auth failed' }, 'an unknown key');

  const c = await gw.connect();
  await c.waitFor((m) => m.msg === 'connected', 'greeting');
  t.same(await c.request({ action: 'subscribe', trades: ['AAPL'] }), { T: 'error', code: 401, msg: 'not authenticated' });
  await c.auth('alice', 'alice-secret');
  const from = c.messages.length;
  c.send({ action: 'auth', key: 'alice', secret: 'alice-secret' });
  t.same(await c.waitFor((m) => m.T === 'error', '403', from), { T: 'error', code: 403, msg: 'already authenticated' });

  await c.request({ action: 'subscribe', trades: ['A', 'B'] });
  t.same(await c.request({ action: 'subscribe', quotes: ['C', 'D'] }), { T: 'error', code: 405, msg: 'symbol limit exceeded' }, 'over MAX_SYMBOLS_PER_CLIENT');
  t.same(await c.request({ action: 'subscribe', news: ['A'] }), { T: 'error', code: 410, msg: 'invalid subscribe action for this feed' }, 'a channel stocks do not carry');
  const badInputs: [string, string | Buffer, boolean][] = [
    ['broken JSON', '{"action":"subscribe",', false],
    ['an array', '[{"action":"subscribe"}]', false],
    ['an unknown action', '{"action":"dance"}', false],
    ['a lower-case symbol', '{"action":"subscribe","trades":["aapl"]}', false],
    ['a symbol that is not a symbol', '{"action":"subscribe","trades":["A A"]}', false],
    ['a number for a list', '{"action":"subscribe","trades":5}', false],
    ['broken msgpack', Buffer.from([0x82, 0xa6]), true],
    ['binary JSON', Buffer.from('{"action":"subscribe"'), true],
  ];
  for (const [name, data, binary] of badInputs) {
    const before = c.messages.length;
    c.send(data, { binary });
    t.same(await c.waitFor((m) => m.T === 'error', name, before), { T: 'error', code: 400, msg: 'invalid syntax' }, name);
  }
  t.same(
    await c.request({ action: 'subscribe', quotes: ['A'] }),
    { ...EMPTY, T: 'subscription', trades: ['A', 'B'], quotes: ['A'], corrections: ['A', 'B'], cancelErrors: ['A', 'B'] },
    'after every refusal the set is what it was, and the session still works',
  );
  c.send(Buffer.from(encode({ action: 'unsubscribe', quotes: ['A'] })), { binary: true });
  await c.waitFor((m) => m.T === 'subscription' && (m.quotes as string[]).length === 0, 'msgpack requests work on a JSON session');

  const silent = await gw.connect();
  await silent.waitFor((m) => m.msg === 'connected', 'greeting');
  clock.advance(10_000);
  await silent.waitFor((m) => m.code === 404, 'the auth timeout');
  t.same(silent.messages.at(-1), { T: 'error', code: 404, msg: 'auth timeout' });
  t.equal(await silent.closed, 1008, '404 closes');
  t.equal(c.closeCode, undefined, 'the other session never noticed');
});

t.test('406 at auth beyond MAX_CLIENTS authenticated clients, and a place frees when one leaves', async (t) => {
  const gw = await startGateway(t, { MAX_CLIENTS: '2' });
  const a = await gw.connect();
  const b = await gw.connect();
  const idle = await gw.connect(); // connected, never authenticates: holds no place
  await a.auth('a', 's');
  await b.auth('b', 's');
  const third = await gw.connect();
  t.same(await third.auth('c', 's'), { T: 'error', code: 406, msg: 'connection limit exceeded' }, 'refused at auth, as the vendor does');
  t.equal(await third.closed, 1008);
  await b.close();
  await a.until(() => gw.gateway.defaultStream.hub.stats.authenticated === 1, 'the server to see the close');
  const fourth = await gw.connect();
  t.same(await fourth.auth('d', 's'), { T: 'success', msg: 'authenticated' });
  t.equal(gw.gateway.defaultStream.hub.stats.rejectedConnections, 1);
  t.equal(idle.closeCode, undefined, 'the idle one is still connected');
});

t.test('idle unauthenticated sockets cannot lock real clients out (MAX_CLIENTS counts authenticated ones)', async (t) => {
  const gw = await startGateway(t, { MAX_CLIENTS: '5' });
  for (let i = 0; i < 5; i++) await gw.connect(); // before: five of these took every place
  const real = await gw.connect();
  t.same(await real.auth('real', 's'), { T: 'success', msg: 'authenticated' });
  t.equal(gw.gateway.defaultStream.hub.pendingAuth, 5);
});

t.test('an oversized frame gets 400 and close 1009; other clients are untouched', async (t) => {
  const gw = await startGateway(t, { MAX_MESSAGE_BYTES: '4096', SIMULATOR_RATE: '2000' });
  const other = await gw.connect();
  await other.auth('o', 's');
  await other.request({ action: 'subscribe', trades: ['AAPL'] });
  const big = await gw.connect();
  await big.auth('b', 's');
  big.send(JSON.stringify({ action: 'subscribe', trades: Array.from({ length: 2000 }, (_, i) => `S${i}`) }));
  t.equal(await big.closed, 1009);
  t.same(big.messages.at(-1), { T: 'error', code: 400, msg: 'invalid syntax' });
  const seen = other.messages.length;
  await other.until(() => other.messages.length > seen + 5, 'more trades');
  t.equal(other.closeCode, undefined);
});

t.test('a stream path the gateway does not serve is refused with 404 naming the served ones; plain HTTP gets 426', async (t) => {
  const gw = await startGateway(t, { STREAMS: 'v2/iex,v1beta1/news' });
  const refused = (path: string) =>
    new StreamClient(gw.url('', path)).opened().then(
      () => undefined,
      (e: { statusCode: number; body: string }) => e,
    );
  for (const path of ['v2/sip', 'v1beta3/crypto/us', 'v1beta1/opra', 'v2/nope', 'v1beta3/nope/us', 'news']) {
    const err = await refused(path);
    t.equal(err?.statusCode, 404, path);
    t.same(JSON.parse(err?.body ?? '{}'), {
      type: 'https://tickmux.dev/problems/404',
      title: 'Not Found',
      status: 404,
      detail: `/${path} serves no stream here; this gateway serves /v2/iex, /v1beta1/news`,
      correlationId: JSON.parse(err?.body ?? '{}').correlationId,
      instance: `/${path}`,
      stream: path,
      served: ['v2/iex', 'v1beta1/news'],
    });
  }
  const plain = await fetch(`${gw.base}/v2/iex`);
  t.equal(plain.status, 426);
  t.equal(plain.headers.get('upgrade'), 'websocket');
});

t.test('a flood of subscribe/unsubscribe from one client: every request answered, others unaffected, the vendor converges', async (t) => {
  const gw = await startGateway(t, { SIMULATOR_RATE: '2000' });
  const other = await gw.connect();
  await other.auth('other', 's');
  await other.request({ action: 'subscribe', trades: ['MSFT'] });
  const flood = await gw.connect({ encoding: 'msgpack' });
  await flood.auth('flood', 's');
  const from = flood.messages.length;
  for (let i = 0; i < 1000; i++) {
    flood.send({ action: i % 2 === 0 ? 'subscribe' : 'unsubscribe', trades: [`S${Math.floor(i / 2) % 50}`], quotes: ['AAPL'] });
  }
  await flood.until(() => flood.messages.slice(from).filter((m) => m.T === 'subscription').length === 1000, 'a reply to each of the 1000 requests');
  const last = flood.messages.slice(from).filter((m) => m.T === 'subscription').at(-1)!;
  t.same([last.trades, last.quotes], [[], []], 'the last request (an unsubscribe) leaves the set empty');
  await gw.gateway.defaultStream.link.whenSynced(10_000);
  const held = gw.simulator!.sessions().find((s) => s.authenticated)!.subscriptions;
  t.same([held.trades, held.quotes], [['MSFT'], []], 'the vendor converged on what is really held');
  const seen = other.messages.length;
  await other.until(() => other.messages.length > seen + 10, 'the other client keeps receiving');
  t.equal(other.closeCode, undefined);
  t.equal(gw.simulator!.stats.connections, 1, 'no reconnect');
});
