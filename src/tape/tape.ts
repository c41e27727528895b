/**
 * The tape of a standalone gateway (DESIGN.md §12): a recorder per served stream under
 * `TAPE_DIR/{stream path}/`, retention over the whole folder, what `GET /tape` and health report,
 * and the replays served from it (at most `REPLAY_MAX_SESSIONS` at once).
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import type { StreamKind } from '../protocol/streams.js';
import { ReplayRegistry } from './replay.js';
import { fileSize, listSegments, type SegmentFile } from './segment-files.js';
import { StreamRecorder, type TapeFiles } from './stream-recorder.js';
import { type StreamTape, summarizeStream } from './tape-catalog.js';

export interface TapeConfig {
  readonly dir: string;
  readonly segmentBytes: number;
  readonly fsyncMs: number;
  readonly retentionHours: number;
  /** 0: no limit */
  readonly maxBytes: number;
  readonly queueBytes: number;
  readonly replayMaxSessions: number;
}

export type TapeState = 'off' | 'recording' | 'degraded';

export interface TapeOptions {
  readonly config: TapeConfig;
  readonly streams: readonly { readonly path: string; readonly kind: StreamKind }[];
  readonly clock: Clock;
  readonly logger: Logger;
  readonly files?: TapeFiles;
}

/** How often retention looks beyond the rotations that trigger it. */
const SWEEP_EVERY_MS = 60_000;
const HOUR_NS = 3_600_000_000_000n;

export class Tape {
  readonly config: TapeConfig;
  readonly #recorders = new Map<string, StreamRecorder>();
  readonly #clock: Clock;
  readonly #logger: Logger;
  #sweepTimer: unknown;
  #sweeping: Promise<void> | undefined;
  #sweepAgain: Promise<void> | undefined;
  /** the replays served from this tape (REPLAY_MAX_SESSIONS) */
  readonly replays: ReplayRegistry;
  /** segments deleted by retention */
  deletedSegments = 0;

  constructor(options: TapeOptions) {
    this.config = options.config;
    this.#clock = options.clock;
    this.#logger = options.logger.child({ component: 'tape' });
    this.replays = new ReplayRegistry(options.config.replayMaxSessions);
    for (const { path, kind } of options.streams) {
      const recorder = new StreamRecorder({
        dir: join(options.config.dir, path),
        stream: path,
        kind,
        segmentBytes: options.config.segmentBytes,
        fsyncMs: options.config.fsyncMs,
        queueBytes: options.config.queueBytes,
        clock: options.clock,
        logger: options.logger,
        files: options.files,
      });
      recorder.onRotate = () => void this.sweep();
      this.#recorders.set(path, recorder);
    }
  }

  /** The recorder of a served stream. */
  recorder(path: string): StreamRecorder | undefined {
    return this.#recorders.get(path);
  }

  get recorders(): StreamRecorder[] {
    return [...this.#recorders.values()];
  }

  /** `degraded` while any stream's recorder is. */
  get state(): TapeState {
    return this.recorders.some((r) => r.state === 'degraded') ? 'degraded' : 'recording';
  }

  /** Repairs and opens every stream's tape; then sweeps retention once and every minute. */
  async start(): Promise<void> {
    await Promise.all(this.recorders.map((r) => r.start()));
    await this.sweep();
    this.#scheduleSweep();
  }

  async stop(): Promise<void> {
    this.#clock.clearTimeout(this.#sweepTimer);
    this.#sweepTimer = undefined;
    await Promise.all(this.recorders.map((r) => r.stop()));
    await this.#sweeping;
  }

  #scheduleSweep(): void {
    this.#sweepTimer = this.#clock.setTimeout(() => {
      void this.sweep().finally(() => {
        if (this.#sweepTimer !== undefined) this.#scheduleSweep();
      });
    }, SWEEP_EVERY_MS);
  }

  /** Deletes whole segments, oldest first: older than the retention, then past `maxBytes`. */
  sweep(): Promise<void> {
    // One at a time; a sweep asked for during one runs after it, with the time it was asked at or later.
    if (this.#sweeping !== undefined) {
      this.#sweepAgain ??= this.#sweeping.then(() => {
        this.#sweepAgain = undefined;
        return this.sweep();
      });
      return this.#sweepAgain;
    }
    this.#sweeping = this.#sweep().finally(() => (this.#sweeping = undefined));
    return this.#sweeping;
  }

  async #sweep(): Promise<void> {
    const cutoff = this.#clock.nanos() - BigInt(this.config.retentionHours) * HOUR_NS;
    const closed: { segment: SegmentFile; endNs: bigint; bytes: number }[] = [];
    let total = 0;
    try {
      for (const recorder of this.recorders) {
        const segments = await listSegments(join(this.config.dir, recorder.stream));
        for (let i = 0; i < segments.length; i++) {
          const segment = segments[i] as SegmentFile;
          const bytes = (await fileSize(segment.path)) ?? 0;
          total += bytes;
          // The last one is being written; a segment ends where the next begins.
          const next = segments[i + 1];
          if (next !== undefined) closed.push({ segment, endNs: next.startNs, bytes });
        }
      }
      closed.sort((a, b) => (a.segment.startNs < b.segment.startNs ? -1 : 1));
      for (const entry of closed) {
        const expired = entry.endNs < cutoff;
        const over = this.config.maxBytes > 0 && total > this.config.maxBytes;
        if (!expired && !over) continue;
        await rm(entry.segment.path, { force: true });
        await rm(entry.segment.indexPath, { force: true });
        total -= entry.bytes;
        this.deletedSegments += 1;
        this.#logger.info({ segment: entry.segment.path, bytes: entry.bytes, why: expired ? 'older than TAPE_RETENTION_HOURS' : 'over TAPE_MAX_BYTES' }, 'tape: segment deleted');
      }
    } catch (err) {
      this.#logger.warn({ err: (err as Error).message }, 'tape retention sweep failed; next sweep retries');
    }
  }

  /** What each stream's tape holds, read from the indexes. */
  async status(): Promise<{ state: TapeState; streams: StreamTape[] }> {
    const streams = await Promise.all(this.recorders.map((r) => summarizeStream(this.config.dir, r.stream)));
    return { state: this.state, streams };
  }

  /** The end of a stream's tape as a reader finds it now (a replay's default `to`). */
  endOf(path: string): bigint | undefined {
    return this.#recorders.get(path)?.writtenNs;
  }
}

