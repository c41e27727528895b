/**
 * The status page's live viewers (server-sent events): each is a writable the gateway pushes
 * snapshots to. Bounded per viewer: before and after every write the bytes it has not taken yet
 * (the response's and its socket's buffers) are checked, and past `maxBufferedBytes` the viewer is
 * dropped — a viewer that stops reading costs at most that much, never a growing queue. Bounded
 * in number: `admit` asks the caller (viewers count against MAX_CLIENTS with the stream clients)
 * and STATUS_MAX_VIEWERS caps them on their own.
 */
import type { Logger } from 'pino';

/** What a viewer is written through (an HTTP response: `ServerResponse` fits). */
export interface ViewerSink {
  /** bytes written but not yet taken by the peer's socket (response and socket buffers) */
  readonly writableLength: number;
  write(chunk: string): boolean;
  end(): void;
  destroy(): void;
  once(event: 'close', listener: () => void): unknown;
}

/** Why a viewer is not admitted: too many viewers, or the process's connection limit. */
export type ViewerRefusal = 'viewers' | 'connections';

export interface StatusViewersOptions {
  /** STATUS_MAX_VIEWERS */
  readonly maxViewers: number;
  /** unsent bytes a viewer may hold before it is dropped */
  readonly maxBufferedBytes: number;
  /** whether one more connection fits in MAX_CLIENTS (viewers already count in it) */
  readonly connectionsLeft: () => boolean;
  readonly logger: Logger;
}

/** One viewer: its sink and what it has been sent. */
export interface Viewer {
  readonly id: number;
  readonly remote: string;
  /** bytes handed to its sink so far */
  sentBytes: number;
  /** the most unsent bytes it ever held right after a write */
  peakBufferedBytes: number;
}

interface Entry {
  readonly viewer: Viewer;
  readonly sink: ViewerSink;
}

export class StatusViewers {
  readonly maxViewers: number;
  readonly maxBufferedBytes: number;
  /** viewers dropped because they did not read */
  dropped = 0;
  /** viewers refused at the door (either limit) */
  refused = 0;
  readonly #options: StatusViewersOptions;
  readonly #entries = new Map<number, Entry>();
  #seq = 0;
  #closed = false;

  constructor(options: StatusViewersOptions) {
    this.#options = options;
    this.maxViewers = options.maxViewers;
    this.maxBufferedBytes = options.maxBufferedBytes;
  }

  /** Viewers connected now. */
  get count(): number {
    return this.#entries.size;
  }

  /** The connected viewers (for tests and diagnostics). */
  get viewers(): Viewer[] {
    return [...this.#entries.values()].map((entry) => entry.viewer);
  }

  /** Whether another viewer would be admitted now; undefined when it would, else the limit it meets. */
  refusal(): ViewerRefusal | undefined {
    if (this.#closed || this.#entries.size >= this.maxViewers) return 'viewers';
    if (!this.#options.connectionsLeft()) return 'connections';
    return undefined;
  }

  /**
   * Takes a viewer whose response headers are sent, with its first bytes; it is forgotten when its
   * sink closes. Returns undefined (and counts a refusal) when a limit is met: the caller answers 503.
   */
  add(sink: ViewerSink, remote: string, first: string): Viewer | undefined {
    if (this.refusal() !== undefined) {
      this.refused += 1;
      return undefined;
    }
    const viewer: Viewer = { id: ++this.#seq, remote, sentBytes: 0, peakBufferedBytes: 0 };
    const entry = { viewer, sink };
    this.#entries.set(viewer.id, entry);
    sink.once('close', () => this.#entries.delete(viewer.id));
    this.#write(entry, first);
    return viewer;
  }

  /** Sends `chunk` to every viewer; one that holds too much unsent is dropped instead. */
  broadcast(chunk: string): void {
    for (const entry of [...this.#entries.values()]) this.#write(entry, chunk);
  }

  #write(entry: Entry, chunk: string): void {
    const { sink, viewer } = entry;
    if (sink.writableLength + Buffer.byteLength(chunk) > this.maxBufferedBytes) return this.#drop(entry);
    sink.write(chunk);
    viewer.sentBytes += Buffer.byteLength(chunk);
    viewer.peakBufferedBytes = Math.max(viewer.peakBufferedBytes, sink.writableLength);
  }

  #drop(entry: Entry): void {
    this.dropped += 1;
    this.#entries.delete(entry.viewer.id);
    this.#options.logger.warn({ viewer: entry.viewer.id, remote: entry.viewer.remote, buffered: entry.sink.writableLength, limit: this.maxBufferedBytes }, 'status viewer dropped: it does not read');
    // Its buffers are what it failed to take: cut it, do not wait for them to drain.
    entry.sink.destroy();
  }

  /** Ends every viewer's stream and admits no more (shutdown). */
  closeAll(): void {
    this.#closed = true;
    for (const entry of [...this.#entries.values()]) {
      this.#entries.delete(entry.viewer.id);
      entry.sink.end();
    }
  }
}

/** One server-sent event: its name, an id, and one line of data (JSON has no raw newlines). */
export function serverSentEvent(event: string, id: number, data: string): string {
  return `event: ${event}\nid: ${id}\ndata: ${data}\n\n`;
}
