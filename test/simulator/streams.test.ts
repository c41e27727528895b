import t from 'tap';
import { STREAM_PATHS } from '../../src/protocol/streams.js';
import { Timestamp } from '../../src/protocol/timestamp.js';
import { rawUpgrade } from '../helpers/raw-upgrade.js';
import { connect, startSimulator } from '../helpers/simulator.js';
import type { Message, StreamClient } from '../helpers/stream-client.js';

const CRYPTO = 'v1beta3/crypto/us';
const OPTION_TRADE = 'AAPL250117C00150000';

/** Data messages of `type` (and `symbol`, when given) a client has received. */
function data(c: StreamClient, type: string, symbol?: string): Message[] {
  return c.messages.filter((m) => m.T === type && (symbol === undefined || m.S === symbol));
}

t.test('one simulator serves every stream path of §9 on one port; an unknown path gets 404 naming the served ones', async (t) => {
  const sim = await startSimulator(t);
  t.same(sim.paths, STREAM_PATHS, 'every known path by default');
  for (const path of STREAM_PATHS) {
    const c = await connect(t, sim.url(path), { encoding: 'msgpack' });
    t.same(await c.auth(`key-${path}`, 's'), { T: 'success', msg: 'authenticated' }, `${path}: greeted and authenticated`);
    await c.close();
  }
  t.equal(sim.url('iex'), sim.url('v2/iex'), 'a stock feed name still names its path');
  t.throws(() => sim.url('v1beta1/crypto'), { code: 'ERR_UNKNOWN_STREAM' }, 'url() of an unknown path throws');
  const answer = await rawUpgrade(t, sim.port, '/v1beta2/crypto');
  t.equal(answer.statusCode, 404);
  t.same(JSON.parse(answer.body), { error: 'not found', paths: STREAM_PATHS }, 'the body names the served paths');
  await answer.serverClosed;

  const newsOnly = await startSimulator(t, { paths: ['v1beta1/news'] });
  t.equal((await rawUpgrade(t, newsOnly.port, '/v2/iex')).statusCode, 404, 'a known path this simulator was not told to serve');
});

t.test('one authenticated connection per key per path: 406 on the same path only', async (t) => {
  const sim = await startSimulator(t);
  const first = await connect(t, sim.url(CRYPTO));
  t.same(await first.auth('team', 's'), { T: 'success', msg: 'authenticated' });
  const second = await connect(t, sim.url(CRYPTO));
  t.same(await second.auth('team', 's'), { T: 'error', code: 406, msg: 'connection limit exceeded' }, 'a second session on the same path');
  t.equal(await second.closed, 1008, 'is closed');
  for (const path of ['v1beta3/crypto/us-1', 'v1beta1/news', 'v2/iex', 'v1beta1/opra']) {
    const other = await connect(t, sim.url(path), { encoding: 'msgpack' });
    t.same(await other.auth('team', 's'), { T: 'success', msg: 'authenticated' }, `the same key on ${path}`);
  }
  t.equal(first.closeCode, undefined, 'the first session survives');
  t.equal(sim.stats.maxConcurrentPerKey, 1, 'never two sessions of one key on one path');
});

t.test('an options session without msgpack is told 412 and closed; with msgpack it works', async (t) => {
  const sim = await startSimulator(t);
  const json = await connect(t, sim.url('v1beta1/indicative'));
  t.equal(await json.closed, 1008, 'closed by the vendor');
  t.same(json.messages, [{ T: 'error', code: 412, msg: 'option messages are only available in MsgPack format' }], 'the 412 replaces the welcome');
  t.equal(json.raw[0]?.isBinary, false, 'as JSON text, the only thing the session can read');
  const packed = await connect(t, sim.url('v1beta1/opra'), { encoding: 'msgpack' });
  t.same(await packed.auth(), { T: 'success', msg: 'authenticated' });
});

t.test('refusals per stream: 410 for channels it lacks, 413 for * on option quotes, 400 for malformed symbols; the set stays', async (t) => {
  const sim = await startSimulator(t);
  const crypto = await connect(t, sim.url(CRYPTO));
  await crypto.auth();
  t.same(await crypto.request({ action: 'subscribe', trades: ['BTC/USD'] }), { T: 'subscription', trades: ['BTC/USD'], quotes: [], orderbooks: [], bars: [], updatedBars: [], dailyBars: [] }, 'the crypto reply shape');
  for (const key of ['statuses', 'lulds', 'imbalances', 'news']) {
    t.same(await crypto.request({ action: 'subscribe', [key]: ['BTC/USD'] }), { T: 'error', code: 410, msg: 'invalid subscribe action for this feed' }, `crypto: ${key}`);
  }
  t.same(await crypto.request({ action: 'subscribe', trades: ['BTCUSD'] }), { T: 'error', code: 400, msg: 'invalid syntax' }, 'crypto: a pair without its slash');
  const goStyle = { action: 'subscribe', trades: null, quotes: ['ETH/USD'], bars: null, updatedBars: null, dailyBars: null, statuses: null, imbalances: null, lulds: null, orderbooks: null, news: null, pricing: null };
  t.same(await crypto.request(goStyle), { T: 'subscription', trades: ['BTC/USD'], quotes: ['ETH/USD'], orderbooks: [], bars: [], updatedBars: [], dailyBars: [] }, 'crypto: the Go SDK’s every-key change, after the refusals the set is what it was');

  const options = await connect(t, sim.url('v1beta1/indicative'), { encoding: 'msgpack' });
  await options.auth();
  t.same(await options.request({ action: 'subscribe', quotes: ['*'] }), { T: 'error', code: 413, msg: 'star subscription is not allowed for option quotes' }, 'options: * on quotes');
  t.same(await options.request({ action: 'subscribe', bars: [OPTION_TRADE] }), { T: 'error', code: 410, msg: 'invalid subscribe action for this feed' }, 'options: bars');
  t.same(await options.request({ action: 'subscribe', trades: ['AAPL'] }), { T: 'error', code: 400, msg: 'invalid syntax' }, 'options: a stock symbol');
  t.same(await options.request({ action: 'subscribe', trades: ['*'], quotes: [OPTION_TRADE], bars: [], updatedBars: [], dailyBars: [] }), { T: 'subscription', trades: ['*'], quotes: [OPTION_TRADE] }, 'options: * on trades, and the reply has only trades and quotes');

  const news = await connect(t, sim.url('v1beta1/news'));
  await news.auth();
  t.same(await news.request({ action: 'subscribe', trades: ['AAPL'] }), { T: 'error', code: 410, msg: 'invalid subscribe action for this feed' }, 'news: trades');
  t.same(await news.request({ action: 'subscribe', news: ['AAPL', 'BTCUSD'] }), { T: 'subscription', news: ['AAPL', 'BTCUSD'] }, 'news: the reply has only the news key');

  const stocks = await connect(t, sim.url('v2/iex'));
  await stocks.auth();
  t.same(await stocks.request({ action: 'subscribe', orderbooks: ['AAPL'] }), { T: 'error', code: 410, msg: 'invalid subscribe action for this feed' }, 'stocks: orderbooks, as before');
});

t.test('a JSON client on crypto gets trades, quotes and bars with the vendor’s fields, ids beyond 2^53 in sequence', async (t) => {
  const sim = await startSimulator(t, { rate: 3000, barIntervalMs: 30, universes: { crypto: ['BTC/USD', 'ETH/BTC'] } });
  const c = await connect(t, sim.url('v1beta3/crypto/eu-1'));
  await c.auth();
  await c.request({ action: 'subscribe', trades: ['*'], quotes: ['ETH/USD'], bars: ['BTC/USD'], dailyBars: ['BTC/USD'] });
  await c.until(
    () => ['BTC/USD', 'ETH/BTC'].every((s) => data(c, 't', s).length >= 8) && data(c, 'q').length >= 5 && data(c, 'b').length >= 1 && data(c, 'd').length >= 1,
    'trades of the universe, quotes and bars',
  );
  t.ok(c.raw.every((f) => !f.isBinary), 'JSON text frames');
  const trades = data(c, 't');
  t.ok(trades.every((m) => ['BTC/USD', 'ETH/BTC'].includes(m.S as string)), '* brought in the crypto universe, nothing else');
  t.same(Object.keys(trades[0]!), ['T', 'S', 'p', 's', 't', 'i', 'tks'], 'trade fields');
  t.ok(trades.every((m) => m.tks === 'B' || m.tks === 'S'), 'taker side B or S');
  t.ok(trades.some((m) => !Number.isInteger(m.s)), 'fractional sizes');
  for (const symbol of ['BTC/USD', 'ETH/BTC']) {
    const ids = data(c, 't', symbol).map((m) => BigInt(m.i as number | bigint));
    t.ok(ids.every((id, i) => i === 0 || id === (ids[i - 1] as bigint) + 1n), `${symbol}: trade ids follow one another without gaps`);
    t.ok(ids.some((id) => id > 2n ** 53n), `${symbol}: ids pass 2^53`);
  }
  t.match(c.raw.map((f) => f.data.toString()).join(''), /"i":90071992547409\d\d/, 'the JSON text carries 64-bit ids as digits');
  const quotes = data(c, 'q');
  t.ok(quotes.every((m) => m.S === 'ETH/USD'), 'only the quotes asked for');
  t.same(Object.keys(quotes[0]!), ['T', 'S', 'bp', 'bs', 'ap', 'as', 't']);
  t.ok(quotes.every((m) => (m.bp as number) < (m.ap as number)), 'bid below ask');
  t.same(Object.keys(data(c, 'b')[0]!), ['T', 'S', 'o', 'h', 'l', 'c', 'v', 't', 'n', 'vw'], 'bar fields');
  t.ok(data(c, 'b').every((m) => m.S === 'BTC/USD' && (m.t as Timestamp).nanoseconds === 0 && (m.t as Timestamp).seconds % 60 === 0), 'minute bars on the minute');
});

/** A book as a client keeps it: price → size, from a reset and the updates after it. */
class Book {
  readonly bids = new Map<number, number>();
  readonly asks = new Map<number, number>();

  apply(m: Message): void {
    if (m.r === true) {
      this.bids.clear();
      this.asks.clear();
    }
    for (const [side, levels] of [[this.bids, m.b], [this.asks, m.a]] as const) {
      for (const level of levels as { p: number; s: number }[]) {
        if (level.s === 0) side.delete(level.p);
        else side.set(level.p, level.s);
      }
    }
  }

  toJSON(): unknown {
    const sorted = (side: Map<number, number>) => [...side.entries()].sort(([a], [b]) => a - b);
    return { bids: sorted(this.bids), asks: sorted(this.asks) };
  }
}

t.test('order books: a reset first after a subscription, then updates in order; the book a client keeps equals a later reset', async (t) => {
  const sim = await startSimulator(t, { rate: 3000 });
  const early = await connect(t, sim.url(CRYPTO));
  await early.auth('early', 's');
  await early.request({ action: 'subscribe', orderbooks: ['BTC/USD'] });
  await early.until(() => data(early, 'o').length >= 200, 'two hundred book messages');
  const books = data(early, 'o');
  t.equal(books[0]!.r, true, 'the first is a reset');
  t.ok(books.slice(1).every((m) => !('r' in m)), 'the updates carry no reset flag');
  t.ok(books.every((m) => m.S === 'BTC/USD' && Array.isArray(m.b) && Array.isArray(m.a)), 'every message has both sides');
  t.ok(books.slice(1).some((m) => (m.b as unknown[]).length === 0 || (m.a as unknown[]).length === 0), 'a side without change is an empty list');
  t.ok(books.some((m) => [...(m.b as { s: number }[]), ...(m.a as { s: number }[])].some((l) => l.s === 0)), 'some updates remove a level (s: 0)');
  t.ok((books[0]!.b as unknown[]).length > 0 && (books[0]!.a as unknown[]).length > 0, 'the reset is a whole book');

  sim.setRate(0);
  const late = await connect(t, sim.url(CRYPTO), { encoding: 'msgpack' });
  await late.auth('late', 's');
  const reply = await late.request({ action: 'subscribe', orderbooks: ['BTC/USD'] });
  t.same(reply.orderbooks, ['BTC/USD']);
  const reset = await late.waitFor((m) => m.T === 'o', 'the late subscriber’s reset');
  t.equal(reset.r, true, 'a later subscriber gets its own reset');
  t.equal(late.messages.indexOf(reset), late.messages.indexOf(reply) + 1, 'right after its reply');
  // Everything sent to the early client before the late reset has arrived once a reply sent after it has.
  await early.request({ action: 'subscribe', quotes: ['ETH/USD'] });
  const kept = new Book();
  for (const m of data(early, 'o')) kept.apply(m);
  const fresh = new Book();
  fresh.apply(reset);
  t.same(kept.toJSON(), fresh.toJSON(), 'the book rebuilt from the reset and every update equals the vendor’s book');
  t.ok(data(late, 't').length === 0 && data(late, 'q').length === 0, 'the late client got nothing it did not ask for');
});

t.test('news reaches * and the subscribers of any symbol it names, once per item, with every field', async (t) => {
  const sim = await startSimulator(t, { newsIntervalMs: 15, universes: { news: ['AAPL', 'MSFT', 'BTCUSD'] } });
  const all = await connect(t, sim.url('v1beta1/news'));
  const some = await connect(t, sim.url('v1beta1/news'), { encoding: 'msgpack' });
  await all.auth('all', 's');
  await some.auth('some', 's');
  await some.request({ action: 'subscribe', news: ['AAPL', 'BTCUSD'] });
  await all.request({ action: 'subscribe', news: ['*'] });
  await all.until(() => data(all, 'n').length >= 25 && data(some, 'n').length >= 8, 'news items for both');
  const everything = data(all, 'n');
  const ids = everything.map((m) => m.id as number);
  t.ok(ids.every((id, i) => i === 0 || id === (ids[i - 1] as number) + 1), '* gets every item: ids follow one another');
  t.same(Object.keys(everything[0]!), ['T', 'id', 'headline', 'summary', 'author', 'created_at', 'updated_at', 'url', 'content', 'symbols', 'source']);
  t.ok(everything.some((m) => (m.symbols as string[]).length === 0), 'an item may name no symbol');
  t.ok(everything.some((m) => (m.content as string).length > 4096), 'content can be several kilobytes');
  t.ok(everything.some((m) => m.url === null), 'url may be null');
  t.match(all.raw.map((f) => f.data.toString()).join(''), /"created_at":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"/, 'JSON dates are RFC 3339 text');
  const picked = data(some, 'n');
  t.ok(picked.every((m) => (m.symbols as string[]).some((s) => s === 'AAPL' || s === 'BTCUSD')), 'a symbol subscriber gets only items naming one of its symbols');
  t.equal(new Set(picked.map((m) => m.id)).size, picked.length, 'once per item, even when it names both');
  t.ok(picked.every((m) => m.created_at instanceof Timestamp && m.updated_at instanceof Timestamp), 'msgpack dates are the timestamp extension');
  const byId = new Map(everything.map((m) => [m.id, m]));
  const shared = picked.filter((m) => byId.has(m.id));
  t.ok(shared.length >= 5, 'both saw the same items');
  t.ok(shared.every((m) => JSON.stringify(m, stringifyTimestamps) === JSON.stringify(byId.get(m.id), stringifyTimestamps)), 'the same values in msgpack and JSON');
  const expected = everything.filter((m) => (m.symbols as string[]).some((s) => s === 'AAPL' || s === 'BTCUSD') && (m.id as number) >= (picked[0]!.id as number) && (m.id as number) <= (picked.at(-1)!.id as number));
  t.same(picked.map((m) => m.id), expected.map((m) => m.id), 'no item naming a held symbol was missed');
});

function stringifyTimestamps(_key: string, value: unknown): unknown {
  return value instanceof Timestamp ? value.toString() : value;
}

t.test('publish(messages, path) reaches that path only; the fault controls work on every path', async (t) => {
  const sim = await startSimulator(t);
  const us = await connect(t, sim.url(CRYPTO));
  const us1 = await connect(t, sim.url('v1beta3/crypto/us-1'));
  const news = await connect(t, sim.url('v1beta1/news'), { encoding: 'msgpack' });
  for (const c of [us, us1, news]) await c.auth();
  await us.request({ action: 'subscribe', trades: ['BTC/USD'] });
  await us1.request({ action: 'subscribe', trades: ['BTC/USD'] });
  await news.request({ action: 'subscribe', news: ['*'] });
  const t0 = Timestamp.parse('2024-03-12T10:27:48.858228144Z');
  sim.publish([{ T: 't', S: 'BTC/USD', p: 47.299, s: 29.205707815, t: t0, i: 3447222699101865076n, tks: 'S' }], CRYPTO);
  sim.publish([{ T: 't', S: 'BTC/USD', p: 1, s: 1, t: t0, i: 1, tks: 'B' }], 'v1beta3/crypto/us-1');
  const trade = await us.waitFor((m) => m.T === 't', 'the published trade');
  t.same(trade, { T: 't', S: 'BTC/USD', p: 47.299, s: 29.205707815, t: t0, i: 3447222699101865076n, tks: 'S' }, 'the vendor’s example trade, exactly');
  await us1.waitFor((m) => m.T === 't', 'the us-1 trade');
  t.same(data(us1, 't').map((m) => m.i), [1], 'the other location got only its own');
  t.throws(() => sim.publish([], 'v9/nothing'), { code: 'ERR_UNKNOWN_STREAM' });

  sim.sendMalformed('unknown-type');
  await news.waitFor((m) => m.T === 'zz', 'a malformed frame on the news path');
  await us.waitFor((m) => m.T === 'zz', 'and on the crypto path');
  sim.rejectSubscribe(500);
  t.same(await news.request({ action: 'subscribe', news: ['AAPL'] }), { T: 'error', code: 500, msg: 'internal error' }, 'injected subscribe errors');
  sim.keepOnUnsubscribe();
  t.same(await news.request({ action: 'unsubscribe', news: ['*'] }), { T: 'subscription', news: ['*'] }, 'keepOnUnsubscribe');
  sim.clearFaults();
  sim.dropAll({ code: 1012 });
  t.same([await us.closed, await us1.closed, await news.closed], [1012, 1012, 1012], 'dropAll closes every path');
  sim.refuseUpgrades(503);
  t.equal((await rawUpgrade(t, sim.port, '/v1beta1/opra')).statusCode, 503, 'refused upgrades on every path');
});
