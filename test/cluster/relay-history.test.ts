/**
 * The owner's relay history and the repair exchange's formats (issue #19), without NATS: what is
 * kept within which bounds, what a span answers, and what a request or answer may not be.
 */
import t from 'tap';
import { wrap } from '../../src/cluster/envelope.js';
import { HISTORY_CHUNK_BYTES, RelayHistory } from '../../src/cluster/relay-history.js';
import { decodeRepairAnswer, encodeRepairAnswer, encodeRepairRequest, parseRepairRequest, RepairError } from '../../src/cluster/repair.js';

const envelope = (seq: number, bytes = 20): Buffer => wrap('json', 7, seq, Buffer.alloc(bytes - 14, 0x20));
const seqs = (buffers: readonly Buffer[]): number[] => buffers.map((b) => b.readUInt32BE(10));

t.test('the history keeps the newest messages of the whole stream within its message bound', async (t) => {
  const history = new RelayHistory({ messages: 5, bytes: 1 << 20 });
  const a = history.subject('a');
  const b = history.subject('b');
  for (let seq = 1; seq <= 4; seq++) history.record(a, seq, envelope(seq));
  for (let seq = 1; seq <= 3; seq++) history.record(b, seq, envelope(seq));
  t.same(history.stats, { messages: 5, bytes: 100 }, 'five messages, the two oldest of the stream dropped');
  t.same(history.span('a', 1, 4, 1 << 20), { goneThrough: 2, envelopes: [envelope(3), envelope(4)], more: false }, 'a subject keeps its newest run; the older part is gone');
  t.same(seqs(history.span('b', 2, 3, 1 << 20).envelopes), [2, 3]);
  t.same(history.span('b', 4, 9, 1 << 20), { goneThrough: 9, envelopes: [], more: false }, 'numbers never published count as gone');
  t.same(history.span('c', 1, 1, 1 << 20), { goneThrough: 1, envelopes: [], more: false }, 'so does a subject never seen');
  history.clear();
  t.same(history.stats, { messages: 0, bytes: 0 }, 'a new term forgets everything');
  t.same(history.span('a', 3, 4, 1 << 20).goneThrough, 4);
});

t.test('the byte bound drops the oldest too, and an answer stops at its size with more to ask for', async (t) => {
  const history = new RelayHistory({ messages: 1000, bytes: 100 });
  const a = history.subject('a');
  for (let seq = 1; seq <= 10; seq++) history.record(a, seq, envelope(seq, 25));
  t.same(history.stats, { messages: 4, bytes: 100 }, 'never more than 100 bytes');
  t.same(history.span('a', 5, 10, 60), { goneThrough: 6, envelopes: [envelope(7, 25), envelope(8, 25)], more: true }, 'two envelopes fit in 60 bytes: ask again for the rest');
  t.same(seqs(history.span('a', 9, 10, 60).envelopes), [9, 10]);
  t.same(seqs(history.span('a', 7, 10, 1).envelopes), [7], 'at least one envelope, so every round moves on');
});

t.test('an envelope larger than the whole bound is not kept, and its subject keeps nothing older', async (t) => {
  const history = new RelayHistory({ messages: 1000, bytes: 100 });
  const a = history.subject('a');
  const b = history.subject('b');
  history.record(a, 1, envelope(1));
  history.record(b, 1, envelope(1));
  history.record(a, 2, envelope(2));
  history.record(a, 3, envelope(3, 200));
  t.same(history.stats, { messages: 1, bytes: 20 }, 'only b’s message is left');
  t.same(history.span('a', 1, 3, 1 << 20).goneThrough, 3, 'a’s span is all gone (it could not be told in order)');
  for (let seq = 4; seq <= 8; seq++) history.record(a, seq, envelope(seq));
  t.same(history.stats, { messages: 5, bytes: 100 });
  t.same(seqs(history.span('a', 4, 8, 1 << 20).envelopes), [4, 5, 6, 7, 8], 'a keeps its new messages: the dropped ones’ turns are skipped');
  t.same(history.span('b', 1, 1, 1 << 20).goneThrough, 1, 'b’s older message went first, by age');
  t.throws(() => history.record(a, 10, envelope(10)), { code: 'ERR_RELAY_HISTORY' }, 'a number out of sequence is a bug, not input');
  t.same(new RelayHistory({ messages: 0, bytes: 1 << 20 }).span('a', 1, 1, 100).goneThrough, 1, 'a history of 0 messages keeps none');
});

t.test('kept envelopes are copies in the history’s own chunks, not slices of the shared pool', async (t) => {
  const history = new RelayHistory({ messages: 1000, bytes: 1 << 20 });
  const a = history.subject('a');
  const published = envelope(1);
  history.record(a, 1, published);
  history.record(a, 2, envelope(2));
  history.record(a, 3, envelope(3, HISTORY_CHUNK_BYTES));
  const [one, two, three] = history.span('a', 1, 3, 1 << 30).envelopes as [Buffer, Buffer, Buffer];
  t.same(one, published, 'the same bytes');
  t.not(one.buffer, published.buffer, 'not the published buffer’s memory');
  t.equal(one.buffer, two.buffer, 'small ones share a chunk');
  t.equal(one.buffer.byteLength, HISTORY_CHUNK_BYTES);
  t.equal(three.buffer.byteLength, HISTORY_CHUNK_BYTES, 'a large one has an allocation of exactly its size');
  t.not(three.buffer, one.buffer);
});

t.test('a repair answer says what is gone, then the envelopes as published, and reads back the same', async (t) => {
  const envelopes = [envelope(3), envelope(4, 40)];
  t.same(decodeRepairAnswer(encodeRepairAnswer({ goneThrough: 2, envelopes, more: true })), { goneThrough: 2, envelopes, more: true });
  const big = 2 ** 53 - 1;
  t.same(decodeRepairAnswer(encodeRepairAnswer({ goneThrough: big, envelopes: [], more: false })), { goneThrough: big, envelopes: [], more: false });
  const good = encodeRepairAnswer({ goneThrough: 2, envelopes, more: false });
  for (const [what, data] of [
    ['an owner’s error', Buffer.from('{"error":"no"}')],
    ['too short', good.subarray(0, 5)],
    ['another format', Buffer.concat([Buffer.of(2), good.subarray(1)])],
    ['unknown flags', Buffer.concat([Buffer.of(1, 4), good.subarray(2)])],
    ['gone through 2^53 or more', Buffer.concat([Buffer.of(1, 0, 0, 0x20, 0, 0, 0, 0, 0, 0)])],
    ['cut inside a length', good.subarray(0, 12)],
    ['cut inside an envelope', good.subarray(0, good.length - 1)],
  ] as const) {
    t.throws(() => decodeRepairAnswer(data), RepairError, what);
  }
});

t.test('a repair request is checked field by field', async (t) => {
  const isData = (subject: string): boolean => subject === 'c.data.s.trades.A';
  const ok = { subject: 'c.data.s.trades.A', epoch: 0xffff_ffff, from: 1, to: 2 ** 53 - 1 };
  t.same(parseRepairRequest(JSON.parse(encodeRepairRequest(ok)) as Record<string, unknown>, isData), ok);
  for (const [what, change] of [
    ['another version', { v: 2 }],
    ['no subject', { subject: undefined }],
    ['another subject', { subject: 'c.data.s.trades.B' }],
    ['a long subject', { subject: 'x'.repeat(2000) }],
    ['a negative epoch', { epoch: -1 }],
    ['an epoch past 32 bits', { epoch: 2 ** 32 }],
    ['a fraction', { from: 1.5 }],
    ['zero', { from: 0 }],
    ['from after to', { from: 3, to: 2 }],
    ['past 2^53', { to: 2 ** 53 }],
    ['a string', { to: '9' }],
  ] as const) {
    t.throws(() => parseRepairRequest(Object.assign({ v: 1 }, ok, change), isData), RepairError, what);
  }
});
