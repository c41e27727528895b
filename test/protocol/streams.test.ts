import t from 'tap';
import { decodeFrame, encodeFrame, joinFrame, splitFrame } from '../../src/protocol/frame.js';
import { CRYPTO, NEWS, OPTIONS, parseChannels, STOCKS, STREAM_KINDS, STREAM_PATHS, streamKindOf, streamKindOfUrl, streamPathOfUrl, subscriptionReply, upstreamEncodingOf } from '../../src/protocol/streams.js';
import { Timestamp } from '../../src/protocol/timestamp.js';

t.test('every stream path of DESIGN §9 maps to its kind, and nothing else does', async (t) => {
  const expected: Record<string, string> = {
    'v2/iex': 'stocks',
    'v2/sip': 'stocks',
    'v2/delayed_sip': 'stocks',
    'v2/test': 'stocks',
    'v1beta1/boats': 'stocks',
    'v1beta1/overnight': 'stocks',
    'v1beta3/crypto/us': 'crypto',
    'v1beta3/crypto/us-1': 'crypto',
    'v1beta3/crypto/eu-1': 'crypto',
    'v1beta1/indicative': 'options',
    'v1beta1/opra': 'options',
    'v1beta1/news': 'news',
  };
  t.same([...STREAM_PATHS].sort(), Object.keys(expected).sort(), 'the known paths are exactly §9’s');
  for (const [path, kind] of Object.entries(expected)) {
    t.equal(streamKindOf(path)?.name, kind, path);
    t.equal(streamKindOf(`/${path}`)?.name, kind, `/${path} (leading slash)`);
  }
  for (const path of ['v2/nope', 'v1beta3/crypto', 'v1beta1/crypto', 'v1beta3/crypto/us/', 'news', '', 'v2/IEX']) t.equal(streamKindOf(path), undefined, `${JSON.stringify(path)} is unknown`);
  t.same(STREAM_KINDS.map((k) => k.name), ['stocks', 'crypto', 'options', 'news']);
  t.same(OPTIONS.encodings, ['msgpack'], 'options are msgpack only at the vendor');
});

t.test('stock subscribe parsing is as before: 410 for other streams’ keys, nil and empty lists tolerated', async (t) => {
  t.same(parseChannels({ action: 'subscribe', trades: ['AAPL', 'AAPL'], quotes: ['*'] }), { ...empty(), trades: ['AAPL'], quotes: ['*'] });
  const goSdk = { action: 'subscribe', trades: ['AAPL'], quotes: null, bars: [], orderbooks: null, news: [], pricing: null, imbalances: null };
  t.same(parseChannels(goSdk, STOCKS), { ...empty(), trades: ['AAPL'] }, 'the Go SDK’s every-key message');
  for (const key of ['orderbooks', 'news', 'pricing', 'corrections', 'cancelErrors']) t.equal(parseChannels({ [key]: ['AAPL'] }), 410, `symbols on ${key}`);
  t.equal(parseChannels({ trades: 'AAPL' }), 400, 'not a list');
  t.equal(parseChannels({ trades: ['aapl'] }), 400, 'lower case');
  t.equal(parseChannels({ trades: [5] }), 400, 'not a string');
  t.same(parseChannels({ foo: ['AAPL'] }), empty(), 'a key no stream knows is ignored');
  t.same(STOCKS.typeToChannel, { t: 'trades', c: 'trades', x: 'trades', q: 'quotes', b: 'bars', u: 'updatedBars', d: 'dailyBars', s: 'statuses', l: 'lulds', i: 'imbalances' }, 'the stock types and their channels (corrections and cancels follow trades)');
  t.same([...STOCKS.floatFields.q!.fields], ['ap', 'bp']);
  t.same(subscriptionReply({ ...empty(), trades: ['AAPL'] }), {
    T: 'subscription',
    trades: ['AAPL'],
    quotes: [],
    bars: [],
    updatedBars: [],
    dailyBars: [],
    statuses: [],
    lulds: [],
    corrections: ['AAPL'],
    cancelErrors: ['AAPL'],
    imbalances: [],
  });
});

t.test('crypto takes base/quote pairs on its six channels and refuses stock channels with 410', async (t) => {
  t.same(parseChannels({ trades: ['BTC/USD'], orderbooks: ['ETH/BTC', '*'], dailyBars: ['SOL/USDT'] }, CRYPTO), { ...empty(), trades: ['BTC/USD'], orderbooks: ['ETH/BTC', '*'], dailyBars: ['SOL/USDT'] });
  for (const bad of ['BTCUSD', 'btc/usd', 'BTC/', '/USD', 'BTC/USD/EUR', 'BTC USD']) t.equal(parseChannels({ trades: [bad] }, CRYPTO), 400, `${bad} is not a pair`);
  for (const key of ['statuses', 'lulds', 'imbalances', 'news', 'corrections']) t.equal(parseChannels({ [key]: ['BTC/USD'] }, CRYPTO), 410, `symbols on ${key}`);
  t.same(parseChannels({ trades: ['BTC/USD'], statuses: null, lulds: [], news: null }, CRYPTO), { ...empty(), trades: ['BTC/USD'] }, 'empty foreign keys are fine');
  const reply = subscriptionReply({ ...empty(), bars: ['BTC/USD'], statuses: ['AAPL'] }, CRYPTO);
  t.same(Object.keys(reply), ['T', 'trades', 'quotes', 'orderbooks', 'bars', 'updatedBars', 'dailyBars'], 'the reply has the crypto keys in the vendor’s order');
  t.same(reply.bars, ['BTC/USD']);
});

t.test('options take OCC contracts on trades and quotes; * on quotes is 413', async (t) => {
  t.same(parseChannels({ trades: ['AAPL240315C00172500', '*'], quotes: ['SPXW240327P04925000'] }, OPTIONS), { ...empty(), trades: ['AAPL240315C00172500', '*'], quotes: ['SPXW240327P04925000'] });
  for (const bad of ['AAPL', 'AAPL  240315C00172500', 'aapl240315C00172500', 'AAPL241315C00172500', 'AAPL240315X00172500', 'AAPL240315C0017250', 'TOOLONG240315C00172500'])
    t.equal(parseChannels({ trades: [bad] }, OPTIONS), 400, `${bad} is not an OCC contract`);
  t.equal(parseChannels({ quotes: ['*'] }, OPTIONS), 413, '* on option quotes');
  t.equal(parseChannels({ bars: ['AAPL240315C00172500'] }, OPTIONS), 410, 'no bars on the options stream');
  t.same(parseChannels({ trades: ['AAPL240315C00172500'], bars: [], updatedBars: [], dailyBars: [] }, OPTIONS), { ...empty(), trades: ['AAPL240315C00172500'] }, 'the Go option client’s empty bar keys');
  t.same(subscriptionReply({ ...empty(), quotes: ['AAPL240315C00172500'] }, OPTIONS), { T: 'subscription', trades: [], quotes: ['AAPL240315C00172500'] });
});

t.test('news takes tickers, crypto tickers and * on one channel; trades is 410', async (t) => {
  t.same(parseChannels({ news: ['AAPL', 'BRK.B', 'BTCUSD', '*'] }, NEWS), { ...empty(), news: ['AAPL', 'BRK.B', 'BTCUSD', '*'] });
  t.equal(parseChannels({ trades: ['AAPL'] }, NEWS), 410);
  t.equal(parseChannels({ news: ['aapl'] }, NEWS), 400);
  t.same(subscriptionReply({ ...empty(), news: ['*'], trades: ['AAPL'] }, NEWS), { T: 'subscription', news: ['*'] }, 'only the news key');
});

t.test('JSON → msgpack keeps each kind’s floats float64, so a vendor frame round-trips byte for byte', async (t) => {
  const t0 = new Timestamp(1_710_239_268, 858_228_144);
  const cases = [
    { kind: CRYPTO, messages: [
      { T: 't', S: 'BTC/USD', p: 65000, s: 2, t: t0, i: 3447222699101865076n, tks: 'B' },
      { T: 'q', S: 'BTC/USD', bp: 64999, bs: 1, ap: 65001, as: 3, t: t0 },
      { T: 'b', S: 'BTC/USD', o: 1, h: 2, l: 1, c: 2, v: 3, t: t0, n: 4, vw: 2 },
      { T: 'o', S: 'BTC/USD', t: t0, b: [{ p: 65000, s: 1 }], a: [{ p: 65001, s: 0 }], r: true },
    ] },
    { kind: OPTIONS, messages: [{ T: 't', S: 'AAPL240315C00172500', t: t0, p: 3, s: 1, x: 'N', c: 'S' }, { T: 'q', S: 'AAPL240315C00172500', t: t0, bx: 'C', bp: 9, bs: 53, ax: 'C', ap: 10, as: 38, c: 'A' }] },
    { kind: NEWS, messages: [{ T: 'n', id: 24918784, headline: 'h', summary: 's', author: 'a', created_at: t0, updated_at: t0, url: null, content: '', symbols: ['AAPL'], source: 'benzinga' }] },
  ];
  for (const { kind, messages } of cases) {
    const vendor = encodeFrame(messages, 'msgpack', kind);
    const json = joinFrame(splitFrame(vendor, 'msgpack', kind), 'json');
    const back = joinFrame(splitFrame(json, 'json', kind), 'msgpack');
    t.ok(back.equals(vendor), `${kind.name}: msgpack → JSON → msgpack is byte-exact`);
    t.same(decodeFrame(json, 'json', kind), decodeFrame(vendor, 'msgpack', kind), `${kind.name}: the same values both ways`);
  }
  const book = encodeFrame([{ T: 'o', S: 'BTC/USD', t: t0, b: [{ p: 65000, s: 1 }], a: [] }], 'msgpack', CRYPTO);
  t.ok(book.includes(Buffer.from([0xa1, 0x70, 0xcb])), 'an order-book level’s whole price is a float64 (p → 0xcb)');
  const optionTrade = encodeFrame([{ T: 't', S: 'AAPL240315C00172500', t: t0, p: 3, s: 1 }], 'msgpack', OPTIONS);
  t.ok(optionTrade.includes(Buffer.from([0xa1, 0x73, 0x01])), 'an option size stays an integer (s → fixint 1)');
  const stockJson = Buffer.from('[{"T":"t","S":"AAPL","s":100,"p":127}]');
  t.ok(joinFrame(splitFrame(stockJson, 'json'), 'msgpack').includes(Buffer.from([0xa1, 0x73, 0x64])), 'a stock size stays an integer, as before');
});

function empty(): Record<string, string[]> {
  return { trades: [], quotes: [], bars: [], updatedBars: [], dailyBars: [], statuses: [], lulds: [], imbalances: [], orderbooks: [], news: [] };
}

t.test('a vendor URL names its stream path and kind by its path, behind a prefix too; an unknown or bare one names none', async (t) => {
  t.equal(streamKindOfUrl('wss://stream.data.alpaca.markets/v2/sip'), STOCKS);
  t.equal(streamKindOfUrl('ws://127.0.0.1:9/v1beta3/crypto/us-1/'), CRYPTO);
  t.equal(streamKindOfUrl('wss://proxy.example/alpaca/v1beta1/opra'), OPTIONS);
  t.equal(streamKindOfUrl('ws://127.0.0.1:9/v1beta1/news'), NEWS);
  t.equal(streamKindOfUrl('ws://127.0.0.1:9/iex'), undefined, 'a bare feed segment is no stream path');
  t.equal(streamKindOfUrl('wss://host/v2/iexx'), undefined);
  t.equal(streamKindOfUrl('not a url'), undefined);
  t.equal(streamPathOfUrl('ws://127.0.0.1:8080/v1beta3/crypto/us?events=1'), 'v1beta3/crypto/us', 'the path itself, without the query');
  t.equal(streamPathOfUrl('ws://127.0.0.1:8080'), undefined, 'a bare base names no stream');
  t.equal(streamPathOfUrl('ws://127.0.0.1:8080/'), undefined);
});

t.test('a link runs the configured encoding upstream where the kind has it, else the kind’s own', async (t) => {
  t.equal(upstreamEncodingOf(STOCKS, 'json'), 'json');
  t.equal(upstreamEncodingOf(CRYPTO, 'msgpack'), 'msgpack');
  t.equal(upstreamEncodingOf(OPTIONS, 'json'), 'msgpack', 'options are msgpack only at the vendor');
  t.equal(upstreamEncodingOf(NEWS, 'json'), 'json');
});
