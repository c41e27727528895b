import t from 'tap';
import { dataSubject, dataSubjectParts, escapeToken, leaseBucketName, leaseKey, SAFE_NAME, TokenError, unescapeToken } from '../../src/cluster/subjects.js';
import { STREAM_PATHS } from '../../src/protocol/streams.js';

// What both a NATS subject token and a KV key accept (nats.js validKeyRe, minus `.`, `/`, `=`).
const TOKEN = /^[A-Za-z0-9_-]+$/;

t.test('stream paths become KV-safe keys that decode back to the path', async (t) => {
  t.equal(leaseKey('v2/iex'), 'v2_2Fiex');
  for (const path of STREAM_PATHS) {
    const key = leaseKey(path);
    t.match(key, TOKEN, `${path} → ${key} is one token`);
    t.equal(unescapeToken(key), path);
  }
});

t.test('the escaping is injective on names that differ only in characters it escapes', async (t) => {
  const names = ['a.b', 'a_b', 'a/b', 'a_2Fb', 'a*b', 'a>b', 'a b', 'a_b_', 'BRK.B', 'BRK/B', 'BTC/USD', 'é', '_', '__', '-', 'A', 'a'];
  const tokens = names.map(escapeToken);
  t.equal(new Set(tokens).size, names.length, 'no two names share a token');
  for (const [i, token] of tokens.entries()) {
    t.match(token, TOKEN);
    t.equal(unescapeToken(token), names[i]);
  }
  t.equal(escapeToken('a_b'), 'a_5Fb', 'the escape character escapes itself');
});

t.test('tokens escapeToken could not have produced are refused with a code', async (t) => {
  for (const bad of ['', 'a.b', 'a_2', 'a_zz', 'a_41', 'a_2f', '_FF', 'a b']) {
    t.throws(() => unescapeToken(bad), TokenError, JSON.stringify(bad));
  }
  t.throws(() => escapeToken(''), { code: 'ERR_CLUSTER_TOKEN' });
});

t.test('cluster names are safe tokens and name the lease bucket', async (t) => {
  t.equal(leaseBucketName('tickmux'), 'tickmux-leases');
  t.match('tickmux', SAFE_NAME);
  t.notMatch('a.b', SAFE_NAME);
  t.notMatch('a*', SAFE_NAME);
  t.notMatch('', SAFE_NAME);
});

t.test('a data subject reads back as the channel and symbol it was made of, and nothing else does', async (t) => {
  for (const [channel, symbol] of [['trades', 'AAPL'], ['orderbooks', 'BTC/USD'], ['trades', 'BRK.B'], ['news', undefined], [undefined, undefined], ['trades', '_']] as const) {
    t.same(dataSubjectParts('c', 'v2/iex', dataSubject('c', 'v2/iex', channel, symbol)), { channel, symbol }, `${channel} ${symbol}`);
  }
  for (const subject of ['c.data.v2_2Fiex.trades.*', 'c.data.v2_2Fiex.trades.>', 'c.data.v2_2Fsip.trades.AAPL', 'd.data.v2_2Fiex.trades.AAPL', 'c.data.v2_2Fiex.trades', 'c.data.v2_2Fiex.trades.A.B', 'c.data.v2_2Fiex.trades.a_zz', 'c.data.v2_2Fiex._.', 'c.data.v2_2Fiex..AAPL']) {
    t.equal(dataSubjectParts('c', 'v2/iex', subject), undefined, subject);
  }
});
