/**
 * A stream's tape on disk: `TAPE_DIR/{stream path}/` holds segments named by their first record's
 * receive time (`20261206T223007.123456789Z.tape`, so names sort as times do), each with a sparse
 * index beside it (`.idx`): fixed 20-byte entries, one every INDEX_INTERVAL_BYTES of records, one
 * per mark, and one at the end of a closed segment. A seek reads the index (a few KiB) and scans at
 * most one interval; `tape ls` reads indexes only.
 *
 *   index entry: u64 LE receive time (ns) · u32 LE offset · u32 LE data messages before it · u8 kind · 3 zero bytes
 *
 * The index is a hint: every record it points at is still checked by its CRC.
 */
import { open, readdir, readFile, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Timestamp } from '../protocol/timestamp.js';
import { readRecord, SEGMENT_MAGIC, type TapeRecord } from './record.js';

export const SEGMENT_SUFFIX = '.tape';
export const INDEX_SUFFIX = '.idx';
export const INDEX_ENTRY_BYTES = 20;
/** Records between two time-index entries: a seek scans at most this much of a segment. */
export const INDEX_INTERVAL_BYTES = 64 * 1024;
/** How much of a segment one read takes. */
export const READ_CHUNK_BYTES = 1024 * 1024;
/** The first read after a seek: the instant is at most one index interval on, so two suffice. */
export const SEEK_CHUNK_BYTES = 2 * INDEX_INTERVAL_BYTES;

const EMPTY = Buffer.alloc(0);

export const INDEX_KINDS = { time: 0, mark: 1, end: 2 } as const;
export type IndexKind = (typeof INDEX_KINDS)[keyof typeof INDEX_KINDS];

export interface IndexEntry {
  readonly ns: bigint;
  readonly offset: number;
  /** data messages in the segment before this record (for `end`: in the whole segment) */
  readonly messages: number;
  readonly kind: IndexKind;
}

export function encodeIndexEntry(entry: IndexEntry): Buffer {
  const buf = Buffer.alloc(INDEX_ENTRY_BYTES);
  buf.writeBigUInt64LE(entry.ns, 0);
  buf.writeUInt32LE(entry.offset, 8);
  buf.writeUInt32LE(entry.messages, 12);
  buf.writeUInt8(entry.kind, 16);
  return buf;
}

/** The entries of an index file's bytes; a torn last entry is left out. */
export function decodeIndex(buf: Buffer): IndexEntry[] {
  const entries: IndexEntry[] = [];
  for (let p = 0; p + INDEX_ENTRY_BYTES <= buf.length; p += INDEX_ENTRY_BYTES) {
    const kind = buf.readUInt8(p + 16);
    if (kind > 2) break; // damage: the entries after it cannot be trusted either
    entries.push({ ns: buf.readBigUInt64LE(p), offset: buf.readUInt32LE(p + 8), messages: buf.readUInt32LE(p + 12), kind: kind as IndexKind });
  }
  return entries;
}

/** `20261206T223007.123456789Z` for a receive time: fixed width, so names sort as times do. */
export function segmentStem(ns: bigint): string {
  return Timestamp.fromEpochNanos(ns)
    .toString()
    .replace(/[-:]/g, '')
    .replace(/(\.\d*)?Z$/, (_, frac: string | undefined) => `.${(frac ?? '.').slice(1).padEnd(9, '0')}Z`);
}

const STEM = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})\.(\d{9})Z$/;

/** The start time a segment's file name says, or undefined for a name that is no segment's. */
export function parseSegmentStem(stem: string): bigint | undefined {
  const m = STEM.exec(stem);
  if (m === null) return undefined;
  return Timestamp.parse(`${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}.${m[7]}Z`).toEpochNanos();
}

export interface SegmentFile {
  /** the first record's receive time, from the name */
  readonly startNs: bigint;
  readonly path: string;
  readonly indexPath: string;
}

/** The segments of one stream's folder, oldest first (none if the folder does not exist). */
export async function listSegments(dir: string): Promise<SegmentFile[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const segments: SegmentFile[] = [];
  for (const name of names) {
    if (!name.endsWith(SEGMENT_SUFFIX)) continue;
    const stem = name.slice(0, -SEGMENT_SUFFIX.length);
    const startNs = parseSegmentStem(stem);
    if (startNs !== undefined) segments.push({ startNs, path: join(dir, name), indexPath: join(dir, stem + INDEX_SUFFIX) });
  }
  return segments.sort((a, b) => (a.startNs < b.startNs ? -1 : a.startNs > b.startNs ? 1 : 0));
}

/** A segment's index entries; none when the index is missing. */
export async function readIndex(segment: SegmentFile): Promise<IndexEntry[]> {
  try {
    return decodeIndex(await readFile(segment.indexPath));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/** Where a seek to `ns` starts scanning: the last time or mark entry before `ns`, else the first record. */
export function seekOffset(entries: readonly IndexEntry[], ns: bigint): number {
  let lo = 0;
  let hi = entries.length - 1;
  let found = SEGMENT_MAGIC.length;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const entry = entries[mid] as IndexEntry;
    if (entry.ns < ns && entry.kind !== INDEX_KINDS.end) {
      found = entry.offset;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return found;
}

/** What reading a segment from an offset found. */
export interface ScanEnd {
  /** the offset after the last whole record */
  readonly end: number;
  /** why reading stopped before the file's end (a torn or damaged tail), if it did */
  readonly damage?: string;
}

/**
 * Reads one segment's records from `offset`, a chunk at a time: each call of `next` gives the
 * whole records of the next chunk (views of it), or an empty list at the end, where `end` says
 * how far the records went. One reader per replay or scan; `close` releases the file.
 */
export class SegmentReader {
  readonly segment: SegmentFile;
  #handle: FileHandle | undefined;
  #position: number;
  #carry: Buffer = EMPTY;
  /** bytes the record at the carry's start needs */
  #need = 0;
  #done = false;
  #damage: string | undefined;
  readonly #chunkBytes: number;
  /** the size of the next read, until it has been made once */
  #firstChunkBytes: number | undefined;

  /** where reading began */
  readonly startOffset: number;

  private constructor(segment: SegmentFile, handle: FileHandle, offset: number, chunkBytes: number, firstChunkBytes?: number) {
    this.segment = segment;
    this.#handle = handle;
    this.#position = offset;
    this.startOffset = offset;
    this.#chunkBytes = chunkBytes;
    this.#firstChunkBytes = firstChunkBytes;
  }

  /**
   * Opens a segment to read from `offset` (default: its first record).
   * @returns undefined when the segment is gone (retention deleted it) or is not a tape segment
   */
  static async open(segment: SegmentFile, offset = SEGMENT_MAGIC.length, chunkBytes = READ_CHUNK_BYTES, firstChunkBytes?: number): Promise<SegmentReader | undefined> {
    let handle: FileHandle;
    try {
      handle = await open(segment.path, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    const magic = Buffer.alloc(SEGMENT_MAGIC.length);
    const { bytesRead } = await handle.read(magic, 0, magic.length, 0);
    if (bytesRead !== magic.length || !magic.equals(SEGMENT_MAGIC)) {
      await handle.close();
      return undefined;
    }
    return new SegmentReader(segment, handle, Math.max(offset, SEGMENT_MAGIC.length), chunkBytes, firstChunkBytes);
  }

  /** The offset after the last whole record read so far. */
  get end(): number {
    return this.#position - this.#carry.length;
  }

  get damage(): string | undefined {
    return this.#damage;
  }

  /** The whole records of the next chunk; empty once the segment's records end. */
  async next(): Promise<TapeRecord[]> {
    while (!this.#done) {
      const handle = this.#handle as FileHandle;
      const carried = this.#carry.length;
      const want = Math.max(this.#firstChunkBytes ?? this.#chunkBytes, this.#need);
      this.#firstChunkBytes = undefined;
      const chunk = Buffer.allocUnsafe(want);
      this.#carry.copy(chunk, 0);
      const { bytesRead } = await handle.read(chunk, carried, want - carried, this.#position);
      const base = this.#position - carried;
      this.#position += bytesRead;
      const buf = chunk.subarray(0, carried + bytesRead);
      const records: TapeRecord[] = [];
      let pos = 0;
      for (;;) {
        const result = readRecord(buf, pos, base);
        if (result.status === 'record') {
          records.push(result.record);
          pos = result.end;
        } else {
          if (result.status === 'damaged') {
            this.#damage = result.reason;
            this.#done = true;
          } else {
            this.#need = result.need;
          }
          break;
        }
      }
      this.#carry = pos < buf.length ? Buffer.from(buf.subarray(pos)) : EMPTY;
      if (bytesRead === 0 && !this.#done) {
        // The file ends inside a record: a torn tail (or, on a segment being recorded, one being written).
        if (this.#carry.length > 0) this.#damage = 'torn record at the end';
        this.#done = true;
      }
      if (records.length > 0) return records;
    }
    return [];
  }

  async close(): Promise<void> {
    const handle = this.#handle;
    this.#handle = undefined;
    await handle?.close();
  }
}

/**
 * The record at `offset` of an open segment (one small read, more only for a large record), or
 * undefined when there is no whole record there.
 */
export async function readRecordAt(handle: FileHandle, offset: number): Promise<TapeRecord | undefined> {
  let buf = Buffer.alloc(4096);
  for (;;) {
    const { bytesRead } = await handle.read(buf, 0, buf.length, offset);
    const result = readRecord(buf.subarray(0, bytesRead), 0, offset);
    if (result.status === 'record') return result.record;
    if (result.status === 'damaged' || bytesRead < buf.length || result.need <= buf.length) return undefined;
    buf = Buffer.alloc(result.need);
  }
}

/** The size of a file, or undefined when it is gone. */
export async function fileSize(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}
