/**
 * One served stream in a cluster (DESIGN.md §10): what the hub sees as its vendor link.
 *
 * - As **owner** (this node holds the stream's lease) it is the local vendor link: the link's
 *   state, its refusals, and every vendor message, which it also publishes on NATS — the vendor's
 *   bytes in an envelope (`envelope.ts`) on the message's (stream, channel, symbol) subject — and
 *   it answers the other nodes' requests (restart, snapshot, sync). The vendor holds the pinned
 *   set, this node's clients' set and every live node's set.
 * - As **follower** it subscribes to the subjects its own clients hold (a channel's `*` as a
 *   wildcard subject) and hands what arrives to the same hub; its state is the owner's link state
 *   as the owner last published it, while that is fresh and NATS is connected.
 * - **Relay losses are repaired** (issue #19): the owner keeps its recent envelopes
 *   (`relay-history.ts`); a follower that sees a gap in a subject's sequence holds that subject's
 *   later messages (the others flow on), asks the owner for the span (`repair.ts`) and delivers
 *   what comes back in order before them. What cannot be had (gone from the history, no answer,
 *   a garbage answer, too much held) is delivered around, counted as lost, and the `?events=1`
 *   clients holding the subject's pair get a `gap` notice: never a silent hole.
 *
 * Plain TypeScript: the link does not know about the cluster; the cluster node decides the role.
 */
import { EventEmitter } from 'node:events';
import { createInbox, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import { TickmuxError } from '../errors.js';
import { ChannelSet, type Pair, pairsOf } from '../protocol/channel-set.js';
import { type Channel, WILDCARD } from '../protocol/channels.js';
import { type Encoding, joinFrame, type MessageUnit, splitFrame, splitMessage } from '../protocol/frame.js';
import type { StreamKind } from '../protocol/streams.js';
import type { Hub } from '../hub/hub.js';
import { LINK_STATES, type LinkState, type Refusal, type StateChange, type StreamManager } from '../upstream/stream-manager.js';
import { EnvelopeError, encodingByte, encodingOfByte, unwrap, wrap } from './envelope.js';
import { RelayHistory, type RelayHistoryLimits, type SubjectHistory } from './relay-history.js';
import { decodeRepairAnswer, encodeRepairAnswer, encodeRepairRequest, parseRepairRequest, REPAIR_ANSWER_BYTES, RepairError } from './repair.js';
import { dataSubject, dataSubjectParts, ownerSubject, refusedSubject, stateSubject } from './subjects.js';

type Role = 'owner' | 'follower';

/** A relay subject and the sequence number of the last message published on it. */
interface SubjectSequence {
  readonly name: string;
  seq: number;
  /** what the owner keeps of it for repairs */
  readonly history: SubjectHistory;
}

/** Follower: the publisher and sequence number last received on a subject, and what it carries. */
interface ReceivedSubject {
  epoch: number;
  seq: number;
  /** the subject's channel and symbol, as `dataSubject` made them (absent on `_` subjects) */
  readonly channel: Channel | undefined;
  readonly symbol: string | undefined;
}

/** Why a gap could not be repaired (a `gap` notice's `reason`). */
export type GapReason = 'gone' | 'timeout' | 'unavailable' | 'malformed' | 'overflow' | 'superseded';

/**
 * Follower: a gap on one subject being repaired. Its messages that arrived after the gap wait in
 * `held` (in sequence order, possibly with later gaps among them, repaired in turn).
 */
interface Repair {
  readonly subject: string;
  readonly epoch: number;
  readonly channel: Channel | undefined;
  readonly symbol: string | undefined;
  /** the first missing sequence number not yet had */
  next: number;
  /** the last missing one: the first held message's number − 1 */
  to: number;
  readonly held: { seq: number; unit: MessageUnit; bytes: number }[];
  heldBytes: number;
  /** cancels the request in flight (its late answer is then never seen) */
  cancel: (() => void) | undefined;
}

/** How long a follower waits for the owner's repair answer before it delivers around the gap. */
export const REPAIR_TIMEOUT_MS = 1000;
/** What a follower holds behind gaps being repaired, all subjects of a stream together. */
export const REPAIR_HOLD_MESSAGES = 10_000;
export const REPAIR_HOLD_BYTES = 4 * 1024 * 1024;

/** The owner's link as it last published it. */
interface OwnerState {
  readonly node: string;
  readonly state: LinkState;
  /** when the owner's link entered that state (its clock, epoch ms) */
  readonly since: number;
  readonly reason?: string;
}

export interface RelayCounters {
  /** vendor messages this node published as owner */
  published: number;
  /** vendor messages this node received from NATS as follower */
  received: number;
  /** second copies dropped (a symbol and its channel's `*` both matched) */
  duplicates: number;
  /** messages of subjects this node held that were never delivered (a gap no repair could fill) */
  lost: number;
  /** cluster messages that could not be read (other format, malformed) */
  malformed: number;
  /** follower: repair requests sent to the owner (one per gap, more for a long one) */
  repairRequests: number;
  /** follower: missing messages the owner sent again, delivered in order */
  repaired: number;
  /** follower: gaps (spans) that could not be repaired, each told to its holders in a `gap` notice */
  repairFailures: number;
  /** owner: repair requests answered */
  repairsAnswered: number;
}

export interface ClusterStreamOptions {
  readonly clusterName: string;
  readonly nodeId: string;
  readonly path: string;
  readonly kind: StreamKind;
  readonly link: StreamManager;
  readonly ttlMs: number;
  readonly logger: Logger;
  readonly clock: Clock;
  /** a random uint32 per owner term (the envelope's epoch) */
  readonly randomEpoch: () => number;
  /** the other live nodes' sets for this stream (the owner subscribes the vendor to them too) */
  readonly otherNodesInterest: () => Iterable<ChannelSet>;
  /** this node's clients' set changed: the cluster node rewrites its entry */
  readonly onInterestChanged: () => void;
  /** how long a request to the owner may take */
  readonly requestTimeoutMs?: number;
  /** owner: what it keeps of its relay messages for repairs (default 50,000 messages, 8 MiB) */
  readonly relayHistory?: RelayHistoryLimits;
  /** follower: how long it waits for a repair answer (default REPAIR_TIMEOUT_MS) */
  readonly repairTimeoutMs?: number;
  /** follower: what it holds behind gaps, all subjects together (default REPAIR_HOLD_MESSAGES / _BYTES) */
  readonly repairHold?: { readonly messages: number; readonly bytes: number };
}

interface StreamEvents {
  state: [StateChange];
  refused: [Refusal];
}

/** The owner could not be asked (no owner, NATS down, or it did not answer in time). */
export class OwnerUnavailableError extends TickmuxError {
  /** the owner was asked but did not answer within the request's time */
  readonly timedOut: boolean;

  constructor(message: string, options?: { cause?: unknown; timedOut?: boolean }) {
    super('ERR_CLUSTER_NO_OWNER', message, options);
    this.timedOut = options?.timedOut === true;
  }
}

const LINK_STATE_NAMES = new Set<string>(LINK_STATES);

export class ClusterStream extends EventEmitter<StreamEvents> {
  readonly path: string;
  readonly kind: StreamKind;
  readonly counters: RelayCounters = { published: 0, received: 0, duplicates: 0, lost: 0, malformed: 0, repairRequests: 0, repaired: 0, repairFailures: 0, repairsAnswered: 0 };
  /**
   * Fault injection (tests, drills): a relay message this returns true for is kept in the owner's
   * history and counted as published, but not sent — as if NATS had lost it on the way.
   */
  dropRelay: ((subject: string, seq: number) => boolean) | undefined;
  #role: Role = 'follower';
  #hub: Hub | undefined;
  #nc: NatsConnection | undefined;
  #natsUp = false;
  /** follower: subject → subscription for what this node's clients hold */
  readonly #dataSubs = new Map<string, Subscription>();
  /** subscriptions that live as long as the connection: owner state, refusals */
  readonly #streamSubs: Subscription[] = [];
  /** owner: the request handlers */
  readonly #ownerSubs: Subscription[] = [];
  #subsDirty = false;
  #desiredDirty = false;
  #epoch = 0;
  /** owner: the subject and its sequence per message `stateKey`, so the hot path escapes no symbol */
  readonly #published = new Map<string, SubjectSequence>();
  /** owner: one sequence per subject (several message types share one: a trade and its correction) */
  readonly #bySubject = new Map<string, SubjectSequence>();
  /** owner: its recent envelopes, for followers' repairs */
  readonly #history: RelayHistory;
  /** follower: the publisher and sequence last received per subject */
  readonly #received = new Map<string, ReceivedSubject>();
  /** follower: subject → the gap being repaired on it */
  readonly #repairs = new Map<string, Repair>();
  /** follower: messages and bytes held behind every repair */
  #heldMessages = 0;
  #heldBytes = 0;
  #owner: OwnerState | undefined;
  #lastReceivedAt: number | undefined;
  #lostLoggedAt = -Infinity;
  /** the local link's intake paused by the hub while owning (resumed even if the role changed since) */
  #linkPaused = false;
  #ownerStaleTimer: unknown;
  #heartbeatTimer: unknown;
  /** the state the hub last heard, to emit changes only */
  #state: LinkState;
  #since: number;
  #reason: string | undefined;
  /** malformed messages already logged (a flood is counted, logged once per kind) */
  readonly #loggedMalformed = new Set<string>();
  #pinnedRevision = 0;
  readonly #pinnedWaiters = new Set<{ revision: number; resolve: () => void }>();
  readonly #o: ClusterStreamOptions;
  readonly #link: StreamManager;
  readonly #log: Logger;

  constructor(options: ClusterStreamOptions) {
    super();
    this.#o = options;
    this.path = options.path;
    this.kind = options.kind;
    this.#link = options.link;
    this.#history = new RelayHistory(options.relayHistory);
    this.#log = options.logger.child({ component: 'cluster-stream', stream: options.path });
    this.#state = 'connecting';
    this.#since = options.clock.now();
    this.#reason = 'no owner known yet';
    this.#link.on('state', (change) => this.#onLinkState(change));
    this.#link.on('refused', (refusal) => this.#onLinkRefused(refusal));
  }

  /** The hub this stream feeds (set once, right after both exist). */
  attach(hub: Hub): void {
    this.#hub = hub;
  }

  get state(): LinkState {
    return this.#state;
  }

  get since(): number {
    return this.#since;
  }

  get reason(): string | undefined {
    return this.#reason;
  }

  /** When the last vendor message arrived here: from the local link as owner, through NATS as follower. */
  get lastMessageAt(): number | undefined {
    return this.#role === 'owner' ? this.#link.stats.lastMessageAt : this.#lastReceivedAt;
  }

  /** Whether data reaches the hub from NATS rather than from a local vendor link. */
  get relayed(): boolean {
    return this.#role === 'follower';
  }

  /** The hub's set changed (pairs entered or left clients ∪ pinned). */
  change(_added: Iterable<Pair>, _removed: Iterable<Pair>): void {
    // Subscribed before the entry that makes the owner ask the vendor is written (same connection).
    if (this.#role === 'follower') this.#markSubsDirty();
    else this.interestChanged();
    this.#o.onInterestChanged();
  }

  /**
   * The hub's brake under overload. As owner it pauses the vendor socket; as follower there is
   * nothing to pause (NATS keeps delivering; the hub holds what arrives until it has flushed).
   */
  pauseIntake(): void {
    if (this.#role !== 'owner') return;
    this.#linkPaused = true;
    this.#link.pauseIntake();
  }

  resumeIntake(): void {
    if (!this.#linkPaused) return;
    this.#linkPaused = false;
    this.#link.resumeIntake();
  }

  /** Some node's set or the pinned set changed: the owner recomputes what the vendor holds. */
  interestChanged(): void {
    if (this.#role !== 'owner' || this.#desiredDirty) return;
    this.#desiredDirty = true;
    setImmediate(() => this.#applyDesired());
  }

  #applyDesired(): void {
    this.#desiredDirty = false;
    const hub = this.#hub;
    if (this.#role !== 'owner' || hub === undefined) return;
    const desired = hub.desired();
    for (const set of this.#o.otherNodesInterest()) desired.addAll(set);
    this.#link.setDesired(desired);
  }

  /** NATS is connected (again) with `nc`; the client keeps subscriptions across its own reconnects. */
  connected(nc: NatsConnection): void {
    if (this.#nc !== nc) {
      this.#closeSubscriptions();
      this.#nc = nc;
      this.#streamSubs.push(
        nc.subscribe(stateSubject(this.#o.clusterName, this.path), { callback: (err, msg) => void (err === null && this.#onOwnerState(msg)) }),
        nc.subscribe(refusedSubject(this.#o.clusterName, this.path), { callback: (err, msg) => void (err === null && this.#onRemoteRefusal(msg)) }),
      );
      if (this.#role === 'owner') this.#subscribeOwnerRequests(nc);
      else this.#syncSubscriptions();
    }
    this.natsStatus(true);
  }

  /** NATS went away or came back (the client reconnects by itself). */
  natsStatus(up: boolean): void {
    this.#natsUp = up;
    if (up && this.#role === 'owner') this.#publishState();
    this.#recompute();
  }

  /** This node now holds the lease: its link carries the stream; call before starting the link. */
  becomeOwner(): void {
    if (this.#role === 'owner') return;
    this.#role = 'owner';
    this.#epoch = this.#o.randomEpoch() >>> 0;
    this.#published.clear();
    this.#bySubject.clear();
    this.#history.clear();
    // What waited behind a gap goes to the hub before the local link's first message.
    for (const repair of [...this.#repairs.values()]) this.#giveUp(repair, 'superseded');
    this.#owner = undefined;
    this.#o.clock.clearTimeout(this.#ownerStaleTimer);
    for (const sub of this.#dataSubs.values()) sub.unsubscribe();
    this.#dataSubs.clear();
    if (this.#nc !== undefined) this.#subscribeOwnerRequests(this.#nc);
    this.#desiredDirty = false;
    this.#applyDesired();
    this.#heartbeat();
    this.#recompute();
  }

  /** The lease is gone (lost or released): stop speaking for the stream and follow its owner. */
  becomeFollower(): void {
    if (this.#role === 'follower') return;
    this.#role = 'follower';
    this.#o.clock.clearTimeout(this.#heartbeatTimer);
    this.#heartbeatTimer = undefined;
    for (const sub of this.#ownerSubs) sub.unsubscribe();
    this.#ownerSubs.length = 0;
    this.#received.clear();
    this.#syncSubscriptions();
    this.#recompute();
  }

  /** Owner: the local link's messages, published for the other nodes (after the local hub had them). */
  relay(units: readonly MessageUnit[]): void {
    const nc = this.#nc;
    if (this.#role !== 'owner' || nc === undefined) return;
    for (const unit of units) {
      const key = unit.stateKey;
      let subject = this.#published.get(key);
      if (subject === undefined) {
        const channel = unit.type === undefined ? undefined : this.kind.typeToChannel[unit.type];
        const name = dataSubject(this.#o.clusterName, this.path, channel, this.kind.symbolsField === 'symbols' ? undefined : unit.symbol);
        subject = this.#bySubject.get(name) ?? { name, seq: 0, history: this.#history.subject(name) };
        this.#bySubject.set(name, subject);
        this.#published.set(key, subject);
      }
      subject.seq += 1;
      const envelope = wrap(unit.sourceEncoding, this.#epoch, subject.seq, unit.encoded(unit.sourceEncoding));
      this.#history.record(subject.history, subject.seq, envelope);
      if (this.dropRelay?.(subject.name, subject.seq) !== true) nc.publish(subject.name, envelope);
    }
    this.counters.published += units.length;
  }

  /**
   * Follower: what the owner has for these pairs — order books as resets, and with `values` the
   * last values — handed to `done` (or the error) in the same dispatch as the relayed messages:
   * asked after this node's subscriptions for them are in place, on the connection that carries
   * their data, so the answer lands after every message published before it was made and before
   * every one published after, and `done` runs in that order (a promise would run it only after
   * the messages that arrived with the answer). False when there is nothing to ask.
   */
  catchUp(pairs: readonly Pair[], values: boolean, done: (answer: MessageUnit[] | Error) => void): boolean {
    const nc = this.#nc;
    if (this.#role !== 'follower' || nc === undefined || !this.#natsUp || pairs.length === 0) return false;
    this.#syncSubscriptions();
    this.#askInOrder(nc, 'snapshot', JSON.stringify({ pairs, values }), (answer) => {
      // The answer is as of after every message published before it: a subject of these pairs
      // still held behind a gap goes to the hub first, around the gap, so nothing older follows it.
      if (this.#repairs.size > 0) this.#supersedeRepairs(pairs);
      if (answer instanceof Error) return done(answer);
      const data = Buffer.from(answer.data.buffer, answer.data.byteOffset, answer.data.byteLength);
      try {
        done(data.length < 2 ? [] : splitFrame(data.subarray(1), encodingOfByte(data[0] as number), this.kind).map((unit) => unit.detach()));
      } catch (err) {
        this.#malformed('snapshot answer', answer.subject, err);
        done(err instanceof Error ? err : new Error(String(err)));
      }
    });
    return true;
  }

  /**
   * A request whose answer is handled in the subscription callback itself, in wire order. The
   * returned function cancels it: neither its answer nor its timeout then reaches `done`.
   */
  #askInOrder(nc: NatsConnection, operation: string, body: string, done: (answer: Msg | OwnerUnavailableError) => void, timeoutMs = this.#o.requestTimeoutMs ?? 5000): () => void {
    const inbox = createInbox(`${this.#o.clusterName}._INBOX`);
    let timer: unknown;
    const sub = nc.subscribe(inbox, {
      max: 1,
      callback: (err, msg) => {
        this.#o.clock.clearTimeout(timer);
        if (err !== null || msg.headers?.hasError === true) done(new OwnerUnavailableError(`the owner of ${this.path} did not answer ${operation}: ${String(err ?? msg.headers?.description ?? 'no responders')}`));
        else done(msg);
      },
    });
    timer = this.#o.clock.setTimeout(() => {
      sub.unsubscribe();
      done(new OwnerUnavailableError(`the owner of ${this.path} did not answer ${operation} in time`, { timedOut: true }));
    }, timeoutMs);
    nc.publish(ownerSubject(this.#o.clusterName, this.path, operation), body, { reply: inbox });
    return () => {
      this.#o.clock.clearTimeout(timer);
      sub.unsubscribe();
    };
  }

  /** Restarts the owner's link, wherever it runs. */
  async restart(correlationId: string | undefined): Promise<{ restartId: string; state: LinkState; joined: boolean }> {
    if (this.#role === 'owner') return this.#restartHere(correlationId);
    const nc = this.#nc;
    if (nc === undefined) throw new OwnerUnavailableError('NATS is not connected');
    const answer = (await this.#ask(nc, 'restart', JSON.stringify({ correlationId }))).json() as Record<string, unknown>;
    if (typeof answer.restartId !== 'string' || typeof answer.state !== 'string' || typeof answer.joined !== 'boolean') {
      throw new OwnerUnavailableError(`the owner of ${this.path} answered restart with ${JSON.stringify(answer).slice(0, 200)}`);
    }
    return { restartId: answer.restartId, state: answer.state as LinkState, joined: answer.joined };
  }

  #restartHere(correlationId: string | undefined): { restartId: string; state: LinkState; joined: boolean } {
    const ticket = this.#link.restart({ correlationId });
    return { restartId: ticket.id, state: this.#link.state, joined: ticket.joined };
  }

  /**
   * Whether the vendor acknowledged the pinned set of `revision` (and everything else the owner
   * holds) within `timeoutMs`, asked of the owner wherever it runs; false while it is not live.
   */
  async synced(revision: number, timeoutMs: number): Promise<boolean> {
    if (this.#role === 'owner') return this.#syncedHere(revision, timeoutMs);
    const nc = this.#nc;
    if (nc === undefined) throw new OwnerUnavailableError('NATS is not connected');
    const msg = await this.#ask(nc, 'sync', JSON.stringify({ revision, timeoutMs }), timeoutMs + 1000);
    return (msg.json() as { applied?: unknown }).applied === true;
  }

  async #syncedHere(revision: number, timeoutMs: number): Promise<boolean> {
    if (!(await this.pinnedApplied(revision, timeoutMs))) return false;
    if (this.#desiredDirty) this.#applyDesired();
    if (this.#link.state !== 'live') return false;
    return this.#link.whenSynced(timeoutMs).then(
      () => true,
      () => false,
    );
  }

  /** The pinned set in the cluster's bucket at `revision` (every node mirrors it into its hub). */
  applyPinned(set: ChannelSet, revision: number): void {
    this.#hub?.setPinned(set);
    this.#pinnedRevision = Math.max(this.#pinnedRevision, revision);
    for (const waiter of this.#pinnedWaiters) {
      if (waiter.revision <= this.#pinnedRevision) {
        this.#pinnedWaiters.delete(waiter);
        waiter.resolve();
      }
    }
  }

  /** Whether this node's hub holds the pinned set of `revision` or later within `timeoutMs`. */
  pinnedApplied(revision: number, timeoutMs: number): Promise<boolean> {
    if (revision <= this.#pinnedRevision) return Promise.resolve(true);
    return new Promise((resolve) => {
      const waiter = {
        revision,
        resolve: () => {
          this.#o.clock.clearTimeout(timer);
          resolve(revision <= this.#pinnedRevision);
        },
      };
      const timer = this.#o.clock.setTimeout(() => {
        this.#pinnedWaiters.delete(waiter);
        resolve(false);
      }, timeoutMs);
      this.#pinnedWaiters.add(waiter);
    });
  }

  /** Drops every subscription and timer (the cluster node closes NATS). */
  close(): void {
    for (const repair of this.#repairs.values()) repair.cancel?.();
    this.#repairs.clear();
    this.#heldMessages = 0;
    this.#heldBytes = 0;
    this.#closeSubscriptions();
    this.#nc = undefined;
    this.#natsUp = false;
    this.#o.clock.clearTimeout(this.#heartbeatTimer);
    this.#o.clock.clearTimeout(this.#ownerStaleTimer);
    for (const waiter of this.#pinnedWaiters) waiter.resolve();
    this.#pinnedWaiters.clear();
  }

  #closeSubscriptions(): void {
    for (const sub of [...this.#dataSubs.values(), ...this.#streamSubs, ...this.#ownerSubs]) sub.unsubscribe();
    this.#dataSubs.clear();
    this.#streamSubs.length = 0;
    this.#ownerSubs.length = 0;
  }

  /** A request to the owner as a promise (for answers nothing else is ordered against). */
  #ask(nc: NatsConnection, operation: string, body: string, timeoutMs?: number): Promise<Msg> {
    return new Promise((resolve, reject) => void this.#askInOrder(nc, operation, body, (answer) => (answer instanceof Error ? reject(answer) : resolve(answer)), timeoutMs));
  }

  #markSubsDirty(): void {
    if (this.#subsDirty) return;
    this.#subsDirty = true;
    setImmediate(() => this.#syncSubscriptions());
  }

  /** Follower: one subscription per subject this node's clients hold, nothing else. */
  #syncSubscriptions(): void {
    this.#subsDirty = false;
    const nc = this.#nc;
    const hub = this.#hub;
    if (this.#role !== 'follower' || nc === undefined || hub === undefined) return;
    const wanted = new Set<string>();
    const held = new ChannelSet(hub.clientUnion());
    if (!held.isEmpty) wanted.add(dataSubject(this.#o.clusterName, this.path, undefined, undefined)); // types the gateway does not know
    for (const [channel, symbol] of pairsOf(held)) {
      if (this.kind.symbolsField === 'symbols') wanted.add(dataSubject(this.#o.clusterName, this.path, channel, undefined));
      else if (symbol === WILDCARD || !held.has(channel, WILDCARD)) wanted.add(dataSubject(this.#o.clusterName, this.path, channel, symbol));
    }
    for (const [subject, sub] of this.#dataSubs) {
      if (wanted.has(subject)) continue;
      sub.unsubscribe();
      this.#dataSubs.delete(subject);
      // A subject held again later starts afresh: what passed meanwhile was not lost. One being
      // repaired keeps its numbers until the repair ends (its answer, or its timeout).
      if (!subject.endsWith('.*')) {
        if (!this.#repairs.has(subject)) this.#received.delete(subject);
      } else {
        for (const seen of this.#received.keys()) if (seen.startsWith(subject.slice(0, -1)) && !wanted.has(seen) && !this.#repairs.has(seen)) this.#received.delete(seen);
      }
    }
    for (const subject of wanted) {
      if (this.#dataSubs.has(subject)) continue;
      this.#dataSubs.set(subject, nc.subscribe(subject, { callback: (err, msg) => void (err === null && this.#onData(msg)) }));
    }
  }

  #onData(msg: Msg): void {
    if (this.#role !== 'follower') return;
    let unit: MessageUnit;
    let epoch: number;
    let seq: number;
    let last: ReceivedSubject | undefined;
    try {
      const envelope = unwrap(msg.data);
      unit = splitMessage(envelope.body, envelope.encoding, this.kind);
      epoch = envelope.epoch;
      seq = envelope.seq;
      last = this.#received.get(msg.subject);
      const parts = last ?? this.#partsOf(msg.subject);
      // What an owner publishes on a subject is always of that subject's pair: anything else is
      // someone else's, and never reaches a client.
      if (!this.#carries(parts, unit)) throw new EnvelopeError(`a message of another pair (${unit.type ?? '?'} ${unit.symbol ?? ''}) on ${msg.subject}`);
      if (last === undefined) {
        this.#received.set(msg.subject, { epoch, seq, channel: parts.channel, symbol: parts.symbol });
      }
    } catch (err) {
      this.#malformed('data', msg.subject, err);
      return;
    }
    if (last !== undefined && last.epoch !== epoch) {
      // Another owner term: its predecessor's missing messages cannot be asked of anyone.
      const repair = this.#repairs.get(msg.subject);
      if (repair !== undefined) this.#giveUp(repair, 'superseded');
      last.epoch = epoch;
      last.seq = seq;
    } else if (last !== undefined) {
      if (seq <= last.seq) {
        this.counters.duplicates += 1;
        return;
      }
      const from = last.seq + 1;
      last.seq = seq;
      const repair = this.#repairs.get(msg.subject);
      if (repair !== undefined || seq > from) {
        this.counters.received += 1;
        this.#lastReceivedAt = this.#o.clock.now();
        this.#hold(repair ?? this.#startRepair(msg.subject, last, from, seq - 1), seq, unit);
        return;
      }
    }
    this.counters.received += 1;
    this.#lastReceivedAt = this.#o.clock.now();
    this.#hub?.onData([unit]);
  }

  /** The channel and symbol a data subject of this stream carries. @throws EnvelopeError for any other subject */
  #partsOf(subject: string): { channel: Channel | undefined; symbol: string | undefined } {
    const parts = dataSubjectParts(this.#o.clusterName, this.path, subject);
    if (parts === undefined || (parts.channel !== undefined && !this.kind.channels.includes(parts.channel as Channel))) {
      throw new EnvelopeError(`${subject} is not a data subject of ${this.path}`);
    }
    return parts as { channel: Channel | undefined; symbol: string | undefined };
  }

  /** Whether `unit` is a message the owner would have published on the subject of `parts`. */
  #carries(parts: { readonly channel: Channel | undefined; readonly symbol: string | undefined }, unit: MessageUnit): boolean {
    const channel = unit.type === undefined ? undefined : this.kind.typeToChannel[unit.type];
    if (channel !== parts.channel) return false;
    return channel === undefined || this.kind.symbolsField === 'symbols' ? parts.symbol === undefined : unit.symbol === parts.symbol;
  }

  // ---- the follower's repairs

  /** A gap `[from, to]` on `subject`: its later messages wait while the owner is asked for it. */
  #startRepair(subject: string, last: ReceivedSubject, from: number, to: number): Repair {
    const repair: Repair = { subject, epoch: last.epoch, channel: last.channel, symbol: last.symbol, next: from, to, held: [], heldBytes: 0, cancel: undefined };
    this.#repairs.set(subject, repair);
    this.#askRepair(repair);
    return repair;
  }

  /** Holds a message that came after a gap; past the stream's bound the repair is given up. */
  #hold(repair: Repair, seq: number, unit: MessageUnit): void {
    if (this.#repairs.get(repair.subject) !== repair) {
      // Given up before it could hold anything (NATS down): delivered around the gap at once.
      this.#hub?.onData([unit]);
      return;
    }
    // Its own bytes: the NATS message it was cut from would stay alive with it otherwise.
    const bytes = unit.detach().byteLength(unit.sourceEncoding);
    repair.held.push({ seq, unit, bytes });
    repair.heldBytes += bytes;
    this.#heldMessages += 1;
    this.#heldBytes += bytes;
    const bound = this.#o.repairHold ?? { messages: REPAIR_HOLD_MESSAGES, bytes: REPAIR_HOLD_BYTES };
    if (this.#heldMessages > bound.messages || this.#heldBytes > bound.bytes) this.#giveUp(repair, 'overflow');
  }

  /** Asks the owner for `[repair.next, repair.to]`; its answer is handled in wire order with the data. */
  #askRepair(repair: Repair): void {
    const nc = this.#nc;
    if (nc === undefined || !this.#natsUp) {
      this.#giveUp(repair, 'unavailable');
      return;
    }
    this.counters.repairRequests += 1;
    const request = encodeRepairRequest({ subject: repair.subject, epoch: repair.epoch, from: repair.next, to: repair.to });
    const cancel = this.#askInOrder(
      nc,
      'repair',
      request,
      (answer) => {
        if (repair.cancel !== cancel || this.#repairs.get(repair.subject) !== repair) return;
        repair.cancel = undefined;
        if (answer instanceof Error) {
          this.#log.warn({ subject: repair.subject, from: repair.next, to: repair.to, err: answer.message }, 'relay repair not answered');
          this.#giveUp(repair, answer.timedOut ? 'timeout' : 'unavailable');
          return;
        }
        this.#repairAnswered(repair, answer);
      },
      this.#o.repairTimeoutMs ?? REPAIR_TIMEOUT_MS,
    );
    repair.cancel = cancel;
  }

  /** The owner's answer: the gone part noticed, what it sent delivered, then the held ones. */
  #repairAnswered(repair: Repair, answer: Msg): void {
    let goneThrough: number;
    let units: MessageUnit[];
    let more: boolean;
    try {
      const decoded = decodeRepairAnswer(answer.data);
      goneThrough = decoded.goneThrough;
      more = decoded.more;
      if (goneThrough < repair.next - 1 || goneThrough > repair.to) throw new RepairError(`repair answer gone through ${goneThrough}, outside ${repair.next}–${repair.to}`);
      if (more && decoded.envelopes.length === 0) throw new RepairError('repair answer says more but sends nothing');
      units = decoded.envelopes.map((data, i) => {
        const envelope = unwrap(data);
        const seq = goneThrough + 1 + i;
        if (envelope.epoch !== repair.epoch || envelope.seq !== seq || seq > repair.to) throw new RepairError(`repair answer envelope ${envelope.epoch}/${envelope.seq} where ${repair.epoch}/${seq} was due`);
        const unit = splitMessage(envelope.body, envelope.encoding, this.kind).detach();
        if (!this.#carries(repair, unit)) throw new RepairError(`repair answer carries a message of another pair than ${repair.subject}`);
        return unit;
      });
    } catch (err) {
      // Every byte of an answer is input: whatever fails to read, nothing of it is delivered.
      this.#malformed('repair answer', repair.subject, err);
      this.#giveUp(repair, 'malformed');
      return;
    }
    if (goneThrough >= repair.next) this.#gap(repair, repair.next, goneThrough, 'gone');
    repair.next = goneThrough + 1;
    if (units.length > 0) {
      this.counters.repaired += units.length;
      repair.next += units.length;
      this.#hub?.onData(units);
    }
    if (repair.next <= repair.to) {
      if (more) return this.#askRepair(repair);
      this.#gap(repair, repair.next, repair.to, 'gone');
    }
    this.#release(repair);
  }

  /**
   * The gap is behind: the held messages go out up to the next gap among them, which is asked
   * for in turn; with none left the repair ends.
   */
  #release(repair: Repair): void {
    const held = repair.held;
    let expected = repair.to + 1;
    let k = 0;
    const out: MessageUnit[] = [];
    while (k < held.length && (held[k] as { seq: number }).seq === expected) {
      const item = held[k] as { unit: MessageUnit; bytes: number };
      out.push(item.unit);
      repair.heldBytes -= item.bytes;
      this.#heldBytes -= item.bytes;
      expected += 1;
      k += 1;
    }
    this.#heldMessages -= k;
    held.splice(0, k);
    if (held.length === 0) this.#endRepair(repair);
    if (out.length > 0) this.#hub?.onData(out);
    if (held.length === 0) return;
    repair.next = expected;
    repair.to = (held[0] as { seq: number }).seq - 1;
    this.#askRepair(repair);
  }

  /** Gives the rest of `repair` up: every span still missing is noticed, the held messages delivered around them. */
  #giveUp(repair: Repair, reason: GapReason): void {
    this.#endRepair(repair);
    if (repair.next <= repair.to) this.#gap(repair, repair.next, repair.to, reason);
    let expected = repair.to + 1;
    let batch: MessageUnit[] = [];
    for (const item of repair.held) {
      if (item.seq > expected) {
        if (batch.length > 0) this.#hub?.onData(batch);
        batch = [];
        this.#gap(repair, expected, item.seq - 1, reason);
      }
      batch.push(item.unit);
      expected = item.seq + 1;
    }
    repair.held.length = 0;
    if (batch.length > 0) this.#hub?.onData(batch);
  }

  #endRepair(repair: Repair): void {
    repair.cancel?.();
    repair.cancel = undefined;
    if (this.#repairs.get(repair.subject) === repair) this.#repairs.delete(repair.subject);
    // Unsubscribed meanwhile (see #syncSubscriptions): held again later, it starts afresh.
    const wildcard = `${repair.subject.slice(0, repair.subject.lastIndexOf('.'))}.*`;
    if (!this.#dataSubs.has(repair.subject) && !this.#dataSubs.has(wildcard)) this.#received.delete(repair.subject);
    this.#heldMessages -= repair.held.length;
    this.#heldBytes -= repair.heldBytes;
    repair.heldBytes = 0;
  }

  /** A catch-up answer for `pairs` arrived: repairs of subjects it covers end now (see `catchUp`). */
  #supersedeRepairs(pairs: readonly Pair[]): void {
    for (const repair of [...this.#repairs.values()]) {
      if (repair.channel === undefined) continue;
      if (pairs.some(([channel, symbol]) => channel === repair.channel && (symbol === WILDCARD || repair.symbol === undefined || symbol === repair.symbol))) this.#giveUp(repair, 'superseded');
    }
  }

  /**
   * Messages `[from, to]` of a subject this node holds will never be delivered: counted, logged
   * (at most once per second), and the `?events=1` clients holding its pair are told.
   */
  #gap(repair: Repair, from: number, to: number, reason: GapReason): void {
    const messages = to - from + 1;
    this.counters.lost += messages;
    this.counters.repairFailures += 1;
    const now = this.#o.clock.now();
    if (now - this.#lostLoggedAt >= 1000) {
      this.#lostLoggedAt = now;
      this.#log.warn({ subject: repair.subject, from, to, lost: messages, reason, lostTotal: this.counters.lost }, 'relayed messages lost between the owner and this node');
    }
    this.#hub?.notifyHolders(repair.channel, repair.symbol, {
      T: 'gateway',
      event: 'gap',
      stream: this.path,
      ...(repair.channel === undefined ? {} : { channel: repair.channel }),
      ...(repair.symbol === undefined ? {} : { symbol: repair.symbol }),
      from,
      to,
      messages,
      reason,
      at: new Date(now).toISOString(),
    });
  }

  #malformed(what: string, subject: string, err: unknown): void {
    this.counters.malformed += 1;
    if (this.#loggedMalformed.has(what)) return;
    this.#loggedMalformed.add(what);
    this.#log.warn({ subject, err: String(err) }, `cluster ${what} message ignored (logged once per kind)`);
  }

  // ---- the owner's side

  #subscribeOwnerRequests(nc: NatsConnection): void {
    if (this.#ownerSubs.length > 0) return;
    const handle = (operation: string, fn: (msg: Msg) => void | Promise<void>): void => {
      this.#ownerSubs.push(
        nc.subscribe(ownerSubject(this.#o.clusterName, this.path, operation), {
          callback: (err, msg) => {
            if (err !== null || this.#role !== 'owner') return;
            Promise.resolve()
              .then(() => fn(msg))
              .catch((error: unknown) => {
                this.#malformed(operation, msg.subject, error);
                msg.respond(JSON.stringify({ error: String(error) }));
              });
          },
        }),
      );
    };
    handle('restart', (msg) => {
      const { correlationId } = parseObject(msg);
      msg.respond(JSON.stringify(this.#restartHere(typeof correlationId === 'string' ? correlationId.slice(0, 200) : undefined)));
    });
    handle('snapshot', (msg) => {
      const { pairs, values } = parseObject(msg);
      const hub = this.#hub;
      const units: MessageUnit[] = [];
      if (hub !== undefined && Array.isArray(pairs)) {
        for (const pair of pairs.slice(0, 100_000)) {
          if (!Array.isArray(pair) || typeof pair[0] !== 'string' || typeof pair[1] !== 'string') continue;
          const [channel, symbol] = pair as [Channel, string];
          units.push(...hub.bookResetsOf(channel, symbol));
          if (values === true) units.push(...hub.lastValuesOf(channel, symbol));
        }
      }
      const encoding: Encoding = this.#link.encoding;
      msg.respond(Buffer.concat([Buffer.of(encodingByte(encoding)), joinFrame(units.filter((unit) => unit.tryEncoded(encoding) !== undefined), encoding)]));
    });
    handle('repair', (msg) => {
      const request = parseRepairRequest(parseObject(msg), (subject) => dataSubjectParts(this.#o.clusterName, this.path, subject) !== undefined);
      // Another term's numbers are not this one's: all of it is gone.
      const maxBytes = Math.min(REPAIR_ANSWER_BYTES, (nc.info?.max_payload ?? 1_048_576) - 1024);
      const span = request.epoch === this.#epoch ? this.#history.span(request.subject, request.from, request.to, maxBytes) : { goneThrough: request.to, envelopes: [], more: false };
      this.counters.repairsAnswered += 1;
      msg.respond(encodeRepairAnswer(span));
    });
    handle('sync', async (msg) => {
      const { revision, timeoutMs } = parseObject(msg);
      const applied = await this.#syncedHere(typeof revision === 'number' ? revision : 0, typeof timeoutMs === 'number' ? Math.min(Math.max(timeoutMs, 0), 60_000) : 5000);
      msg.respond(JSON.stringify({ applied }));
    });
  }

  #onLinkState(change: StateChange): void {
    if (this.#role !== 'owner') return;
    this.#publishState();
    this.#recompute(change);
  }

  #onLinkRefused(refusal: Refusal): void {
    if (this.#role !== 'owner') return;
    this.emit('refused', refusal);
    this.#nc?.publish(refusedSubject(this.#o.clusterName, this.path), JSON.stringify({ node: this.#o.nodeId, refusal }));
  }

  #heartbeat(): void {
    this.#o.clock.clearTimeout(this.#heartbeatTimer);
    if (this.#role !== 'owner') return;
    this.#publishState();
    this.#heartbeatTimer = this.#o.clock.setTimeout(() => this.#heartbeat(), Math.max(50, Math.floor(this.#o.ttlMs / 3)));
  }

  #publishState(): void {
    if (this.#role !== 'owner' || this.#nc === undefined || !this.#natsUp) return;
    const link = this.#link;
    this.#nc.publish(stateSubject(this.#o.clusterName, this.path), JSON.stringify({ v: 1, node: this.#o.nodeId, state: link.state, since: link.since, reason: link.reason }));
  }

  // ---- the follower's view of the owner

  #onOwnerState(msg: Msg): void {
    let state: OwnerState;
    try {
      const value = msg.json() as Record<string, unknown>;
      if (value.v !== 1 || typeof value.node !== 'string' || typeof value.state !== 'string' || !LINK_STATE_NAMES.has(value.state) || typeof value.since !== 'number') {
        throw new Error('not a version-1 owner state');
      }
      state = { node: value.node, state: value.state as LinkState, since: value.since, reason: typeof value.reason === 'string' ? value.reason : undefined };
    } catch (err) {
      this.#malformed('state', msg.subject, err);
      return;
    }
    if (state.node === this.#o.nodeId || this.#role === 'owner') return;
    this.#owner = state;
    this.#o.clock.clearTimeout(this.#ownerStaleTimer);
    this.#ownerStaleTimer = this.#o.clock.setTimeout(() => {
      this.#owner = undefined;
      this.#recompute();
    }, this.#o.ttlMs);
    this.#recompute();
  }

  #onRemoteRefusal(msg: Msg): void {
    if (this.#role === 'owner') return;
    try {
      const { node, refusal } = msg.json() as { node?: unknown; refusal?: Refusal };
      if (node === this.#o.nodeId || typeof refusal?.code !== 'number' || typeof refusal.action !== 'string') throw new Error('not a refusal');
      this.emit('refused', refusal);
    } catch (err) {
      this.#malformed('refusal', msg.subject, err);
    }
  }

  /** The state the hub sees; emits a change when it differs from the last one. */
  #recompute(linkChange?: StateChange): void {
    let state: LinkState;
    let reason: string | undefined;
    let since = this.#o.clock.now();
    if (this.#role === 'owner') {
      state = this.#link.state;
      reason = this.#link.reason;
      since = this.#link.since;
    } else if (!this.#natsUp) {
      state = 'connecting';
      reason = 'NATS is not connected';
    } else if (this.#owner === undefined) {
      state = 'connecting';
      reason = 'no live owner';
    } else {
      state = this.#owner.state;
      reason = this.#owner.reason;
    }
    if (state === this.#state && reason === this.#reason) return;
    const from = this.#state;
    this.#state = state;
    this.#reason = reason;
    if (state !== from) this.#since = since;
    if (state === from) return;
    this.emit('state', { from, to: state, at: this.#since, reason, ...(linkChange?.correlationId === undefined ? {} : { correlationId: linkChange.correlationId }) });
  }
}

function parseObject(msg: Msg): Record<string, unknown> {
  const value: unknown = msg.json();
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('request body is not an object');
  return value as Record<string, unknown>;
}
