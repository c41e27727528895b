/**
 * The cluster tape's pure parts (DESIGN.md §12): where marks go, a stored message as a tape
 * record, and the gap a new owner records.
 */
import t from 'tap';
import { wrap } from '../../src/cluster/envelope.js';
import { dataSubject } from '../../src/cluster/subjects.js';
import { FAILOVER_GAP_REASON, failoverGap, markSubject, recordOf, streamFilter, tapeStreamName, tapeSubjects } from '../../src/cluster/tape-records.js';
import type { TapeRecord } from '../../src/tape/record.js';

/** NATS subject matching: `*` one token, `>` the rest. */
function matches(pattern: string, subject: string): boolean {
  const p = pattern.split('.');
  const s = subject.split('.');
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '>') return s.length > i;
    if (i >= s.length || (p[i] !== '*' && p[i] !== s[i])) return false;
  }
  return p.length === s.length;
}

t.test('marks are read with the data through one filter, and no follower data subscription matches them', async (t) => {
  const marks = markSubject('c', 'v2/iex');
  t.equal(tapeStreamName('c'), 'c_tape');
  t.ok(tapeSubjects('c').some((p) => matches(p, marks)), 'the tape stream captures the marks');
  t.ok(matches(streamFilter('c', 'v2/iex'), marks), "the stream's one filter subject reads its marks");
  t.ok(matches(streamFilter('c', 'v2/iex'), dataSubject('c', 'v2/iex', 'trades', 'AAPL')), '... and its data');
  t.notOk(matches(streamFilter('c', 'v2/iex'), markSubject('c', 'v2/sip')), "... and not another stream's");
  const followerSubs = [
    dataSubject('c', 'v2/iex', 'trades', '*'),
    dataSubject('c', 'v2/iex', 'trades', 'AAPL'),
    dataSubject('c', 'v2/iex', undefined, undefined),
    dataSubject('c', 'v1beta1/news', 'news', undefined),
  ];
  for (const sub of followerSubs) t.notOk(matches(sub, marks), `${sub} does not match ${marks}`);
});

t.test('a stored relay message is a one-message frame of the vendor bytes; a mark is its JSON', async (t) => {
  const json = recordOf('c.data.v2_2Fiex.trades.AAPL', wrap('json', 7, 1, Buffer.from('{"T":"t","S":"AAPL"}')), 5n, 9);
  t.same(json, { type: 'frame', ns: 5n, encoding: 'json', bytes: Buffer.from('[{"T":"t","S":"AAPL"}]'), offset: 9 });
  const body = Buffer.from([0x81, 0xa1, 0x54, 0xa1, 0x74]); // {T: 't'}
  const msgpack = recordOf('c.data.v2_2Fiex.trades.AAPL', wrap('msgpack', 7, 2, body), 6n, 10);
  t.same(msgpack?.type === 'frame' && [...msgpack.bytes], [0x91, ...body], 'msgpack: a fixarray of one before the body');
  t.same(recordOf(markSubject('c', 'v2/iex'), Buffer.from('{"event":"upstream_up","session":"1"}'), 7n, 11), { type: 'mark', ns: 7n, mark: { event: 'upstream_up', session: '1' }, offset: 11 });
  t.equal(recordOf(markSubject('c', 'v2/iex'), Buffer.from('not json'), 7n, 12), undefined, 'a malformed mark is skipped');
  t.equal(recordOf('c.data.v2_2Fiex.trades.AAPL', Buffer.from([9, 9, 9]), 7n, 13), undefined, 'a message of another format is skipped');
});

t.test('a new owner records a gap from the last record to now unless the previous owner ended cleanly', async (t) => {
  const frame: TapeRecord = { type: 'frame', ns: 100n, encoding: 'json', bytes: Buffer.from('[]'), offset: 1 };
  t.same(failoverGap(frame, 250n), { event: 'tape_gap', from: '100', to: '250', reason: FAILOVER_GAP_REASON, messages: 0 }, 'after a kill: from the last frame');
  t.same(failoverGap({ type: 'mark', ns: 100n, mark: { event: 'upstream_up', session: 's' }, offset: 1 }, 250n)?.from, '100', 'after an up mark too');
  t.equal(failoverGap({ type: 'mark', ns: 100n, mark: { event: 'upstream_down', state: 'stopped', reason: null }, offset: 1 }, 250n), undefined, 'a clean stop left its down mark: no gap');
  t.equal(failoverGap(undefined, 250n), undefined, 'an empty tape: nothing to bridge');
});
