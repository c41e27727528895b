/**
 * The replay endpoint's contract (DESIGN.md §12): pacing by recorded receive times ÷ speed on the
 * injected clock, the checks before the upgrade (400, 404, 403, 503 with the socket closed), the
 * vendor's auth errors, and bounded reading for a client that does not read.
 */
import t, { type Test } from 'tap';
import { Timestamp } from '../../src/protocol/timestamp.js';
import type { MarketMessage } from '../../src/simulator/stream-market.js';
import { nsText } from '../../src/tape/replay-window.js';
import { FakeClock } from '../helpers/fake-clock.js';
import type { GatewayFixture } from '../helpers/gateway.js';
import { recordingGateway, taped } from '../helpers/tape.js';
import { rawUpgrade } from '../helpers/raw-upgrade.js';
import { type Message, StreamClient } from '../helpers/stream-client.js';
import { eventually } from '../helpers/wait.js';

const STOCKS = 'v2/iex';
const trade = (n: number): MarketMessage => ({ T: 't', S: 'AAPL', i: 1000 + n, x: 'V', p: 100 + n, s: n, c: ['@'], t: new Timestamp(1765031400 + n, 0), z: 'C' });
const trades = (messages: readonly Message[]): number[] => messages.filter((m) => m.T === 't').map((m) => m.s as number);

/** A recording gateway that has recorded `count` AAPL trades, one every `everyMs` of its clock. */
async function recorded(t: Test, count: number, everyMs: number, env: Record<string, string> = {}, clock?: FakeClock): Promise<{ gw: GatewayFixture; fromNs: bigint }> {
  // The live client reads msgpack, the vendor's own bytes: the cheapest reader of what is recorded.
  const { gw, live, fromNs } = await recordingGateway(t, { subscribe: { trades: ['AAPL'] }, env, clock, encoding: 'msgpack' });
  for (let n = 0; n < count; n++) {
    clock?.advance(everyMs);
    gw.simulator!.publish([trade(n)], STOCKS);
    await live.until(() => trades(live.messages).length === n + 1, `trade ${n} live`);
  }
  await taped(gw);
  return { gw, fromNs };
}

t.test('speed=N paces the recorded trades by their receive times ÷ N, on the gateway’s clock', async (t) => {
  const clock = new FakeClock();
  const { gw, fromNs } = await recorded(t, 3, 1000, {}, clock);
  const replay = new StreamClient(gw.url(`from=${nsText(fromNs)}&speed=2`, `replay/${STOCKS}`));
  t.teardown(() => replay.close());
  await replay.opened();
  await replay.auth('k', 's');
  await replay.request({ action: 'subscribe', trades: ['AAPL'] });
  // Recorded 1 s apart (the first 1 s after `from`), replayed at twice the speed: 500 ms apart.
  const settle = (): Promise<unknown> => new Promise((resolve) => setTimeout(resolve, 50));
  for (let n = 0; n < 3; n++) {
    clock.advance(499);
    await settle();
    t.equal(trades(replay.messages).length, n, `trade ${n} is not due ${n * 500 + 499} ms after the first subscribe`);
    clock.advance(1);
    await replay.until(() => trades(replay.messages).length === n + 1, `trade ${n} at ${(n + 1) * 500} ms`);
  }
  t.same(trades(replay.messages), [0, 1, 2]);
});

t.test('the checks before the upgrade: a bad window is 400, nothing recorded is 404, a foreign Origin 403, past REPLAY_MAX_SESSIONS 503 — each answered and the socket closed', async (t) => {
  const { gw, fromNs } = await recorded(t, 1, 0, { REPLAY_MAX_SESSIONS: '1', STREAMS: `${STOCKS},v1beta1/news` });
  const port = Number(new URL(gw.base).port);
  const from = encodeURIComponent(nsText(fromNs));
  const cases: [string, Record<string, string>, number, RegExp][] = [
    [`/replay/${STOCKS}`, {}, 400, /from is required|must have required property 'from'/],
    [`/replay/${STOCKS}?from=yesterday`, {}, 400, /from must be an RFC 3339 time/],
    [`/replay/${STOCKS}?from=${from}&to=0`, {}, 400, /to is before from/],
    [`/replay/${STOCKS}?from=${from}&speed=-1`, {}, 400, /speed must be a positive number/],
    [`/replay/v1beta1/opra?from=${from}`, {}, 404, /nothing is recorded for \/v1beta1\/opra; recorded: \/replay\/v1beta1\/news, \/replay\/v2\/iex/],
    [`/replay/v2/sip?from=${from}`, {}, 404, /nothing is recorded for \/v2\/sip/],
    [`/replay/${STOCKS}?from=${from}`, { Origin: 'https://evil.example' }, 403, /not allowed/],
  ];
  for (const [path, headers, status, detail] of cases) {
    const answer = await rawUpgrade(t, port, path, headers);
    t.equal(answer.statusCode, status, `${path} ${JSON.stringify(headers)}: ${status}`);
    t.match(JSON.parse(answer.body), { status, detail }, 'a problem saying why');
    await answer.serverClosed;
  }
  const first = new StreamClient(gw.url(`from=${from}&speed=max`, `replay/${STOCKS}`));
  t.teardown(() => first.close());
  await first.opened();
  const second = await rawUpgrade(t, port, `/replay/${STOCKS}?from=${from}`);
  t.equal(second.statusCode, 503, 'a second replay past REPLAY_MAX_SESSIONS=1');
  t.match(JSON.parse(second.body), { detail: /REPLAY_MAX_SESSIONS/ });
  await second.serverClosed;
  await first.close();
  await eventually(() => gw.gateway.tape!.replays.running === 0, 'the slot given back when the replay’s client goes');
  const third = new StreamClient(gw.url(`from=${from}&speed=max`, `replay/${STOCKS}`));
  t.teardown(() => third.close());
  await third.opened();
  t.same(third.messages[0], { T: 'success', msg: 'connected' }, 'a new replay once the slot is free');
  const plain = await fetch(`${gw.base}/replay/${STOCKS}?from=${from}`);
  t.equal(plain.status, 426, 'plain HTTP is told to upgrade');
});

t.test('a replay speaks the vendor’s auth rules: subscribe before auth is 401, wrong keys 402 and close', async (t) => {
  const { gw, fromNs } = await recorded(t, 1, 0, { CLIENT_KEYS: 'alice:alice-secret,live:s' });
  const url = gw.url(`from=${nsText(fromNs)}&speed=max`, `replay/${STOCKS}`);
  const early = new StreamClient(url);
  t.teardown(() => early.close());
  await early.opened();
  t.same(await early.request({ action: 'subscribe', trades: ['AAPL'] }), { T: 'error', code: 401, msg: 'not authenticated' });
  t.same(await early.auth('alice', 'wrong'), { T: 'error', code: 402, msg: 'auth failed' });
  t.equal(await early.closed, 1008);
  const good = new StreamClient(url);
  t.teardown(() => good.close());
  await good.opened();
  t.same(await good.auth('alice', 'alice-secret'), { T: 'success', msg: 'authenticated' });
  t.notMatch(gw.logs().join('\n'), /alice-secret/, 'the secret never reaches a log line');
});

t.test('a replay client that stops reading holds the tape back: what waits for it stays bounded, and it gets everything once it reads', async (t) => {
  const { gw, fromNs } = await recorded(t, 0, 0);
  const link = gw.gateway.stream(STOCKS)!.link;
  // Ten thousand trades of ~1 KiB each (long condition lists): 10 MiB on the tape.
  const fat = (n: number): MarketMessage => ({ ...trade(n), c: Array.from({ length: 300 }, () => '@') });
  for (let f = 0; f < 1000; f++) gw.simulator!.publish(Array.from({ length: 10 }, (_, k) => fat(f * 10 + k)), STOCKS);
  await eventually(() => link.stats.messages >= 10_000, 'the vendor’s trades at the link', 30_000);
  await gw.gateway.tape!.recorders[0]!.flushed();
  // msgpack, the recorded encoding: what waits for it in the gateway is what the tape holds.
  const client = new StreamClient(gw.url(`from=${nsText(fromNs)}&speed=max&events=1`, `replay/${STOCKS}`), { encoding: 'msgpack' });
  t.teardown(() => client.close());
  await client.opened();
  await client.auth('k', 's');
  client.socket.pause(); // stops reading: the kernel's buffers fill, then the gateway's
  client.send({ action: 'subscribe', trades: ['AAPL'] });
  const [replay] = gw.gateway.tape!.replays.replays;
  let most = 0;
  for (let i = 0; i < 50; i++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
    most = Math.max(most, replay!.session.queue.bufferedBytes);
  }
  // A quarter of the high-water mark, once more what was handed on before the client's backlog
  // was known, plus a frame.
  const bound = 1_048_576 / 4 + 1_048_576 / 4 + 65_536;
  t.ok(most <= bound, `at most ${most} bytes waited for the client in the gateway (bound ${bound})`);
  t.ok(replay!.hub.stats.messagesIn < 10_000 && !replay!.ended, `the tape is read no faster than the client takes it (${replay!.hub.stats.messagesIn} of 10000 read)`);
  t.equal(replay!.hub.stats.conflated + replay!.hub.stats.slowClientCloses, 0, 'nothing conflated, no 407');
  client.socket.resume();
  await client.waitFor((m) => m.event === 'replay_end', 'replay_end once it reads');
  t.same(trades(client.messages), Array.from({ length: 10_000 }, (_, n) => n), 'every trade, in order');
});
