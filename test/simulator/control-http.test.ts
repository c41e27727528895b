import t from 'tap';
import { FakeClock } from '../helpers/fake-clock.js';
import { connect, startSimulator } from '../helpers/simulator.js';
import type { VendorSimulator } from '../../src/simulator/index.js';

/** The simulator's HTTP control surface as a process uses it: `http://host:port/...`. */
function controlBase(sim: VendorSimulator): string {
  return sim.url('iex').replace('ws://', 'http://').replace('/v2/iex', '');
}

async function post(sim: VendorSimulator, path: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${controlBase(sim)}${path}`, { method: 'POST' });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function stats(sim: VendorSimulator): Promise<Record<string, unknown>> {
  const res = await fetch(`${controlBase(sim)}/stats`);
  return (await res.json()) as Record<string, unknown>;
}

t.test('POST /control/reject-subscribe answers the next N subscription requests with the code', async (t) => {
  const sim = await startSimulator(t);
  const c = await connect(t, sim.url('iex'));
  await c.auth();
  t.same(await post(sim, '/control/reject-subscribe?code=500&times=2'), { status: 200, body: { rejectSubscribe: 500, times: 2 } });
  t.same(await c.request({ action: 'subscribe', trades: ['AAPL'] }), { T: 'error', code: 500, msg: 'internal error' });
  t.same(await c.request({ action: 'unsubscribe', trades: ['AAPL'] }), { T: 'error', code: 500, msg: 'internal error' }, 'unsubscribes count too');
  t.match(await c.request({ action: 'subscribe', trades: ['AAPL'] }), { T: 'subscription', trades: ['AAPL'] }, 'the third is applied');
  t.equal((await post(sim, '/control/reject-subscribe?code=406')).body.times, 1, 'times defaults to 1');
  t.same(await c.request({ action: 'subscribe', quotes: ['MSFT'] }), { T: 'error', code: 406, msg: 'connection limit exceeded' });
  t.equal(c.closeCode, undefined, 'an injected subscribe error does not close the session');
  for (const bad of ['', '?code=abc', '?code=42', '?code=500&times=0', '?code=500&times=1.5']) {
    t.equal((await post(sim, `/control/reject-subscribe${bad}`)).status, 400, `refused: ${bad || 'no code'}`);
  }
});

t.test('POST /control/reject-auth answers the next N auths with the code, closing as the vendor does', async (t) => {
  const sim = await startSimulator(t);
  t.equal((await post(sim, '/control/reject-auth?code=406&times=2')).status, 200);
  for (let i = 0; i < 2; i++) {
    const c = await connect(t, sim.url('iex'));
    t.same(await c.auth(), { T: 'error', code: 406, msg: 'connection limit exceeded' });
    t.equal(await c.closed, 1008, '406 closes');
  }
  const ok = await connect(t, sim.url('iex'));
  t.same(await ok.auth(), { T: 'success', msg: 'authenticated' }, 'then auth works again');
  t.equal((await post(sim, '/control/reject-auth?code=x')).status, 400);
});

t.test('POST /control/malformed sends a malformed frame of the kind to authenticated sessions', async (t) => {
  const sim = await startSimulator(t);
  const c = await connect(t, sim.url('iex'));
  await c.auth();
  const pending = await connect(t, sim.url('iex'));
  await pending.waitFor((m) => m.msg === 'connected', 'the greeting');
  t.same(await post(sim, '/control/malformed?kind=garbage'), { status: 200, body: { malformed: 'garbage', sessions: 1 } });
  await c.until(() => c.undecodable.length === 1, 'the garbage frame');
  t.equal(c.undecodable[0]?.data.toString(), '[{"T":"t","S":', 'garbage: a truncated JSON frame');
  await post(sim, '/control/malformed?kind=unknown-type');
  t.same(await c.waitFor((m) => m.T === 'zz', 'the unknown type'), { T: 'zz', S: 'AAPL', note: 'a type the gateway has never seen' });
  t.equal(pending.raw.length, 1, 'a session that has not authenticated gets only its greeting');
  t.equal((await post(sim, '/control/malformed?kind=poison')).status, 400, 'an unknown kind');
});

t.test('POST /control/drop and /control/stall, /control/resume and /control/clear', async (t) => {
  const sim = await startSimulator(t);
  const clean = await connect(t, sim.url('iex'));
  await clean.auth();
  t.equal((await post(sim, '/control/drop')).status, 200);
  t.equal(await clean.closed, 1011, 'a clean drop closes with 1011');
  const cut = await connect(t, sim.url('iex'));
  await cut.auth();
  await post(sim, '/control/drop?terminate=1');
  t.equal(await cut.closed, 1006, 'a terminated drop cuts the TCP connection');
  t.same(await post(sim, '/control/stall?ms=60000'), { status: 200, body: { stalledMs: 60000 } });
  t.ok(sim.stalled);
  t.same(await post(sim, '/control/resume'), { status: 200, body: { stalled: false } });
  t.notOk(sim.stalled);
  await post(sim, '/control/reject-subscribe?code=500&times=5');
  await post(sim, '/control/stall?ms=60000');
  t.same(await post(sim, '/control/clear'), { status: 200, body: { cleared: true } });
  const c = await connect(t, sim.url('iex'));
  await c.auth();
  t.match(await c.request({ action: 'subscribe', trades: ['AAPL'] }), { T: 'subscription' }, 'no injected error is left after clear');
  t.equal((await post(sim, '/control/nothing')).status, 404);
});

t.test('GET /stats counts sessions now, the most per key at once and every subscription frame', async (t) => {
  const sim = await startSimulator(t);
  const a = await connect(t, sim.url('iex'));
  await a.auth('k', 's');
  const other = await connect(t, sim.url('iex'));
  await other.waitFor((m) => m.msg === 'connected', 'the greeting');
  t.match(await stats(sim), { connectionsNow: 2, authenticatedNow: 1, maxConcurrentPerKey: 1, subscriptionFrames: 0 });
  await a.request({ action: 'subscribe', trades: ['AAPL'] });
  await post(sim, '/control/reject-subscribe?code=500');
  await a.request({ action: 'subscribe', trades: ['MSFT'] });
  await a.request({ action: 'unsubscribe', trades: ['AAPL'] });
  await a.request({ action: 'subscribe', trades: ['aapl'] });
  t.same(await other.request({ action: 'subscribe', trades: ['AAPL'] }), { T: 'error', code: 401, msg: 'not authenticated' });
  a.send('{"action":"auth","key":"k","secret":"s"}');
  await a.waitFor((m) => m.code === 403, 'the 403');
  const s = await stats(sim);
  t.match(s, { subscriptionChanges: 2, subscriptionFrames: 5, maxSubscriptionFramesPerSecond: 5 }, 'applied, refused (500, 400) and unauthenticated frames all count; auth frames do not');
  t.equal(s.authenticatedNow, 1);
  const b = await connect(t, sim.url('sip'));
  await b.auth('k', 's');
  t.match(await stats(sim), { authenticatedNow: 2, maxConcurrentPerKey: 1 }, 'the limit is per key and feed');
});

t.test('the subscription frame rate is the busiest 1-second window by the simulator clock', async (t) => {
  const clock = new FakeClock();
  const sim = await startSimulator(t, { clock });
  const c = await connect(t, sim.url('iex'), { encoding: 'msgpack' });
  await c.auth();
  const burst = async (n: number): Promise<void> => {
    for (let i = 0; i < n; i++) await c.request({ action: i % 2 === 0 ? 'subscribe' : 'unsubscribe', quotes: ['AAPL'] });
  };
  await burst(3);
  clock.advance(999);
  await burst(2);
  t.match(sim.stats, { subscriptionFrames: 5, maxSubscriptionFramesPerSecond: 5 }, 'five frames within 999 ms');
  clock.advance(1);
  await burst(1);
  t.match(sim.stats, { subscriptionFrames: 6, maxSubscriptionFramesPerSecond: 5 }, 'the first three leave the window at exactly 1000 ms');
  clock.advance(5000);
  await burst(4);
  t.match(sim.stats, { subscriptionFrames: 10, maxSubscriptionFramesPerSecond: 5 }, 'a later, smaller burst does not raise the maximum');
  await burst(2);
  t.match(sim.stats, { subscriptionFrames: 12, maxSubscriptionFramesPerSecond: 6 }, 'msgpack frames count the same way');
});

const CRYPTO = 'v1beta3/crypto/us';

async function get(sim: VendorSimulator, path: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${controlBase(sim)}${path}`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

t.test('the controls with ?path= act on that stream path alone; an unknown or unserved path is 400', async (t) => {
  const sim = await startSimulator(t);
  const stocks = await connect(t, sim.url('iex'));
  await stocks.auth();
  const crypto = await connect(t, sim.url(CRYPTO));
  await crypto.auth();
  t.same(await post(sim, `/control/reject-subscribe?code=500&path=${CRYPTO}`), { status: 200, body: { rejectSubscribe: 500, times: 1, path: CRYPTO } });
  t.match(await stocks.request({ action: 'subscribe', trades: ['AAPL'] }), { T: 'subscription' }, 'another path does not take the error');
  t.same(await crypto.request({ action: 'subscribe', trades: ['BTC/USD'] }), { T: 'error', code: 500, msg: 'internal error' }, 'the named path does');
  t.same(await post(sim, '/control/malformed?kind=unknown-type&path=iex'), { status: 200, body: { malformed: 'unknown-type', sessions: 1, path: 'v2/iex' } }, 'a stock feed name is its path');
  await stocks.waitFor((m) => m.T === 'zz', 'the unknown type on stocks');

  t.same(await post(sim, `/control/stall?ms=60000&path=${CRYPTO}`), { status: 200, body: { stalledMs: 60000, path: CRYPTO } });
  t.ok(sim.isStalled(CRYPTO), 'the path is stalled');
  t.notOk(sim.isStalled('iex'), 'another path is not');
  t.notOk(sim.stalled, 'not every path is');
  t.match(await stocks.request({ action: 'subscribe', quotes: ['AAPL'] }), { T: 'subscription' }, 'stocks still answer');
  await post(sim, '/control/resume');
  t.notOk(sim.isStalled(CRYPTO), 'resume ends a path’s stall too');

  await post(sim, `/control/reject-auth?code=406&path=${CRYPTO}`);
  const other = await connect(t, sim.url('iex'));
  t.same(await other.auth('k2', 's'), { T: 'success', msg: 'authenticated' }, 'an auth on another path is not refused');
  const refused = await connect(t, sim.url(CRYPTO));
  t.same(await refused.auth('k2', 's'), { T: 'error', code: 406, msg: 'connection limit exceeded' }, 'an auth on the path is');

  t.same(await post(sim, `/control/drop?path=${CRYPTO}`), { status: 200, body: { dropped: true, path: CRYPTO } });
  t.equal(await crypto.closed, 1011, 'the path’s sessions are dropped');
  t.equal(stocks.closeCode, undefined, 'the other path’s are not');

  for (const bad of ['v9/nothing', 'v1beta3/crypto/xx']) t.equal((await post(sim, `/control/drop?path=${bad}`)).status, 400, `unknown: ${bad}`);
  const narrow = await startSimulator(t, { paths: ['v2/iex'] });
  t.equal((await post(narrow, `/control/stall?ms=10&path=${CRYPTO}`)).status, 400, 'a path not served');
  t.equal((await get(narrow, `/books?path=${CRYPTO}`)).status, 400, 'books of a path not served');
});

t.test('GET /stats names each path: sessions now, the most per key at once, its subscription frames and rate', async (t) => {
  const sim = await startSimulator(t);
  const stocks = await connect(t, sim.url('iex'));
  await stocks.auth('k', 's');
  const crypto = await connect(t, sim.url(CRYPTO));
  await crypto.auth('k', 's');
  for (let i = 0; i < 3; i++) await crypto.request({ action: i % 2 === 0 ? 'subscribe' : 'unsubscribe', trades: ['BTC/USD'] });
  await stocks.request({ action: 'subscribe', trades: ['AAPL'] });
  await post(sim, `/control/rate?value=250&path=${CRYPTO}`);
  const { body } = await get(sim, '/stats');
  t.match(body, { authenticatedNow: 2, maxConcurrentPerKey: 1, subscriptionFrames: 4, rate: 0 }, 'the totals as before');
  const streams = body.streams as Record<string, Record<string, unknown>>;
  t.same(Object.keys(streams), sim.paths, 'every path served');
  t.same(streams[CRYPTO], { connectionsNow: 1, authenticatedNow: 1, maxConcurrentPerKey: 1, subscriptionFrames: 3, maxSubscriptionFramesPerSecond: 3, rate: 250, stalled: false });
  t.match(streams['v2/iex'], { connectionsNow: 1, authenticatedNow: 1, subscriptionFrames: 1, maxSubscriptionFramesPerSecond: 1, rate: 0 });
  t.match(streams['v1beta1/news'], { connectionsNow: 0, authenticatedNow: 0, maxConcurrentPerKey: 0, subscriptionFrames: 0 });
  t.same(sim.streamStats(), streams, 'the same as the library call');
});

t.test('GET /books returns the vendor’s current books; a client that rebuilds its book from the reset and updates agrees once the kind’s rate is 0', async (t) => {
  const sim = await startSimulator(t, { rate: 0 });
  t.same((await get(sim, `/books?path=${CRYPTO}`)).body, { path: CRYPTO, books: {} }, 'no book before anyone subscribes');
  t.equal((await get(sim, '/books')).status, 400, 'the path is required');
  t.same((await get(sim, '/books?path=iex')).body, { path: 'v2/iex', books: {} }, 'a kind without books has none');
  const c = await connect(t, sim.url(CRYPTO), { encoding: 'msgpack' });
  await c.auth();
  await c.request({ action: 'subscribe', orderbooks: ['BTC/USD', 'ETH/USD'], trades: ['SOL/USD'] });
  await post(sim, `/control/rate?value=2000&path=${CRYPTO}`);
  await c.until(() => c.messages.filter((m) => m.T === 'o').length >= 300, 'three hundred book messages');
  await post(sim, `/control/rate?value=0&path=${CRYPTO}`);
  // A reply sent after the rate went to 0 comes after every update sent before it.
  await c.request({ action: 'subscribe', quotes: ['ETH/USD'] });
  const kept: Record<string, { b: Map<number, number>; a: Map<number, number> }> = {};
  for (const m of c.messages.filter((m) => m.T === 'o')) {
    const book = (kept[m.S as string] ??= { b: new Map(), a: new Map() });
    if (m.r === true) {
      book.b.clear();
      book.a.clear();
    }
    for (const side of ['b', 'a'] as const) {
      for (const level of m[side] as { p: number; s: number }[]) {
        if (level.s === 0) book[side].delete(level.p);
        else book[side].set(level.p, level.s);
      }
    }
  }
  const vendor = (await get(sim, `/books?path=${CRYPTO}`)).body.books as Record<string, { b: { p: number; s: number }[]; a: { p: number; s: number }[] }>;
  t.same(Object.keys(vendor).sort(), ['BTC/USD', 'ETH/USD'], 'a book per pair with order books (trades alone build none)');
  for (const [symbol, book] of Object.entries(kept)) {
    const levels = (side: Map<number, number>, desc: boolean) => [...side.entries()].sort(([x], [y]) => (desc ? y - x : x - y)).map(([p, s]) => ({ p, s }));
    t.same({ b: levels(book.b, true), a: levels(book.a, false) }, vendor[symbol], `${symbol}: the rebuilt book is the vendor’s, best levels first`);
  }
  t.equal(sim.rate, 0, 'the common rate is untouched');
});
