import t from 'tap';
import { ClientAuthenticator } from '../../src/hub/client-auth.js';
import { DrainScheduler, OutboundQueue, type QueueCounters, SharedBatch } from '../../src/hub/outbound-queue.js';
import { SubscriptionIndex } from '../../src/hub/subscription-index.js';
import { ChannelSet } from '../../src/protocol/channel-set.js';
import { LastValues } from '../../src/hub/last-values.js';
import { decodeFrame, encodeUnits, joinFrame, type MessageUnit, splitFrame } from '../../src/protocol/frame.js';
import { Timestamp } from '../../src/protocol/timestamp.js';
import { Secret } from '../../src/secret.js';
import { CRYPTO, NEWS, STOCKS, type StreamKind } from '../../src/protocol/streams.js';

const t0 = new Timestamp(1704205800, 1);
const trade = (symbol: string, i: number): MessageUnit => encodeUnits([{ T: 't', S: symbol, i, p: 1.5, s: 1, t: t0 }], 'msgpack')[0]!;
const quote = (symbol: string, bp: number): MessageUnit => encodeUnits([{ T: 'q', S: symbol, bp, ap: bp + 0.01, t: t0 }], 'msgpack')[0]!;

/**
 * A queue over a fake socket whose writes complete only when the test says so. `route` does what
 * the hub does with a vendor message for this client: the last-value cache sees it (and marks the
 * state message it supersedes), then the queue takes it.
 */
function fixture(highWaterBytes: number, maxBufferBytes: number, kind: StreamKind = STOCKS, drains?: DrainScheduler) {
  const values = new LastValues(kind);
  const written: { frame: Buffer }[] = [];
  const unfinished: (() => void)[] = [];
  const counters: QueueCounters = { conflated: 0, messagesOut: 0, bytesOut: 0 };
  let overflowed = 0;
  let heldAtOverflow: number | undefined;
  const write = (frame: Buffer, done: () => void): void => {
    written.push({ frame });
    unfinished.push(done);
  };
  const onOverflow = (held: number): void => {
    overflowed++;
    heldAtOverflow = held;
  };
  const queue = new OutboundQueue('json', write, { highWaterBytes, maxBufferBytes }, onOverflow, counters, drains);
  /** The socket writes out everything it holds (and whatever that lets drain). */
  const complete = (): void => {
    while (unfinished.length > 0) unfinished.shift()!();
  };
  const messages = (): Record<string, unknown>[] => written.flatMap((w) => decodeFrame(w.frame, 'json') as Record<string, unknown>[]);
  const route = (unit: MessageUnit): void => {
    values.store(unit);
    queue.enqueue(unit);
  };
  return { queue, route, written, counters, complete, messages, overflows: () => overflowed, heldAtOverflow: () => heldAtOverflow };
}

t.test('under the high-water mark each flush sends one frame with the whole batch', async (t) => {
  const f = fixture(1 << 20, 8 << 20);
  f.route(trade('A', 1));
  f.route(quote('A', 10));
  f.queue.flush();
  t.equal(f.written.length, 1, 'one frame per flush');
  t.same(f.messages().map((m) => m.T), ['t', 'q']);
  t.equal(f.counters.messagesOut, 2);
});

t.test('a lagging client: quotes conflate to the latest per symbol, trades are all kept, in order', async (t) => {
  const f = fixture(10, 1 << 20); // the first frame puts it over the mark
  f.route(trade('A', 1));
  f.queue.flush();
  const feed = [quote('A', 10), trade('A', 2), quote('B', 20), quote('A', 11), trade('A', 3), quote('A', 12), quote('B', 21)];
  for (const unit of feed) {
    f.route(unit);
    f.queue.flush(); // one turn each
  }
  t.equal(f.written.length, 1, 'nothing more is written while the socket lags');
  f.complete(); // the socket catches up: the backlog drains, skipping what was superseded
  t.equal(f.counters.conflated, 3, 'A: 10 and 11 replaced; B: 20 replaced');
  t.same(
    f.messages().map((m) => `${m.T}${m.S}${m.i ?? m.bp}`),
    ['tA1', 'tA2', 'tA3', 'qA12', 'qB21'],
    'every trade, and only the latest quote of each symbol, at the place of its latest update',
  );
});

t.test('past the hard limit the queue overflows once and stops', async (t) => {
  const f = fixture(10, 300);
  f.route(trade('A', 1));
  f.queue.flush();
  for (let i = 2; i < 20; i++) {
    f.route(trade('A', i));
    f.queue.flush();
  }
  t.equal(f.overflows(), 1);
  const held = f.heldAtOverflow()!;
  t.ok(held > 300 && held < 600, `it reports what the client held past the limit (${held} bytes), not what is left once the queue is emptied`);
  f.route(trade('A', 99));
  f.queue.flush();
  f.complete();
  t.same(f.messages().map((m) => m.i), [1], 'nothing more is sent after the overflow');
});

t.test('a turn larger than the room below the high-water mark is not written whole: its quotes conflate, a stalled quotes client is never past its limit (issue #19)', async (t) => {
  // A loaded gateway's turns grow: a turn of 60 quotes (~4 KiB) for a client with 1 KiB of room
  // and a 2 KiB limit. Written whole on top of what was in flight, it was past the limit at once
  // and the next turn closed the client with 407, though it held one symbol's quotes.
  for (const inFlight of [true, false]) {
    const f = fixture(1024, 2048);
    if (inFlight) {
      f.route(trade('A', 1));
      f.queue.flush(); // in flight, never written out: the client has stopped reading
    }
    const before = f.written.length;
    for (let turn = 0; turn < 3; turn++) {
      for (let i = 0; i < 60; i++) f.route(quote('B', turn * 100 + i));
      f.queue.flush();
    }
    const label = inFlight ? 'with a trade in flight' : 'with nothing in flight';
    t.equal(f.overflows(), 0, `${label}: never past the limit`);
    t.ok(f.queue.bufferedBytes <= 2048, `${label}: it holds ${f.queue.bufferedBytes} bytes, within its limit`);
    const sent = f.written.slice(before).flatMap((w) => decodeFrame(w.frame, 'json') as Record<string, unknown>[]);
    t.same(sent.map((m) => m.bp), [59, 159, 259], `${label}: each turn, only what the client would be sent after conflation goes out`);
    f.complete();
    const quotes = f.messages().filter((m) => m.T === 'q');
    t.equal(quotes.at(-1)!.bp, 259, `${label}: the latest quote is delivered`);
    t.ok(quotes.length < 20, `${label}: the superseded ones are skipped (${quotes.length} of 180 sent)`);
    t.equal(f.counters.conflated, 180 - quotes.length, `${label}: and counted as conflated`);
  }
});

t.test('purge drops queued units an unsubscribe no longer covers', async (t) => {
  const f = fixture(10, 1 << 20);
  f.route(trade('A', 1));
  f.queue.flush();
  f.route(trade('A', 2));
  f.route(trade('B', 3));
  f.queue.flush();
  f.route(trade('A', 4));
  f.queue.purge((u) => u.symbol !== 'A');
  f.queue.flush();
  f.complete();
  t.same(f.messages().map((m) => m.i), [1, 3]);
});

t.test('the index counts holders and the pin; a pair leaves the union when nobody holds it', async (t) => {
  const index = new SubscriptionIndex<string>();
  t.same(index.add('a', new ChannelSet({ trades: ['AAPL', 'MSFT'] }).pairs()).added, [['trades', 'AAPL'], ['trades', 'MSFT']], 'new pairs enter the union');
  t.same(index.add('b', new ChannelSet({ trades: ['AAPL'], quotes: ['*'] }).pairs()).added, [['quotes', '*']], 'a pair already held does not enter again');
  t.same(index.union().toLists().trades, ['AAPL', 'MSFT']);
  t.equal(index.count('trades', 'AAPL'), 2);
  t.equal(index.distinctSymbols, 2, 'explicit symbols across channels, * excluded');
  t.same([...(index.wildcardHolders('quotes') ?? [])], ['b']);
  t.same(index.changePinned(new ChannelSet({ trades: ['NVDA', 'MSFT'] }).pairs(), []).added, [['trades', 'NVDA']], 'pinning a held pair changes nothing upstream');
  t.same(index.remove('a', new ChannelSet({ trades: ['AAPL', 'MSFT'] }).pairs()).removed, [], 'AAPL is still held, MSFT pinned');
  t.ok(index.union().has('trades', 'MSFT'), 'pinned MSFT stays though its last client left');
  t.ok(index.union().has('trades', 'AAPL'), 'b still holds AAPL');
  t.same(index.remove('b', new ChannelSet({ trades: ['AAPL'], quotes: ['*'] }).pairs()).removed, [['trades', 'AAPL'], ['quotes', '*']]);
  t.same(index.union().toLists().trades.sort(), ['MSFT', 'NVDA'], 'only the pin is left');
  t.same(index.remove('b', new ChannelSet({ trades: ['AAPL'] }).pairs()).removed, [], 'removing what a client does not hold is a no-op');
  t.same(index.changePinned([], new ChannelSet({ trades: ['NVDA', 'MSFT'] }).pairs()).removed, [['trades', 'NVDA'], ['trades', 'MSFT']]);
  t.ok(index.union().isEmpty, 'unpinned, nothing is desired');
  t.equal(index.distinctSymbols, 0);
  t.same(index.clientUnion().toLists().trades, []);
});

t.test('client credentials are checked against CLIENT_KEYS; open mode takes any non-empty pair', async (t) => {
  const keyed = new ClientAuthenticator(new Map([['alice', new Secret('s3cret')]]));
  t.ok(keyed.check('alice', 's3cret'));
  t.notOk(keyed.check('alice', 's3cre'), 'a prefix is not enough');
  t.notOk(keyed.check('alice', 's3cret '), 'nor a longer one');
  t.notOk(keyed.check('bob', 's3cret'), 'an unknown key fails');
  t.notOk(keyed.check('', ''), 'empty fails');
  const open = new ClientAuthenticator(undefined);
  t.ok(open.open);
  t.ok(open.check('any', 'thing'));
  t.notOk(open.check('any', ''), 'but not an empty secret');
});

t.test('clients that lag alike drain into one shared frame, not one copy each', async (t) => {
  const a = fixture(10, 1 << 20);
  const b = fixture(10, 1 << 20);
  const units = [trade('A', 1), quote('A', 10), trade('A', 2), quote('A', 11)];
  for (const f of [a, b]) {
    f.route(trade('Z', 0));
    f.queue.flush(); // over the mark from here on
    for (const unit of units) {
      f.route(unit);
      f.queue.flush();
    }
    f.complete();
  }
  const drainedA = a.written.at(-1)!.frame;
  const drainedB = b.written.at(-1)!.frame;
  t.equal(drainedA, drainedB, 'the same Buffer object');
  t.same(a.messages().slice(1).map((m) => `${m.T}${m.i ?? m.bp}`), ['t1', 't2', 'q11'], 'and still every trade and the latest quote');
});

t.test('control frames count against the hard limit like data: a client that never reads them overflows', async (t) => {
  const f = fixture(10, 300);
  for (let i = 0; i < 5; i++) f.queue.sendControl(Buffer.alloc(100, 0x20));
  t.equal(f.overflows(), 1, 'the fourth 100-byte reply passed 300 unwritten bytes (before: replies were never counted)');
  t.equal(f.written.length, 4, 'nothing is sent after the overflow');
});

/** Units cut out of one vendor frame, as the link hands them on. */
function unitsOfOneFrame(): { frame: Buffer; units: MessageUnit[] } {
  const frame = joinFrame(
    Array.from({ length: 50 }, (_, i) => (i % 2 === 0 ? trade(`S${i}`, i) : quote(`S${i}`, i))),
    'msgpack',
  );
  return { frame, units: splitFrame(frame, 'msgpack') };
}

const ownsItsBytes = (unit: MessageUnit, frame: Buffer): boolean => {
  const bytes = unit.encoded('msgpack');
  return bytes.buffer !== frame.buffer && bytes.byteLength === bytes.buffer.byteLength;
};

t.test('the last-value cache keeps copies of its messages, never the vendor frame they came in', async (t) => {
  const { frame, units } = unitsOfOneFrame();
  const values = new LastValues();
  for (const unit of units) values.store(unit);
  values.store(splitFrame(frame, 'msgpack')[0]!); // a newer S0 trade replaces the first within the turn
  values.settle(); // the end of the fan-out turn
  const kept = [...values.get('trades', '*'), ...values.get('quotes', '*')];
  t.equal(kept.length, 50);
  t.ok(kept.every((unit) => ownsItsBytes(unit, frame)), 'each cached message has an allocation of its own size');
  t.notOk(ownsItsBytes(units[0]!, frame), 'the replaced one was never copied');
  t.same(decodeFrame(joinFrame(kept.slice(0, 1), 'msgpack'), 'msgpack'), decodeFrame(joinFrame(units.slice(0, 1), 'msgpack'), 'msgpack'), 'same bytes');
});

t.test('a lagging client’s backlog keeps copies of its messages, never the vendor frame', async (t) => {
  const { frame, units } = unitsOfOneFrame();
  const f = fixture(10, 1 << 20);
  f.route(trade('A', 1));
  f.queue.flush(); // over the mark: what follows waits in the backlog
  for (const unit of units) f.route(unit);
  f.queue.flush();
  t.ok(units.every((unit) => ownsItsBytes(unit, frame)), 'backlogged units own their bytes');
  f.complete();
  t.equal(f.messages().length, 51, 'and all of them are delivered');
});

t.test('a lagging crypto client: every order-book update is kept in order, crypto quotes still conflate', async (t) => {
  const f = fixture(10, 1 << 20, CRYPTO);
  const book = (n: number, reset = false): MessageUnit =>
    encodeUnits([{ T: 'o', S: 'BTC/USD', t: t0, b: [{ p: 100 + n, s: n }], a: [], ...(reset ? { r: true } : {}) }], 'msgpack', CRYPTO)[0]!;
  const cryptoQuote = (bp: number): MessageUnit => encodeUnits([{ T: 'q', S: 'BTC/USD', bp, bs: 1.5, ap: bp + 1, as: 2.5, t: t0 }], 'msgpack', CRYPTO)[0]!;
  f.route(book(0, true));
  f.queue.flush();
  for (const unit of [book(1), cryptoQuote(10), book(2), cryptoQuote(11), book(3)]) {
    f.route(unit);
    f.queue.flush();
  }
  f.complete();
  t.equal(f.counters.conflated, 1, 'one quote replaced, no book update');
  t.same(
    f.messages().map((m) => (m.T === 'o' ? `o${(m.b as { p: number }[])[0]!.p}` : `q${m.bp}`)),
    ['o100', 'o101', 'o102', 'q11', 'o103'],
    'the books in arrival order, the latest quote at the place of its latest update',
  );
});

t.test('a lagging news client keeps every item: news is never conflated', async (t) => {
  const f = fixture(10, 1 << 20);
  const item = (id: number): MessageUnit => encodeUnits([{ T: 'n', id, headline: 'h', symbols: ['AAPL'] }], 'msgpack', NEWS)[0]!;
  for (let id = 1; id <= 4; id++) {
    f.route(item(id));
    f.queue.flush();
  }
  f.complete();
  t.same(f.messages().map((m) => m.id), [1, 2, 3, 4]);
  t.equal(f.counters.conflated, 0);
});

t.test('the last-value cache of a kind keeps that kind’s types: crypto trades yes, order books and news never', async (t) => {
  const crypto = new LastValues(CRYPTO);
  const [tr, ob] = encodeUnits([{ T: 't', S: 'BTC/USD', p: 1, s: 0.5, t: t0, i: 1 }, { T: 'o', S: 'BTC/USD', t: t0, b: [], a: [] }], 'msgpack', CRYPTO);
  crypto.store(tr!);
  crypto.store(ob!);
  t.same(crypto.get('trades', 'BTC/USD'), [tr]);
  t.same(crypto.get('orderbooks', 'BTC/USD'), [], 'a book update is no book');
  const news = new LastValues(NEWS);
  news.store(encodeUnits([{ T: 'n', id: 1, symbols: ['AAPL'] }], 'msgpack', NEWS)[0]!);
  t.equal(news.size, 0);
});

t.test('lagging clients drain a bounded number of bytes per event-loop turn, and every one of them drains in the end', async (t) => {
  const drains = new DrainScheduler(1); // one client's drain per turn
  const clients = [fixture(10, 1 << 20, STOCKS, drains), fixture(10, 1 << 20, STOCKS, drains), fixture(10, 1 << 20, STOCKS, drains)];
  const turns = [[trade('A', 1)], [trade('A', 2), quote('A', 10)], [trade('A', 3), quote('A', 11)]];
  for (const units of turns) {
    // One turn of a broadcast: every client queues the same batch.
    for (const c of clients) for (const unit of units) c.route(unit);
    const shared = new SharedBatch(units, 'json');
    for (const c of clients) c.queue.flush(shared);
  }
  for (const c of clients) c.complete(); // every socket has room at once
  const drained = (): number => clients.filter((c) => c.written.length > 1).length;
  t.equal(drained(), 0, 'nothing drains inside the write callbacks');
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(drained(), 1, 'one turn, one client: the budget is spent');
  for (let i = 0; i < 4; i++) await new Promise((resolve) => setImmediate(resolve));
  t.equal(drained(), 3, 'the others in the next turns');
  for (const c of clients) t.same(c.messages().map((m) => `${m.T}${m.i ?? m.bp}`), ['t1', 't2', 't3', 'q11'], 'each: every trade, the latest quote');
  t.equal(clients[0]!.written.at(-1)!.frame, clients[2]!.written.at(-1)!.frame, 'and the drained frame is one Buffer for all');
});

t.test('lagging clients drain for a bounded time per event-loop turn, whatever the bytes allow', async (t) => {
  let now = 0;
  // Each reading of the clock finds 6 ms gone: the 10 ms slice ends after the second client.
  const drains = new DrainScheduler(1 << 30, () => (now += 6), 10);
  const clients = [fixture(10, 1 << 20, STOCKS, drains), fixture(10, 1 << 20, STOCKS, drains), fixture(10, 1 << 20, STOCKS, drains)];
  for (const units of [[trade('A', 1)], [trade('A', 2)]]) {
    for (const c of clients) for (const unit of units) c.route(unit);
    const shared = new SharedBatch(units, 'json');
    for (const c of clients) c.queue.flush(shared);
  }
  for (const c of clients) c.complete();
  const drained = (): number => clients.filter((c) => c.written.length > 1).length;
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(drained(), 2, 'the slice ran out after two clients');
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(drained(), 3, 'the third drains first in the next turn');
  for (const c of clients) t.same(c.messages().map((m) => `${m.T}${m.i}`), ['t1', 't2'], 'each: every trade, in order');
});

t.test('whole frames join the turn’s batch in order, are refused while the client lags, and are cut apart again by a purge', async (t) => {
  const f = fixture(1 << 20, 8 << 20);
  const whole = (units: MessageUnit[]): Buffer => joinFrame(units, 'json');
  f.route(trade('A', 1));
  t.equal(f.queue.enqueueFrame(whole([trade('A', 2), quote('B', 20)]), 2, STOCKS), true, 'taken while the client keeps up');
  f.route(trade('A', 3));
  t.equal(f.queue.enqueueFrame(whole([trade('A', 4)]), 1, STOCKS), true);
  t.equal(f.written.length, 0, 'nothing is sent before the flush');
  f.queue.flush();
  t.equal(f.written.length, 1, 'the turn goes out as one frame');
  t.same(f.messages().map((m) => `${m.T}${m.S}${m.i ?? m.bp}`), ['tA1', 'tA2', 'qB20', 'tA3', 'tA4'], 'units and whole frames in the order they came');
  t.equal(f.counters.messagesOut, 5, 'every message counted');

  t.equal(f.queue.enqueueFrame(whole([trade('A', 5), trade('B', 6)]), 2, STOCKS), true);
  f.route(trade('B', 7));
  f.queue.purge((unit) => unit.symbol !== 'B'); // an unsubscribe from B
  f.queue.flush();
  t.same(f.messages().slice(5).map((m) => m.i), [5], 'a purge reaches into a whole frame');

  const lagging = fixture(10, 1 << 20);
  lagging.route(trade('A', 1));
  lagging.queue.flush(); // over the mark
  t.equal(lagging.queue.enqueueFrame(whole([trade('A', 2)]), 1, STOCKS), false, 'refused: a lagging client’s messages are queued one by one');
});

t.test('a client stalled on quotes holds about its limit, not every quote since it stopped (issue #19)', async (t) => {
  const max = 64 * 1024;
  const f = fixture(10, max);
  f.route(trade('A', 0));
  f.queue.flush(); // over the mark; the socket never writes again
  const symbols = Array.from({ length: 20 }, (_, i) => `S${i}`);
  let fed = 0;
  let peakBuffered = 0;
  let peakRetained = 0;
  for (let turn = 0; turn < 400; turn++) {
    for (let k = 0; k < 50; k++) {
      const unit = quote(symbols[(turn * 50 + k) % symbols.length]!, turn + k / 100);
      f.route(unit);
      fed += unit.byteLength('json');
    }
    f.queue.flush();
    if (turn % 10 === 9) {
      peakBuffered = Math.max(peakBuffered, f.queue.bufferedBytes);
      peakRetained = Math.max(peakRetained, f.queue.retainedBytes);
    }
  }
  t.ok(fed > 10 * max, `the vendor sent ${fed} bytes of quotes meanwhile`);
  t.equal(f.overflows(), 0, 'quotes conflate: never past the limit');
  t.ok(peakBuffered <= 2 * max, `what it holds as queued stays within twice its limit (peak ${peakBuffered} of ${max})`);
  t.ok(peakRetained <= 4 * max, `and the memory behind it, in both encodings, within four times (peak ${peakRetained})`);
  f.complete();
  t.equal(f.counters.conflated + 20, 400 * 50, 'every quote but the latest of each symbol counted as conflated');
  t.same(
    f.messages().slice(1).map((m) => m.S).sort(),
    [...symbols].sort(),
    'once it reads: the latest quote of each symbol',
  );
});

t.test('clients that lag alike drop superseded quotes from the batches they share, and still drain alike', async (t) => {
  const drains = new DrainScheduler();
  const max = 4096;
  const clients = [fixture(10, max, STOCKS, drains), fixture(10, max, STOCKS, drains)];
  for (const c of clients) {
    c.route(trade('Z', 0));
    c.queue.flush(); // over the mark from here on
  }
  const symbols = ['A', 'B', 'C', 'D'];
  let fed = 0;
  for (let turn = 1; turn <= 300; turn++) {
    drains.turn = turn; // the hub counts its turns
    const units = symbols.map((symbol) => quote(symbol, turn));
    for (const c of clients) for (const unit of units) c.route(unit);
    fed += units.reduce((sum, unit) => sum + unit.byteLength('json'), 0);
    const shared = new SharedBatch(units, 'json');
    for (const c of clients) c.queue.flush(shared);
  }
  t.ok(fed > 20 * max, `${fed} bytes of quotes went by`);
  for (const c of clients) {
    t.equal(c.overflows(), 0);
    t.ok(c.queue.bufferedBytes <= 2 * max, `held as queued: ${c.queue.bufferedBytes} of ${max}`);
  }
  for (const c of clients) c.complete();
  await new Promise((resolve) => setImmediate(resolve));
  for (const c of clients) {
    t.same(c.messages().slice(1).map((m) => `${m.S}${m.bp}`).sort(), symbols.map((s) => `${s}300`), 'the latest quote of each symbol, and nothing older');
    t.equal(c.counters.conflated, 300 * 4 - 4);
  }
  t.equal(clients[0]!.written.at(-1)!.frame, clients[1]!.written.at(-1)!.frame, 'one drained frame for both');
});
