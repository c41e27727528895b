import t from 'tap';
import { spawnNode } from './helpers/processes.js';
import { StreamClient } from './helpers/stream-client.js';

t.test('npm start: the gateway with its embedded vendor serves data, and SIGTERM closes clients with 1001 and exits 0', async (t) => {
  const proc = spawnNode(t, ['dist/src/server.js'], { PORT: '0', SIMULATOR_RATE: '500', SHUTDOWN_GRACE_MS: '5000' });
  const ready = JSON.parse(await proc.line(/tickmux ready/)) as { stream: string; upstream: string };
  t.match(ready.stream, /^ws:\/\/127\.0\.0\.1:\d+\/v2\/iex$/);
  t.equal(ready.upstream, 'embedded simulator');
  const client = new StreamClient(ready.stream, { encoding: 'msgpack' });
  t.teardown(() => client.close());
  await client.opened();
  await client.auth('demo', 'demo');
  await client.request({ action: 'subscribe', quotes: ['MSFT'] });
  await client.waitFor((m) => m.T === 'q' && m.S === 'MSFT', 'a live quote');
  proc.child.kill('SIGTERM');
  t.equal(await client.closed, 1001, 'clients hear 1001 going away');
  t.equal(await proc.exited, 0, 'the process exits 0');
  t.match(proc.stdout(), '"to":"stopped"', 'after the vendor link stopped cleanly');
});
