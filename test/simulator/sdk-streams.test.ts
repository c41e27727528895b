import { streaming } from '@alpacahq/alpaca-trade-api';
import t, { type Test } from 'tap';
import { Timestamp } from '../../src/protocol/timestamp.js';
import { connect, startSimulator } from '../helpers/simulator.js';
import type { Message } from '../helpers/stream-client.js';

type Sdk = InstanceType<typeof streaming.CryptoDataStream>;

/** Starts an SDK client whose errors are collected and which the test's teardown disconnects. */
async function started(t: Test, stream: Sdk): Promise<string[]> {
  const errors: string[] = [];
  t.teardown(() => stream.disconnect());
  stream.onError((err: string) => errors.push(err));
  stream.connect();
  t.equal(await stream.waitForAuthentication(10_000), true, 'the SDK authenticates against the simulator');
  return errors;
}

/** Waits for `check` on the SDK side, failing with `what` after the usual limit. */
async function eventually(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const nanos = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/;

t.test('CryptoDataStream receives exactly its pairs, values and 64-bit ids as a JSON client of the same stream does', async (t) => {
  const sim = await startSimulator(t, { rate: 3000, barIntervalMs: 40 });
  const path = 'v1beta3/crypto/us';
  const sdk = new streaming.CryptoDataStream({ url: sim.url(path), credentials: { keyId: 'sdk', secret: 's' }, reconnect: false });
  const trades: { symbol?: string; idRaw?: string; price: number; size: number; timestampRaw?: string; takerSide?: string }[] = [];
  const quotes: { symbol?: string; bidSize: number }[] = [];
  const books: { symbol?: string; reset: boolean; bids: unknown[]; asks: unknown[] }[] = [];
  const bars: { symbol?: string; volume: number }[] = [];
  sdk.onTrade((x) => trades.push(x));
  sdk.onQuote((x) => quotes.push(x));
  sdk.onOrderbook((x) => books.push(x));
  sdk.onBar((x) => bars.push(x));
  sdk.subscribeForTrades(['BTC/USD']);
  sdk.subscribeForQuotes(['ETH/USD']);
  sdk.subscribeForOrderbooks(['SOL/USD']);
  sdk.subscribeForBars(['BTC/USD']);
  const errors = await started(t, sdk);

  const json = await connect(t, sim.url(path));
  await json.auth('json', 's');
  await json.request({ action: 'subscribe', trades: ['BTC/USD'] });
  const jsonTrades = (): Map<string, Message> => new Map(json.messages.filter((m) => m.T === 't').map((m) => [BigInt(m.i as number | bigint).toString(), m]));
  await eventually(() => {
    const seen = jsonTrades();
    return trades.filter((x) => BigInt(x.idRaw!) > 2n ** 53n && seen.has(x.idRaw!)).length >= 5 && quotes.length >= 5 && books.length >= 20 && bars.length >= 1;
  }, 'shared trades beyond 2^53, quotes, books and a bar');

  t.same(errors, [], 'no SDK errors');
  t.ok(trades.every((x) => x.symbol === 'BTC/USD'), 'only BTC/USD trades');
  t.ok(quotes.every((x) => x.symbol === 'ETH/USD'), 'only ETH/USD quotes');
  t.ok(books.every((x) => x.symbol === 'SOL/USD'), 'only SOL/USD books');
  t.ok(bars.every((x) => x.symbol === 'BTC/USD'), 'only BTC/USD bars');
  t.same(sdk.getSubscriptions().orderbooks, ['SOL/USD'], 'the SDK took its set from the crypto reply');
  t.equal(books[0]!.reset, true, 'the first book is a reset');
  t.ok(books.slice(1).every((x) => !x.reset), 'then updates');
  const ids = trades.map((x) => BigInt(x.idRaw!));
  t.ok(ids.every((id, i) => i === 0 || id === (ids[i - 1] as bigint) + 1n), 'trade ids follow one another without gaps');
  t.ok(trades.every((x) => nanos.test(x.timestampRaw!)), 'timestamps with nine fractional digits');
  t.ok(trades.some((x) => !Number.isInteger(x.size)), 'fractional sizes');
  const seen = jsonTrades();
  const shared = trades.filter((x) => seen.has(x.idRaw!));
  t.ok(shared.some((x) => BigInt(x.idRaw!) > 2n ** 53n && BigInt(x.idRaw!) % 2n === 1n), 'an odd id beyond 2^53 arrived intact');
  for (const x of shared) {
    const m = seen.get(x.idRaw!)!;
    t.same([x.price, x.size, x.takerSide], [m.p, m.s, m.tks], `trade ${x.idRaw}: price, size and taker side as the JSON client got them`);
    t.ok(Timestamp.parse(x.timestampRaw!).equals(m.t as Timestamp), `trade ${x.idRaw}: the same nanosecond timestamp`);
  }
});

t.test('OptionDataStream receives exactly its contracts, with integer sizes and one condition, as a msgpack client does', async (t) => {
  const sim = await startSimulator(t, { rate: 0 });
  const path = 'v1beta1/opra';
  const call = 'AAPL250117C00150000';
  const put = 'SPXW250327P04925000';
  const sdk = new streaming.OptionDataStream({ url: sim.url(path), credentials: { keyId: 'sdk', secret: 's' }, reconnect: false });
  const trades: { symbol?: string; price: number; size: number; exchange?: string; conditions: unknown; timestampRaw?: string }[] = [];
  const quotes: { symbol?: string; bidPrice: number; bidSize: number; askPrice: number; askSize: number; bidExchange?: string; timestampRaw?: string }[] = [];
  sdk.onTrade((x) => trades.push(x));
  sdk.onQuote((x) => quotes.push(x));
  sdk.subscribeForTrades([call]);
  sdk.subscribeForQuotes([put]);
  const errors = await started(t, sdk);
  await eventually(() => sdk.getSubscriptions().quotes.length === 1, 'the SDK’s subscription reply');

  const raw = await connect(t, sim.url(path), { encoding: 'msgpack' });
  await raw.auth('raw', 's');
  await raw.request({ action: 'subscribe', trades: [call], quotes: [put] });
  sim.setRate(2000);
  await eventually(() => trades.length >= 10 && quotes.length >= 10, 'option trades and quotes');
  await raw.until(() => raw.messages.filter((m) => m.T === 't').length >= 10 && raw.messages.filter((m) => m.T === 'q').length >= 10, 'the same on the raw client');

  t.same(errors, [], 'no SDK errors');
  t.ok(trades.every((x) => x.symbol === call), 'only the call’s trades');
  t.ok(quotes.every((x) => x.symbol === put), 'only the put’s quotes');
  t.ok(trades.every((x) => Number.isInteger(x.size) && typeof x.conditions === 'string' && /^[A-Z]$/.test(x.exchange!)), 'integer sizes, one condition string, OPRA exchange letters');
  t.ok(trades.every((x) => nanos.test(x.timestampRaw!)), 'timestamps with nine fractional digits');
  t.same(Object.keys(raw.messages.find((m) => m.T === 'q')!), ['T', 'S', 't', 'bx', 'bp', 'bs', 'ax', 'ap', 'as', 'c'], 'quote fields');
  // Both subscribed before the market ran, so both got the same messages from the first on.
  const rawTrades = raw.messages.filter((m) => m.T === 't');
  const n = Math.min(trades.length, rawTrades.length);
  t.same(
    trades.slice(0, n).map((x) => [x.price, x.size, x.exchange, x.conditions, Timestamp.parse(x.timestampRaw!).toString()]),
    rawTrades.slice(0, n).map((m) => [m.p, m.s, m.x, m.c, (m.t as Timestamp).toString()]),
    'the SDK’s trades are the vendor’s, value for value, nanoseconds included',
  );
  const rawQuotes = raw.messages.filter((m) => m.T === 'q');
  const k = Math.min(quotes.length, rawQuotes.length);
  t.same(
    quotes.slice(0, k).map((x) => [x.bidPrice, x.bidSize, x.askPrice, x.askSize, x.bidExchange, Timestamp.parse(x.timestampRaw!).toString()]),
    rawQuotes.slice(0, k).map((m) => [m.bp, m.bs, m.ap, m.as, m.bx, (m.t as Timestamp).toString()]),
    'and its quotes',
  );
});

t.test('NewsStream receives the items naming its symbols, once each, with the values a JSON client of * gets', async (t) => {
  const sim = await startSimulator(t, { newsIntervalMs: 15, universes: { news: ['AAPL', 'MSFT', 'TSLA', 'BTCUSD'] } });
  const path = 'v1beta1/news';
  const sdk = new streaming.NewsStream({ url: sim.url(path), credentials: { keyId: 'sdk', secret: 's' }, reconnect: false });
  const items: { id: number; idRaw?: string; headline: string; summary?: string; author?: string; createdAt?: Date; updatedAt?: Date; url?: string | null; content?: string; symbols: string[]; source?: string }[] = [];
  sdk.onNews((x) => items.push(x));
  sdk.subscribeForNews(['AAPL', 'BTCUSD']);
  const errors = await started(t, sdk);
  const json = await connect(t, sim.url(path));
  await json.auth('json', 's');
  await json.request({ action: 'subscribe', news: ['*'] });
  const jsonItems = (): Map<number, Message> => new Map(json.messages.filter((m) => m.T === 'n').map((m) => [m.id as number, m]));
  await eventually(() => {
    const seen = jsonItems();
    return items.filter((x) => seen.has(x.id)).length >= 8;
  }, 'eight items seen by both');

  t.same(errors, [], 'no SDK errors');
  t.same(sdk.getSubscriptions().news, ['AAPL', 'BTCUSD'], 'the SDK took its set from the news reply');
  t.ok(items.every((x) => x.symbols.includes('AAPL') || x.symbols.includes('BTCUSD')), 'only items naming AAPL or BTCUSD');
  t.equal(new Set(items.map((x) => x.id)).size, items.length, 'each item once');
  t.ok(items.some((x) => x.symbols.includes('BTCUSD')), 'crypto tickers without a slash');
  const seen = jsonItems();
  for (const x of items.filter((i) => seen.has(i.id))) {
    const m = seen.get(x.id)!;
    t.same(
      [x.idRaw, x.headline, x.summary, x.author, x.url, x.content, x.symbols, x.source],
      [String(m.id), m.headline, m.summary, m.author, m.url, m.content, m.symbols, m.source],
      `item ${x.id}: every field as the JSON client got it`,
    );
    t.equal(x.createdAt?.getTime(), (m.created_at as Timestamp).seconds * 1000, `item ${x.id}: created_at`);
    t.equal(x.updatedAt?.getTime(), (m.updated_at as Timestamp).seconds * 1000, `item ${x.id}: updated_at`);
  }
});
