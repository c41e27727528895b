/**
 * A replay sends a recorded frame whole when its client holds every message in it in the recorded
 * encoding (src/tape/replay.ts `#sendWhole`), and splits and routes it otherwise. Either way the
 * client gets the same messages, byte for byte, in the same order: this compares both paths with
 * what a live client of the same vendor received.
 */
import t from 'tap';
import { splitFrame } from '../../src/protocol/frame.js';
import { Timestamp } from '../../src/protocol/timestamp.js';
import type { MarketMessage } from '../../src/simulator/stream-market.js';
import { nsText } from '../../src/tape/replay-window.js';
import { recordingGateway, taped } from '../helpers/tape.js';
import { type Message, StreamClient } from '../helpers/stream-client.js';

const STOCKS = 'v2/iex';
const BIG = 9007199254740993n;
const FRAMES = 30;
const data = (messages: readonly Message[]): Message[] => messages.filter((m) => !['success', 'subscription', 'error', 'gateway'].includes(m.T as string));

/** Frame `n`: trades and quotes of AAPL and MSFT, so a client holding only some of them lacks part of every frame. */
function frame(n: number): MarketMessage[] {
  const t0 = new Timestamp(1765031400 + n, 123456789);
  return [
    { T: 't', S: 'AAPL', i: BIG + BigInt(2 * n), x: 'V', p: 100 + n / 100, s: n + 1, c: ['@'], t: t0, z: 'C' },
    { T: 'q', S: 'MSFT', bx: 'U', bp: 300 + n / 100, bs: 1, ax: 'Q', ap: 300.5 + n / 100, as: 2, t: t0, c: ['R'], z: 'C' },
    { T: 't', S: 'MSFT', i: BIG + BigInt(2 * n + 1), x: 'D', p: 300 + n / 100, s: 1, c: ['@'], t: t0, z: 'C' },
    { T: 'q', S: 'AAPL', bx: 'U', bp: 99 + n / 100, bs: 3, ax: 'Q', ap: 99.5 + n / 100, as: 4, t: t0, c: ['R'], z: 'C' },
  ];
}

/** Each data message's own bytes, in order, from a client's binary frames. */
const messageBytes = (client: StreamClient): string[] =>
  client.raw
    .filter((r) => r.isBinary)
    .flatMap((r) => splitFrame(r.data, 'msgpack'))
    .filter((u) => u.type === 't' || u.type === 'q')
    .map((u) => u.encoded('msgpack').toString('hex'));

t.test('whole recorded frames and split ones give a client the same messages, byte for byte, in order', async (t) => {
  const both = ['AAPL', 'MSFT'];
  const { gw, live, fromNs } = await recordingGateway(t, { subscribe: { trades: both, quotes: both }, encoding: 'msgpack' });
  for (let n = 0; n < FRAMES; n++) gw.simulator!.publish(frame(n), STOCKS);
  await live.until(() => data(live.messages).length === 4 * FRAMES, 'every message live');
  await taped(gw);
  const liveBytes = messageBytes(live);
  t.equal(liveBytes.length, 4 * FRAMES);

  const replay = async (encoding: 'msgpack' | 'json', subscribe: Record<string, string[]>) => {
    const client = new StreamClient(gw.url(`from=${nsText(fromNs)}&speed=max&events=1`, `replay/${STOCKS}`), { encoding });
    t.teardown(() => client.close());
    await client.opened();
    await client.auth('k', 's');
    await client.request({ action: 'subscribe', ...subscribe });
    const running = gw.gateway.tape!.replays.replays.at(-1)!;
    await client.waitFor((m) => m.T === 'gateway' && m.event === 'replay_end', `${encoding} ${JSON.stringify(subscribe)}: replay_end`);
    return { client, wholeFrames: running.wholeFrames };
  };

  const all = await replay('msgpack', { trades: ['*'], quotes: ['*'] });
  t.equal(all.wholeFrames, FRAMES, '`*` holds every recorded frame whole');
  t.same(messageBytes(all.client), liveBytes, '`*`: the live client’s messages, byte for byte, in order');

  const named = await replay('msgpack', { trades: both, quotes: both });
  t.equal(named.wholeFrames, FRAMES, 'the recorded symbols by name hold every frame too');
  t.same(messageBytes(named.client), liveBytes, 'by name: the same bytes');

  const part = await replay('msgpack', { trades: ['AAPL'], quotes: both });
  t.equal(part.wholeFrames, 0, 'a client without MSFT trades gets no frame whole');
  const wanted = data(live.messages)
    .map((m, i) => ({ m, bytes: liveBytes[i] }))
    .filter(({ m }) => m.T === 'q' || m.S === 'AAPL')
    .map(({ bytes }) => bytes);
  t.same(messageBytes(part.client), wanted, 'split and routed: exactly its messages, byte for byte, in order');

  const json = await replay('json', { trades: ['*'], quotes: ['*'] });
  t.equal(json.wholeFrames, 0, 'a JSON client of a msgpack recording gets them converted, not whole');
  t.same(data(json.client.messages), data(live.messages), 'JSON: the same values');
});
