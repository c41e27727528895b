/**
 * Never at the clients' expense (DESIGN.md §12): a disk that refuses the tape's writes leaves
 * every client's data untouched; the gateway stays healthy, says the tape is degraded, and
 * recording resumes by itself with one gap mark for the outage.
 */
import t from 'tap';
import { Timestamp } from '../../src/protocol/timestamp.js';
import type { MarketMessage } from '../../src/simulator/stream-market.js';
import { flakyDisk } from '../helpers/flaky-disk.js';
import { startGateway } from '../helpers/gateway.js';
import type { Message } from '../helpers/stream-client.js';
import { eventually } from '../helpers/wait.js';

const trades = (from: number, count: number): MarketMessage[] =>
  Array.from({ length: count }, (_, k) => ({ T: 't', S: 'AAPL', i: 9007199254740993n + BigInt(from + k), x: 'V', p: 100, s: from + k, c: ['@'], t: new Timestamp(1765031400, from + k), z: 'C' }));
const data = (messages: readonly Message[]): Message[] => messages.filter((m) => m.T === 't');

t.test('a disk that refuses writes: clients get every message, /health stays 200 and says the tape is degraded, and recording resumes by itself', async (t) => {
  const disk = flakyDisk();
  const gw = await startGateway(t, { TAPE_DIR: t.testdir() }, undefined, disk.files);
  const link = gw.gateway.stream('v2/iex')!.link;
  await link.whenLive(10_000);
  const client = await gw.connect({ encoding: 'msgpack' });
  await client.auth('c', 's');
  await client.request({ action: 'subscribe', trades: ['AAPL'] });
  await link.whenSynced(10_000);
  const recorder = gw.gateway.tape!.recorder('v2/iex')!;
  for (let f = 0; f < 5; f++) gw.simulator!.publish(trades(f * 10, 10), 'v2/iex');
  await client.until(() => data(client.messages).length === 50, 'the first 50 trades');
  await recorder.flushed();

  disk.fail(true);
  for (let f = 5; f < 15; f++) gw.simulator!.publish(trades(f * 10, 10), 'v2/iex');
  await client.until(() => data(client.messages).length === 150, 'every trade while the disk refuses writes');
  t.same(data(client.messages).map((m) => m.s), Array.from({ length: 150 }, (_, k) => k), 'in order, none missing');
  await eventually(() => recorder.state === 'degraded', 'the recorder degraded');

  const health = await fetch(`${gw.base}/health`);
  t.equal(health.status, 200, 'the links make the status; a failing disk does not take the gateway out of rotation');
  t.match(await health.json(), { status: 'ok', tape: { state: 'degraded', reason: /v2\/iex: tape write failed: ENOSPC/ } });
  t.match(await (await fetch(`${gw.base}/streams`)).json(), { streams: [{ stream: 'v2/iex', state: 'live', tape: 'degraded' }] });
  const metrics = await (await fetch(`${gw.base}/metrics`)).text();
  t.match(metrics, /tickmux_tape_degraded\{stream="v2\/iex"\} 1/);
  t.match(metrics, /tickmux_tape_write_errors_total\{stream="v2\/iex"\} [1-9]/);
  t.match(metrics, /tickmux_tape_dropped_messages_total\{stream="v2\/iex"\} [1-9]/);

  disk.fail(false); // the disk has room again: the recorder's retry (a second later) finds it
  await eventually(() => recorder.state === 'recording', 'recording again');
  gw.simulator!.publish(trades(150, 10), 'v2/iex');
  await client.until(() => data(client.messages).length === 160, 'trades after the recovery');
  await recorder.flushed();
  const tape = (await (await fetch(`${gw.base}/tape`)).json()) as { streams: { messages: number }[] };
  t.match(tape, { state: 'recording', reason: null, streams: [{ stream: 'v2/iex', gaps: [{ reason: /write failed: ENOSPC/ }] }] });
  t.equal(tape.streams[0]?.messages, 50 + 10, 'the tape holds what came before and after the outage');
  t.equal(recorder.stats.droppedMessages, 100, 'and counts what it could not keep');
});
