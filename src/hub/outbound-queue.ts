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
 *
 * Under overload every client lags at once, so a lagging client's turn costs O(1): the backlog
 * holds the turn's batch itself — the same array, shared by every client that got the same
 * batch — not a copy of each unit. Conflation happens as the backlog drains: a state message that
 * a newer one of the same type and symbol has superseded (`MessageUnit.superseded`, set once per
 * vendor message by the last-value cache) is skipped, the newer one being queued behind it for
 * every client that holds the pair.
 */
import { type Encoding, joinFrame, mergeFrames, type MessageUnit, splitFrame } from '../protocol/frame.js';
import { STOCKS, type StreamKind } from '../protocol/streams.js';

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

/**
 * Bytes of backlog that all lagging clients together may drain in one event-loop turn. Their
 * sockets' writes complete together; drained at once, a thousand clients would each write up to
 * the high-water mark in one turn (a gigabyte at the defaults) while probes and timers wait.
 */
export const DRAIN_TURN_BYTES = 32 * 1024 * 1024;

/**
 * Milliseconds of one event-loop turn that draining may take, whatever the bytes: the budget
 * that keeps probes and timers answered on a slow or busy machine. With 2 MiB per turn and no
 * time limit (issue #11's first version) lagging clients drained slower than the fresh fan-out
 * reached the clients keeping up; a byte budget alone, large enough for a fast machine (8 MiB),
 * gave drain turns of up to 230 ms on a loaded one.
 */
export const DRAIN_TURN_MS = 10;

/**
 * Drains lagging clients' backlogs a bounded number of bytes, for a bounded time, per event-loop
 * turn, in the order their sockets became ready, and continues in the next turn
 * (`setImmediate`) with the rest.
 */
export class DrainScheduler {
  /**
   * The hub's fan-out turn (it counts them): a shared batch's size after conflation, once counted,
   * serves every client that counts in the same turn.
   */
  turn = 0;
  readonly #budget: number;
  readonly #sliceMs: number;
  readonly #now: () => number;
  #ready: OutboundQueue[] = [];
  #scheduled = false;

  /** `now` in milliseconds (the hub's injected clock); a clock that stands still leaves the bytes as the only bound. */
  constructor(budgetBytes = DRAIN_TURN_BYTES, now: () => number = Date.now, sliceMs = DRAIN_TURN_MS) {
    this.#budget = budgetBytes;
    this.#now = now;
    this.#sliceMs = sliceMs;
  }

  /** `queue`'s socket has room: drain it in a coming turn. */
  request(queue: OutboundQueue): void {
    this.#ready.push(queue);
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => this.#run());
  }

  #run(): void {
    this.#scheduled = false;
    const ready = this.#ready;
    this.#ready = [];
    let budget = this.#budget;
    const until = this.#now() + this.#sliceMs;
    let i = 0;
    while (i < ready.length && budget > 0 && (i === 0 || this.#now() < until)) budget -= (ready[i++] as OutboundQueue).drainNow();
    if (i === ready.length) return;
    // The rest go first next turn, ahead of sockets that became ready meanwhile.
    const rest = ready.slice(i);
    for (const queue of this.#ready) rest.push(queue);
    this.#ready = [];
    for (const queue of rest) this.request(queue);
  }
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

/**
 * A turn's batch, joined once for every client of an encoding that got exactly it (a broadcast).
 * A lagging client queues the batch itself: its units array is never changed after the turn.
 */
export class SharedBatch {
  readonly units: readonly MessageUnit[];
  readonly encoding: Encoding;
  #frame: Buffer | undefined;
  #bytes = -1;
  #detached = false;

  constructor(units: readonly MessageUnit[], encoding: Encoding) {
    this.units = units;
    this.encoding = encoding;
  }

  /** The batch as one frame, joined on first use. */
  get frame(): Buffer {
    this.#frame ??= joinFrame(this.units, this.encoding);
    return this.#frame;
  }

  /**
   * Forgets the joined frame once the turn is over: the clients that kept up have been sent it
   * (their sockets hold it until written), and a backlog that queues the batch drains its units,
   * never this frame — kept, it would double what every lagging client pins.
   */
  release(): void {
    this.#frame = undefined;
  }

  /** The joined frame's bytes while it is held (until `release`). */
  get frameBytes(): number {
    return this.#frame?.byteLength ?? 0;
  }

  /** The units' bytes in the encoding, summed once. */
  get bytes(): number {
    if (this.#bytes < 0) this.#bytes = unitBytes(this.units, this.encoding);
    return this.#bytes;
  }

  #live = 0;
  #superseded = 0;
  #countedInTurn = -1;

  /**
   * The bytes and count of its units not superseded as of `turn`, counted once per turn for
   * all the clients whose backlog holds the batch.
   */
  liveOf(turn: number): { live: number; superseded: number } {
    if (this.#countedInTurn !== turn) {
      this.#countedInTurn = turn;
      const counted = countLive(this.units, this.encoding);
      this.#live = counted.live;
      this.#superseded = counted.superseded;
    }
    return { live: this.#live, superseded: this.#superseded };
  }

  #compactedInTurn = -1;
  #compacted: SharedBatch | undefined;

  /**
   * The batch without its superseded state messages (itself if it has none, undefined if nothing
   * is left), made once per turn for all the clients that compact their backlog in it: they go on
   * sharing one batch, counted once per turn, instead of a copy each.
   */
  compactedOf(turn: number): SharedBatch | undefined {
    if (this.#compactedInTurn !== turn) {
      this.#compactedInTurn = turn;
      const units = this.units.filter((unit) => !skippable(unit));
      if (units.length === this.units.length) this.#compacted = this;
      else this.#compacted = units.length === 0 ? undefined : new SharedBatch(units, this.encoding);
    }
    return this.#compacted;
  }

  /** Copies the units' bytes out of their vendor frames, once for all the clients that queue it. */
  detach(): void {
    if (this.#detached) return;
    this.#detached = true;
    for (const unit of this.units) unit.detach();
  }
}

/** A backlog entry: a turn's units (shared or this client's own) and their bytes. */
interface Queued {
  readonly units: readonly MessageUnit[];
  readonly bytes: number;
}

/** Bytes of the units a lagging client would still be sent, and how many it would skip. */
function countLive(units: readonly MessageUnit[], encoding: Encoding): { live: number; superseded: number } {
  let live = 0;
  let superseded = 0;
  for (const unit of units) {
    if (skippable(unit)) superseded += 1;
    else live += unit.byteLength(encoding);
  }
  return { live, superseded };
}

function unitBytes(units: readonly MessageUnit[], encoding: Encoding): number {
  let bytes = 0;
  for (const unit of units) bytes += unit.byteLength(encoding);
  return bytes;
}

/** Whether a lagging client may skip `unit`: a newer state message of its type and symbol is queued behind it. */
function skippable(unit: MessageUnit): boolean {
  // The newer message reaches every holder of the pair; only if it has no form in a client's
  // encoding (NaN in JSON…) does that client miss both, until the next one.
  return unit.superseded && unit.kind.conflatable.has(unit.type as string);
}

export class OutboundQueue {
  readonly encoding: Encoding;
  readonly #write: FrameWriter;
  readonly #limits: QueueLimits;
  /** called once, with the bytes the client held after conflation when it went past the limit */
  readonly #onOverflow: (heldBytes: number) => void;
  readonly #counters: QueueCounters;
  #batch: MessageUnit[] = [];
  /** whole frames taken this turn (`enqueueFrame`), the batch's units before them joined in their place */
  #frames: { frame: Buffer; messages: number; kind: StreamKind }[] = [];
  /** created when the client first lags (an idle or keeping-up client never has one); read from `#head` */
  #backlog: Queued[] | undefined;
  #head = 0;
  /** the backlog's bytes as queued, before conflation */
  #backlogBytes = 0;
  /** bytes the backlog may reach before its size after conflation is counted again (see `#checkLimit`) */
  #recountAt = 0;
  /** superseded messages of the backlog already counted as conflated by `#checkLimit` (not yet drained) */
  #conflationCounted = 0;
  #inFlight = 0;
  #closed = false;
  /** drains in bounded turns; without one (unit tests) a backlog drains as soon as its socket has room */
  readonly #drains: DrainScheduler | undefined;
  #drainRequested = false;

  constructor(encoding: Encoding, write: FrameWriter, limits: QueueLimits, onOverflow: (heldBytes: number) => void, counters: QueueCounters, drains?: DrainScheduler) {
    this.encoding = encoding;
    this.#write = write;
    this.#limits = limits;
    this.#onOverflow = onOverflow;
    this.#counters = counters;
    this.#drains = drains;
  }

  /** Bytes written to the socket but not yet out, plus the backlog as queued (before conflation). */
  get bufferedBytes(): number {
    return this.#inFlight + this.#backlogBytes;
  }

  /**
   * The memory the backlog keeps alive (`MessageUnit.retainedBytes` of every queued message, once
   * each however many batches share it, and a shared batch's joined frame while it holds one):
   * what a stalled client costs. Walks the backlog: for
   * tests and diagnostics, not the hot path.
   */
  get retainedBytes(): number {
    const seen = new Set<MessageUnit | SharedBatch>();
    let bytes = 0;
    const backlog = this.#backlog ?? [];
    for (let i = this.#head; i < backlog.length; i++) {
      const queued = backlog[i] as Queued;
      if (queued instanceof SharedBatch && !seen.has(queued)) {
        seen.add(queued);
        bytes += queued.frameBytes;
      }
      for (const unit of queued.units) {
        if (seen.has(unit)) continue;
        seen.add(unit);
        bytes += unit.retainedBytes;
      }
    }
    return bytes;
  }

  /** Whether the backlog exists: not until the client first lags. */
  get hasBacklog(): boolean {
    return this.#backlog !== undefined;
  }

  /** Whether the client is behind: a backlog waits above its high-water mark (what the status page counts as lagging). */
  get lagging(): boolean {
    return this.#lagging;
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
   * `shared` is the batch as every client of this encoding that got the same batch shares it.
   */
  flush(shared?: SharedBatch): void {
    if (this.#frames.length > 0 && !this.#closed) {
      this.#flushFrames();
      return;
    }
    const batch = this.#batch;
    if (batch.length === 0 || this.#closed) return;
    this.#batch = [];
    // Written whole only while it fits below the high-water mark with what is in flight. A turn
    // that does not (a loaded gateway's turns grow) is queued and drained in pieces, conflated
    // as it goes: written whole, its quotes were past the limit before the client could skip one
    // (a stalled quotes client closed with 407, issue #19).
    let drainNow = false;
    if (!this.#lagging) {
      const room = this.#limits.highWaterBytes - this.#inFlight;
      const frame = room <= 0 ? undefined : shared !== undefined ? (shared.bytes <= room ? shared.frame : undefined) : joinFrame(batch, this.encoding);
      if (frame !== undefined && frame.length <= room) {
        this.#send(frame, batch.length);
        return;
      }
      drainNow = room > 0; // what fits goes now, as a drain would send it
    }
    let queued: Queued;
    if (shared !== undefined) {
      shared.detach(); // a backlog may outlive the vendor frames by far: keep only the messages' bytes
      queued = shared;
    } else {
      for (const unit of batch) unit.detach();
      queued = { units: batch, bytes: unitBytes(batch, this.encoding) };
    }
    (this.#backlog ??= []).push(queued);
    this.#backlogBytes += queued.bytes;
    if (this.bufferedBytes > this.#limits.maxBufferBytes) this.#checkLimit();
    if (drainNow && !this.#closed) this.#drain();
  }

  /**
   * Adds a whole frame of data messages already in this client's encoding (a replay's recorded
   * frame, of a stream of `kind`) to this turn's batch, after what the batch holds: the flush sends
   * them in one frame, the frames' messages joined without being cut apart. False, with nothing
   * added, when the client lags: the frame's messages must then be queued one by one, to be
   * conflated like any others.
   */
  enqueueFrame(frame: Buffer, messages: number, kind: StreamKind): boolean {
    if (this.#closed) return true;
    if (this.#lagging || this.#inFlight >= this.#limits.highWaterBytes) return false;
    this.#joinBatch(kind);
    this.#frames.push({ frame, messages, kind });
    return true;
  }

  /** The batch's units as a whole frame in `#frames`, in their place. */
  #joinBatch(kind: StreamKind): void {
    if (this.#batch.length === 0) return;
    this.#frames.push({ frame: joinFrame(this.#batch, this.encoding), messages: this.#batch.length, kind });
    this.#batch = [];
  }

  /** Whether this turn has anything to send: units, or whole frames. */
  get hasPending(): boolean {
    return this.#batch.length > 0 || this.#frames.length > 0;
  }

  /** This turn's whole frames and the units after them, as one frame (they were taken while the client kept up). */
  #flushFrames(): void {
    this.#joinBatch(STOCKS); // its units are not cut again
    const { frame, messages } = mergeFrames(this.#frames, this.encoding);
    this.#frames = [];
    this.#send(frame, messages);
  }

  get #lagging(): boolean {
    return this.#backlog !== undefined && this.#head < this.#backlog.length;
  }

  /**
   * Sends a control frame now, ahead of any backlog (replies must not wait behind data). It counts
   * against the same byte bounds as data: a client that asks and never reads is closed with 407.
   */
  sendControl(frame: Buffer): void {
    if (this.#closed) return;
    this.#send(frame, 0);
    this.#recountAt -= frame.length; // sent ahead of the backlog: all of it counts
    if (this.bufferedBytes > this.#limits.maxBufferBytes) this.#checkLimit();
  }

  /** Drops queued data units `keep` rejects (an unsubscribe was acknowledged for them). */
  purge(keep: (unit: MessageUnit) => boolean): void {
    if (this.#frames.length > 0) {
      // Cut apart after all: the whole frames go back to being units, before the batch's.
      const units = this.#frames.flatMap(({ frame, kind }) => splitFrame(frame, this.encoding, kind));
      this.#frames = [];
      this.#batch = units.concat(this.#batch);
    }
    this.#batch = this.#batch.filter(keep);
    const backlog = this.#backlog;
    if (backlog === undefined) return;
    for (let i = this.#head; i < backlog.length; i++) {
      const queued = backlog[i] as Queued;
      if (queued.units.every(keep)) continue;
      const units = queued.units.filter(keep);
      const bytes = unitBytes(units, this.encoding);
      this.#backlogBytes -= queued.bytes - bytes;
      this.#recountAt -= queued.bytes - bytes;
      backlog[i] = { units, bytes }; // a shared batch is never changed: this client gets its own
    }
  }

  /** Stops sending and forgets everything queued. */
  close(): void {
    this.#closed = true;
    this.#batch = [];
    this.#frames = [];
    this.#backlog = undefined;
    this.#head = 0;
    this.#backlogBytes = 0;
    this.#conflationCounted = 0;
  }

  /**
   * Past the hard limit as queued: counts what the client holds after conflation, and overflows
   * only if that is past it too. Counting walks the backlog, so it is done again only once the
   * client's bytes may have grown by what was left below the limit (at least 1/64 of it; every
   * change below moves `#recountAt` by what it may add): a client whose backlog is mostly
   * superseded quotes is not walked every turn, and one that truly lags goes at most that 1/64
   * past the limit before its 407.
   */
  #checkLimit(): void {
    const max = this.#limits.maxBufferBytes;
    if (this.#backlogBytes < this.#recountAt) return;
    let live = this.#inFlight;
    let superseded = 0;
    const backlog = this.#backlog;
    if (backlog !== undefined) {
      const turn = this.#drains?.turn;
      for (let i = this.#head; i < backlog.length; i++) {
        const queued = backlog[i] as Queued;
        // Lagging alike, a thousand clients cross the limit in the same turn: a shared batch is counted once for all.
        const counted = queued instanceof SharedBatch && turn !== undefined ? queued.liveOf(turn) : countLive(queued.units, this.encoding);
        live += counted.live;
        superseded += counted.superseded;
      }
    }
    // Conflated as of now, whether the client ever drains them or is closed first.
    if (superseded > this.#conflationCounted) {
      this.#counters.conflated += superseded - this.#conflationCounted;
      this.#conflationCounted = superseded;
    }
    if (live > max) {
      this.#overflow(live);
      return;
    }
    if (superseded > 0) this.#compact();
    this.#recountAt = this.#backlogBytes + Math.max(max - live, Math.ceil(max / 64));
  }

  /**
   * Drops what the drain would skip — the superseded state messages — now, instead of when the
   * client reads again: a client stalled on quotes would otherwise hold every quote since it
   * stopped (issue #19: hundreds of MiB for a 2 MiB limit), counted as conflated but kept. What
   * is left is what the client would be sent, within the limit; a shared batch stays shared.
   */
  #compact(): void {
    const backlog = this.#backlog;
    if (backlog === undefined) return;
    const turn = this.#drains?.turn;
    const kept: Queued[] = [];
    let bytes = 0;
    for (let i = this.#head; i < backlog.length; i++) {
      const queued = backlog[i] as Queued;
      if (queued instanceof SharedBatch && turn !== undefined) {
        const compacted = queued.compactedOf(turn);
        if (compacted === undefined) continue;
        kept.push(compacted);
        bytes += compacted.bytes;
        continue;
      }
      let units: readonly MessageUnit[] = queued.units;
      let queuedBytes = queued.bytes;
      if (units.some(skippable)) {
        units = units.filter((unit) => !skippable(unit));
        if (units.length === 0) continue;
        queuedBytes = unitBytes(units, this.encoding);
      }
      kept.push(units === queued.units ? queued : { units, bytes: queuedBytes });
      bytes += queuedBytes;
    }
    this.#backlog = kept;
    this.#head = 0;
    this.#backlogBytes = bytes;
    this.#conflationCounted = 0; // counted as conflated just now, and gone
  }

  #send(frame: Buffer, messages: number): void {
    this.#inFlight += frame.length;
    this.#counters.messagesOut += messages;
    this.#counters.bytesOut += frame.length;
    this.#write(frame, () => {
      this.#inFlight -= frame.length;
      if (!this.#lagging || this.#inFlight >= this.#limits.highWaterBytes) return;
      if (this.#drains === undefined) this.#drain();
      else if (!this.#drainRequested) {
        this.#drainRequested = true;
        this.#drains.request(this);
      }
    });
  }

  /** Drains what the socket has room for now (the scheduler's turn); returns the bytes sent. */
  drainNow(): number {
    this.#drainRequested = false;
    return this.#drain();
  }

  #drain(): number {
    const backlog = this.#backlog;
    if (backlog === undefined) return 0;
    let sent = 0;
    while (!this.#closed && this.#head < backlog.length && this.#inFlight < this.#limits.highWaterBytes) {
      const units: MessageUnit[] = [];
      let bytes = 0;
      let queuedBytes = 0;
      let skipped = 0;
      while (this.#head < backlog.length && bytes < DRAIN_FRAME_BYTES) {
        const queued = backlog[this.#head] as Queued;
        backlog[this.#head] = EMPTY; // let the batch go as soon as it is taken
        this.#head += 1;
        queuedBytes += queued.bytes;
        for (const unit of queued.units) {
          if (skippable(unit)) {
            skipped += 1;
            continue;
          }
          units.push(unit);
          bytes += unit.byteLength(this.encoding);
        }
      }
      if (this.#head === backlog.length) {
        backlog.length = 0;
        this.#head = 0;
      }
      // What was taken is in flight now: the client holds as much as before.
      this.#backlogBytes -= queuedBytes;
      this.#recountAt -= queuedBytes;
      const counted = Math.min(skipped, this.#conflationCounted);
      this.#conflationCounted -= counted;
      this.#counters.conflated += skipped - counted;
      if (units.length === 0) continue;
      const frame = sharedDrainFrame(units, this.encoding);
      sent += frame.length;
      this.#send(frame, units.length);
    }
    return sent;
  }

  #overflow(heldBytes: number): void {
    this.close();
    this.#onOverflow(heldBytes);
  }
}

const EMPTY: Queued = { units: [], bytes: 0 };
