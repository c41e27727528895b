/**
 * The tape's bytes as an unlucky disk leaves them: a record is read only when its length and
 * checksum hold; damage stops a segment's reading there (never a misread record), a damaged index
 * costs a scan, not records, and files that are not segments are left alone.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { encodeMark, encodeRecord, MAX_RECORD_BYTES, RECORD_TYPES, readRecord, SEGMENT_MAGIC } from '../../src/tape/record.js';
import { encodeIndexEntry, INDEX_KINDS, listSegments, parseSegmentStem, segmentStem } from '../../src/tape/segment-files.js';
import { TapeCursor } from '../../src/tape/tape-cursor.js';

const T0 = 1_796_600_000_000_000_000n;
const frame = (n: number): Buffer => encodeRecord(RECORD_TYPES.frameJson, T0 + BigInt(n), Buffer.from(`[{"T":"t","S":"AAPL","i":${n}}]`));

async function readAll(dir: string, fromNs = 0n): Promise<bigint[]> {
  const cursor = await TapeCursor.open(dir, 'v2/iex', fromNs);
  const out: bigint[] = [];
  for (let records = await cursor.next(); records.length > 0; records = await cursor.next()) out.push(...records.map((r) => r.ns));
  await cursor.close();
  return out;
}

t.test('a record is read only when its length and checksum hold', async (t) => {
  const record = frame(1);
  const read = readRecord(record, 0);
  t.match(read, { status: 'record', end: record.length, record: { type: 'frame', ns: T0 + 1n, encoding: 'json' } });
  t.same(readRecord(record.subarray(0, 10), 0), { status: 'short', need: 17 });
  t.same(readRecord(record.subarray(0, record.length - 1), 0), { status: 'short', need: record.length });
  for (let i = 4; i < record.length; i += 7) {
    const flipped = Buffer.from(record);
    flipped[i] = (flipped[i] as number) ^ 0x40;
    t.equal(readRecord(flipped, 0).status, 'damaged', `a bit flipped at byte ${i}`);
  }
  const huge = Buffer.from(record);
  huge.writeUInt32LE(MAX_RECORD_BYTES + 1, 0);
  t.match(readRecord(huge, 0), { status: 'damaged', reason: /record length/ }, 'a length no record has is damage, not a wait for 64 MiB');
  t.match(readRecord(encodeRecord(9 as never, T0, Buffer.from('x')), 0), { status: 'damaged', reason: 'record type 9' });
  t.match(readRecord(encodeRecord(RECORD_TYPES.mark, T0, Buffer.from('{not json')), 0), { status: 'damaged', reason: 'mark is not JSON' });
});

t.test('segment names are the first record’s time, fixed width, so they sort as times do', async (t) => {
  t.equal(segmentStem(1_796_596_964_271_547_582n), '20261206T224244.271547582Z');
  t.equal(segmentStem(1_796_596_964_000_000_000n), '20261206T224244.000000000Z');
  t.equal(parseSegmentStem('20261206T224244.271547582Z'), 1_796_596_964_271_547_582n);
  t.equal(parseSegmentStem('20261206T224244Z'), undefined);
  t.equal(parseSegmentStem('notes'), undefined);
});

t.test('damage in the middle of a segment stops that segment there; the next segment is read; a damaged index costs a scan, not records', async (t) => {
  const dir = t.testdir({ 'v2/iex': {} });
  const folder = join(dir, 'v2/iex');
  const first = [SEGMENT_MAGIC, encodeMark(T0, { event: 'segment', stream: 'v2/iex', kind: 'stocks', session: null, live: true, version: 1 })];
  for (let n = 1; n <= 10; n++) first.push(frame(n));
  const bytes = Buffer.concat(first);
  const damageAt = bytes.indexOf(Buffer.from('"i":6')); // inside record 6
  bytes[damageAt] = 0x21;
  await writeFile(join(folder, `${segmentStem(T0)}.tape`), bytes);
  const second = Buffer.concat([SEGMENT_MAGIC, frame(20), frame(21)]);
  await writeFile(join(folder, `${segmentStem(T0 + 20n)}.tape`), second);
  // An index whose only time entry points into the middle of a record.
  await writeFile(join(folder, `${segmentStem(T0 + 20n)}.idx`), encodeIndexEntry({ ns: T0 + 20n, offset: SEGMENT_MAGIC.length + 5, messages: 0, kind: INDEX_KINDS.time }));
  await writeFile(join(folder, 'README.txt'), 'not a segment');
  await writeFile(join(folder, 'garbage.tape'), 'not named as a segment');
  t.equal((await listSegments(folder)).length, 2, 'files not named as segments are not segments');
  t.same(await readAll(dir), [T0, ...[1, 2, 3, 4, 5].map((n) => T0 + BigInt(n)), T0 + 20n, T0 + 21n], 'up to the damage, then the next segment whole');
  t.same(await readAll(dir, T0 + 21n), [T0 + 21n], 'a seek through a damaged index entry still finds its record');
  t.equal(await readFile(join(folder, 'README.txt'), 'utf8'), 'not a segment');
});
