/**
 * The owner's recent relay messages (DESIGN.md §10, issue #19), kept so that a follower that lost
 * some on the way (nats-server dropped them for a slow consumer, NATS blinked) can ask for them
 * again and deliver them in order instead of with a hole.
 *
 * Bounds: at most `messages` envelopes and `bytes` of envelope bytes for the whole stream, the
 * oldest dropped first whatever their subject. The defaults (50,000 messages, 8 MiB) hold ~4 s of a
 * stock stream at 12,000 msgs/s of ~150-byte messages, and more of a quieter one: far longer than a
 * repair's round trip (milliseconds) needs, yet bounded whatever the vendor sends. Envelopes are
 * copied into the history's own 64 KiB chunks, filled in turn: a published envelope is a slice of
 * Node's shared allocation pool, and keeping seconds of those would pin every pool slab of those
 * seconds, whatever else they hold. Since the oldest go first, so do whole chunks: the history
 * holds at most its byte bound plus the chunks' unfilled tails. Because the oldest go first and a
 * subject's numbers grow by one, what is left of a subject is always its newest run of sequence
 * numbers: a span is found by index arithmetic.
 */
import { TickmuxError } from '../errors.js';

export interface RelayHistoryLimits {
  /** envelopes kept for the whole stream (0: none; every relay loss is then a gap notice) */
  readonly messages: number;
  /** envelope bytes kept for the whole stream */
  readonly bytes: number;
}

export const RELAY_HISTORY_MESSAGES = 50_000;
export const RELAY_HISTORY_BYTES = 8 * 1024 * 1024;
/** The history's chunks; an envelope above a quarter of one gets an allocation of its own. */
export const HISTORY_CHUNK_BYTES = 64 * 1024;

/** What the owner still has of a span `[from, to]` of one subject. */
export interface HistorySpan {
  /** the last sequence number of the span's leading part that is gone (`from − 1` when none is) */
  readonly goneThrough: number;
  /** the envelopes that follow it, consecutive from `goneThrough + 1`, as published */
  readonly envelopes: readonly Buffer[];
  /** the byte bound stopped the answer before `to`: what follows the last envelope is still kept */
  readonly more: boolean;
}

/** A subject's envelopes were recorded out of sequence (a bug in the caller, never input). */
export class RelayHistoryError extends TickmuxError {
  constructor(message: string) {
    super('ERR_RELAY_HISTORY', message);
  }
}

/** One subject's kept envelopes: the newest run of its sequence numbers. */
export class SubjectHistory {
  readonly name: string;
  /** the sequence number of `#envelopes[#head]` */
  #first = 1;
  readonly #envelopes: Buffer[] = [];
  #head = 0;
  /** entries of the stream's order that point here for envelopes `clear` already dropped */
  stale = 0;

  constructor(name: string) {
    this.name = name;
  }

  get size(): number {
    return this.#envelopes.length - this.#head;
  }

  get first(): number {
    return this.#first;
  }

  push(seq: number, envelope: Buffer): void {
    if (this.size === 0) this.#first = seq;
    else if (seq !== this.#first + this.size) throw new RelayHistoryError(`${this.name}: ${seq} recorded after ${this.#first + this.size - 1}`);
    this.#envelopes.push(envelope);
  }

  /** Drops the oldest envelope; returns its size. */
  shift(): number {
    const envelope = this.#envelopes[this.#head] as Buffer;
    this.#envelopes[this.#head] = EMPTY;
    this.#head += 1;
    this.#first += 1;
    // Compacted now and then, so a long-lived subject's array does not grow with its history.
    if (this.#head >= 1024 && this.#head * 2 >= this.#envelopes.length) {
      this.#envelopes.splice(0, this.#head);
      this.#head = 0;
    }
    return envelope.length;
  }

  /** Drops every kept envelope out of turn; returns their bytes. */
  clear(): number {
    let bytes = 0;
    while (this.size > 0) bytes += this.shift();
    this.#envelopes.length = 0;
    this.#head = 0;
    return bytes;
  }

  at(seq: number): Buffer {
    return this.#envelopes[this.#head + seq - this.#first] as Buffer;
  }
}

const EMPTY = Buffer.alloc(0);

export class RelayHistory {
  readonly #limits: RelayHistoryLimits;
  readonly #subjects = new Map<string, SubjectHistory>();
  /** which subject each kept envelope belongs to, oldest first (from `#orderHead`) */
  #order: SubjectHistory[] = [];
  #orderHead = 0;
  #messages = 0;
  #bytes = 0;
  /** the chunk being filled, and how much of it is */
  #chunk = EMPTY;
  #chunkUsed = 0;

  constructor(limits: RelayHistoryLimits = { messages: RELAY_HISTORY_MESSAGES, bytes: RELAY_HISTORY_BYTES }) {
    this.#limits = limits;
  }

  /** Envelopes and bytes kept now (diagnostics, tests of the bounds). */
  get stats(): { messages: number; bytes: number } {
    return { messages: this.#messages, bytes: this.#bytes };
  }

  /** The history of subject `name` (made once; the owner keeps it beside the subject's sequence). */
  subject(name: string): SubjectHistory {
    let history = this.#subjects.get(name);
    if (history === undefined) {
      history = new SubjectHistory(name);
      this.#subjects.set(name, history);
    }
    return history;
  }

  /** Keeps `envelope`, message `seq` of `subject`, dropping the oldest past either bound. */
  record(subject: SubjectHistory, seq: number, envelope: Buffer): void {
    if (envelope.length > this.#limits.bytes || this.#limits.messages === 0) {
      // Not kept: what the subject kept before would no longer run up to its newest number.
      const size = subject.size;
      if (size === 0) return;
      subject.stale += size;
      this.#messages -= size;
      this.#bytes -= subject.clear();
      return;
    }
    subject.push(seq, this.#keep(envelope));
    this.#order.push(subject);
    this.#messages += 1;
    this.#bytes += envelope.length;
    while (this.#messages > this.#limits.messages || this.#bytes > this.#limits.bytes) this.#evictOldest();
  }

  /**
   * What is kept of `[from, to]` on subject `name`: the gone prefix, then envelopes in order up
   * to `maxBytes` together (at least one, so an answer always moves on). Numbers this term never
   * published count as gone.
   */
  span(name: string, from: number, to: number, maxBytes: number): HistorySpan {
    const subject = this.#subjects.get(name);
    if (subject === undefined || subject.size === 0) return { goneThrough: to, envelopes: [], more: false };
    const last = subject.first + subject.size - 1;
    const start = Math.max(from, subject.first);
    if (start > to || start > last) return { goneThrough: to, envelopes: [], more: false };
    const end = Math.min(to, last);
    const envelopes: Buffer[] = [];
    let bytes = 0;
    for (let seq = start; seq <= end; seq++) {
      const envelope = subject.at(seq);
      if (envelopes.length > 0 && bytes + envelope.length > maxBytes) return { goneThrough: start - 1, envelopes, more: true };
      envelopes.push(envelope);
      bytes += envelope.length;
    }
    return { goneThrough: start - 1, envelopes, more: false };
  }

  /** Forgets everything (a new owner term: its numbers start again). */
  clear(): void {
    this.#subjects.clear();
    this.#order = [];
    this.#orderHead = 0;
    this.#messages = 0;
    this.#bytes = 0;
    this.#chunk = EMPTY;
    this.#chunkUsed = 0;
  }

  /** A copy of `envelope` in the history's own memory (see above). */
  #keep(envelope: Buffer): Buffer {
    if (envelope.length > HISTORY_CHUNK_BYTES / 4) {
      const own = Buffer.allocUnsafeSlow(envelope.length);
      envelope.copy(own);
      return own;
    }
    if (this.#chunkUsed + envelope.length > this.#chunk.length) {
      this.#chunk = Buffer.allocUnsafeSlow(HISTORY_CHUNK_BYTES);
      this.#chunkUsed = 0;
    }
    const kept = this.#chunk.subarray(this.#chunkUsed, this.#chunkUsed + envelope.length);
    envelope.copy(kept);
    this.#chunkUsed += envelope.length;
    return kept;
  }

  /**
   * Drops the stream's oldest envelope. An entry of `#order` for an envelope its subject already
   * dropped out of turn (`record`'s unkept path) is skipped.
   */
  #evictOldest(): void {
    while (this.#orderHead < this.#order.length) {
      const subject = this.#order[this.#orderHead] as SubjectHistory;
      this.#orderHead += 1;
      if (this.#orderHead >= 1024 && this.#orderHead * 2 >= this.#order.length) {
        this.#order = this.#order.slice(this.#orderHead);
        this.#orderHead = 0;
      }
      if (subject.stale > 0) {
        subject.stale -= 1;
        continue;
      }
      this.#messages -= 1;
      this.#bytes -= subject.shift();
      return;
    }
  }
}
