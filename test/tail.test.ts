import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import { WebSocketServer } from 'ws';
import { formatMessage, tail } from '../src/tail.js';

// Messages as `tail` hands them to formatMessage: parsed JSON with 64-bit ids kept as digit strings.

t.test('a stock trade and quote read as they always have', async (t) => {
  t.equal(
    formatMessage({ T: 't', S: 'AAPL', i: '9007199254740993', x: 'V', p: 187.5, s: 100, c: ['@', 'I'], t: '2024-03-12T14:30:00.123456789Z', z: 'C' }),
    '2024-03-12T14:30:00.123456789Z  t  AAPL  187.5 x 100  id=9007199254740993  V',
  );
  t.equal(
    formatMessage({ T: 'q', S: 'MSFT', bx: 'K', bp: 410.1, bs: 3, ax: 'Q', ap: 410.2, as: 5, c: ['R'], t: '2024-03-12T14:30:00Z', z: 'C' }),
    '2024-03-12T14:30:00Z  q  MSFT  bid 410.1 x 3 (K)  ask 410.2 x 5 (Q)',
  );
});

t.test('a crypto trade shows its exact 64-bit id and taker side; quotes and bars have no exchange', async (t) => {
  t.equal(
    formatMessage({ T: 't', S: 'AVAX/USD', p: 47.299, s: 29.205707815, t: '2024-03-12T10:27:48.858228144Z', i: '3447222699101865076', tks: 'S' }),
    '2024-03-12T10:27:48.858228144Z  t  AVAX/USD  47.299 x 29.205707815  id=3447222699101865076  taker=S',
  );
  t.equal(
    formatMessage({ T: 'q', S: 'BTC/USD', bp: 64000.1, bs: 0.5, ap: 64000.2, as: 0.000038, t: '2024-03-12T10:27:48Z' }),
    '2024-03-12T10:27:48Z  q  BTC/USD  bid 64000.1 x 0.5  ask 64000.2 x 0.000038',
  );
  t.equal(
    formatMessage({ T: 'b', S: 'BTC/USD', o: 1, h: 2, l: 0.5, c: 1.5, v: 3.227759152, t: '2024-03-12T10:27:00Z', n: 7, vw: 1.2 }),
    '2024-03-12T10:27:00Z  b  BTC/USD  o 1  h 2  l 0.5  c 1.5  v 3.227759152',
  );
});

t.test('an order book shows reset or update, levels per side and the innermost level of each', async (t) => {
  const reset = {
    T: 'o',
    S: 'BTC/USD',
    t: '2024-03-12T10:27:48.1Z',
    b: [
      { p: 64000.1, s: 0.5 },
      { p: 63999.9, s: 2 },
    ],
    a: [
      { p: 64000.5, s: 1 },
      { p: 64000.2, s: 0.3 },
      { p: 64001, s: 4 },
    ],
    r: true,
  };
  t.equal(formatMessage(reset), '2024-03-12T10:27:48.1Z  o  BTC/USD  reset  bids 2 (top 64000.1 x 0.5)  asks 3 (top 64000.2 x 0.3)', 'the best bid and ask, wherever the vendor lists them');
  t.equal(
    formatMessage({ T: 'o', S: 'BTC/USD', t: '2024-03-12T10:27:49Z', b: [{ p: 63999.9, s: 0 }], a: [] }),
    '2024-03-12T10:27:49Z  o  BTC/USD  update  bids 1 (top 63999.9 x 0)  asks 0',
    'no r: an update; an unchanged side is empty; x 0 removes a level',
  );
});

t.test('an option trade and quote show their OPRA exchanges and their one condition', async (t) => {
  t.equal(
    formatMessage({ T: 't', S: 'AAPL240315C00172500', t: '2024-03-11T13:35:35.13312256Z', p: 2.84, s: 1, x: 'N', c: 'S' }),
    '2024-03-11T13:35:35.13312256Z  t  AAPL240315C00172500  2.84 x 1  N  c S',
  );
  t.equal(
    formatMessage({ T: 'q', S: 'SPXW240327P04925000', t: '2024-03-12T11:59:38.897261568Z', bx: 'C', bp: 9.46, bs: 53, ax: 'C', ap: 9.66, as: 38, c: 'A' }),
    '2024-03-12T11:59:38.897261568Z  q  SPXW240327P04925000  bid 9.46 x 53 (C)  ask 9.66 x 38 (C)  c A',
  );
});

t.test('a news item shows when it was created, its symbols, headline, source and id', async (t) => {
  const item = {
    T: 'n',
    id: 24918784,
    headline: 'Corsair Reports Purchase Of Majority Ownership In iDisplay',
    summary: 'Corsair Gaming, Inc. (NASDAQ: CRSR) ("Corsair"), a leading global provider…',
    author: 'Benzinga Newsdesk',
    created_at: '2022-01-05T22:00:37Z',
    updated_at: '2022-01-05T22:00:38Z',
    url: 'https://www.benzinga.com/m-a/22/01/24918784/corsair-reports-purchase',
    content: '<p>Corsair Gaming, Inc. (NASDAQ:&lt;a class=…</p>',
    symbols: ['CRSR', 'VFS'],
    source: 'benzinga',
  };
  t.equal(formatMessage(item), '2022-01-05T22:00:37Z  n  CRSR,VFS  Corsair Reports Purchase Of Majority Ownership In iDisplay  source=benzinga  id=24918784');
  t.equal(formatMessage({ ...item, symbols: [] }), '2022-01-05T22:00:37Z  n  Corsair Reports Purchase Of Majority Ownership In iDisplay  source=benzinga  id=24918784', 'an item about no symbol in particular');
});

/** A one-connection stream server on 127.0.0.1:0 that greets, accepts any key, confirms the subscription and then sends `data`. */
async function fakeStream(t: Test, data: string): Promise<string> {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  server.on('connection', (socket) => {
    socket.send('[{"T":"success","msg":"connected"}]');
    socket.on('message', (raw: Buffer) => {
      const request = JSON.parse(raw.toString()) as { action: string };
      if (request.action === 'auth') socket.send('[{"T":"success","msg":"authenticated"}]');
      if (request.action === 'subscribe') socket.send(`[{"T":"subscription","news":["*"],"trades":["BTC/USD"]}]`, () => socket.send(data));
    });
  });
  await once(server, 'listening');
  return `ws://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

t.test('tail prints a headline with a long digit run as sent and a trade id beyond 2^63 exactly, and leaves no SIGINT listener behind', async (t) => {
  const item = '{"T":"n","id":24918784,"headline":"Fund [1234567890123456] files 8-K","created_at":"2024-01-05T22:00:37Z","updated_at":"2024-01-05T22:00:37Z","symbols":["AAPL"],"source":"benzinga"}';
  const trade = '{"T":"t","S":"BTC/USD","p":47.299,"s":29.205707815,"t":"2024-03-12T10:27:48.858228144Z","i":18446744073709551615,"tks":"B"}';
  const url = await fakeStream(t, `[${item},${trade}]`);
  const out: string[] = [];
  const err: string[] = [];
  const interruptListeners = process.listenerCount('SIGINT');
  const code = await tail({ url, key: 'k', secret: 's', channels: { news: ['*'], trades: ['BTC/USD'] }, json: false, count: 2, out: (l) => out.push(l), err: (l) => err.push(l) });
  t.equal(code, 0);
  t.same(out, [
    '2024-01-05T22:00:37Z  n  AAPL  Fund [1234567890123456] files 8-K  source=benzinga  id=24918784',
    '2024-03-12T10:27:48.858228144Z  t  BTC/USD  47.299 x 29.205707815  id=18446744073709551615  taker=B',
  ]);
  t.same(err, ['subscribed: {"news":["*"],"trades":["BTC/USD"]}']);
  t.equal(process.listenerCount('SIGINT'), interruptListeners, 'its SIGINT listener is gone once it ends');
});
