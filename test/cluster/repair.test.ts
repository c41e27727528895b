/**
 * Relay-loss repair (issue #19): a follower that sees a gap in a relay subject's sequence asks the
 * owner for the missing messages and delivers them in order before what follows; where that is
 * impossible its `?events=1` holders of the pair get a `gap` notice, and garbage on the repair
 * subjects is counted, logged and ignored — never delivered to a client.
 */
import { Kvm } from '@nats-io/kv';
import { connect, type Msg, type NatsConnection } from '@nats-io/transport-node';
import t, { type Test } from 'tap';
import { wrap } from '../../src/cluster/envelope.js';
import { Lease, openLeaseBucket } from '../../src/cluster/lease.js';
import { RelayHistory } from '../../src/cluster/relay-history.js';
import { decodeRepairAnswer, encodeRepairAnswer, type RepairRequest } from '../../src/cluster/repair.js';
import { systemClock } from '../../src/clock.js';
import type { VendorSimulator } from '../../src/simulator/index.js';
import type { MarketMessage } from '../../src/simulator/stream-market.js';
import { type GatewayFixture, startGateway } from '../helpers/gateway.js';
import { captureLogs } from '../helpers/log-capture.js';
import { NATS_SKIP, startNats } from '../helpers/nats.js';
import { startSimulator } from '../helpers/simulator.js';
import type { Message, StreamClient } from '../helpers/stream-client.js';
import { eventually } from '../helpers/wait.js';

const STOCKS = 'v2/iex';
const T0 = '2026-11-27T14:30:00.123456789Z';

const trade = (symbol: string, i: number): MarketMessage => ({ T: 't', S: symbol, i, x: 'V', p: 100 + i / 100, s: i, c: ['@'], t: T0, z: 'C' });
const quote = (symbol: string, k: number): MarketMessage => ({ T: 'q', S: symbol, bx: 'V', bp: 100 + k, bs: 1, ax: 'V', ap: 101 + k, as: 1, c: ['R'], t: T0, z: 'C' });
const tradeIds = (client: StreamClient, symbol: string): number[] => client.messages.filter((m) => m.T === 't' && m.S === symbol).map((m) => Number(m.i));
const gaps = (client: StreamClient): Message[] => client.messages.filter((m) => m.T === 'gateway' && m.event === 'gap');
/** A client's trades of `symbol` and its gap notices, in the order they arrived, as short labels. */
const timeline = (client: StreamClient, symbol: string): string[] =>
  client.messages.flatMap((m) => (m.T === 't' && m.S === symbol ? [`t${Number(m.i)}`] : m.T === 'gateway' && m.event === 'gap' ? [`gap ${String(m.from)}-${String(m.to)}`] : []));

function clusterEnv(sim: { baseUrl: string }, natsUrl: string, cluster: string, node: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    UPSTREAM_URL: sim.baseUrl,
    STREAMS: STOCKS,
    APCA_API_KEY_ID: 'AKREPAIR',
    APCA_API_SECRET_KEY: 'repair-secret',
    NATS_URL: natsUrl,
    CLUSTER_NAME: cluster,
    NODE_ID: node,
    LEASE_TTL_MS: '1500',
    ...extra,
  };
}

/** An owner (started first) and a follower of the stock stream, both real gateway nodes. */
async function ownerAndFollower(t: Test, cluster: string, extra: Record<string, string> = {}): Promise<{ sim: VendorSimulator; owner: GatewayFixture; follower: GatewayFixture; natsUrl: string }> {
  const nats = await startNats(t);
  const sim = await startSimulator(t);
  const env = (node: string): Record<string, string> => clusterEnv(sim, nats.url, cluster, node, extra);
  const owner = await startGateway(t, env('owner'));
  await eventually(() => owner.app.cluster?.role(STOCKS) === 'owner' && owner.gateway.defaultStream.link.state === 'live', 'the first node owns the stream');
  const follower = await startGateway(t, env('follower'));
  await eventually(() => follower.gateway.defaultStream.upstream.state === 'live', 'the second node follows a live owner');
  return { sim, owner, follower, natsUrl: nats.url };
}

t.test('relay messages lost on the way are asked of the owner and delivered in order before what follows', { skip: NATS_SKIP }, async (t) => {
  const { sim, owner, follower } = await ownerAndFollower(t, 'repair');
  const ownerView = owner.app.cluster?.view(STOCKS);
  const followerView = follower.app.cluster?.view(STOCKS);
  if (ownerView === undefined || followerView === undefined) throw new Error('no cluster views');
  const tradesSubject = 'repair.data.v2_2Fiex.trades.AAPL';
  const dropped: number[] = [];
  ownerView.dropRelay = (subject, seq) => {
    if (subject !== tradesSubject || ![3, 4, 9].includes(seq)) return false;
    dropped.push(seq);
    return true;
  };

  const reader = await follower.connect({ query: 'events=1' });
  await reader.auth('reader', 's');
  await reader.request({ action: 'subscribe', trades: ['AAPL'], quotes: ['AAPL'] });
  const ownerLink = owner.gateway.defaultStream.link;
  await eventually(() => ownerLink.desired.has('trades', 'AAPL') && ownerLink.desired.has('quotes', 'AAPL'), 'the owner holds the follower’s AAPL');
  await ownerLink.whenSynced(10_000);

  const N = 12;
  for (let k = 1; k <= N; k++) sim.publish([trade('AAPL', k), quote('AAPL', k)]);
  const expected = Array.from({ length: N }, (_, k) => k + 1);
  await reader.waitFor((m) => m.T === 't' && m.i === N, 'the last AAPL trade');
  await eventually(() => reader.messages.filter((m) => m.T === 'q').length >= N, 'every quote on the follower’s client');
  t.same(dropped, [3, 4, 9], 'the owner left three AAPL trades unpublished on purpose');
  t.same(tradeIds(reader, 'AAPL'), expected, 'the follower’s client gets every AAPL trade once, in order, the dropped ones included');
  t.same(
    reader.messages.filter((m) => m.T === 'q').map((m) => m.bp),
    expected.map((k) => 100 + k),
    'the quotes (another subject) flowed on, every one in order',
  );
  t.same(gaps(reader), [], 'a repaired gap is no gap: no notice');
  t.match(followerView.counters, { repaired: 3, lost: 0, repairFailures: 0, repairRequests: 2, duplicates: 0 }, 'two gaps, two requests, three messages repaired, none lost');
  t.equal(ownerView.counters.repairsAnswered, 2, 'the owner answered both');
  const metrics = (await follower.app.inject({ method: 'GET', url: '/metrics' })).body;
  t.match(metrics, /tickmux_cluster_repaired_total\{stream="v2\/iex"\} 3/);
  t.match(metrics, /tickmux_cluster_repair_requests_total\{stream="v2\/iex"\} 2/);
  t.match(metrics, /tickmux_cluster_lost_total\{stream="v2\/iex"\} 0/);
  t.match((await owner.app.inject({ method: 'GET', url: '/metrics' })).body, /tickmux_cluster_repairs_answered_total\{stream="v2\/iex"\} 2/);
});

t.test('a gap the owner can no longer fill reaches its holders as a gap notice, and delivery goes on', { skip: NATS_SKIP }, async (t) => {
  // Four messages of history: five MSFT trades push the dropped AAPL one out before it is asked for.
  const { sim, owner, follower, natsUrl } = await ownerAndFollower(t, 'gone', { RELAY_HISTORY_MESSAGES: '4' });
  const ownerView = owner.app.cluster?.view(STOCKS);
  const followerView = follower.app.cluster?.view(STOCKS);
  if (ownerView === undefined || followerView === undefined) throw new Error('no cluster views');
  ownerView.dropRelay = (subject, seq) => subject === 'gone.data.v2_2Fiex.trades.AAPL' && seq === 2;

  const holder = await follower.connect({ query: 'events=1' });
  const star = await follower.connect({ query: 'events=1' });
  const quotesOnly = await follower.connect({ query: 'events=1' });
  const plain = await follower.connect();
  for (const [client, key] of [[holder, 'h'], [star, 's'], [quotesOnly, 'q'], [plain, 'p']] as const) await client.auth(key, 's');
  await holder.request({ action: 'subscribe', trades: ['AAPL'] });
  await star.request({ action: 'subscribe', trades: ['*'] });
  await quotesOnly.request({ action: 'subscribe', quotes: ['AAPL'] });
  await plain.request({ action: 'subscribe', trades: ['AAPL'] });
  const ownerLink = owner.gateway.defaultStream.link;
  await eventually(() => ownerLink.desired.has('trades', '*') && ownerLink.desired.has('quotes', 'AAPL'), 'the owner holds the follower’s set');
  await ownerLink.whenSynced(10_000);

  sim.publish([trade('AAPL', 1), trade('AAPL', 2), ...[1, 2, 3, 4, 5].map((k) => trade('MSFT', k)), trade('AAPL', 3)]);
  sim.publish([trade('AAPL', 4)]);
  for (const client of [holder, star, plain]) await client.waitFor((m) => m.T === 't' && m.S === 'AAPL' && m.i === 4, 'the last AAPL trade');
  const notice = { T: 'gateway', event: 'gap', stream: STOCKS, channel: 'trades', symbol: 'AAPL', from: 2, to: 2, messages: 1, reason: 'gone', at: /^\d{4}-\d\d-\d\dT/ };
  t.match(gaps(holder), [notice], 'the AAPL holder is told which message of which pair is missing, and why');
  t.equal(gaps(holder).length, 1, 'once');
  t.same(timeline(holder, 'AAPL'), ['t1', 'gap 2-2', 't3', 't4'], 'at the hole’s place, and delivery goes on');
  t.match(gaps(star), [notice], 'a `*` holder of the channel is told too');
  t.same(timeline(star, 'AAPL'), ['t1', 'gap 2-2', 't3', 't4']);
  t.same(tradeIds(star, 'MSFT'), [1, 2, 3, 4, 5], 'other subjects flowed on meanwhile');
  t.same(gaps(quotesOnly), [], 'a client holding AAPL quotes only hears nothing of a trades gap');
  t.same(gaps(plain), [], 'nor does a client without ?events=1');
  t.same(tradeIds(plain, 'AAPL'), [1, 3, 4], 'which still gets everything that was there');
  t.match(followerView.counters, { lost: 1, repaired: 0, repairFailures: 1, repairRequests: 1 });
  await eventually(() => follower.logs().some((line) => line.includes('relayed messages lost between the owner and this node')), 'the loss is logged');
  t.match((await follower.app.inject({ method: 'GET', url: '/metrics' })).body, /tickmux_cluster_repair_failures_total\{stream="v2\/iex"\} 1/);

  // Garbage on the repair request subject: an error answer each, counted and logged, no crash.
  const nc = await connect({ servers: natsUrl });
  t.teardown(() => nc.close());
  const subject = 'gone.owner.v2_2Fiex.repair';
  const malformedBefore = ownerView.counters.malformed;
  const garbage = [
    'garbage',
    '[1,2]',
    JSON.stringify({ v: 2, subject: 'gone.data.v2_2Fiex.trades.AAPL', epoch: 1, from: 1, to: 1 }),
    JSON.stringify({ v: 1, subject: 'gone.data.v2_2Fcrypto.trades.AAPL', epoch: 1, from: 1, to: 1 }),
    JSON.stringify({ v: 1, subject: 'gone.data.v2_2Fiex.trades.*', epoch: 1, from: 1, to: 1 }),
    JSON.stringify({ v: 1, subject: 'gone.data.v2_2Fiex.trades.AAPL', epoch: -1, from: 1, to: 1 }),
    JSON.stringify({ v: 1, subject: 'gone.data.v2_2Fiex.trades.AAPL', epoch: 1, from: 5, to: 2 }),
    JSON.stringify({ v: 1, subject: 'gone.data.v2_2Fiex.trades.AAPL', epoch: 1, from: 0.5, to: 2 ** 60 }),
  ];
  for (const body of garbage) t.match((await nc.request(subject, body, { timeout: 2000 })).string(), /^\{"error":/, `an error answer to ${body.slice(0, 40)}`);
  t.equal(ownerView.counters.malformed - malformedBefore, garbage.length, 'each counted');
  t.match(owner.logs().join('\n'), /cluster repair message ignored/, 'and logged');
  const foreign = await nc.request(subject, JSON.stringify({ v: 1, subject: 'gone.data.v2_2Fiex.trades.AAPL', epoch: 1, from: 1, to: Number.MAX_SAFE_INTEGER }), { timeout: 2000 });
  t.same(decodeRepairAnswer(foreign.data), { goneThrough: Number.MAX_SAFE_INTEGER, envelopes: [], more: false }, 'a well-formed request of another term is answered: all of it is gone');

  sim.publish([trade('AAPL', 5)]);
  await holder.waitFor((m) => m.T === 't' && m.i === 5, 'a trade after the garbage');
  t.equal(owner.app.cluster?.role(STOCKS), 'owner', 'the owner still owns and serves');
});

t.test('garbage repair answers and no answer at all: counted, logged, told as gaps, never delivered', { skip: NATS_SKIP }, async (t) => {
  // The test holds the stream's lease itself, so it is the owner: it publishes the relay and
  // answers the follower's repair requests as it likes.
  const nats = await startNats(t);
  const sim = await startSimulator(t);
  const nc: NatsConnection = await connect({ servers: nats.url });
  const { logger } = captureLogs('warn');
  const { kv, ttlMs } = await openLeaseBucket(nc, 'fake', 1500, logger);
  const lease = new Lease({ kv, ttlMs, path: STOCKS, node: 'impostor', version: '0.0.0-test', clock: systemClock, logger });
  const heartbeat = setInterval(() => nc.publish('fake.state.v2_2Fiex', JSON.stringify({ v: 1, node: 'impostor', state: 'live', since: Date.now() })), 200);
  t.teardown(async () => {
    clearInterval(heartbeat);
    lease.stop();
    await nc.close();
  });
  await lease.start();
  t.ok(lease.owning, 'the test owns the stream');

  const EPOCH = 0x5eed;
  const SUBJECT = 'fake.data.v2_2Fiex.trades.FAKE';
  const envelope = (symbol: string, seq: number, epoch = EPOCH): Buffer => wrap('json', epoch, seq, Buffer.from(JSON.stringify(trade(symbol, seq))));
  const history = new RelayHistory();
  const subjectHistory = history.subject(SUBJECT);
  /** publishes message `seq` of FAKE (unless `lose`), keeping it to answer repairs from */
  const relay = (seq: number, lose = false): void => {
    const data = envelope('FAKE', seq);
    history.record(subjectHistory, seq, data);
    if (!lose) nc.publish(SUBJECT, data);
  };
  const requests: RepairRequest[] = [];
  let answer: (request: RepairRequest, msg: Msg) => void = () => undefined;
  const late: Msg[] = [];
  nc.subscribe('fake.owner.v2_2Fiex.repair', {
    callback: (err, msg) => {
      if (err !== null) return;
      const request = msg.json() as RepairRequest;
      requests.push({ subject: request.subject, epoch: request.epoch, from: request.from, to: request.to });
      answer(request, msg);
    },
  });
  const honest = (request: RepairRequest, msg: Msg): void => void msg.respond(encodeRepairAnswer(history.span(request.subject, request.from, request.to, 1 << 20)));

  const follower = await startGateway(t, clusterEnv(sim, nats.url, 'fake', 'follower'));
  await eventually(() => follower.gateway.defaultStream.upstream.state === 'live', 'the node follows the test as a live owner');
  const view = follower.app.cluster?.view(STOCKS);
  if (view === undefined) throw new Error('no cluster view');
  const holder = await follower.connect({ query: 'events=1' });
  const bystander = await follower.connect({ query: 'events=1' });
  await holder.auth('h', 's');
  await bystander.auth('b', 's');
  await holder.request({ action: 'subscribe', trades: ['FAKE'] });
  await bystander.request({ action: 'subscribe', trades: ['OTHER'] });
  // The node subscribes before it writes its entry (same connection): once the entry names both,
  // nats-server has its subscriptions.
  const nodes = await new Kvm(nc).open('fake-nodes');
  const watch = await nodes.watch({ key: 'follower' });
  for await (const entry of watch) {
    const trades = (entry.value.length === 0 ? undefined : (entry.json() as { streams?: Record<string, { trades?: string[] }> }))?.streams?.[STOCKS]?.trades ?? [];
    if (trades.includes('FAKE') && trades.includes('OTHER')) break;
  }
  watch.stop();

  const arrived = (i: number): Promise<Message> => holder.waitFor((m) => m.T === 't' && m.i === i, `trade ${i}`);

  // Honest first: a gap with a later one among the held messages, repaired in two rounds.
  answer = honest;
  relay(1);
  await arrived(1);
  relay(2, true);
  relay(3);
  relay(4);
  relay(5, true);
  relay(6);
  await arrived(6);
  t.same(tradeIds(holder, 'FAKE'), [1, 2, 3, 4, 5, 6], 'an honest owner’s answers fill both gaps, in order');
  t.same(requests.map((r) => [r.from, r.to, r.epoch, r.subject]), [[2, 2, EPOCH, SUBJECT], [5, 5, EPOCH, SUBJECT]], 'one request per gap, naming the subject, its term and the span');

  // Then garbage, one kind per gap: each is told as a gap, and nothing of it is delivered.
  const malformed: [string, (request: RepairRequest) => Buffer | string][] = [
    ['an error answer', () => JSON.stringify({ error: 'no' })],
    ['another format', (r) => Buffer.concat([Buffer.of(9, 0), encodeRepairAnswer({ goneThrough: r.from - 1, envelopes: [envelope('FAKE', r.from)], more: false }).subarray(2)])],
    ['too short', () => Buffer.of(1, 0, 0)],
    ['cut inside an envelope', (r) => encodeRepairAnswer({ goneThrough: r.from - 1, envelopes: [envelope('FAKE', r.from)], more: false }).subarray(0, 20)],
    ['an envelope of another term', (r) => encodeRepairAnswer({ goneThrough: r.from - 1, envelopes: [envelope('FAKE', r.from, EPOCH + 1)], more: false })],
    ['an envelope of another pair', (r) => encodeRepairAnswer({ goneThrough: r.from - 1, envelopes: [envelope('OTHER', r.from)], more: false })],
    ['an envelope out of the span', (r) => encodeRepairAnswer({ goneThrough: r.from - 1, envelopes: [envelope('FAKE', r.from), envelope('FAKE', r.from + 1)], more: false })],
    ['gone through beyond the span', (r) => encodeRepairAnswer({ goneThrough: r.to + 5, envelopes: [], more: false })],
    ['more and nothing', (r) => encodeRepairAnswer({ goneThrough: r.from - 1, envelopes: [], more: true })],
    ['garbage bytes in an envelope', (r) => encodeRepairAnswer({ goneThrough: r.from - 1, envelopes: [wrap('msgpack', EPOCH, r.from, Buffer.of(0xc1))], more: false })],
  ];
  let seq = 6;
  const told: number[] = [];
  for (const [, make] of malformed) {
    answer = (request, msg) => void msg.respond(make(request));
    relay(++seq, true);
    relay(++seq);
    told.push(seq - 1);
    await arrived(seq);
  }
  t.same(
    gaps(holder).map((m) => [m.from, m.to, m.messages, m.reason]),
    told.map((k) => [k, k, 1, 'malformed']),
    'each garbage answer: a gap notice for the span asked, reason malformed',
  );
  t.ok(view.counters.malformed >= malformed.length, 'each counted as malformed');
  t.match(follower.logs().join('\n'), /cluster repair answer message ignored/, 'and logged');

  // No answer at all: the follower waits its repair timeout (on its clock), then delivers on; the
  // answer that comes after that is not delivered.
  answer = (_request, msg) => void late.push(msg);
  relay(++seq, true);
  relay(++seq);
  const silent = seq - 1;
  await arrived(seq);
  t.match(gaps(holder).at(-1), { from: silent, to: silent, reason: 'timeout' }, 'an unanswered repair is a gap with reason timeout');
  t.match(follower.logs().join('\n'), /relay repair not answered/);
  late[0]?.respond(encodeRepairAnswer(history.span(SUBJECT, silent, silent, 1 << 20)));

  // Gone, as an owner says when it no longer has them.
  answer = (request, msg) => void msg.respond(encodeRepairAnswer({ goneThrough: request.to, envelopes: [], more: false }));
  relay(++seq, true);
  relay(++seq);
  await arrived(seq);
  t.match(gaps(holder).at(-1), { from: seq - 1, to: seq - 1, reason: 'gone' });

  // A message of another pair on FAKE's subject is not FAKE's: ignored, even for OTHER's holder.
  nc.publish(SUBJECT, envelope('OTHER', seq + 1));
  answer = honest;
  relay(++seq);
  await arrived(seq);

  t.same(bystander.messages.filter((m) => m.T === 't' || m.T === 'gateway'), [], 'the bystander (OTHER, ?events=1) got no trade and no notice: nothing of the garbage');
  const ids = tradeIds(holder, 'FAKE');
  t.same(ids, [...new Set(ids)].sort((a, b) => a - b), 'the holder got each trade at most once, in order (the late answer too was dropped)');
  t.notOk(ids.includes(silent), 'the unanswered one never arrived late');
  t.same(
    tradeIds(holder, 'FAKE').length + gaps(holder).reduce((n, m) => n + Number(m.messages), 0),
    seq,
    'every sequence number is either delivered or told as missing: no silent hole',
  );
  t.notOk(holder.messages.some((m) => m.T === 't' && m.S !== 'FAKE'), 'no message of another pair reached the holder');
  t.match(view.counters, { repaired: 2, lost: malformed.length + 2, repairFailures: malformed.length + 2 });
  t.equal(follower.gateway.defaultStream.upstream.state, 'live', 'the follower still follows');
});
