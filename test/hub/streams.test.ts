/**
 * The hub and its vendor link on the other streams (DESIGN.md §9): a `Hub` and a `StreamManager`
 * built for a crypto, news or options path against the simulator, with a real WebSocket listener
 * in front of the hub, and clients on real sockets.
 */
import t from 'tap';
import { Timestamp } from '../../src/protocol/timestamp.js';
import type { MarketMessage } from '../../src/simulator/stream-market.js';
import { startSimulator } from '../helpers/simulator.js';
import type { Message } from '../helpers/stream-client.js';
import { data, hubFor, publishSynced } from '../helpers/stream-hub.js';

const CRYPTO_PATH = 'v1beta3/crypto/us';
const NEWS_PATH = 'v1beta1/news';
const OPTIONS_PATH = 'v1beta1/indicative';
const t0 = new Timestamp(1704205800, 123456789);

t.test('crypto: a client gets exactly its pairs, 64-bit trade ids lossless, every order-book update in order', async (t) => {
  const sim = await startSimulator(t);
  const f = await hubFor(t, sim, CRYPTO_PATH);
  t.equal(f.hub.kind.name, 'crypto', 'the hub serves its link’s kind');
  const json = await f.client();
  const packed = await f.client({ encoding: 'msgpack' });
  t.same(await json.request({ action: 'subscribe', trades: ['BTC/USD'], orderbooks: ['BTC/USD'] }), {
    T: 'subscription',
    trades: ['BTC/USD'],
    quotes: [],
    orderbooks: ['BTC/USD'],
    bars: [],
    updatedBars: [],
    dailyBars: [],
  }, 'the crypto reply: its keys in the vendor order');
  await packed.request({ action: 'subscribe', trades: ['ETH/USD'] });
  t.same(f.link.manager.acknowledged.toLists().orderbooks, ['BTC/USD'], 'the vendor acknowledged the book on the crypto link');

  const id = 3447222699101865076n;
  const books = [1, 2, 3, 4, 5].map((n) => ({ T: 'o', S: 'BTC/USD', t: t0, b: [{ p: 60000 + n, s: 0.5 }], a: [{ p: 60010 + n, s: 0 }], ...(n === 1 ? { r: true } : {}) }));
  await publishSynced(f, sim, CRYPTO_PATH, [
    { T: 't', S: 'BTC/USD', p: 47.299, s: 29.205707815, t: t0, i: id, tks: 'S' },
    ...books.slice(0, 3),
    { T: 't', S: 'ETH/USD', p: 2300.5, s: 1.25, t: t0, i: 7, tks: 'B' },
    { T: 't', S: 'SOL/USD', p: 100, s: 3, t: t0, i: 8, tks: 'B' },
  ]);
  sim.publish(books.slice(3), CRYPTO_PATH);
  const lastBook = (m: Message): boolean => m.T === 'o' && (m.b as { p: number }[])[0]?.p === 60005;
  await json.waitFor(lastBook, 'the last book update');
  await packed.until(() => data(packed).length === 1, 'the ETH/USD trade');

  const [snapshot, trade, ...updates] = data(json);
  t.same([snapshot!.T, snapshot!.S, snapshot!.r], ['o', 'BTC/USD', true], 'first the vendor’s full book for the new subscription');
  t.same(data(json).map((m) => `${m.T} ${m.S}`), ['o BTC/USD', 't BTC/USD', 'o BTC/USD', 'o BTC/USD', 'o BTC/USD', 'o BTC/USD', 'o BTC/USD'], 'its own pairs only');
  t.equal(trade!.i, id, 'the 64-bit id decodes exactly');
  t.ok(json.raw.some((r) => r.data.toString().includes(`"i":${id}`)), 'and is written as its digits in JSON');
  t.same(updates.map((m) => (m.b as { p: number }[])[0]!.p), [60001, 60002, 60003, 60004, 60005], 'every book update, in order');
  t.same(updates.map((m) => m.r), [true, undefined, undefined, undefined, undefined], 'the reset flag where the vendor set it');
  t.same(data(packed).map((m) => [m.S, m.i]), [['ETH/USD', 7]], 'the msgpack client gets only its pair');
  t.equal(f.hub.stats.conflated, 0, 'nothing conflated');
});

t.test('crypto: statuses are 410, a stock ticker is 400, and the set stays', async (t) => {
  const sim = await startSimulator(t);
  const f = await hubFor(t, sim, CRYPTO_PATH, 'json');
  const c = await f.client();
  await c.request({ action: 'subscribe', quotes: ['BTC/USD'] });
  t.same(await c.request({ action: 'subscribe', statuses: ['BTC/USD'] }), { T: 'error', code: 410, msg: 'invalid subscribe action for this feed' });
  t.same(await c.request({ action: 'subscribe', trades: ['AAPL'] }), { T: 'error', code: 400, msg: 'invalid syntax' });
  const reply = await c.request({ action: 'subscribe', quotes: [], statuses: [], news: null });
  t.same(reply.quotes, ['BTC/USD'], 'empty foreign keys are fine and the set is as it was');
  t.notOk('statuses' in reply, 'a crypto reply has no stock keys');
});

t.test('news: each item reaches each holder once, per symbol and *, however many of its symbols a client holds', async (t) => {
  const sim = await startSimulator(t);
  const f = await hubFor(t, sim, NEWS_PATH, 'json');
  t.equal(f.hub.kind.name, 'news', 'the hub serves its link’s kind');
  const both = await f.client();
  const tsla = await f.client({ encoding: 'msgpack' });
  const all = await f.client();
  t.same(await both.request({ action: 'subscribe', news: ['AAPL', 'MSFT'] }), { T: 'subscription', news: ['AAPL', 'MSFT'] });
  await tsla.request({ action: 'subscribe', news: ['TSLA'] });
  await all.request({ action: 'subscribe', news: ['*', 'AAPL'] });
  const item = (id: number, symbols: string[]): MarketMessage => ({ T: 'n', id, headline: `item ${id}`, created_at: t0, updated_at: t0, symbols, source: 'benzinga' });
  await publishSynced(f, sim, NEWS_PATH, [item(1, ['AAPL', 'MSFT']), item(2, ['TSLA', 'AAPL']), item(3, []), item(4, ['NVDA']), item(5, ['MSFT'])]);
  await all.until(() => data(all).length === 5, 'every item on *');
  await both.until(() => data(both).length === 3, 'the items about AAPL or MSFT');
  await tsla.until(() => data(tsla).length === 1, 'the item about TSLA');
  t.same(data(both).map((m) => m.id), [1, 2, 5], 'an item about both held symbols arrives once');
  t.same(data(tsla).map((m) => [m.id, m.symbols]), [[2, ['TSLA', 'AAPL']]], 'a msgpack client gets its item, symbols list intact');
  t.same(data(all).map((m) => m.id), [1, 2, 3, 4, 5], '* and AAPL held together: still once each; the item about nothing reaches * only');
});

t.test('news: an unsubscribe stops the symbol; a client holding another item symbol still gets it', async (t) => {
  const sim = await startSimulator(t);
  const f = await hubFor(t, sim, NEWS_PATH);
  const c = await f.client();
  await c.request({ action: 'subscribe', news: ['AAPL', 'MSFT'] });
  t.same(await c.request({ action: 'unsubscribe', news: ['AAPL'] }), { T: 'subscription', news: ['MSFT'] });
  const item = (id: number, symbols: string[]): MarketMessage => ({ T: 'n', id, headline: 'h', symbols });
  await publishSynced(f, sim, NEWS_PATH, [item(1, ['AAPL']), item(2, ['AAPL', 'MSFT'])]);
  await c.until(() => data(c).length === 1, 'the item that names MSFT');
  t.same(data(c).map((m) => m.id), [2]);
  t.same(f.link.manager.acknowledged.toLists().news, ['MSFT'], 'the vendor holds MSFT only');
});

t.test('options: the link runs msgpack upstream though configured JSON, and a JSON client gets lossless JSON', async (t) => {
  const sim = await startSimulator(t);
  const f = await hubFor(t, sim, OPTIONS_PATH, 'json');
  t.equal(f.link.manager.encoding, 'msgpack', 'the link chose msgpack');
  t.equal(sim.sessions().find((s) => s.authenticated)?.encoding, 'msgpack', 'and the vendor session speaks it');
  const contract = 'AAPL250117C00150000';
  const c = await f.client();
  t.same(await c.request({ action: 'subscribe', quotes: ['*'] }), { T: 'error', code: 413, msg: 'star subscription is not allowed for option quotes' });
  await c.request({ action: 'subscribe', trades: [contract] });
  await publishSynced(f, sim, OPTIONS_PATH, [
    { T: 't', S: contract, t: t0, p: 2, s: 1, x: 'C', c: 'I' },
    { T: 't', S: 'TSLA250117P00200000', t: t0, p: 1.5, s: 1, x: 'C', c: 'I' },
  ]);
  await c.until(() => data(c).length === 1, 'the trade of the held contract');
  const text = c.raw.map((r) => r.data.toString()).find((s) => s.includes('"T":"t"'))!;
  t.equal(c.raw.at(-1)!.isBinary, false, 'as JSON text');
  t.match(text, `"S":"${contract}"`);
  t.match(text, '"t":"2024-01-02T14:30:00.123456789Z"', 'the nanoseconds kept');
  t.same(data(c).map((m) => [m.S, m.p, m.x]), [[contract, 2, 'C']], 'the held contract only');
  t.equal(text, `[{"T":"t","S":"${contract}","t":"2024-01-02T14:30:00.123456789Z","p":2,"s":1,"x":"C","c":"I"}]`, 'the vendor’s fields in its order, nanoseconds kept');
});
