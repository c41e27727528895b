import t from 'tap';
import { spawnNode } from './helpers/processes.js';
import { StreamClient } from './helpers/stream-client.js';

t.test('tickmux simulate serves the vendor protocol as a process and stops on SIGTERM', async (t) => {
  const proc = spawnNode(t, ['dist/src/cli.js', 'simulate', '--port', '0', '--rate', '500', '--key', 'cli-key', '--secret', 'cli-secret']);
  const ready = JSON.parse(await proc.line(/simulated vendor ready/)) as { url: string; base: string; paths: string[] };
  t.match(ready.url, /^ws:\/\/127\.0\.0\.1:\d+\/v2\/iex$/);
  t.same(ready.paths.filter((p) => !p.startsWith('v2/')), ['v1beta1/boats', 'v1beta1/overnight', 'v1beta3/crypto/us', 'v1beta3/crypto/us-1', 'v1beta3/crypto/eu-1', 'v1beta1/indicative', 'v1beta1/opra', 'v1beta1/news'], 'it says which paths it serves');
  const crypto = new StreamClient(`${ready.base}/v1beta3/crypto/us`);
  t.teardown(() => crypto.close());
  await crypto.opened();
  t.same(await crypto.auth('cli-key', 'cli-secret'), { T: 'success', msg: 'authenticated' }, 'the same key on the crypto path: one connection per path');
  await crypto.request({ action: 'subscribe', trades: ['BTC/USD'] });
  await crypto.waitFor((m) => m.T === 't' && m.S === 'BTC/USD', 'a crypto trade');
  const client = new StreamClient(ready.url);
  t.teardown(() => client.close());
  await client.opened();
  t.same(await client.auth('cli-key', 'cli-secret'), { T: 'success', msg: 'authenticated' });
  await client.request({ action: 'subscribe', quotes: ['MSFT'] });
  await client.waitFor((m) => m.T === 'q' && m.S === 'MSFT', 'a quote');
  const health = await fetch(ready.url.replace('ws://', 'http://').replace('/v2/iex', '/health'));
  t.equal(health.status, 200);
  t.match(await health.json(), { status: 'ok', connections: 2 }, 'the stock and the crypto connection');
  proc.child.kill('SIGTERM');
  t.equal(await proc.exited, 0, 'exits 0 after SIGTERM');
  await client.closed;
  t.notMatch(proc.stdout() + proc.stderr(), 'cli-secret', 'the secret never reaches the output');
});

t.test('tickmux with a bad command line prints usage and exits 2', async (t) => {
  const unknown = spawnNode(t, ['dist/src/cli.js', 'frobnicate']);
  t.equal(await unknown.exited, 2);
  t.match(unknown.stderr(), 'tickmux: unknown command "frobnicate"');
  t.match(unknown.stderr(), 'usage: tickmux');
  const badPort = spawnNode(t, ['dist/src/cli.js', 'simulate', '--port', 'eighty']);
  t.equal(await badPort.exited, 2);
  t.match(badPort.stderr(), '--port must be an integer from 0 to 65535');
  const badFlag = spawnNode(t, ['dist/src/cli.js', 'simulate', '--colour', 'blue']);
  t.equal(await badFlag.exited, 2);
  t.match(badFlag.stderr(), "Unknown option '--colour'");
});

t.test('the server refuses a wrong configuration with exit 1 and one line', async (t) => {
  const proc = spawnNode(t, ['dist/src/server.js'], { PORT: 'eighty', CONTROL_TOKEN: 'token-never-printed' });
  t.equal(await proc.exited, 1);
  t.equal(proc.stderr(), 'tickmux: configuration error: PORT: "eighty" is not allowed; expected an integer from 0 to 65535\n');
  const open = spawnNode(t, ['dist/src/server.js'], { HOST: '0.0.0.0', CONTROL_TOKEN: 'token-never-printed' });
  t.equal(await open.exited, 1);
  t.match(open.stderr(), /^tickmux: configuration error: HOST: "0.0.0.0" is not a loopback address, so CLIENT_KEYS must be set/);
  t.notMatch(open.stderr(), 'token-never-printed');
});

t.test('a script that starts and stops a simulator with a client exits on its own', async (t) => {
  const script = `
    import { VendorSimulator } from './dist/src/simulator/index.js';
    import { WebSocket } from 'ws';
    const sim = new VendorSimulator({ port: 0, rate: 1000 });
    await sim.start();
    const ws = new WebSocket(sim.url('iex'));
    await new Promise((resolve) => ws.on('message', resolve));
    await sim.stop();
    console.log('stopped');
  `;
  const proc = spawnNode(t, ['--input-type=module', '-e', script]);
  t.equal(await proc.exited, 0, 'no socket, timer or listener keeps the process alive');
  t.match(proc.stdout(), 'stopped');
});

t.test('tickmux tail prints a gateway’s stream, losslessly with --json, and fails clearly on bad keys', async (t) => {
  const { startGateway } = await import('./helpers/gateway.js');
  const gw = await startGateway(t, { SIMULATOR_RATE: '1000', CLIENT_KEYS: 'ops:ops-secret' });
  await gw.gateway.defaultStream.link.whenLive(10_000);
  const human = spawnNode(t, ['dist/src/cli.js', 'tail', '--url', gw.url(), '--key', 'ops', '--secret', 'ops-secret', '--trades', 'AAPL', '--quotes', 'MSFT,NVDA', '--count', '6']);
  t.equal(await human.exited, 0);
  const lines = human.stdout().trim().split('\n');
  t.equal(lines.length, 6, 'six messages, then it stops');
  t.ok(lines.every((l) => /^\d{4}-\d\d-\d\dT[\d:.]+Z {2}[tq] {2}(AAPL|MSFT|NVDA) /.test(l)), lines.join('\n'));
  t.match(human.stderr(), 'subscribed: {"trades":["AAPL"],"quotes":["MSFT","NVDA"],"bars":[]}');

  const json = spawnNode(t, ['dist/src/cli.js', 'tail', '--url', gw.url(), '--key', 'ops', '--secret', 'ops-secret', '--trades', 'AAPL', '--json', '--count', '10']);
  t.equal(await json.exited, 0);
  const raw = json.stdout().trim().split('\n');
  t.ok(raw.every((l) => l.startsWith('{"T":"t","S":"AAPL","i":')), 'the wire’s JSON, one message a line');
  const ids = raw.map((l) => BigInt(/"i":(\d+)/.exec(l)![1]!));
  t.ok(ids.some((id) => id > 2n ** 53n), 'ids beyond 2^53 as exact digits');
  t.ok(raw.every((l) => /"t":"[^"]+\.\d{1,9}Z"/.test(l)), 'timestamps with their fraction');

  const bad = spawnNode(t, ['dist/src/cli.js', 'tail', '--url', gw.url(), '--key', 'ops', '--secret', 'wrong', '--trades', 'AAPL']);
  t.equal(await bad.exited, 1);
  t.match(bad.stderr(), 'tickmux tail: 402 auth failed');
  t.notMatch(bad.stderr() + bad.stdout(), 'ops-secret');

  const usage = spawnNode(t, ['dist/src/cli.js', 'tail', '--url', gw.url()]);
  t.equal(await usage.exited, 2);
  t.match(usage.stderr(), 'tail needs at least one of --trades, --quotes, --bars');
});
