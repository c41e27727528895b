/**
 * This node's part in a cluster (DESIGN.md §10).
 *
 * - One `Lease` per served stream decides whether this node holds that stream's vendor link:
 *   acquired → its `ClusterStream` becomes owner and the link starts; lost (fenced or taken) →
 *   it follows again and the link stops at once.
 * - Interest: this node's entry in the `<cluster>-nodes` bucket (a max age of 2 × the lease TTL)
 *   names its clients' set per stream; it is rewritten when the set changes and every TTL/3. The
 *   owner of a stream holds pinned ∪ every live node's set at the vendor; an entry not rewritten
 *   within the bucket's max age is dropped (by the time it was last seen here, since a watch on
 *   nats-server 2.9 does not see an entry expire).
 * - The pinned set of each stream lives in `<cluster>-pinned` (no max age); every node mirrors it
 *   into its hub.
 *
 * NATS: an unreachable server at start is retried with backoff (`nats` is `connecting` meanwhile,
 * never a crash); once connected the client reconnects by itself, and a lease that cannot renew
 * meanwhile fences its link.
 */
import { type KV, type KvEntry, Kvm } from '@nats-io/kv';
import { connect, type NatsConnection, type QueuedIterator } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { type Clock, systemClock } from '../clock.js';
import type { ClusterConfig } from '../config.js';
import type { ServedStream } from '../hub/gateway.js';
import { ChannelSet, type Pair } from '../protocol/channel-set.js';
import type { ChannelSymbols } from '../protocol/channels.js';
import type { StreamKind } from '../protocol/streams.js';
import type { Random } from '../random.js';
import { Backoff } from '../upstream/backoff.js';
import type { StreamManager } from '../upstream/stream-manager.js';
import { ClusterStream, OwnerUnavailableError } from './cluster-stream.js';
import { isWrongLastSequence, Lease, openLeaseBucket, parseLeaseValue } from './lease.js';
import { escapeToken, nodesBucketName, pinnedBucketName, unescapeToken } from './subjects.js';

export type NatsState = 'connecting' | 'connected' | 'reconnecting' | 'closed';

/** owner: this node holds the stream's lease (and runs its link); unknown: not connected or not started. */
export type StreamRole = 'owner' | 'follower' | 'unknown';

/** The format of the entries this node writes and reads; another one is logged and ignored. */
const ENTRY_VERSION = 1;

export interface ClusterNodeOptions {
  readonly cluster: ClusterConfig;
  readonly logger: Logger;
  /** written into each lease and node entry */
  readonly version: string;
  readonly clock?: Clock;
  readonly random?: Random;
  /** first retry delay of an unreachable NATS at start, doubling up to `connectMaxMs` */
  readonly connectBaseMs?: number;
  readonly connectMaxMs?: number;
  /** the cluster's tape (TAPE=1): set up on each connection, told before this node starts a stream it took */
  readonly tape?: ClusterTapeHooks;
}

/** What the cluster node tells the tape (`cluster-tape.ts`). */
export interface ClusterTapeHooks {
  /** NATS is connected with `nc`, before any lease starts */
  connected(nc: NatsConnection): Promise<void>;
  /** this node holds the stream's lease and is about to start its link (never throws) */
  beforeOwning(path: string): Promise<void>;
}

interface StreamLease {
  readonly stream: ServedStream;
  readonly view: ClusterStream;
  readonly lease: Lease;
  /** the last link operation a lease event asked for, so a start waits for a stop in progress */
  linkOp: Promise<void>;
}

/** A node as its entry in the nodes bucket says. */
export interface NodeEntry {
  readonly node: string;
  readonly version: string;
  readonly clients: number;
  /** stream path → that node's clients' set */
  readonly streams: Readonly<Record<string, ChannelSymbols>>;
}

interface SeenNode {
  readonly entry: NodeEntry;
  /** its sets as written, to tell a heartbeat from a change */
  readonly sets: string;
  /** this node's clock when the entry was last written (as seen here) */
  readonly seenAt: number;
}

/** What `owners()` reports per stream path: the holder's node id, null when none, undefined when unknown. */
export type Owners = Map<string, string | null | undefined>;

/** Cluster-wide counters of this node (metrics). */
export interface ClusterCounters {
  leaseAcquired: number;
  leaseLost: number;
}

export class ClusterNode {
  readonly name: string;
  readonly nodeId: string;
  readonly counters: ClusterCounters = { leaseAcquired: 0, leaseLost: 0 };
  #nats: NatsState = 'connecting';
  #nc: NatsConnection | undefined;
  #leaseKv: KV | undefined;
  #nodesKv: KV | undefined;
  #pinnedKv: KV | undefined;
  readonly #views = new Map<string, ClusterStream>();
  readonly #leases = new Map<string, StreamLease>();
  #streams: readonly ServedStream[] = [];
  readonly #nodes = new Map<string, SeenNode>();
  readonly #watches: QueuedIterator<KvEntry>[] = [];
  #retryTimer: unknown;
  #entryTimer: unknown;
  #rewatchTimer: unknown;
  #pruneTimer: unknown;
  #entryDirty = false;
  #started = false;
  #stopping: Promise<void> | undefined;
  readonly #loggedForeign = new Set<string>();
  readonly #o: ClusterNodeOptions;
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #backoff: Backoff;
  readonly #log: Logger;
  readonly #nodesTtlMs: number;

  constructor(options: ClusterNodeOptions) {
    this.#o = options;
    this.name = options.cluster.name;
    this.nodeId = options.cluster.nodeId;
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? Math.random;
    this.#backoff = new Backoff(options.connectBaseMs ?? 250, options.connectMaxMs ?? 10_000, this.#random);
    this.#log = options.logger.child({ component: 'cluster', cluster: this.name, node: this.nodeId });
    this.#nodesTtlMs = 2 * options.cluster.leaseTtlMs;
  }

  /** The NATS connection's state. */
  get nats(): NatsState {
    return this.#nats;
  }

  /**
   * What the hub of the stream at `path` sees as its vendor link (the gateway asks while it builds
   * each stream): the local link while this node owns the stream, the owner's relay otherwise.
   */
  streamFor(path: string, kind: StreamKind, link: StreamManager): ClusterStream {
    const view = new ClusterStream({
      clusterName: this.name,
      nodeId: this.nodeId,
      path,
      kind,
      link,
      ttlMs: this.#o.cluster.leaseTtlMs,
      relayHistory: this.#o.cluster.relayHistory,
      logger: this.#log,
      clock: this.#clock,
      randomEpoch: () => Math.floor(this.#random() * 0x1_0000_0000),
      otherNodesInterest: () => this.#otherNodesInterest(path, kind),
      onInterestChanged: () => this.#entryChanged(),
    });
    this.#views.set(path, view);
    return view;
  }

  /** The served streams, once the gateway has built them (each one's hub is attached to its view). */
  attach(streams: readonly ServedStream[]): void {
    this.#streams = streams;
    for (const stream of streams) this.#views.get(stream.path)?.attach(stream.hub);
  }

  /** The cluster view of the stream at `path`. */
  view(path: string): ClusterStream | undefined {
    return this.#views.get(path);
  }

  /** This node's role for the stream at `path`. */
  role(path: string): StreamRole {
    const entry = this.#leases.get(path);
    if (entry === undefined) return 'unknown';
    if (entry.lease.owning) return 'owner';
    return entry.lease.state === 'following' && this.#nats === 'connected' ? 'follower' : 'unknown';
  }

  /** The live nodes as their entries say (this one included once it has written its own). */
  nodes(): { id: string; version: string; clients: number; streams: string[]; lastSeen: string }[] {
    return [...this.#nodes.values()]
      .map(({ entry, seenAt }) => ({ id: entry.node, version: entry.version, clients: entry.clients, streams: Object.keys(entry.streams), lastSeen: new Date(seenAt).toISOString() }))
      .sort((a, b) => a.id.localeCompare(b.id));
  }

  /** The holder of each stream's lease as NATS has it now (undefined where it cannot be read). */
  async owners(): Promise<Owners> {
    const owners: Owners = new Map();
    await Promise.all(
      this.#streams.map(async ({ path }) => {
        const entry = this.#leases.get(path);
        const kv = this.#leaseKv;
        if (entry === undefined || kv === undefined || this.#nats !== 'connected') return owners.set(path, undefined);
        try {
          const value = await kv.get(entry.lease.key);
          owners.set(path, value === null || value.operation !== 'PUT' ? null : (parseLeaseValue(value)?.node ?? undefined));
        } catch (err) {
          this.#log.debug({ err: String(err), stream: path }, 'lease read failed');
          owners.set(path, undefined);
        }
      }),
    );
    return owners;
  }

  /**
   * Changes the cluster's pinned set of the stream at `path` (revision-checked, retried on a
   * concurrent change) and returns the revision written once this node's hub holds it.
   * @throws OwnerUnavailableError while NATS is not connected
   */
  async pin(path: string, action: 'subscribe' | 'unsubscribe', pairs: readonly Pair[]): Promise<number> {
    const kv = this.#pinnedKv;
    const view = this.#views.get(path);
    if (kv === undefined || view === undefined || this.#nats !== 'connected') throw new OwnerUnavailableError('NATS is not connected: the cluster pinned set cannot change');
    const key = escapeToken(path);
    for (let attempt = 0; ; attempt++) {
      try {
        const current = await kv.get(key);
        const exists = current !== null && current.operation === 'PUT';
        const set = exists ? (parsePinned(current, view.kind) ?? new ChannelSet()) : new ChannelSet();
        for (const [channel, symbol] of pairs) {
          if (action === 'subscribe') set.add(channel, symbol);
          else set.delete(channel, symbol);
        }
        const value = JSON.stringify({ v: ENTRY_VERSION, pinned: set.toLists() });
        const revision = current === null ? await kv.create(key, value) : await kv.update(key, value, current.revision);
        // The watch brings it here within a round trip; the answer does not wait longer than a lease.
        await view.pinnedApplied(revision, this.#o.cluster.leaseTtlMs);
        return revision;
      } catch (err) {
        // Another node changed the set meanwhile: read it again and reapply the change.
        if (isWrongLastSequence(err) && attempt < 20) continue;
        throw new OwnerUnavailableError(`the cluster pinned set could not be changed: ${String(err)}`, { cause: err });
      }
    }
  }

  /** Connects (retrying with backoff) and starts one lease per stream. Returns at once. */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    void this.#attempt();
  }

  /** The one place the NATS state changes, so every change is logged. */
  #toNats(state: NatsState, extra: Record<string, unknown> = {}): void {
    if (state === this.#nats) return;
    this.#log.info({ from: this.#nats, to: state, ...extra }, `nats ${state}`);
    this.#nats = state;
    for (const view of this.#views.values()) if (this.#nc !== undefined) view.natsStatus(state === 'connected');
    if (state === 'connected') this.#entryChanged();
  }

  async #attempt(): Promise<void> {
    this.#retryTimer = undefined;
    if (this.#stopping !== undefined) return;
    let nc: NatsConnection | undefined;
    try {
      nc = await connect({
        servers: [...this.#o.cluster.servers],
        name: `tickmux-${this.nodeId}`,
        reconnect: true,
        maxReconnectAttempts: -1,
        reconnectTimeWait: 250,
        timeout: 5000,
      });
      if (this.#stopping !== undefined) return void (await nc.close());
      const { kv, ttlMs } = await openLeaseBucket(nc, this.name, this.#o.cluster.leaseTtlMs, this.#log);
      const kvm = new Kvm(nc);
      const nodesKv = await kvm.create(nodesBucketName(this.name), { ttl: this.#nodesTtlMs, history: 1 });
      const pinnedKv = await kvm.create(pinnedBucketName(this.name), { history: 1 });
      await this.#o.tape?.connected(nc);
      if (this.#stopping !== undefined) return void (await nc.close());
      this.#nc = nc;
      this.#leaseKv = kv;
      this.#nodesKv = nodesKv;
      this.#pinnedKv = pinnedKv;
      this.#backoff.reset();
      for (const view of this.#views.values()) view.connected(nc);
      this.#toNats('connected', { server: nc.getServer() });
      void this.#watchStatus(nc);
      await this.#watchNodes(nodesKv);
      await this.#watchPinned(pinnedKv);
      this.#writeEntry();
      for (const stream of this.#streams) this.#follow(stream, kv, ttlMs);
    } catch (err) {
      // Not reachable, or JetStream not ready: the node serves nothing meanwhile and tries again.
      await nc?.close().catch((closeErr: unknown) => this.#log.debug({ err: String(closeErr) }, 'closing a failed NATS connection failed'));
      if (this.#stopping !== undefined) return;
      this.#nc = undefined;
      const delayMs = this.#backoff.next();
      this.#log.warn({ err: String(err), servers: this.#o.cluster.servers, delayMs, attempt: this.#backoff.attempt }, 'cluster cannot reach NATS; retrying');
      this.#retryTimer = this.#clock.setTimeout(() => void this.#attempt(), delayMs);
    }
  }

  async #watchStatus(nc: NatsConnection): Promise<void> {
    void nc.closed().then(() => this.#toNats('closed'));
    for await (const status of nc.status()) {
      if (status.type === 'disconnect' || status.type === 'reconnecting') this.#toNats('reconnecting');
      else if (status.type === 'reconnect') this.#toNats('connected', { server: status.server });
    }
  }

  #follow(stream: ServedStream, kv: KV, ttlMs: number): void {
    const { link, path } = stream;
    const view = this.#views.get(path) as ClusterStream;
    const entry: StreamLease = {
      stream,
      view,
      linkOp: Promise.resolve(),
      lease: new Lease({
        kv,
        ttlMs,
        path,
        node: this.nodeId,
        version: this.#o.version,
        clock: this.#clock,
        logger: this.#log,
        onAcquired: (via) => {
          this.counters.leaseAcquired += 1;
          this.#log.info({ stream: path, via }, 'stream owned here: starting its vendor link');
          // A stop from an earlier loss may still be closing the socket: start after it.
          entry.linkOp = entry.linkOp.then(async () => {
            if (!entry.lease.owning || this.#stopping !== undefined) return;
            // The tape's gap mark for the time no owner recorded goes before this owner's first data.
            await this.#o.tape?.beforeOwning(path);
            if (!entry.lease.owning || this.#stopping !== undefined) return;
            view.becomeOwner();
            link.start();
          });
        },
        onLost: (reason) => {
          this.counters.leaseLost += 1;
          this.#log.warn({ stream: path, reason }, 'stream lease lost: stopping its vendor link');
          // At once, not behind a queue: fencing leaves only the last third of the TTL.
          view.becomeFollower();
          const stopped = link.stop();
          entry.linkOp = entry.linkOp.then(() => stopped);
        },
      }),
    };
    this.#leases.set(path, entry);
    void entry.lease.start();
  }

  // ---- interest: this node's entry, every node's entries, the pinned sets

  #entryChanged(): void {
    if (this.#entryDirty) return;
    this.#entryDirty = true;
    setImmediate(() => this.#writeEntry());
  }

  /** Writes this node's entry now and schedules the next rewrite (its heartbeat). */
  #writeEntry(): void {
    this.#entryDirty = false;
    this.#clock.clearTimeout(this.#entryTimer);
    this.#entryTimer = undefined;
    const kv = this.#nodesKv;
    if (kv === undefined || this.#stopping !== undefined) return;
    let clients = 0;
    const streams: Record<string, ChannelSymbols> = {};
    for (const { path, hub } of this.#streams) {
      clients += hub.stats.authenticated;
      streams[path] = hub.clientUnion();
    }
    const entry: NodeEntry = { node: this.nodeId, version: this.#o.version, clients, streams };
    kv.put(escapeToken(this.nodeId), JSON.stringify({ v: ENTRY_VERSION, ...entry })).catch((err: unknown) => this.#log.debug({ err: String(err) }, 'node entry write failed; retried with the next heartbeat'));
    this.#entryTimer = this.#clock.setTimeout(() => this.#writeEntry(), Math.max(50, Math.floor(this.#o.cluster.leaseTtlMs / 3)));
  }

  /** Follows every node's entry; resolves once the watch runs. */
  async #watchNodes(kv: KV): Promise<void> {
    await this.#keepWatching(kv, 'node', (item) => {
      if (item.operation !== 'PUT') return this.#forgetNode(unescapeKey(item.key));
      const entry = this.#parseNodeEntry(item);
      if (entry === undefined) return;
      const before = this.#nodes.get(entry.node);
      const sets = JSON.stringify(entry.streams);
      this.#nodes.set(entry.node, { entry, seenAt: this.#clock.now(), sets });
      // Most writes are heartbeats: the owner recomputes only when a set changed.
      if (entry.node !== this.nodeId && before?.sets !== sets) this.#interestChanged();
    });
    this.#prune();
  }

  /**
   * Watches every key of `kv` (their current values first), handing each entry to `onEntry`; a
   * watch that ends while the node runs is started again after a second (it then replays the
   * current values, which every handler takes as they come).
   */
  async #keepWatching(kv: KV, what: string, onEntry: (item: KvEntry) => void): Promise<void> {
    const watch = await kv.watch();
    this.#watches.push(watch);
    void (async () => {
      try {
        for await (const item of watch) onEntry(item);
      } catch (err) {
        this.#log.warn({ err: String(err) }, `${what} watch failed`);
      }
      this.#watches.splice(this.#watches.indexOf(watch), 1);
      if (this.#stopping !== undefined) return;
      this.#log.warn(`${what} watch ended; starting it again`);
      this.#rewatchTimer = this.#clock.setTimeout(() => {
        if (this.#stopping === undefined) void this.#keepWatching(kv, what, onEntry).catch((err: unknown) => this.#log.warn({ err: String(err) }, `${what} watch could not start`));
      }, 1000);
    })();
  }

  /** Drops the entries not rewritten within the bucket's max age (their node is gone). */
  #prune(): void {
    if (this.#stopping !== undefined) return;
    const oldest = this.#clock.now() - this.#nodesTtlMs;
    for (const [id, seen] of this.#nodes) if (seen.seenAt < oldest && id !== this.nodeId) this.#forgetNode(id);
    this.#pruneTimer = this.#clock.setTimeout(() => this.#prune(), Math.max(50, Math.floor(this.#o.cluster.leaseTtlMs / 3)));
  }

  #forgetNode(id: string | undefined): void {
    if (id === undefined || !this.#nodes.delete(id)) return;
    this.#log.info({ gone: id }, 'node entry gone: its interest no longer counts');
    this.#interestChanged();
  }

  #interestChanged(): void {
    for (const view of this.#views.values()) view.interestChanged();
  }

  #otherNodesInterest(path: string, kind: StreamKind): ChannelSet[] {
    const sets: ChannelSet[] = [];
    for (const [id, { entry }] of this.#nodes) {
      if (id === this.nodeId) continue;
      const lists = entry.streams[path];
      if (lists !== undefined) sets.push(sanitize(lists, kind));
    }
    return sets;
  }

  #parseNodeEntry(item: KvEntry): NodeEntry | undefined {
    let value: unknown;
    try {
      value = item.json();
    } catch {
      value = undefined;
    }
    const v = value as Partial<NodeEntry> & { v?: unknown };
    const valid =
      typeof value === 'object' && value !== null && v.v === ENTRY_VERSION && typeof v.node === 'string' && typeof v.version === 'string' && typeof v.clients === 'number' && typeof v.streams === 'object' && v.streams !== null;
    if (valid) return v as NodeEntry;
    const what = `${item.key}@${typeof v?.v === 'number' ? v.v : '?'}`;
    if (!this.#loggedForeign.has(what)) {
      this.#loggedForeign.add(what);
      this.#log.warn({ key: item.key, format: v?.v, version: typeof v?.version === 'string' ? v.version : undefined }, 'node entry this node cannot read (another version, or not tickmux’s); ignored');
    }
    return undefined;
  }

  /** Mirrors the cluster's pinned sets into the hubs; resolves once the watch runs. */
  async #watchPinned(kv: KV): Promise<void> {
    await this.#keepWatching(kv, 'pinned', (item) => {
      const path = unescapeKey(item.key);
      const view = path === undefined ? undefined : this.#views.get(path);
      if (view === undefined) return;
      const set = item.operation === 'PUT' ? parsePinned(item, view.kind) : new ChannelSet();
      if (set === undefined) return void this.#log.warn({ key: item.key, revision: item.revision }, 'pinned set this node cannot read; ignored');
      view.applyPinned(set, item.revision);
    });
  }

  /**
   * Stops owned links first, then releases each lease (another node takes over at once), then
   * removes this node's entry and closes NATS. Concurrent calls share one stop.
   */
  stop(): Promise<void> {
    this.#stopping ??= this.#doStop();
    return this.#stopping;
  }

  async #doStop(): Promise<void> {
    this.#clock.clearTimeout(this.#retryTimer);
    this.#clock.clearTimeout(this.#entryTimer);
    this.#clock.clearTimeout(this.#rewatchTimer);
    this.#clock.clearTimeout(this.#pruneTimer);
    this.#retryTimer = undefined;
    const entries = [...this.#leases.values()];
    // Shutdown, not stop: a restart in flight must not reopen a vendor connection.
    await Promise.all(entries.map((entry) => entry.stream.link.shutdown().then(() => entry.linkOp)));
    await Promise.all(entries.map((entry) => entry.lease.release()));
    for (const watch of this.#watches) watch.stop();
    await this.#nodesKv?.delete(escapeToken(this.nodeId)).catch((err: unknown) => this.#log.debug({ err: String(err) }, 'node entry delete failed; it expires'));
    for (const view of this.#views.values()) view.close();
    const nc = this.#nc;
    this.#nc = undefined;
    this.#leaseKv = undefined;
    this.#nodesKv = undefined;
    this.#pinnedKv = undefined;
    if (nc !== undefined) await nc.close();
    this.#toNats('closed');
    this.#log.info('cluster node stopped');
  }
}

function unescapeKey(key: string): string | undefined {
  try {
    return unescapeToken(key);
  } catch {
    return undefined;
  }
}

/** The pinned set in an entry, keeping only the kind's channels and valid symbols; undefined when unreadable. */
function parsePinned(item: KvEntry, kind: StreamKind): ChannelSet | undefined {
  try {
    const value = item.json() as { v?: unknown; pinned?: unknown };
    if (value.v !== ENTRY_VERSION || typeof value.pinned !== 'object' || value.pinned === null) return undefined;
    return sanitize(value.pinned as ChannelSymbols, kind);
  } catch {
    return undefined;
  }
}

/** Only the kind's channels and symbols it accepts: another node's entry never reaches the vendor unchecked. */
function sanitize(lists: Partial<Record<string, unknown>>, kind: StreamKind): ChannelSet {
  const set = new ChannelSet();
  for (const channel of kind.channels) {
    const symbols = lists[channel];
    if (!Array.isArray(symbols)) continue;
    for (const symbol of symbols) if (kind.isValidSymbol(symbol)) set.add(channel, symbol);
  }
  return set;
}
