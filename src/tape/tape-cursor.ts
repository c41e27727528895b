/**
 * Reads one stream's tape in recorded order from an instant on, across its segments. Opening at an
 * instant is a seek: the segment by its name (binary search over the sorted names), the record by
 * the segment's sparse index (binary search), then a scan of at most one index interval — never a
 * read of the tape before it. What the segment holds before the instant (its book checkpoint and
 * the frames since) is read only when asked for (`prelude`), for a replay that needs the books.
 */
import { join } from 'node:path';
import { SEGMENT_MAGIC, type TapeRecord } from './record.js';
import { listSegments, READ_CHUNK_BYTES, readIndex, SEEK_CHUNK_BYTES, type SegmentFile, SegmentReader, seekOffset } from './segment-files.js';

/** The last segment that starts at or before `ns` (the first, if `ns` precedes them all). */
export function segmentAt(segments: readonly SegmentFile[], ns: bigint): number {
  let lo = 0;
  let hi = segments.length - 1;
  let found = 0;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if ((segments[mid] as SegmentFile).startNs <= ns) {
      found = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return found;
}

export class TapeCursor {
  readonly #segments: readonly SegmentFile[];
  readonly #fromNs: bigint;
  #index: number;
  #reader: SegmentReader | undefined;
  /** records of the first chunk before `fromNs`, dropped */
  #seeking = true;
  #closed = false;

  private constructor(segments: readonly SegmentFile[], index: number, fromNs: bigint) {
    this.#segments = segments;
    this.#index = index;
    this.#fromNs = fromNs;
  }

  /** A cursor on `TAPE_DIR/{stream}` at the first record at or after `fromNs`. */
  static async open(dir: string, stream: string, fromNs: bigint): Promise<TapeCursor> {
    const segments = await listSegments(join(dir, stream));
    const cursor = new TapeCursor(segments, segmentAt(segments, fromNs), fromNs);
    await cursor.#seek();
    return cursor;
  }

  /** The segment the cursor starts in, if any (its checkpoint is the books as of its start). */
  get startSegment(): SegmentFile | undefined {
    return this.#segments[this.#index];
  }

  async #seek(): Promise<void> {
    const segment = this.#segments[this.#index];
    if (segment === undefined) return;
    const offset = seekOffset(await readIndex(segment), this.#fromNs);
    // A small first read: a seek to a cold segment waits for 128 KiB from the disk, not 1 MiB.
    this.#reader = await SegmentReader.open(segment, offset, READ_CHUNK_BYTES, SEEK_CHUNK_BYTES);
  }

  /**
   * Every record of the start segment before `fromNs`, in order, a chunk at a time: `each` gets
   * them (checkpoint, frames, marks). For building the books as of `fromNs`; costs up to one
   * segment's read.
   */
  async prelude(each: (records: readonly TapeRecord[]) => void): Promise<void> {
    const segment = this.startSegment;
    if (segment === undefined || segment.startNs > this.#fromNs) return;
    const reader = await SegmentReader.open(segment);
    if (reader === undefined) return;
    try {
      for (let records = await reader.next(); records.length > 0; records = await reader.next()) {
        const before = records.filter((r) => r.ns < this.#fromNs);
        if (before.length > 0) each(before);
        if (before.length < records.length) return;
      }
    } finally {
      await reader.close();
    }
  }

  /** The next records in order (a chunk's worth), or an empty list at the end of the tape. */
  async next(): Promise<TapeRecord[]> {
    while (!this.#closed) {
      if (this.#reader === undefined) {
        if (++this.#index >= this.#segments.length) return [];
        this.#reader = await SegmentReader.open(this.#segments[this.#index] as SegmentFile);
        continue; // a segment retention deleted meanwhile is skipped
      }
      let records = await this.#reader.next();
      if (records.length === 0) {
        const reader = this.#reader;
        await reader.close();
        this.#reader = undefined;
        // An index entry that points at no record (a damaged index): the segment is scanned from its start instead.
        if (this.#seeking && reader.damage !== undefined && reader.startOffset > SEGMENT_MAGIC.length) {
          this.#reader = await SegmentReader.open(reader.segment);
        }
        continue;
      }
      if (this.#seeking) {
        records = records.filter((r) => r.ns >= this.#fromNs);
        if (records.length > 0) this.#seeking = false;
        else continue;
      }
      return records;
    }
    return [];
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#reader?.close();
    this.#reader = undefined;
  }
}
