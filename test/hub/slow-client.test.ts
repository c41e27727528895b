import t from 'tap';
import { startGateway } from '../helpers/gateway.js';
import type { Message, StreamClient } from '../helpers/stream-client.js';
import { eventually } from '../helpers/wait.js';

function pause(client: StreamClient): void {
  (client.socket as unknown as { _socket: { pause(): void } })._socket.pause();
}
function resume(client: StreamClient): void {
  (client.socket as unknown as { _socket: { resume(): void } })._socket.resume();
}

/** Trade ids of `symbol` in arrival order. */
const tradeIds = (messages: Message[], symbol: string): bigint[] => messages.filter((m) => m.T === 't' && m.S === symbol).map((m) => BigInt(m.i as bigint));

t.test('a stalled client is conflated, then closed with 407, while a healthy one keeps every trade', async (t) => {
  const gw = await startGateway(t, {
    SIMULATOR_RATE: '30000',
    CLIENT_HIGH_WATER_BYTES: '65536',
    CLIENT_MAX_BUFFER_BYTES: '4194304',
  });
  const hub = gw.gateway.defaultStream.hub;
  const healthy = await gw.connect({ encoding: 'msgpack' });
  const stalled = await gw.connect();
  await healthy.auth('healthy', 's');
  await stalled.auth('stalled', 's');
  // Mostly trades, which are never conflated: the lagging client's backlog has to grow.
  const request = { action: 'subscribe', trades: ['AAPL', 'MSFT', 'NVDA', 'TSLA'], quotes: ['AAPL', 'MSFT'] } as const;
  await healthy.request({ ...request, trades: [...request.trades], quotes: [...request.quotes] });
  await stalled.request({ ...request, trades: [...request.trades], quotes: [...request.quotes] });
  // Stops reading at once: kernel buffers fill, then the gateway's. A client that read for a
  // while first lets Linux grow its receive buffer (tcp_rmem allows 32 MiB here), which a
  // loaded machine then takes minutes to fill.
  pause(stalled);
  await eventually(() => tradeIds(healthy.messages, 'AAPL').length > 20, 'trades flowing');
  await eventually(() => hub.stats.conflated > 0, 'quotes conflated for the lagging client', 60_000);
  // Kernel socket buffers absorb a few MB first; on a loaded machine that takes a while.
  await eventually(() => hub.stats.slowClientCloses === 1, 'the lagging client closed as slow', 60_000);
  const healthyAtClose = healthy.messages.length;
  // It reads again at once: the gateway cuts a client that has not read its close within 2 s.
  resume(stalled);
  t.equal(await stalled.closed, 1008, 'closed by the gateway');
  t.same(stalled.messages.find((m) => m.T === 'error'), { T: 'error', code: 407, msg: 'slow client' }, 'and told why, once it read again');
  await eventually(() => healthy.messages.length > healthyAtClose + 500, 'the healthy client still receiving');

  for (const symbol of ['AAPL', 'MSFT', 'NVDA', 'TSLA']) {
    const ids = tradeIds(healthy.messages, symbol);
    const gaps = ids.filter((id, i) => i > 0 && id !== ids[i - 1]! + 1n && id !== ids[i - 1]! + 2n);
    // Ids run one by one per symbol; a correction takes an id too, so +2 is a correction in between.
    t.same(gaps, [], `${symbol}: ${ids.length} trades with no gap`);
  }
  const stalledAapl = tradeIds(stalled.messages, 'AAPL');
  t.ok(
    stalledAapl.every((id, i) => i === 0 || id === stalledAapl[i - 1]! + 1n || id === stalledAapl[i - 1]! + 2n),
    `the stalled client got no trade out of order or skipped before its close (${stalledAapl.length} trades)`,
  );
  t.equal(healthy.closeCode, undefined);
  t.equal(gw.gateway.defaultStream.link.state, 'live', 'the vendor link never noticed');
});

t.test('a client stalled on quotes holds about its limit however long it stalls, shared batches included (issue #19)', async (t) => {
  const max = 262_144;
  const gw = await startGateway(t, {
    SIMULATOR_RATE: '20000',
    CLIENT_HIGH_WATER_BYTES: '65536',
    CLIENT_MAX_BUFFER_BYTES: String(max),
  });
  const hub = gw.gateway.defaultStream.hub;
  const healthy = await gw.connect();
  const stalled = await gw.connect();
  await healthy.auth('healthy', 's');
  await stalled.auth('stalled', 's');
  const session = hub.sessions.reduce((a, b) => (b.id > a.id ? b : a)); // the stalled one: the last to connect
  // Both JSON and holding the same quotes: each turn is one batch the two share, and the vendor
  // sends nothing else, so the stalled client's backlog holds shared batches.
  // 200 symbols: a turn, conflated, still has bytes to fill the kernel's buffers with soon, and
  // what the client holds after conflation (~20 KB) is well within its limit.
  const symbols = Array.from({ length: 200 }, (_, i) => `S${String(i).padStart(3, '0')}`);
  await healthy.request({ action: 'subscribe', quotes: [...symbols] });
  await stalled.request({ action: 'subscribe', quotes: [...symbols] });
  pause(stalled); // at once, before its receive buffer grows (see above)
  await eventually(() => healthy.messages.filter((m) => m.T === 'q').length > 20, 'quotes flowing');

  let peakBuffered = 0;
  let peakRetained = 0;
  // Its kernel buffers full: a write stays unfinished, and turns wait in its backlog.
  await eventually(() => session.queue.hasBacklog && session.queue.bufferedBytes > 0, 'the stalled client lagging', 60_000);
  const lagSince = hub.stats.messagesIn;
  // Until the vendor has sent it quotes worth many times its limit since it lagged (a JSON quote
  // is ~100 bytes): without compaction it held them all.
  await eventually(
    () => {
      peakBuffered = Math.max(peakBuffered, session.queue.bufferedBytes);
      peakRetained = Math.max(peakRetained, session.queue.retainedBytes);
      return hub.stats.messagesIn - lagSince > (10 * max) / 100;
    },
    'quotes worth 10 times the limit sent since it lagged',
    120_000,
  );
  t.equal(hub.stats.slowClientCloses, 0, 'quotes conflate: the stalled client is never past its limit');
  t.ok(peakBuffered <= 2 * max, `what it holds as queued stays within twice its limit (peak ${peakBuffered} of ${max})`);
  t.ok(peakRetained <= 4 * max, `and the memory it pins — both encodings, shared frames — within four times (peak ${peakRetained})`);
  t.ok(hub.stats.conflated > 0, 'its superseded quotes are conflated');
  gw.simulator!.setRate(0); // what it holds now is all it will get: it can empty it
  resume(stalled);
  await eventually(() => session.queue.bufferedBytes === 0, 'it catches up once it reads', 60_000);
  const quoted = new Set(stalled.messages.filter((m) => m.T === 'q').map((m) => m.S));
  t.same([...quoted].sort(), [...symbols].sort(), 'it has quotes of every symbol it holds');
  t.equal(stalled.closeCode, undefined, 'and was never closed');
});
