/**
 * Crypto order books as reading clients see them (PROTOCOL-STREAMS.md §1.3), through a real hub
 * and vendor link against the simulator's market: every reset and update reaches a holder intact
 * and in order; a client that joins a book the vendor already streams is given it as a reset
 * before any update; after a vendor drop, books come from the vendor's fresh resets only.
 */
import { streaming } from '@alpacahq/alpaca-trade-api';
import t, { type Test } from 'tap';
import { decodeFrame, type Encoding, joinFrame } from '../../src/protocol/frame.js';
import { CRYPTO } from '../../src/protocol/streams.js';
import { Timestamp } from '../../src/protocol/timestamp.js';
import type { VendorSimulator } from '../../src/simulator/index.js';
import { startSimulator } from '../helpers/simulator.js';
import type { Message, StreamClient } from '../helpers/stream-client.js';
import { hubFor, type StreamFixture } from '../helpers/stream-hub.js';
import { eventually } from '../helpers/wait.js';

const CRYPTO_PATH = 'v1beta3/crypto/us';
const BOOK = 'BTC/USD';
/** A trade no flow produces (flow ids start near 2^53): once a client has it, it has everything sent before it. */
const MARKER = { T: 't', S: BOOK, p: 1, s: 1, t: new Timestamp(1704205800, 0), i: 42, tks: 'B' };

type Level = { p: number; s: number };
interface Levels {
  b: Level[];
  a: Level[];
}

/** The order-book messages of `symbol` among `messages`, in order. */
const booksOf = (messages: readonly Message[], symbol = BOOK): Message[] => messages.filter((m) => m.T === 'o' && m.S === symbol);

/** The book a client holds after applying `messages` as the SDKs do: a reset replaces it, an update sets levels, s: 0 removes one. */
function replay(messages: readonly Message[]): Levels {
  const bids = new Map<number, number>();
  const asks = new Map<number, number>();
  for (const m of messages) {
    if (m.r === true) {
      bids.clear();
      asks.clear();
    }
    for (const [side, levels] of [[bids, m.b], [asks, m.a]] as const) {
      for (const { p, s } of levels as Level[]) {
        if (s === 0) side.delete(p);
        else side.set(p, s);
      }
    }
  }
  const sorted = (side: Map<number, number>, sign: number): Level[] => [...side].sort(([x], [y]) => sign * (x - y)).map(([p, s]) => ({ p, s }));
  return { b: sorted(bids, -1), a: sorted(asks, 1) };
}

/** What the vendor sent the hub, decoded. */
function vendorMessages(f: StreamFixture): Message[] {
  const encoding = f.link.manager.encoding;
  return decodeFrame(joinFrame(f.vendor, encoding), encoding, CRYPTO) as Message[];
}

/** The messages from the last reset on (after a restore: what the new connection brought). */
function fromLastReset(books: readonly Message[]): Message[] {
  const resets = books.flatMap((m, i) => (m.r === true ? [i] : []));
  return books.slice(resets.at(-1));
}

const compareTimes = (x: unknown, y: unknown): number => {
  const [a, b] = [x as Timestamp, y as Timestamp];
  return a.seconds - b.seconds || a.nanoseconds - b.nanoseconds;
};

/**
 * A client that joined `reader`'s book later holds exactly what the reader held from some point
 * on: a reset equal to the reader's book at that point, stamped with the `t` of the reader's last
 * message before it, then every later update the reader got, and nothing else.
 */
function assertJoined(t: Test, reader: readonly Message[], late: readonly Message[], name: string): void {
  const [reset, ...updates] = late;
  t.equal(reset?.r, true, `${name}: its first book message is a reset`);
  t.ok(updates.every((m) => m.r === undefined), `${name}: then updates only`);
  const joinedAt = reader.length - updates.length;
  t.ok(joinedAt >= 1, `${name}: joined after the reader had a book`);
  t.same(updates, reader.slice(joinedAt), `${name}: every update the reader got after it joined, in order`);
  t.same({ b: reset!.b, a: reset!.a }, replay(reader.slice(0, joinedAt)), `${name}: the reset is the reader's book when it joined, bids best first, asks best first`);
  t.same(reset!.t, reader[joinedAt - 1]!.t, `${name}: its t is that of the last message in the book`);
  if (updates[0] !== undefined) t.ok(compareTimes(reset!.t, updates[0].t) <= 0, `${name}: and no later than the next update`);
}

/** Stops the market's flow and waits until each client has everything the vendor sent before that. */
async function quiesce(sim: VendorSimulator, f: StreamFixture, clients: readonly StreamClient[]): Promise<void> {
  sim.setRate(0);
  await f.link.manager.whenSynced();
  sim.publish([MARKER], CRYPTO_PATH);
  for (const c of clients) await c.waitFor((m) => m.T === 't' && m.i === MARKER.i, 'the marker trade');
}

for (const upstream of ['msgpack', 'json'] as const) {
  const other: Encoding = upstream === 'msgpack' ? 'json' : 'msgpack';
  t.test(`${upstream} link: a reading client gets every reset and update in order; late JSON and msgpack subscribers start from a reset and end with its book`, async (t) => {
    const sim = await startSimulator(t, { rate: 0 });
    const f = await hubFor(t, sim, CRYPTO_PATH, upstream);
    const reader = await f.client({ encoding: other });
    await reader.request({ action: 'subscribe', trades: [BOOK], orderbooks: [BOOK, 'ETH/USD'] });
    sim.setRate(2000);
    await reader.until(() => booksOf(reader.messages).length >= 30, 'the vendor’s reset and updates');

    const late: Record<Encoding, StreamClient> = { json: await f.client(), msgpack: await f.client({ encoding: 'msgpack' }) };
    for (const encoding of [upstream, other]) {
      const c = late[encoding];
      await c.request({ action: 'subscribe', trades: [BOOK], orderbooks: [BOOK] });
      await c.until(() => booksOf(c.messages).length >= 20, 'the late subscriber’s reset and updates');
    }
    await quiesce(sim, f, [reader, late.json, late.msgpack]);

    const vendor = booksOf(vendorMessages(f));
    const read = booksOf(reader.messages);
    t.equal(vendor[0]?.r, true, 'the vendor sent its reset for the new subscription');
    t.same(read, vendor, 'the reader got every reset and update the vendor sent for the book, intact and in order');
    t.same(booksOf(reader.messages, 'ETH/USD'), booksOf(vendorMessages(f), 'ETH/USD'), 'and for its other book');
    const book = replay(vendor);
    t.ok(book.b.length > 0 && book.a.length > 0, 'a book with both sides');
    t.same(replay(read), book, 'the reader’s book is the vendor’s');
    for (const encoding of [upstream, other]) {
      const c = late[encoding];
      const name = `${encoding} late subscriber`;
      const books = booksOf(c.messages);
      t.equal(c.messages.filter((m) => m.T === 'o').length, books.length, `${name}: only the book it asked for`);
      const replyAt = c.messages.findIndex((m) => m.T === 'subscription');
      t.ok(c.messages.findIndex((m) => m.T === 'o') > replyAt, `${name}: the reset follows the subscription reply`);
      assertJoined(t, read, books, name);
      t.same(replay(books), book, `${name}: its book is the reader’s at the end`);
      t.ok(books[0]!.t instanceof Timestamp, `${name}: t is a timestamp in its encoding`);
    }
    const text = late.json.raw.map((r) => r.data.toString()).find((s) => s.includes('"r":true'));
    t.match(text, /"T":"o","S":"BTC\/USD","t":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z","b":\[\{"p":[\d.]+,"s":[\d.e-]+\}/, 'JSON: the vendor’s key order, RFC 3339 t');
  });
}

t.test('after a vendor drop a book comes from the vendor’s fresh reset: nothing stale for a client joining during the outage or after it', async (t) => {
  const sim = await startSimulator(t, { rate: 0 });
  const f = await hubFor(t, sim, CRYPTO_PATH);
  const reader = await f.client();
  await reader.request({ action: 'subscribe', trades: [BOOK], orderbooks: [BOOK] });
  sim.setRate(2000);
  await reader.until(() => booksOf(reader.messages).length >= 20, 'books before the drop');

  const from = f.link.states.length;
  sim.dropAll({ terminate: true });
  await f.link.reach('backoff', from);
  const during = await f.client({ encoding: 'msgpack' });
  await during.request({ action: 'subscribe', orderbooks: [BOOK] });
  await during.request({ action: 'subscribe', trades: [BOOK] }); // a reply goes out behind any data queued before it
  t.same(booksOf(during.messages), [], 'a client joining while the link is down gets no book: the hub has none it can vouch for');

  f.link.clock.advance(5_000); // the backoff ends: reconnect, resubscribe, the vendor's fresh resets
  await f.link.reach('live', from);
  await during.until(() => booksOf(during.messages).length >= 20, 'books after the restore');
  const after = await f.client();
  await after.request({ action: 'subscribe', trades: [BOOK], orderbooks: [BOOK] });
  await after.until(() => booksOf(after.messages).length >= 10, 'the late subscriber’s books');
  await quiesce(sim, f, [reader, during, after]);

  const restored = fromLastReset(booksOf(vendorMessages(f)));
  t.equal(booksOf(vendorMessages(f)).filter((m) => m.r === true).length, 2, 'the vendor sent a reset on each connection');
  t.same(booksOf(during.messages), restored, 'the client that joined during the outage got the vendor’s fresh reset first, then every update');
  t.same(fromLastReset(booksOf(reader.messages)), restored, 'the reader got the same fresh reset and updates');
  assertJoined(t, restored, booksOf(after.messages), 'subscriber after the restore');
  const book = replay(restored);
  for (const c of [reader, during, after]) t.same(replay(booksOf(c.messages)), book, 'every client ends with the vendor’s book');
});

t.test('the SDK’s CryptoDataStream joining a book another client holds starts from a reset and ends with the same book', async (t) => {
  const sim = await startSimulator(t, { rate: 0 });
  const f = await hubFor(t, sim, CRYPTO_PATH, 'json');
  const reader = await f.client();
  await reader.request({ action: 'subscribe', trades: [BOOK], orderbooks: [BOOK] });
  sim.setRate(2000);
  await reader.until(() => booksOf(reader.messages).length >= 20, 'the reader’s books');

  const sdk = new streaming.CryptoDataStream({ url: reader.socket.url, credentials: { keyId: 'sdk', secret: 's' }, reconnect: false });
  t.teardown(() => sdk.disconnect());
  const books: { reset: boolean; bids: { price: number; size: number }[]; asks: { price: number; size: number }[] }[] = [];
  let marker = false;
  sdk.onOrderbook((x) => books.push(x));
  sdk.onTrade((x) => (marker ||= x.idRaw === String(MARKER.i)));
  sdk.subscribeForOrderbooks([BOOK]);
  sdk.subscribeForTrades([BOOK]);
  sdk.connect();
  t.equal(await sdk.waitForAuthentication(10_000), true, 'the SDK authenticates with the hub');
  await eventually(() => books.length >= 20, 'the SDK’s books');
  sim.setRate(0);
  await f.link.manager.whenSynced();
  sim.publish([MARKER], CRYPTO_PATH);
  await reader.waitFor((m) => m.T === 't' && m.i === MARKER.i, 'the marker trade');
  await eventually(() => marker, 'the marker trade at the SDK');

  t.equal(books[0]!.reset, true, 'its first book is a reset');
  t.ok(books.slice(1).every((x) => !x.reset), 'then updates');
  const asWire = books.map((x) => ({ r: x.reset || undefined, b: x.bids.map((l) => ({ p: l.price, s: l.size })), a: x.asks.map((l) => ({ p: l.price, s: l.size })) }));
  t.same(replay(asWire), replay(booksOf(reader.messages)), 'the SDK’s book is the reader’s');
});
