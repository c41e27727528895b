/**
 * The tape end to end (DESIGN.md §12): a recording gateway with the embedded vendor, then the
 * official JS SDK v4 pointed at `/replay/…` — the backtest by changing one URL. What a replay
 * sends is compared with what a live client received from the same vendor.
 */
import { streaming } from '@alpacahq/alpaca-trade-api';
import t, { type Test } from 'tap';
import { systemClock } from '../../src/clock.js';
import { Timestamp } from '../../src/protocol/timestamp.js';
import type { MarketMessage } from '../../src/simulator/stream-market.js';
import { nsText } from '../../src/tape/replay-window.js';
import { recordingGateway, taped } from '../helpers/tape.js';
import { type Message, StreamClient } from '../helpers/stream-client.js';
import { eventually } from '../helpers/wait.js';

const STOCKS = 'v2/iex';
const CRYPTO = 'v1beta3/crypto/us';
const BIG = 9007199254740993n; // 2^53 + 1: a double would round it
/** An SDK's raw timestamp (nine digits always) as ns, to compare with the vendor's (trailing zeros trimmed). */
const ns = (text: string | undefined): bigint => Timestamp.parse(text as string).toEpochNanos();
const data = (messages: readonly Message[]): Message[] => messages.filter((m) => !['success', 'subscription', 'error', 'gateway'].includes(m.T as string));

const BOTH = { STREAMS: `${STOCKS},${CRYPTO}` };

const trade = (symbol: string, i: bigint, n: number): MarketMessage => ({
  T: 't',
  S: symbol,
  i,
  x: 'V',
  p: 100 + n / 100,
  s: n,
  c: ['@'],
  t: new Timestamp(1765031400 + n, 123456789 - n),
  z: 'C',
});

t.test('the SDK’s StockDataStream on /replay/v2/iex gets exactly the recorded trades of its symbols: ids past 2^53 and nanoseconds as sent live, in order', async (t) => {
  const { gw, live, fromNs } = await recordingGateway(t, { subscribe: { trades: ['AAPL', 'MSFT'] }, env: BOTH, encoding: 'msgpack' });
  let n = 0;
  for (let frame = 0; frame < 20; frame++) {
    const batch: MarketMessage[] = [];
    for (let k = 0; k < 5; k++, n++) batch.push(trade(n % 3 === 0 ? 'MSFT' : 'AAPL', BIG + BigInt(2 * n), n));
    gw.simulator!.publish(batch, STOCKS);
  }
  await live.until(() => data(live.messages).length === n, 'every trade live');
  await taped(gw);

  const sdk = new streaming.StockDataStream({ url: gw.url(`from=${nsText(fromNs)}&speed=max`, `replay/${STOCKS}`), credentials: { keyId: 'k', secret: 's' }, reconnect: false });
  const got: { symbol?: string; idRaw?: string; price: number; size: number; timestampRaw?: string }[] = [];
  const errors: string[] = [];
  sdk.onTrade((x) => got.push(x));
  sdk.onError((err) => errors.push(String(err)));
  sdk.subscribeForTrades(['AAPL']);
  t.teardown(() => sdk.disconnect());
  sdk.connect();
  t.equal(await sdk.waitForAuthentication(10_000), true, 'the SDK authenticates at the replay');
  const expected = data(live.messages).filter((m) => m.S === 'AAPL');
  await eventually(() => got.length >= expected.length, 'the replayed AAPL trades');
  t.same(errors, []);
  t.same(
    got.map((x) => [x.symbol, x.idRaw, x.price, x.size, ns(x.timestampRaw)]),
    expected.map((m) => ['AAPL', String(m.i), m.p, m.s, (m.t as Timestamp).toEpochNanos()]),
    'every AAPL trade the live client got, in order, ids and nanoseconds exact',
  );
  t.ok(got.some((x) => BigInt(x.idRaw!) > 2n ** 53n), 'ids past 2^53 among them');
});

t.test('a raw client replaying in msgpack gets the vendor’s own bytes; JSON clients get the lossless JSON of them', async (t) => {
  const { gw, live, fromNs } = await recordingGateway(t, { subscribe: { trades: ['AAPL'] }, env: BOTH, encoding: 'msgpack' });
  gw.simulator!.publish([trade('AAPL', BIG, 1), trade('AAPL', BIG + 2n, 2)], STOCKS);
  await live.until(() => data(live.messages).length === 2, 'the trades live');
  await taped(gw);
  const liveBytes = Buffer.concat(live.raw.filter((r) => r.isBinary).slice(-1).map((r) => r.data));

  for (const encoding of ['msgpack', 'json'] as const) {
    const replay = new StreamClient(gw.url(`from=${nsText(fromNs)}&speed=max&events=1`, `replay/${STOCKS}`), { encoding });
    t.teardown(() => replay.close());
    await replay.opened();
    t.same(replay.messages[0], { T: 'success', msg: 'connected' }, `${encoding}: the vendor's greeting`);
    await replay.auth('k', 's');
    t.same(await replay.request({ action: 'subscribe', trades: ['AAPL'] }), { T: 'subscription', trades: ['AAPL'], quotes: [], bars: [], updatedBars: [], dailyBars: [], statuses: [], lulds: [], corrections: ['AAPL'], cancelErrors: ['AAPL'], imbalances: [] });
    await replay.waitFor((m) => m.T === 'gateway' && m.event === 'replay_end', `${encoding}: replay_end`);
    t.same(data(replay.messages), data(live.messages), `${encoding}: the recorded trades, values equal`);
    if (encoding === 'msgpack') {
      const frames = replay.raw.filter((r) => r.isBinary).map((r) => r.data);
      t.ok(frames.some((f) => f.equals(liveBytes)), 'the replayed frame is byte for byte the frame the live client got');
    }
  }
});

t.test('a CryptoDataStream replaying a book from the middle of the window starts from a reset equal to the book at `from`, then exactly the recorded updates', async (t) => {
  const { gw, live } = await recordingGateway(t, { subscribe: { orderbooks: ['BTC/USD'], trades: ['BTC/USD'] }, env: BOTH, stream: CRYPTO });
  const ts = (n: number): Timestamp => new Timestamp(1765031400, n);
  const sim = gw.simulator!;
  const book = (n: number, b: [number, number][], a: [number, number][], reset = false): MarketMessage => ({
    T: 'o',
    S: 'BTC/USD',
    t: ts(n),
    b: b.map(([p, s]) => ({ p, s })),
    a: a.map(([p, s]) => ({ p, s })),
    ...(reset ? { r: true } : {}),
  });
  sim.publish([book(1, [[100, 1], [99, 2]], [[101, 1], [102, 3]], true), book(2, [[99, 0], [98.5, 4]], [])], CRYPTO);
  await live.until(() => live.messages.filter((m) => m.T === 'o').length >= 2, 'the first book messages live');
  const fromNs = systemClock.nanos();
  const later = [book(3, [], [[101, 0.5]]), { T: 't', S: 'BTC/USD', p: 100.5, s: 0.25, t: ts(4), i: BIG, tks: 'B' }, book(5, [[100, 0]], [[103, 7]])];
  sim.publish(later, CRYPTO);
  await live.until(() => live.messages.filter((m) => m.T === 'o').length >= 4, 'the later book messages live');
  await taped(gw);

  const sdk = new streaming.CryptoDataStream({ url: gw.url(`from=${nsText(fromNs)}&speed=max`, `replay/${CRYPTO}`), credentials: { keyId: 'k', secret: 's' }, reconnect: false });
  const books: { symbol?: string; reset?: boolean; bids: { price: number; size: number }[]; asks: { price: number; size: number }[]; timestampRaw?: string }[] = [];
  const trades: { idRaw?: string; size: number; timestampRaw?: string }[] = [];
  sdk.onOrderbook((x) => books.push(x));
  sdk.onTrade((x) => trades.push(x));
  sdk.subscribeForOrderbooks(['BTC/USD']);
  sdk.subscribeForTrades(['BTC/USD']);
  t.teardown(() => sdk.disconnect());
  sdk.connect();
  t.equal(await sdk.waitForAuthentication(10_000), true);
  await eventually(() => books.length >= 3 && trades.length >= 1, 'the reset, two updates and the trade');
  const levels = (l: { price: number; size: number }[]): [number, number][] => l.map((x) => [x.price, x.size]);
  t.equal(books[0]?.reset, true, 'the first book message is a reset');
  t.same([levels(books[0]!.bids), levels(books[0]!.asks)], [[[100, 1], [98.5, 4]], [[101, 1], [102, 3]]], 'the book as of `from` (the reset and the update before it applied)');
  t.equal(ns(books[0]?.timestampRaw), ts(2).toEpochNanos(), 'stamped with the last update before `from`');
  t.same(
    books.slice(1).map((x) => [x.reset, levels(x.bids), levels(x.asks), ns(x.timestampRaw)]),
    [
      [false, [], [[101, 0.5]], ts(3).toEpochNanos()],
      [false, [[100, 0]], [[103, 7]], ts(5).toEpochNanos()],
    ],
    'then exactly the recorded updates',
  );
  t.same(trades.map((x) => [x.idRaw, x.size, ns(x.timestampRaw)]), [[String(BIG), 0.25, ts(4).toEpochNanos()]], 'the trade after `from` only, its id exact');
  t.equal(books.length, 3, 'nothing else');
});

t.test('?snapshot=1 on a replay: the last trade before `from` on subscribe, then the window', async (t) => {
  const { gw, live } = await recordingGateway(t, { subscribe: { trades: ['AAPL'] }, env: BOTH });
  gw.simulator!.publish([trade('AAPL', BIG, 1)], STOCKS);
  gw.simulator!.publish([trade('AAPL', BIG + 2n, 2)], STOCKS);
  await live.until(() => data(live.messages).length === 2, 'two trades before `from`');
  const fromNs = systemClock.nanos();
  gw.simulator!.publish([trade('AAPL', BIG + 4n, 3)], STOCKS);
  await live.until(() => data(live.messages).length === 3, 'one after it');
  await taped(gw);
  const replay = new StreamClient(gw.url(`from=${nsText(fromNs)}&speed=max&events=1&snapshot=1`, `replay/${STOCKS}`));
  t.teardown(() => replay.close());
  await replay.opened();
  await replay.auth('k', 's');
  await replay.request({ action: 'subscribe', trades: ['AAPL'] });
  await replay.waitFor((m) => m.event === 'replay_end', 'replay_end');
  t.same(data(replay.messages).map((m) => m.s), [2, 3], 'the last value as of `from` (trade 2), then the recorded trade 3');
});
