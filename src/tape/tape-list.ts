/**
 * `tickmux tape ls`: what a tape folder holds, stream by stream — as the JSON `GET /tape` answers
 * with (times as RFC 3339 text with every nanosecond digit, null where there is none) or as a
 * table for people.
 */
import { nsText } from './replay-window.js';
import { recordedStreams, type StreamTape, summarizeStream } from './tape-catalog.js';
import { requireTapeFolder } from './tape-folder.js';

export interface GapListing {
  readonly from: string;
  /** null: the gap is still open (the link has not come back) */
  readonly to: string | null;
  readonly reason: string;
}

/** One stream's entry, shaped like an entry of `GET /tape`'s `streams`. */
export interface StreamListing {
  readonly stream: string;
  readonly from: string | null;
  readonly to: string | null;
  readonly bytes: number;
  readonly messages: number;
  readonly segments: number;
  readonly gaps: GapListing[];
}

export interface TapeListing {
  readonly streams: StreamListing[];
}

const text = (ns: bigint | undefined): string | null => (ns === undefined ? null : nsText(ns));

/** A stream's summary with its ns times as text (bigint has no JSON form). */
export function streamListing(tape: StreamTape): StreamListing {
  return {
    stream: tape.stream,
    from: text(tape.fromNs),
    to: text(tape.toNs),
    bytes: tape.bytes,
    messages: tape.messages,
    segments: tape.segments,
    gaps: tape.gaps.map((g) => ({ from: nsText(g.fromNs), to: text(g.toNs), reason: g.reason })),
  };
}

/**
 * Every stream recorded under `dir`, in path order, read from the segments' indexes.
 * @throws TapeFolderError when `dir` is missing or no folder
 */
export async function listTape(dir: string): Promise<TapeListing> {
  await requireTapeFolder(dir);
  const streams: StreamListing[] = [];
  for (const stream of await recordedStreams(dir)) streams.push(streamListing(await summarizeStream(dir, stream)));
  return { streams };
}

const COLUMNS = ['STREAM', 'FROM', 'TO', 'BYTES', 'MESSAGES', 'SEGMENTS'] as const;
/** the numeric columns, right-aligned */
const RIGHT = new Set([3, 4, 5]);

/**
 * The listing as a table: a row per stream, and under it a row per gap whose times stand in the
 * FROM and TO columns and whose reason follows them.
 */
export function formatTapeTable(listing: TapeListing, dir: string): string {
  if (listing.streams.length === 0) return `no stream recorded in ${dir}\n`;
  const rows: string[][] = [[...COLUMNS]];
  const gapRows = new Map<number, string[][]>();
  for (const s of listing.streams) {
    rows.push([s.stream, s.from ?? '-', s.to ?? '-', String(s.bytes), String(s.messages), String(s.segments)]);
    gapRows.set(rows.length - 1, s.gaps.map((g) => ['  gap', g.from, g.to ?? 'open', g.reason]));
  }
  const widths = COLUMNS.map((_, i) => Math.max(...rows.map((r) => (r[i] as string).length)));
  const pad = (cell: string, i: number): string => (RIGHT.has(i) ? cell.padStart(widths[i] as number) : cell.padEnd(widths[i] as number));
  const lines: string[] = [];
  rows.forEach((row, r) => {
    lines.push(row.map(pad).join('  ').trimEnd());
    for (const [label, from, to, reason] of gapRows.get(r) ?? []) {
      lines.push([pad(label as string, 0), pad(from as string, 1), pad(to as string, 2), reason].join('  '));
    }
  });
  return `${lines.join('\n')}\n`;
}
