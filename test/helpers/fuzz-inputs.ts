/**
 * Seeded generators of hostile stream requests for the fuzz test. Each case carries the bytes to
 * send and what they mean to the protocol (noise, invalid UTF-8, an auth, a subscription change
 * with the faults it holds), so the test can say which answer the contract requires without
 * asking the gateway. The same seed gives the same cases, in the same order. Requests are written
 * in the words of one stream kind (a `Vocabulary`: its channels, symbols right and wrong, the
 * keys it lacks), taken from the vendor's documentation (PROTOCOL.md, PROTOCOL-STREAMS.md), not
 * from the gateway's code.
 */
import { isUtf8 } from 'node:buffer';
import { encode } from '@msgpack/msgpack';
import type { Channel } from '../../src/protocol/channels.js';
import { type Random, seededRandom } from '../../src/random.js';

/** What a request means, before any size rule applies. */
export type Meaning =
  /** not a request of the protocol (malformed, wrong shape, unknown action) */
  | { readonly kind: 'noise' }
  /** a text frame whose bytes are not UTF-8 (the WebSocket layer refuses it) */
  | { readonly kind: 'invalid-utf8' }
  | { readonly kind: 'auth'; readonly key: unknown; readonly secret: unknown }
  | {
      readonly kind: 'change';
      readonly action: 'subscribe' | 'unsubscribe';
      /** vendor codes of the faults it holds; any of them is a right answer */
      readonly faults: readonly number[];
      /** its well-formed lists on subscribable channels */
      readonly lists: Partial<Record<Channel, string[]>>;
      /** vendor codes that are right too when it holds no fault (the contract leaves them open) */
      readonly tolerated?: readonly number[];
    };

export interface WsCase {
  readonly id: string;
  readonly family: string;
  readonly note: string;
  readonly data: Buffer;
  readonly binary: boolean;
  /** frames the message is split into (1: unfragmented) */
  readonly fragments: number;
  readonly meaning: Meaning;
}

type Generated = { data: Buffer; binary: boolean; meaning: Meaning; note: string };

/** A stream of choices from one seed. */
export class Dice {
  readonly #random: Random;

  constructor(seed: number) {
    this.#random = seededRandom(seed);
  }

  next(): number {
    return this.#random();
  }

  int(below: number): number {
    return Math.floor(this.#random() * below);
  }

  between(min: number, max: number): number {
    return min + this.int(max - min + 1);
  }

  chance(p: number): boolean {
    return this.#random() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)] as T;
  }

  bytes(length: number): Buffer {
    const out = Buffer.alloc(length);
    for (let i = 0; i < length; i++) out[i] = this.int(256);
    return out;
  }

  /** A string of random code points from ASCII, Latin-1, BMP and astral planes (always valid UTF-8). */
  text(length: number): string {
    let out = '';
    for (let i = 0; i < length; i++) {
      const r = this.#random();
      let cp: number;
      if (r < 0.6) cp = 0x20 + this.int(0x5f);
      else if (r < 0.7) cp = this.int(0x20);
      else if (r < 0.85) cp = 0xa0 + this.int(0x2000);
      else if (r < 0.95) cp = 0x3000 + this.int(0xa000);
      else cp = 0x10000 + this.int(0x10000);
      out += String.fromCodePoint(cp);
    }
    return out;
  }
}

/** A stable 32-bit hash of a name, to derive one seed per family. */
export function seedFor(seed: number, name: string): number {
  let h = seed >>> 0;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x9e3779b1) >>> 0;
  return h;
}

// ---- vocabulary ----

export const VALID_SYMBOLS = ['AAPL', 'MSFT', 'AMZN', 'NVDA', 'GOOGL', 'META', 'TSLA', 'BRK.B', 'JPM', 'V', 'SPY', 'QQQ', 'BF/B', 'TEST-A', 'X', 'A1', 'FAKEPACA', 'WIT'];
export const INVALID_SYMBOLS = [
  'aapl',
  'Aapl',
  '',
  ' ',
  'A A',
  'AAPL\n',
  '\u0000',
  'A\u0007',
  'Ä',
  '株式',
  '😀',
  'A'.repeat(22),
  'B'.repeat(1000),
  '.A',
  '-A',
  '**',
  '*A',
  'AAPL;DROP',
  '../..',
  '%41',
  'A\u200bB',
  '\ud800',
  'A,B',
  '"',
  '\\',
  'AAPL ',
];
/** Channel keys of other Alpaca streams, and the ones that only follow trades. */
export const FOREIGN_CHANNELS = ['orderbooks', 'news', 'pricing', 'corrections', 'cancelErrors'];

/**
 * What one stream kind's requests are made of, from the vendor's documentation: its subscribe
 * keys and reply keys, symbols it accepts and symbols it refuses (400), the vendor keys it lacks
 * (symbols there: 410), and channels where `*` is refused with a code of its own.
 */
export interface Vocabulary {
  readonly name: 'stocks' | 'crypto' | 'options' | 'news';
  readonly channels: readonly Channel[];
  /** the `subscription` reply's keys after `T`, each with the channel whose set it lists */
  readonly reply: readonly (readonly [string, Channel])[];
  readonly validSymbols: readonly string[];
  readonly invalidSymbols: readonly string[];
  readonly foreignChannels: readonly string[];
  readonly wildcardRefusals: Readonly<Partial<Record<Channel, number>>>;
  /** the `i`-th of many distinct valid symbols (huge lists) */
  bulkSymbol(i: number): string;
  /** bytes one bulk symbol takes in a list, relative to a stock ticker's */
  readonly bulkScale: number;
}

export const STOCK_VOCABULARY: Vocabulary = {
  name: 'stocks',
  channels: ['trades', 'quotes', 'bars', 'updatedBars', 'dailyBars', 'statuses', 'lulds', 'imbalances'],
  // DOC-WS's reply; corrections and cancelErrors follow trades (DOC-STK).
  reply: [
    ['trades', 'trades'],
    ['quotes', 'quotes'],
    ['bars', 'bars'],
    ['updatedBars', 'updatedBars'],
    ['dailyBars', 'dailyBars'],
    ['statuses', 'statuses'],
    ['lulds', 'lulds'],
    ['corrections', 'trades'],
    ['cancelErrors', 'trades'],
    ['imbalances', 'imbalances'],
  ],
  validSymbols: VALID_SYMBOLS,
  invalidSymbols: INVALID_SYMBOLS,
  foreignChannels: FOREIGN_CHANNELS,
  wildcardRefusals: {},
  bulkSymbol: (i) => `S${i.toString(36).toUpperCase()}`,
  bulkScale: 1,
};

/** PROTOCOL-STREAMS §1: `BASE/QUOTE` pairs in upper case; the six crypto keys; no stock-only channels. */
export const CRYPTO_VOCABULARY: Vocabulary = {
  name: 'crypto',
  channels: ['trades', 'quotes', 'bars', 'updatedBars', 'dailyBars', 'orderbooks'],
  reply: [
    ['trades', 'trades'],
    ['quotes', 'quotes'],
    ['orderbooks', 'orderbooks'],
    ['bars', 'bars'],
    ['updatedBars', 'updatedBars'],
    ['dailyBars', 'dailyBars'],
  ],
  validSymbols: ['BTC/USD', 'ETH/USD', 'SOL/USD', 'ETH/BTC', 'AVAX/USD', 'USDT/USD', 'SOL/USDT', 'DOGE/USD', 'LINK/BTC', 'A1/B2', 'WIT/USD'],
  invalidSymbols: [
    'btc/usd',
    'BTC/usd',
    'BTCUSD',
    'BTC',
    'AAPL',
    '/USD',
    'BTC/',
    'BTC//USD',
    'BTC/USD/EUR',
    'BTC-USD',
    'BTC USD',
    ' BTC/USD',
    'BTC/USD ',
    'BTC/USD\n',
    'ABCDEFGHIJK/USD',
    '*/USD',
    'BTC/*',
    '**',
    'Ä/USD',
    '😀/USD',
    'BTC\\USD',
    '',
    '\u0000',
    'AAPL250117C00150000',
    '%2F',
    '../..',
  ],
  foreignChannels: ['statuses', 'lulds', 'imbalances', 'news', 'pricing', 'corrections', 'cancelErrors'],
  wildcardRefusals: {},
  bulkSymbol: (i) => `S${i.toString(36).toUpperCase()}/USD`,
  bulkScale: 1.6,
};

/**
 * PROTOCOL-STREAMS §2: OCC contracts (root of 1–6 letters, YYMMDD, C or P, strike × 1000 in 8
 * digits, no padding); trades and quotes only; `*` on quotes is 413.
 */
export const OPTION_VOCABULARY: Vocabulary = {
  name: 'options',
  channels: ['trades', 'quotes'],
  reply: [
    ['trades', 'trades'],
    ['quotes', 'quotes'],
  ],
  validSymbols: [
    'AAPL250117C00150000',
    'AAPL250117P00150000',
    'SPY250321C00500000',
    'SPXW250327P04925000',
    'TSLA250620C00250000',
    'NVDA250117C00120000',
    'GOOGL240315C00172500',
    'A991231P00000001',
    'WIT250117C00100000',
  ],
  invalidSymbols: [
    'aapl250117c00150000',
    'AAPL250117c00150000',
    'AAPL250117C0015000',
    'AAPL250117C001500000',
    'AAPL250117X00150000',
    'AAPL251317C00150000',
    'AAPL250132C00150000',
    'AAPL  250117C00150000',
    'AAPL250117C00150000 ',
    'ABCDEFG250117C00150000',
    '250117C00150000',
    'A1B250117C00150000',
    'AAPL2501C00150000',
    'AAPL250117C0015000A',
    'AAPL',
    'BTC/USD',
    '株250117C00150000',
    '',
    '*A',
    '\u0000',
  ],
  foreignChannels: ['bars', 'updatedBars', 'dailyBars', 'statuses', 'lulds', 'imbalances', 'orderbooks', 'news', 'pricing', 'corrections', 'cancelErrors'],
  wildcardRefusals: { quotes: 413 },
  bulkSymbol: (i) => `SPY250117C${String(i).padStart(8, '0')}`,
  bulkScale: 2.6,
};

/** PROTOCOL-STREAMS §3: one channel, `news`, of stock tickers (crypto as `BTCUSD`); everything else is foreign. */
export const NEWS_VOCABULARY: Vocabulary = {
  name: 'news',
  channels: ['news'],
  reply: [['news', 'news']],
  validSymbols: ['AAPL', 'MSFT', 'TSLA', 'NVDA', 'BRK.B', 'SPY', 'BTCUSD', 'ETHUSD', 'CRSR', 'VFS', 'WITN', 'WITM'],
  invalidSymbols: INVALID_SYMBOLS,
  foreignChannels: ['trades', 'quotes', 'bars', 'updatedBars', 'dailyBars', 'statuses', 'lulds', 'imbalances', 'orderbooks', 'pricing', 'corrections', 'cancelErrors'],
  wildcardRefusals: {},
  bulkSymbol: (i) => `S${i.toString(36).toUpperCase()}`,
  bulkScale: 1,
};
const UNKNOWN_KEYS = ['foo', 'Trades', 'TRADES', 'trade', 'quotes ', '', 'T', 'S', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', 'feed', 'key'];
const WRONG_ACTIONS: unknown[] = ['Subscribe', 'SUBSCRIBE', 'subscribe ', ' auth', 'listen', '', 'auth\u0000', 'unsub', 'ping', 1, 0, true, null, ['subscribe'], { subscribe: true }, 1.5];

/** A value that is not a list of strings (null is not among them: a null list is allowed). */
function wrongList(d: Dice): unknown {
  const depth = d.between(2, 6);
  let nested: unknown = ['AAPL'];
  for (let i = 0; i < depth; i++) nested = [nested];
  return d.pick<unknown>(['AAPL', 5, true, {}, { 0: 'AAPL' }, [1, 2], [null], [['AAPL']], [true], [{}], [[]], 1.5, [1e308], nested, ['AAPL', 5], 'AAPL,MSFT', -1]);
}

/** A random JSON-able value of bounded size. */
function randomValue(d: Dice, depth = 0): unknown {
  const r = d.int(depth > 3 ? 6 : 9);
  switch (r) {
    case 0:
      return null;
    case 1:
      return d.chance(0.5);
    case 2:
      return d.pick([0, -1, 1.5, 2 ** 53 + 2, -1e-300, 1e300, 42]);
    case 3:
      return d.text(d.int(12));
    case 4:
      return d.pick(VALID_SYMBOLS);
    case 5:
      return d.pick(INVALID_SYMBOLS);
    case 6:
    case 7:
      return Array.from({ length: d.int(4) }, () => randomValue(d, depth + 1));
    default: {
      const out: Record<string, unknown> = {};
      for (let i = d.int(4); i > 0; i--) out[d.chance(0.5) ? d.pick(UNKNOWN_KEYS) : d.text(d.between(1, 6))] = randomValue(d, depth + 1);
      return out;
    }
  }
}

/** Whether any string (key or value) of `value` holds an unpaired surrogate. */
function hasLoneSurrogate(value: unknown): boolean {
  const lone = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
  if (typeof value === 'string') return lone.test(value);
  if (Array.isArray(value)) return value.some(hasLoneSurrogate);
  if (value !== null && typeof value === 'object') return Object.entries(value).some(([k, v]) => lone.test(k) || hasLoneSurrogate(v));
  return false;
}

/** JSON text or msgpack bytes of `value`, chosen by the dice. */
function encoded(d: Dice, value: unknown): { data: Buffer; binary: boolean } {
  if (d.chance(0.5)) return { data: Buffer.from(JSON.stringify(value)), binary: false };
  return { data: Buffer.from(encode(value)), binary: true };
}

/** A subscribe/unsubscribe of random entries in the words of `v`, with the faults it holds. */
function changeRequest(d: Dice, v: Vocabulary): { body: Record<string, unknown>; meaning: Meaning; note: string } {
  const action = d.chance(0.6) ? 'subscribe' : 'unsubscribe';
  const body: Record<string, unknown> = { action };
  const faultOf = new Map<string, number[]>();
  /** codes also right for a key when nothing else is wrong */
  const tolerateOf = new Map<string, number[]>();
  const notes: string[] = [];
  for (let n = d.int(5); n > 0; n--) {
    const r = d.next();
    if (r < 0.42) {
      const channel = d.pick(v.channels);
      const list = Array.from({ length: d.between(1, 4) }, () => (d.chance(0.08) ? '*' : d.pick(v.validSymbols)));
      body[channel] = list;
      const refusal = v.wildcardRefusals[channel];
      if (refusal !== undefined && list.includes('*')) {
        // DOC-OPT: "You cannot subscribe to `*` for option quotes" (413). The sources say nothing of
        // unsubscribing it; the gateway decided on the same refusal (README, option streams).
        faultOf.set(channel, [refusal]);
        tolerateOf.delete(channel);
        notes.push(`${channel}: * refused`);
      } else {
        faultOf.set(channel, []);
        tolerateOf.delete(channel);
      }
    } else if (r < 0.52) {
      const channel = d.pick(v.channels);
      body[channel] = d.chance(0.5) ? null : [];
      faultOf.set(channel, []);
      tolerateOf.delete(channel);
    } else if (r < 0.62) {
      const channel = d.pick(v.channels);
      body[channel] = wrongList(d);
      faultOf.set(channel, [400]);
      tolerateOf.delete(channel);
      notes.push(`${channel}: wrong type`);
    } else if (r < 0.74) {
      const channel = d.pick(v.channels);
      const list = [d.pick(v.validSymbols), d.pick(v.invalidSymbols)];
      body[channel] = d.chance(0.5) ? list : list.reverse();
      faultOf.set(channel, [400]);
      tolerateOf.delete(channel);
      notes.push(`${channel}: invalid symbol`);
    } else if (r < 0.86) {
      const channel = d.pick(v.foreignChannels);
      const kind = d.int(3);
      if (kind === 0) {
        body[channel] = [d.pick(v.validSymbols)];
        faultOf.set(channel, [410]);
        notes.push(`${channel}: foreign channel`);
      } else if (kind === 1) {
        body[channel] = d.chance(0.5) ? null : [];
        faultOf.set(channel, []);
      } else {
        body[channel] = d.chance(0.5) ? wrongList(d) : [d.pick(v.invalidSymbols)];
        // A bad list on a channel the stream lacks: either answer is the contract's.
        faultOf.set(channel, [400, 410]);
        notes.push(`${channel}: foreign channel, bad list`);
      }
    } else {
      const key = d.pick(UNKNOWN_KEYS);
      body[key] = randomValue(d);
      faultOf.set(key, []);
    }
  }
  const faults = new Set<number>();
  const tolerated = new Set<number>();
  const lists: Partial<Record<Channel, string[]>> = {};
  for (const [key, value] of Object.entries(body)) {
    for (const code of faultOf.get(key) ?? []) faults.add(code);
    for (const code of tolerateOf.get(key) ?? []) tolerated.add(code);
    // (An unsubscribe answered with a reply drops what it names; `*` there was never held.)
    if ((v.channels as readonly string[]).includes(key) && Array.isArray(value) && (faultOf.get(key) ?? []).length === 0) lists[key as Channel] = value as string[];
  }
  const meaning: Meaning = { kind: 'change', action, faults: [...faults], lists, ...(tolerated.size > 0 ? { tolerated: [...tolerated] } : {}) };
  return { body, meaning, note: `${action}${notes.length > 0 ? ` (${notes.join('; ')})` : ''}` };
}

const VALID_REQUEST_TEXTS = [
  '{"action":"subscribe","trades":["AAPL"],"quotes":["MSFT","SPY"]}',
  '{"action":"unsubscribe","bars":["*"]}',
  '{"action":"auth","key":"alice","secret":"alice-secret"}',
  '{"action":"subscribe","trades":["AAPL"],"orderbooks":null,"news":[]}',
];

/** JSON that is broken on purpose: a proper prefix of an object, or a syntax error spliced in. */
function brokenJson(d: Dice): { text: string; note: string } {
  const source = d.pick(VALID_REQUEST_TEXTS);
  const r = d.int(3);
  if (r === 0) {
    const cut = d.between(0, source.length - 1);
    return { text: source.slice(0, cut), note: `prefix of ${cut} chars` };
  }
  if (r === 1) {
    const breakers = [
      ['"trades"', "'trades'"],
      ['"action"', 'action'],
      ['["AAPL"]', '["AAPL",]'],
      ['["AAPL"]', '[NaN]'],
      ['["AAPL"]', '[Infinity]'],
      ['["AAPL"]', '[undefined]'],
      ['{', '{/* c */'],
      ['"subscribe"', '"subscribe\n"'],
      ['"subscribe"', '"sub\\xscribe"'],
      ['"subscribe"', '"subscribe'],
      [':', '='],
      [',', ',,'],
      ['}', '}}'],
      ['}', '}x'],
      ['}', ',}'],
      ['"AAPL"', '"AAPL"  "MSFT"'],
      ['"AAPL"', '0x41'],
      ['"AAPL"', '"\\u12"'],
      ['"AAPL"', "'AAPL'"],
      ['"AAPL"', '-'],
      ['"AAPL"', '01'],
      ['"AAPL"', '1.'],
      ['"AAPL"', 'tru'],
    ] as const;
    const candidates = breakers.filter(([from]) => source.includes(from));
    const [from, to] = d.pick(candidates.length > 0 ? candidates : breakers.slice(12, 13));
    return { text: source.replace(from, to), note: `${JSON.stringify(from)} → ${JSON.stringify(to)}` };
  }
  const wholes = ['', ' ', 'undefined', 'NaN', '{', '}', '[', '"', '{"action"}', '{"action":}', '{"action":"subscribe"', '{}{}', '[]]', 'nul', '\u0000', '{"a":1}\u0000', "{'action':'auth'}", '{action:"auth"}'];
  const text = d.pick(wholes);
  return { text, note: `whole text ${JSON.stringify(text)}` };
}

/** Invalid UTF-8 sequences of several kinds. */
const BAD_UTF8: readonly (readonly number[])[] = [
  [0xc0, 0xaf], // overlong '/'
  [0xe0, 0x80, 0xaf], // overlong
  [0xed, 0xa0, 0x80], // an encoded surrogate
  [0xf8, 0x88, 0x80, 0x80, 0x80], // 5-byte form
  [0x80], // lone continuation
  [0xe2, 0x82], // truncated
  [0xf4, 0x90, 0x80, 0x80], // beyond U+10FFFF
  [0xff],
  [0xfe, 0xff],
  [0xc3],
];

function splice(base: Buffer, at: number, insert: readonly number[]): Buffer {
  return Buffer.concat([base.subarray(0, at), Buffer.from(insert), base.subarray(at)]);
}

/** msgpack that is malformed, or well-formed but not a request. */
function badMsgpack(d: Dice): Generated {
  const valid = Buffer.from(encode({ action: 'subscribe', trades: ['AAPL', 'MSFT'], quotes: ['SPY'] }));
  const noise = (data: Buffer, note: string): Generated => ({ data, binary: true, meaning: { kind: 'noise' }, note });
  const r = d.int(12);
  switch (r) {
    case 0: {
      const at = d.between(0, valid.length);
      return noise(splice(valid, at, [0xc1]), `reserved 0xc1 at ${at}`);
    }
    case 1: {
      const cut = d.between(1, valid.length - 1);
      return noise(valid.subarray(0, cut), `truncated to ${cut} of ${valid.length} bytes`);
    }
    case 2: {
      const header = d.pick([
        [0xd9, 0xff], // str8 255
        [0xda, 0xff, 0xff], // str16
        [0xdb, 0xff, 0xff, 0xff, 0xff], // str32
        [0xc4, 0xff], // bin8
        [0xc6, 0x7f, 0xff, 0xff, 0xff], // bin32
        [0xdc, 0xff, 0xff], // array16
        [0xdd, 0xff, 0xff, 0xff, 0xff], // array32 claiming 2^32-1 items
        [0xde, 0xff, 0xff], // map16
        [0xdf, 0xff, 0xff, 0xff, 0xff], // map32
        [0xc9, 0xff, 0xff, 0xff, 0xff, 0x05], // ext32
      ]);
      return noise(Buffer.concat([Buffer.from(header), d.bytes(d.int(16))]), `length header ${Buffer.from(header).toString('hex')} over the data`);
    }
    case 3: {
      // A map whose claimed entry count is larger than what follows.
      const data = Buffer.from(valid);
      data[0] = 0x80 | d.between(4, 15);
      return noise(data, `fixmap claiming ${(data[0] as number) & 0x0f} entries`);
    }
    case 4: {
      const type = d.between(-128, 127);
      const size = d.pick([1, 2, 4, 8, 16]);
      const head = { 1: 0xd4, 2: 0xd5, 4: 0xd6, 8: 0xd7, 16: 0xd8 }[size] as number;
      return noise(Buffer.concat([Buffer.from([head, type & 0xff]), d.bytes(size)]), `fixext${size} of type ${type} alone`);
    }
    case 5: {
      // The timestamp extension (type -1) with a size it does not have, or nanoseconds out of range.
      const forms = [
        Buffer.from([0xd4, 0xff, 0x01]),
        Buffer.from([0xd5, 0xff, 0x01, 0x02]),
        Buffer.from([0xc7, 0x03, 0xff, 1, 2, 3]),
        Buffer.from([0xd7, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
        Buffer.from([0xc7, 0x0c, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 1]),
      ];
      const ts = d.pick(forms);
      // As a symbol in a subscribe: the list holds something that is not a string.
      const data = Buffer.concat([Buffer.from([0x82, 0xa6, ...Buffer.from('action'), 0xa9, ...Buffer.from('subscribe'), 0xa6, ...Buffer.from('trades'), 0x91]), ts]);
      return d.chance(0.5)
        ? noise(ts, `timestamp ext ${ts.toString('hex')} alone`)
        : { data, binary: true, meaning: { kind: 'change', action: 'subscribe', faults: [400], lists: {} }, note: `timestamp ext ${ts.toString('hex')} as a symbol` };
    }
    case 6: {
      // Keys that are not strings: an array, a map, nil, a binary.
      const key = d.pick([[0x90], [0x80], [0xc0], [0xc4, 0x01, 0x41], [0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0], [0xc3]]);
      return noise(Buffer.from([0x81, ...key, 0xa9, ...Buffer.from('subscribe')]), `map key ${Buffer.from(key).toString('hex')}`);
    }
    case 7:
      return noise(Buffer.concat([valid, d.bytes(d.between(1, 8))]), 'a request followed by extra bytes');
    case 8: {
      // A bin or ext value where a symbol belongs.
      const value = d.pick([
        [0xc4, 0x04, ...Buffer.from('AAPL')],
        [0xd6, 0x05, ...Buffer.from('AAPL')],
        [0xca, 0x40, 0x49, 0x0f, 0xdb],
        [0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        [0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0],
      ]);
      const data = Buffer.from([0x82, 0xa6, ...Buffer.from('action'), 0xa9, ...Buffer.from('subscribe'), 0xa6, ...Buffer.from('quotes'), 0x91, ...value]);
      return { data, binary: true, meaning: { kind: 'change', action: 'subscribe', faults: [400], lists: {} }, note: `${Buffer.from(value).toString('hex')} as a symbol` };
    }
    case 9: {
      // Invalid UTF-8 inside a msgpack string: a binary frame is not checked by the WebSocket layer.
      const bad = d.pick(BAD_UTF8);
      const symbol = Buffer.from([0x41, ...bad]);
      const data = Buffer.from([0x82, 0xa6, ...Buffer.from('action'), 0xa9, ...Buffer.from('subscribe'), 0xa6, ...Buffer.from('trades'), 0x91, 0xa0 | symbol.length, ...symbol]);
      return { data, binary: true, meaning: { kind: 'change', action: 'subscribe', faults: [400], lists: {} }, note: `invalid UTF-8 ${symbol.toString('hex')} in a msgpack symbol` };
    }
    case 10: {
      const bad = d.pick(BAD_UTF8);
      const action = Buffer.from([...Buffer.from('sub'), ...bad]);
      return noise(Buffer.from([0x81, 0xa6, ...Buffer.from('action'), 0xa0 | action.length, ...action]), `invalid UTF-8 in a msgpack action`);
    }
    default:
      return noise(Buffer.from(d.pick([[0xc0], [0xc2], [0xc3], [0x00], [0x90], [0x80], [0xa0], [0xc4, 0x00], [0xff], [0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0]])), 'a single scalar');
  }
}

/** A deeply nested value: JSON or msgpack, arrays or maps, alone or as a channel list. */
function deepNesting(d: Dice, depth: number, v: Vocabulary): Generated {
  const r = d.int(5);
  if (r === 0) return { data: Buffer.from('['.repeat(depth) + ']'.repeat(depth)), binary: false, meaning: { kind: 'noise' }, note: `${depth} nested JSON arrays` };
  if (r === 1) return { data: Buffer.from('{"a":'.repeat(depth) + '1' + '}'.repeat(depth)), binary: false, meaning: { kind: 'noise' }, note: `${depth} nested JSON objects` };
  if (r === 2) return { data: Buffer.concat([Buffer.alloc(depth, 0x91), Buffer.from([0xc0])]), binary: true, meaning: { kind: 'noise' }, note: `${depth} nested msgpack arrays` };
  if (r === 3) {
    const level = Buffer.from([0x81, 0xa1, 0x61]);
    return { data: Buffer.concat([...Array.from({ length: depth }, () => level), Buffer.from([0xc0])]), binary: true, meaning: { kind: 'noise' }, note: `${depth} nested msgpack maps` };
  }
  const channel = v.channels[0] as Channel;
  const text = `{"action":"subscribe","${channel}":${'['.repeat(depth)}${JSON.stringify(v.validSymbols[0])}${']'.repeat(depth)}}`;
  return { data: Buffer.from(text), binary: false, meaning: { kind: 'change', action: 'subscribe', faults: [400], lists: {} }, note: `a ${channel} list nested ${depth} deep` };
}

/** Thousands of symbols: distinct (over any sane limit), one repeated, invalid, or numbers. */
function hugeArray(d: Dice, bytesTarget: number, v: Vocabulary): Generated {
  const channel = v.channels[0] as Channel;
  const r = d.int(4);
  const action: 'subscribe' | 'unsubscribe' = d.chance(0.8) ? 'subscribe' : 'unsubscribe';
  let list: unknown[];
  let meaning: Meaning;
  let note: string;
  if (r === 0 || r === 1) {
    const count = Math.max(1000, Math.floor(bytesTarget / (8 * v.bulkScale)));
    list = Array.from({ length: count }, (_, i) => v.bulkSymbol(i));
    meaning = { kind: 'change', action, faults: [], lists: { [channel]: list as string[] } };
    note = `${count} distinct symbols`;
  } else if (r === 2) {
    const symbol = d.pick(v.validSymbols);
    const count = Math.max(1000, Math.floor(bytesTarget / (symbol.length + 3)));
    list = Array.from({ length: count }, () => symbol);
    meaning = { kind: 'change', action, faults: [], lists: { [channel]: [symbol] } };
    note = `${symbol} ${count} times`;
  } else {
    const count = Math.max(1000, Math.floor(bytesTarget / 6));
    list = d.chance(0.5) ? Array.from({ length: count }, (_, i) => i) : Array.from({ length: count }, (_, i) => `s${i}`);
    meaning = { kind: 'change', action, faults: [400], lists: {} };
    note = `${count} ${typeof list[0] === 'number' ? 'numbers' : 'lower-case symbols'}`;
  }
  const { data, binary } = encoded(d, { action, [channel]: list });
  return { data, binary, meaning, note: `${action} ${note}` };
}

/** The auth message in shapes right and wrong. */
function authShape(d: Dice, goodKey: string, goodSecret: string): Generated {
  const wrongTypes: unknown[] = [5, null, true, ['alice'], { k: 'alice' }, 1.5];
  const r = d.int(5);
  let body: Record<string, unknown>;
  if (r === 0) body = { action: 'auth', key: d.pick(wrongTypes), secret: goodSecret };
  else if (r === 1) body = { action: 'auth', key: goodKey, secret: d.pick(wrongTypes) };
  else if (r === 2) body = d.chance(0.5) ? { action: 'auth', key: goodKey } : { action: 'auth' };
  else if (r === 3) body = { action: 'auth', key: d.pick([goodKey, '', 'mallory', goodKey.toUpperCase(), d.text(8)]), secret: d.pick(['', 'wrong', `${goodSecret} `, d.text(12)]) };
  else body = { action: 'auth', key: goodKey, secret: goodSecret, extra: randomValue(d) };
  const { data, binary } = encoded(d, body);
  // A lone surrogate (in `extra`) encodes to bytes that are not UTF-8: a malformed msgpack frame, not an auth.
  if (binary && hasLoneSurrogate(body)) return { data, binary, meaning: { kind: 'noise' }, note: `auth with a string that is not UTF-8 in msgpack` };
  return { data, binary, meaning: { kind: 'auth', key: body.key, secret: body.secret }, note: `auth ${JSON.stringify({ key: body.key, secret: body.secret === goodSecret ? '<good>' : body.secret })}` };
}

/** Keys named `__proto__`: JSON says they are plain keys, so they must not act as the request's prototype. */
function prototypeKeys(d: Dice, goodKey: string, goodSecret: string): Generated {
  const forms: Generated[] = [
    { data: Buffer.from('{"__proto__":{"action":"subscribe","trades":["AAPL"]}}'), binary: false, meaning: { kind: 'noise' }, note: 'action only inside "__proto__"' },
    {
      data: Buffer.from(`{"__proto__":{"action":"auth","key":${JSON.stringify(goodKey)},"secret":${JSON.stringify(goodSecret)}}}`),
      binary: false,
      meaning: { kind: 'noise' },
      note: 'a whole auth only inside "__proto__"',
    },
    { data: Buffer.from('{"action":"subscribe","__proto__":["AAPL"]}'), binary: false, meaning: { kind: 'change', action: 'subscribe', faults: [], lists: {} }, note: '"__proto__" as an unknown channel key' },
    { data: Buffer.from('{"action":"subscribe","constructor":{"prototype":{"trades":["AAPL"]}}}'), binary: false, meaning: { kind: 'change', action: 'subscribe', faults: [], lists: {} }, note: '"constructor" as an unknown key' },
    { data: Buffer.from([0x81, 0xa9, ...Buffer.from('__proto__'), 0x81, 0xa6, ...Buffer.from('action'), 0xa9, ...Buffer.from('subscribe')]), binary: true, meaning: { kind: 'noise' }, note: 'msgpack "__proto__" map' },
  ];
  return d.pick(forms);
}

/** A valid request with invalid UTF-8 spliced into one of its strings, sent as a text frame. */
function invalidUtf8Text(d: Dice): Generated {
  const source = Buffer.from(d.pick(VALID_REQUEST_TEXTS));
  const quotes: number[] = [];
  source.forEach((b, i) => {
    if (b === 0x22) quotes.push(i);
  });
  const at = (d.pick(quotes) as number) + 1;
  const bad = d.pick(BAD_UTF8);
  return { data: splice(source, at, bad), binary: false, meaning: { kind: 'invalid-utf8' }, note: `bytes ${Buffer.from(bad).toString('hex')} inside a string` };
}

export interface FamilyOptions {
  /** the credentials that work */
  readonly goodKey: string;
  readonly goodSecret: string;
  /** the gateway's MAX_MESSAGE_BYTES */
  readonly maxMessageBytes: number;
  /** the words of the stream the requests go to (default: stocks) */
  readonly vocabulary?: Vocabulary;
}

/** Every WebSocket family by name, each a generator of one case. */
export function wsFamilies(options: FamilyOptions): Record<string, (d: Dice) => Generated> {
  const { goodKey, goodSecret, maxMessageBytes } = options;
  const v = options.vocabulary ?? STOCK_VOCABULARY;
  return {
    'random text': (d) => {
      const length = d.chance(0.05) ? d.between(4100, 9000) : d.int(300);
      return { data: Buffer.from(d.text(length)), binary: false, meaning: { kind: 'noise' }, note: `${length} random code points` };
    },
    'random bytes as text': (d) => {
      const data = d.bytes(d.int(200) + 1);
      return { data, binary: false, meaning: isUtf8(data) ? { kind: 'noise' } : { kind: 'invalid-utf8' }, note: `${data.length} random bytes` };
    },
    'random bytes as binary': (d) => {
      const data = d.bytes(d.chance(0.03) ? d.between(4100, 8000) : d.int(200) + 1);
      return { data, binary: true, meaning: { kind: 'noise' }, note: `${data.length} random bytes` };
    },
    'broken JSON': (d) => {
      const { text, note } = brokenJson(d);
      return { data: Buffer.from(text), binary: false, meaning: { kind: 'noise' }, note };
    },
    'wrong shapes': (d) => {
      const r = d.int(4);
      let value: unknown;
      let note: string;
      if (r === 0) {
        do value = randomValue(d);
        while (value !== null && typeof value === 'object' && !Array.isArray(value));
        note = 'not an object';
      } else if (r === 1) {
        value = randomValue(d, 3);
        if (value === null || typeof value !== 'object' || Array.isArray(value)) value = { [d.pick(UNKNOWN_KEYS)]: value };
        note = 'an object without action';
      } else {
        const action = d.pick(WRONG_ACTIONS);
        value = { action, [d.pick(v.channels)]: [d.pick(v.validSymbols)] };
        note = `action ${JSON.stringify(action)}`;
      }
      return { ...encoded(d, value), meaning: { kind: 'noise' }, note };
    },
    'subscription changes': (d) => {
      const { body, meaning, note } = changeRequest(d, v);
      const frame = encoded(d, body);
      // A lone surrogate anywhere encodes to bytes that are not UTF-8: a malformed msgpack frame.
      if (frame.binary && hasLoneSurrogate(body)) return { ...frame, meaning: { ...meaning, faults: [400] }, note: `${note} (a string that is not UTF-8 in msgpack)` };
      return { ...frame, meaning, note };
    },
    'huge arrays': (d) => {
      const r = d.next();
      const target = r < 0.7 ? d.between(8000, maxMessageBytes - 2000) : r < 0.9 ? d.between(maxMessageBytes + 1000, 3 * maxMessageBytes) : d.between(4 * maxMessageBytes + 1000, 5 * maxMessageBytes);
      return hugeArray(d, target, v);
    },
    'deep nesting': (d) => deepNesting(d, d.pick([100, 1000, 1500, 10_000, 10_000, 100_000]), v),
    'bad msgpack': badMsgpack,
    'auth shapes': (d) => authShape(d, goodKey, goodSecret),
    'prototype keys': (d) => prototypeKeys(d, goodKey, goodSecret),
    'invalid UTF-8 text': invalidUtf8Text,
  };
}

/** `count` cases of one family, with 1 in 5 sent fragmented. */
export function wsCases(seed: number, family: string, generate: (d: Dice) => Generated, count: number, prefix: string): WsCase[] {
  const d = new Dice(seedFor(seed, `${prefix}:${family}`));
  return Array.from({ length: count }, (_, i) => {
    const g = generate(d);
    const fragments = d.chance(0.2) ? d.pick([2, 3, 5, 8, 64]) : 1;
    return { id: `${prefix}/${family}#${i}`, family, fragments, ...g };
  });
}

/** A short printable view of bytes for a failure message. */
export function preview(data: Buffer, binary: boolean): string {
  const head = data.subarray(0, 96);
  const shown = binary || !isUtf8(head) ? `hex ${head.toString('hex')}` : JSON.stringify(head.toString());
  return `${shown}${data.length > head.length ? ` … (${data.length} bytes)` : ''}`;
}
