/**
 * `tape export --format ndjson`: one line per message, the vendor's JSON of it with its receive
 * time added as the last key, `"recv":"…"` (RFC 3339 with every nanosecond digit). The key is
 * spliced into the message's bytes, never through `JSON.parse`, which would round ids past 2^53.
 */
import type { MessageUnit } from '../protocol/frame.js';
import type { Mark } from './record.js';
import { nsText } from './replay-window.js';
import type { ExportCounts, ExportWriter, Output } from './export-output.js';

const isWhitespace = (c: number | undefined): boolean => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

/**
 * The bytes of `json` (one JSON object) with `field` (`"key":value`) added as its last member, and
 * a newline; undefined when `json` is not an object.
 */
export function withLastField(json: Buffer, field: string): Buffer[] | undefined {
  if (json[0] !== 0x7b || json[json.length - 1] !== 0x7d) return undefined;
  let p = json.length - 2;
  while (p > 0 && isWhitespace(json[p])) p--;
  const empty = p === 0; // only `{` before the closing brace
  return [json.subarray(0, json.length - 1), Buffer.from(`${empty ? '' : ','}${field}}\n`)];
}

/** A mark as a line: `{"T":"mark","event":…,"recv":…}`, a gap's bounds as RFC 3339 like the replay's events. */
export function markLine(ns: bigint, mark: Mark): string {
  const fields = mark.event === 'tape_gap' ? { ...mark, from: nsText(BigInt(mark.from)), to: nsText(BigInt(mark.to)) } : mark;
  return `${JSON.stringify({ T: 'mark', ...fields, recv: nsText(ns) })}\n`;
}

export class NdjsonWriter implements ExportWriter {
  readonly #output: Output;
  readonly #counts: ExportCounts;
  #parts: Buffer[] = [];

  constructor(output: Output, counts: ExportCounts) {
    this.#output = output;
    this.#counts = counts;
  }

  units(ns: bigint, units: readonly MessageUnit[]): void {
    const field = `"recv":"${nsText(ns)}"`;
    for (const unit of units) {
      const json = unit.tryEncoded('json');
      if (json === undefined) {
        this.#counts.skip('a value with no JSON form');
        continue;
      }
      const line = withLastField(json, field);
      if (line === undefined) {
        this.#counts.skip('not a JSON object');
        continue;
      }
      this.#parts.push(...line);
      this.#counts.messages += 1;
    }
  }

  mark(ns: bigint, mark: Mark): void {
    this.#parts.push(Buffer.from(markLine(ns, mark)));
    this.#counts.marks += 1;
  }

  async flush(): Promise<void> {
    if (this.#parts.length === 0) return;
    const chunk = Buffer.concat(this.#parts);
    this.#parts = [];
    await this.#output.write(chunk);
  }

  close(): Promise<void> {
    return this.flush();
  }

  abort(): void {
    this.#parts = [];
  }
}
