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
import { encodingByte, encodingOfByte, unwrap, wrap } from './envelope.js';
import { dataSubject, ownerSubject, refusedSubject, stateSubject } from './subjects.js';

type Role = 'owner' | 'follower';

/** A relay subject and the sequence number of the last message published on it. */
interface SubjectSequence {
  readonly name: string;
  seq: number;
}

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
  /** messages of subjects this node held that never arrived (a gap in a subject's sequence) */
  lost: number;
  /** cluster messages that could not be read (other format, malformed) */
  malformed: number;
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
}

interface StreamEvents {
  state: [StateChange];
  refused: [Refusal];
}

/** The owner could not be asked (no owner, NATS down, or it did not answer in time). */
export class OwnerUnavailableError extends TickmuxError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_CLUSTER_NO_OWNER', message, options);
  }
}

const LINK_STATE_NAMES = new Set<string>(LINK_STATES);

export class ClusterStream extends EventEmitter<StreamEvents> {
  readonly path: string;
  readonly kind: StreamKind;
  readonly counters: RelayCounters = { published: 0, received: 0, duplicates: 0, lost: 0, malformed: 0 };
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
  /** follower: the publisher and sequence last received per subject */
  readonly #received = new Map<string, { epoch: number; seq: number }>();
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
        subject = this.#bySubject.get(name) ?? { name, seq: 0 };
        this.#bySubject.set(name, subject);
        this.#published.set(key, subject);
      }
      subject.seq += 1;
      nc.publish(subject.name, wrap(unit.sourceEncoding, this.#epoch, subject.seq, unit.encoded(unit.sourceEncoding)));
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

  /** A request whose answer is handled in the subscription callback itself, in wire order. */
  #askInOrder(nc: NatsConnection, operation: string, body: string, done: (answer: Msg | OwnerUnavailableError) => void, timeoutMs = this.#o.requestTimeoutMs ?? 5000): void {
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
      done(new OwnerUnavailableError(`the owner of ${this.path} did not answer ${operation} in time`));
    }, timeoutMs);
    nc.publish(ownerSubject(this.#o.clusterName, this.path, operation), body, { reply: inbox });
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
    return new Promise((resolve, reject) => this.#askInOrder(nc, operation, body, (answer) => (answer instanceof Error ? reject(answer) : resolve(answer)), timeoutMs));
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
      // A subject held again later starts afresh: what passed meanwhile was not lost.
      if (!subject.endsWith('.*')) this.#received.delete(subject);
      else for (const seen of this.#received.keys()) if (seen.startsWith(subject.slice(0, -1)) && !wanted.has(seen)) this.#received.delete(seen);
    }
    for (const subject of wanted) {
      if (this.#dataSubs.has(subject)) continue;
      this.#dataSubs.set(subject, nc.subscribe(subject, { callback: (err, msg) => void (err === null && this.#onData(msg)) }));
    }
  }

  #onData(msg: Msg): void {
    if (this.#role !== 'follower') return;
    let unit: MessageUnit;
    try {
      const envelope = unwrap(msg.data);
      unit = splitMessage(envelope.body, envelope.encoding, this.kind);
      const last = this.#received.get(msg.subject);
      if (last === undefined || last.epoch !== envelope.epoch) {
        this.#received.set(msg.subject, { epoch: envelope.epoch, seq: envelope.seq });
      } else if (envelope.seq <= last.seq) {
        this.counters.duplicates += 1;
        return;
      } else {
        if (envelope.seq > last.seq + 1) this.#lost(msg.subject, envelope.seq - last.seq - 1);
        last.seq = envelope.seq;
      }
    } catch (err) {
      this.#malformed('data', msg.subject, err);
      return;
    }
    this.counters.received += 1;
    this.#lastReceivedAt = this.#o.clock.now();
    this.#hub?.onData([unit]);
  }

  /**
   * Messages of a subject this node holds never arrived (nats-server dropped them for a slow
   * consumer, or NATS was away): counted and logged, at most once per second.
   */
  #lost(subject: string, count: number): void {
    this.counters.lost += count;
    const now = this.#o.clock.now();
    if (now - this.#lostLoggedAt < 1000) return;
    this.#lostLoggedAt = now;
    this.#log.warn({ subject, lost: count, lostTotal: this.counters.lost }, 'relayed messages lost between the owner and this node');
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
