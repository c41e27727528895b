import t from 'tap';
import { OrderBooks } from '../../src/hub/order-books.js';
import { decodeFrame, encodeUnits, type Encoding, joinFrame, MessageUnit } from '../../src/protocol/frame.js';
import { CRYPTO, NEWS, OPTIONS, STOCKS } from '../../src/protocol/streams.js';
import { Timestamp } from '../../src/protocol/timestamp.js';
import type { WireValue } from '../../src/protocol/transcode.js';
import { captureLogs } from '../helpers/log-capture.js';

const at = (n: number): Timestamp => new Timestamp(1710239268, n);
type Level = { p: number; s: number };

const units = (messages: WireValue[], encoding: Encoding = 'msgpack'): MessageUnit[] => encodeUnits(messages, encoding, CRYPTO);
const reset = (S: string, n: number, b: Level[], a: Level[]): WireValue => ({ T: 'o', S, t: at(n), b, a, r: true });
const update = (S: string, n: number, b: Level[], a: Level[]): WireValue => ({ T: 'o', S, t: at(n), b, a });

/** Books for crypto with their logs captured. */
function books(): { books: OrderBooks; logs: () => string[] } {
  const { logger, lines } = captureLogs('info');
  return { books: OrderBooks.for(CRYPTO, logger)!, logs: lines };
}

/** The reset a client would get for `symbol`, decoded, or undefined when the book is unknown. */
function resetOf(books: OrderBooks, symbol: string): Record<string, unknown> | undefined {
  const [unit] = books.resets(symbol);
  return unit === undefined ? undefined : (decodeFrame(joinFrame([unit], 'msgpack'), 'msgpack', CRYPTO)[0] as Record<string, unknown>);
}

t.test('only a kind with an order-book channel has books', async (t) => {
  const { logger } = captureLogs('info');
  t.ok(OrderBooks.for(CRYPTO, logger), 'crypto');
  for (const kind of [STOCKS, OPTIONS, NEWS]) t.equal(OrderBooks.for(kind, logger), undefined, kind.name);
});

for (const encoding of ['msgpack', 'json'] as const) {
  t.test(`${encoding}: a reset replaces the book, an update sets levels and s: 0 removes one; bids best first, asks best first`, async (t) => {
    const { books: b } = books();
    b.apply(units([reset('BTC/USD', 1, [{ p: 100, s: 1 }, { p: 99, s: 2 }], [{ p: 101, s: 3 }, { p: 102, s: 4 }])], encoding));
    b.apply(
      units(
        [
          update('BTC/USD', 2, [{ p: 99.5, s: 0.25 }, { p: 100, s: 0 }], []),
          { T: 't', S: 'BTC/USD', p: 100, s: 1, t: at(3), i: 1, tks: 'B' },
          update('BTC/USD', 4, [], [{ p: 100.5, s: 0.5 }, { p: 102, s: 4.5 }, { p: 105, s: 0 }]),
        ],
        encoding,
      ),
    );
    t.same(resetOf(b, 'BTC/USD'), {
      T: 'o',
      S: 'BTC/USD',
      t: at(4),
      b: [{ p: 99.5, s: 0.25 }, { p: 99, s: 2 }],
      a: [{ p: 100.5, s: 0.5 }, { p: 101, s: 3 }, { p: 102, s: 4.5 }],
      r: true,
    }, 'levels set and removed, sides in the vendor’s order, the latest t, a reset');
    t.equal(b.resets('BTC/USD')[0]!.sourceEncoding, encoding, 'written in the encoding the vendor used');

    b.apply(units([reset('BTC/USD', 5, [{ p: 50, s: 1 }], [])], encoding));
    t.same(resetOf(b, 'BTC/USD'), { T: 'o', S: 'BTC/USD', t: at(5), b: [{ p: 50, s: 1 }], a: [], r: true }, 'a new reset replaces every level');
  });
}

t.test('a book is unknown until its reset: updates before it are ignored', async (t) => {
  const { books: b } = books();
  b.apply(units([update('ETH/USD', 1, [{ p: 10, s: 1 }], [])]));
  t.same(b.resets('ETH/USD'), [], 'no book from updates alone');
  t.equal(b.size, 0);
  b.apply(units([reset('ETH/USD', 2, [], [{ p: 11, s: 1 }]), update('ETH/USD', 3, [{ p: 10, s: 1 }], [])]));
  t.same(resetOf(b, 'ETH/USD')?.b, [{ p: 10, s: 1 }], 'updates after the reset count');
  t.same(b.resets('SOL/USD'), [], 'another symbol is still unknown');
});

t.test('an update without t keeps the last t', async (t) => {
  const { books: b } = books();
  b.apply(units([reset('BTC/USD', 1, [], []), { T: 'o', S: 'BTC/USD', b: [{ p: 1, s: 1 }], a: [] }]));
  t.same(resetOf(b, 'BTC/USD')?.t, at(1));
});

t.test('* gives every known book; clear() forgets them all', async (t) => {
  const { books: b } = books();
  b.apply(units([reset('BTC/USD', 1, [{ p: 1, s: 1 }], []), reset('ETH/USD', 1, [], [{ p: 2, s: 1 }]), update('SOL/USD', 1, [], [])]));
  t.same(b.resets('*').map((u) => u.symbol), ['BTC/USD', 'ETH/USD'], 'the known books only');
  b.clear();
  t.same([b.size, b.resets('*'), b.resets('BTC/USD')], [0, [], []], 'nothing known after a clear');
  b.apply(units([update('BTC/USD', 2, [{ p: 3, s: 1 }], [])]));
  t.same(b.resets('BTC/USD'), [], 'and an update alone does not bring a book back');
});

t.test('clients joining an unchanged book share one reset; a change writes a new one', async (t) => {
  const { books: b } = books();
  b.apply(units([reset('BTC/USD', 1, [{ p: 1, s: 1 }], [])]));
  const first = b.resets('BTC/USD')[0];
  t.equal(b.resets('BTC/USD')[0], first, 'the same unit (converted at most once per encoding)');
  b.apply(units([update('BTC/USD', 2, [{ p: 1, s: 2 }], [])]));
  t.not(b.resets('BTC/USD')[0], first, 'a new one after a change');
});

t.test('an unreadable order-book message makes its book unknown until the next reset, and says so', async (t) => {
  const { books: b, logs } = books();
  b.apply(units([reset('BTC/USD', 1, [{ p: 1, s: 1 }], [])]));
  b.apply(units([{ T: 'o', S: 'BTC/USD', t: at(2), b: 'garbage', a: [] }]));
  t.same(b.resets('BTC/USD'), [], 'no book rather than a wrong one');
  t.match(logs().join('\n'), /unreadable order-book message/);
  b.apply(units([reset('BTC/USD', 3, [{ p: 2, s: 1 }], [])]));
  t.same(resetOf(b, 'BTC/USD')?.b, [{ p: 2, s: 1 }], 'the next reset brings it back');
});

t.test('a book keeps none of the vendor frame it was read from', async (t) => {
  const { books: b } = books();
  const frame = joinFrame(units([reset('BTC/USD', 1, [{ p: 1, s: 1 }], [])]), 'msgpack');
  b.apply([new MessageUnit('msgpack', frame.subarray(1), 'o', 'BTC/USD', CRYPTO)]);
  frame.fill(0); // the vendor's buffer is reused for the next frame
  t.same(resetOf(b, 'BTC/USD')?.t, at(1), 't was copied out');
  const unit = b.resets('BTC/USD')[0]!;
  t.equal(unit.encoded('msgpack').byteLength, unit.encoded('msgpack').buffer.byteLength, 'the reset owns exactly its bytes');
});
