import { encode as referenceEncode, ExtensionCodec } from '@msgpack/msgpack';
import t from 'tap';
import { ConversionError, ProtocolError } from '../../src/errors.js';
import { decodeFrame, decodeMsgpack, encodeFrame, joinFrame, mergeFrames, MessageUnit, splitFrame } from '../../src/protocol/frame.js';
import { ChannelSet } from '../../src/protocol/channel-set.js';
import { type Channel, CHANNELS, subscriptionReply } from '../../src/protocol/channels.js';
import { CRYPTO, NEWS, STOCKS, STREAM_KINDS } from '../../src/protocol/streams.js';
import { SubscriptionReplyCache } from '../../src/protocol/subscription-reply.js';
import { jsonToMsgpack, msgpackToJson, type WireValue } from '../../src/protocol/transcode.js';
import { Timestamp } from '../../src/protocol/timestamp.js';

const BIG_ID = 2n ** 53n + 1n; // the first integer a double cannot hold
const HUGE_ID = 2n ** 64n - 1n; // the largest uint64

/** A vendor frame with nanosecond timestamps, ids beyond 2^53, integral prices and an unknown type. */
const VENDOR_MESSAGES = [
  { T: 't', S: 'AAPL', i: BIG_ID, x: 'V', p: 127, s: 100, c: ['@', 'I'], t: Timestamp.parse('2024-01-02T14:30:00.123456789Z'), z: 'C' },
  { T: 't', S: 'MSFT', i: HUGE_ID, x: 'D', p: 126.55, s: 1, c: ['@'], t: Timestamp.parse('2021-02-22T15:51:44.208Z'), z: 'C' },
  { T: 'q', S: 'AMD', bx: 'U', bp: 87.66, bs: 1, ax: 'Q', ap: 87.68, as: 4, t: Timestamp.parse('2021-02-22T15:51:45.335689322Z'), c: ['R'], z: 'C' },
  { T: 'b', S: 'SPY', o: 388.985, h: 389.13, l: 388.975, c: 389, v: 49378, t: Timestamp.parse('2021-02-22T19:15:00Z'), n: 461, vw: 389.062639 },
  { T: 'c', S: 'AAPL', x: 'V', oi: BIG_ID, op: 127, os: 100, oc: [' '], ci: BIG_ID + 1n, cp: 127.01, cs: 100, cc: [' '], t: Timestamp.parse('2024-01-02T14:30:01.000000001Z'), z: 'C' },
  { T: 'zz', S: 'NEW', nested: { deep: [1, -2, -300000, 3.5, null, true, false, 'ünïcødé "quoted"'] }, t: Timestamp.parse('2024-01-02T14:30:00.5Z'), extra: -(2n ** 63n) },
];

t.test('a msgpack frame splits into units that re-join to the identical bytes', async (t) => {
  const frame = encodeFrame(VENDOR_MESSAGES, 'msgpack');
  const units = splitFrame(frame, 'msgpack');
  t.equal(units.length, VENDOR_MESSAGES.length);
  t.same(
    units.map((u) => [u.type, u.symbol]),
    VENDOR_MESSAGES.map((m) => [m.T, m.S]),
  );
  t.ok(joinFrame(units, 'msgpack').equals(frame), 're-joined bytes are identical');
  t.ok(joinFrame([units[2] as MessageUnit, units[0] as MessageUnit], 'msgpack').equals(encodeFrame([VENDOR_MESSAGES[2]!, VENDOR_MESSAGES[0]!], 'msgpack')), 'any subset re-batches to what encoding it directly gives');
});

t.test('a JSON frame splits into units that re-join to the identical text', async (t) => {
  const frame = encodeFrame(VENDOR_MESSAGES, 'json');
  const units = splitFrame(frame, 'json');
  t.same(units.map((u) => u.symbol), VENDOR_MESSAGES.map((m) => m.S));
  t.ok(joinFrame(units, 'json').equals(frame));
  const spaced = Buffer.from(' [ {"S" : "X", "T":"t" , "i": 1} ,\n{"T":"q"} ] ');
  const spacedUnits = splitFrame(spaced, 'json');
  t.same(spacedUnits.map((u) => [u.type, u.symbol]), [['t', 'X'], ['q', undefined]]);
  t.equal(joinFrame(spacedUnits, 'json').toString(), '[{"S" : "X", "T":"t" , "i": 1},{"T":"q"}]');
});

t.test('msgpack → JSON keeps nanoseconds, 64-bit ids as digits, and unknown types', async (t) => {
  const json = joinFrame(splitFrame(encodeFrame(VENDOR_MESSAGES, 'msgpack'), 'msgpack'), 'json').toString();
  t.match(json, '"i":9007199254740993,');
  t.match(json, '"i":18446744073709551615,');
  t.match(json, '"t":"2024-01-02T14:30:00.123456789Z"');
  t.match(json, '"t":"2021-02-22T15:51:44.208Z"');
  t.match(json, '"t":"2021-02-22T19:15:00Z"');
  t.match(json, '"T":"zz","S":"NEW","nested":{"deep":[1,-2,-300000,3.5,null,true,false,"ünïcødé \\"quoted\\""]}');
  t.match(json, '"extra":-9223372036854775808');
});

t.test('conversions are value-exact both ways and msgpack → JSON → msgpack is byte-exact', async (t) => {
  const msgpack = encodeFrame(VENDOR_MESSAGES, 'msgpack');
  const json = joinFrame(splitFrame(msgpack, 'msgpack'), 'json');
  const back = joinFrame(splitFrame(json, 'json'), 'msgpack');
  t.ok(back.equals(msgpack), 'msgpack → JSON → msgpack reproduces every byte (floats stay float64, T stays first)');
  const fromMsgpack = decodeFrame(msgpack, 'msgpack');
  const fromJson = decodeFrame(json, 'json');
  t.same(fromJson, fromMsgpack, 'both encodings decode to the same values');
  t.equal((fromJson[0] as { i: bigint }).i, BIG_ID, 'id beyond 2^53 survives exactly');
  t.ok((fromJson[0] as { t: Timestamp }).t.equals(new Timestamp(1704205800, 123456789)), 'nanoseconds survive');
  t.equal(JSON.stringify(JSON.parse(json.toString())), JSON.stringify(JSON.parse(encodeFrame(VENDOR_MESSAGES, 'json').toString())));
});

t.test('an integral price stays a float64 in msgpack, as the vendor sends it', async (t) => {
  const packed = jsonToMsgpack(Buffer.from('{"T":"t","S":"A","p":127,"s":100}'));
  const pAt = packed.indexOf(Buffer.from([0xa1, 0x70])) + 2; // after the key "p"
  t.equal(packed[pAt], 0xcb, 'p is float64');
  const sAt = packed.indexOf(Buffer.from([0xa1, 0x73])) + 2;
  t.equal(packed[sAt], 100, 's is a positive fixint');
});

t.test('JSON → msgpack puts T first for Go clients and parses data timestamps only', async (t) => {
  const packed = jsonToMsgpack(Buffer.from('{"S":"AAPL","t":"2024-01-02T14:30:00.000000001Z","T":"t","note":"2024-01-02T14:30:00Z"}'));
  t.same([...packed.subarray(0, 4)], [0x84, 0xa1, 0x54, 0xa1], 'a 4-entry map whose first key is "T"');
  const value = decodeMsgpack(packed) as Record<string, unknown>;
  t.same(Object.keys(value), ['T', 'S', 't', 'note']);
  t.ok(value.t instanceof Timestamp, 'the data timestamp became the extension');
  t.equal(value.note, '2024-01-02T14:30:00Z', 'other strings stay strings');
  const control = decodeMsgpack(jsonToMsgpack(Buffer.from('{"T":"error","code":400,"msg":"invalid syntax","t":"2024-01-02T14:30:00Z"}'))) as Record<string, unknown>;
  t.equal(control.t, '2024-01-02T14:30:00Z', 'control messages carry no timestamps to convert');
  const bad = decodeMsgpack(jsonToMsgpack(Buffer.from('{"T":"t","t":"not a time"}'))) as Record<string, unknown>;
  t.equal(bad.t, 'not a time', 'a timestamp field that is not one is carried as text');
});

t.test('frames from an independent msgpack encoder split and convert the same way', async (t) => {
  const codec = new ExtensionCodec();
  codec.register({ type: -1, encode: (v: unknown) => (v instanceof Timestamp ? v.toMsgpackExtData() : null), decode: () => null });
  const frame = Buffer.from(referenceEncode(VENDOR_MESSAGES.slice(0, 4), { extensionCodec: codec, useBigInt64: true }));
  const units = splitFrame(frame, 'msgpack');
  t.same(units.map((u) => u.symbol), ['AAPL', 'MSFT', 'AMD', 'SPY']);
  t.ok(joinFrame(units, 'msgpack').equals(frame), 'the vendor bytes are forwarded untouched');
  t.same(decodeFrame(joinFrame(units, 'json'), 'json'), decodeFrame(frame, 'msgpack'));
});

t.test('each unit converts once and caches the result', async (t) => {
  const [unit] = splitFrame(encodeFrame([VENDOR_MESSAGES[0]!], 'msgpack'), 'msgpack');
  const first = unit!.encoded('json');
  t.equal(unit!.encoded('json'), first, 'the same Buffer object comes back');
  t.equal(unit!.byteLength('json'), first.length);
});

t.test('malformed frames throw ProtocolError, never anything else', async (t) => {
  const msgpackCases: [string, Buffer][] = [
    ['empty', Buffer.alloc(0)],
    ['not an array', Buffer.from([0x81, 0xa1, 0x54, 0xa1, 0x74])],
    ['truncated', encodeFrame(VENDOR_MESSAGES, 'msgpack').subarray(0, 40)],
    ['never-used byte', Buffer.from([0x91, 0xc1])],
    ['trailing bytes', Buffer.concat([encodeFrame([{ T: 'q' }], 'msgpack'), Buffer.from([0x00])])],
    ['array claims more elements than present', Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff])],
  ];
  for (const [name, data] of msgpackCases) t.throws(() => splitFrame(data, 'msgpack'), ProtocolError, `msgpack: ${name}`);
  const jsonCases = ['', '{}', '[', '[{"T":"t",}]', '[{"T":"t"}', '[{"T":"t"}] x', '[1,]', '[nul]', '["\u0001"]', '[01]', '[1.]', '[-]', '["\\x"]', '[' .repeat(100) + ']'.repeat(100)];
  for (const text of jsonCases) t.throws(() => splitFrame(Buffer.from(text), 'json'), ProtocolError, `json: ${JSON.stringify(text.slice(0, 20))}`);
});

t.test('values one encoding cannot hold raise ConversionError', async (t) => {
  const nan = Buffer.from([0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0]);
  t.throws(() => msgpackToJson(nan), ConversionError, 'NaN has no JSON form');
  t.throws(() => msgpackToJson(Buffer.from([0xc4, 0x01, 0x00])), ConversionError, 'binary has no JSON form');
  t.throws(() => msgpackToJson(Buffer.from([0xd4, 0x05, 0x00])), ConversionError, 'unknown extension has no JSON form');
  t.throws(() => msgpackToJson(Buffer.from([0x81, 0x01, 0x02])), ConversionError, 'integer map keys have no JSON form');
  t.throws(() => jsonToMsgpack(Buffer.from('{"T":"t","i":18446744073709551616}')), ConversionError, '2^64 does not fit');
  const deep = Buffer.concat([Buffer.alloc(100, 0x91), Buffer.from([0x01])]);
  t.throws(() => msgpackToJson(deep), ProtocolError, 'hostile nesting is refused, not recursed into');
});

t.test('JSON number edge cases convert exactly', async (t) => {
  const value = decodeMsgpack(jsonToMsgpack(Buffer.from('[0,-0,1e3,-1.5e-7,9007199254740993,-9223372036854775808,255,256,65536,4294967296,-33,-129,-32769]'))) as unknown[];
  t.same(value, [0, -0, 1000, -1.5e-7, 9007199254740993n, -(2n ** 63n), 255, 256, 65536, 4294967296, -33, -129, -32769]);
  t.ok(Object.is(value[1], -0), '-0 keeps its sign');
  t.equal(msgpackToJson(jsonToMsgpack(Buffer.from('[-0,1.5,4294967296]'))), '[-0,1.5,4294967296]');
});

t.test('the cached subscription reply is byte for byte the general encoder’s, as channels change, for every stream kind', async (t) => {
  for (const kind of STREAM_KINDS) {
    const set = new ChannelSet();
    for (const encoding of ['json', 'msgpack'] as const) {
      const cache = new SubscriptionReplyCache(encoding, kind);
      const expected = (): Buffer => encodeFrame([subscriptionReply(set.toLists(), kind) as WireValue], encoding);
      t.ok(cache.frame(set).equals(expected()), `${kind.name} ${encoding}: the empty set`);
      const symbols = Array.from({ length: 300 }, (_, i) => `S${i}.B`);
      for (const [i, channel] of CHANNELS.entries()) {
        for (const symbol of symbols.slice(0, 20 * (i + 1))) set.add(channel, symbol);
        cache.changed(channel);
        t.ok(cache.frame(set).equals(expected()), `${kind.name} ${encoding}: after ${channel} changed`);
      }
      const [first, second] = kind.channels as [Channel, Channel | undefined];
      set.add(first, '*');
      if (second !== undefined) set.delete(second, 'S0.B');
      cache.changed(first);
      if (second !== undefined) cache.changed(second);
      t.ok(cache.frame(set).equals(expected()), `${kind.name} ${encoding}: after a wildcard and a removal`);
      t.equal(cache.frame(set), cache.frame(set), `${kind.name} ${encoding}: unchanged, the same buffer`);
      for (const channel of CHANNELS) for (const symbol of [...set.symbols(channel)]) set.delete(channel, symbol);
      cache.clear();
      t.ok(cache.frame(set).equals(expected()), `${kind.name} ${encoding}: emptied`);
    }
  }
  const crypto = decodeFrame(new SubscriptionReplyCache('msgpack', CRYPTO).frame(new ChannelSet({ bars: ['BTC/USD'], news: ['AAPL'] })), 'msgpack');
  t.same(crypto, [{ T: 'subscription', trades: [], quotes: [], orderbooks: [], bars: ['BTC/USD'], updatedBars: [], dailyBars: [] }], 'a crypto reply has the six crypto keys only');
  t.same(Object.keys(crypto[0] as object), ['T', 'trades', 'quotes', 'orderbooks', 'bars', 'updatedBars', 'dailyBars'], 'in the vendor’s order');
});

t.test('a news frame is cut with each item’s symbols list, in both encodings and from an independent encoder', async (t) => {
  const items = [
    { T: 'n', id: 24_918_784, headline: 'h', symbols: ['AAPL', 'MSFT'], created_at: '2024-01-01T00:00:00Z', content: '', source: 'benzinga' },
    { T: 'n', id: 2, headline: 'none', symbols: [] },
    { T: 'n', id: 3, symbols: ['TSLA', 7, 'NVDA'], S: 'AAPL' },
    { T: 'n', id: 4, symbols: 'AAPL' },
  ];
  const expected = [['AAPL', 'MSFT'], [], ['TSLA', 'NVDA'], []];
  for (const encoding of ['json', 'msgpack'] as const) {
    const units = splitFrame(encodeFrame(items as WireValue[], encoding, NEWS), encoding, NEWS);
    t.same(units.map((u) => u.symbols), expected, `${encoding}: the string items of each list`);
    t.same(encodeFrame(items as WireValue[], encoding, NEWS).equals(joinFrame(units, encoding)), true, `${encoding}: bytes untouched`);
  }
  // str8 keys, as a non-minimal encoder may write them
  const foreign = Buffer.from(referenceEncode([{ T: 'n', symbols: ['AMD'] }]));
  t.same(splitFrame(foreign, 'msgpack', NEWS)[0]?.symbols, ['AMD']);
  const str8 = Buffer.from([0x91, 0x82, 0xa1, 0x54, 0xa1, 0x6e, 0xd9, 0x07, ...Buffer.from('symbols'), 0x91, 0xa3, ...Buffer.from('AMD')]);
  t.same(splitFrame(str8, 'msgpack', NEWS)[0]?.symbols, ['AMD'], 'a str8 `symbols` key');
  // On a stock stream a `symbols` field is just a field: its units name `S` only.
  const stock = splitFrame(Buffer.from('[{"T":"t","S":"AAPL","symbols":["MSFT"]}]'), 'json', STOCKS);
  t.same(stock[0]?.symbols, ['AAPL']);
});

t.test('mergeFrames joins frames into one holding their messages in order, in both encodings', async (t) => {
  const a = VENDOR_MESSAGES.slice(0, 2);
  const b = VENDOR_MESSAGES.slice(2, 5);
  for (const encoding of ['msgpack', 'json'] as const) {
    const parts = [
      { frame: encodeFrame(a, encoding), messages: a.length },
      { frame: encodeFrame([], encoding), messages: 0 },
      { frame: encodeFrame(b, encoding), messages: b.length },
    ];
    const merged = mergeFrames(parts, encoding);
    t.equal(merged.messages, 5, `${encoding}: the count`);
    t.same(decodeFrame(merged.frame, encoding), decodeFrame(encodeFrame([...a, ...b], encoding), encoding), `${encoding}: the messages in order`);
    t.same(
      splitFrame(merged.frame, encoding).map((u) => u.encoded(encoding)),
      [...splitFrame(parts[0]!.frame, encoding), ...splitFrame(parts[2]!.frame, encoding)].map((u) => u.encoded(encoding)),
      `${encoding}: each message's bytes as they were`,
    );
  }
  const one = encodeFrame(a, 'msgpack');
  t.equal(mergeFrames([{ frame: one, messages: 2 }], 'msgpack').frame, one, 'a single frame is sent as it is');
});
