import { decode as referenceDecode, encode as referenceEncode } from '@msgpack/msgpack';
import t from 'tap';
import { ProtocolError } from '../../src/errors.js';
import { readShortString, readString, skipValue } from '../../src/protocol/msgpack.js';

/** One value in each msgpack form, the ones the reference encoder does not choose written by hand. */
function everyForm(): [string, Buffer][] {
  const hand = (bytes: number[], payload = 0): Buffer => Buffer.concat([Buffer.from(bytes), Buffer.alloc(payload, 0x61)]);
  return [
    ['positive fixint', Buffer.from(referenceEncode(5))],
    ['negative fixint', Buffer.from(referenceEncode(-3))],
    ['nil', Buffer.from(referenceEncode(null))],
    ['true', Buffer.from(referenceEncode(true))],
    ['uint8', Buffer.from(referenceEncode(200))],
    ['uint16', Buffer.from(referenceEncode(60_000))],
    ['uint32', Buffer.from(referenceEncode(4_000_000_000))],
    ['uint64', Buffer.from(referenceEncode(2n ** 64n - 1n, { useBigInt64: true }))],
    ['int8', Buffer.from(referenceEncode(-100))],
    ['int16', Buffer.from(referenceEncode(-30_000))],
    ['int32', Buffer.from(referenceEncode(-2_000_000_000))],
    ['int64', Buffer.from(referenceEncode(-(2n ** 63n), { useBigInt64: true }))],
    ['float32', Buffer.from(referenceEncode(1.5, { forceFloat32: true }))],
    ['float64', Buffer.from(referenceEncode(1.1))],
    ['fixstr', Buffer.from(referenceEncode('AAPL'))],
    ['str8', Buffer.from(referenceEncode('x'.repeat(200)))],
    ['str16', Buffer.from(referenceEncode('x'.repeat(300)))],
    ['str32', hand([0xdb, 0, 0, 0, 3], 3)],
    ['bin8', Buffer.from(referenceEncode(new Uint8Array(3)))],
    ['bin16', Buffer.from(referenceEncode(new Uint8Array(300)))],
    ['bin32', hand([0xc6, 0, 0, 0, 2], 2)],
    ['fixext1', hand([0xd4, 1], 1)],
    ['fixext2', hand([0xd5, 1], 2)],
    ['fixext4', hand([0xd6, 1], 4)],
    ['fixext8', hand([0xd7, 0xff], 8)],
    ['fixext16', hand([0xd8, 1], 16)],
    ['ext8', hand([0xc7, 3, 1], 3)],
    ['ext16', hand([0xc8, 0, 3, 1], 3)],
    ['ext32', hand([0xc9, 0, 0, 0, 3, 1], 3)],
    ['fixarray', Buffer.from(referenceEncode([1, 'a', [2, { k: null }]]))],
    ['array16', Buffer.from(referenceEncode(Array.from({ length: 20 }, (_, i) => i)))],
    ['array32', hand([0xdd, 0, 0, 0, 2, 0x01, 0xa1, 0x62])],
    ['fixmap', Buffer.from(referenceEncode({ T: 't', S: 'AAPL', c: ['@', 'I'], p: 127.5 }))],
    ['map16', Buffer.from(referenceEncode(Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`k${i}`, i]))))],
    ['map32', hand([0xdf, 0, 0, 0, 1, 0xa1, 0x54, 0xa1, 0x74])],
  ];
}

t.test('skipValue finds the end of a value in every form, and throws ProtocolError on every truncation', async (t) => {
  const trailer = Buffer.from([0xc0, 0xc0]);
  for (const [name, value] of everyForm()) {
    t.doesNotThrow(() => referenceDecode(value, { useBigInt64: true, extensionCodec: undefined }), `${name} is well-formed`);
    t.equal(skipValue(Buffer.concat([value, trailer]), 0), value.length, name);
    t.equal(skipValue(Buffer.concat([trailer, value]), trailer.length), trailer.length + value.length, `${name} at an offset`);
    for (let cut = 0; cut < value.length; cut++) {
      t.throws(() => skipValue(value.subarray(0, cut), 0), ProtocolError, `${name} cut to ${cut} bytes`);
    }
  }
  t.throws(() => skipValue(Buffer.from([0x92, 0x01, 0xc1]), 0), ProtocolError, 'the never-used byte 0xc1');
  t.throws(() => skipValue(Buffer.from([0xdf, 0xff, 0xff, 0xff, 0xff, 0x01]), 0), ProtocolError, 'a map claiming 2^32 - 1 pairs');
});

t.test('readShortString reads the same text as readString however often it is read', async (t) => {
  const texts = ['t', 'q', 'AAPL', 'BRK.B', 'BTC/USD', 'AAPL240119C00150000', 'ünï', ''];
  for (const text of texts) {
    const buf = Buffer.from(referenceEncode(text));
    t.equal(readShortString(buf, 0), readString(buf, 0), JSON.stringify(text));
    t.equal(readShortString(buf, 0), text);
  }
  const str8 = Buffer.from([0xd9, 4, ...Buffer.from('AAPL')]); // a non-minimal encoder's str8
  t.equal(readShortString(str8, 0), 'AAPL');
  t.equal(readShortString(Buffer.from(referenceEncode(7)), 0), undefined, 'not a string');
  t.equal(readShortString(Buffer.from(referenceEncode(['x', 'AAPL'])), 3), 'AAPL', 'read again, from elsewhere');
  t.throws(() => readShortString(Buffer.from([0xa4, 0x41, 0x41]), 0), ProtocolError, 'a truncated string');
});
