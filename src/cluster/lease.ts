/**
 * Ownership of one stream path in the cluster (DESIGN.md §10): a key in the JetStream KV bucket
 * `${CLUSTER_NAME}-leases`, whose max age is the lease TTL.
 *
 * - acquire: `create` (succeeds only while the key is absent, deleted or expired);
 * - renew: revision-checked `update` every TTL/3 (a failed one is retried after TTL/12);
 * - fencing: an owner that has not renewed for TTL − TTL/3 calls `onLost` and stops counting
 *   itself owner; the key cannot expire (and pass on) before a full TTL after that write, so the
 *   last third of the TTL is the owner's margin to close its vendor link;
 * - follow: a KV watch sees a deleted key at once; an *expired* key is noticed by polling, since
 *   nats-server 2.9 removes expired messages without telling a watcher (expiry markers are 2.11+);
 * - release: revision-checked `delete`, so a follower takes over without waiting for the TTL.
 *
 * Timers run on the injected clock; the expiry itself is NATS's, in real time.
 */
import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import { type KV, type KvEntry, Kvm } from '@nats-io/kv';
import type { NatsConnection, QueuedIterator } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import { TickmuxError } from '../errors.js';
import { leaseBucketName, leaseKey } from './subjects.js';

/** The cluster's NATS state cannot serve leases (for example a bucket without a max age). */
export class ClusterError extends TickmuxError {
  constructor(message: string, options?: { cause?: unknown; code?: string }) {
    super(options?.code ?? 'ERR_CLUSTER', message, options);
  }
}

/** What a lease key holds. */
export interface LeaseValue {
  node: string;
  version: string;
  /** when this node acquired the lease, ISO 8601 */
  since: string;
}

/** How a lease was acquired: at start, on a watched delete, or by a poll that found it expired. */
export type AcquiredVia = 'start' | 'watch' | 'poll';

export type LeaseState = 'idle' | 'following' | 'owning' | 'stopped';

export interface LeaseOptions {
  kv: KV;
  /** the bucket's max age: the time a lease outlives its last write */
  ttlMs: number;
  /** the stream path (`v2/iex`) */
  path: string;
  node: string;
  version: string;
  clock: Clock;
  logger: Logger;
  /** how often a follower reads the key to notice an expiry; default TTL/3 */
  pollMs?: number;
  /** this node now owns the stream: start its vendor link */
  onAcquired?: (via: AcquiredVia) => void;
  /** this node no longer owns the stream: stop its vendor link now */
  onLost?: (reason: string) => void;
}

/**
 * Opens (creating if needed) the lease bucket of `clusterName` and returns it with its actual max
 * age: a bucket made earlier with another TTL keeps its own, and fencing must use that one.
 */
export async function openLeaseBucket(nc: NatsConnection, clusterName: string, ttlMs: number, logger: Logger): Promise<{ kv: KV; ttlMs: number }> {
  const name = leaseBucketName(clusterName);
  const kv = await new Kvm(nc).create(name, { ttl: ttlMs, history: 1 });
  const actual = (await kv.status()).ttl;
  if (actual <= 0) throw new ClusterError(`KV bucket ${name} has no max age, so a lease in it would never expire; delete the bucket or use another CLUSTER_NAME`);
  if (actual !== ttlMs) logger.warn({ bucket: name, configuredTtlMs: ttlMs, bucketTtlMs: actual }, 'lease bucket exists with another TTL; using the bucket’s');
  return { kv, ttlMs: actual };
}

/** A revision-checked write found another revision (someone else wrote, or the key is gone). */
export function isWrongLastSequence(err: unknown): boolean {
  return (
    err instanceof JetStreamApiError &&
    (err.code === JetStreamApiCodes.StreamWrongLastSequence || err.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown)
  );
}

/** The value in a lease entry, or undefined when it is not one tickmux wrote. */
export function parseLeaseValue(entry: KvEntry): LeaseValue | undefined {
  let value: unknown;
  try {
    value = JSON.parse(entry.string());
  } catch (err) {
    if (err instanceof SyntaxError) return undefined;
    throw err;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const { node, version, since } = value as Record<string, unknown>;
  if (typeof node !== 'string' || typeof version !== 'string' || typeof since !== 'string') return undefined;
  return { node, version, since };
}

/** One node's claim on one stream path. */
export class Lease {
  readonly key: string;
  #state: LeaseState = 'idle';
  #revision = 0;
  /** the value written while owning (the same bytes on every renewal) */
  #value = '';
  /** clock time at which the last write that NATS confirmed was sent */
  #lastWriteAt = 0;
  /** clock time at which the first renewal since the last confirmed write was sent */
  #unconfirmedSince: number | undefined;
  #busy = false;
  #renewTimer: unknown;
  #fenceTimer: unknown;
  #pollTimer: unknown;
  #watch: QueuedIterator<KvEntry> | undefined;
  /** the revision of a foreign value already logged, so a poll does not log it again */
  #loggedForeign = 0;
  readonly #o: LeaseOptions;
  readonly #renewMs: number;
  readonly #pollMs: number;
  readonly #log: Logger;

  constructor(options: LeaseOptions) {
    this.#o = options;
    this.key = leaseKey(options.path);
    this.#renewMs = Math.floor(options.ttlMs / 3);
    this.#pollMs = options.pollMs ?? this.#renewMs;
    this.#log = options.logger.child({ component: 'lease', stream: options.path, node: options.node });
  }

  get state(): LeaseState {
    return this.#state;
  }

  /** Whether this node holds the lease right now (false from the moment `onLost` is called). */
  get owning(): boolean {
    return this.#state === 'owning';
  }

  /** Tries to acquire, then follows (watching and polling) until it owns or is stopped. */
  async start(): Promise<void> {
    if (this.#state !== 'idle') return;
    this.#to('following', 'started');
    // The watch exists before the first attempt: a delete from then on is seen, not only polled.
    await this.#startWatch();
    if (this.state === 'stopped') return; // stopped while the watch started
    this.#schedulePoll();
    await this.#tryAcquire('start');
  }

  /**
   * Gives the lease up: stop the vendor link first, then call this. The key is deleted
   * (revision-checked, so never someone else's) and a follower takes over at once.
   */
  async release(): Promise<void> {
    const wasOwning = this.#state === 'owning';
    const revision = this.#revision;
    this.stop();
    if (!wasOwning) return;
    try {
      await this.#o.kv.delete(this.key, { previousSeq: revision });
      this.#log.info({ revision }, 'lease released');
    } catch (err) {
      // The key then expires after the TTL: slower, still correct.
      this.#log.warn({ err, revision }, 'lease release failed; it will expire');
    }
  }

  /** Stops every timer and the watch without touching the key (a dead node's lease expires). */
  stop(): void {
    if (this.#state === 'stopped') return;
    this.#clearOwnerTimers();
    this.#o.clock.clearTimeout(this.#pollTimer);
    this.#pollTimer = undefined;
    this.#watch?.stop();
    this.#watch = undefined;
    this.#to('stopped', 'stopped');
  }

  /** The one place the state changes, so every change is logged. */
  #to(state: LeaseState, why: string, extra: Record<string, unknown> = {}): void {
    const from = this.#state;
    this.#state = state;
    this.#log.info({ from, to: state, revision: this.#revision, ...extra }, `lease ${why}`);
  }

  async #tryAcquire(via: AcquiredVia): Promise<void> {
    if (this.#state !== 'following' || this.#busy) return;
    this.#busy = true;
    const sentAt = this.#o.clock.now();
    const value = JSON.stringify({ node: this.#o.node, version: this.#o.version, since: new Date(sentAt).toISOString() } satisfies LeaseValue);
    try {
      const revision = await this.#o.kv.create(this.key, value);
      if (this.#state !== 'following') {
        // Stopped while the create was in flight: hand the key back rather than hold it unused.
        await this.#o.kv.delete(this.key, { previousSeq: revision }).catch((err: unknown) => this.#log.warn({ err }, 'could not delete a lease acquired after stop'));
        return;
      }
      this.#value = value;
      this.#o.clock.clearTimeout(this.#pollTimer);
      this.#pollTimer = undefined;
      this.#confirmed(revision, sentAt);
      this.#to('owning', 'acquired', { via });
      this.#scheduleRenew();
      this.#o.onAcquired?.(via);
    } catch (err) {
      if (!isWrongLastSequence(err)) this.#log.warn({ err, via }, 'lease acquire failed');
    } finally {
      this.#busy = false;
    }
  }

  #scheduleRenew(delayMs = this.#renewMs): void {
    this.#o.clock.clearTimeout(this.#renewTimer);
    this.#renewTimer = this.#o.clock.setTimeout(() => void this.#renew(), delayMs);
  }

  /** Fencing: TTL − renew interval after the last confirmed write, strictly before it can expire. */
  #armFence(): void {
    this.#o.clock.clearTimeout(this.#fenceTimer);
    const fenceAt = this.#lastWriteAt + this.#o.ttlMs - this.#renewMs;
    this.#fenceTimer = this.#o.clock.setTimeout(() => this.#lose(`not renewed for ${this.#o.ttlMs - this.#renewMs} ms (fencing)`), fenceAt - this.#o.clock.now());
  }

  #confirmed(revision: number, sentAt: number): void {
    this.#revision = revision;
    this.#lastWriteAt = sentAt;
    this.#unconfirmedSince = undefined;
    this.#armFence();
  }

  async #renew(): Promise<void> {
    if (this.#state !== 'owning' || this.#busy) return;
    this.#busy = true;
    const sentAt = this.#o.clock.now();
    this.#unconfirmedSince ??= sentAt;
    let next = this.#renewMs;
    try {
      // Half an interval, so a lost answer leaves time for retries before the fence.
      const revision = await this.#o.kv.update(this.key, this.#value, this.#revision, Math.max(1, Math.floor(this.#renewMs / 2)));
      if (this.#state !== 'owning') return;
      this.#confirmed(revision, sentAt);
      next = Math.max(0, sentAt + this.#renewMs - this.#o.clock.now());
    } catch (err) {
      if (this.#state !== 'owning') return;
      if (isWrongLastSequence(err)) await this.#onRevisionMismatch();
      else {
        this.#log.warn({ err: String(err), revision: this.#revision }, 'lease renewal failed; retrying until fenced');
        next = Math.floor(this.#renewMs / 4);
      }
    } finally {
      this.#busy = false;
      if (this.#state === 'owning') this.#scheduleRenew(next);
    }
  }

  /**
   * The key moved on without us knowing the revision. A renewal that timed out may still have
   * been written: then the key holds our own bytes and we adopt its revision, counting the fence
   * from the first renewal sent since the last confirmed one (that write cannot be older).
   * Anything else means the lease is gone.
   */
  async #onRevisionMismatch(): Promise<void> {
    let entry: KvEntry | null;
    try {
      entry = await this.#o.kv.get(this.key);
    } catch (err) {
      this.#log.warn({ err: String(err) }, 'lease check after a revision mismatch failed; retrying until fenced');
      return;
    }
    if (this.#state !== 'owning') return;
    if (entry !== null && entry.operation === 'PUT' && entry.string() === this.#value && this.#unconfirmedSince !== undefined) {
      this.#log.info({ from: this.#revision, to: entry.revision }, 'lease renewal landed after its timeout; adopting its revision');
      this.#confirmed(entry.revision, this.#unconfirmedSince);
      return;
    }
    this.#lose(`the key changed under us (revision ${entry?.revision ?? 'none'})`);
  }

  #lose(reason: string): void {
    if (this.#state !== 'owning') return;
    this.#clearOwnerTimers();
    this.#to('following', 'lost', { reason });
    this.#revision = 0;
    this.#unconfirmedSince = undefined;
    this.#schedulePoll();
    this.#o.onLost?.(reason);
  }

  #clearOwnerTimers(): void {
    this.#o.clock.clearTimeout(this.#renewTimer);
    this.#o.clock.clearTimeout(this.#fenceTimer);
    this.#renewTimer = undefined;
    this.#fenceTimer = undefined;
  }

  #schedulePoll(): void {
    this.#o.clock.clearTimeout(this.#pollTimer);
    this.#pollTimer = this.#o.clock.setTimeout(() => void this.#poll(), this.#pollMs);
  }

  /** A follower reads the key: gone (expired) or deleted → acquire. Also restarts a dead watch. */
  async #poll(): Promise<void> {
    if (this.#state !== 'following') return;
    this.#schedulePoll();
    if (this.#watch === undefined) this.#startWatch();
    let entry: KvEntry | null;
    try {
      entry = await this.#o.kv.get(this.key);
    } catch (err) {
      this.#log.debug({ err: String(err) }, 'lease poll failed');
      return;
    }
    if (entry === null || entry.operation !== 'PUT') await this.#tryAcquire('poll');
    else this.#noteHolder(entry);
  }

  /** Logs, once per revision, a value tickmux did not write: it counts as held until it expires. */
  #noteHolder(entry: KvEntry): void {
    if (parseLeaseValue(entry) !== undefined || entry.revision === this.#loggedForeign) return;
    this.#loggedForeign = entry.revision;
    this.#log.warn({ key: this.key, revision: entry.revision, bytes: entry.length }, 'lease key holds a value tickmux did not write; treated as held until it expires');
  }

  #startWatch(): Promise<void> {
    return this.#o.kv.watch({ key: this.key }).then(
      (watch) => {
        if (this.#state === 'stopped') return watch.stop();
        this.#watch = watch;
        void this.#consume(watch);
      },
      (err: unknown) => this.#log.warn({ err: String(err) }, 'lease watch could not start; polling only'),
    );
  }

  async #consume(watch: QueuedIterator<KvEntry>): Promise<void> {
    try {
      for await (const entry of watch) {
        if (this.#state !== 'following') continue;
        if (entry.operation === 'PUT') this.#noteHolder(entry);
        else await this.#tryAcquire('watch');
      }
    } catch (err) {
      this.#log.warn({ err: String(err) }, 'lease watch failed; polling only until it restarts');
    }
    if (this.#watch === watch) this.#watch = undefined;
  }
}
