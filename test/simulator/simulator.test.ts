import { encode } from '@msgpack/msgpack';
import t from 'tap';
import { Timestamp } from '../../src/protocol/timestamp.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { connect, startSimulator } from '../helpers/simulator.js';
import { StreamClient } from '../helpers/stream-client.js';

const CREDENTIALS = [
  { key: 'paid', secret: 'paid-secret' },
  { key: 'free', secret: 'free-secret', plan: { feeds: ['iex' as const], maxSymbols: 3, wildcard: false } },
];

const EMPTY_SET = { trades: [], quotes: [], bars: [], updatedBars: [], dailyBars: [], statuses: [], lulds: [], corrections: [], cancelErrors: [], imbalances: [] };

t.test('greets, authenticates by message and answers with the full per-connection set', async (t) => {
  const sim = await startSimulator(t, { credentials: CREDENTIALS });
  const c = await connect(t, sim.url('iex'));
  t.same(await c.auth('paid', 'paid-secret'), { T: 'success', msg: 'authenticated' });
  t.same(c.messages[0], { T: 'success', msg: 'connected' }, 'the greeting comes first');
  t.same(await c.request({ action: 'subscribe', trades: ['AAPL'], quotes: ['AMD', 'CLDR'], bars: ['*'], dailyBars: ['VOO'], statuses: ['*'] }), {
    ...EMPTY_SET,
    T: 'subscription',
    trades: ['AAPL'],
    quotes: ['AMD', 'CLDR'],
    bars: ['*'],
    dailyBars: ['VOO'],
    statuses: ['*'],
    corrections: ['AAPL'],
    cancelErrors: ['AAPL'],
  });
  t.same(await c.request({ action: 'unsubscribe', quotes: ['AMD'], bars: ['*'] }), {
    ...EMPTY_SET,
    T: 'subscription',
    trades: ['AAPL'],
    quotes: ['CLDR'],
    dailyBars: ['VOO'],
    statuses: ['*'],
    corrections: ['AAPL'],
    cancelErrors: ['AAPL'],
  });
  const other = await connect(t, sim.url('sip'));
  await other.auth('paid', 'paid-secret');
  t.same(await other.request({ action: 'subscribe', trades: ['MSFT'] }), { ...EMPTY_SET, T: 'subscription', trades: ['MSFT'], corrections: ['MSFT'], cancelErrors: ['MSFT'] }, 'each connection has its own set');
});

t.test('authenticates from the APCA key headers without an auth message', async (t) => {
  const sim = await startSimulator(t, { credentials: CREDENTIALS });
  const c = await connect(t, sim.url('iex'), { headers: { 'APCA-API-KEY-ID': 'paid', 'APCA-API-SECRET-KEY': 'paid-secret' } });
  await c.waitFor((m) => m.msg === 'authenticated', 'authenticated');
  t.same(c.messages.slice(0, 2), [
    { T: 'success', msg: 'connected' },
    { T: 'success', msg: 'authenticated' },
  ]);
  const bad = await connect(t, sim.url('iex'), { headers: { 'APCA-API-KEY-ID': 'paid', 'APCA-API-SECRET-KEY': 'wrong' } });
  await bad.waitFor((m) => m.code === 402, '402');
  t.equal(await bad.closed, 1008, 'bad header credentials close the connection');
});

t.test('every auth error code the vendor uses, with its text, and the closes that follow', async (t) => {
  const sim = await startSimulator(t, { credentials: CREDENTIALS, authTimeoutMs: 50 });

  const wrong = await connect(t, sim.url('iex'));
  t.same(await wrong.auth('paid', 'nope'), { T: 'error', code: 402, msg: 'auth failed' });
  t.equal(await wrong.closed, 1008, '402 closes');

  const unknown = await connect(t, sim.url('iex'));
  t.same(await unknown.auth('nobody', 'x'), { T: 'error', code: 402, msg: 'auth failed' });

  const first = await connect(t, sim.url('iex'));
  await first.auth('paid', 'paid-secret');
  t.same(await first.request({ action: 'subscribe', trades: ['A'] }), { ...EMPTY_SET, T: 'subscription', trades: ['A'], corrections: ['A'], cancelErrors: ['A'] });
  const from = first.messages.length;
  t.same(await (async () => (first.send({ action: 'auth', key: 'paid', secret: 'paid-secret' }), first.waitFor((m) => m.T === 'error', '403', from)))(), { T: 'error', code: 403, msg: 'already authenticated' });
  t.equal(first.closeCode, undefined, '403 does not close');

  const second = await connect(t, sim.url('iex'));
  t.same(await second.auth('paid', 'paid-secret'), { T: 'error', code: 406, msg: 'connection limit exceeded' });
  t.equal(await second.closed, 1008, '406 closes the newcomer');
  t.equal(first.closeCode, undefined, 'the first session survives');
  t.equal(sim.stats.maxConcurrentPerKey, 1, 'never two authenticated sessions for one key and feed');

  const otherFeed = await connect(t, sim.url('sip'));
  t.same(await otherFeed.auth('paid', 'paid-secret'), { T: 'success', msg: 'authenticated' }, 'the limit is per feed');

  const plan = await connect(t, sim.url('sip'));
  t.same(await plan.auth('free', 'free-secret'), { T: 'error', code: 409, msg: 'insufficient subscription' }, 'a feed outside the plan');

  const numeric = await connect(t, sim.url('iex'));
  await numeric.waitFor((m) => m.msg === 'connected', 'greeting');
  numeric.send('{"action":"auth","key":1,"secret":2}');
  t.same(await numeric.waitFor((m) => m.T === 'error', 'the reply to a numeric key'), { T: 'error', code: 400, msg: 'invalid syntax' }, 'auth with wrong types');

  const early = await connect(t, sim.url('iex'));
  await early.waitFor((m) => m.msg === 'connected', 'greeting');
  t.same(await early.request({ action: 'subscribe', trades: ['AAPL'] }), { T: 'error', code: 401, msg: 'not authenticated' });

  const silent = await connect(t, sim.url('iex'));
  await silent.waitFor((m) => m.code === 404, 'the auth timeout');
  t.same(silent.messages.at(-1), { T: 'error', code: 404, msg: 'auth timeout' });
  t.equal(await silent.closed, 1008, '404 closes');
});

t.test('subscription errors leave the previous set unchanged', async (t) => {
  const sim = await startSimulator(t, { credentials: CREDENTIALS });
  const c = await connect(t, sim.url('iex'));
  await c.auth('free', 'free-secret');
  await c.request({ action: 'subscribe', trades: ['A', 'B'] });
  t.same(await c.request({ action: 'subscribe', quotes: ['C', 'D'] }), { T: 'error', code: 405, msg: 'symbol limit exceeded' }, 'four distinct symbols on a three-symbol plan');
  t.same(await c.request({ action: 'subscribe', bars: ['*'] }), { T: 'error', code: 409, msg: 'insufficient subscription' }, 'no wildcard on this plan');
  t.same(await c.request({ action: 'subscribe', orderbooks: ['A'] }), { T: 'error', code: 410, msg: 'invalid subscribe action for this feed' }, 'a channel this stream does not carry');
  t.same(await c.request({ action: 'subscribe', trades: ['aapl'] }), { T: 'error', code: 400, msg: 'invalid syntax' }, 'a lower-case symbol');
  t.same(await c.request({ action: 'subscribe', trades: 'AAPL' }), { T: 'error', code: 400, msg: 'invalid syntax' }, 'a string where a list belongs');
  t.same(await c.request({ action: 'subscribe', trades: [7] }), { T: 'error', code: 400, msg: 'invalid syntax' }, 'a number where a symbol belongs');
  sim.rejectSubscribe(500);
  t.same(await c.request({ action: 'subscribe', trades: ['C'] }), { T: 'error', code: 500, msg: 'internal error' }, 'an injected internal error');
  t.same(
    await c.request({ action: 'subscribe', quotes: ['B', 'C'], news: [], orderbooks: null, imbalances: null, foo: 1 }),
    { ...EMPTY_SET, T: 'subscription', trades: ['A', 'B'], quotes: ['B', 'C'], corrections: ['A', 'B'], cancelErrors: ['A', 'B'] },
    'after every refusal the set is what it was; empty, null and unknown keys are tolerated',
  );
});

t.test('malformed client frames get 400 and the connection and its neighbours carry on', async (t) => {
  const sim = await startSimulator(t, { rate: 2000, maxPayloadBytes: 64 * 1024 });
  const neighbour = await connect(t, sim.url('iex'));
  await neighbour.auth('neighbour', 's');
  await neighbour.request({ action: 'subscribe', trades: ['AAPL'] });
  const c = await connect(t, sim.url('iex'));
  await c.auth();
  const inputs: [string, string | Buffer, boolean][] = [
    ['broken JSON', '{"action":', false],
    ['a JSON array', '[{"action":"subscribe"}]', false],
    ['a JSON string', '"subscribe"', false],
    ['an unknown action', '{"action":"dance"}', false],
    ['no action', '{"trades":["AAPL"]}', false],
    ['broken msgpack', Buffer.from([0x82, 0xa6]), true],
    ['msgpack that is not a map', Buffer.from(encode(['subscribe'])), true],
  ];
  for (const [name, data, binary] of inputs) {
    const from = c.messages.length;
    c.send(data, { binary });
    t.same(await c.waitFor((m) => m.T === 'error', name, from), { T: 'error', code: 400, msg: 'invalid syntax' }, name);
  }
  c.send(Buffer.from(encode({ action: 'subscribe', quotes: ['MSFT'] })), { binary: true });
  await c.waitFor((m) => m.T === 'subscription', 'msgpack requests work on a JSON session');
  const huge = await connect(t, sim.url('iex'));
  await huge.auth('huge', 's');
  huge.send(JSON.stringify({ action: 'subscribe', trades: Array.from({ length: 20000 }, (_, i) => `S${i}`) }));
  t.equal(await huge.closed, 1009, 'a frame over the payload limit is closed with 1009 (message too big)');
  t.same(huge.messages.at(-1), { T: 'error', code: 400, msg: 'invalid syntax' }, 'after the 400 reply');
  const enormous = await connect(t, sim.url('iex'));
  await enormous.auth('enormous', 's');
  enormous.send(Buffer.alloc(1024 * 1024, 0x20), { binary: false });
  t.equal(await enormous.closed, 1009, 'a frame far over the limit is cut before it is buffered');
  const seen = neighbour.messages.length;
  await neighbour.until(() => neighbour.messages.length > seen + 5, 'more trades for the neighbour');
  t.equal(neighbour.closeCode, undefined, 'the neighbour never noticed');
});

t.test('data: each connection receives only what it subscribed to, in its encoding, losslessly', async (t) => {
  const sim = await startSimulator(t, { rate: 2000, barIntervalMs: 50, statusIntervalMs: 50 });
  const json = await connect(t, sim.url('iex'));
  const packed = await connect(t, sim.url('sip'), { encoding: 'msgpack' });
  await json.auth();
  await packed.auth();
  await json.request({ action: 'subscribe', trades: ['AAPL'], bars: ['SPY'], statuses: ['*'] });
  await packed.request({ action: 'subscribe', quotes: ['MSFT'], lulds: ['MSFT'] });
  await json.until(() => json.messages.filter((m) => m.T === 't').length >= 10 && json.messages.some((m) => m.T === 'b') && json.messages.some((m) => m.T === 's'), 'trades, bars and statuses');
  await packed.until(() => packed.messages.filter((m) => m.T === 'q').length >= 10 && packed.messages.some((m) => m.T === 'l'), 'quotes and LULDs');
  const data = (c: StreamClient) => c.messages.filter((m) => !['success', 'subscription', 'error'].includes(m.T as string));
  t.ok(data(json).every((m) => (m.T === 't' || m.T === 'c' || m.T === 'x') ? m.S === 'AAPL' : m.T === 'b' ? m.S === 'SPY' : m.T === 's'), 'JSON client: only AAPL trades, SPY bars and statuses');
  t.ok(data(packed).every((m) => (m.T === 'q' || m.T === 'l') && m.S === 'MSFT'), 'msgpack client: only MSFT quotes and LULDs');
  t.ok(json.raw.every((f) => !f.isBinary), 'JSON sessions get text frames');
  t.ok(packed.raw.every((f) => f.isBinary), 'msgpack sessions get binary frames');
  const trades = data(json).filter((m) => m.T === 't');
  t.ok(trades.every((m) => m.t instanceof Timestamp), 'JSON timestamps decode to nanosecond Timestamps');
  t.ok(trades.some((m) => typeof m.i === 'bigint' && (m.i as bigint) > 2n ** 53n), 'some trade ids are beyond 2^53');
  const ids = trades.map((m) => BigInt(m.i as number | bigint));
  t.ok(ids.every((id, i) => i === 0 || id > (ids[i - 1] as bigint)), 'trade ids of a symbol increase');
  t.ok(json.frames.some((f) => f.length > 1), 'data is batched several messages per frame');
  const rawJson = json.raw.find((f) => f.data.includes('"T":"t"'))!.data.toString();
  t.match(rawJson, /"t":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z"/, 'JSON timestamps are RFC 3339 text');
  const quote = data(packed).find((m) => m.T === 'q')!;
  t.same(Object.keys(quote)[0], 'T', 'msgpack maps have T first');
  t.ok(quote.t instanceof Timestamp, 'msgpack timestamps are the timestamp extension');
});

t.test('the wildcard delivers the universe and unknown message types reach everyone', async (t) => {
  const sim = await startSimulator(t, { rate: 3000, universe: ['AAA', 'BBB'] });
  const c = await connect(t, sim.url('iex'));
  await c.auth();
  await c.request({ action: 'subscribe', trades: ['*'] });
  await c.until(() => ['AAA', 'BBB'].every((s) => c.messages.some((m) => m.T === 't' && m.S === s)), 'trades of both universe symbols');
  sim.publish([{ T: 'zz', S: 'QQQ', payload: 1 }]);
  t.same(await c.waitFor((m) => m.T === 'zz', 'the unknown type'), { T: 'zz', S: 'QQQ', payload: 1 });
});

t.test('fault: dropAll closes every connection, cleanly or by cutting TCP', async (t) => {
  const sim = await startSimulator(t);
  const a = await connect(t, sim.url('iex'));
  const b = await connect(t, sim.url('iex'), { encoding: 'msgpack' });
  await a.auth();
  await b.auth('other', 'x');
  sim.dropAll({ code: 1012 });
  t.same([await a.closed, await b.closed], [1012, 1012]);
  const c = await connect(t, sim.url('iex'));
  await c.auth();
  sim.dropAll({ terminate: true });
  t.equal(await c.closed, 1006, 'a cut connection closes abnormally');
});

t.test('fault: stall stops data and pongs until it ends', async (t) => {
  const sim = await startSimulator(t, { rate: 2000 });
  const c = await connect(t, sim.url('iex'));
  await c.auth();
  await c.request({ action: 'subscribe', quotes: ['AAPL'] });
  await c.until(() => c.messages.some((m) => m.T === 'q'), 'quotes');
  let pongs = 0;
  c.socket.on('pong', () => pongs++);
  c.socket.ping();
  await c.until(() => pongs === 1, 'a pong while healthy');
  sim.stall(60_000);
  t.ok(sim.stalled);
  const frozen = c.messages.length;
  c.socket.ping();
  // Prove silence by a marker the stalled vendor must not answer either: a request.
  c.send({ action: 'subscribe', quotes: ['MSFT'] });
  await new Promise((resolve) => setTimeout(resolve, 200));
  t.equal(pongs, 1, 'no pong while stalled');
  t.ok(c.messages.length <= frozen + 1, 'no data while stalled (one frame may already have been in flight)');
  sim.resume();
  c.socket.ping();
  await c.until(() => pongs >= 2, 'pongs again after the stall');
  await c.request({ action: 'subscribe', quotes: ['MSFT'] });
  await c.until(() => c.messages.slice(frozen + 1).some((m) => m.T === 'q'), 'data again after the stall');
});

t.test('fault: rejectAuth answers the next auths with the given code', async (t) => {
  const sim = await startSimulator(t);
  sim.rejectAuth(406, 2);
  for (let i = 0; i < 2; i++) {
    const c = await connect(t, sim.url('iex'));
    t.same(await c.auth(), { T: 'error', code: 406, msg: 'connection limit exceeded' });
  }
  const ok = await connect(t, sim.url('iex'));
  t.same(await ok.auth(), { T: 'success', msg: 'authenticated' }, 'then auth works again');
  sim.rejectAuth(500);
  const internal = await connect(t, sim.url('sip'));
  t.same(await internal.auth(), { T: 'error', code: 500, msg: 'internal error' });
  t.same(await internal.auth(), { T: 'success', msg: 'authenticated' }, 'a 500 does not close: the client may try again');
});

t.test('fault: malformed frames from the vendor, of every kind', async (t) => {
  const sim = await startSimulator(t);
  for (const encoding of ['json', 'msgpack'] as const) {
    const c = await connect(t, sim.url('iex'), { encoding });
    await c.auth(`k-${encoding}`, 's');
    const rawBefore = c.raw.length;
    const messagesBefore = c.messages.length;
    for (const kind of ['garbage', 'not-array', 'not-object', 'unknown-type', 'unknown-error'] as const) sim.sendMalformed(kind);
    await c.until(() => c.raw.length === rawBefore + 5, 'five malformed frames');
    t.ok(c.raw.slice(rawBefore).every((f) => f.isBinary === (encoding === 'msgpack')), `${encoding}: in the session's frame kind`);
    t.equal(c.undecodable.length, 2, `${encoding}: garbage and a non-array frame do not decode`);
    t.same(
      c.messages.slice(messagesBefore),
      [42, { T: 'zz', S: 'AAPL', note: 'a type the gateway has never seen' }, { T: 'error', code: 499, msg: 'a code the gateway has never seen' }],
      `${encoding}: a non-object element, an unknown type and an unknown error code`,
    );
  }
});

t.test('fault: refused upgrades, unknown paths and rate changes', async (t) => {
  const sim = await startSimulator(t, { feeds: ['iex'] });
  sim.refuseUpgrades(429);
  const refusal = (url: string): Promise<unknown> => new StreamClient(url).opened().then(() => 'opened', (err: { statusCode?: number }) => err.statusCode);
  t.equal(await refusal(sim.url('iex')), 429, 'upgrades refused with the injected status');
  sim.refuseUpgrades(undefined);
  t.equal(await refusal(sim.url('sip')), 404, 'a feed the simulator does not serve');
  t.equal(await refusal(sim.url('iex').replace('/v2/iex', '/v1beta3/crypto/us')), 404, 'a stream path this simulator was not told to serve');
  sim.setRate(0);
  const c = await connect(t, sim.url('iex'));
  await c.auth();
  await c.request({ action: 'subscribe', trades: ['AAPL'] });
  t.equal(sim.stats.messagesSent, 0, 'rate 0 sends no data');
  sim.setRate(5000);
  await c.until(() => c.messages.some((m) => m.T === 't'), 'trades once the rate is raised');
  t.throws(() => sim.setRate(-1), RangeError);
});

t.test('slow client: a reader that stops reading is sent 407 and closed; others keep receiving', async (t) => {
  const sim = await startSimulator(t, { rate: 20000, batchSize: 200, maxBufferBytes: 256 * 1024 });
  const healthy = await connect(t, sim.url('iex'));
  const slow = await connect(t, sim.url('sip'));
  await healthy.auth();
  await slow.auth();
  await healthy.request({ action: 'subscribe', trades: ['AAPL'], quotes: ['AAPL'] });
  await slow.request({ action: 'subscribe', trades: ['AAPL'], quotes: ['AAPL'] });
  // Stop reading from the socket: the kernel buffers fill, then the vendor's own buffer grows.
  (slow.socket as unknown as { _socket: { pause(): void } })._socket.pause();
  const judged = await new Promise<{ id: number }>((resolve) => sim.once('slow-client', resolve));
  t.ok(judged.id > 0, 'the vendor judged the session slow');
  const before = healthy.messages.length;
  await healthy.until(() => healthy.messages.length > before + 100, 'the healthy client keeps receiving');
  (slow.socket as unknown as { _socket: { resume(): void } })._socket.resume();
  t.equal(await slow.closed, 1008, 'closed by the vendor');
  t.same(slow.messages.find((m) => m.T === 'error'), { T: 'error', code: 407, msg: 'slow client' }, 'the slow client was told why');
});

t.test('stop() closes every connection and leaves the port free', async (t) => {
  const sim = await startSimulator(t);
  const c = await connect(t, sim.url('iex'));
  await c.auth();
  const port = sim.port;
  await sim.stop();
  t.equal(await c.closed, 1006);
  await sim.stop();
  t.pass('stop() twice is safe');
  const again = await startSimulator(t, { port });
  t.equal(again.port, port, 'the port can be bound again');
});

t.test('the market flows at its rate by the clock when its timer fires late, making up for 100 ms at most', async (t) => {
  const clock = new FakeClock();
  const sim = await startSimulator(t, { clock, rate: 1000 });
  const c = await connect(t, sim.url('iex'));
  await c.auth();
  await c.request({ action: 'subscribe', quotes: ['AAPL'] });
  const quotes = (): number => c.messages.filter((m) => m.T === 'q').length;
  t.equal(quotes(), 0, 'no time passed on the clock: nothing is due, whatever the timer does');
  clock.advance(80); // one timer tick sees 80 ms: a timer 8 ticks late
  await c.until(() => quotes() === 80, '80 quotes for 80 ms at 1,000/s');
  clock.advance(60_000); // a minute unseen: 100 ms' worth, not a minute's burst
  await c.until(() => quotes() === 180, '100 ms’ worth more');
  clock.advance(1);
  await c.until(() => quotes() === 181, 'then on at the rate');
});
