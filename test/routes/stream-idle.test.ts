import type { Socket } from 'node:net';
import t from 'tap';
import type { WebSocket } from 'ws';
import { ChannelSet, SymbolCount } from '../../src/protocol/channel-set.js';
import { startGateway } from '../helpers/gateway.js';

// Issue #11: an idle authenticated connection allocates nothing for subscriptions it does not
// hold, and keeps nothing of its upgrade request. Checked by structure, not by measuring memory.

t.test('an idle authenticated session holds no subscription structures, and lets them go when its set empties again', async (t) => {
  const gw = await startGateway(t);
  const json = await gw.connect();
  const msgpack = await gw.connect({ encoding: 'msgpack' });
  await json.auth();
  await msgpack.auth();
  // An empty subscribe (as the bench's idle clients send) is answered with the shared empty reply.
  await msgpack.request({ action: 'subscribe' });
  const sessions = gw.gateway.defaultStream.hub.sessions;
  t.equal(sessions.length, 2);
  for (const session of sessions) t.same(session.footprint, [], `the ${session.encoding} session holds nothing`);

  t.same((await json.request({ action: 'subscribe', trades: ['AAPL'], quotes: ['MSFT'] })).trades, ['AAPL']);
  const [busy] = sessions.filter((s) => s.encoding === 'json');
  t.same(busy?.footprint, ['set:trades', 'set:quotes', 'symbolCount', 'replyLists'], 'a subscribed session holds what its set needs');
  await json.request({ action: 'unsubscribe', trades: ['AAPL'], quotes: ['MSFT'] });
  t.same(busy?.footprint, [], 'emptied again, it holds nothing');
});

t.test('a connection keeps nothing of its upgrade request: no HTTP response on its socket, only the session listening for errors', async (t) => {
  const gw = await startGateway(t);
  const client = await gw.connect();
  await client.auth();
  const sockets = [...(gw.app.websocketServer.clients as Set<WebSocket>)];
  t.equal(sockets.length, 1);
  const socket = sockets[0] as WebSocket;
  t.equal(socket.listenerCount('error'), 1, "only the session's 'error' listener (none closing over the request)");
  const tcp = (socket as unknown as { _socket: Socket & { _httpMessage?: unknown } })._socket;
  t.notOk(tcp._httpMessage, 'the routing response is detached from the TCP socket');
  // Still a working connection.
  t.same((await client.request({ action: 'subscribe', trades: ['AAPL'] })).trades, ['AAPL']);
});

t.test('ChannelSet and SymbolCount allocate per channel and per symbol only while they hold one', async (t) => {
  const set = new ChannelSet();
  t.same(set.allocatedChannels, []);
  set.add('trades', 'AAPL');
  set.add('bars', '*');
  t.same(set.allocatedChannels, ['trades', 'bars']);
  set.delete('trades', 'AAPL');
  t.same(set.allocatedChannels, ['bars']);
  t.same(set.symbols('trades'), new Set(), 'an absent channel reads as empty');
  t.notOk(set.has('trades', 'AAPL'));
  t.ok(set.covers('bars', 'MSFT'));
  t.same(new ChannelSet({ trades: [], quotes: ['A'] }).allocatedChannels, ['quotes'], 'empty lists allocate nothing');

  const count = new SymbolCount();
  t.notOk(count.allocated);
  count.add('*');
  t.notOk(count.allocated, '`*` is not counted');
  count.add('A');
  count.add('A');
  count.add('B');
  count.delete('A');
  count.delete('B');
  t.equal(count.size, 1);
  count.delete('A');
  t.equal(count.size, 0);
  t.notOk(count.allocated, 'the last symbol gone, the Map is too');
});
