import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import t from 'tap';
import { STREAM_PATHS } from '../src/protocol/streams.js';
import { ROOT, spawnNode } from './helpers/processes.js';
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

// util-linux `script` runs the gateway on a real pseudo-terminal, as `npm start` typed by hand.
const SCRIPT = '/usr/bin/script';
t.test('on a terminal the gateway prints readable log lines, secrets still censored; piped, one JSON object per line', { skip: existsSync(SCRIPT) ? false : 'no util-linux script' }, async (t) => {
  const token = 'tty-control-token-abcdefghijklmnop';
  const env = { PATH: process.env.PATH ?? '', PORT: '0', SIMULATOR_RATE: '0', CONTROL_TOKEN: token, LOG_LEVEL: 'debug' };
  // Its own process group, so the teardown stops script and the gateway on its terminal together.
  const child = spawn(SCRIPT, ['-qfec', `${JSON.stringify(process.execPath)} dist/src/server.js`, '/dev/null'], { cwd: ROOT, env, detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      process.kill(-child.pid!, 'SIGKILL');
      await exited;
    }
  });
  let out = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (/tickmux ready/.test(out)) resolve();
    });
    child.on('exit', () => reject(new Error(`exited before it was ready: ${out}`)));
  });
  process.kill(-child.pid!, 'SIGTERM');
  await exited;
  const plain = out.replace(/\x1b\[[0-9;]*m/g, '');
  const ready = plain.split(/\r?\n/).find((l) => l.includes('tickmux ready'))!;
  t.match(ready, /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: tickmux ready$/, `a readable line: ${JSON.stringify(ready)}`);
  t.match(plain, /address: "http:\/\/127\.0\.0\.1:\d+"/, 'its fields below it, one per line');
  t.notOk(plain.split(/\r?\n/).some((l) => l.startsWith('{"level"')), 'no JSON lines');
  t.notOk(out.includes(token), 'the control token is never printed');

  const piped = spawnNode(t, ['dist/src/server.js'], { PORT: '0', SIMULATOR_RATE: '0' });
  const line = await piped.line(/tickmux ready/);
  t.match(JSON.parse(line), { level: 30, msg: 'tickmux ready' }, 'not a terminal: JSON, as before');
  piped.child.kill('SIGTERM');
  await piped.exited;
});
