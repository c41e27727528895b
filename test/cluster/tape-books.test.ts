/**
 * A crypto replay from the cluster's JetStream tape starts its books from the link's last
 * `upstream_up` before `from` (the vendor sent every book whole after it): the source's prelude
 * is exactly what was recorded between that mark and `from`, and reading goes on at `from`.
 * A real nats-server; the owner's publishes made by hand with the relay's own envelope.
 */
import { connect } from '@nats-io/transport-node';
import t from 'tap';
import { systemClock } from '../../src/clock.js';
import { ClusterTape } from '../../src/cluster/cluster-tape.js';
import { wrap } from '../../src/cluster/envelope.js';
import { dataSubject } from '../../src/cluster/subjects.js';
import { markSubject } from '../../src/cluster/tape-records.js';
import { decodeFrame, encodeFrame } from '../../src/protocol/frame.js';
import { CRYPTO } from '../../src/protocol/streams.js';
import { Timestamp } from '../../src/protocol/timestamp.js';
import type { TapeRecord } from '../../src/tape/record.js';
import { captureLogs } from '../helpers/log-capture.js';
import { NATS_SKIP, startNats } from '../helpers/nats.js';
import type { Message } from '../helpers/stream-client.js';

const PATH = 'v1beta3/crypto/us';
const CLUSTER = 'books';

t.test('a JetStream replay’s prelude is what was recorded from the last upstream_up before `from`; the records go on at `from`', { skip: NATS_SKIP }, async (t) => {
  const nats = await startNats(t);
  const nc = await connect({ servers: nats.url });
  t.teardown(() => nc.close());
  const { logger } = captureLogs('silent');
  const tape = new ClusterTape({ clusterName: CLUSTER, config: { retentionHours: 1, maxBytes: 0, replayMaxSessions: 1 }, streams: [PATH], clock: systemClock, logger, natsConnected: () => true });
  t.teardown(() => tape.stop());
  await tape.connected(nc);
  let seq = 0;
  /** A book message as the owner relays it: the vendor's bytes of one message in the envelope. */
  const book = (n: number, reset = false): void => {
    const frame = encodeFrame([{ T: 'o', S: 'BTC/USD', t: new Timestamp(1765031400, n), b: [{ p: 100 + n, s: 1 }], a: [], ...(reset ? { r: true } : {}) }], 'msgpack', CRYPTO);
    nc.publish(dataSubject(CLUSTER, PATH, 'orderbooks', 'BTC/USD'), wrap('msgpack', 7, ++seq, frame.subarray(1))); // past the array header
  };
  const mark = (event: object): void => nc.publish(markSubject(CLUSTER, PATH), JSON.stringify(event));
  const pause = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 20)); // distinct server receive times

  book(1, true); // a session before the last: its books are not the ones at `from`
  await pause();
  mark({ event: 'upstream_down', state: 'backoff', reason: 'vendor closed' });
  await pause();
  mark({ event: 'upstream_up', session: 's2' });
  await pause();
  book(2, true);
  book(3);
  await nc.flush();
  await pause();
  const fromNs = systemClock.nanos();
  await pause();
  book(4);
  book(5);
  await nc.flush();
  // Stored by the server once it has them: wait until the tape holds all five books.
  for (let tries = 0; tries < 100 && (await tape.status()).streams[0]?.messages !== 5; tries++) await pause();

  const source = await tape.source(PATH, fromNs);
  t.teardown(() => source.close());
  const prelude: TapeRecord[] = [];
  await source.prelude((records) => prelude.push(...records));
  const bookTimes = (records: readonly TapeRecord[]): number[] =>
    records.flatMap((r) => (r.type === 'frame' ? (decodeFrame(r.bytes, r.encoding, CRYPTO) as Message[]).map((m) => (m.t as Timestamp).nanoseconds) : []));
  t.same(prelude.filter((r) => r.type === 'mark').map((r) => (r.type === 'mark' ? r.mark.event : '')), ['upstream_up'], 'the prelude starts at the last upstream_up');
  t.same(bookTimes(prelude), [2, 3], 'then the new session’s reset and update, and nothing at or after `from`');
  t.ok(prelude.every((r) => r.ns < fromNs));
  const after: TapeRecord[] = [];
  for (let records = await source.next(); records.length > 0; records = await source.next()) after.push(...records);
  t.same(bookTimes(after), [4, 5], 'reading goes on at `from`');
  t.ok(after.every((r) => r.ns >= fromNs));
});
