import t from 'tap';
import { STREAM_PATHS } from '../src/protocol/streams.js';
import { spawnNode } from './helpers/processes.js';
import { StreamClient } from './helpers/stream-client.js';

t.test('npm start: the four default streams from the embedded vendor, and SIGTERM closes every client with 1001 and exits 0', async (t) => {
  const proc = spawnNode(t, ['dist/src/server.js'], { PORT: '0', SIMULATOR_RATE: '500', SHUTDOWN_GRACE_MS: '5000' });
  const ready = JSON.parse(await proc.line(/tickmux ready/)) as { streams: string[]; upstream: string };
  t.match(ready.streams, [/^ws:\/\/127\.0\.0\.1:\d+\/v2\/iex$/, /\/v1beta3\/crypto\/us$/, /\/v1beta1\/indicative$/, /\/v1beta1\/news$/]);
  t.equal(ready.upstream, 'embedded simulator');
  const stocks = new StreamClient(ready.streams[0]!, { encoding: 'msgpack' });
  const crypto = new StreamClient(ready.streams[1]!);
  for (const client of [stocks, crypto]) {
    t.teardown(() => client.close());
    await client.opened();
    await client.auth('demo', 'demo');
  }
  await stocks.request({ action: 'subscribe', quotes: ['MSFT'] });
  await crypto.request({ action: 'subscribe', trades: ['BTC/USD'] });
  await stocks.waitFor((m) => m.T === 'q' && m.S === 'MSFT', 'a live quote');
  await crypto.waitFor((m) => m.T === 't' && m.S === 'BTC/USD', 'a live crypto trade');
  proc.child.kill('SIGTERM');
  t.same(await Promise.all([stocks.closed, crypto.closed]), [1001, 1001], 'clients of every stream hear 1001 going away');
  t.equal(await proc.exited, 0, 'the process exits 0');
  t.equal(proc.stdout().match(/"to":"stopped"/g)?.length, 4, 'after every vendor link stopped cleanly');
});

t.test('an unknown stream path in STREAMS stops the start with one line naming the known ones', async (t) => {
  const proc = spawnNode(t, ['dist/src/server.js'], { PORT: '0', STREAMS: 'v2/iex,v1beta3/crypto/mars' });
  t.equal(await proc.exited, 1);
  t.equal(proc.stderr(), `tickmux: configuration error: STREAMS: "v1beta3/crypto/mars" is not a stream path; known: ${STREAM_PATHS.join(', ')}\n`);
});
