/**
 * What another party may put into the cluster's NATS — malformed relay messages, a node of another
 * format version, foreign values in the KV buckets, garbage requests to the owner — is logged and
 * ignored: no crash, no second vendor session, nothing unchecked reaches the vendor, and the
 * clients keep their data.
 */
import { Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';
import t from 'tap';
import { wrap } from '../../src/cluster/envelope.js';
import { type GatewayFixture, startGateway } from '../helpers/gateway.js';
import { NATS_SKIP, startNats } from '../helpers/nats.js';
import { startSimulator } from '../helpers/simulator.js';
import { eventually } from '../helpers/wait.js';

const STOCKS = 'v2/iex';

t.test('malformed cluster messages and foreign bucket content are logged and ignored', { skip: NATS_SKIP }, async (t) => {
  const nats = await startNats(t);
  const sim = await startSimulator(t);
  const env = (node: string): Record<string, string> => ({
    UPSTREAM_URL: sim.baseUrl,
    STREAMS: STOCKS,
    APCA_API_KEY_ID: 'AKBAD',
    APCA_API_SECRET_KEY: 'bad-secret',
    NATS_URL: nats.url,
    CLUSTER_NAME: 'bad',
    NODE_ID: node,
    LEASE_TTL_MS: '1500',
  });
  const a = await startGateway(t, env('node-a'));
  await eventually(() => a.app.cluster?.role(STOCKS) === 'owner' && a.gateway.defaultStream.link.state === 'live', 'node-a owns the stream');
  const b = await startGateway(t, env('node-b'));
  await eventually(() => b.gateway.defaultStream.upstream.state === 'live', 'node-b follows a live owner');
  const client = await b.connect();
  await client.auth('k', 's');
  await client.request({ action: 'subscribe', trades: ['AAPL', 'GAPS'] });
  await eventually(() => a.gateway.defaultStream.link.desired.has('trades', 'AAPL'), 'the owner holds the follower’s AAPL');

  const nc = await connect({ servers: nats.url });
  t.teardown(() => nc.close());
  const subject = 'bad.data.v2_2Fiex.trades.AAPL';
  nc.publish(subject, new Uint8Array([1, 2, 3])); // too short
  nc.publish(subject, wrap('json', 1, 1, Buffer.from('{"T":"t","S":"AAPL"}')).fill(2, 0, 1)); // format 2
  nc.publish(subject, wrap('json', 7, 1, Buffer.from('{"T":"t","S":"AAPL",'))); // malformed JSON
  nc.publish(subject, wrap('msgpack', 7, 2, Buffer.from([0xc1]))); // not msgpack
  nc.publish('bad.state.v2_2Fiex', 'not json');
  nc.publish('bad.state.v2_2Fiex', JSON.stringify({ v: 2, node: 'future', state: 'stopped', since: 0 }));
  nc.publish('bad.refused.v2_2Fiex', JSON.stringify({ node: 'x', refusal: 'no' }));
  const restart = await nc.request('bad.owner.v2_2Fiex.restart', 'garbage', { timeout: 2000 });
  t.match(restart.string(), /"error"/, 'a garbage request to the owner gets an error answer');
  const snapshot = await nc.request('bad.owner.v2_2Fiex.snapshot', JSON.stringify({ pairs: [['trades'], [1, 2], 'x', ['nochannel', 'AAPL']], values: true }), { timeout: 2000 });
  t.ok(snapshot.data.length >= 1, 'a snapshot request with malformed pairs is answered (with what is valid)');

  // Sequence per subject: a repeated number is a second copy, a skipped one a lost message.
  const trade = (i: number): Buffer => Buffer.from(`{"T":"t","S":"GAPS","i":${i},"x":"V","p":1,"s":1,"c":["@"],"t":"2026-11-27T15:00:00Z","z":"C"}`);
  for (const seq of [1, 2, 5, 5, 6]) nc.publish('bad.data.v2_2Fiex.trades.GAPS', wrap('json', 9, seq, trade(seq)));
  await client.waitFor((m) => m.T === 't' && m.S === 'GAPS' && m.i === 6, 'the last GAPS trade');
  t.same(client.messages.filter((m) => m.S === 'GAPS').map((m) => m.i), [1, 2, 5, 6], 'each relayed message once, the repeat dropped');
  t.match(b.app.cluster?.view(STOCKS)?.counters, { lost: 2, duplicates: 1 }, 'the skipped sequence numbers are counted as lost');
  await eventually(() => b.logs().some((line) => line.includes('relayed messages lost between the owner and this node')), 'the loss is logged');

  // Foreign and future-version content in the buckets.
  const kvm = new Kvm(nc);
  const nodes = await kvm.open('bad-nodes');
  await nodes.put('intruder', 'not json');
  await nodes.put('future', JSON.stringify({ v: 2, node: 'future', version: '9.0.0', clients: 1, streams: { [STOCKS]: { trades: ['FUTURE'] } } }));
  await nodes.put('liar', JSON.stringify({ v: 1, node: 'liar', version: '0.1.0', clients: 1, streams: { [STOCKS]: { trades: ['LIAR', 'bad symbol!', 42], orderbooks: ['BTC/USD'] } } }));
  const pinned = await kvm.open('bad-pinned');
  await pinned.put('v2_2Fiex', JSON.stringify({ v: 1, pinned: { bars: ['PIN', '../..'], news: ['X'] } }));
  await pinned.put('nope', 'junk');

  await eventually(() => a.gateway.defaultStream.link.desired.has('trades', 'LIAR') && a.gateway.defaultStream.link.desired.has('bars', 'PIN'), 'the valid part of a well-formed entry counts');
  const desired = a.gateway.defaultStream.link.desired.toLists();
  t.notOk(desired.trades.includes('FUTURE'), 'an entry of another format version does not reach the vendor');
  t.notOk(desired.trades.some((s) => s === 'bad symbol!'), 'an invalid symbol does not reach the vendor');
  t.notOk(desired.bars.includes('../..'), 'nor an invalid pinned one');

  // The cluster still serves: a real trade reaches the follower's client, once.
  sim.publish([{ T: 't', S: 'AAPL', i: 77, x: 'V', p: 1, s: 1, c: ['@'], t: '2026-11-27T15:00:00Z', z: 'C' }]);
  await client.waitFor((m) => m.T === 't' && m.i === 77, 'the real trade');
  t.equal(client.messages.filter((m) => m.T === 't' && m.S === 'AAPL').length, 1, 'and nothing of the junk');
  t.ok((b.app.cluster?.view(STOCKS)?.counters.malformed ?? 0) >= 4, 'the follower counted the malformed relay messages');
  t.equal(b.gateway.defaultStream.upstream.state, 'live', 'the follower still follows a live owner');
  const logs = (node: GatewayFixture): string => node.logs().join('\n');
  t.match(logs(b), /cluster data message ignored/);
  t.match(logs(b), /cluster state message ignored/);
  t.match(logs(a), /node entry this node cannot read/);
  t.match(logs(a), /cluster restart message ignored/);
  t.equal(sim.sessions().filter((s) => s.authenticated && s.closeCode === undefined).length, 1, 'one vendor session');
});
