/**
 * A replay's `TapeSource` over the cluster's JetStream tape (DESIGN.md §12): an ordered consumer on
 * one stream's filter subject (its data and marks), delivered by start time from `from`. The start
 * time is a `Date` (millisecond precision), so messages before `from`'s nanosecond are skipped
 * here. The source reads one fetch (at most `BATCH` messages) per `next()`, so a replay holds
 * bounded memory and reads no faster than its client takes data; it ends at the tape's end as it
 * is when the last message is delivered (the consumer's pending count reaches 0).
 */
import { type Consumer, DeliverPolicy, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { Timestamp } from '../protocol/timestamp.js';
import type { TapeRecord } from '../tape/record.js';
import type { TapeSource } from '../tape/replay.js';
import { markSubject, recordOf, streamFilter, tapeStreamName } from './tape-records.js';

const BATCH = 256;
/** a fetch waits at most this long for messages the pending count said were there */
const FETCH_EXPIRES_MS = 5000;
/** how far before `from` a book prelude looks for the link's last `upstream_up` */
export const PRELUDE_LOOKBACK_NS = 3_600_000_000_000n;
/** the most records a prelude reads (the books as of `from`, from the last session start on) */
export const PRELUDE_MAX_RECORDS = 200_000;

export interface JetStreamTapeOptions {
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly clusterName: string;
  readonly stream: string;
  readonly fromNs: bigint;
}

/** ns of a stored message's RFC 3339 time (the server's receive time, with every digit it gives). */
export function storedNs(timestamp: string): bigint {
  return Timestamp.parse(timestamp).toEpochNanos();
}

/** The last record of a stream on the tape (a direct read by subject), or undefined when none. */
export async function lastRecord(jsm: JetStreamManager, clusterName: string, stream: string): Promise<TapeRecord | undefined> {
  const msg = await jsm.streams.getMessage(tapeStreamName(clusterName), { last_by_subj: streamFilter(clusterName, stream) });
  if (msg === null) return undefined;
  return recordOf(msg.subject, msg.data, storedNs(msg.timestamp), msg.seq);
}

/** Reads `filter` from `fromNs` (inclusive) in stream order, one fetch at a time, up to `untilNs` (exclusive) if given. */
export class TapeReader {
  #consumer: Consumer | undefined;
  #done = false;
  readonly #o: JetStreamTapeOptions;
  readonly #filter: string;
  readonly #fromNs: bigint;
  readonly #untilNs: bigint | undefined;

  constructor(o: JetStreamTapeOptions, filter: string, fromNs: bigint, untilNs?: bigint) {
    this.#o = o;
    this.#filter = filter;
    this.#fromNs = fromNs;
    this.#untilNs = untilNs;
  }

  async next(): Promise<TapeRecord[]> {
    if (this.#consumer === undefined && !this.#done) {
      // Nothing at or after the start: a fetch would wait out its expiry for nothing.
      const last = await this.#o.jsm.streams.getMessage(tapeStreamName(this.#o.clusterName), { last_by_subj: this.#filter });
      if (last === null || storedNs(last.timestamp) < this.#fromNs) this.#done = true;
    }
    while (!this.#done) {
      // Milliseconds, rounded down: the start is at or before `from`, and what precedes it is skipped below.
      this.#consumer ??= await this.#o.js.consumers.get(tapeStreamName(this.#o.clusterName), {
        filter_subjects: this.#filter,
        deliver_policy: DeliverPolicy.StartTime,
        opt_start_time: new Date(Number(this.#fromNs / 1_000_000n)).toISOString(),
      });
      const out: TapeRecord[] = [];
      let delivered = 0;
      const batch = await this.#consumer.fetch({ max_messages: BATCH, expires: FETCH_EXPIRES_MS });
      for await (const msg of batch) {
        delivered += 1;
        const record = recordOf(msg.subject, msg.data, msg.timestampNanos, msg.seq);
        if (this.#untilNs !== undefined && msg.timestampNanos >= this.#untilNs) {
          this.#done = true;
          break;
        }
        if (record !== undefined && record.ns >= this.#fromNs) out.push(record);
        // The tape's end as it is now: a fetch would otherwise wait out its expiry for more.
        if (msg.info.pending === 0) {
          this.#done = true;
          break;
        }
      }
      if (delivered === 0) this.#done = true;
      if (out.length > 0) return out;
    }
    return [];
  }

  async close(): Promise<void> {
    this.#done = true;
    await this.#consumer?.delete().catch(() => false); // ordered consumers are ephemeral: the server drops it anyway
  }
}

/** One stream's tape in JetStream as a replay reads it. */
export class JetStreamTapeSource implements TapeSource {
  readonly #o: JetStreamTapeOptions;
  readonly #reader: TapeReader;

  private constructor(o: JetStreamTapeOptions) {
    this.#o = o;
    this.#reader = new TapeReader(o, streamFilter(o.clusterName, o.stream), o.fromNs);
  }

  /** A source on `stream` from `fromNs` on (the consumer is made on the first read). */
  static async open(o: JetStreamTapeOptions): Promise<JetStreamTapeSource> {
    return new JetStreamTapeSource(o);
  }

  next(): Promise<TapeRecord[]> {
    return this.#reader.next();
  }

  /**
   * The records a replay's books need before `from`: the vendor sends a whole book on every
   * subscription, so everything since the link's last `upstream_up` before `from` rebuilds them.
   * Bounded: that mark is looked for at most `PRELUDE_LOOKBACK_NS` back (none found: from there),
   * and at most `PRELUDE_MAX_RECORDS` are read.
   */
  async prelude(each: (records: readonly TapeRecord[]) => void): Promise<void> {
    const { fromNs, clusterName, stream } = this.#o;
    let startNs = fromNs - PRELUDE_LOOKBACK_NS;
    const marks = new TapeReader(this.#o, markSubject(clusterName, stream), startNs, fromNs);
    try {
      for (let records = await marks.next(); records.length > 0; records = await marks.next()) {
        for (const record of records) if (record.type === 'mark' && record.mark.event === 'upstream_up') startNs = record.ns;
      }
    } finally {
      await marks.close();
    }
    const frames = new TapeReader(this.#o, streamFilter(clusterName, stream), startNs, fromNs);
    let read = 0;
    try {
      for (let records = await frames.next(); records.length > 0 && read < PRELUDE_MAX_RECORDS; records = await frames.next()) {
        read += records.length;
        each(records);
      }
    } finally {
      await frames.close();
    }
  }

  async close(): Promise<void> {
    await this.#reader.close();
  }
}
