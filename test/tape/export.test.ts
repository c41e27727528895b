/**
 * `tickmux tape ls` and `tickmux tape export` (DESIGN.md §12) as a user runs them, from `dist/`,
 * on a tape the real recorder wrote: stocks (JSON and msgpack frames, a vendor outage), crypto (a
 * segment per frame, each after the first with a book checkpoint) and news. What they print is
 * compared with the vendor's JSON written out by hand, so ids past 2^53 and nanoseconds are
 * checked digit for digit.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import t, { type Test } from 'tap';
import { systemClock } from '../../src/clock.js';
import { type Encoding, encodeFrame, splitFrame } from '../../src/protocol/frame.js';
import { CRYPTO, NEWS, STOCKS, type StreamKind } from '../../src/protocol/streams.js';
import { Timestamp } from '../../src/protocol/timestamp.js';
import type { WireValue } from '../../src/protocol/transcode.js';
import { csvFields } from '../../src/tape/export-csv.js';
import { withLastField } from '../../src/tape/export-ndjson.js';
import { nsText } from '../../src/tape/replay-window.js';
import { StreamRecorder, type StreamRecorderOptions } from '../../src/tape/stream-recorder.js';
import { spawnNode } from '../helpers/processes.js';

const BIG = 9007199254740993n; // 2^53 + 1: a double would round it
const ts = (nanos: number): Timestamp => new Timestamp(1765031400, nanos); // 2025-12-06T14:30:00Z + nanos

/** A recorder on the real clock and disk, its link live; `startNs`: its first segment's start. */
async function startRecorder(t: Test, dir: string, stream: string, kind: StreamKind, options: Partial<StreamRecorderOptions> = {}): Promise<{ recorder: StreamRecorder; startNs: bigint }> {
  const recorder = new StreamRecorder({
    dir: join(dir, stream),
    stream,
    kind,
    segmentBytes: 256 * 1024 * 1024,
    fsyncMs: 200,
    queueBytes: 64 * 1024 * 1024,
    clock: systemClock,
    logger: pino({ level: 'silent' }),
    ...options,
  });
  t.teardown(() => recorder.stop());
  await recorder.start();
  const startNs = recorder.lastNs;
  recorder.link(true, { state: 'live' });
  return { recorder, startNs };
}

/** Records one vendor frame of `messages`; returns its receive time. */
function record(recorder: StreamRecorder, messages: WireValue[], encoding: Encoding, kind: StreamKind): bigint {
  const bytes = encodeFrame(messages, encoding, kind);
  const data = messages.filter((m) => !['success', 'error', 'subscription'].includes((m as { T: string }).T)).length;
  recorder.frame(bytes, encoding, data);
  // The books a crypto segment's checkpoint holds, as the hub feeds them.
  if (kind === CRYPTO) recorder.books(splitFrame(bytes, encoding, kind));
  return recorder.lastNs;
}

interface Recorded {
  dir: string;
  /** receive times */
  stocks: { start: bigint; f1: bigint; down: bigint; up: bigint; f2: bigint; f3: bigint };
  crypto: { start: bigint; a: bigint; b: bigint; c: bigint };
  news: { start: bigint; n: bigint };
}

const tape = {} as Recorded;

t.before(async () => {
  const dir = t.testdir();
  const { recorder: stocks, startNs: start } = await startRecorder(t, dir, 'v2/iex', STOCKS);
  record(stocks, [{ T: 'success', msg: 'authenticated' }], 'json', STOCKS);
  const f1 = record(
    stocks,
    [
      { T: 't', S: 'AAPL', i: BIG, x: 'V', p: 187.5, s: 100, c: ['@', 'I'], t: ts(123456789), z: 'C' },
      { T: 'q', S: 'MSFT', bx: 'K', bp: 410.1, bs: 3, ax: 'Q', ap: 410.2, as: 5, c: ['R'], t: ts(120000000), z: 'C' },
      { T: 't', S: 'MSFT', i: BIG + 1n, x: 'D', p: 410.15, s: 7, c: ['@'], t: ts(130000001), z: 'C' },
    ],
    'json',
    STOCKS,
  );
  stocks.link(false, { state: 'backoff', reason: 'vendor closed' });
  const down = stocks.lastNs;
  stocks.link(true, { state: 'live' });
  const up = stocks.lastNs;
  const f2 = record(stocks, [{ T: 't', S: 'AAPL', i: BIG + 2n, x: 'V', p: 187.25, s: 50, c: ['@'], t: ts(200000000), z: 'C' }], 'json', STOCKS);
  // The link's encoding is msgpack on most gateways: its frames export as the same lossless JSON.
  const f3 = record(
    stocks,
    [
      { T: 't', S: 'AAPL', i: 2n ** 63n - 1n, x: 'V', p: 188, s: 1, c: ['@'], t: ts(300000009), z: 'C' },
      { T: 'q', S: 'AAPL', bx: 'K', bp: 187.9, bs: 2, ax: 'Q', ap: 188.1, as: 4, c: ['R'], t: ts(300000010), z: 'C' },
    ],
    'msgpack',
    STOCKS,
  );
  await stocks.flushed();
  await stocks.stop();

  // A segment per frame: from the second on, each starts with a checkpoint of the BTC/USD book.
  const { recorder: crypto, startNs: cryptoStart } = await startRecorder(t, dir, 'v1beta3/crypto/us', CRYPTO, { segmentBytes: 1 });
  const a = record(
    crypto,
    [
      { T: 't', S: 'BTC/USD', p: 64000.5, s: 0.25, t: ts(1), i: 2n ** 62n + 1n, tks: 'B' },
      { T: 'o', S: 'BTC/USD', t: ts(5), b: [{ p: 64000, s: 1.5 }], a: [{ p: 64001, s: 2 }], r: true },
    ],
    'msgpack',
    CRYPTO,
  );
  const b = record(
    crypto,
    [
      { T: 'q', S: 'ETH/USD', bp: 3000.1, bs: 1.25, ap: 3000.2, as: 0.5, t: ts(7) },
      { T: 'o', S: 'BTC/USD', t: ts(9), b: [{ p: 64000, s: 0 }], a: [] },
    ],
    'msgpack',
    CRYPTO,
  );
  const c = record(crypto, [{ T: 't', S: 'ETH/USD', p: 3000.15, s: 2, t: ts(11), i: 2n ** 62n + 2n, tks: 'S' }], 'msgpack', CRYPTO);
  await crypto.flushed();
  await crypto.stop();

  const { recorder: newsRecorder, startNs: newsStart } = await startRecorder(t, dir, 'v1beta1/news', NEWS);
  const n = record(
    newsRecorder,
    [
      { T: 'n', id: 24918784, headline: 'Apple, Microsoft "rally"', created_at: ts(0), symbols: ['AAPL', 'MSFT'], source: 'benzinga' },
      { T: 'n', id: 24918785, headline: 'Tesla recalls', created_at: ts(0), symbols: ['TSLA'], source: 'benzinga', author: 'Newsdesk' },
      { T: 'n', id: 24918786, headline: 'Markets close', created_at: ts(0), symbols: [], source: 'benzinga' },
    ],
    'json',
    NEWS,
  );
  await newsRecorder.flushed();
  await newsRecorder.stop();
  Object.assign(tape, { dir, stocks: { start, f1, down, up, f2, f3 }, crypto: { start: cryptoStart, a, b, c }, news: { start: newsStart, n } });
});

interface Run {
  code: number | string;
  stdout: string;
  stderr: string;
}

async function tickmux(t: Test, args: string[]): Promise<Run> {
  const proc = spawnNode(t, ['dist/src/cli.js', 'tape', ...args]);
  const code = await proc.exited;
  return { code, stdout: proc.stdout(), stderr: proc.stderr() };
}

/** `tape export` of a window of the test tape. */
function exportArgs(stream: string, from: bigint, to: bigint, ...rest: string[]): string[] {
  return ['export', '--tape', tape.dir, '--stream', stream, '--from', nsText(from), '--to', nsText(to), ...rest];
}

const lines = (text: string): string[] => text.split('\n').filter((l) => l !== '');
const recv = (ns: bigint): string => `"recv":"${nsText(ns)}"`;

// The vendor's JSON of each recorded message, by hand.
const T1 = '{"T":"t","S":"AAPL","i":9007199254740993,"x":"V","p":187.5,"s":100,"c":["@","I"],"t":"2025-12-06T14:30:00.123456789Z","z":"C"';
const Q1 = '{"T":"q","S":"MSFT","bx":"K","bp":410.1,"bs":3,"ax":"Q","ap":410.2,"as":5,"c":["R"],"t":"2025-12-06T14:30:00.12Z","z":"C"';
const T2 = '{"T":"t","S":"MSFT","i":9007199254740994,"x":"D","p":410.15,"s":7,"c":["@"],"t":"2025-12-06T14:30:00.130000001Z","z":"C"';
const T3 = '{"T":"t","S":"AAPL","i":9007199254740995,"x":"V","p":187.25,"s":50,"c":["@"],"t":"2025-12-06T14:30:00.2Z","z":"C"';
const T4 = '{"T":"t","S":"AAPL","i":9223372036854775807,"x":"V","p":188,"s":1,"c":["@"],"t":"2025-12-06T14:30:00.300000009Z","z":"C"';
const Q2 = '{"T":"q","S":"AAPL","bx":"K","bp":187.9,"bs":2,"ax":"Q","ap":188.1,"as":4,"c":["R"],"t":"2025-12-06T14:30:00.30000001Z","z":"C"';

t.test('tape export --format ndjson prints every data message of the window as the vendor’s JSON with its receive time last, ids and nanoseconds exact', async (t) => {
  const { stocks } = tape;
  const run = await tickmux(t, exportArgs('v2/iex', stocks.start, stocks.f3, '--format', 'ndjson'));
  t.equal(run.code, 0, run.stderr);
  t.equal(run.stderr, '');
  t.same(
    lines(run.stdout),
    [`${T1},${recv(stocks.f1)}}`, `${Q1},${recv(stocks.f1)}}`, `${T2},${recv(stocks.f1)}}`, `${T3},${recv(stocks.f2)}}`, `${T4},${recv(stocks.f3)}}`, `${Q2},${recv(stocks.f3)}}`],
    'the vendor’s reply (a control message) and the marks left out; the msgpack frame as the same lossless JSON',
  );
  const recvs = lines(run.stdout).map((l) => Timestamp.parse(/"recv":"([^"]+)"}$/.exec(l)![1]!).toEpochNanos());
  t.ok(recvs.every((ns, i) => i === 0 || ns >= recvs[i - 1]!), 'in recorded order');
});

t.test('tape export --trades AAPL keeps only AAPL’s trades; --quotes "*" every quote', async (t) => {
  const { stocks } = tape;
  const aapl = await tickmux(t, exportArgs('v2/iex', stocks.start, stocks.f3, '--trades', 'AAPL', '--format', 'ndjson'));
  t.equal(aapl.code, 0, aapl.stderr);
  t.same(lines(aapl.stdout), [`${T1},${recv(stocks.f1)}}`, `${T3},${recv(stocks.f2)}}`, `${T4},${recv(stocks.f3)}}`]);
  const quotes = await tickmux(t, exportArgs('v2/iex', stocks.start, stocks.f3, '--quotes', '*', '--trades', 'NVDA,MSFT', '--format', 'ndjson'));
  t.equal(quotes.code, 0, quotes.stderr);
  t.same(lines(quotes.stdout), [`${Q1},${recv(stocks.f1)}}`, `${T2},${recv(stocks.f1)}}`, `${Q2},${recv(stocks.f3)}}`], 'repeated and comma-separated channel options add up');
});

t.test('a window keeps only the records received within it, both ends included', async (t) => {
  const { stocks } = tape;
  const one = await tickmux(t, exportArgs('v2/iex', stocks.f2, stocks.f2, '--format', 'ndjson'));
  t.equal(one.code, 0, one.stderr);
  t.same(lines(one.stdout), [`${T3},${recv(stocks.f2)}}`], 'from = to = one frame’s receive time: that frame alone');
  const between = await tickmux(t, exportArgs('v2/iex', stocks.f1 + 1n, stocks.f3 - 1n, '--format', 'ndjson'));
  t.same(lines(between.stdout), [`${T3},${recv(stocks.f2)}}`], 'a nanosecond inside either end leaves out the frames at the ends');
  const ms = await tickmux(t, ['export', '--tape', tape.dir, '--stream', 'v2/iex', '--from', '0', '--to', String(stocks.f1 / 1_000_000n + 1n), '--format', 'ndjson']);
  t.equal(ms.code, 0, ms.stderr);
  t.same(lines(ms.stdout).slice(0, 3), [`${T1},${recv(stocks.f1)}}`, `${Q1},${recv(stocks.f1)}}`, `${T2},${recv(stocks.f1)}}`], 'Unix milliseconds work as instants too');
});

t.test('tape export --marks adds the link’s down and up marks at their place', async (t) => {
  const { stocks } = tape;
  const run = await tickmux(t, exportArgs('v2/iex', stocks.f1, stocks.f2, '--format', 'ndjson', '--marks', '--trades', 'AAPL'));
  t.equal(run.code, 0, run.stderr);
  t.same(lines(run.stdout), [
    `${T1},${recv(stocks.f1)}}`,
    `{"T":"mark","event":"upstream_down","state":"backoff","reason":"vendor closed",${recv(stocks.down)}}`,
    `{"T":"mark","event":"upstream_up","session":"${stocks.up}",${recv(stocks.up)}}`,
    `${T3},${recv(stocks.f2)}}`,
  ]);
});

t.test('tape export --format csv --out DIR writes a file per message type: a header in the first message’s order, then recv; values exactly as in the vendor’s JSON', async (t) => {
  const { stocks, crypto } = tape;
  const out = t.testdir();
  const run = await tickmux(t, exportArgs('v2/iex', stocks.start, stocks.f3, '--format', 'csv', '--out', out));
  t.equal(run.code, 0, run.stderr);
  t.same((await readdir(out)).sort(), ['q.csv', 't.csv']);
  t.equal(
    await readFile(join(out, 't.csv'), 'utf8'),
    [
      'T,S,i,x,p,s,c,t,z,recv',
      `t,AAPL,9007199254740993,V,187.5,100,"[""@"",""I""]",2025-12-06T14:30:00.123456789Z,C,${nsText(stocks.f1)}`,
      `t,MSFT,9007199254740994,D,410.15,7,"[""@""]",2025-12-06T14:30:00.130000001Z,C,${nsText(stocks.f1)}`,
      `t,AAPL,9007199254740995,V,187.25,50,"[""@""]",2025-12-06T14:30:00.2Z,C,${nsText(stocks.f2)}`,
      `t,AAPL,9223372036854775807,V,188,1,"[""@""]",2025-12-06T14:30:00.300000009Z,C,${nsText(stocks.f3)}`,
      '',
    ].join('\n'),
  );
  t.equal(
    await readFile(join(out, 'q.csv'), 'utf8'),
    [
      'T,S,bx,bp,bs,ax,ap,as,c,t,z,recv',
      `q,MSFT,K,410.1,3,Q,410.2,5,"[""R""]",2025-12-06T14:30:00.12Z,C,${nsText(stocks.f1)}`,
      `q,AAPL,K,187.9,2,Q,188.1,4,"[""R""]",2025-12-06T14:30:00.30000001Z,C,${nsText(stocks.f3)}`,
      '',
    ].join('\n'),
  );
  t.match(run.stderr, `wrote ${join(out, 't.csv')}: 4 rows\n`, 'it says what it wrote, on stderr');

  const books = t.testdir();
  const cryptoRun = await tickmux(t, exportArgs('v1beta3/crypto/us', crypto.a, crypto.c, '--format', 'csv', '--out', books));
  t.equal(cryptoRun.code, 0, cryptoRun.stderr);
  t.same((await readdir(books)).sort(), ['o.csv', 'q.csv', 't.csv']);
  t.equal(
    await readFile(join(books, 'o.csv'), 'utf8'),
    [
      'T,S,t,b,a,r,recv',
      `o,BTC/USD,2025-12-06T14:30:00.000000005Z,"[{""p"":64000,""s"":1.5}]","[{""p"":64001,""s"":2}]",true,${nsText(crypto.a)}`,
      `o,BTC/USD,2025-12-06T14:30:00.000000009Z,"[{""p"":64000,""s"":0}]","[]",,${nsText(crypto.b)}`,
      '',
    ].join('\n'),
    'the recorded book messages only: the checkpoints that start the later segments are not exported; a field a message lacks is an empty cell',
  );
  t.equal(
    await readFile(join(books, 't.csv'), 'utf8'),
    [
      'T,S,p,s,t,i,tks,recv',
      `t,BTC/USD,64000.5,0.25,2025-12-06T14:30:00.000000001Z,4611686018427387905,B,${nsText(crypto.a)}`,
      `t,ETH/USD,3000.15,2,2025-12-06T14:30:00.000000011Z,4611686018427387906,S,${nsText(crypto.c)}`,
      '',
    ].join('\n'),
    'across three segments, 64-bit ids exact',
  );
});

t.test('csv goes to stdout when the channels give one message type; several need --out DIR (exit 2)', async (t) => {
  const { stocks } = tape;
  const news = tape.news.n;
  const quotes = await tickmux(t, exportArgs('v2/iex', stocks.start, stocks.f3, '--quotes', 'MSFT', '--format', 'csv'));
  t.equal(quotes.code, 0, quotes.stderr);
  t.equal(quotes.stdout, `T,S,bx,bp,bs,ax,ap,as,c,t,z,recv\nq,MSFT,K,410.1,3,Q,410.2,5,"[""R""]",2025-12-06T14:30:00.12Z,C,${nsText(stocks.f1)}\n`);

  const items = await tickmux(t, exportArgs('v1beta1/news', news, news, '--news', 'AAPL', '--format', 'csv'));
  t.equal(items.code, 0, items.stderr);
  t.equal(
    items.stdout,
    `T,id,headline,created_at,symbols,source,recv\nn,24918784,"Apple, Microsoft ""rally""",2025-12-06T14:30:00Z,"[""AAPL"",""MSFT""]",benzinga,${nsText(news)}\n`,
    'a news item routed by its symbols list; a string with a comma or quote quoted, as CSV does',
  );

  const every = await tickmux(t, exportArgs('v1beta1/news', news, news, '--news', '*', '--format', 'csv'));
  t.equal(every.code, 0, every.stderr);
  t.same(lines(every.stdout), [
    'T,id,headline,created_at,symbols,source,recv',
    `n,24918784,"Apple, Microsoft ""rally""",2025-12-06T14:30:00Z,"[""AAPL"",""MSFT""]",benzinga,${nsText(news)}`,
    `n,24918785,Tesla recalls,2025-12-06T14:30:00Z,"[""TSLA""]",benzinga,${nsText(news)}`,
    `n,24918786,Markets close,2025-12-06T14:30:00Z,"[]",benzinga,${nsText(news)}`,
  ]);
  t.equal(
    every.stderr,
    'tickmux tape: 1 n messages had fields the header lacks (author), left out of their rows; --format ndjson keeps them\n',
    'a field beyond the first message’s is reported, not lost silently',
  );

  const trades = await tickmux(t, exportArgs('v2/iex', stocks.start, stocks.f3, '--trades', 'AAPL', '--format', 'csv'));
  t.equal(trades.code, 2);
  t.equal(trades.stderr, 'tickmux tape: csv writes one file per message type and this selection has 3 (t, c, x): add --out DIR\n', 'stock trades come with corrections and cancels');
  t.equal(trades.stdout, '');
});

t.test('tape export --news routes by each item’s symbols list; "*" takes the items about nothing in particular too', async (t) => {
  const news = tape.news.n;
  const all = await tickmux(t, exportArgs('v1beta1/news', news, news, '--news', '*', '--format', 'ndjson'));
  t.equal(all.code, 0, all.stderr);
  t.same(
    lines(all.stdout).map((l) => /"id":(\d+)/.exec(l)![1]),
    ['24918784', '24918785', '24918786'],
  );
  const tsla = await tickmux(t, exportArgs('v1beta1/news', news, news, '--news', 'TSLA,MSFT', '--format', 'ndjson'));
  t.same(lines(tsla.stdout), [
    `{"T":"n","id":24918784,"headline":"Apple, Microsoft \\"rally\\"","created_at":"2025-12-06T14:30:00Z","symbols":["AAPL","MSFT"],"source":"benzinga",${recv(news)}}`,
    `{"T":"n","id":24918785,"headline":"Tesla recalls","created_at":"2025-12-06T14:30:00Z","symbols":["TSLA"],"source":"benzinga","author":"Newsdesk",${recv(news)}}`,
  ]);
});

t.test('tape ls --json shows each stream’s range, bytes, messages, segments and the vendor outage as a gap', async (t) => {
  const { stocks, crypto, news } = tape;
  const run = await tickmux(t, ['ls', '--tape', tape.dir, '--json']);
  t.equal(run.code, 0, run.stderr);
  t.equal(lines(run.stdout).length, 1, 'one JSON object');
  const listing = JSON.parse(run.stdout) as { streams: { stream: string; bytes: number; segments: number }[] };
  const bytesOf = async (stream: string): Promise<{ bytes: number; segments: number }> => {
    const names = (await readdir(join(tape.dir, stream))).filter((n) => n.endsWith('.tape'));
    const sizes = await Promise.all(names.map(async (n) => (await stat(join(tape.dir, stream, n))).size));
    return { bytes: sizes.reduce((a, b) => a + b, 0), segments: names.length };
  };
  t.same(listing, {
    streams: [
      { stream: 'v1beta1/news', from: nsText(news.start), to: nsText(news.n), ...(await bytesOf('v1beta1/news')), messages: 3, gaps: [] },
      { stream: 'v1beta3/crypto/us', from: nsText(crypto.start), to: nsText(crypto.c), ...(await bytesOf('v1beta3/crypto/us')), messages: 5, gaps: [] },
      {
        stream: 'v2/iex',
        from: nsText(stocks.start),
        to: nsText(stocks.f3),
        ...(await bytesOf('v2/iex')),
        messages: 6,
        gaps: [{ from: nsText(stocks.down), to: nsText(stocks.up), reason: 'vendor link backoff: vendor closed' }],
      },
    ],
  });
  t.equal(listing.streams[1]?.segments, 4, 'crypto: the first segment, then one per frame');
});

t.test('tape ls prints a table: a row per stream and its gaps under it', async (t) => {
  const { stocks } = tape;
  const run = await tickmux(t, ['ls', '--tape', tape.dir]);
  t.equal(run.code, 0, run.stderr);
  const [header, ...rows] = lines(run.stdout);
  t.match(header, /^STREAM +FROM +TO +BYTES +MESSAGES +SEGMENTS$/);
  t.equal(rows.length, 4, 'three streams and one gap');
  t.match(rows[0], /^v1beta1\/news +\S+Z +\S+Z +\d+ +3 +\d+$/);
  t.match(rows[1], /^v1beta3\/crypto\/us +\S+Z +\S+Z +\d+ +5 +4$/);
  t.match(rows[2], new RegExp(`^v2/iex +${nsText(stocks.start)} +${nsText(stocks.f3)} +\\d+ +6 +\\d+$`));
  t.match(rows[3], new RegExp(`^ {2}gap +${nsText(stocks.down)} +${nsText(stocks.up)} +vendor link backoff: vendor closed$`));
  t.equal(rows[3]!.indexOf(nsText(stocks.down)), rows[2]!.indexOf(nsText(stocks.start)), 'the gap’s times in the FROM and TO columns');

  const empty = await tickmux(t, ['ls', '--tape', t.testdir()]);
  t.equal(empty.code, 0);
  t.match(empty.stdout, /^no stream recorded in \S+\n$/);
  t.same(JSON.parse((await tickmux(t, ['ls', '--tape', t.testdir(), '--json'])).stdout), { streams: [] });
});

t.test('bad command lines are one line on stderr with exit 2; a tape that is not there, exit 1', async (t) => {
  const { stocks } = tape;
  const from = nsText(stocks.start);
  const to = nsText(stocks.f3);
  const missing = join(tape.dir, 'nowhere');
  const cases: [string[], number, string][] = [
    [['ls'], 2, 'ls needs --tape DIR (a TAPE_DIR a gateway recorded; default $TAPE_DIR)'],
    [['ls', '--tape', missing], 1, `no tape folder at ${missing}`],
    [['rewind'], 2, 'unknown tape command "rewind": tape ls or tape export'],
    [['export', '--stream', 'v2/iex', '--from', from, '--to', to, '--format', 'ndjson'], 2, 'export needs --tape DIR (a TAPE_DIR a gateway recorded; default $TAPE_DIR)'],
    [['export', '--tape', tape.dir, '--stream', 'v9/nope', '--from', from, '--to', to, '--format', 'ndjson'], 2, 'unknown stream "v9/nope"; known: v2/iex, v2/sip, v2/delayed_sip, v2/test, v1beta1/boats, v1beta1/overnight, v1beta3/crypto/us, v1beta3/crypto/us-1, v1beta3/crypto/eu-1, v1beta1/indicative, v1beta1/opra, v1beta1/news'],
    [['export', '--tape', tape.dir, '--stream', 'v2/iex', '--to', to, '--format', 'ndjson'], 2, 'export needs --from T and --to T (RFC 3339 up to nanoseconds, or Unix ms)'],
    [['export', '--tape', tape.dir, '--stream', 'v2/iex', '--from', from, '--format', 'ndjson'], 2, 'export needs --from T and --to T (RFC 3339 up to nanoseconds, or Unix ms)'],
    [['export', '--tape', tape.dir, '--stream', 'v2/iex', '--from', 'yesterday', '--to', to, '--format', 'ndjson'], 2, 'from must be an RFC 3339 time (up to nanoseconds, e.g. 2026-12-06T14:30:00.123456789Z) or Unix milliseconds; got "yesterday"'],
    [['export', '--tape', tape.dir, '--stream', 'v2/iex', '--from', to, '--to', from, '--format', 'ndjson'], 2, 'to is before from'],
    [['export', '--tape', tape.dir, '--stream', 'v2/iex', '--from', from, '--to', to], 2, 'export needs --format ndjson or --format csv'],
    [['export', '--tape', tape.dir, '--stream', 'v2/iex', '--from', from, '--to', to, '--format', 'xml'], 2, '--format must be ndjson or csv; got "xml"'],
    [['export', '--tape', tape.dir, '--stream', 'v2/iex', '--from', from, '--to', to, '--format', 'ndjson', '--orderbooks', 'BTC/USD'], 2, 'v2/iex has no --orderbooks; its channels: --trades, --quotes, --bars, --updated-bars, --daily-bars, --statuses, --lulds, --imbalances'],
    [['export', '--tape', tape.dir, '--stream', 'v2/iex', '--from', from, '--to', to, '--format', 'ndjson', '--trades', 'aapl'], 2, '--trades "aapl" is not a stocks symbol'],
    [['export', '--tape', tape.dir, '--stream', 'v2/iex', '--from', from, '--to', to, '--format', 'ndjson', '--out', missing], 2, '--out is for --format csv (ndjson goes to stdout)'],
    [['export', '--tape', tape.dir, '--stream', 'v2/iex', '--from', from, '--to', to, '--format', 'csv', '--out', missing, '--marks'], 2, '--marks is for --format ndjson (a mark is no row of any csv table)'],
    [['export', '--tape', missing, '--stream', 'v2/iex', '--from', from, '--to', to, '--format', 'ndjson'], 1, `no tape folder at ${missing}`],
    [['export', '--tape', tape.dir, '--stream', 'v2/sip', '--from', from, '--to', to, '--format', 'ndjson'], 1, `${tape.dir} has no tape of v2/sip; it holds v1beta1/news, v1beta3/crypto/us, v2/iex`],
  ];
  const runs = await Promise.all(cases.map(async ([args, code, message]) => ({ args, code, message, run: await tickmux(t, args) })));
  for (const { args, code, message, run } of runs) {
    t.equal(run.code, code, args.join(' '));
    t.equal(run.stderr, `tickmux tape: ${message}\n`, 'one line saying why');
    t.equal(run.stdout, '');
  }
  const flag = await tickmux(t, ['ls', '--tape', tape.dir, '--colour']);
  t.equal(flag.code, 2);
  t.match(flag.stderr, /^tickmux tape: Unknown option '--colour'.*\n$/, 'an unknown option: node’s one line');
});

t.test('tape export into a closed stdout (| head) ends with exit 0 and no stack trace', async (t) => {
  const dir = t.testdir();
  const { recorder } = await startRecorder(t, dir, 'v2/sip', STOCKS);
  let n = 0;
  for (let frame = 0; frame < 100; frame++) {
    const batch: WireValue[] = [];
    for (let k = 0; k < 200; k++, n++) batch.push({ T: 't', S: 'AAPL', i: BIG + BigInt(n), x: 'V', p: 187.5, s: 100, c: ['@'], t: ts(n), z: 'C' });
    record(recorder, batch, 'msgpack', STOCKS);
  }
  await recorder.flushed();
  await recorder.stop();
  const proc = spawnNode(t, ['dist/src/cli.js', 'tape', 'export', '--tape', dir, '--stream', 'v2/sip', '--from', '0', '--to', nsText(recorder.lastNs), '--format', 'ndjson']);
  await proc.line(/"S":"AAPL"/);
  proc.child.stdout?.destroy();
  t.equal(await proc.exited, 0, 'a closed stdout ends the export with exit 0');
  t.notMatch(proc.stderr(), /EPIPE|Error/, 'without a stack trace');
  t.ok(lines(proc.stdout()).length < n, 'it stopped before the end: the reader was gone');
});

t.test('the csv fields of a message are the text of its JSON: strings as they read, numbers and lists as written', async (t) => {
  const fields = csvFields(Buffer.from('{"T":"s","S":"BRK.B","i":18446744073709551615,"p":1.50,"e":1e3,"sc":"halt, \\"news\\"","m":"line\\nbreak","u":"\\u00e9","n":null,"ok":false,"o":{"a":[1, 2]}}'));
  t.same(
    [...(fields ?? [])],
    [
      ['T', 's'],
      ['S', 'BRK.B'],
      ['i', '18446744073709551615'],
      ['p', '1.50'],
      ['e', '1e3'],
      ['sc', '"halt, ""news"""'],
      ['m', '"line\nbreak"'],
      ['u', 'é'],
      ['n', 'null'],
      ['ok', 'false'],
      ['o', '"{""a"":[1, 2]}"'],
    ],
  );
  t.equal(csvFields(Buffer.from('[1]')), undefined, 'not an object: no fields');
  t.same(withLastField(Buffer.from('{}'), '"recv":"x"')?.map(String), ['{', '"recv":"x"}\n'], 'an empty object gets the field without a comma');
  t.equal(withLastField(Buffer.from('7'), '"recv":"x"'), undefined, 'not an object: no line');
});

t.test('tape ls and export read $TAPE_DIR when --tape is not given', async (t) => {
  const proc = spawnNode(t, ['dist/src/cli.js', 'tape', 'ls', '--json'], { TAPE_DIR: tape.dir });
  t.equal(await proc.exited, 0);
  t.same((JSON.parse(proc.stdout()) as { streams: { stream: string }[] }).streams.map((s) => s.stream), ['v1beta1/news', 'v1beta3/crypto/us', 'v2/iex']);
});
