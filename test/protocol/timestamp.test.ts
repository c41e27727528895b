import t from 'tap';
import { ProtocolError } from '../../src/errors.js';
import { Timestamp } from '../../src/protocol/timestamp.js';

t.test('RFC 3339 text keeps every nanosecond and prints like the vendor', async (t) => {
  const cases: [string, number, number, string][] = [
    ['2021-02-22T15:51:45.335689322Z', 1614009105, 335689322, '2021-02-22T15:51:45.335689322Z'],
    ['2021-02-22T15:51:44.208Z', 1614009104, 208000000, '2021-02-22T15:51:44.208Z'],
    ['2021-02-22T19:15:00Z', 1614021300, 0, '2021-02-22T19:15:00Z'],
    ['2021-02-22T15:51:44.000000001Z', 1614009104, 1, '2021-02-22T15:51:44.000000001Z'],
    ['2021-02-22T10:51:44.5-05:00', 1614009104, 500000000, '2021-02-22T15:51:44.5Z'],
    ['1969-12-31T23:59:59.999999999Z', -1, 999999999, '1969-12-31T23:59:59.999999999Z'],
  ];
  for (const [text, seconds, nanos, printed] of cases) {
    const ts = Timestamp.parse(text);
    t.equal(ts.seconds, seconds, `${text} seconds`);
    t.equal(ts.nanoseconds, nanos, `${text} nanoseconds`);
    t.equal(ts.toString(), printed, `${text} prints as ${printed}`);
    t.equal(JSON.stringify({ t: ts }), `{"t":"${printed}"}`);
  }
});

t.test('text that is not an RFC 3339 timestamp is refused with a ProtocolError', async (t) => {
  for (const bad of ['', 'yesterday', '2021-02-30T00:00:00Z', '2021-13-01T00:00:00Z', '2021-02-22T24:00:00Z', '2021-02-22T15:51:44.1234567891Z', '2021-02-22 15:51:44Z', '2021-02-22T15:51:44']) {
    t.throws(() => Timestamp.parse(bad), ProtocolError, JSON.stringify(bad));
  }
});

t.test('the msgpack timestamp extension uses its smallest form and round-trips', async (t) => {
  const forms: [Timestamp, number][] = [
    [new Timestamp(1614021300, 0), 4], // timestamp32
    [new Timestamp(1614009105, 335689322), 8], // timestamp64
    [new Timestamp(2 ** 34 - 1, 999999999), 8], // largest timestamp64
    [new Timestamp(2 ** 34, 1), 12], // timestamp96 past 2514
    [new Timestamp(-1, 999999999), 12], // timestamp96 before 1970
  ];
  for (const [ts, size] of forms) {
    const data = ts.toMsgpackExtData();
    t.equal(data.length, size, `${ts.toString()} takes ${size} bytes`);
    t.ok(Timestamp.fromMsgpackExtData(data).equals(ts), `${ts.toString()} round-trips`);
  }
  t.throws(() => Timestamp.fromMsgpackExtData(new Uint8Array(5)), ProtocolError);
});

t.test('epoch nanoseconds convert both ways, negative ones included', async (t) => {
  const n = 1614009105335689322n;
  t.equal(Timestamp.fromEpochNanos(n).toEpochNanos(), n);
  t.same(Timestamp.fromEpochNanos(-1n), new Timestamp(-1, 999999999));
  t.throws(() => new Timestamp(0, 1e9), ProtocolError);
  t.throws(() => new Timestamp(1.5, 0), ProtocolError);
});
