import { streaming } from '@alpacahq/alpaca-trade-api';
import t, { type Test } from 'tap';
import { Timestamp } from '../../src/protocol/timestamp.js';
import type { VendorSimulator } from '../../src/simulator/index.js';
import { startGateway } from '../helpers/gateway.js';
import { startSimulator } from '../helpers/simulator.js';
import type { Message, StreamClient } from '../helpers/stream-client.js';
import { eventually } from '../helpers/wait.js';

const NANOS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/;

interface SdkTrade {
  symbol: string;
  idRaw: string;
  timestampRaw: string;
}

/** An official SDK client on the gateway, collecting trades and quotes; disconnected in teardown. */
function sdkClient(t: Test, url: string, key = 'sdk', secret = 'sdk-secret') {
  const stream = new streaming.StockDataStream({ url, credentials: { keyId: key, secret }, reconnect: false });
  t.teardown(() => stream.disconnect());
  const trades: SdkTrade[] = [];
  const quotes: { symbol: string; timestampRaw: string }[] = [];
  const errors: string[] = [];
  stream.onTrade((trade) => {
    trades.push({ symbol: String(trade.symbol), idRaw: String(trade.idRaw), timestampRaw: String(trade.timestampRaw) });
  });
  stream.onQuote((quote) => {
    quotes.push({ symbol: String(quote.symbol), timestampRaw: String(quote.timestampRaw) });
  });
  stream.onError((err) => {
    errors.push(String(err));
  });
  return { stream, trades, quotes, errors };
}

/** The vendor session the gateway holds (the only authenticated one). */
function vendorSession(sim: VendorSimulator) {
  const sessions = sim.sessions().filter((s) => s.authenticated);
  if (sessions.length !== 1) throw new Error(`expected one vendor session, found ${sessions.length}`);
  return sessions[0]!;
}

const data = (c: StreamClient): Message[] => c.messages.filter((m) => !['success', 'subscription', 'error', 'gateway'].includes(m.T as string));

t.test('SDK and JSON clients at once: each gets exactly its own symbols, losslessly, over one vendor connection', async (t) => {
  const gw = await startGateway(t, { SIMULATOR_RATE: '3000' });
  const sim = gw.simulator!;
  const a = sdkClient(t, gw.url());
  a.stream.subscribeForTrades(['AAPL']);
  a.stream.subscribeForQuotes(['MSFT']);
  a.stream.connect();
  const b = sdkClient(t, gw.url(), 'sdk-b');
  b.stream.subscribeForTrades(['MSFT']);
  b.stream.connect();
  t.equal(await a.stream.waitForAuthentication(10_000), true);
  t.equal(await b.stream.waitForAuthentication(10_000), true);
  const c = await gw.connect();
  await c.auth('json', 'x');
  await c.request({ action: 'subscribe', trades: ['AAPL'], quotes: ['NVDA'] });

  await gw.gateway.defaultStream.link.whenSynced(10_000);
  const held = vendorSession(sim).subscriptions;
  t.same([held.trades.sort(), held.quotes.sort()], [['AAPL', 'MSFT'], ['MSFT', 'NVDA']], 'the vendor holds the union');
  t.equal(sim.stats.connections, 1, 'one vendor connection for every client');

  await eventually(() => a.trades.length >= 20 && a.quotes.length >= 20 && b.trades.length >= 20 && data(c).filter((m) => m.T === 'q').length >= 20, 'data for everyone');
  t.same(a.errors, []);
  t.ok(a.trades.every((x) => x.symbol === 'AAPL') && a.quotes.every((x) => x.symbol === 'MSFT'), 'SDK A: AAPL trades and MSFT quotes only');
  t.ok(b.trades.every((x) => x.symbol === 'MSFT'), 'SDK B: MSFT trades only');
  t.ok(b.quotes.length === 0, 'SDK B: no quotes');
  t.ok(data(c).every((m) => (m.T === 'q' ? m.S === 'NVDA' : m.S === 'AAPL')), 'JSON client: AAPL trades and NVDA quotes only');
  t.ok([...a.trades, ...b.trades].every((x) => NANOS.test(x.timestampRaw)), 'SDK timestamps keep nine fractional digits');

  // The same AAPL trades reach the SDK (msgpack, forwarded bytes) and the JSON client (converted once).
  const jsonTrades = new Map(data(c).filter((m) => m.T === 't').map((m) => [BigInt(m.i as bigint).toString(), m]));
  const shared = a.trades.filter((x) => jsonTrades.has(x.idRaw));
  t.ok(shared.length >= 10, `${shared.length} trades seen by both`);
  t.ok(shared.every((x) => Timestamp.parse(x.timestampRaw).equals(jsonTrades.get(x.idRaw)!.t as Timestamp)), 'identical nanosecond timestamps in both encodings');
  t.ok(shared.some((x) => BigInt(x.idRaw) > 2n ** 53n), 'ids beyond 2^53 arrive intact in both');
  const ids = a.trades.map((x) => BigInt(x.idRaw));
  t.ok(ids.every((id, i) => i === 0 || id === ids[i - 1]! + 1n || id > ids[i - 1]!), 'SDK A sees AAPL ids in order');
  const text = c.raw.map((f) => f.data.toString()).join('');
  t.match(text, /"t":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z"/, 'JSON text keeps the fraction');
  const textIds = [...text.matchAll(/"i":(\d+)/g)].map((m) => BigInt(m[1]!));
  t.ok(textIds.some((id) => id > 2n ** 53n), 'and 64-bit ids as exact digits');
});

t.test('reference counting: the vendor keeps a symbol while anyone holds it, drops it when the last leaves', async (t) => {
  const gw = await startGateway(t);
  const sim = gw.simulator!;
  const link = gw.gateway.defaultStream.link;
  const a = await gw.connect();
  const b = await gw.connect();
  await a.auth('a', 's');
  await b.auth('b', 's');
  await a.request({ action: 'subscribe', trades: ['AAPL', 'MSFT'], quotes: ['AAPL'] });
  await b.request({ action: 'subscribe', trades: ['AAPL'] });
  await link.whenSynced(10_000);
  t.same(vendorSession(sim).subscriptions.trades, ['AAPL', 'MSFT']);
  await a.request({ action: 'unsubscribe', trades: ['AAPL'] });
  await link.whenSynced(10_000);
  t.same(vendorSession(sim).subscriptions.trades, ['AAPL', 'MSFT'], 'b still holds AAPL trades');
  await b.request({ action: 'unsubscribe', trades: ['AAPL'] });
  await link.whenSynced(10_000);
  t.same(vendorSession(sim).subscriptions.trades, ['MSFT'], 'the last holder left: unsubscribed upstream');
  await a.close();
  await eventually(() => gw.gateway.defaultStream.hub.stats.connected === 1, 'the gateway to see the close');
  await link.whenSynced(10_000);
  t.same([vendorSession(sim).subscriptions.trades, vendorSession(sim).subscriptions.quotes], [[], []], 'a disconnect releases every reference');
  t.equal(sim.stats.connections, 1, 'all of it on the live link, no reconnect');
});

t.test('no message for a symbol follows its acknowledged unsubscribe', async (t) => {
  const gw = await startGateway(t, { SIMULATOR_RATE: '5000' });
  const c = await gw.connect({ encoding: 'msgpack' });
  await c.auth('c', 's');
  await c.request({ action: 'subscribe', trades: ['AAPL', 'MSFT'], quotes: ['AAPL', 'MSFT'] });
  await eventually(() => data(c).filter((m) => m.S === 'AAPL').length > 50, 'AAPL data');
  const reply = await c.request({ action: 'unsubscribe', trades: ['AAPL'], quotes: ['AAPL'] });
  const at = c.messages.indexOf(reply);
  await eventually(() => c.messages.slice(at).filter((m) => m.S === 'MSFT').length > 300, 'plenty of MSFT data after the reply');
  t.equal(c.messages.slice(at).filter((m) => m.S === 'AAPL').length, 0, 'not one AAPL message after the acknowledgement');
});

t.test('the wildcard works beside explicit symbols, without duplicates', async (t) => {
  const gw = await startGateway(t, { SIMULATOR_RATE: '3000' });
  const star = await gw.connect();
  const one = await gw.connect();
  await star.auth('star', 's');
  await one.auth('one', 's');
  await star.request({ action: 'subscribe', trades: ['*', 'AAPL'] });
  await one.request({ action: 'subscribe', trades: ['AAPL'] });
  await eventually(() => new Set(data(star).map((m) => m.S)).size >= 5 && data(one).length >= 20, 'trades of many symbols');
  t.ok(data(one).every((m) => m.S === 'AAPL'));
  const aaplIds = data(star).filter((m) => m.T === 't' && m.S === 'AAPL').map((m) => String(m.i));
  t.equal(new Set(aaplIds).size, aaplIds.length, 'each AAPL trade once, though held explicitly and through *');
  await star.request({ action: 'unsubscribe', trades: ['AAPL'] });
  const at = star.messages.length;
  await eventually(() => star.messages.slice(at).filter((m) => m.S === 'AAPL').length > 3, 'AAPL still arrives through *');
  t.pass('unsubscribing one symbol under * keeps the wildcard');
});

t.test('unknown message types reach every client unchanged', async (t) => {
  const gw = await startGateway(t);
  const a = await gw.connect();
  const b = await gw.connect({ encoding: 'msgpack' });
  await a.auth('a', 's');
  await b.auth('b', 's');
  gw.simulator!.publish([{ T: 'zz', S: 'QQQ', nested: { list: [1, 2] }, t: Timestamp.parse('2024-01-02T14:30:00.000000001Z') }]);
  const expected = { T: 'zz', S: 'QQQ', nested: { list: [1, 2] }, t: new Timestamp(1704205800, 1) };
  t.same(await a.waitFor((m) => m.T === 'zz', 'zz on JSON'), expected);
  t.same(await b.waitFor((m) => m.T === 'zz', 'zz on msgpack'), expected);
});

t.test('a vendor value JSON cannot hold (NaN) skips the JSON clients, reaches the msgpack ones, and breaks nothing', async (t) => {
  const gw = await startGateway(t);
  const sim = gw.simulator!;
  const json = await gw.connect();
  const packed = await gw.connect({ encoding: 'msgpack' });
  await json.auth('j', 's');
  await packed.auth('p', 's');
  await json.request({ action: 'subscribe', trades: ['AAPL', 'MSFT'], quotes: ['AAPL'] });
  await packed.request({ action: 'subscribe', trades: ['*'] });
  await gw.gateway.defaultStream.link.whenSynced(10_000);
  const t1 = Timestamp.parse('2024-01-02T14:30:00.000000001Z');
  sim.publish([
    { T: 't', S: 'AAPL', i: 1, x: 'V', p: Number.NaN, s: 1, c: ['@'], t: t1, z: 'C' },
    { T: 't', S: 'AAPL', i: 2, x: 'V', p: 100.5, s: 1, c: ['@'], t: t1, z: 'C' },
  ]);
  await json.waitFor((m) => m.T === 't' && m.i === 2, 'the good trade on JSON');
  await packed.waitFor((m) => m.T === 't' && m.i === 2, 'the good trade on msgpack');
  t.same(data(json).map((m) => m.i), [2], 'the JSON client got only the trade JSON can carry');
  const nan = data(packed).find((m) => m.i === 1);
  t.ok(nan !== undefined && Number.isNaN(nan.p), 'the msgpack client got the NaN price as sent');
  t.equal(gw.gateway.defaultStream.hub.stats.unconvertible, 1);
  t.ok(gw.logs().some((l) => l.includes('vendor message has no form in this encoding')), 'logged');
  const snap = await gw.connect({ query: 'snapshot=1' });
  await snap.auth('s', 's');
  await snap.request({ action: 'subscribe', trades: ['AAPL'] });
  sim.publish([{ T: 't', S: 'AAPL', i: 3, x: 'V', p: 100.6, s: 1, c: ['@'], t: t1, z: 'C' }]);
  await snap.waitFor((m) => m.i === 3, 'the next trade');
  t.same(data(snap).map((m) => m.i), [2, 3], 'the snapshot is the last trade JSON can carry');
  t.equal(gw.gateway.defaultStream.link.state, 'live');
});

t.test('a vendor refusal reaches the clients that asked, and only them', async (t) => {
  const sim = await startSimulator(t, { credentials: [{ key: 'AKGW', secret: 'gw-secret', plan: { maxSymbols: 2, wildcard: false } }] });
  const gw = await startGateway(t, { UPSTREAM_URL: sim.url('iex'), APCA_API_KEY_ID: 'AKGW', APCA_API_SECRET_KEY: 'gw-secret', RETRY_BASE_MS: '20' });
  await gw.gateway.defaultStream.link.whenLive(10_000);
  const a = await gw.connect();
  const b = await gw.connect();
  await a.auth('a', 's');
  await b.auth('b', 's');
  await a.request({ action: 'subscribe', trades: ['AAPL', 'MSFT'] });
  await gw.gateway.defaultStream.link.whenSynced(10_000);
  const from = b.messages.length;
  await b.request({ action: 'subscribe', quotes: ['NVDA'] });
  t.same(await b.waitFor((m) => m.T === 'error', 'the refusal', from), { T: 'error', code: 405, msg: 'symbol limit exceeded' });
  const corrected = await b.waitFor((m) => m.T === 'subscription' && (m.quotes as string[]).length === 0, 'the corrected set', from);
  t.same(corrected.quotes, [], 'the refused symbol left the client’s set');
  const bFrom = b.messages.length;
  await b.request({ action: 'subscribe', bars: ['*'] });
  t.same(await b.waitFor((m) => m.T === 'error', '409', bFrom), { T: 'error', code: 409, msg: 'insufficient subscription' });
  t.notOk(a.messages.some((m) => m.T === 'error'), 'the client that asked for nothing refused heard nothing');
  t.equal(gw.gateway.defaultStream.link.state, 'live');
});

t.test('UPSTREAM_MAX_SYMBOLS refuses a subscription that would trip the vendor’s limit, at once', async (t) => {
  const gw = await startGateway(t, { UPSTREAM_MAX_SYMBOLS: '2' });
  const a = await gw.connect();
  await a.auth('a', 's');
  await a.request({ action: 'subscribe', trades: ['AAPL'], quotes: ['AAPL', 'MSFT'] });
  t.same(await a.request({ action: 'subscribe', trades: ['NVDA'] }), { T: 'error', code: 405, msg: 'symbol limit exceeded' });
  t.same((await a.request({ action: 'subscribe', trades: ['MSFT'] })).trades, ['AAPL', 'MSFT'], 'symbols already held upstream cost nothing');
});

t.test('?snapshot=1 sends the last values of newly subscribed symbols at once', async (t) => {
  const gw = await startGateway(t);
  const sim = gw.simulator!;
  const feeder = await gw.connect();
  await feeder.auth('feeder', 's');
  await feeder.request({ action: 'subscribe', trades: ['AAPL'], quotes: ['AAPL'] });
  await gw.gateway.defaultStream.link.whenSynced(10_000);
  const t1 = Timestamp.parse('2024-01-02T14:30:00.000000001Z');
  sim.publish([
    { T: 't', S: 'AAPL', i: 2n ** 53n + 7n, x: 'V', p: 101.5, s: 10, c: ['@'], t: t1, z: 'C' },
    { T: 'q', S: 'AAPL', bx: 'V', bp: 101.4, bs: 1, ax: 'V', ap: 101.6, as: 2, c: ['R'], t: t1, z: 'C' },
    { T: 't', S: 'AAPL', i: 2n ** 53n + 8n, x: 'V', p: 101.55, s: 5, c: ['@'], t: t1, z: 'C' },
  ]);
  await eventually(() => data(feeder).length === 3, 'the feeder got all three');
  const snap = await gw.connect({ query: 'snapshot=1', encoding: 'msgpack' });
  await snap.auth('snap', 's');
  const reply = await snap.request({ action: 'subscribe', trades: ['AAPL'], quotes: ['AAPL'] });
  const at = snap.messages.indexOf(reply);
  await eventually(() => snap.messages.length >= at + 3, 'the snapshot');
  t.same(
    snap.messages.slice(at + 1).map((m) => [m.T, m.i ?? m.bp]),
    [
      ['t', 2n ** 53n + 8n],
      ['q', 101.4],
    ],
    'the last trade and the last quote, right after the reply',
  );
  const plain = await gw.connect();
  await plain.auth('plain', 's');
  await plain.request({ action: 'subscribe', trades: ['AAPL'] });
  sim.publish([{ T: 't', S: 'AAPL', i: 2n ** 53n + 9n, x: 'V', p: 101.6, s: 5, c: ['@'], t: t1, z: 'C' }]);
  await plain.waitFor((m) => m.T === 't', 'the next trade');
  t.same(
    data(plain).map((m) => m.i),
    [2n ** 53n + 9n],
    'without ?snapshot=1 nothing is replayed: the first trade is the next one',
  );
});

t.test('?snapshot=1 never repeats what the client already gets through *', async (t) => {
  const gw = await startGateway(t);
  const sim = gw.simulator!;
  const t1 = Timestamp.parse('2024-01-02T14:30:00.000000001Z');
  const wild = await gw.connect({ query: 'snapshot=1' });
  await wild.auth('wild', 's');
  await wild.request({ action: 'subscribe', trades: ['*'] });
  const named = await gw.connect({ query: 'snapshot=1' });
  await named.auth('named', 's');
  await named.request({ action: 'subscribe', trades: ['AAPL'] });
  await gw.gateway.defaultStream.link.whenSynced(10_000);
  sim.publish([
    { T: 't', S: 'AAPL', i: 1, x: 'V', p: 100, s: 1, c: ['@'], t: t1, z: 'C' },
    { T: 't', S: 'MSFT', i: 1, x: 'V', p: 200, s: 1, c: ['@'], t: t1, z: 'C' },
  ]);
  await eventually(() => data(wild).length === 2 && data(named).length === 1, 'the first trades');
  await wild.request({ action: 'subscribe', trades: ['AAPL'] });
  await named.request({ action: 'subscribe', trades: ['*'] });
  sim.publish([{ T: 't', S: 'AAPL', i: 2, x: 'V', p: 100.5, s: 1, c: ['@'], t: t1, z: 'C' }]);
  await eventually(() => data(wild).length >= 3 && data(named).length >= 3, 'the next trade');
  t.same(data(wild).map((m) => `${m.S}${m.i}`), ['AAPL1', 'MSFT1', 'AAPL2'], 'AAPL under * is not replayed when named (before: AAPL1 twice)');
  t.same(data(named).map((m) => `${m.S}${m.i}`), ['AAPL1', 'MSFT1', 'AAPL2'], 'a new * replays the symbols not held before, and only those');
});

t.test('clients stay connected through a vendor drop, hear about it with ?events=1, and data resumes', async (t) => {
  const gw = await startGateway(t, { SIMULATOR_RATE: '2000', RETRY_BASE_MS: '20', RETRY_MAX_MS: '100' });
  const sim = gw.simulator!;
  const watcher = await gw.connect({ query: 'events=1' });
  const quiet = await gw.connect({ encoding: 'msgpack' });
  await watcher.auth('w', 's');
  await quiet.auth('q', 's');
  await watcher.request({ action: 'subscribe', trades: ['AAPL'] });
  await quiet.request({ action: 'subscribe', quotes: ['MSFT'] });
  await eventually(() => data(watcher).length > 5 && data(quiet).length > 5, 'data before the drop');
  sim.dropAll({ terminate: true });
  const down = await watcher.waitFor((m) => m.T === 'gateway' && m.event === 'upstream_down', 'the down notice');
  t.match(down, { T: 'gateway', event: 'upstream_down', state: 'backoff' });
  const up = await watcher.waitFor((m) => m.T === 'gateway' && m.event === 'upstream_up', 'the up notice');
  t.match(up, { T: 'gateway', event: 'upstream_up', state: 'live' });
  const afterUp = watcher.messages.indexOf(up);
  const quietBefore = data(quiet).length;
  await eventually(() => watcher.messages.slice(afterUp).filter((m) => m.T === 't').length > 5, 'trades after the reconnect');
  await eventually(() => data(quiet).length > quietBefore + 5, 'quotes after the reconnect');
  t.equal(watcher.closeCode, undefined, 'never disconnected');
  t.equal(quiet.closeCode, undefined);
  t.notOk(quiet.messages.some((m) => m.T === 'gateway'), 'no notices without ?events=1');
  t.same(vendorSession(sim).subscriptions.quotes, ['MSFT'], 'subscriptions restored upstream without the clients doing anything');
  t.equal(sim.stats.connections, 2);
});

t.test('a JSON vendor link serves msgpack clients losslessly (the other conversion)', async (t) => {
  const sim = await startSimulator(t, { rate: 2000 });
  const gw = await startGateway(t, { UPSTREAM_URL: sim.url('iex'), APCA_API_KEY_ID: 'k', APCA_API_SECRET_KEY: 's', UPSTREAM_ENCODING: 'json' });
  const sdk = sdkClient(t, gw.url());
  sdk.stream.subscribeForTrades(['AAPL']);
  sdk.stream.connect();
  t.equal(await sdk.stream.waitForAuthentication(10_000), true);
  await eventually(() => sdk.trades.filter((x) => BigInt(x.idRaw) > 2n ** 53n).length >= 5, 'trades with 64-bit ids');
  t.same(sdk.errors, []);
  t.ok(sdk.trades.every((x) => NANOS.test(x.timestampRaw)), 'the msgpack timestamp extension reached the SDK');
  t.equal(sim.sessions().find((s) => s.authenticated)?.encoding, 'json', 'the vendor link really is JSON');
});
