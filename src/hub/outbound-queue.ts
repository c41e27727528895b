/**
 * What one client has yet to receive, and the slow-consumer rules (DESIGN.md §6).
 *
 * The fan-out adds units during an event-loop turn and calls `flush()` once at its end, so a
 * client gets at most one data frame per turn. While the bytes handed to its socket and not yet
 * written out stay under the high-water mark, each flush sends at once. Above it, units wait in
 * a backlog where state channels (quotes, bars, statuses, LULDs) keep only the latest message per
 * symbol — trades, corrections, cancels, imbalances and unknown types are kept, every one, in
 * order. The backlog drains as the socket's writes complete. Past the hard limit the queue
 * reports an overflow and the owner closes the client with 407.
 */
import { type Encoding, joinFrame, type MessageUnit } from '../protocol/frame.js';

/** A drained backlog goes out in frames of about this size, not one huge frame. */
const DRAIN_FRAME_BYTES = 256 * 1024;

/**
 * Frames joined from drained backlogs, by first unit. When a broadcast outruns its clients they
 * all lag alike, so their backlogs drain in identical chunks; joining each chunk once and sending
 * the same buffer to all of them keeps memory shared instead of multiplied by the client count.
 * Weakly held: an entry goes when its first message is gone.
 */
const drainFrames = new WeakMap<MessageUnit, { units: MessageUnit[]; encoding: Encoding; frame: Buffer }[]>();

function sharedDrainFrame(units: MessageUnit[], encoding: Encoding): Buffer {
  const first = units[0] as MessageUnit;
  let entries = drainFrames.get(first);
  const same = entries?.find((e) => e.encoding === encoding && e.units.length === units.length && e.units.every((u, i) => u === units[i]));
  if (same !== undefined) return same.frame;
  const frame = joinFrame(units, encoding);
  if (entries === undefined) {
    entries = [];
    drainFrames.set(first, entries);
  }
  // A few variants per first message at most: clients that lag differently drain differently.
  if (entries.length < 4) entries.push({ units, encoding, frame });
  return frame;
}

export interface QueueLimits {
  readonly highWaterBytes: number;
  readonly maxBufferBytes: number;
}

/** Writes a frame; `done` is called once the socket has written it out (or failed to). */
export type FrameWriter = (frame: Buffer, done: (err?: Error) => void) => void;

export interface QueueCounters {
  conflated: number;
  messagesOut: number;
  bytesOut: number;
}

export class OutboundQueue {
  readonly encoding: Encoding;
  readonly #write: FrameWriter;
  readonly #limits: QueueLimits;
  readonly #onOverflow: () => void;
  readonly #counters: QueueCounters;
  #batch: MessageUnit[] = [];
  /** created when the client first lags (an idle or keeping-up client never has one) */
  #backlog: Map<string | number, MessageUnit> | undefined;
  #backlogBytes = 0;
  #seq = 0;
  #inFlight = 0;
  #closed = false;

  constructor(encoding: Encoding, write: FrameWriter, limits: QueueLimits, onOverflow: () => void, counters: QueueCounters) {
    this.encoding = encoding;
    this.#write = write;
    this.#limits = limits;
    this.#onOverflow = onOverflow;
    this.#counters = counters;
  }

  /** Bytes written to the socket but not yet out, plus the backlog. */
  get bufferedBytes(): number {
    return this.#inFlight + this.#backlogBytes;
  }

  /** Whether the backlog exists: not until the client first lags. */
  get hasBacklog(): boolean {
    return this.#backlog !== undefined;
  }

  /** Adds a data unit to this turn's batch. */
  enqueue(unit: MessageUnit): void {
    if (!this.#closed) this.#batch.push(unit);
  }

  get pending(): readonly MessageUnit[] {
    return this.#batch;
  }

  /**
   * Sends this turn's batch as one frame, or adds it to the backlog when the client lags.
   * `shared` is the batch already joined in this encoding, when other clients got the same batch.
   */
  flush(shared?: Buffer): void {
    const batch = this.#batch;
    if (batch.length === 0 || this.#closed) return;
    this.#batch = [];
    if ((this.#backlog === undefined || this.#backlog.size === 0) && this.#inFlight < this.#limits.highWaterBytes) {
      this.#send(shared ?? joinFrame(batch, this.encoding), batch.length);
      return;
    }
    for (const unit of batch) this.#toBacklog(unit);
    if (this.bufferedBytes > this.#limits.maxBufferBytes) this.#overflow();
  }

  /**
   * Sends a control frame now, ahead of any backlog (replies must not wait behind data). It counts
   * against the same byte bounds as data: a client that asks and never reads is closed with 407.
   */
  sendControl(frame: Buffer): void {
    if (this.#closed) return;
    this.#send(frame, 0);
    if (this.bufferedBytes > this.#limits.maxBufferBytes) this.#overflow();
  }

  /** Drops queued data units `keep` rejects (an unsubscribe was acknowledged for them). */
  purge(keep: (unit: MessageUnit) => boolean): void {
    this.#batch = this.#batch.filter(keep);
    const backlog = this.#backlog;
    if (backlog === undefined) return;
    for (const [key, unit] of backlog) {
      if (keep(unit)) continue;
      backlog.delete(key);
      this.#backlogBytes -= unit.byteLength(this.encoding);
    }
  }

  /** Stops sending and forgets everything queued. */
  close(): void {
    this.#closed = true;
    this.#batch = [];
    this.#backlog = undefined;
    this.#backlogBytes = 0;
  }

  #toBacklog(unit: MessageUnit): void {
    const bytes = unit.byteLength(this.encoding);
    unit.detach(); // a backlog may outlive the vendor frame by far: keep only this message's bytes
    const backlog = (this.#backlog ??= new Map());
    let key: string | number;
    // The unit's own kind says what may be replaced: never an order-book update (PROTOCOL-STREAMS §1.3).
    if (unit.type !== undefined && unit.kind.conflatable.has(unit.type) && unit.symbol !== undefined) {
      key = unit.stateKey;
      const older = backlog.get(key);
      if (older !== undefined) {
        // Delete first so the latest value takes the position of the latest update.
        backlog.delete(key);
        this.#backlogBytes -= older.byteLength(this.encoding);
        this.#counters.conflated += 1;
      }
    } else {
      key = this.#seq++;
    }
    backlog.set(key, unit);
    this.#backlogBytes += bytes;
  }

  #send(frame: Buffer, messages: number): void {
    this.#inFlight += frame.length;
    this.#counters.messagesOut += messages;
    this.#counters.bytesOut += frame.length;
    this.#write(frame, () => {
      this.#inFlight -= frame.length;
      this.#drain();
    });
  }

  #drain(): void {
    const backlog = this.#backlog;
    if (backlog === undefined) return;
    while (!this.#closed && backlog.size > 0 && this.#inFlight < this.#limits.highWaterBytes) {
      const units: MessageUnit[] = [];
      let bytes = 0;
      for (const [key, unit] of backlog) {
        units.push(unit);
        bytes += unit.byteLength(this.encoding);
        backlog.delete(key);
        if (bytes >= DRAIN_FRAME_BYTES) break;
      }
      this.#backlogBytes -= bytes;
      this.#send(sharedDrainFrame(units, this.encoding), units.length);
    }
  }

  #overflow(): void {
    this.close();
    this.#onOverflow();
  }
}
