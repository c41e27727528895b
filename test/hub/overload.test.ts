import t from 'tap';
import { FakeClock } from '../helpers/fake-clock.js';
import { startGateway } from '../helpers/gateway.js';
import { startSimulator } from '../helpers/simulator.js';
import { hubFor } from '../helpers/stream-hub.js';
import type { Message, StreamClient } from '../helpers/stream-client.js';
import { eventually } from '../helpers/wait.js';

/** Stops reading: the client's kernel buffers fill, then the gateway's. */
function pause(client: StreamClient): void {
  (client.socket as unknown as { _socket: { pause(): void } })._socket.pause();
}
function resume(client: StreamClient): void {
  (client.socket as unknown as { _socket: { resume(): void } })._socket.resume();
}

/** Trade ids of `symbol` in arrival order. */
const tradeIds = (messages: Message[], symbol: string): bigint[] => messages.filter((m) => m.T === 't' && m.S === symbol).map((m) => BigInt(m.i as bigint));

/** Ids run one by one per symbol; a correction takes an id too, so +2 is a correction in between. */
const gaps = (ids: bigint[]): bigint[] => ids.filter((id, i) => i > 0 && id !== ids[i - 1]! + 1n && id !== ids[i - 1]! + 2n);

const SYMBOLS = ['AAPL', 'MSFT', 'NVDA', 'TSLA'];

t.test('under overload: readers keep every trade in order, stalled clients are conflated then closed with 407, the control plane answers', async (t) => {
  // The embedded vendor far faster than three clients that stop reading: their backlogs grow
  // while two readers (one per encoding) keep reading. The stalled ones hold every symbol's
  // trades and quotes and share each turn's batch among themselves; the readers hold four
  // symbols' trades, a sixth of the vendor's traffic, so that they keep up even when this process
  // is short of CPU (the vendor, the gateway and every client run in it; a JSON reader holding
  // what the stalled ones held was once closed with 407 under three test files at a time).
  // An injected clock: a closed client's close grace never runs out while it is paused (it would be cut, 1006).
  const clock = new FakeClock();
  const gw = await startGateway(t, { CLIENT_HIGH_WATER_BYTES: '65536', CLIENT_MAX_BUFFER_BYTES: '2097152' }, clock);
  const hub = gw.gateway.defaultStream.hub;
  const connect = async (encoding: 'json' | 'msgpack', name: string, subscription: { trades: string[]; quotes?: string[] }): Promise<StreamClient> => {
    const client = await gw.connect({ encoding });
    await client.auth(name, 's');
    await client.request({ action: 'subscribe', ...subscription });
    return client;
  };
  const readers = [await connect('msgpack', 'reader1', { trades: [...SYMBOLS] }), await connect('json', 'reader2', { trades: [...SYMBOLS] })];
  const stalledKeys = ['stalled1', 'stalled2', 'stalled3'];
  const everything = (): { trades: string[]; quotes: string[] } => ({ trades: ['*'], quotes: ['*'] });
  const stalled = [await connect('json', 'stalled1', everything()), await connect('json', 'stalled2', everything()), await connect('msgpack', 'stalled3', everything())];
  // The vendor takes a subscription change at most every SUBSCRIBE_MIN_INTERVAL_MS, timed by the
  // injected clock: let it send the stalled clients' `*` after the readers' symbols.
  clock.advance(1000);
  await gw.gateway.defaultStream.link.whenSynced();
  t.ok(gw.gateway.defaultStream.link.acknowledged.has('quotes', '*'), 'the vendor holds every quote');
  gw.simulator!.setRate(30_000);
  await eventually(() => readers.every((r) => tradeIds(r.messages, 'AAPL').length > 20), 'trades flowing');

  for (const client of stalled) pause(client);
  await eventually(() => hub.stats.conflated > 0, 'quotes conflated for the stalled clients', 60_000);

  // The vendor is still pushing 30,000 messages/s and three clients are lagging: probes answer.
  const live = await fetch(`${gw.base}/health/live`);
  t.equal(live.status, 200, '/health/live answers during the overload');
  t.match(await live.json(), { status: 'ok' });
  const health = await fetch(`${gw.base}/health`);
  t.equal(health.status, 200, '/health answers, the vendor link live');
  const metrics = await (await fetch(`${gw.base}/metrics`)).text();
  t.match(metrics, /tickmux_conflated_messages_total\{stream="v2\/iex"\} [1-9]/, 'the conflation shows in /metrics');

  // Lagging alike, they are closed within moments of each other (ws cuts a peer that leaves a
  // close unanswered for 30 s). Then the vendor slows before they read again: decoding their
  // backlogs in this process must not starve the readers while 30,000 messages/s still flow.
  await eventually(
    () => stalledKeys.every((key) => hub.sessions.find((s) => s.key === key)?.closing !== false),
    'every stalled client closed',
    60_000,
  );
  gw.simulator!.setRate(2_000);
  for (const client of stalled) resume(client);
  t.equal(hub.stats.slowClientCloses, stalled.length, 'all of them as slow clients', { closing: hub.sessions.filter((s) => s.closing).map((s) => s.key) });
  const atClose = readers.map((r) => r.messages.length);
  await eventually(() => readers.every((r, i) => r.messages.length > atClose[i]! + 500), 'the readers still receiving');
  t.equal((await fetch(`${gw.base}/health/live`)).status, 200, 'and the process still answers after the closes');

  for (const client of stalled) {
    t.equal(await client.closed, 1008, 'a stalled client is closed by the gateway');
    t.same(client.messages.find((m) => m.T === 'error'), { T: 'error', code: 407, msg: 'slow client' }, 'and told why, once it reads again');
    for (const symbol of SYMBOLS) t.same(gaps(tradeIds(client.messages, symbol)), [], `before its close it got ${symbol}'s trades in order, none skipped`);
  }
  for (const reader of readers) {
    for (const symbol of SYMBOLS) {
      const ids = tradeIds(reader.messages, symbol);
      t.same(gaps(ids), [], `${reader.encoding} reader: ${ids.length} ${symbol} trades, in order, none missing`);
    }
    t.equal(reader.closeCode, undefined, 'a reader is never closed');
  }
  t.equal(gw.gateway.defaultStream.link.state, 'live', 'the vendor link never noticed');
});

t.test('a shutdown does not wait on a client that cannot drain: it is cut once the close grace passes (injected clock)', async (t) => {
  const clock = new FakeClock();
  const gw = await startGateway(t, { CLIENT_HIGH_WATER_BYTES: '65536', CLIENT_MAX_BUFFER_BYTES: '268435456' }, clock);
  const hub = gw.gateway.defaultStream.hub;
  const stuck = await gw.connect({ encoding: 'json' });
  await stuck.auth('stuck', 's');
  await stuck.request({ action: 'subscribe', trades: [...SYMBOLS], quotes: [...SYMBOLS] });
  gw.simulator!.setRate(30_000);
  await eventually(() => tradeIds(stuck.messages, 'AAPL').length > 0, 'data flowing');
  pause(stuck);
  // Its kernel buffers full, what it has not read reaches the high-water mark and a backlog waits
  // behind it: the close frame would queue behind that.
  const lagging = (): boolean => {
    const session = hub.sessions[0];
    return session !== undefined && session.footprint.includes('backlog') && session.queue.bufferedBytes >= 65_536;
  };
  await eventually(lagging, 'the client lagging', 60_000);

  const closing = gw.gateway.closeClients(1001, 'going away');
  clock.advance(2000); // the close grace: past it the connection is cut, answered or not
  await closing;
  t.equal(hub.stats.connected, 0, 'every client gone, the one that never read included');
  resume(stuck);
  t.equal(await stuck.closed, 1006, 'it was cut (no close handshake)');
});

t.test('with the per-turn bounds at their smallest (the vendor paused after every delivery, one client flushed per turn) every client still gets every trade in order', async (t) => {
  const sim = await startSimulator(t, { rate: 0 });
  const f = await hubFor(t, sim, 'v2/iex', 'msgpack', { turnDeliveries: 1, flushSlice: 1 });
  const clients: StreamClient[] = [];
  for (const encoding of ['json', 'msgpack', 'json', 'msgpack'] as const) {
    const client = await f.client({ encoding });
    await client.request({ action: 'subscribe', trades: [...SYMBOLS], quotes: [...SYMBOLS] });
    clients.push(client);
  }
  await f.link.manager.whenSynced();
  sim.setRate(5_000);
  await eventually(() => clients.every((c) => tradeIds(c.messages, 'TSLA').length > 200), 'trades reaching every client', 60_000);
  sim.setRate(0);
  for (const [i, client] of clients.entries()) {
    for (const symbol of SYMBOLS) {
      const ids = tradeIds(client.messages, symbol);
      t.same(gaps(ids), [], `client ${i} (${client.encoding}): ${ids.length} ${symbol} trades, in order, none missing`);
    }
    t.ok(client.messages.some((m) => m.T === 'q'), `client ${i} got quotes too`);
  }
  t.equal(f.link.manager.state, 'live', 'pausing the vendor socket between turns leaves the link live');
});

t.test('a flush slice ends once its time is spent, whatever its count: the rest of the turn goes out in the next event-loop turn, in order (issue #19)', async (t) => {
  // Every reading of this clock finds 6 ms gone (a socket write slowed by the kernel's memory
  // pressure): a 10 ms slice ends after the second client. Its timers never fire.
  let now = Date.UTC(2024, 0, 2, 14, 30);
  const clock = { now: () => (now += 6), nanos: () => BigInt(now) * 1_000_000n, setTimeout: () => 0, clearTimeout: () => {} };
  const sim = await startSimulator(t, { rate: 0 });
  const f = await hubFor(t, sim, 'v2/iex', 'msgpack', { flushSliceMs: 10, clock });
  let pauses = 0;
  const pauseIntake = f.link.manager.pauseIntake.bind(f.link.manager);
  f.link.manager.pauseIntake = () => {
    pauses += 1;
    pauseIntake();
  };
  const clients: StreamClient[] = [];
  for (const encoding of ['json', 'msgpack', 'json', 'msgpack', 'json'] as const) {
    const client = await f.client({ encoding });
    await client.request({ action: 'subscribe', trades: [...SYMBOLS] });
    clients.push(client);
  }
  await f.link.manager.whenSynced();
  sim.setRate(2_000);
  await eventually(() => clients.every((c) => tradeIds(c.messages, 'TSLA').length > 100), 'trades reaching every client', 60_000);
  sim.setRate(0);
  t.ok(pauses > 0, `turns of five clients went out in slices (the vendor paused ${pauses} times meanwhile), though the count bound is 200`);
  for (const [i, client] of clients.entries()) {
    for (const symbol of SYMBOLS) {
      const ids = tradeIds(client.messages, symbol);
      t.same(gaps(ids), [], `client ${i} (${client.encoding}): ${ids.length} ${symbol} trades, in order, none missing`);
    }
  }
});
