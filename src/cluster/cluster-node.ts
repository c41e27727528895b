/**
 * This node's part in a cluster (DESIGN.md §10), slice 2: one `Lease` per served stream decides
 * whether this node holds that stream's vendor link. Acquired → the link starts; lost (fenced or
 * taken) → the link stops at once. Plain TypeScript: the composition root hands it the cluster
 * config and the gateway's served streams, and calls `start()` instead of starting the links.
 *
 * NATS: an unreachable server at start is retried with backoff (`nats` is `connecting` meanwhile,
 * never a crash); once connected the client reconnects by itself, and a lease that cannot renew
 * meanwhile fences its link.
 */
import type { KV } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { type Clock, systemClock } from '../clock.js';
import type { ClusterConfig } from '../config.js';
import type { ServedStream } from '../hub/gateway.js';
import type { Random } from '../random.js';
import { Backoff } from '../upstream/backoff.js';
import { Lease, openLeaseBucket, parseLeaseValue } from './lease.js';

export type NatsState = 'connecting' | 'connected' | 'reconnecting' | 'closed';

/** owner: this node holds the stream's lease (and runs its link); unknown: not connected or not started. */
export type StreamRole = 'owner' | 'follower' | 'unknown';

export interface ClusterNodeOptions {
  readonly cluster: ClusterConfig;
  readonly streams: readonly ServedStream[];
  readonly logger: Logger;
  /** written into each lease this node holds */
  readonly version: string;
  readonly clock?: Clock;
  readonly random?: Random;
  /** first retry delay of an unreachable NATS at start, doubling up to `connectMaxMs` */
  readonly connectBaseMs?: number;
  readonly connectMaxMs?: number;
}

interface StreamLease {
  readonly stream: ServedStream;
  readonly lease: Lease;
  /** the last link operation a lease event asked for, so a start waits for a stop in progress */
  linkOp: Promise<void>;
}

/** What `owners()` reports per stream path: the holder's node id, null when none, undefined when unknown. */
export type Owners = Map<string, string | null | undefined>;

export class ClusterNode {
  readonly name: string;
  readonly nodeId: string;
  #nats: NatsState = 'connecting';
  #nc: NatsConnection | undefined;
  #kv: KV | undefined;
  readonly #leases = new Map<string, StreamLease>();
  #retryTimer: unknown;
  #started = false;
  #stopping: Promise<void> | undefined;
  readonly #o: ClusterNodeOptions;
  readonly #clock: Clock;
  readonly #backoff: Backoff;
  readonly #log: Logger;

  constructor(options: ClusterNodeOptions) {
    this.#o = options;
    this.name = options.cluster.name;
    this.nodeId = options.cluster.nodeId;
    this.#clock = options.clock ?? systemClock;
    this.#backoff = new Backoff(options.connectBaseMs ?? 250, options.connectMaxMs ?? 10_000, options.random ?? Math.random);
    this.#log = options.logger.child({ component: 'cluster', cluster: this.name, node: this.nodeId });
  }

  /** The NATS connection's state. */
  get nats(): NatsState {
    return this.#nats;
  }

  /** This node's role for the stream at `path`. */
  role(path: string): StreamRole {
    const entry = this.#leases.get(path);
    if (entry === undefined) return 'unknown';
    if (entry.lease.owning) return 'owner';
    return entry.lease.state === 'following' && this.#nats === 'connected' ? 'follower' : 'unknown';
  }

  /** The holder of each stream's lease as NATS has it now (undefined where it cannot be read). */
  async owners(): Promise<Owners> {
    const owners: Owners = new Map();
    await Promise.all(
      this.#o.streams.map(async ({ path }) => {
        const entry = this.#leases.get(path);
        const kv = this.#kv;
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
      if (this.#stopping !== undefined) return void (await nc.close());
      this.#nc = nc;
      this.#kv = kv;
      this.#backoff.reset();
      this.#toNats('connected', { server: nc.getServer() });
      void this.#watchStatus(nc);
      for (const stream of this.#o.streams) this.#follow(stream, kv, ttlMs);
    } catch (err) {
      // Not reachable, or JetStream not ready: the node serves nothing meanwhile and tries again.
      await nc?.close().catch((closeErr: unknown) => this.#log.debug({ err: String(closeErr) }, 'closing a failed NATS connection failed'));
      if (this.#stopping !== undefined) return;
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
    const entry: StreamLease = {
      stream,
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
          this.#log.info({ stream: path, via }, 'stream owned here: starting its vendor link');
          // A stop from an earlier loss may still be closing the socket: start after it.
          entry.linkOp = entry.linkOp.then(() => {
            if (entry.lease.owning && this.#stopping === undefined) link.start();
          });
        },
        onLost: (reason) => {
          this.#log.warn({ stream: path, reason }, 'stream lease lost: stopping its vendor link');
          // At once, not behind a queue: fencing leaves only the last third of the TTL.
          const stopped = link.stop();
          entry.linkOp = entry.linkOp.then(() => stopped);
        },
      }),
    };
    this.#leases.set(path, entry);
    void entry.lease.start();
  }

  /**
   * Stops owned links first, then releases each lease (another node takes over at once), then
   * closes NATS. Concurrent calls share one stop.
   */
  stop(): Promise<void> {
    this.#stopping ??= this.#doStop();
    return this.#stopping;
  }

  async #doStop(): Promise<void> {
    this.#clock.clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    const entries = [...this.#leases.values()];
    // Shutdown, not stop: a restart in flight must not reopen a vendor connection.
    await Promise.all(entries.map((entry) => entry.stream.link.shutdown().then(() => entry.linkOp)));
    await Promise.all(entries.map((entry) => entry.lease.release()));
    const nc = this.#nc;
    this.#nc = undefined;
    this.#kv = undefined;
    if (nc !== undefined) await nc.close();
    this.#toNats('closed');
    this.#log.info('cluster node stopped');
  }
}
