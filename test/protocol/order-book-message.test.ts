import t from 'tap';
import { decodeFrame, encodeUnits, type Encoding, joinFrame, MessageUnit } from '../../src/protocol/frame.js';
import { MsgpackWriter } from '../../src/protocol/msgpack.js';
import { type Book, bookResetUnit, readBookMessage } from '../../src/protocol/order-book-message.js';
import { CRYPTO } from '../../src/protocol/streams.js';
import { EXT_TIMESTAMP, Timestamp } from '../../src/protocol/timestamp.js';
import type { WireValue } from '../../src/protocol/transcode.js';

const t0 = Timestamp.parse('2024-03-12T10:27:48.858228144Z');
const ENCODINGS: Encoding[] = ['json', 'msgpack'];

/** A vendor unit of `message` in `encoding`, as the simulator (and so the vendor's Go encoder) writes it. */
const vendorUnit = (message: WireValue, encoding: Encoding): MessageUnit => encodeUnits([message], encoding, CRYPTO)[0]!;

const decoded = (unit: MessageUnit, encoding: Encoding): Record<string, unknown> => decodeFrame(joinFrame([unit], encoding), encoding, CRYPTO)[0] as Record<string, unknown>;

/** The book a vendor reset of these levels describes, read back from a vendor unit. */
function bookOf(message: { S: string; t?: Timestamp; b: { p: number; s: number }[]; a: { p: number; s: number }[] }, encoding: Encoding): Book {
  const read = readBookMessage(vendorUnit({ T: 'o', ...message, r: true }, encoding))!;
  return { symbol: message.S, t: read.t, bids: read.bids, asks: read.asks };
}

for (const encoding of ENCODINGS) {
  t.test(`${encoding}: an order-book message reads as its levels, reset flag and t`, async (t) => {
    const update = readBookMessage(vendorUnit({ T: 'o', S: 'BTC/USD', t: t0, b: [{ p: 60000, s: 0.5 }, { p: 59999.5, s: 0 }], a: [] }, encoding))!;
    t.same(update.bids, [{ p: 60000, s: 0.5 }, { p: 59999.5, s: 0 }], 'bids in the vendor’s order, s: 0 kept as the removal it is');
    t.same(update.asks, [], 'an unchanged side is empty');
    t.equal(update.reset, false, 'no r: an update');
    t.equal(update.t?.encoding, encoding, 't is kept in the encoding it came in');
    const reset = readBookMessage(vendorUnit({ T: 'o', S: 'BTC/USD', t: t0, b: [], a: [{ p: 60001.25, s: 1.000000001 }], r: true }, encoding))!;
    t.equal(reset.reset, true);
    t.same(reset.asks, [{ p: 60001.25, s: 1.000000001 }], 'fractional sizes exactly');
    t.equal(readBookMessage(vendorUnit({ T: 'o', S: 'BTC/USD', t: t0, b: [], a: [], r: false }, encoding))!.reset, false, 'an explicit r: false is an update');
    const sparse = readBookMessage(vendorUnit({ T: 'o', S: 'BTC/USD', b: [{ p: 1, s: 2 }] }, encoding))!;
    t.same([sparse.t, sparse.asks], [undefined, []], 'a missing t or side is none');
  });

  t.test(`${encoding}: a message that is not an order book's shape reads as undefined`, async (t) => {
    for (const b of ['x', [{ p: 1 }], [{ p: '1', s: 2 }], [7]] as WireValue[]) {
      t.equal(readBookMessage(vendorUnit({ T: 'o', S: 'BTC/USD', t: t0, b, a: [] }, encoding)), undefined, JSON.stringify(b));
    }
    t.equal(readBookMessage(vendorUnit(['not', 'a', 'map'], encoding)), undefined, 'not a map');
  });

  t.test(`${encoding}: a written reset has the bytes the vendor would send, in both encodings`, async (t) => {
    const message = { S: 'BTC/USD', t: t0, b: [{ p: 60000, s: 0.5 }, { p: 59990, s: 2 }], a: [{ p: 60010.5, s: 0.000038 }] };
    const reset = bookResetUnit(bookOf(message, encoding), 'o', CRYPTO, encoding);
    const vendor = vendorUnit({ T: 'o', ...message, r: true }, encoding);
    t.equal(reset.sourceEncoding, encoding, 'written in the encoding of its t');
    t.same([reset.type, reset.symbol, reset.kind], ['o', 'BTC/USD', CRYPTO], 'routed like a vendor unit');
    for (const to of ENCODINGS) {
      t.ok(reset.encoded(to).equals(vendor.encoded(to)), `the same ${to} bytes as the vendor's reset`);
    }
    const json = reset.encoded('json').toString();
    t.match(json, '"t":"2024-03-12T10:27:48.858228144Z"', 'JSON: RFC 3339 with every nanosecond');
    t.match(json, '{"p":60000,"s":0.5}', 'JSON: numbers as the vendor writes them');
    const packed = decoded(reset, 'msgpack');
    t.ok(packed.t instanceof Timestamp && packed.t.equals(t0), 'msgpack: t is the timestamp extension');
    const float64 = Buffer.alloc(9, 0xcb);
    float64.writeDoubleBE(60000, 1);
    t.ok(reset.encoded('msgpack').includes(float64), 'msgpack: an integral price stays float64');
  });

  t.test(`${encoding}: a reset always has both sides and r: true, and no t when the vendor never sent one`, async (t) => {
    const reset = bookResetUnit({ symbol: 'ETH/BTC', t: undefined, bids: [], asks: [] }, 'o', CRYPTO, encoding);
    t.same(decoded(reset, 'json'), { T: 'o', S: 'ETH/BTC', b: [], a: [], r: true });
    t.same(decoded(reset, 'msgpack'), { T: 'o', S: 'ETH/BTC', b: [], a: [], r: true });
  });
}

t.test('t is kept exactly as the vendor wrote it, even in a form the gateway would not choose', async (t) => {
  // JSON: trailing zeros that the canonical form trims.
  const text = '{"T":"o","S":"BTC/USD","t":"2024-03-12T10:27:48.100Z","b":[{"p":1.5,"s":2}],"a":[],"r":true}';
  const jsonRead = readBookMessage(new MessageUnit('json', Buffer.from(text), 'o', 'BTC/USD', CRYPTO))!;
  const jsonReset = bookResetUnit({ symbol: 'BTC/USD', t: jsonRead.t, bids: jsonRead.bids, asks: jsonRead.asks }, 'o', CRYPTO, 'msgpack');
  t.equal(jsonReset.encoded('json').toString(), text, 'the JSON reset is the vendor’s text, t token and all');

  // msgpack: the 12-byte timestamp96 form for a time the 8-byte form could hold.
  const ext = new Uint8Array(12);
  new DataView(ext.buffer).setUint32(0, t0.nanoseconds);
  new DataView(ext.buffer).setBigInt64(4, BigInt(t0.seconds));
  const writer = new MsgpackWriter();
  writer.mapHeader(6);
  for (const [key, write] of [
    ['T', () => writer.str('o')],
    ['S', () => writer.str('BTC/USD')],
    ['t', () => writer.ext(EXT_TIMESTAMP, ext)],
    ['b', () => writer.arrayHeader(0)],
    ['a', () => writer.arrayHeader(0)],
    ['r', () => writer.bool(true)],
  ] as const) {
    writer.str(key);
    write();
  }
  const packed = writer.finish();
  const msgpackRead = readBookMessage(new MessageUnit('msgpack', packed, 'o', 'BTC/USD', CRYPTO))!;
  const msgpackReset = bookResetUnit({ symbol: 'BTC/USD', t: msgpackRead.t, bids: [], asks: [] }, 'o', CRYPTO, 'json');
  t.ok(msgpackReset.encoded('msgpack').equals(packed), 'the msgpack reset is the vendor’s bytes, timestamp96 and all');
});
