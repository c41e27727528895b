/**
 * Every stream from one gateway (DESIGN.md §9), end to end: the real app with the embedded
 * simulator serving the four default streams, the official JS SDK v4 and raw clients on each.
 */
import { streaming } from '@alpacahq/alpaca-trade-api';
import t, { type Test } from 'tap';
import { Timestamp } from '../src/protocol/timestamp.js';
import type { VendorSimulator } from '../src/simulator/index.js';
import type { MarketMessage } from '../src/simulator/stream-market.js';
import type { StateChange } from '../src/upstream/stream-manager.js';
import { type GatewayFixture, startGateway } from './helpers/gateway.js';
import type { Message, StreamClient } from './helpers/stream-client.js';
import { eventually } from './helpers/wait.js';

const STOCKS = 'v2/iex';
const CRYPTO = 'v1beta3/crypto/us';
const OPTIONS = 'v1beta1/indicative';
const NEWS = 'v1beta1/news';
const DEFAULT_STREAMS = [STOCKS, CRYPTO, OPTIONS, NEWS];

const t0 = Timestamp.parse('2024-01-02T14:30:00.123456789Z');
const NANOS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/;
const data = (c: StreamClient): Message[] => c.messages.filter((m) => !['success', 'subscription', 'error', 'gateway'].includes(m.T as string));

/** The gateway with no STREAMS: what `npm start` serves with no configuration. */
async function defaultGateway(t: Test, env: Record<string, string> = {}): Promise<GatewayFixture> {
  const gw = await startGateway(t, { STREAMS: '', ...env });
  await Promise.all(gw.gateway.streams.map((stream) => stream.link.whenLive(10_000)));
  return gw;
}

/** Authenticated vendor sessions per stream path. */
function vendorSessions(sim: VendorSimulator): Map<string, number> {
  const counts = new Map<string, number>();
  for (const session of sim.sessions()) if (session.authenticated) counts.set(session.path, (counts.get(session.path) ?? 0) + 1);
  return counts;
}

interface Sdk {
  connect(): void;
  disconnect(): void;
  onError(cb: (err: string) => void): void;
  waitForAuthentication(ms: number): Promise<boolean>;
}

/** Connects an SDK stream that the teardown disconnects; its errors go to `errors`. */
async function started(t: Test, stream: Sdk, errors: string[]): Promise<void> {
  t.teardown(() => stream.disconnect());
  stream.onError((err) => errors.push(String(err)));
  stream.connect();
  t.equal(await stream.waitForAuthentication(10_000), true, 'the SDK authenticates at the gateway');
}

t.test('with no configuration the gateway serves the four default streams, one vendor session per path however many clients', async (t) => {
  const gw = await defaultGateway(t);
  t.same(gw.gateway.paths, DEFAULT_STREAMS);
  const symbols: Record<string, Record<string, string[]>> = {
    [STOCKS]: { trades: ['AAPL'] },
    [CRYPTO]: { trades: ['BTC/USD'], orderbooks: ['ETH/USD'] },
    [OPTIONS]: { quotes: ['AAPL250117C00150000'] },
    [NEWS]: { news: ['*'] },
  };
  for (const path of DEFAULT_STREAMS) {
    for (let i = 0; i < 3; i++) {
      const client = await gw.connect({ encoding: i === 2 ? 'msgpack' : 'json', stream: path });
      await client.auth(`c${i}`, 's');
      await client.request({ action: 'subscribe', ...symbols[path] });
    }
  }
  await Promise.all(gw.gateway.streams.map((stream) => stream.link.whenSynced(10_000)));
  const sim = gw.simulator!;
  t.same(Object.fromEntries(vendorSessions(sim)), Object.fromEntries(DEFAULT_STREAMS.map((p) => [p, 1])), 'one vendor session on each path for twelve clients');
  t.equal(sim.stats.maxConcurrentPerKey, 1, 'never two sessions of one key on one path');
  for (const session of sim.sessions().filter((s) => s.authenticated)) {
    for (const [channel, list] of Object.entries(symbols[session.path]!)) t.same(session.subscriptions[channel as 'trades'], list, `${session.path} holds its own ${channel}`);
  }

  const streams = await fetch(`${gw.base}/streams`);
  t.equal(streams.status, 200);
  t.match(await streams.json(), {
    streams: [
      { stream: STOCKS, kind: 'stocks', state: 'live', breaker: 'closed', clients: { connected: 3, authenticated: 3 } },
      { stream: CRYPTO, kind: 'crypto', state: 'live', clients: { authenticated: 3 } },
      { stream: OPTIONS, kind: 'options', state: 'live', clients: { authenticated: 3 } },
      { stream: NEWS, kind: 'news', state: 'live', clients: { authenticated: 3 } },
    ],
  });
  const health = await fetch(`${gw.base}/health`);
  t.equal(health.status, 200, 'healthy while every link is live');
  t.match(await health.json(), { status: 'ok', clients: { connected: 12, authenticated: 12 }, streams: DEFAULT_STREAMS.map((stream) => ({ stream, state: 'live' })) });
});

t.test('the official SDK v4 on each stream through the gateway: exactly its own symbols, values as the vendor sent them', async (t) => {
  const gw = await defaultGateway(t);
  const sim = gw.simulator!;
  const credentials = { keyId: 'sdk', secret: 's' };
  const id = 3447222699101865077n; // odd and beyond 2^53: a double would round it

  const stocks = new streaming.StockDataStream({ url: gw.url('', STOCKS), credentials, reconnect: false });
  const stockTrades: { symbol?: string; idRaw?: string; price: number; size: number; timestampRaw?: string }[] = [];
  stocks.onTrade((x) => stockTrades.push(x));
  stocks.subscribeForTrades(['AAPL']);
  const crypto = new streaming.CryptoDataStream({ url: gw.url('', CRYPTO), credentials, reconnect: false });
  const cryptoTrades: { symbol?: string; idRaw?: string; price: number; size: number; timestampRaw?: string; takerSide?: string }[] = [];
  const cryptoQuotes: { symbol?: string; bidPrice: number; bidSize: number; askPrice: number; askSize: number }[] = [];
  crypto.onTrade((x) => cryptoTrades.push(x));
  crypto.onQuote((x) => cryptoQuotes.push(x));
  crypto.subscribeForTrades(['BTC/USD']);
  crypto.subscribeForQuotes(['ETH/USD']);
  const options = new streaming.OptionDataStream({ url: gw.url('', OPTIONS), credentials, reconnect: false });
  const optionTrades: { symbol?: string; price: number; size: number; exchange?: string; conditions: unknown; timestampRaw?: string }[] = [];
  options.onTrade((x) => optionTrades.push(x));
  options.subscribeForTrades(['AAPL250117C00150000']);
  const news = new streaming.NewsStream({ url: gw.url('', NEWS), credentials, reconnect: false });
  const items: { id: number; idRaw?: string; headline: string; symbols: string[]; source?: string; createdAt?: Date }[] = [];
  news.onNews((x) => items.push(x));
  news.subscribeForNews(['TSLA']);
  const errors: string[] = [];
  for (const sdk of [stocks, crypto, options, news]) await started(t, sdk, errors);
  // An SDK lists its subscriptions before the server answers: wait for the gateway to hold them.
  const held: Record<string, [string, string]> = { [STOCKS]: ['trades', 'AAPL'], [CRYPTO]: ['quotes', 'ETH/USD'], [OPTIONS]: ['trades', 'AAPL250117C00150000'], [NEWS]: ['news', 'TSLA'] };
  await eventually(() => Object.entries(held).every(([path, [channel, symbol]]) => gw.gateway.stream(path)!.hub.desired().has(channel as 'trades', symbol)), 'every SDK’s subscription at the gateway');
  await Promise.all(gw.gateway.streams.map((stream) => stream.link.whenSynced(10_000)));

  const published: Record<string, MarketMessage[]> = {
    [STOCKS]: [
      { T: 't', S: 'AAPL', i: id, x: 'V', p: 187.25, s: 100, c: ['@'], t: t0, z: 'C' },
      { T: 't', S: 'MSFT', i: id + 2n, x: 'V', p: 400.5, s: 5, c: ['@'], t: t0, z: 'C' },
    ],
    [CRYPTO]: [
      { T: 't', S: 'BTC/USD', p: 47.299, s: 29.205707815, t: t0, i: id, tks: 'S' },
      { T: 't', S: 'ETH/USD', p: 2300.5, s: 1.25, t: t0, i: id + 1n, tks: 'B' },
      { T: 'q', S: 'ETH/USD', bp: 2300.25, bs: 0.000038, ap: 2300.75, as: 12.5, t: t0 },
      { T: 'q', S: 'BTC/USD', bp: 1, bs: 1, ap: 2, as: 2, t: t0 },
    ],
    [OPTIONS]: [
      { T: 't', S: 'AAPL250117C00150000', t: t0, p: 2.5, s: 3, x: 'C', c: 'I' },
      { T: 't', S: 'TSLA250117P00200000', t: t0, p: 1.5, s: 1, x: 'C', c: 'I' },
    ],
    [NEWS]: [
      { T: 'n', id: 7, headline: 'about Tesla', summary: 's', author: 'a', created_at: t0, updated_at: t0, url: 'https://example.com/7', content: '<p>c</p>', symbols: ['TSLA', 'F'], source: 'benzinga' },
      { T: 'n', id: 8, headline: 'about Apple', summary: 's', author: 'a', created_at: t0, updated_at: t0, url: null, content: '', symbols: ['AAPL'], source: 'benzinga' },
    ],
  };
  for (const [path, messages] of Object.entries(published)) sim.publish(messages, path);
  // The simulator's own news wire runs too (its items have 8-digit ids): ours are told apart by id.
  const ours = () => items.filter((x) => x.id < 100);
  await eventually(() => stockTrades.length === 1 && cryptoTrades.length === 1 && cryptoQuotes.length === 1 && optionTrades.length === 1 && ours().length === 1, 'each SDK’s message');

  t.same(errors, [], 'no SDK errors');
  t.same(
    stockTrades.map((x) => [x.symbol, x.idRaw, x.price, x.size, x.timestampRaw]),
    [['AAPL', String(id), 187.25, 100, '2024-01-02T14:30:00.123456789Z']],
    'stocks: the AAPL trade, its 64-bit id and nanoseconds exact',
  );
  t.same(
    cryptoTrades.map((x) => [x.symbol, x.idRaw, x.price, x.size, x.takerSide, x.timestampRaw]),
    [['BTC/USD', String(id), 47.299, 29.205707815, 'S', '2024-01-02T14:30:00.123456789Z']],
    'crypto: the BTC/USD trade, fractional size and 64-bit id exact',
  );
  t.same(
    cryptoQuotes.map((x) => [x.symbol, x.bidPrice, x.bidSize, x.askPrice, x.askSize]),
    [['ETH/USD', 2300.25, 0.000038, 2300.75, 12.5]],
    'crypto: the ETH/USD quote only',
  );
  t.same(
    optionTrades.map((x) => [x.symbol, x.price, x.size, x.exchange, x.conditions, x.timestampRaw]),
    [['AAPL250117C00150000', 2.5, 3, 'C', 'I', '2024-01-02T14:30:00.123456789Z']],
    'options: the held contract’s trade',
  );
  t.same(
    ours().map((x) => [x.idRaw, x.headline, x.symbols, x.source, x.createdAt?.toISOString()]),
    [['7', 'about Tesla', ['TSLA', 'F'], 'benzinga', '2024-01-02T14:30:00.123Z']],
    'news: the item naming TSLA',
  );
  t.ok(items.every((x) => x.symbols.includes('TSLA')), 'and of the wire’s own items, only those naming TSLA');
  t.ok([...stockTrades, ...cryptoTrades, ...optionTrades].every((x) => NANOS.test(x.timestampRaw!)));
});

t.test('a JSON client of the options stream gets lossless JSON; the vendor link stays msgpack', async (t) => {
  const gw = await defaultGateway(t, { UPSTREAM_ENCODING: 'json' });
  const sim = gw.simulator!;
  t.equal(sim.sessions().find((s) => s.path === OPTIONS && s.authenticated)?.encoding, 'msgpack', 'options upstream in msgpack (the vendor serves nothing else)');
  t.equal(sim.sessions().find((s) => s.path === CRYPTO && s.authenticated)?.encoding, 'json', 'the other links as configured');
  const client = await gw.connect({ stream: OPTIONS });
  await client.auth('json', 's');
  t.same(await client.request({ action: 'subscribe', trades: ['SPXW250327P04925000'], quotes: ['SPXW250327P04925000'] }), {
    T: 'subscription',
    trades: ['SPXW250327P04925000'],
    quotes: ['SPXW250327P04925000'],
  });
  t.same(await client.request({ action: 'subscribe', news: ['AAPL'] }), { T: 'error', code: 410, msg: 'invalid subscribe action for this feed' }, 'a key the stream lacks: the vendor’s 410');
  await gw.gateway.stream(OPTIONS)!.link.whenSynced(10_000);
  sim.publish(
    [
      { T: 't', S: 'SPXW250327P04925000', t: t0, p: 12, s: 1, x: 'C', c: 'I' },
      { T: 'q', S: 'SPXW250327P04925000', t: t0, bx: 'C', bp: 11.95, bs: 10, ax: 'X', ap: 12.1, as: 7, c: 'A' },
    ],
    OPTIONS,
  );
  await client.until(() => data(client).length === 2, 'the trade and the quote');
  const text = client.raw.filter((r) => !r.isBinary).map((r) => r.data.toString()).join('\n');
  t.match(text, '{"T":"t","S":"SPXW250327P04925000","t":"2024-01-02T14:30:00.123456789Z","p":12,"s":1,"x":"C","c":"I"}', 'the trade as the vendor’s fields, in order, nanoseconds kept');
  t.match(text, '"bp":11.95,"bs":10');
  t.ok(client.raw.every((r) => !r.isBinary), 'only text frames');
});

t.test('a vendor drop on one stream leaves the clients of the others untouched', async (t) => {
  const gw = await defaultGateway(t, { SIMULATOR_RATE: '600', RETRY_BASE_MS: '10', RETRY_MAX_MS: '20' });
  const sim = gw.simulator!;
  const watchers = new Map<string, StreamClient>();
  const readers = new Map<string, StreamClient>();
  const subscribe: Record<string, Record<string, string[]>> = {
    [STOCKS]: { trades: ['AAPL'] },
    [CRYPTO]: { trades: ['BTC/USD'] },
    [OPTIONS]: { trades: ['AAPL250117C00150000'] },
  };
  for (const [path, request] of Object.entries(subscribe)) {
    const watcher = await gw.connect({ query: 'events=1', stream: path });
    await watcher.auth('w', 's');
    watchers.set(path, watcher);
    const reader = await gw.connect({ stream: path, encoding: 'msgpack' });
    await reader.auth('r', 's');
    await reader.request({ action: 'subscribe', ...request });
    readers.set(path, reader);
  }
  const changes = new Map<string, StateChange[]>();
  for (const stream of gw.gateway.streams) {
    const list: StateChange[] = [];
    changes.set(stream.path, list);
    stream.link.on('state', (change: StateChange) => list.push(change));
  }
  const sessionsBefore = sim.sessions().filter((s) => s.authenticated && s.path !== CRYPTO).map((s) => s.id);
  for (const reader of readers.values()) await reader.until(() => data(reader).length >= 5, 'data before the drop');

  sim.dropAll({ path: CRYPTO, terminate: true });
  const crypto = readers.get(CRYPTO)!;
  await watchers.get(CRYPTO)!.waitFor((m) => m.T === 'gateway' && m.event === 'upstream_up', 'the crypto link back');
  const afterUp = data(crypto).length;
  await crypto.until(() => data(crypto).length > afterUp + 5, 'crypto data again');
  for (const path of [STOCKS, OPTIONS]) {
    const reader = readers.get(path)!;
    const seen = data(reader).length;
    await reader.until(() => data(reader).length > seen + 5, `${path} data after the drop`);
  }

  t.same(
    watchers.get(CRYPTO)!.messages.filter((m) => m.T === 'gateway').map((m) => [m.event, m.stream]),
    [
      ['upstream_down', CRYPTO],
      ['upstream_up', CRYPTO],
    ],
    'the crypto stream’s clients hear of its outage, named',
  );
  for (const path of [STOCKS, OPTIONS]) {
    t.same(watchers.get(path)!.messages.filter((m) => m.T === 'gateway'), [], `${path}: no notice`);
    t.same(changes.get(path), [], `${path}: its link never changed state`);
    t.equal(readers.get(path)!.closeCode, undefined, `${path}: its reader still connected`);
  }
  t.ok(
    sessionsBefore.every((id) => sim.sessions().some((s) => s.id === id && s.authenticated)),
    'the other streams’ vendor sessions are the same connections as before',
  );
  t.equal(gw.gateway.stream(STOCKS)!.link.stats.reconnects, 0);
  // A trade takes the next id, and so does a correction's new trade (`ci`); a cancel takes none.
  const ids = data(readers.get(STOCKS)!).flatMap((m) => (m.T === 't' ? [BigInt(m.i as bigint)] : m.T === 'c' ? [BigInt(m.ci as bigint)] : []));
  t.ok(
    ids.every((n, i) => i === 0 || n === (ids[i - 1] as bigint) + 1n),
    `the stock reader’s ${ids.length} AAPL trade ids follow one another without a gap`,
    { gaps: ids.flatMap((n, i) => (i > 0 && n !== (ids[i - 1] as bigint) + 1n ? [`${ids[i - 1]}→${n} at ${i}`] : [])) },
  );
  t.same(Object.fromEntries(vendorSessions(sim)), { [STOCKS]: 1, [CRYPTO]: 1, [OPTIONS]: 1, [NEWS]: 1 }, 'still one session per path');
});

t.test('MAX_CLIENTS counts the clients of every stream together', async (t) => {
  const gw = await startGateway(t, { STREAMS: `${STOCKS},${CRYPTO}`, MAX_CLIENTS: '2' });
  const a = await gw.connect({ stream: STOCKS });
  const b = await gw.connect({ stream: CRYPTO });
  t.same([await a.auth('a', 's'), await b.auth('b', 's')], [
    { T: 'success', msg: 'authenticated' },
    { T: 'success', msg: 'authenticated' },
  ]);
  const c = await gw.connect({ stream: CRYPTO });
  t.same(await c.auth('c', 's'), { T: 'error', code: 406, msg: 'connection limit exceeded' }, 'the third client, on either stream, is refused');
  t.equal(await c.closed, 1008);
  await a.close();
  await eventually(() => gw.gateway.stream(STOCKS)!.hub.stats.authenticated === 0, 'the stock client gone');
  const d = await gw.connect({ stream: CRYPTO });
  t.same(await d.auth('d', 's'), { T: 'success', msg: 'authenticated' }, 'a place freed on one stream serves another');
});
