/**
 * What the soak needs to know of each stream kind it drives (issue #19): the path it runs on, the
 * symbols of each population, the channels healthy readers hold and churners touch, and which
 * checks apply — trade ids (stocks, crypto), order books (crypto), items once each (news). The
 * population and the harness branch on these fields, never on a stream's name.
 */
import { DEFAULT_NEWS_UNIVERSE } from '../src/simulator/news-wire.js';
import { type Channel, CRYPTO, NEWS, OPTIONS, STOCKS, type StreamKind, type StreamKindName } from '../src/protocol/streams.js';

export interface StreamProfile {
  readonly name: StreamKindName;
  /** the stream path the gateway serves it on */
  readonly path: string;
  readonly kind: StreamKind;
  /** what healthy readers hold: 16 of them, 4 a reader */
  readonly healthy: readonly string[];
  /** held by slow readers alone (empty: no slow readers here — news has no rate-driven flow) */
  readonly busy: readonly string[];
  /** churners' own symbols (they also touch some healthy ones) */
  readonly churnOnly: readonly string[];
  /** the channel whose every message a healthy reader checks: trades, or news */
  readonly main: Channel;
  /** further channels a healthy reader holds for its symbols */
  readonly extra: readonly Channel[];
  /** channels churners change, with their weights */
  readonly churn: readonly (readonly [Channel, number])[];
  /** trades carry a per-symbol id that runs in sequence (options trades carry none) */
  readonly tradeIds: boolean;
  /** order books: healthy readers rebuild them and the harness compares them with the vendor's */
  readonly books: boolean;
  /** `count` distinct valid symbols nobody else holds, for hostile lists */
  many(count: number): string[];
  /** a valid symbol nobody holds */
  readonly absent: string;
}

const numbered = (prefix: string, n: number, shape: (s: string) => string = (s) => s): string[] => Array.from({ length: n }, (_, i) => shape(`${prefix}${String(i).padStart(2, '0')}`));
/** OCC roots are letters only: H00 → HAA, B31 → BBF. */
const letters = (i: number): string => String.fromCharCode(65 + Math.floor(i / 26), 65 + (i % 26));
const contracts = (root: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${root}${letters(i)}250117C00100000`);

export const PROFILES: Readonly<Record<StreamKindName, StreamProfile>> = {
  stocks: {
    name: 'stocks',
    path: 'v2/iex',
    kind: STOCKS,
    healthy: numbered('H', 16),
    busy: numbered('B', 32),
    churnOnly: numbered('C', 20),
    main: 'trades',
    extra: ['quotes'],
    churn: [
      ['trades', 0.7],
      ['quotes', 0.3],
    ],
    tradeIds: true,
    books: false,
    many: (count) => Array.from({ length: count }, (_, i) => `X${String(i).padStart(5, '0')}`),
    absent: 'ZZZZ',
  },
  crypto: {
    name: 'crypto',
    path: 'v1beta3/crypto/us',
    kind: CRYPTO,
    healthy: numbered('H', 16, (s) => `${s}/USD`),
    busy: numbered('B', 32, (s) => `${s}/USD`),
    churnOnly: numbered('C', 20, (s) => `${s}/USD`),
    main: 'trades',
    extra: ['quotes', 'orderbooks'],
    churn: [
      ['trades', 0.6],
      ['quotes', 0.2],
      ['orderbooks', 0.2],
    ],
    tradeIds: true,
    books: true,
    many: (count) => Array.from({ length: count }, (_, i) => `X${String(i).padStart(5, '0')}/USD`),
    absent: 'ZZZZ/USD',
  },
  options: {
    name: 'options',
    path: 'v1beta1/indicative',
    kind: OPTIONS,
    healthy: contracts('H', 16),
    busy: contracts('B', 32),
    churnOnly: contracts('C', 20),
    main: 'trades',
    extra: ['quotes'],
    churn: [
      ['trades', 0.7],
      ['quotes', 0.3],
    ],
    tradeIds: false,
    books: false,
    many: (count) => Array.from({ length: count }, (_, i) => `X250117C${String(i).padStart(8, '0')}`),
    absent: 'ZZZZ250117C00100000',
  },
  news: {
    name: 'news',
    path: 'v1beta1/news',
    kind: NEWS,
    // Items are about the wire's universe; half the healthy readers hold `*` instead.
    healthy: DEFAULT_NEWS_UNIVERSE,
    busy: [],
    churnOnly: numbered('C', 20),
    main: 'news',
    extra: [],
    churn: [['news', 1]],
    tradeIds: false,
    books: false,
    many: (count) => Array.from({ length: count }, (_, i) => `X${String(i).padStart(5, '0')}`),
    absent: 'ZZZZ',
  },
};

export const KIND_NAMES = Object.keys(PROFILES) as StreamKindName[];

/** `--streams`: `all`, or a comma-separated subset of the kinds; undefined names the unknown one. */
export function parseStreams(value: string): StreamProfile[] | string {
  if (value === 'all') return KIND_NAMES.map((name) => PROFILES[name]);
  const out: StreamProfile[] = [];
  for (const name of value.split(',').map((s) => s.trim())) {
    if (!(KIND_NAMES as string[]).includes(name)) return name;
    const profile = PROFILES[name as StreamKindName];
    if (!out.includes(profile)) out.push(profile);
  }
  return out.length === 0 ? value : out;
}

/** A book as a reader keeps it: price → size per side, from its resets and the level updates after them. */
export class ReaderBook {
  readonly bids = new Map<number, number>();
  readonly asks = new Map<number, number>();
  /** when the last reset arrived (harness ms) */
  resetAt: number | undefined;
  /** level updates before any reset: a reader cannot place them */
  orphanUpdates = 0;

  apply(m: Record<string, unknown>, at: number): void {
    if (m.r === true) {
      this.bids.clear();
      this.asks.clear();
      this.resetAt = at;
    } else if (this.resetAt === undefined) {
      this.orphanUpdates += 1;
      return;
    }
    for (const [side, levels] of [
      [this.bids, m.b],
      [this.asks, m.a],
    ] as const) {
      for (const level of (levels ?? []) as { p: number; s: number }[]) {
        if (level.s === 0) side.delete(level.p);
        else side.set(level.p, level.s);
      }
    }
  }

  /** The book as the vendor's `GET /books` gives it: levels best first. */
  levels(): { b: { p: number; s: number }[]; a: { p: number; s: number }[] } {
    const sorted = (side: Map<number, number>, desc: boolean): { p: number; s: number }[] =>
      [...side.entries()].sort(([x], [y]) => (desc ? y - x : x - y)).map(([p, s]) => ({ p, s }));
    return { b: sorted(this.bids, true), a: sorted(this.asks, false) };
  }
}

/** Where two books first differ, for the report; undefined when they agree. */
export function bookDifference(
  reader: { b: { p: number; s: number }[]; a: { p: number; s: number }[] },
  vendor: { b: { p: number; s: number }[]; a: { p: number; s: number }[] } | undefined,
): string | undefined {
  if (vendor === undefined) return 'the vendor has no such book';
  for (const side of ['b', 'a'] as const) {
    const mine = reader[side];
    const theirs = vendor[side];
    for (let i = 0; i < Math.max(mine.length, theirs.length); i++) {
      const x = mine[i];
      const y = theirs[i];
      if (x?.p !== y?.p || x?.s !== y?.s) return `${side}[${i}]: reader ${JSON.stringify(x)} vendor ${JSON.stringify(y)} (levels ${mine.length} / ${theirs.length})`;
    }
  }
  return undefined;
}
