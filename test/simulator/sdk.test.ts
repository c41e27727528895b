import { streaming } from '@alpacahq/alpaca-trade-api';
import t from 'tap';
import { Timestamp } from '../../src/protocol/timestamp.js';
import { connect, startSimulator } from '../helpers/simulator.js';

interface SdkTrade {
  symbol: string;
  idRaw: string;
  timestampRaw: string;
}
interface SdkQuote {
  symbol: string;
  timestampRaw: string;
  bidPrice: number;
}

/** The SDK's mapped records, narrowed to what this test reads (the SDK marks its raw fields optional). */
function asTrade(trade: { symbol?: string; idRaw?: string; timestampRaw?: string }): SdkTrade {
  return { symbol: String(trade.symbol), idRaw: String(trade.idRaw), timestampRaw: String(trade.timestampRaw) };
}
function asQuote(quote: { symbol?: string; timestampRaw?: string; bidPrice?: number }): SdkQuote {
  return { symbol: String(quote.symbol), timestampRaw: String(quote.timestampRaw), bidPrice: Number(quote.bidPrice) };
}

t.test('the official Alpaca SDK and a plain JSON client receive the same trades, losslessly', async (t) => {
  const sim = await startSimulator(t, { rate: 1000, credentials: [{ key: 'AKTEST', secret: 'sdk-secret' }] });

  const stream = new streaming.StockDataStream({
    url: sim.url('iex'),
    credentials: { keyId: 'AKTEST', secret: 'sdk-secret' },
    reconnect: false,
  });
  t.teardown(() => stream.disconnect());
  const trades: SdkTrade[] = [];
  const quotes: SdkQuote[] = [];
  const errors: string[] = [];
  stream.onTrade((trade) => {
    trades.push(asTrade(trade));
  });
  stream.onQuote((quote) => {
    quotes.push(asQuote(quote));
  });
  stream.onError((err: string) => errors.push(err));
  stream.subscribeForTrades(['AAPL']);
  stream.subscribeForQuotes(['MSFT']);
  stream.connect();
  t.equal(await stream.waitForAuthentication(10_000), true, 'the SDK authenticates against the simulator');

  const json = await connect(t, sim.url('sip'));
  await json.auth('AKTEST', 'sdk-secret');
  await json.request({ action: 'subscribe', trades: ['AAPL'] });

  // Wait until both have seen the same trade ids beyond 2^53.
  await json.until(() => {
    const seenByJson = new Set(json.messages.filter((m) => m.T === 't').map((m) => BigInt(m.i as bigint)));
    const sharedBig = trades.filter((tr) => BigInt(tr.idRaw) > 2n ** 53n && seenByJson.has(BigInt(tr.idRaw)));
    return sharedBig.length >= 5 && quotes.length >= 5;
  }, 'five trades with ids beyond 2^53 seen by both clients, and quotes on the SDK');

  t.same(errors, [], 'the SDK reported no errors');
  t.ok(trades.every((tr) => tr.symbol === 'AAPL'), 'the SDK got only AAPL trades');
  t.ok(quotes.every((q) => q.symbol === 'MSFT' && typeof q.bidPrice === 'number'), 'and only MSFT quotes');
  t.same(stream.getSubscriptions().trades, ['AAPL'], 'the SDK took its subscription set from the reply');

  const nanos = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/;
  t.ok(trades.every((tr) => nanos.test(tr.timestampRaw)), 'SDK trade timestampRaw has nine fractional digits');
  t.ok(quotes.every((q) => nanos.test(q.timestampRaw)), 'SDK quote timestampRaw has nine fractional digits');
  t.ok(trades.some((tr) => Timestamp.parse(tr.timestampRaw).nanoseconds % 1_000_000 !== 0), 'sub-millisecond digits are really there');

  const jsonTrades = new Map(json.messages.filter((m) => m.T === 't').map((m) => [BigInt(m.i as bigint).toString(), m.t as Timestamp]));
  const shared = trades.filter((tr) => jsonTrades.has(tr.idRaw));
  t.ok(shared.length >= 5, 'both clients saw the same trades');
  for (const tr of shared) {
    t.ok(Timestamp.parse(tr.timestampRaw).equals(jsonTrades.get(tr.idRaw)!), `trade ${tr.idRaw}: same nanosecond timestamp in msgpack (SDK) and JSON`);
  }
  t.ok(shared.some((tr) => BigInt(tr.idRaw) > 2n ** 53n && BigInt(tr.idRaw) % 2n === 1n), 'an odd id beyond 2^53, which a double cannot hold, arrived intact');
  const rawText = json.raw.map((f) => f.data.toString()).join('');
  const big = shared.find((tr) => BigInt(tr.idRaw) > 2n ** 53n)!;
  t.match(rawText, `"i":${big.idRaw},`, 'the JSON text carries the 64-bit id as digits');
});

t.test('the SDK is told auth failed and does not reconnect', async (t) => {
  const sim = await startSimulator(t, { credentials: [{ key: 'AKTEST', secret: 'right' }] });
  const stream = new streaming.StockDataStream({ url: sim.url('iex'), credentials: { keyId: 'AKTEST', secret: 'wrong' } });
  t.teardown(() => stream.disconnect());
  stream.onError(() => {});
  stream.connect();
  const result = await stream.waitForAuthenticationResult(10_000);
  t.equal(result.authenticated, false);
  t.equal(result.code, 402);
  t.equal(sim.stats.connections, 1, 'one attempt only');
});
