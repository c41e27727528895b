import t from 'tap';
import { spawnNode } from './helpers/processes.js';
import { startSimulator } from './helpers/simulator.js';
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
  // The gateway's base: tail appends the default stream path, v2/iex.
  const human = spawnNode(t, ['dist/src/cli.js', 'tail', '--url', gw.base.replace(/^http/, 'ws'), '--key', 'ops', '--secret', 'ops-secret', '--trades', 'AAPL', '--quotes', 'MSFT,NVDA', '--count', '6']);
  t.equal(await human.exited, 0);
  const lines = human.stdout().trim().split('\n');
  t.equal(lines.length, 6, 'six messages, then it stops');
  t.ok(lines.every((l) => /^\d{4}-\d\d-\d\dT[\d:.]+Z {2}[tq] {2}(AAPL|MSFT|NVDA) /.test(l)), lines.join('\n'));
  t.match(human.stderr(), 'subscribed: {"trades":["AAPL"],"quotes":["MSFT","NVDA"]}', 'the reply’s lists of the channels it asked for');

  const json = spawnNode(t, ['dist/src/cli.js', 'tail', '--url', gw.url(), '--key', 'ops', '--secret', 'ops-secret', '--trades', 'AAPL', '--json', '--count', '10']);
  t.equal(await json.exited, 0);
  const raw = json.stdout().trim().split('\n');
  t.ok(raw.every((l) => l.startsWith('{"T":"t","S":"AAPL","i":')), 'the wire’s JSON, one message a line');
  const ids = raw.map((l) => BigInt(/"i":(\d+)/.exec(l)![1]!));
  t.ok(ids.some((id) => id > 2n ** 53n), 'ids beyond 2^53 as exact digits');
  t.ok(raw.every((l) => /"t":"[^"]+\.\d{1,9}Z"/.test(l)), 'timestamps with their fraction');

  // `| head`: the reader closes the pipe after what it wanted; tail stops quietly.
  const piped = spawnNode(t, ['dist/src/cli.js', 'tail', '--url', gw.url(), '--key', 'ops', '--secret', 'ops-secret', '--quotes', 'MSFT']);
  await piped.line(/ q {2}MSFT /);
  piped.child.stdout?.destroy();
  t.equal(await piped.exited, 0, 'a closed stdout ends tail with exit 0');
  t.notMatch(piped.stderr(), /EPIPE|Error/, 'without a stack trace');

  const bad = spawnNode(t, ['dist/src/cli.js', 'tail', '--url', gw.url(), '--key', 'ops', '--secret', 'wrong', '--trades', 'AAPL']);
  t.equal(await bad.exited, 1);
  t.match(bad.stderr(), 'tickmux tail: 402 auth failed');
  t.notMatch(bad.stderr() + bad.stdout(), 'ops-secret');

  const usage = spawnNode(t, ['dist/src/cli.js', 'tail', '--url', gw.url()]);
  t.equal(await usage.exited, 2);
  t.match(usage.stderr(), 'tail needs at least one of --trades, --quotes, --bars, --updated-bars, --daily-bars, --statuses, --lulds, --imbalances\n');
});

/** The simulator's base URL, `ws://127.0.0.1:PORT`, which serves every stream path. */
function baseOf(simulator: { port: number }): string {
  return `ws://127.0.0.1:${simulator.port}`;
}

/** The lines a finished process printed on stdout. */
function linesOf(proc: { stdout: () => string }): string[] {
  return proc.stdout().trim().split('\n');
}

t.test('tickmux tail --stream v1beta3/crypto/us prints the asked pair’s trades with exact 64-bit ids, and a book from its reset', async (t) => {
  const sim = await startSimulator(t, { rate: 1000, tradeIdBase: 2n ** 62n });
  const trades = spawnNode(t, ['dist/src/cli.js', 'tail', '--url', baseOf(sim), '--stream', 'v1beta3/crypto/us', '--trades', 'BTC/USD', '--count', '5']);
  t.equal(await trades.exited, 0);
  t.match(trades.stderr(), 'subscribed: {"trades":["BTC/USD"]}\n');
  const lines = linesOf(trades);
  t.equal(lines.length, 5, 'five trades, then it stops');
  t.ok(lines.every((l) => /^\d{4}-\d\d-\d\dT[\d:.]+Z {2}t {2}BTC\/USD {2}[\d.]+ x [\d.]+ {2}id=\d+ {2}taker=[BS]$/.test(l)), lines.join('\n'));
  const ids = lines.map((l) => /id=(\d+)/.exec(l)![1]);
  t.same(ids, [0n, 1n, 2n, 3n, 4n].map((n) => String(2n ** 62n + n)), 'the pair’s ids in sequence from 2^62, every digit exact');

  const book = spawnNode(t, ['dist/src/cli.js', 'tail', '--url', baseOf(sim), '--stream', 'v1beta3/crypto/us', '--orderbooks', 'ETH/USD', '--count', '2']);
  t.equal(await book.exited, 0);
  const [reset, update] = linesOf(book);
  t.match(reset, /^\S+Z {2}o {2}ETH\/USD {2}reset {2}bids 10 \(top [\d.]+ x [\d.]+\) {2}asks 10 \(top [\d.]+ x [\d.]+\)$/, 'the whole book first, flagged as a reset');
  t.match(update, /^\S+Z {2}o {2}ETH\/USD {2}update {2}bids [01]( \(top [\d.]+ x [\d.]+\))? {2}asks [01]/, 'then level updates');
});

t.test('tickmux tail --stream v1beta1/news prints the items about the asked symbols', async (t) => {
  const sim = await startSimulator(t, { newsIntervalMs: 10 });
  const news = spawnNode(t, ['dist/src/cli.js', 'tail', '--url', baseOf(sim), '--stream', 'v1beta1/news', '--news', 'AAPL', '--news', 'TSLA', '--count', '3']);
  t.equal(await news.exited, 0);
  t.match(news.stderr(), 'subscribed: {"news":["AAPL","TSLA"]}\n');
  const lines = linesOf(news);
  t.equal(lines.length, 3);
  for (const line of lines) {
    const [, symbols] = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ {2}n {2}(\S+) {2}.+ {2}source=benzinga {2}id=\d+$/.exec(line) ?? [];
    t.ok(symbols?.split(',').some((s) => s === 'AAPL' || s === 'TSLA'), `about AAPL or TSLA: ${line}`);
  }
});

t.test('tickmux tail takes a full stream URL as before, alone or with the same --stream', async (t) => {
  const sim = await startSimulator(t, { rate: 1000 });
  const url = sim.url('v1beta3/crypto/us');
  for (const extra of [[], ['--stream', 'v1beta3/crypto/us']]) {
    const proc = spawnNode(t, ['dist/src/cli.js', 'tail', '--url', url, ...extra, '--quotes', 'ETH/USD', '--count', '3']);
    t.equal(await proc.exited, 0);
    t.ok(linesOf(proc).every((l) => /^\S+Z {2}q {2}ETH\/USD {2}bid [\d.]+ x [\d.]+ {2}ask [\d.]+ x [\d.]+$/.test(l)), `${extra.join(' ') || 'no --stream'}: ${proc.stdout()}`);
  }
});

t.test('tickmux tail on the vendor’s options path says the vendor refused JSON (412) and exits 1', async (t) => {
  const sim = await startSimulator(t);
  const proc = spawnNode(t, ['dist/src/cli.js', 'tail', '--url', baseOf(sim), '--stream', 'v1beta1/indicative', '--trades', 'AAPL250117C00150000']);
  t.equal(await proc.exited, 1);
  t.equal(proc.stderr(), 'tickmux tail: 412 option messages are only available in MsgPack format (tail speaks JSON; point it at a tickmux gateway, which serves options as JSON too)\n');
  t.equal(proc.stdout(), '');
});

t.test('tickmux tail refuses an unknown stream, a channel the stream lacks and a --stream its --url contradicts, with exit 2', async (t) => {
  const cases: [string[], string][] = [
    [['--stream', 'v1beta2/crypto', '--trades', 'AAPL'], 'tickmux: unknown stream "v1beta2/crypto"; known: v2/iex, v2/sip, v2/delayed_sip, v2/test, v1beta1/boats, v1beta1/overnight, v1beta3/crypto/us, v1beta3/crypto/us-1, v1beta3/crypto/eu-1, v1beta1/indicative, v1beta1/opra, v1beta1/news'],
    [['--stream', 'v1beta1/news', '--trades', 'AAPL'], 'tickmux: v1beta1/news has no --trades; its channels: --news'],
    [['--stream', 'v1beta3/crypto/us', '--statuses', 'BTC/USD'], 'tickmux: v1beta3/crypto/us has no --statuses; its channels: --trades, --quotes, --bars, --updated-bars, --daily-bars, --orderbooks'],
    [['--stream', 'v1beta1/opra', '--bars', 'AAPL250117C00150000'], 'tickmux: v1beta1/opra has no --bars; its channels: --trades, --quotes'],
    [['--orderbooks', 'BTC/USD'], 'tickmux: v2/iex has no --orderbooks; its channels: --trades, --quotes, --bars, --updated-bars, --daily-bars, --statuses, --lulds, --imbalances'],
    [['--stream', 'v1beta1/news'], 'tickmux: tail needs at least one of --news'],
    [['--url', 'ws://127.0.0.1:8080/v2/iex', '--stream', 'v2/sip', '--trades', 'AAPL'], 'tickmux: --url names the stream v2/iex; --stream v2/sip differs (give --url as a base to choose the stream)'],
    [['--url', 'http://127.0.0.1:8080', '--trades', 'AAPL'], 'tickmux: --url must be a ws:// or wss:// URL'],
  ];
  const runs = cases.map(([args, first]) => ({ args, first, proc: spawnNode(t, ['dist/src/cli.js', 'tail', ...args]) }));
  for (const { args, first, proc } of runs) {
    t.equal(await proc.exited, 2, args.join(' '));
    t.equal(proc.stderr().split('\n')[0], first, 'one line saying why');
    t.match(proc.stderr(), 'usage: tickmux', 'with the usage');
  }
});
