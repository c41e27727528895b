/**
 * Records one stream's vendor frames to its segment files (DESIGN.md §12), off the delivery path:
 * `frame()` is called as each vendor frame arrives and only queues its bytes (no copy: the frame
 * is the vendor's buffer, kept until written); the queue is written once per event-loop turn, one
 * write in flight at a time, and made durable every `fsyncMs`. The queue is bounded: a disk that
 * cannot keep up, or refuses writes, costs recording, never the clients — what could not be kept
 * becomes one gap mark, the recorder says it is degraded, and it resumes by itself.
 *
 * Segments rotate at `segmentBytes` and at each UTC hour. Each starts with a `segment` mark and a
 * checkpoint of the order books as they are at that record, so a replay starting in a segment
 * needs nothing before it. After a restart, the last segment's torn tail is truncated and its index
 * repaired, and recording continues in a new segment after a gap mark for the time it was down.
 */
import { mkdir, open as openFile, truncate, type FileHandle } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import { OrderBooks } from '../hub/order-books.js';
import { type Encoding, joinFrame, type MessageUnit } from '../protocol/frame.js';
import type { StreamKind } from '../protocol/streams.js';
import { frameType, type Mark, RECORD_TYPES, recordHeader, SEGMENT_MAGIC } from './record.js';
import { repairSegment } from './segment-repair.js';
import {
  encodeIndexEntry,
  INDEX_ENTRY_BYTES,
  INDEX_INTERVAL_BYTES,
  INDEX_KINDS,
  INDEX_SUFFIX,
  type IndexKind,
  listSegments,
  SEGMENT_SUFFIX,
  segmentStem,
} from './segment-files.js';

/** The file operations the recorder uses; tests inject failures through them. */
export interface TapeFiles {
  mkdir(path: string): Promise<unknown>;
  /** opens for appending, creating the file */
  openAppend(path: string): Promise<Pick<FileHandle, 'writev' | 'datasync' | 'close'>>;
  truncate(path: string, length: number): Promise<void>;
}

export const nodeTapeFiles: TapeFiles = {
  mkdir: (path) => mkdir(path, { recursive: true }),
  openAppend: (path) => openFile(path, 'a'),
  truncate: (path, length) => truncate(path, length),
};

export type RecorderState = 'starting' | 'recording' | 'degraded' | 'stopped';

export interface StreamRecorderOptions {
  /** `TAPE_DIR/{stream path}` */
  readonly dir: string;
  readonly stream: string;
  readonly kind: StreamKind;
  readonly segmentBytes: number;
  readonly fsyncMs: number;
  /** bytes queued for writing before frames are dropped (a gap) */
  readonly queueBytes: number;
  /** how long after a failed write recording is tried again */
  readonly retryMs?: number;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly files?: TapeFiles;
}

export interface RecorderStats {
  /** data messages queued for the tape */
  messages: number;
  /** bytes written (records and indexes) */
  bytesWritten: number;
  /** data messages dropped: the queue was full or the disk refused them */
  droppedMessages: number;
  writeErrors: number;
  gaps: number;
  segments: number;
  /** torn tails truncated at start */
  truncatedTails: number;
}

const HOUR_NS = 3_600_000_000_000n;
const DEFAULT_RETRY_MS = 1000;

/** A segment being written: what has been appended to it and where its writes stand. */
interface OpenSegment {
  readonly startNs: bigint;
  readonly path: string;
  readonly indexPath: string;
  readonly hour: bigint;
  /** bytes appended so far (queued or written), the magic included: the next record's offset */
  planned: number;
  /** data messages appended so far */
  messages: number;
  lastIndexedAt: number;
  lastNs: bigint;
  /** bytes known to be on disk */
  written: number;
  handle?: Pick<FileHandle, 'writev' | 'datasync' | 'close'>;
  index?: Pick<FileHandle, 'writev' | 'datasync' | 'close'>;
  /** records and index entries queued for it */
  buffers: Buffer[];
  indexBuffers: Buffer[];
  /** data messages and the earliest receive time among the queued buffers (for a gap if they are lost) */
  queuedMessages: number;
  queuedFromNs: bigint | undefined;
  /** gaps whose marks are among the queued buffers */
  closesGaps: Gap[];
  /** the same of the write in flight, until it is known to be on disk */
  inFlight?: { readonly messages: number; readonly fromNs: bigint | undefined; readonly closesGaps: readonly Gap[] };
}

/** An open gap: nothing has been kept since `fromNs`. */
interface Gap {
  readonly fromNs: bigint;
  readonly reason: string;
  messages: number;
}

export class StreamRecorder {
  readonly stream: string;
  readonly #options: StreamRecorderOptions;
  readonly #files: TapeFiles;
  readonly #logger: Logger;
  readonly #clock: Clock;
  /** the books as of the last recorded frame, for each segment's checkpoint */
  readonly #books: OrderBooks | undefined;
  #state: RecorderState = 'starting';
  #reason: string | undefined;
  /** segments with queued writes, oldest first; the last is the one being appended to */
  #segments: OpenSegment[] = [];
  #queuedBytes = 0;
  #pumping = false;
  #pumpScheduled = false;
  #unsynced = false;
  #syncing: Promise<void> | undefined;
  #fsyncTimer: unknown;
  #retryTimer: unknown;
  #gap: Gap | undefined;
  /** receive times are strictly increasing within a stream: each record's is its own (a seek and the catalog rely on it) */
  #lastNs = 0n;
  #writtenNs: bigint | undefined;
  #session: string | null = null;
  #live = false;
  #started: Promise<void> | undefined;
  #stopped: Promise<void> | undefined;
  readonly #idle = new Set<() => void>();
  readonly stats: RecorderStats = { messages: 0, bytesWritten: 0, droppedMessages: 0, writeErrors: 0, gaps: 0, segments: 0, truncatedTails: 0 };

  constructor(options: StreamRecorderOptions) {
    this.stream = options.stream;
    this.#options = options;
    this.#files = options.files ?? nodeTapeFiles;
    this.#logger = options.logger.child({ component: 'tape', stream: options.stream });
    this.#clock = options.clock;
    this.#books = OrderBooks.for(options.kind, this.#logger);
  }

  get state(): RecorderState {
    return this.#state;
  }

  /** Why recording is degraded, while it is. */
  get reason(): string | undefined {
    return this.#reason;
  }

  /** Bytes waiting to be written. */
  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  /** The receive time of the last record handed to the tape (written or queued). */
  get lastNs(): bigint {
    return this.#lastNs;
  }

  /** The receive time of the last record known to be written (a reader finds every record up to it). */
  get writtenNs(): bigint | undefined {
    return this.#writtenNs;
  }

  /**
   * Repairs what a crash left of the last segment, then opens a new segment. A disk that refuses
   * even this leaves the recorder degraded and retrying, never the gateway stopped.
   */
  start(): Promise<void> {
    this.#started ??= this.#start();
    return this.#started;
  }

  async #start(): Promise<void> {
    let previousEnd: bigint | undefined;
    try {
      await this.#files.mkdir(this.#options.dir);
      const segments = await listSegments(this.#options.dir);
      const last = segments.at(-1);
      if (last !== undefined) {
        const repair = await repairSegment(last);
        if (repair.truncatedBytes > 0) {
          this.stats.truncatedTails += 1;
          this.#logger.warn({ segment: last.path, truncatedBytes: repair.truncatedBytes, damage: repair.damage }, 'tape: torn tail truncated');
        }
        previousEnd = repair.lastNs;
        this.#writtenNs = previousEnd;
        if (previousEnd !== undefined && previousEnd > this.#lastNs) this.#lastNs = previousEnd;
      }
    } catch (err) {
      this.#failed(err, 'could not open the tape folder');
      return;
    }
    if (this.#state === 'stopped') return;
    const now = this.#now();
    if (previousEnd !== undefined) this.#gap = { fromNs: previousEnd + 1n, reason: 'recorder not running (gateway stopped or restarted)', messages: 0 };
    this.#openSegment(now);
    if (this.#gap !== undefined) this.#closeGap(this.#now());
    this.#setState('recording');
    this.#scheduleFsync();
  }

  /** A vendor frame as it arrived: queued with its receive time (now). `messages`: its data messages. */
  frame(bytes: Buffer, encoding: Encoding, messages: number): void {
    if (this.#state === 'stopped' || this.#state === 'starting') return;
    let ns = this.#now();
    this.stats.messages += messages;
    if (this.#segments.length === 0 || this.#queuedBytes + bytes.length > this.#options.queueBytes) {
      this.#drop(ns, messages, this.#segments.length === 0 ? (this.#reason ?? 'disk unavailable') : 'write queue full (the disk is too slow)');
      return;
    }
    if (this.#gap !== undefined) {
      // The gap ends as this frame arrives; its mark goes first, a nanosecond before the frame.
      this.#closeGap(ns);
      ns = this.#now();
    }
    this.#append(frameType(encoding), ns, bytes, messages);
  }

  /** The hub's view of a frame's data, for the books a checkpoint holds. */
  books(units: readonly MessageUnit[]): void {
    this.#books?.apply(units);
  }

  /** The vendor link became live (a new session) or left live. */
  link(live: boolean, details: { state: string; reason?: string }): void {
    if (live === this.#live) return;
    this.#live = live;
    if (!live) this.#books?.clear();
    const ns = this.#now();
    if (live) this.#session = ns.toString();
    this.#mark(ns, live ? { event: 'upstream_up', session: this.#session as string } : { event: 'upstream_down', state: details.state, reason: details.reason ?? null });
  }

  /** The vendor acknowledged a different set (only the kind's non-empty channels are kept). */
  subscriptions(set: Readonly<Record<string, readonly string[]>>): void {
    const lists = Object.fromEntries(this.#options.kind.channels.flatMap((c) => ((set[c]?.length ?? 0) > 0 ? [[c, set[c] as readonly string[]]] : [])));
    this.#mark(this.#now(), { event: 'subscriptions', set: lists });
  }

  /** Writes what is queued, closes the segment with its end entry, and stops. */
  stop(): Promise<void> {
    this.#stopped ??= this.#stop();
    return this.#stopped;
  }

  async #stop(): Promise<void> {
    this.#clock.clearTimeout(this.#fsyncTimer);
    this.#clock.clearTimeout(this.#retryTimer);
    if (this.#gap !== undefined) this.#closeGap(this.#now());
    this.#state = 'stopped';
    await this.#started;
    await this.#whenIdle();
    const current = this.#segments.at(-1);
    if (current !== undefined) await this.#closeSegment(current);
    this.#segments = [];
  }

  /** Resolves once everything queued so far is written (tests, shutdown). */
  flushed(): Promise<void> {
    this.#schedulePump();
    return this.#whenIdle();
  }

  #whenIdle(): Promise<void> {
    if (!this.#pumping && !this.#pumpScheduled) return Promise.resolve();
    return new Promise((resolve) => this.#idle.add(resolve));
  }

  #now(): bigint {
    let ns = this.#clock.nanos();
    if (ns <= this.#lastNs) ns = this.#lastNs + 1n;
    this.#lastNs = ns;
    return ns;
  }

  #setState(state: RecorderState, reason?: string): void {
    if (this.#state === 'stopped') return;
    if (state === this.#state && reason === this.#reason) return;
    const from = this.#state;
    this.#state = state;
    this.#reason = reason;
    if (state === 'degraded') this.#logger.error({ from, to: state, reason }, 'tape state');
    else this.#logger.info({ from, to: state }, 'tape state');
  }

  #drop(ns: bigint, messages: number, reason: string): void {
    this.stats.droppedMessages += messages;
    if (this.#gap === undefined) {
      this.#gap = { fromNs: ns, reason, messages: 0 };
      this.#setState('degraded', reason);
    }
    this.#gap.messages += messages;
  }

  /** Recording resumed: the gap becomes a mark at its place, before what follows it. */
  #closeGap(ns: bigint): void {
    const gap = this.#gap;
    if (gap === undefined || this.#segments.length === 0) return;
    this.#gap = undefined;
    this.stats.gaps += 1;
    this.#mark(ns, { event: 'tape_gap', from: gap.fromNs.toString(), to: ns.toString(), reason: gap.reason, messages: gap.messages });
    // Closed for good once its mark is on disk; a write that fails first reopens it (see #lose).
    (this.#segments.at(-1) as OpenSegment).closesGaps.push(gap);
  }

  #mark(ns: bigint, mark: Mark): void {
    if (this.#segments.length === 0) return;
    const payload = Buffer.from(JSON.stringify(mark));
    this.#appendRecord(recordHeader(RECORD_TYPES.mark, ns, payload), payload, ns, 0, INDEX_KINDS.mark, false);
  }

  #append(type: (typeof RECORD_TYPES)[keyof typeof RECORD_TYPES], ns: bigint, payload: Buffer, messages: number): void {
    const current = this.#segments.at(-1) as OpenSegment;
    let at = ns;
    if (current.planned >= this.#options.segmentBytes || ns / HOUR_NS !== current.hour) {
      // The new segment starts at the frame's receive time; its mark and checkpoint take the next
      // nanoseconds, so every record's time is distinct and in file order.
      this.#openSegment(ns);
      at = this.#now();
    }
    this.#appendRecord(recordHeader(type, at, payload), payload, at, messages, INDEX_KINDS.time, true);
  }

  #appendRecord(header: Buffer, payload: Buffer, ns: bigint, messages: number, kind: IndexKind, sparse: boolean): void {
    const segment = this.#segments.at(-1) as OpenSegment;
    if (!sparse || segment.planned - segment.lastIndexedAt >= INDEX_INTERVAL_BYTES || segment.lastIndexedAt === 0) {
      segment.indexBuffers.push(encodeIndexEntry({ ns, offset: segment.planned, messages: segment.messages, kind }));
      segment.lastIndexedAt = segment.planned;
    }
    segment.buffers.push(header, payload);
    segment.queuedFromNs ??= ns;
    segment.queuedMessages += messages;
    const bytes = header.length + payload.length;
    segment.planned += bytes;
    segment.messages += messages;
    segment.lastNs = ns;
    this.#queuedBytes += bytes;
    this.#schedulePump();
  }

  /** A new segment at `ns`: its magic, its `segment` mark and the books as they are now. */
  #openSegment(ns: bigint): void {
    const stem = segmentStem(ns);
    const segment: OpenSegment = {
      startNs: ns,
      path: `${this.#options.dir}/${stem}${SEGMENT_SUFFIX}`,
      indexPath: `${this.#options.dir}/${stem}${INDEX_SUFFIX}`,
      hour: ns / HOUR_NS,
      planned: SEGMENT_MAGIC.length,
      messages: 0,
      lastIndexedAt: 0,
      lastNs: ns,
      written: 0,
      buffers: [SEGMENT_MAGIC],
      indexBuffers: [],
      queuedMessages: 0,
      queuedFromNs: undefined,
      closesGaps: [],
    };
    this.#queuedBytes += SEGMENT_MAGIC.length;
    this.#segments.push(segment);
    this.stats.segments += 1;
    this.#mark(ns, { event: 'segment', stream: this.stream, kind: this.#options.kind.name, session: this.#live ? this.#session : null, live: this.#live, version: 1 });
    const resets = this.#books?.resets('*') ?? [];
    if (resets.length > 0) {
      const encoding = (resets[0] as MessageUnit).sourceEncoding;
      const payload = joinFrame(resets, encoding);
      const at = this.#now();
      this.#appendRecord(recordHeader(frameType(encoding, true), at, payload), payload, at, 0, INDEX_KINDS.mark, false);
    }
  }

  #schedulePump(): void {
    if (this.#pumping || this.#pumpScheduled) return;
    this.#pumpScheduled = true;
    // After the turn's frames: one write for all of them.
    setImmediate(() => {
      this.#pumpScheduled = false;
      void this.#pump();
    });
  }

  async #pump(): Promise<void> {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      while (this.#segments.length > 0) {
        const segment = this.#segments[0] as OpenSegment;
        if (segment.buffers.length > 0) {
          await this.#write(segment);
          continue;
        }
        if (this.#segments.length === 1) break;
        // An older segment with nothing left to write: the next one has begun.
        this.#segments.shift();
        await this.#closeSegment(segment);
        this.onRotate?.();
      }
    } catch (err) {
      this.#lose(err);
    } finally {
      this.#pumping = false;
      if (this.#segments.some((s) => s.buffers.length > 0)) this.#schedulePump();
      else {
        for (const resolve of this.#idle) resolve();
        this.#idle.clear();
      }
    }
  }

  /** Called after a segment was closed (the tape sweeps retention then). */
  onRotate: (() => void) | undefined;

  async #write(segment: OpenSegment): Promise<void> {
    segment.handle ??= await this.#files.openAppend(segment.path);
    segment.index ??= await this.#files.openAppend(segment.indexPath);
    const buffers = segment.buffers;
    const indexBuffers = segment.indexBuffers;
    const lastNs = segment.lastNs;
    const messages = segment.queuedMessages;
    const fromNs = segment.queuedFromNs;
    const closesGaps = segment.closesGaps;
    segment.closesGaps = [];
    segment.buffers = [];
    segment.indexBuffers = [];
    segment.queuedMessages = 0;
    segment.queuedFromNs = undefined;
    let bytes = 0;
    for (const b of buffers) bytes += b.length;
    segment.inFlight = { messages, fromNs, closesGaps };
    try {
      await segment.handle.writev(buffers);
      segment.written += bytes;
      // The index after its records: it never points past what is on disk.
      if (indexBuffers.length > 0) await segment.index.writev(indexBuffers);
      segment.inFlight = undefined;
    } finally {
      this.#queuedBytes -= bytes;
    }
    // Written: the gaps it closed are closed, and recording is whole again unless one is open.
    if (this.#state === 'degraded' && this.#gap === undefined) this.#setState('recording');
    this.#unsynced = true;
    this.#writtenNs = lastNs;
    this.stats.bytesWritten += bytes + indexBuffers.length * INDEX_ENTRY_BYTES;
  }

  async #closeSegment(segment: OpenSegment): Promise<void> {
    try {
      if (segment.handle !== undefined && segment.index !== undefined) {
        await segment.index.writev([encodeIndexEntry({ ns: segment.lastNs, offset: segment.written, messages: segment.messages, kind: INDEX_KINDS.end })]);
        await segment.handle.datasync();
        await segment.index.datasync();
      }
    } catch (err) {
      this.#lose(err);
    } finally {
      await Promise.allSettled([segment.handle?.close(), segment.index?.close()]);
      segment.handle = segment.index = undefined;
    }
  }

  /**
   * A write failed: everything queued is lost (one gap from its first record), the segment is cut
   * back to what was written, and recording starts over in a new segment after `retryMs`.
   */
  #lose(err: unknown): void {
    this.stats.writeErrors += 1;
    const segments = this.#segments;
    this.#segments = [];
    this.#queuedBytes = 0;
    let fromNs: bigint | undefined;
    let messages = 0;
    let reopened: Gap | undefined;
    for (const segment of segments) {
      // Gaps whose marks are lost with it are open again, from their start.
      for (const gap of [...(segment.inFlight?.closesGaps ?? []), ...segment.closesGaps]) {
        this.stats.gaps -= 1;
        reopened ??= { fromNs: gap.fromNs, reason: gap.reason, messages: 0 };
        reopened.messages += gap.messages;
      }
      // What was being written when it failed, then what waited behind it.
      fromNs ??= segment.inFlight?.fromNs ?? segment.queuedFromNs;
      messages += (segment.inFlight?.messages ?? 0) + segment.queuedMessages;
      void Promise.allSettled([segment.handle?.close(), segment.index?.close()]).then(() =>
        segment.written > 0 ? this.#files.truncate(segment.path, segment.written).catch(() => undefined) : undefined,
      );
    }
    const reason = `write failed: ${describe(err)}`;
    const ns = fromNs ?? this.#now();
    this.stats.droppedMessages += messages;
    if (reopened !== undefined) {
      reopened.messages += messages + (this.#gap?.messages ?? 0);
      this.#gap = reopened;
    } else if (this.#gap === undefined) {
      this.#gap = { fromNs: ns, reason, messages };
    } else {
      this.#gap.messages += messages;
    }
    this.#failed(err, 'tape write failed');
  }

  #failed(err: unknown, what: string): void {
    if (this.#state === 'stopped') return;
    const reason = `${what}: ${describe(err)}`;
    this.#setState('degraded', reason);
    this.#gap ??= { fromNs: this.#now(), reason, messages: 0 };
    this.#clock.clearTimeout(this.#retryTimer);
    this.#retryTimer = this.#clock.setTimeout(() => this.#retry(), this.#options.retryMs ?? DEFAULT_RETRY_MS);
  }

  /** After a failure: a new segment (the gap mark goes first in it); a failing disk fails again. */
  #retry(): void {
    this.#retryTimer = undefined;
    if (this.#state === 'stopped') return;
    void this.#files.mkdir(this.#options.dir).then(
      () => {
        if (this.#state === 'stopped') return;
        this.#openSegment(this.#now());
        this.#closeGap(this.#now());
        this.#scheduleFsync();
      },
      (err: unknown) => this.#failed(err, 'could not open the tape folder'),
    );
  }

  #scheduleFsync(): void {
    if (this.#fsyncTimer !== undefined) return;
    this.#fsyncTimer = this.#clock.setTimeout(() => {
      this.#fsyncTimer = undefined;
      if (this.#state === 'stopped') return;
      void this.#fsync().finally(() => this.#scheduleFsync());
    }, this.#options.fsyncMs);
  }

  /** Makes what was written durable: bounds what a power cut loses to `fsyncMs` (and the queue). */
  async #fsync(): Promise<void> {
    if (!this.#unsynced || this.#syncing !== undefined) return;
    const segment = this.#segments[0];
    if (segment?.handle === undefined) return;
    this.#unsynced = false;
    this.#syncing = segment.handle.datasync().then(
      () => undefined,
      (err: unknown) => {
        this.#unsynced = true;
        this.#logger.warn({ err: describe(err) }, 'tape fsync failed');
      },
    );
    await this.#syncing;
    this.#syncing = undefined;
  }
}

function describe(err: unknown): string {
  if (err instanceof Error) return `${(err as NodeJS.ErrnoException).code ?? err.name}: ${err.message}`;
  return String(err);
}
