/**
 * The gateway's core, assembled from configuration: one vendor link and one hub per served stream
 * path (DESIGN.md §9), each with its own state, breaker, backoff, subscriptions and clients. Plain
 * TypeScript: the Fastify plugin only starts it, stops it, and hands it sockets. Where the links
 * connect to — the vendor or the embedded simulator — is decided by whoever builds it.
 */
import type { Logger } from 'pino';
import { type Clock, systemClock } from '../clock.js';
import type { Config } from '../config.js';
import { type StreamKind, streamKindOf } from '../protocol/streams.js';
import { Secret } from '../secret.js';
import { StreamManager } from '../upstream/stream-manager.js';
import type { StreamRecorder, TapeFiles } from '../tape/stream-recorder.js';
import { Tape, type TapeState } from '../tape/tape.js';
import type { ReplayRegistry } from '../tape/replay.js';
import type { MessageUnit } from '../protocol/frame.js';
import { Hub, type UpstreamLink } from './hub.js';

export interface GatewayOptions {
  readonly config: Config;
  readonly logger: Logger;
  readonly clock?: Clock;
  /** the tape's file operations (default: the disk; tests inject failures) */
  readonly tapeFiles?: TapeFiles;
  /** the base URL the links connect to (`wss://stream.data.alpaca.markets`, or a simulator's) */
  readonly upstreamBase: string;
  /**
   * What each stream's hub takes as its vendor link (a cluster's view of the stream, which is the
   * local link only while this node owns it); default: the local link itself.
   */
  readonly upstreamFor?: (path: string, kind: StreamKind, link: StreamManager) => StreamUpstream;
  /** a tape this node does not write itself (a cluster's, in JetStream): its state and replays */
  readonly sharedTape?: SharedTape;
}

/** A tape kept outside this process (a cluster's, `TAPE=1`), as health and shutdown see it. */
export interface SharedTape {
  readonly state: TapeState;
  /** why it is degraded, while it is */
  readonly reason: string | null;
  readonly replays: ReplayRegistry;
}

/** The vendor link as a hub and the health routes see it. */
export interface StreamUpstream extends UpstreamLink {
  /** when the current state began (clock ms) */
  readonly since: number;
  /** why it is not live, until it is live again */
  readonly reason: string | undefined;
  /** when the last vendor message reached this node, where it knows better than the local link (a cluster follower) */
  readonly lastMessageAt?: number;
  /** the local link's messages after the hub had them (a cluster owner publishes them) */
  relay?(units: readonly MessageUnit[]): void;
}

/** One served stream path: its vendor link and the hub that fans it out. */
export interface ServedStream {
  /** `v2/iex`, `v1beta3/crypto/us`… (no leading slash) */
  readonly path: string;
  readonly kind: StreamKind;
  /** the local vendor link (in a cluster it runs only while this node owns the stream) */
  readonly link: StreamManager;
  /** what the hub takes as its link: `link` standalone, the cluster's view of the stream in a cluster */
  readonly upstream: StreamUpstream;
  readonly hub: Hub;
  /** what records its vendor frames, when recording is on */
  readonly recorder: StreamRecorder | undefined;
}

export class Gateway {
  readonly config: Config;
  /** in `STREAMS` order */
  readonly streams: readonly ServedStream[];
  /** the first served stream: what the control plane acts on when a request names none */
  readonly defaultStream: ServedStream;
  readonly startedAt: number;
  /** the clock every part runs on (injected in tests) */
  readonly clock: Clock;
  /** the recorder of every stream's vendor frames; undefined when recording is off (`TAPE_DIR` unset) */
  readonly tape: Tape | undefined;
  /** the cluster's tape in JetStream, when `TAPE=1` (then `tape` is undefined) */
  readonly sharedTape: SharedTape | undefined;
  readonly #byPath: ReadonlyMap<string, ServedStream>;
  readonly #logger: Logger;
  readonly #clock: Clock;
  #linksShutdown: Promise<void> | undefined;
  readonly #otherConnections: (() => number)[] = [];

  constructor(options: GatewayOptions) {
    const { config, logger } = options;
    this.config = config;
    this.#logger = logger;
    this.#clock = options.clock ?? systemClock;
    this.clock = this.#clock;
    this.startedAt = this.#clock.now();
    this.tape =
      config.tape === undefined
        ? undefined
        : new Tape({ config: config.tape, streams: config.streams.map((path) => ({ path, kind: streamKindOf(path) as StreamKind })), clock: this.#clock, logger, files: options.tapeFiles });
    this.sharedTape = options.sharedTape;
    this.streams = config.streams.map((path) => this.#serve(path, options));
    this.defaultStream = this.streams[0] as ServedStream;
    this.#byPath = new Map(this.streams.map((stream) => [stream.path, stream]));
  }

  #serve(path: string, options: GatewayOptions): ServedStream {
    const { config } = options;
    const kind = streamKindOf(path);
    if (kind === undefined) throw new Error(`not a stream path: ${path}`); // config checked it
    const logger = options.logger.child({ stream: path });
    const upstream = config.upstream;
    let hub: Hub | undefined;
    let view: StreamUpstream | undefined;
    const recorder = this.tape?.recorder(path);
    const link = new StreamManager({
      ...upstream,
      url: `${options.upstreamBase}/${path}`,
      kind,
      // The embedded simulator accepts any key; nothing secret is involved then.
      keyId: upstream.keyId ?? new Secret('embedded'),
      secretKey: upstream.secretKey ?? new Secret('embedded'),
      restartCoalesceMs: config.restartCoalesceMs,
      logger,
      clock: this.#clock,
      onData: (units) => {
        recorder?.books(units);
        hub?.onData(units);
        view?.relay?.(units);
      },
      onFrame: recorder === undefined ? undefined : (data, encoding, dataMessages) => recorder.frame(data, encoding, dataMessages),
    });
    if (recorder !== undefined) {
      link.on('state', (change) => recorder.link(change.to === 'live', { state: change.to, reason: change.reason }));
      link.on('acknowledged', (set) => recorder.subscriptions(set.toLists()));
    }
    view = options.upstreamFor?.(path, kind, link) ?? link;
    hub = new Hub({
      kind,
      stream: path,
      clients: config.clients,
      upstreamMaxSymbols: upstream.maxSymbols,
      link: view,
      logger,
      clock: this.#clock,
      // MAX_CLIENTS is the process's: every stream's clients share the machine.
      authenticatedInProcess: () => this.#authenticated(),
    });
    return { path, kind, link, upstream: view, hub, recorder };
  }

  #authenticated(): number {
    let n = 0;
    for (const stream of this.streams) n += stream.hub.stats.authenticated;
    for (const count of this.#otherConnections) n += count();
    return n;
  }

  /**
   * Connections outside the hubs that MAX_CLIENTS counts as well (the status page's live viewers):
   * `count` is read whenever a client or such a connection asks to be admitted.
   */
  countConnections(count: () => number): void {
    this.#otherConnections.push(count);
  }

  /** What MAX_CLIENTS counts now: authenticated clients of every stream and the connections added by `countConnections`. */
  get connections(): number {
    return this.#authenticated();
  }

  /** The served stream at `path` (with or without a leading `/`), or undefined. */
  stream(path: string): ServedStream | undefined {
    return this.#byPath.get(path.startsWith('/') ? path.slice(1) : path);
  }

  /** The stream paths served, in `STREAMS` order. */
  get paths(): string[] {
    return this.streams.map((stream) => stream.path);
  }

  /** Connections of every stream that have not authenticated yet (MAX_PENDING_AUTH counts them all). */
  get pendingAuth(): number {
    let n = 0;
    for (const stream of this.streams) n += stream.hub.pendingAuth;
    return n;
  }

  /** Starts every vendor link (clients may connect before they are live). */
  start(): void {
    for (const stream of this.streams) stream.link.start();
  }

  /** Repairs and opens the tape, if recording is on: before the links start, so it keeps their first frame. */
  async startTape(): Promise<void> {
    await this.tape?.start();
  }

  /**
   * The first step of a shutdown, taken as soon as it begins: every vendor link stops for good, so
   * a restart in flight cannot open a new vendor connection while clients are being closed.
   */
  beginShutdown(): Promise<void> {
    this.#linksShutdown ??= Promise.all(this.streams.map((stream) => stream.link.shutdown())).then(() => undefined);
    return this.#linksShutdown;
  }

  /** Closes every stream's clients with `code`. */
  async closeClients(code = 1001, reason = 'going away'): Promise<void> {
    await Promise.all([...this.streams.map((stream) => stream.hub.closeAll(code, reason)), this.tape?.replays.closeAll(code, reason), this.sharedTape?.replays.closeAll(code, reason)]);
  }

  /** Closes clients with 1001 and stops the vendor links. */
  async stop(): Promise<void> {
    this.#logger.info('gateway stopping');
    const linksStopped = this.beginShutdown();
    await this.closeClients();
    await linksStopped;
    // After the links: their last frames and down marks are on the tape.
    await this.tape?.stop();
  }
}
