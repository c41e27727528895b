/**
 * A cluster's tape (DESIGN.md §12, `TAPE=1` with `NATS_URL`): it lives in JetStream, not in a
 * node's files, so any node records nothing itself and replays everything.
 *
 * - Recording: one JetStream stream per cluster (`tape-records.ts`) captures the owner's relay
 *   publishes — no extra work per message on the owner. Every node creates (or updates) it with
 *   the same config when it connects: file storage, MaxAge = TAPE_RETENTION_HOURS, MaxBytes =
 *   TAPE_MAX_BYTES (0: none), discard old.
 * - Marks: the owner's link going live or leaving live is published as an `upstream_up` /
 *   `upstream_down` mark; a node that takes a stream's lease first records a `tape_gap` from the
 *   stream's last record to now unless the previous owner ended cleanly (`failoverGap`).
 * - Replay: `source()` opens a `JetStreamTapeSource` for the same replay engine as standalone;
 *   `status()` answers GET /tape from the stream's state and marks.
 */
import { DiscardPolicy, jetstream, type JetStreamClient, JetStreamApiError, type JetStreamManager, jetstreamManager, RetentionPolicy, StorageType, type StreamConfig } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import type { ClusterTapeConfig } from '../config.js';
import { TickmuxError } from '../errors.js';
import type { Mark } from '../tape/record.js';
import { ReplayRegistry, type TapeSource } from '../tape/replay.js';
import type { StreamTape, TapeGap } from '../tape/tape-catalog.js';
import type { TapeState } from '../tape/tape.js';
import type { StateChange } from '../upstream/stream-manager.js';
import { JetStreamTapeSource, lastRecord, storedNs, TapeReader } from './jetstream-tape-source.js';
import type { ReplayStore } from '../tape/replay-server.js';
import { failoverGap, markSubject, streamFilter, streamOfSubject, tapeStreamName, tapeSubjects } from './tape-records.js';

const HOUR_NS = 3_600_000_000_000;
/** a failed stream set-up is tried again after this long */
const RETRY_MS = 5000;
/** how long a new owner waits for the tape's last record before it starts its link without a gap mark */
const GAP_LOOKUP_MS = 2000;
/** the most marks GET /tape reads per stream */
const STATUS_MAX_MARKS = 10_000;
/** JetStream's code for "no such stream" */
const STREAM_NOT_FOUND = 10059;
/** the stream's code for "exists with another configuration" */
const STREAM_NAME_IN_USE = 10058;

export interface ClusterTapeOptions {
  readonly clusterName: string;
  readonly config: ClusterTapeConfig;
  readonly streams: readonly string[];
  readonly clock: Clock;
  readonly logger: Logger;
  /** whether this node's NATS connection is up now */
  readonly natsConnected: () => boolean;
}

/** The JetStream stream's config, the same from every node (so creating it again is a no-op). */
export function tapeStreamConfig(clusterName: string, config: ClusterTapeConfig): Partial<StreamConfig> & { name: string } {
  return {
    name: tapeStreamName(clusterName),
    subjects: tapeSubjects(clusterName),
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    max_age: config.retentionHours * HOUR_NS,
    max_bytes: config.maxBytes === 0 ? -1 : config.maxBytes,
    discard: DiscardPolicy.Old,
    num_replicas: 1,
  };
}

export class ClusterTape {
  readonly config: ClusterTapeConfig;
  /** the replays served from this tape (REPLAY_MAX_SESSIONS) */
  readonly replays: ReplayRegistry;
  readonly streamName: string;
  #nc: NatsConnection | undefined;
  #jsm: JetStreamManager | undefined;
  #js: JetStreamClient | undefined;
  #ready = false;
  #reason: string | null = 'not connected to NATS yet';
  #retryTimer: unknown;
  #stopped = false;
  /** marks published, gap marks among them */
  readonly counters = { marks: 0, gaps: 0 };
  readonly #o: ClusterTapeOptions;
  readonly #log: Logger;

  constructor(options: ClusterTapeOptions) {
    this.#o = options;
    this.config = options.config;
    this.streamName = tapeStreamName(options.clusterName);
    this.replays = new ReplayRegistry(options.config.replayMaxSessions);
    this.#log = options.logger.child({ component: 'cluster-tape', tape: this.streamName });
  }

  /** 'recording' while the JetStream stream exists and NATS is connected, 'degraded' otherwise. */
  get state(): TapeState {
    return this.#ready && this.#o.natsConnected() ? 'recording' : 'degraded';
  }

  /** Why it is degraded, while it is. */
  get reason(): string | null {
    if (this.state === 'recording') return null;
    return this.#ready ? 'NATS is not connected' : this.#reason;
  }

  /** NATS is connected with `nc` (the cluster node calls it before any lease starts): sets the stream up. */
  async connected(nc: NatsConnection): Promise<void> {
    this.#nc = nc;
    this.#jsm = await jetstreamManager(nc);
    this.#js = jetstream(nc);
    await this.#ensureStream();
  }

  async #ensureStream(): Promise<void> {
    this.#retryTimer = undefined;
    const jsm = this.#jsm;
    if (jsm === undefined || this.#stopped) return;
    const config = tapeStreamConfig(this.#o.clusterName, this.config);
    try {
      try {
        await jsm.streams.add(config);
      } catch (err) {
        // Made by a node with other limits (TAPE_RETENTION_HOURS or TAPE_MAX_BYTES changed): this node's win.
        if (!(err instanceof JetStreamApiError && err.code === STREAM_NAME_IN_USE)) throw err;
        await jsm.streams.update(config.name, config);
        this.#log.info({ maxAge: config.max_age, maxBytes: config.max_bytes }, 'tape stream limits updated');
      }
      this.#ready = true;
      this.#reason = null;
      this.#log.info({ subjects: config.subjects }, 'tape stream ready: recording');
    } catch (err) {
      this.#ready = false;
      this.#reason = `the tape stream cannot be set up: ${String(err)}`;
      this.#log.warn({ err: String(err), retryMs: RETRY_MS }, 'tape stream set-up failed; retrying');
      this.#retryTimer = this.#o.clock.setTimeout(() => void this.#ensureStream(), RETRY_MS);
    }
  }

  /**
   * This node took the stream's lease and is about to start its link: records the time no owner
   * recorded, as a gap mark from the stream's last record to now (`failoverGap`). Never throws;
   * waits at most `GAP_LOOKUP_MS`.
   */
  async beforeOwning(path: string): Promise<void> {
    const jsm = this.#jsm;
    if (jsm === undefined || !this.#ready) return;
    let timer: unknown;
    try {
      const last = await Promise.race([
        lastRecord(jsm, this.#o.clusterName, path),
        new Promise<never>((_, reject) => {
          timer = this.#o.clock.setTimeout(() => reject(new Error(`no answer in ${GAP_LOOKUP_MS} ms`)), GAP_LOOKUP_MS);
        }),
      ]);
      const gap = failoverGap(last, this.#o.clock.nanos());
      if (gap === undefined) return;
      this.#publish(path, gap);
      this.counters.gaps += 1;
      this.#log.info({ stream: path, from: gap.from, to: gap.to, reason: gap.reason }, 'tape: gap recorded for the time no owner recorded');
    } catch (err) {
      this.#log.warn({ stream: path, err: String(err) }, 'tape: the last record could not be read; no gap mark for this takeover');
    } finally {
      this.#o.clock.clearTimeout(timer);
    }
  }

  /** The local link's state changed (it runs only while this node owns the stream): link marks. */
  linkState(path: string, change: StateChange): void {
    if (change.to === 'live' && change.from !== 'live') this.#publish(path, { event: 'upstream_up', session: this.#o.clock.nanos().toString() });
    else if (change.from === 'live' && change.to !== 'live') this.#publish(path, { event: 'upstream_down', state: change.to, reason: change.reason ?? null });
  }

  /** The set the owner's vendor link holds changed: a `subscriptions` mark (the kind's non-empty channels). */
  subscriptions(path: string, lists: Readonly<Record<string, readonly string[]>>): void {
    const set = Object.fromEntries(Object.entries(lists).filter(([, symbols]) => symbols.length > 0));
    this.#publish(path, { event: 'subscriptions', set });
  }

  #publish(path: string, mark: Mark): void {
    // Core NATS, like the data: the tape stream captures it in publish order with the data.
    this.#nc?.publish(markSubject(this.#o.clusterName, path), JSON.stringify(mark));
    this.counters.marks += 1;
  }

  /** The records of `stream` from `fromNs` on, for a replay. */
  source(stream: string, fromNs: bigint): Promise<TapeSource> {
    const { js, jsm } = this.#clients();
    return JetStreamTapeSource.open({ js, jsm, clusterName: this.#o.clusterName, stream, fromNs });
  }

  /** The last record's time of a stream (a replay's default end), undefined when nothing is recorded. */
  async endOf(path: string): Promise<bigint | undefined> {
    return (await lastRecord(this.#clients().jsm, this.#o.clusterName, path))?.ns;
  }

  /** What each served stream's tape holds: range, messages, bytes (its share of the stream's) and gaps. */
  async status(): Promise<{ state: TapeState; reason: string | null; streams: StreamTape[] }> {
    const { state, reason } = this;
    if (this.#jsm === undefined || !this.#ready) return { state, reason, streams: [] };
    const streams = await Promise.all(this.#o.streams.map((path) => this.#summarize(path)));
    return { state, reason, streams };
  }

  async #summarize(stream: string): Promise<StreamTape> {
    const { js, jsm } = this.#clients();
    const cluster = this.#o.clusterName;
    const marksAt = markSubject(cluster, stream);
    const info = await jsm.streams.info(this.streamName, { subjects_filter: streamFilter(cluster, stream) });
    let messages = 0;
    let marks = 0;
    for (const [subject, n] of Object.entries(info.state.subjects ?? {})) {
      if (subject === marksAt) marks += n;
      else messages += n;
    }
    // JetStream counts bytes per stream, not per subject: this stream's share by message count.
    const bytes = info.state.messages === 0 ? 0 : Math.round((info.state.bytes * (messages + marks)) / info.state.messages);
    const first = messages + marks === 0 ? null : await jsm.streams.getMessage(this.streamName, { next_by_subj: streamFilter(cluster, stream), seq: 0 } as never);
    const last = await lastRecord(jsm, cluster, stream);
    const gaps: TapeGap[] = [];
    let down: { ns: bigint; reason: string } | undefined;
    const reader = new TapeReader({ js, jsm, clusterName: cluster, stream, fromNs: 0n }, marksAt, 0n);
    try {
      let read = 0;
      for (let records = marks === 0 ? [] : await reader.next(); records.length > 0 && read < STATUS_MAX_MARKS; records = await reader.next()) {
        read += records.length;
        for (const record of records) {
          if (record.type !== 'mark') continue;
          const mark = record.mark;
          if (mark.event === 'tape_gap') gaps.push({ fromNs: BigInt(mark.from), toNs: BigInt(mark.to), reason: mark.reason });
          else if (mark.event === 'upstream_down') down ??= { ns: record.ns, reason: `vendor link ${mark.state}${mark.reason === null ? '' : `: ${mark.reason}`}` };
          else if (mark.event === 'upstream_up' && down !== undefined) {
            gaps.push({ fromNs: down.ns, toNs: record.ns, reason: down.reason });
            down = undefined;
          }
        }
      }
    } finally {
      await reader.close();
    }
    if (down !== undefined) gaps.push({ fromNs: down.ns, toNs: undefined, reason: down.reason });
    gaps.sort((a, b) => (a.fromNs < b.fromNs ? -1 : a.fromNs > b.fromNs ? 1 : 0));
    return { stream, fromNs: first === null ? undefined : storedNs(first.timestamp), toNs: last?.ns, bytes, messages, segments: 0, gaps };
  }

  #clients(): { js: JetStreamClient; jsm: JetStreamManager } {
    if (this.#js === undefined || this.#jsm === undefined) throw new TapeUnavailableError('the cluster tape is not reachable: NATS is not connected yet');
    return { js: this.#js, jsm: this.#jsm };
  }

  stop(): void {
    this.#stopped = true;
    this.#o.clock.clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
  }
}

/** The cluster tape cannot be read now (NATS not connected yet). */
export class TapeUnavailableError extends TickmuxError {
  constructor(message: string) {
    super('ERR_CLUSTER_TAPE', message);
  }
}

/**
 * A cluster's JetStream tape as `tickmux replay --nats` reads it: the stream paths it holds (from
 * the tape stream's subjects), their ends, and a source per replay. It keeps `nc` open until closed.
 */
export async function jetStreamStore(nc: NatsConnection, clusterName: string): Promise<ReplayStore> {
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  return {
    dir: '',
    paths: async () => {
      let info;
      try {
        info = await jsm.streams.info(tapeStreamName(clusterName), { subjects_filter: `${clusterName}.data.>` });
      } catch (err) {
        if (err instanceof JetStreamApiError && err.code === STREAM_NOT_FOUND) return []; // no node ever recorded
        throw err;
      }
      const paths = new Set<string>();
      for (const subject of Object.keys(info.state.subjects ?? {})) {
        const path = streamOfSubject(clusterName, subject);
        if (path !== undefined) paths.add(path);
      }
      return [...paths].sort();
    },
    endOf: async (path) => (await lastRecord(jsm, clusterName, path))?.ns,
    source: (stream, fromNs) => JetStreamTapeSource.open({ js, jsm, clusterName, stream, fromNs }),
    close: () => nc.close(),
  };
}
