/**
 * A replay: one client served a recorded window as the vendor would have served it (DESIGN.md
 * §12). Each replay is a hub of its own with one client, and a `ReplayLink` as its vendor link: the
 * hub speaks the stream's protocol exactly as the live gateway does (greeting, auth, subscribe
 * replies with the client's set, JSON or msgpack, the vendor's errors, book resets for a book
 * joined late), and the link plays the tape into it from the first subscribe on — the recorded
 * frames, in order, paced by their receive times ÷ speed. The hub routes only what the client's
 * set holds at that moment.
 *
 * Bounded memory: the link reads one chunk of the tape at a time and reads on only while the
 * client has less than `bufferBytes` waiting (below the conflation threshold, so a backtest gets
 * every message, however slowly it reads).
 */
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { WebSocket } from 'ws';
import type { Clock } from '../clock.js';
import type { ClientsConfig } from '../config.js';
import { type ClientInfo, Hub, type UpstreamLink } from '../hub/hub.js';
import type { ClientSession } from '../hub/client-session.js';
import { ChannelSet, type Pair } from '../protocol/channel-set.js';
import { ProtocolError } from '../errors.js';
import { countMessagesIf, type MessageUnit } from '../protocol/frame.js';
import type { StreamKind } from '../protocol/streams.js';
import type { LinkState, Refusal, StateChange } from '../upstream/stream-manager.js';
import { dataUnits, type TapeRecord } from './record.js';
import { nsText } from './replay-window.js';
import { TapeCursor } from './tape-cursor.js';

export interface ReplayWindow {
  /** ns since the epoch */
  readonly fromNs: bigint;
  /** ns since the epoch; undefined: to the end of the tape */
  readonly toNs: bigint | undefined;
  /** recorded time ÷ speed; `max`: as fast as the client reads */
  readonly speed: number | 'max';
}

/** Where a replay reads its records, in recorded order (a tape folder's `TapeCursor`, or another store's). */
export interface TapeSource {
  /** the next records (a chunk's worth), or an empty list at the end */
  next(): Promise<TapeRecord[]>;
  /** the records before the start that a replay needs for its books (a checkpoint on), in order */
  prelude(each: (records: readonly TapeRecord[]) => void): Promise<void>;
  close(): Promise<void>;
}

export interface ReplayOptions {
  /** `TAPE_DIR` (read with a `TapeCursor` unless `source` says otherwise) */
  readonly dir: string;
  /** opens the records of `stream` from `fromNs` on (default: the tape folder `dir`) */
  readonly source?: (stream: string, fromNs: bigint) => Promise<TapeSource>;
  readonly stream: string;
  readonly kind: StreamKind;
  readonly window: ReplayWindow;
  /** the gateway's client settings: credentials and limits as on the live streams */
  readonly clients: ClientsConfig;
  readonly clock: Clock;
  readonly logger: Logger;
  /** the client's bytes waiting before the tape is read on (default: a quarter of its high-water mark) */
  readonly bufferBytes?: number;
  /** called once when the replay is over and its client gone */
  readonly onClosed?: () => void;
}

/** A wait that yields to the event loop (socket writes, the hub's flush). */
const yieldTurn = (ms = 0): Promise<void> => new Promise((resolve) => (ms > 0 ? setTimeout(resolve, ms) : setImmediate(resolve)));

/** The vendor link of a replay's hub: the tape, played from the first subscribe. */
class ReplayLink extends EventEmitter<{ refused: [Refusal]; state: [StateChange] }> implements UpstreamLink {
  readonly state: LinkState = 'live';
  readonly kind: StreamKind;
  readonly #options: ReplayOptions;
  readonly #desired = new ChannelSet();
  #hub: Hub | undefined;
  #session: ClientSession | undefined;
  #playing: Promise<void> | undefined;
  #paused = false;
  #stopped = false;
  /** ends a pacing wait early (the replay is stopping) */
  #wake: (() => void) | undefined;
  /** set once playback has ended (tape exhausted or `to` passed) */
  ended = false;
  /** recorded frames sent whole (`#sendWhole`), for diagnostics and tests */
  wholeFrames = 0;
  readonly #log: Logger;

  constructor(options: ReplayOptions) {
    super();
    this.kind = options.kind;
    this.#options = options;
    this.#log = options.logger;
  }

  attach(hub: Hub, session: ClientSession): void {
    this.#hub = hub;
    this.#session = session;
  }

  change(added: Iterable<Pair>, removed: Iterable<Pair>): void {
    for (const [channel, symbol] of added) this.#desired.add(channel, symbol);
    for (const [channel, symbol] of removed) this.#desired.delete(channel, symbol);
    if (this.#playing === undefined && !this.#desired.isEmpty) {
      // Paced from the first subscribe, however long opening the tape takes.
      this.#playing = this.#play(this.#options.clock.now()).catch((err: unknown) => {
        this.#log.error({ err }, 'replay failed');
        this.#session?.fail(500, 'replay failed');
      });
    }
  }

  pauseIntake(): void {
    this.#paused = true;
  }

  resumeIntake(): void {
    this.#paused = false;
  }

  stop(): Promise<void> {
    this.#stopped = true;
    this.#wake?.();
    return this.#playing ?? Promise.resolve();
  }

  async #play(startedAt: number): Promise<void> {
    const { dir, stream, window } = this.#options;
    const hub = this.#hub as Hub;
    const cursor = await (this.#options.source?.(stream, window.fromNs) ?? TapeCursor.open(dir, stream, window.fromNs));
    try {
      if (this.#stopped) return;
      await this.#prime(cursor, hub);
      let anchor: { ns: bigint; ms: number } | undefined;
      // Unknown until a mark says: a tape's first segment starts with the link not yet live.
      let live: boolean | undefined;
      const budget = this.#bufferBytes();
      let sinceFlush = 0;
      for (let records = await cursor.next(); records.length > 0 && !this.#stopped; records = await cursor.next()) {
        for (const record of records) {
          if (window.toNs !== undefined && record.ns > window.toNs) return this.#end();
          anchor ??= { ns: record.ns > window.fromNs ? record.ns : window.fromNs, ms: startedAt };
          if (window.speed !== 'max') await this.#due(anchor, record.ns, window.speed);
          // What was handed to the hub is flushed before more is read, so the client's backlog is
          // known; a client past the budget holds the tape back.
          if (sinceFlush >= budget) {
            await yieldTurn();
            sinceFlush = 0;
          }
          // A client that reads is waited for turn by turn (its writes complete in between); one
          // that has stopped, on a timer, so a stalled replay costs no CPU.
          for (let waits = 0; (this.#paused || this.#lagging()) && !this.#stopped; waits++) await yieldTurn(this.#paused || waits < 64 ? 0 : 1);
          if (this.#stopped) return;
          live = this.#emit(hub, record, live);
          if (record.type !== 'mark') sinceFlush += record.bytes.length;
        }
        await yieldTurn(); // the hub flushes this chunk's frames before the next is read
        sinceFlush = 0;
      }
      if (!this.#stopped) this.#end();
    } finally {
      await cursor.close();
    }
  }

  /** The books (and, for `?snapshot=1`, last values) as of `from`, and resets to the first subscriber as the vendor sends them. */
  async #prime(cursor: TapeSource, hub: Hub): Promise<void> {
    const snapshot = this.#session?.options.snapshot === true;
    const books = this.kind.channels.includes('orderbooks');
    if (!snapshot && !books) return;
    await cursor.prelude((records) => {
      for (const record of records) {
        if (record.type === 'mark') {
          if (record.mark.event === 'upstream_down' || (record.mark.event === 'segment' && !record.mark.live)) hub.prime([], true);
          continue;
        }
        // A checkpoint is the books as of its record; frames go on from there.
        hub.prime(dataUnits(record, this.kind), record.type === 'checkpoint');
      }
    });
    // What the vendor sends right after a subscription: the book whole; with snapshots, the last values.
    const catchUp: MessageUnit[] = [];
    for (const [channel, symbol] of this.#desired.pairs()) {
      catchUp.push(...hub.bookResetsOf(channel, symbol));
      if (snapshot) catchUp.push(...hub.lastValuesOf(channel, symbol));
    }
    if (catchUp.length > 0) hub.onData(catchUp);
  }

  /** The client's bytes waiting before the tape is read on: below the conflation threshold. */
  #bufferBytes(): number {
    return this.#options.bufferBytes ?? this.#options.clients.highWaterBytes / 4;
  }

  #lagging(): boolean {
    const session = this.#session;
    return session !== undefined && session.queue.bufferedBytes > this.#bufferBytes();
  }

  /** Waits until `ns` is due: recorded time since the anchor ÷ speed, on the injected clock. */
  async #due(anchor: { ns: bigint; ms: number }, ns: bigint, speed: number): Promise<void> {
    const clock = this.#options.clock;
    const dueMs = anchor.ms + Number(ns - anchor.ns) / 1e6 / speed;
    const wait = dueMs - clock.now();
    if (wait < 1) return;
    await new Promise<void>((resolve) => {
      const timer = clock.setTimeout(() => this.#wake?.(), wait);
      this.#wake = () => {
        clock.clearTimeout(timer);
        this.#wake = undefined;
        resolve();
      };
    });
  }

  /** Hands one record to the hub; returns whether the recorded link is live after it (undefined: not known yet). */
  #emit(hub: Hub, record: TapeRecord, live: boolean | undefined): boolean | undefined {
    if (record.type === 'frame') {
      if (this.#sendWhole(hub, record)) return live;
      const units = dataUnits(record, this.kind);
      if (units.length > 0) hub.onData(units);
      return live;
    }
    if (record.type === 'checkpoint') return live; // the hub keeps its books from the frames
    const mark = record.mark;
    const at = nsText(record.ns);
    const ms = Number(record.ns / 1_000_000n);
    switch (mark.event) {
      case 'upstream_down':
        this.emit('state', { from: 'live', to: mark.state as LinkState, at: ms, atText: at, reason: mark.reason ?? undefined } satisfies StateChange);
        return false;
      case 'upstream_up':
        this.emit('state', { from: 'connecting', to: 'live', at: ms, atText: at } satisfies StateChange);
        return true;
      case 'tape_gap':
        hub.notify({ T: 'gateway', event: 'tape_gap', stream: this.#options.stream, at, from: nsText(BigInt(mark.from)), to: nsText(BigInt(mark.to)), reason: mark.reason });
        return live;
      case 'subscriptions':
        return live; // the vendor's side of the recording; a replay's client has its own set
      case 'segment':
        // A segment that starts with the link down after it was up: the recorder stopped in between.
        if (live === true && !mark.live) this.emit('state', { from: 'live', to: 'stopped', at: ms, atText: at, reason: 'recorder restarted' } satisfies StateChange);
        return mark.live;
    }
  }

  /**
   * Sends a recorded frame to the client as it is, when the client holds every message in it in
   * the recorded encoding (the common backtest: `*`, or the symbols the recording held): the
   * recorded bytes whole, not split, routed and joined again. Not for books (the hub keeps them),
   * news (routed by its symbols lists), control messages (the link's own) or a client that lags;
   * those frames go through the hub message by message.
   */
  #sendWhole(hub: Hub, record: Extract<TapeRecord, { type: 'frame' }>): boolean {
    const session = this.#session;
    if (session === undefined || record.encoding !== 'msgpack' || session.encoding !== 'msgpack' || this.kind.symbolsField === 'symbols') return false;
    const channels = this.kind.typeToChannel;
    let messages: number;
    try {
      messages = countMessagesIf(record.bytes, (type, symbol) => {
        const channel = type === undefined ? undefined : channels[type];
        return channel !== undefined && channel !== 'orderbooks' && session.covers(channel, symbol);
      });
    } catch (err) {
      if (err instanceof ProtocolError) return false; // dataUnits skips it, as the live link did
      throw err;
    }
    if (messages <= 0 || !hub.deliverFrame(session, record.bytes, messages)) return false;
    this.wholeFrames += 1;
    return true;
  }

  #end(): void {
    this.ended = true;
    this.#hub?.notify({ T: 'gateway', event: 'replay_end', stream: this.#options.stream });
    this.#log.info('replay reached the end of its window');
  }
}

/** One replay session: its hub, its link, its client. */
export class Replay {
  readonly #link: ReplayLink;
  readonly hub: Hub;
  readonly session: ClientSession;

  private constructor(link: ReplayLink, hub: Hub, session: ClientSession) {
    this.#link = link;
    this.hub = hub;
    this.session = session;
  }

  /** Serves `socket` the window; the replay ends (and `onClosed` runs) when the client goes. */
  static start(socket: WebSocket, info: ClientInfo, options: ReplayOptions): Replay {
    const logger = options.logger.child({ component: 'replay', stream: options.stream });
    const link = new ReplayLink({ ...options, logger });
    // Last values only for `?snapshot=1` (as of the replay position, then as it plays).
    const hub = new Hub({
      kind: options.kind,
      stream: options.stream,
      clients: options.clients,
      upstreamMaxSymbols: 0,
      link,
      logger,
      clock: options.clock,
      keepLastValues: info.options.snapshot,
    });
    const session = hub.accept(socket, info);
    link.attach(hub, session);
    const replay = new Replay(link, hub, session);
    logger.info(
      { client: session.id, from: nsText(options.window.fromNs), to: options.window.toNs === undefined ? null : nsText(options.window.toNs), speed: options.window.speed },
      'replay started',
    );
    socket.once('close', () => {
      void link.stop().finally(() => options.onClosed?.());
    });
    return replay;
  }

  /** Whether playback has passed the end of its window. */
  get ended(): boolean {
    return this.#link.ended;
  }

  /** How many recorded frames went to the client whole, as recorded (the rest were split and routed). */
  get wholeFrames(): number {
    return this.#link.wholeFrames;
  }

  /** Closes the client with `code` (1001 on shutdown). */
  close(code = 1001, reason = 'going away'): Promise<void> {
    return this.hub.closeAll(code, reason);
  }
}

/** The replays running at once, at most `max` (REPLAY_MAX_SESSIONS): admitted before the upgrade, closed on shutdown. */
export class ReplayRegistry {
  readonly max: number;
  #admitted = 0;
  readonly #running = new Set<Replay>();

  constructor(max: number) {
    this.max = max;
  }

  /** Takes a slot for a replay about to start; false when all are taken. */
  admit(): boolean {
    if (this.#admitted >= this.max) return false;
    this.#admitted += 1;
    return true;
  }

  /** Starts a replay in a slot `admit` took; the slot is given back when its client goes. */
  start(socket: WebSocket, info: ClientInfo, options: ReplayOptions): Replay {
    let replay: Replay | undefined;
    replay = Replay.start(socket, info, {
      ...options,
      onClosed: () => {
        if (replay !== undefined) this.#running.delete(replay);
        this.#admitted -= 1;
        options.onClosed?.();
      },
    });
    this.#running.add(replay);
    return replay;
  }

  /** A slot taken for a replay that did not start (the upgrade failed). */
  release(): void {
    this.#admitted = Math.max(0, this.#admitted - 1);
  }

  get running(): number {
    return this.#admitted;
  }

  /** The replays started and not yet over, for diagnostics and tests. */
  get replays(): Replay[] {
    return [...this.#running];
  }

  /** Closes every replay's client with `code` (1001 on shutdown) and waits for them to go. */
  async closeAll(code = 1001, reason = 'going away'): Promise<void> {
    await Promise.all([...this.#running].map((replay) => replay.close(code, reason)));
  }
}
