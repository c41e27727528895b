/**
 * What a crash leaves of a segment, made whole again at start: a torn or damaged tail is cut off
 * at the last whole record, index entries pointing past it go, entries the crash kept from being
 * written are rebuilt from the records, and the segment gets its end entry. Only a stream's last
 * segment can be torn (the others were closed before it began).
 */
import { rm, truncate, writeFile } from 'node:fs/promises';
import { dataMessagesOf, SEGMENT_MAGIC } from './record.js';
import {
  encodeIndexEntry,
  fileSize,
  INDEX_INTERVAL_BYTES,
  INDEX_KINDS,
  type IndexEntry,
  readIndex,
  type SegmentFile,
  SegmentReader,
} from './segment-files.js';

export interface Repair {
  /** bytes cut off the end */
  readonly truncatedBytes: number;
  /** what was wrong with them */
  readonly damage?: string;
  /** the last whole record's receive time (undefined: no record at all) */
  readonly lastNs: bigint | undefined;
}

/** Repairs `segment` in place (see the module comment). */
export async function repairSegment(segment: SegmentFile): Promise<Repair> {
  const size = (await fileSize(segment.path)) ?? 0;
  const reader = await SegmentReader.open(segment);
  if (reader === undefined) {
    // Created but never given its magic (a crash at the very start of a segment): nothing to keep.
    await rm(segment.path, { force: true });
    await rm(segment.indexPath, { force: true });
    return { truncatedBytes: size, damage: 'no segment header', lastNs: undefined };
  }
  const old = (await readIndex(segment)).filter((e) => e.kind !== INDEX_KINDS.end && e.offset < size);
  // Rescan from the last entry that still points at a whole record (the index is written after its records).
  const resumeAt = old.at(-1);
  let kept: IndexEntry[] = old.slice(0, -1);
  await reader.close();
  const scan = await SegmentReader.open(segment, resumeAt?.offset);
  if (scan === undefined) return { truncatedBytes: 0, lastNs: undefined };
  let messages = resumeAt?.messages ?? 0;
  let lastIndexedAt = 0;
  let lastNs: bigint | undefined = resumeAt?.ns;
  let first = true;
  try {
    for (let records = await scan.next(); records.length > 0; records = await scan.next()) {
      for (const record of records) {
        const isMark = record.type !== 'frame';
        if (first || isMark || record.offset - lastIndexedAt >= INDEX_INTERVAL_BYTES) {
          kept.push({ ns: record.ns, offset: record.offset, messages, kind: isMark ? INDEX_KINDS.mark : INDEX_KINDS.time });
          lastIndexedAt = record.offset;
          first = false;
        }
        messages += dataMessagesOf(record);
        lastNs = record.ns;
      }
    }
  } finally {
    await scan.close();
  }
  const end = Math.max(scan.end, SEGMENT_MAGIC.length);
  if (resumeAt !== undefined && first) {
    // The entry pointed at damage: it goes, and so does what it said of the last record.
    kept = old.slice(0, -1);
    lastNs = kept.at(-1)?.ns;
  }
  const truncatedBytes = size - end;
  if (truncatedBytes > 0) await truncate(segment.path, end);
  kept.push({ ns: lastNs ?? 0n, offset: end, messages, kind: INDEX_KINDS.end });
  await writeFile(segment.indexPath, Buffer.concat(kept.map(encodeIndexEntry)));
  return { truncatedBytes, damage: truncatedBytes > 0 ? (scan.damage ?? 'torn record at the end') : undefined, lastNs };
}
