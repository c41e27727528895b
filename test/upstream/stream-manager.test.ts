import t from 'tap';
import { ChannelSet } from '../../src/protocol/channel-set.js';
import { emptyChannelSymbols } from '../../src/protocol/channels.js';
import { decodeMsgpack } from '../../src/protocol/frame.js';
import type { Refusal } from '../../src/upstream/stream-manager.js';
import { linkTo } from '../helpers/link.js';
import { captureLogs } from '../helpers/log-capture.js';
import { spawnNode } from '../helpers/processes.js';
import { startSimulator } from '../helpers/simulator.js';
import { eventually } from '../helpers/wait.js';

/** Resolves on the next `event` from `emitter` (with a deadline that turns a hang into a failure). */
function next<T>(emitter: { once(event: string, fn: (value: T) => void): unknown }, event: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} event`)), 10_000);
    emitter.once(event, (value: T) => {
      clearTimeout(timer);
      resolve(value);
    });
  });
}

t.test('connects, authenticates, goes live and hands data to its consumer as message units', async (t) => {
  const sim = await startSimulator(t, { rate: 2000 });
  const link = linkTo(t, sim);
  link.manager.start();
  await link.manager.whenLive();
  t.same(
    link.states.map((s) => s.to),
    ['connecting', 'authenticating', 'live'],
  );
  link.manager.setDesired(new ChannelSet({ trades: ['AAPL'] }));
  await link.manager.whenSynced();
  await eventually(() => link.units.length >= 20, 'twenty messages');
  t.ok(link.units.every((u) => u.symbol === 'AAPL' && ['t', 'c', 'x'].includes(u.type ?? '')), 'only what was subscribed');
  const first = decodeMsgpack(link.units[0]!.encoded('msgpack')) as Record<string, unknown>;
  t.equal(first.T, 't');
  t.equal(link.manager.stats.messages, link.units.length);
  t.ok(link.manager.stats.bytes > 0);
  t.equal(sim.stats.connections, 1, 'one connection');
});

t.test('start, stop and restart are idempotent and single-flight', async (t) => {
  const sim = await startSimulator(t);
  const link = linkTo(t, sim);
  link.manager.start();
  link.manager.start();
  await link.manager.whenLive();
  link.manager.start({ correlationId: 'again' });
  t.ok(link.logs().some((l) => l.includes('start ignored: the link is already running') && l.includes('"correlationId":"again"')), 'a second start is a logged no-op');
  t.equal(sim.stats.connections, 1);

  const restarts = Array.from({ length: 10 }, (_, i) => link.manager.restart({ correlationId: `r${i}` }));
  await Promise.all(restarts.map((r) => r.settled));
  t.equal(new Set(restarts.map((r) => r.id)).size, 1, 'they share one id');
  t.same(restarts.map((r) => r.joined), [false, ...Array(9).fill(true)]);
  await link.manager.whenLive();
  t.equal(sim.stats.connections, 2, 'ten concurrent restarts cause one reconnect');
  t.equal(link.states.filter((s) => s.to === 'stopping').length, 1, 'one stop');
  t.equal(link.logs().filter((l) => l.includes('restart joined the one in progress')).length, 9);

  const stops = [link.manager.stop(), link.manager.stop()];
  t.equal(stops[0], stops[1], 'concurrent stops share one promise');
  await Promise.all(stops);
  await link.manager.stop();
  t.equal(link.manager.state, 'stopped');
  t.equal(link.states.filter((s) => s.to === 'stopped').length, 2, 'stopping a stopped link does nothing');
  t.same(link.clock.pending(), [], 'no timer left behind');
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(sim.authenticatedCount(), 0, 'no socket left at the vendor');
});

t.test('a script that starts and stops a manager exits on its own', async (t) => {
  const script = `
    import { VendorSimulator } from './dist/src/simulator/index.js';
    import { StreamManager } from './dist/src/upstream/stream-manager.js';
    import { Secret } from './dist/src/secret.js';
    import { createLogger } from './dist/src/logger.js';
    const sim = new VendorSimulator({ port: 0, rate: 1000 });
    await sim.start();
    const manager = new StreamManager({
      url: sim.url('iex'), keyId: new Secret('k'), secretKey: new Secret('s'), encoding: 'json',
      connectTimeoutMs: 1000, authTimeoutMs: 1000, retryBaseMs: 10, retryMaxMs: 100, retryAfter406Ms: 100,
      stableAfterMs: 50, breakerFailures: 3, breakerResetMs: 60000, heartbeatMs: 20, pongTimeoutMs: 1000,
      staleAfterMs: 60000, stopTimeoutMs: 1000, subscribeTimeoutMs: 1000,
      logger: createLogger('silent'), onData: () => {},
    });
    manager.start();
    await manager.whenLive(5000);
    manager.setDesired({ trades: ['AAPL'], quotes: [], bars: [], updatedBars: [], dailyBars: [], statuses: [], lulds: [], imbalances: [] });
    await manager.whenSynced(5000);
    await new Promise((r) => setTimeout(r, 100));
    await manager.stop();
    await sim.stop();
    console.log('stopped');
  `;
  const proc = spawnNode(t, ['--input-type=module', '-e', script]);
  t.equal(await proc.exited, 0, 'no socket, timer or listener keeps the process alive');
  t.match(proc.stdout(), 'stopped');
});

t.test('retries follow the exponential backoff sequence and reset after a stable period', async (t) => {
  const sim = await startSimulator(t);
  sim.refuseUpgrades(503);
  const link = linkTo(t, sim, { retryBaseMs: 100, retryMaxMs: 1000, stableAfterMs: 30_000 });
  link.manager.start();
  const delays: number[] = [];
  let from = 0;
  for (let i = 0; i < 6; i++) {
    const backoff = await link.reach('backoff', from);
    delays.push(backoff.delayMs as number);
    t.match(backoff.reason, /HTTP 503/, 'the reason names the refusal');
    from = link.states.length;
    link.clock.advance(backoff.delayMs as number);
  }
  const seventh = await link.reach('backoff', from);
  delays.push(seventh.delayMs as number);
  // random() is 0.5: each wait is 3/4 of min(1000, 100·2^n)
  t.same(delays, [75, 150, 300, 600, 750, 750, 750]);
  t.equal(sim.stats.upgrades, 7, 'one attempt per backoff, none in between');
  sim.refuseUpgrades(undefined);
  link.clock.advance(seventh.delayMs as number);
  await link.manager.whenLive();
  from = link.states.length;
  link.clock.advance(30_000); // stable: the backoff starts over
  sim.dropAll();
  const after = await link.reach('backoff', from);
  t.equal(after.delayMs, 75, 'after a stable period the first retry waits the base again');
  link.clock.advance(75);
  await link.manager.whenLive();
  t.equal(link.manager.stats.reconnects, 1, 'the first live after failed attempts is not a reconnect; the one after the drop is');
});

t.test('the breaker opens after N consecutive failures, blocks attempts, and probes after its reset time', async (t) => {
  const sim = await startSimulator(t);
  sim.refuseUpgrades(503);
  const link = linkTo(t, sim, { breakerFailures: 3, breakerResetMs: 40 });
  link.manager.start();
  let from = 0;
  for (let i = 0; i < 2; i++) {
    const backoff = await link.reach('backoff', from);
    from = link.states.length;
    link.clock.advance(backoff.delayMs as number);
  }
  const open = await link.reach('breaker-open', from);
  t.match(open.reason, /3 consecutive failed attempts/);
  t.equal(link.manager.breakerState, 'open');
  t.equal(sim.stats.upgrades, 3);
  link.clock.advance(3_600_000);
  t.equal(sim.stats.upgrades, 3, 'while open, no attempt is made however long the backoff clock runs');
  const probe = link.states.length;
  await link.reach('connecting', probe);
  t.equal(link.manager.breakerState, 'half-open', 'after the reset time one probe goes through');
  await link.reach('breaker-open', probe);
  t.equal(sim.stats.upgrades, 4, 'exactly one probe');
  sim.refuseUpgrades(undefined);
  await link.manager.whenLive();
  t.equal(link.manager.breakerState, 'closed', 'a good probe closes the breaker');
  t.equal(sim.stats.upgrades, 5);
});

t.test('402 auth failed is terminal: no retries until restart() clears it', async (t) => {
  const sim = await startSimulator(t);
  sim.rejectAuth(402);
  const link = linkTo(t, sim);
  link.manager.start();
  const failed = await link.reach('failed');
  t.match(failed.reason, /^402 auth failed/);
  t.equal(link.manager.status().reason, failed.reason, 'the state says why');
  await t.rejects(link.manager.whenLive(), { code: 'ERR_UPSTREAM_DOWN' });
  link.clock.advance(24 * 3_600_000);
  t.equal(sim.stats.connections, 1, 'no reconnect loop hammering the vendor with bad keys');
  t.same(link.clock.pending(), [], 'no timer waits to retry');
  await link.manager.restart({ correlationId: 'operator-fix' }).settled;
  await link.manager.whenLive();
  t.equal(sim.stats.connections, 2, 'restart() tries again');
});

t.test('406 connection limit exceeded retries after the longer 406 wait', async (t) => {
  const sim = await startSimulator(t);
  sim.rejectAuth(406);
  const link = linkTo(t, sim, { retryAfter406Ms: 15_000 });
  link.manager.start();
  const backoff = await link.reach('backoff');
  t.equal(backoff.delayMs, 15_000, 'waits RETRY_AFTER_406_MS, not the 75 ms base');
  t.match(backoff.reason, /406 connection limit exceeded/);
  link.clock.advance(14_999);
  t.equal(sim.stats.connections, 1, 'no attempt before then');
  link.clock.advance(1);
  await link.manager.whenLive();
  t.equal(sim.stats.connections, 2);
});

t.test('a stalled vendor: no pong within the timeout → terminate and reconnect', async (t) => {
  const sim = await startSimulator(t);
  const link = linkTo(t, sim, { heartbeatMs: 10_000, pongTimeoutMs: 5000 });
  link.manager.start();
  await link.manager.whenLive();
  sim.stall(3_600_000);
  const from = link.states.length;
  link.clock.advance(10_000); // ping
  link.clock.advance(5000); // no pong
  const lost = await link.reach('backoff', from);
  t.match(lost.reason, /no pong within 5000 ms/);
  t.equal(link.manager.stats.pongTimeouts, 1);
  sim.resume();
  link.clock.advance(lost.delayMs as number);
  await link.manager.whenLive();
  t.equal(sim.stats.connections, 2, 'reconnected on a new socket');
});

t.test('407 slow client from the vendor, then its close: the link reconnects and restores', async (t) => {
  const sim = await startSimulator(t);
  const link = linkTo(t, sim);
  const vendorErrors: { code: number }[] = [];
  link.manager.on('vendor-error', (e) => vendorErrors.push(e));
  link.manager.start();
  await link.manager.whenLive();
  link.manager.setDesired(new ChannelSet({ quotes: ['AAPL'] }));
  await link.manager.whenSynced();
  const from = link.states.length;
  sim.dropAll({ error: 407, code: 1008 });
  const lost = await link.reach('backoff', from);
  t.match(lost.reason, /vendor closed the connection \(1008/);
  t.same(vendorErrors, [{ code: 407, message: 'slow client' }], 'the 407 was seen and reported');
  link.clock.advance(lost.delayMs as number);
  await link.manager.whenLive();
  t.same(sim.sessions()[0]?.subscriptions.quotes, ['AAPL'], 'subscriptions restored');
});

t.test('a healthy vendor answers pings and the link stays up', async (t) => {
  const sim = await startSimulator(t);
  const link = linkTo(t, sim, { heartbeatMs: 10_000, pongTimeoutMs: 5000 });
  link.manager.start();
  await link.manager.whenLive();
  for (let i = 0; i < 3; i++) {
    link.clock.advance(10_000);
    await eventually(() => !link.clock.pending().some((p) => p.inMs === 5000), 'the pong that clears the pong deadline');
  }
  link.clock.advance(4999);
  t.equal(link.manager.state, 'live');
  t.equal(link.manager.stats.pongTimeouts, 0);
});

t.test('the stale-data watchdog reconnects a silent link but not a quiet symbol set', async (t) => {
  const sim = await startSimulator(t, { rate: 2000 });
  const link = linkTo(t, sim, { heartbeatMs: 1000, pongTimeoutMs: 3_600_000, staleAfterMs: 60_000 });
  link.manager.start();
  await link.manager.whenLive();
  link.manager.setDesired(new ChannelSet({ bars: ['SPY'], statuses: ['*'] }));
  await link.manager.whenSynced();
  link.clock.advance(600_000);
  t.equal(link.manager.state, 'live', 'only quiet channels: ten minutes of silence is not a dead link');
  link.manager.setDesired(new ChannelSet({ trades: ['AAPL'] }));
  await link.manager.whenSynced();
  const before = link.units.length;
  await eventually(() => link.units.length > before + 10, 'trades flowing');
  sim.setRate(0); // connected, answering pings, and mute
  await new Promise((resolve) => setTimeout(resolve, 50)); // let in-flight frames land
  const from = link.states.length;
  link.clock.advance(59_000);
  t.equal(link.manager.state, 'live', 'below the threshold');
  link.clock.advance(1000);
  const lost = await link.reach('backoff', from);
  t.match(lost.reason, /no data for 60000 ms while trades or quotes are subscribed/);
  t.equal(link.manager.stats.staleReconnects, 1);
  sim.setRate(2000);
  link.clock.advance(lost.delayMs as number);
  await link.manager.whenLive();
});

t.test('subscription changes go out incrementally on the live link, without a reconnect', async (t) => {
  const sim = await startSimulator(t);
  const link = linkTo(t, sim);
  const requests: { action: string; bytes: number }[] = [];
  sim.on('subscription', (e: { action: string; bytes: number }) => requests.push(e));
  link.manager.start();
  await link.manager.whenLive();
  link.manager.setDesired(new ChannelSet({ trades: ['AAPL'] }));
  link.manager.setDesired(new ChannelSet({ trades: ['AAPL', 'MSFT'] }));
  link.manager.setDesired(new ChannelSet({ trades: ['AAPL', 'MSFT'], quotes: ['AMD'] }));
  await link.manager.whenSynced();
  t.equal(requests.length, 1, 'three changes in one turn went out as one request');
  link.manager.setDesired(new ChannelSet({ trades: ['MSFT'], quotes: ['AMD', 'NVDA'] }));
  await link.manager.whenSynced();
  t.same(
    requests.map((r) => r.action),
    ['subscribe', 'subscribe', 'unsubscribe'],
    'then only the difference: subscribe NVDA, unsubscribe AAPL',
  );
  const held = sim.sessions()[0]!.subscriptions;
  t.same([held.trades, held.quotes], [['MSFT'], ['AMD', 'NVDA']], 'the vendor holds exactly the desired set');
  t.same(link.manager.acknowledged.toLists(), { ...emptyChannelSymbols(), trades: ['MSFT'], quotes: ['AMD', 'NVDA'] });
  t.equal(sim.stats.connections, 1, 'never reconnected');
});

t.test('after a drop the whole desired set is restored in one pass before the link counts as live', async (t) => {
  const sim = await startSimulator(t);
  const link = linkTo(t, sim);
  link.manager.start();
  await link.manager.whenLive();
  link.manager.setDesired(new ChannelSet({ trades: ['AAPL', 'MSFT'], bars: ['*'], lulds: ['TSLA'] }));
  await link.manager.whenSynced();
  const requests: number[] = [];
  let heldWhenLive: unknown;
  sim.on('subscription', (e: { session: { id: number } }) => requests.push(e.session.id));
  link.manager.on('state', (s) => {
    if (s.to === 'live') heldWhenLive = sim.sessions().find((x) => x.authenticated)?.subscriptions;
  });
  const from = link.states.length;
  sim.dropAll({ terminate: true });
  const backoff = await link.reach('backoff', from);
  link.clock.advance(backoff.delayMs as number);
  await link.manager.whenLive();
  t.equal(requests.length, 1, 'one request restored everything');
  t.same(heldWhenLive, { ...emptyChannelSymbols(), trades: ['AAPL', 'MSFT'], bars: ['*'], lulds: ['TSLA'] }, 'restored before live');
});

t.test('a 10,000-symbol set is sent in frames under 32 KiB and fully acknowledged', async (t) => {
  const sim = await startSimulator(t);
  const link = linkTo(t, sim);
  link.manager.start();
  await link.manager.whenLive();
  const symbols = Array.from({ length: 10_000 }, (_, i) => `S${String(i).padStart(5, '0')}`);
  link.manager.setDesired(new ChannelSet({ trades: symbols, quotes: symbols }));
  await link.manager.whenSynced();
  const session = sim.sessions()[0]!;
  t.equal(session.subscriptions.trades.length, 10_000);
  t.equal(session.subscriptions.quotes.length, 10_000);
  const sizes = session.inboundSizes.slice(1); // after the auth frame
  t.ok(sizes.length >= 4, `${sizes.length} frames`);
  t.ok(Math.max(...sizes) <= 32 * 1024, `largest frame ${Math.max(...sizes)} bytes ≤ 32 KiB`);
  t.equal(link.manager.acknowledged.size, 20_000);
});

t.test('a refusal reaches the owner and leaves the link up', async (t) => {
  const sim = await startSimulator(t, { credentials: [{ key: 'AKLINKTEST', secret: 'link-secret-value', plan: { maxSymbols: 2 } }] });
  const link = linkTo(t, sim);
  const refusals: Refusal[] = [];
  link.manager.on('refused', (r) => refusals.push(r));
  link.manager.start();
  await link.manager.whenLive();
  link.manager.setDesired(new ChannelSet({ trades: ['AAPL', 'MSFT'] }));
  await link.manager.whenSynced();
  link.manager.setDesired(new ChannelSet({ trades: ['AAPL', 'MSFT', 'NVDA'] }), { correlationId: 'client-42' });
  await link.manager.whenSynced();
  t.same(refusals, [{ code: 405, message: 'symbol limit exceeded', action: 'subscribe', set: { ...emptyChannelSymbols(), trades: ['NVDA'] }, correlationId: 'client-42' }]);
  t.same(link.manager.status().refused.trades, ['NVDA']);
  t.equal(link.manager.state, 'live');
  link.manager.setDesired(new ChannelSet({ trades: ['AAPL', 'MSFT', 'NVDA', 'TSLA'] }));
  await link.manager.whenSynced();
  t.equal(refusals.length, 2, 'a refused symbol is not asked for again with every change; the new one is');
  sim.rejectSubscribe(410);
  link.manager.setDesired(new ChannelSet({ trades: ['AAPL'] }));
  await link.manager.whenSynced();
  t.equal(refusals.at(-1)?.code, 410, 'a refused unsubscribe is reported too');
  t.equal(sim.stats.connections, 1, 'refusals never drop the link');
});

t.test('a throwing consumer does not stop data', async (t) => {
  const sim = await startSimulator(t, { rate: 2000 });
  let calls = 0;
  const link = linkTo(t, sim, {
    onData: () => {
      calls += 1;
      if (calls <= 3) throw new Error('consumer bug');
    },
  });
  link.manager.start();
  await link.manager.whenLive();
  link.manager.setDesired(new ChannelSet({ quotes: ['AAPL'] }));
  await eventually(() => calls > 10, 'data after the consumer threw');
  t.equal(link.manager.stats.consumerErrors, 3);
  t.equal(link.manager.state, 'live');
  t.ok(link.logs().some((l) => l.includes('data consumer threw') && l.includes('consumer bug')), 'logged with the error');
});

t.test('bad frames from the vendor are logged and skipped; unknown types are handed on', async (t) => {
  const sim = await startSimulator(t);
  const link = linkTo(t, sim);
  const vendorErrors: { code: number }[] = [];
  link.manager.on('vendor-error', (e) => vendorErrors.push(e));
  link.manager.start();
  await link.manager.whenLive();
  for (const kind of ['garbage', 'not-array', 'not-object', 'unknown-type', 'unknown-error'] as const) sim.sendMalformed(kind);
  const errorSeen = next(link.manager, 'vendor-error');
  await errorSeen;
  t.equal(link.manager.stats.malformedFrames, 2, 'garbage and a non-array frame counted');
  t.same(link.units.map((u) => u.type), [undefined, 'zz'], 'a non-object element and an unknown type are handed on');
  t.same(vendorErrors, [{ code: 499, message: 'a code the gateway has never seen' }]);
  t.equal(link.manager.state, 'live', 'never wedged');
  t.ok(link.logs().some((l) => l.includes('malformed frame from the vendor')), 'logged with context');
  link.manager.setDesired(new ChannelSet({ trades: ['AAPL'] }));
  await link.manager.whenSynced();
  t.pass('and still answers');
});

t.test('every log line of a restart carries its correlation id; no line carries a secret', async (t) => {
  const sim = await startSimulator(t);
  const { logger, lines } = captureLogs('trace');
  const link = linkTo(t, sim, { logger });
  link.manager.start();
  await link.manager.whenLive();
  link.manager.setDesired(new ChannelSet({ trades: ['AAPL'] }));
  await link.manager.whenSynced();
  const mark = lines().length;
  await link.manager.restart({ correlationId: 'req-7f3a' }).settled;
  await link.manager.whenLive();
  await link.manager.whenSynced();
  const restartLines = lines().slice(mark);
  t.ok(restartLines.length >= 6, `${restartLines.length} lines`);
  for (const line of restartLines) t.match(line, '"correlationId":"req-7f3a"', JSON.parse(line).msg);
  const all = lines().join('\n');
  t.notMatch(all, 'link-secret-value', 'the secret never appears');
  t.notMatch(all, 'AKLINKTEST', 'nor the key id');
});

t.test('the watchdog follows the kind: a news link is never judged stale, a crypto link on order books alone is', async (t) => {
  const sim = await startSimulator(t);
  const news = linkTo(t, sim, { url: sim.url('v1beta1/news'), heartbeatMs: 1000, pongTimeoutMs: 3_600_000, staleAfterMs: 60_000 });
  t.equal(news.manager.kind.name, 'news', 'the kind of the URL’s path');
  news.manager.start();
  await news.manager.whenLive();
  news.manager.setDesired(new ChannelSet({ news: ['*'] }));
  await news.manager.whenSynced();
  sim.publish([{ T: 'n', id: 1, headline: 'h', symbols: ['AAPL'] }, { T: 'n', id: 2, headline: 'h', symbols: [] }], 'v1beta1/news');
  await eventually(() => news.units.length === 2, 'two news items');
  t.same(news.units.map((u) => u.symbols), [['AAPL'], []], 'cut with their symbols lists');
  news.clock.advance(600_000);
  t.equal(news.manager.state, 'live', 'ten quiet minutes of news are not a dead link');

  const crypto = linkTo(t, sim, { url: sim.url('v1beta3/crypto/us'), heartbeatMs: 1000, pongTimeoutMs: 3_600_000, staleAfterMs: 60_000 });
  crypto.manager.start();
  await crypto.manager.whenLive();
  crypto.manager.setDesired(new ChannelSet({ orderbooks: ['BTC/USD'] }));
  await crypto.manager.whenSynced();
  await eventually(() => crypto.units.some((u) => u.type === 'o'), 'the vendor’s book snapshot');
  const from = crypto.states.length;
  crypto.clock.advance(60_000);
  const lost = await crypto.reach('backoff', from);
  t.match(lost.reason, /no data for \d+ ms while trades or quotes or orderbooks are subscribed/);
});

t.test('a link sends only its kind’s channels: another stream’s pairs never reach the vendor', async (t) => {
  const sim = await startSimulator(t);
  const link = linkTo(t, sim, { url: sim.url('v1beta3/crypto/us') });
  link.manager.start();
  await link.manager.whenLive();
  link.manager.setDesired(new ChannelSet({ trades: ['BTC/USD'], statuses: ['AAPL'] }));
  await link.manager.whenSynced();
  const vendor = sim.sessions().find((s) => s.authenticated)!;
  t.same(vendor.subscriptions.trades, ['BTC/USD']);
  t.same(vendor.subscriptions.statuses, [], 'no 410 from the vendor for a key crypto lacks: it was never sent');
  t.equal(link.manager.stats.subscriptionFrames, 1);
  t.same(link.manager.desired.toLists().statuses, [], 'nor is it kept as wanted');
  t.ok(link.logs().some((l) => l.includes('pair on a channel this stream lacks ignored')), 'the slip is logged');
});
