/**
 * `tickmux tape export` (DESIGN.md §12): a window of one stream's tape as files — the records
 * received from `from` to `to` (both included), their data messages of the selected channels and
 * symbols, written losslessly as ndjson or csv. Reads the tape a chunk at a time and writes each
 * chunk before reading the next, so memory stays bounded however long the window.
 */
import { mkdir } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import { TickmuxError } from '../errors.js';
import type { ChannelSet } from '../protocol/channel-set.js';
import type { MessageUnit } from '../protocol/frame.js';
import type { StreamKind } from '../protocol/streams.js';
import { CsvWriter, type TableSummary } from './export-csv.js';
import { NdjsonWriter } from './export-ndjson.js';
import { ExportCounts, type ExportWriter, Output } from './export-output.js';
import { dataUnits } from './record.js';
import { WindowError } from './replay-window.js';
import { TapeCursor } from './tape-cursor.js';
import { requireRecordedStream } from './tape-folder.js';

export type ExportFormat = 'ndjson' | 'csv';

export interface TapeExportOptions {
  /** the tape folder (`TAPE_DIR`) */
  readonly dir: string;
  readonly stream: string;
  readonly kind: StreamKind;
  /** ns since the epoch, both included */
  readonly fromNs: bigint;
  readonly toNs: bigint;
  /** the channels and symbols to keep (`*` for all of a channel); undefined: every data message */
  readonly selection?: ChannelSet;
  readonly format: ExportFormat;
  /** ndjson: the tape's marks (link down/up, recorder gaps) as lines at their place */
  readonly marks?: boolean;
  /** csv: the folder for one file per message type; without it the one selected type goes to the output */
  readonly outDir?: string;
}

export interface TapeExportResult {
  /** data messages written */
  readonly messages: number;
  /** marks written */
  readonly marks: number;
  /** csv: the tables written, in the order their first message came */
  readonly tables: readonly TableSummary[];
  /** selected data messages the format could not hold, by why */
  readonly skipped: ReadonlyMap<string, number>;
}

/** Export options that do not go together (a command-line mistake, not a tape's). */
export class TapeExportError extends TickmuxError {
  constructor(code: 'ERR_CSV_NEEDS_OUT' | 'ERR_EXPORT_OPTIONS', message: string) {
    super(code, message);
  }
}

/** The data message types of `kind` whose channel `selection` holds (every type without a selection). */
export function selectionTypes(kind: StreamKind, selection?: ChannelSet): string[] {
  return Object.entries(kind.typeToChannel)
    .filter(([, channel]) => selection === undefined || selection.symbols(channel).size > 0)
    .map(([type]) => type);
}

/**
 * Whether the selection holds a unit: its type's channel, for `*` or for one of the symbols it is
 * about (its `S`, or a news item's `symbols`). Without a selection every data message is kept, of
 * types the kind does not know too, as the gateway passes those to every client.
 */
function selector(kind: StreamKind, selection: ChannelSet | undefined): (unit: MessageUnit) => boolean {
  if (selection === undefined) return () => true;
  return (unit) => {
    const type = unit.type;
    if (type === undefined || !Object.hasOwn(kind.typeToChannel, type)) return false;
    const channel = kind.typeToChannel[type];
    if (channel === undefined) return false;
    return selection.covers(channel, undefined) || unit.symbols.some((symbol) => selection.has(channel, symbol));
  };
}

/** Refuses options that do not go together, before anything is read. */
function checkOptions(options: TapeExportOptions): void {
  if (options.toNs < options.fromNs) throw new WindowError('to is before from');
  if (options.format === 'ndjson' && options.outDir !== undefined) throw new TapeExportError('ERR_EXPORT_OPTIONS', '--out is for --format csv (ndjson goes to stdout)');
  if (options.format === 'csv' && options.marks === true) throw new TapeExportError('ERR_EXPORT_OPTIONS', '--marks is for --format ndjson (a mark is no row of any csv table)');
  if (options.format === 'csv' && options.outDir === undefined) {
    const types = selectionTypes(options.kind, options.selection);
    if (types.length !== 1) {
      throw new TapeExportError('ERR_CSV_NEEDS_OUT', `csv writes one file per message type and this selection has ${types.length} (${types.join(', ')}): add --out DIR`);
    }
  }
}

/**
 * Writes the window to `out` (ndjson, or csv of one type) or to files in `outDir` (csv), and says
 * what it wrote. `out` is not ended: it is the caller's.
 * @throws TapeExportError or WindowError for options that do not go together; TapeFolderError
 *   when the tape folder is missing or does not hold the stream; the output's error if it fails
 */
export async function exportTape(options: TapeExportOptions, out: Writable): Promise<TapeExportResult> {
  checkOptions(options);
  const { dir, stream, kind, fromNs, toNs, format, outDir } = options;
  await requireRecordedStream(dir, stream);
  const counts = new ExportCounts();
  let writer: ExportWriter;
  let csv: CsvWriter | undefined;
  if (format === 'ndjson') {
    writer = new NdjsonWriter(new Output(out), counts);
  } else {
    if (outDir !== undefined) await mkdir(outDir, { recursive: true });
    const target = outDir !== undefined ? { outDir } : { output: new Output(out), type: selectionTypes(kind, options.selection)[0] as string };
    writer = csv = new CsvWriter(target, counts);
  }
  const keep = selector(kind, options.selection);
  const cursor = await TapeCursor.open(dir, stream, fromNs);
  try {
    read: for (let records = await cursor.next(); records.length > 0; records = await cursor.next()) {
      for (const record of records) {
        if (record.ns > toNs) break read;
        if (record.type === 'mark') {
          // A segment mark is the files' layout, not the stream's: a restart leaves a gap mark too.
          if (options.marks === true && record.mark.event !== 'segment') writer.mark(record.ns, record.mark);
          continue;
        }
        // A checkpoint repeats the books as of its segment's start: its messages were exported as they came.
        if (record.type !== 'frame') continue;
        const units = dataUnits(record, kind).filter(keep);
        if (units.length > 0) writer.units(record.ns, units);
      }
      await writer.flush();
    }
    await writer.close();
  } catch (err) {
    writer.abort();
    throw err;
  } finally {
    await cursor.close();
  }
  return { messages: counts.messages, marks: counts.marks, tables: csv?.tables ?? [], skipped: counts.skipped };
}
