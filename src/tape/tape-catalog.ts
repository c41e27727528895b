/**
 * What a tape folder holds, read from the segments' indexes (and the short unindexed tail of a
 * segment still being written): per stream its time range, bytes, data messages and gaps — the
 * recorder's gap marks and the times the vendor link was down. `GET /tape` and `tickmux tape ls`
 * show it; a replay takes its default end from it.
 */
import { type FileHandle, open, readdir } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { streamKindOf } from '../protocol/streams.js';
import { dataMessagesOf, type Mark, type TapeRecord } from './record.js';
import { fileSize, INDEX_KINDS, type IndexEntry, listSegments, readIndex, readRecordAt, type SegmentFile, SegmentReader } from './segment-files.js';

export interface TapeGap {
  /** ns since the epoch */
  readonly fromNs: bigint;
  readonly toNs: bigint | undefined;
  readonly reason: string;
}

export interface StreamTape {
  readonly stream: string;
  readonly fromNs: bigint | undefined;
  readonly toNs: bigint | undefined;
  readonly bytes: number;
  readonly messages: number;
  readonly segments: number;
  readonly gaps: TapeGap[];
}

/** The stream paths recorded under `dir` (folders holding segments, at any depth a stream path has). */
export async function recordedStreams(dir: string): Promise<string[]> {
  const found: string[] = [];
  async function walk(folder: string, depth: number): Promise<void> {
    let entries;
    try {
      entries = await readdir(folder, { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return;
      throw err;
    }
    const path = relative(dir, folder).split(sep).join('/');
    if (streamKindOf(path) !== undefined) {
      found.push(path);
      return;
    }
    if (depth >= 3) return;
    for (const entry of entries) if (entry.isDirectory()) await walk(join(folder, entry.name), depth + 1);
  }
  await walk(dir, 0);
  return found.sort();
}

/** The records of one segment from `offset` to its end (an index's unindexed tail: at most 64 KiB and its marks). */
async function recordsFrom(segment: SegmentFile, offset: number): Promise<TapeRecord[]> {
  const reader = await SegmentReader.open(segment, offset, 64 * 1024);
  if (reader === undefined) return [];
  const out: TapeRecord[] = [];
  try {
    for (let records = await reader.next(); records.length > 0; records = await reader.next()) out.push(...records);
  } finally {
    await reader.close();
  }
  return out;
}

interface SegmentSummary {
  readonly firstNs: bigint | undefined;
  readonly lastNs: bigint | undefined;
  readonly messages: number;
  readonly bytes: number;
  /** its marks, in order */
  readonly marks: { ns: bigint; mark: Mark }[];
}

async function summarizeSegment(segment: SegmentFile): Promise<SegmentSummary> {
  const bytes = (await fileSize(segment.path)) ?? 0;
  const entries = await readIndex(segment);
  const end = entries.find((e) => e.kind === INDEX_KINDS.end);
  const marks: { ns: bigint; mark: Mark }[] = [];
  const markEntries = entries.filter((e) => e.kind === INDEX_KINDS.mark);
  if (markEntries.length > 0) {
    let handle: FileHandle | undefined;
    try {
      handle = await open(segment.path, 'r');
      for (const entry of markEntries) {
        const record = await readRecordAt(handle, entry.offset);
        if (record?.type === 'mark') marks.push({ ns: record.ns, mark: record.mark });
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err; // deleted by retention meanwhile
    } finally {
      await handle?.close();
    }
  }
  if (end !== undefined) return { firstNs: entries[0]?.ns, lastNs: end.ns, messages: end.messages, bytes, marks };
  // Still being written (or its index lost entries): read what follows the last entry.
  const last: IndexEntry | undefined = entries.filter((e) => e.kind !== INDEX_KINDS.end).at(-1);
  const tail = await recordsFrom(segment, last?.offset ?? 0);
  let messages = last?.messages ?? 0;
  // The tail starts at the last entry, which may be a mark read above already.
  const seen = new Set(markEntries.map((e) => e.offset));
  for (const record of tail) {
    messages += dataMessagesOf(record);
    if (record.type === 'mark' && !seen.has(record.offset)) marks.push({ ns: record.ns, mark: record.mark });
  }
  return { firstNs: entries[0]?.ns ?? tail[0]?.ns, lastNs: tail.at(-1)?.ns ?? last?.ns, messages, bytes, marks };
}

/** One stream's tape: range, size, messages, and its gaps (recorder gaps and vendor outages). */
export async function summarizeStream(dir: string, stream: string): Promise<StreamTape> {
  const segments = await listSegments(join(dir, stream));
  let fromNs: bigint | undefined;
  let toNs: bigint | undefined;
  let bytes = 0;
  let messages = 0;
  const gaps: TapeGap[] = [];
  let down: { ns: bigint; reason: string } | undefined;
  for (const segment of segments) {
    const summary = await summarizeSegment(segment);
    fromNs ??= summary.firstNs;
    toNs = summary.lastNs ?? toNs;
    bytes += summary.bytes;
    messages += summary.messages;
    for (const { ns, mark } of summary.marks) {
      if (mark.event === 'tape_gap') gaps.push({ fromNs: BigInt(mark.from), toNs: BigInt(mark.to), reason: mark.reason });
      else if (mark.event === 'upstream_down') down ??= { ns, reason: `vendor link ${mark.state}${mark.reason === null ? '' : `: ${mark.reason}`}` };
      else if (mark.event === 'upstream_up' && down !== undefined) {
        gaps.push({ fromNs: down.ns, toNs: ns, reason: down.reason });
        down = undefined;
      }
    }
  }
  if (down !== undefined) gaps.push({ fromNs: down.ns, toNs: undefined, reason: down.reason });
  gaps.sort((a, b) => (a.fromNs < b.fromNs ? -1 : a.fromNs > b.fromNs ? 1 : 0));
  return { stream, fromNs, toNs, bytes, messages, segments: segments.length, gaps };
}
