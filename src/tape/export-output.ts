/**
 * Where `tickmux tape export` writes: a stream (stdout, a csv file) written with its backpressure,
 * so an export of hours of tape holds one chunk of it in memory however slowly its reader reads;
 * and what the export's writers (ndjson, csv) have in common.
 */
import type { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { TickmuxError } from '../errors.js';
import type { MessageUnit } from '../protocol/frame.js';
import type { Mark } from './record.js';

/** The output was closed (ended or destroyed without an error) before the export was done. */
export class OutputClosedError extends TickmuxError {
  constructor() {
    super('ERR_OUTPUT_CLOSED', 'the output was closed before the export was done');
  }
}

/** A stream written with its backpressure; a failure of the stream fails the next write. */
export class Output {
  readonly #stream: Writable;
  #error: Error | undefined;

  constructor(stream: Writable) {
    this.#stream = stream;
    // Kept and thrown by the next write or end: an error event nobody listened to would end the process.
    stream.on('error', (err: Error) => (this.#error ??= err));
  }

  /** Writes `chunk`; resolves once the stream takes more (at once, unless its buffer is full). */
  async write(chunk: Buffer | string): Promise<void> {
    this.#check();
    if (this.#stream.write(chunk)) return;
    await drained(this.#stream);
    this.#check();
  }

  /** Ends a stream the export owns (a csv file) and waits until it is finished. */
  async end(): Promise<void> {
    this.#check();
    this.#stream.end();
    await finished(this.#stream);
  }

  /** Lets go of a stream the export owns after a failure, without waiting for it. */
  destroy(): void {
    this.#stream.destroy();
  }

  #check(): void {
    if (this.#error !== undefined) throw this.#error;
    if (this.#stream.destroyed || this.#stream.writableEnded) throw new OutputClosedError();
  }
}

/** Resolves on `drain`; rejects if the stream fails or closes first. */
function drained(stream: Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: Error): void => {
      stream.off('drain', onDrain);
      stream.off('error', onError);
      stream.off('close', onClose);
      if (err === undefined) resolve();
      else reject(err);
    };
    const onDrain = (): void => done();
    const onError = (err: Error): void => done(err);
    const onClose = (): void => done(new OutputClosedError());
    stream.on('drain', onDrain);
    stream.on('error', onError);
    stream.on('close', onClose);
  });
}

/** What an export wrote and what it had to leave out. */
export class ExportCounts {
  /** data messages written */
  messages = 0;
  /** marks written (`--marks`) */
  marks = 0;
  /** selected data messages the format could not hold, by why */
  readonly skipped = new Map<string, number>();

  skip(why: string): void {
    this.skipped.set(why, (this.skipped.get(why) ?? 0) + 1);
  }
}

/**
 * One output format. The export hands it a chunk of the tape's records at a time (`units`,
 * `mark`), then `flush`es: the writer writes the chunk with backpressure before the next is read.
 */
export interface ExportWriter {
  /** one recorded frame's selected data messages, received at `ns` */
  units(ns: bigint, units: readonly MessageUnit[]): void;
  /** a mark of the tape, received at `ns` */
  mark(ns: bigint, mark: Mark): void;
  flush(): Promise<void>;
  /** writes what is left and ends the files it owns */
  close(): Promise<void>;
  /** after a failure: lets go of the files it owns */
  abort(): void;
}
