/**
 * A recorded window that spans a vendor drop replays the link's down and up where they happened;
 * `tickmux replay` serves the same tape as the vendor to a whole gateway.
 */
import t, { type Test } from 'tap';
import { Timestamp } from '../../src/protocol/timestamp.js';
import type { MarketMessage } from '../../src/simulator/stream-market.js';
import { nsText } from '../../src/tape/replay-window.js';
import { type GatewayFixture, startGateway } from '../helpers/gateway.js';
import { recordingGateway, taped } from '../helpers/tape.js';
import { spawnNode } from '../helpers/processes.js';
import { type Message, StreamClient } from '../helpers/stream-client.js';

const STOCKS = 'v2/iex';
const data = (messages: readonly Message[]): Message[] => messages.filter((m) => !['success', 'subscription', 'error', 'gateway'].includes(m.T as string));
const trade = (i: number): MarketMessage => ({ T: 't', S: 'AAPL', i: 9007199254740993n + BigInt(i), x: 'V', p: 190 + i, s: i, c: ['@'], t: new Timestamp(1765031400 + i, 999999999 - i), z: 'C' });

/** Records trade 1, a vendor drop, the link back, trade 2; returns the tape folder and the window's start. */
async function recordAcrossADrop(t: Test): Promise<{ gw: GatewayFixture; dir: string; fromNs: bigint; live: StreamClient }> {
  const { gw, dir, live, fromNs } = await recordingGateway(t, { subscribe: { trades: ['AAPL'] }, env: { RETRY_BASE_MS: '10', RETRY_MAX_MS: '20' } });
  const link = gw.gateway.stream(STOCKS)!.link;
  gw.simulator!.publish([trade(1)], STOCKS);
  await live.until(() => data(live.messages).length === 1, 'trade 1 live');
  gw.simulator!.dropAll({ path: STOCKS, terminate: true });
  await new Promise<void>((resolve) => link.once('state', () => resolve()));
  await link.whenLive(10_000);
  await link.whenSynced(10_000);
  gw.simulator!.publish([trade(2)], STOCKS);
  await live.until(() => data(live.messages).length === 2, 'trade 2 live');
  await taped(gw);
  return { gw, dir, fromNs, live };
}

t.test('a window spanning a vendor drop replays upstream_down and upstream_up at their place, with the recorded times', async (t) => {
  const { gw, fromNs, live } = await recordAcrossADrop(t);
  const replay = new StreamClient(gw.url(`from=${nsText(fromNs)}&speed=max&events=1`, `replay/${STOCKS}`));
  t.teardown(() => replay.close());
  await replay.opened();
  await replay.auth('k', 's');
  await replay.request({ action: 'subscribe', trades: ['AAPL'] });
  await replay.waitFor((m) => m.event === 'replay_end', 'replay_end');
  const sequence = replay.messages.filter((m) => m.T === 't' || m.T === 'gateway').map((m) => (m.T === 't' ? `trade ${m.s}` : `${m.event}`));
  t.same(sequence, ['trade 1', 'upstream_down', 'upstream_up', 'trade 2', 'replay_end'], 'the marks between the trades, where they happened');
  const notices = replay.messages.filter((m) => m.T === 'gateway' && m.event !== 'replay_end');
  t.match(notices, [
    { event: 'upstream_down', stream: STOCKS, reason: /vendor closed/ },
    { event: 'upstream_up', stream: STOCKS },
  ]);
  const times = notices.map((m) => Timestamp.parse(m.at as string).toEpochNanos());
  t.ok(times[0]! > fromNs && times[0]! < times[1]!, 'each notice carries its recorded time, in order');
  t.same(data(replay.messages), data(live.messages), 'the trades as the live client got them');

  // From the tape's very start: the link came up once before trade 1, and was never down before it.
  const whole = new StreamClient(gw.url('from=0&speed=max&events=1', `replay/${STOCKS}`));
  t.teardown(() => whole.close());
  await whole.opened();
  await whole.auth('k', 's');
  await whole.request({ action: 'subscribe', trades: ['AAPL'] });
  await whole.waitFor((m) => m.event === 'replay_end', 'replay_end from the start');
  const all = whole.messages.filter((m) => m.T === 't' || m.T === 'gateway').map((m) => (m.T === 't' ? `trade ${m.s}` : `${m.event}`));
  t.same(all, ['upstream_up', 'trade 1', 'upstream_down', 'upstream_up', 'trade 2', 'replay_end'], 'no down notice before the first up');
});

t.test('`tickmux replay` serves the tape as the vendor: a gateway with UPSTREAM_URL pointed at it feeds its clients the recorded trades', async (t) => {
  const { gw, dir, fromNs, live } = await recordAcrossADrop(t);
  await gw.app.close(); // the recording gateway stops; its tape is closed

  const vendor = spawnNode(t, ['dist/src/cli.js', 'replay', '--tape', dir, '--port', '0', '--from', nsText(fromNs), '--speed', 'max']);
  const ready = JSON.parse(await vendor.line(/replay vendor ready/)) as { base: string; paths: string[] };
  t.same(ready.paths, [STOCKS], 'it serves the recorded stream path');
  const downstream = await startGateway(t, { UPSTREAM_URL: ready.base, APCA_API_KEY_ID: 'k', APCA_API_SECRET_KEY: 's', STREAMS: STOCKS });
  await downstream.gateway.stream(STOCKS)!.link.whenLive(10_000);
  const client = await downstream.connect({ encoding: 'msgpack' });
  await client.auth('c', 's');
  await client.request({ action: 'subscribe', trades: ['AAPL'] });
  await client.until(() => data(client.messages).length === 2, 'the two recorded trades through the second gateway');
  t.same(data(client.messages), data(live.messages), 'the trades the recording gateway’s client got live, values equal');
  vendor.child.kill('SIGTERM');
  t.equal(await vendor.exited, 0, 'the replay vendor stops cleanly on SIGTERM');
});

t.test('`tickmux replay` refuses a bad command line in one line', async (t) => {
  const noTape = spawnNode(t, ['dist/src/cli.js', 'replay', '--from', '2026-01-01T00:00:00Z']);
  t.equal(await noTape.exited, 2);
  t.match(noTape.stderr(), /^tickmux: replay needs --tape DIR/);
  const both = spawnNode(t, ['dist/src/cli.js', 'replay', '--tape', t.testdir(), '--nats', 'nats://127.0.0.1:4222', '--from', '0']);
  t.equal(await both.exited, 2);
  t.match(both.stderr(), /^tickmux: replay reads --tape DIR or --nats URL, not both/);
  const badNats = spawnNode(t, ['dist/src/cli.js', 'replay', '--nats', 'http://127.0.0.1:4222', '--from', '0']);
  t.equal(await badNats.exited, 2);
  t.match(badNats.stderr(), /^tickmux: --nats: entry 1 "http:\/\/127.0.0.1:4222" is not a nats:\/\/ or tls:\/\/ URL/);
  const badFrom = spawnNode(t, ['dist/src/cli.js', 'replay', '--tape', t.testdir(), '--from', 'yesterday']);
  t.equal(await badFrom.exited, 2);
  t.match(badFrom.stderr(), /^tickmux: from must be an RFC 3339 time/);
  const empty = spawnNode(t, ['dist/src/cli.js', 'replay', '--tape', t.testdir(), '--from', '0', '--port', '0']);
  t.equal(await empty.exited, 1);
  t.match(empty.stderr(), /nothing is recorded in \//);
});
