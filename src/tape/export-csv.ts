/**
 * `tape export --format csv`: one table per message type (`t.csv`, `q.csv`, `o.csv` …, named by
 * the type letter), its header the fields of the type's first message in their order, then `recv`.
 * Values are the text of the vendor's JSON, never a JS number: strings as they read, numbers with
 * every digit, arrays and objects as their JSON text (quoted). A message with a field its table's
 * header lacks keeps its row (the field left out) and is counted, so the loss is reported.
 */
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { ProtocolError } from '../errors.js';
import type { MessageUnit } from '../protocol/frame.js';
import { JsonCursor } from '../protocol/json.js';
import { nsText } from './replay-window.js';
import { type ExportCounts, type ExportWriter, Output } from './export-output.js';

/** A type a file may be named after (the vendor's are one letter). */
const FILE_TYPE = /^[A-Za-z0-9_]{1,32}$/;

/** A CSV field: quoted when it must be (a comma, quote, line break, or edge space) or when `quote`. */
export function csvField(text: string, quote = false): string {
  return quote || /[",\r\n]|^\s|\s$/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/**
 * The members of one JSON object as CSV fields, in order, read with the lossless scanner: a
 * string is its text, any other value exactly the JSON the vendor wrote (an id past 2^53 keeps
 * its digits, `1.50` stays `1.50`); undefined when `json` is not an object.
 * @throws ProtocolError on malformed JSON
 */
export function csvFields(json: Buffer): Map<string, string> | undefined {
  const cursor = new JsonCursor(json);
  if (!cursor.accept(0x7b)) return undefined;
  const fields = new Map<string, string>();
  if (cursor.accept(0x7d)) return fields;
  do {
    const key = cursor.value(true);
    if (typeof key !== 'string') throw new ProtocolError('object key is not a string');
    cursor.expect(0x3a);
    cursor.skipWhitespace();
    const start = cursor.pos;
    if (json[start] === 0x22) {
      fields.set(key, csvField(cursor.string(true)));
    } else {
      cursor.value(false);
      const raw = json.toString('utf8', start, cursor.pos);
      fields.set(key, csvField(raw, raw[0] === '[' || raw[0] === '{'));
    }
  } while (cursor.accept(0x2c));
  cursor.expect(0x7d);
  return fields;
}

/** One type's table: where it goes, its columns once its first message set them, its rows so far. */
interface Table {
  readonly type: string;
  readonly output: Output;
  /** the file, when the export writes files (else the table is stdout) */
  readonly path: string | undefined;
  columns: string[] | undefined;
  lines: string[];
  rows: number;
  /** fields messages had that the header lacks */
  readonly extraFields: Set<string>;
  messagesWithExtraFields: number;
}

/** What the export says of a table it wrote. */
export interface TableSummary {
  readonly type: string;
  readonly path: string | undefined;
  readonly rows: number;
  /** fields some messages had that the header lacks (left out of their rows) */
  readonly extraFields: readonly string[];
  readonly messagesWithExtraFields: number;
}

/** Where the tables go: a file per type in a folder, or the one selected type's table to a stream. */
export type CsvTarget = { readonly outDir: string } | { readonly output: Output; readonly type: string };

export class CsvWriter implements ExportWriter {
  readonly #target: CsvTarget;
  readonly #counts: ExportCounts;
  readonly #tables = new Map<string, Table>();

  constructor(target: CsvTarget, counts: ExportCounts) {
    this.#target = target;
    this.#counts = counts;
  }

  units(ns: bigint, units: readonly MessageUnit[]): void {
    let recv: string | undefined;
    for (const unit of units) {
      const type = unit.type;
      if (type === undefined || !FILE_TYPE.test(type)) {
        this.#counts.skip('no type letter to name a csv table by');
        continue;
      }
      if ('type' in this.#target && type !== this.#target.type) {
        this.#counts.skip(`not of type ${this.#target.type} (csv to stdout holds one type)`);
        continue;
      }
      const json = unit.tryEncoded('json');
      const fields = json === undefined ? undefined : csvFields(json);
      if (fields === undefined) {
        this.#counts.skip(json === undefined ? 'a value with no JSON form' : 'not a JSON object');
        continue;
      }
      recv ??= nsText(ns);
      this.#row(this.#table(type), fields, recv);
      this.#counts.messages += 1;
    }
  }

  /** Marks are not rows of any table (the export refuses `--marks` with csv). */
  mark(): void {}

  #table(type: string): Table {
    let table = this.#tables.get(type);
    if (table === undefined) {
      const target = this.#target;
      const path = 'outDir' in target ? join(target.outDir, `${type}.csv`) : undefined;
      const output = path === undefined ? (target as { output: Output }).output : new Output(createWriteStream(path));
      table = { type, output, path, columns: undefined, lines: [], rows: 0, extraFields: new Set(), messagesWithExtraFields: 0 };
      this.#tables.set(type, table);
    }
    return table;
  }

  #row(table: Table, fields: Map<string, string>, recv: string): void {
    if (table.columns === undefined) {
      table.columns = [...fields.keys()];
      table.lines.push([...table.columns, 'recv'].map((c) => csvField(c)).join(','));
    }
    const cells = table.columns.map((c) => fields.get(c) ?? '');
    cells.push(recv);
    table.lines.push(cells.join(','));
    table.rows += 1;
    // Same count and every column present: no field beyond the header (the common case, cheaply).
    if (fields.size === table.columns.length && table.columns.every((c) => fields.has(c))) return;
    const beyond = [...fields.keys()].filter((k) => !(table.columns as string[]).includes(k));
    for (const key of beyond) table.extraFields.add(key);
    if (beyond.length > 0) table.messagesWithExtraFields += 1;
  }

  async flush(): Promise<void> {
    for (const table of this.#tables.values()) {
      if (table.lines.length === 0) continue;
      const chunk = `${table.lines.join('\n')}\n`;
      table.lines = [];
      await table.output.write(chunk);
    }
  }

  async close(): Promise<void> {
    await this.flush();
    for (const table of this.#tables.values()) if (table.path !== undefined) await table.output.end();
  }

  abort(): void {
    for (const table of this.#tables.values()) if (table.path !== undefined) table.output.destroy();
  }

  /** The tables written, in the order their first message came. */
  get tables(): TableSummary[] {
    return [...this.#tables.values()].map((t) => ({ type: t.type, path: t.path, rows: t.rows, extraFields: [...t.extraFields], messagesWithExtraFields: t.messagesWithExtraFields }));
  }
}
