/**
 * The vendor link against a vendor that misbehaves, and against callers that hammer it: whatever
 * they do, the link sends the vendor a bounded number of frames, keeps the subscriptions it was
 * given, and never opens a connection it was told not to (DESIGN.md §11).
 */
import t from 'tap';
import { systemClock } from '../../src/clock.js';
import { ChannelSet } from '../../src/protocol/channel-set.js';
import type { VendorSimulator } from '../../src/simulator/index.js';
import { Secret } from '../../src/secret.js';
import type { Refusal } from '../../src/upstream/stream-manager.js';
import { VendorConnection } from '../../src/upstream/vendor-connection.js';
import { type LinkFixture, linkTo } from '../helpers/link.js';
import { captureLogs } from '../helpers/log-capture.js';
import { startSimulator } from '../helpers/simulator.js';
import { eventually } from '../helpers/wait.js';

/** Subscription frames the vendor has received from the link's current session (the auth frame aside). */
function vendorFrames(sim: VendorSimulator): number {
  return sim.sessions().reduce((n, s) => n + (s.authenticated ? s.inboundSizes.length - 1 : 0), 0);
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Moves the fake clock through `ms`, timer by timer, and before each step waits until every frame
 * the link sent has its answer — so the count of frames depends on the link's timers alone.
 */
async function runFor(link: LinkFixture, ms: number): Promise<void> {
  const end = link.clock.now() + ms;
  while (link.clock.now() < end) {
    await turn(); // a change's sync starts in a microtask
    const { stats } = link.manager;
    await eventually(() => link.manager.stats.subscriptionReplies === stats.subscriptionFrames && link.manager.stats.subscriptionFrames === stats.subscriptionFrames, 'an answer to every frame the link sent');
    await turn(); // the reply's continuation schedules what follows
    const next = link.clock.pending()[0];
    link.clock.advance(next === undefined ? end - link.clock.now() : Math.min(Math.max(next.inMs, 1), end - link.clock.now()));
  }
}

t.test('a vendor answering every subscription request with 500: a few retries with backoff, the set kept', async (t) => {
  const sim = await startSimulator(t);
  const link = linkTo(t, sim, { subscribeMinIntervalMs: 100, retryBaseMs: 100, retryMaxMs: 3200 });
  const refusals: Refusal[] = [];
  link.manager.on('refused', (r) => refusals.push(r));
  link.manager.start();
  await link.manager.whenLive();
  sim.rejectSubscribe(500, 1_000_000);
  link.manager.setDesired(new ChannelSet({ trades: ['AAPL'], quotes: ['AAPL'] }));
  await runFor(link, 1000);
  const frames = vendorFrames(sim);
  // random() is 0.5: retries 75, 150, 300, 600 ms apart (the 100 ms floor lifts the first): 4 in a second.
  t.ok(frames >= 2 && frames <= 5, `${frames} subscription frames in one second (before: thousands)`);
  t.equal(link.manager.stats.transientSubscriptionErrors, frames, 'each was answered 500');
  t.same(refusals, [], 'a 500 is not a refusal: nobody is told their symbols are gone');
  t.same(link.manager.status().refused.trades, [], 'nothing marked refused');
  t.same(link.manager.desired.toLists().trades, ['AAPL'], 'the desired set is kept');
  t.equal(link.manager.state, 'live', 'the link stays up');
  await runFor(link, 4000);
  t.ok(vendorFrames(sim) - frames <= 3, 'still backing off: 1.2 s, 2.4 s apart');
  sim.clearFaults();
  await runFor(link, 4000);
  await link.manager.whenSynced();
  t.same(sim.sessions()[0]?.subscriptions.trades, ['AAPL'], 'the vendor holds the set once it recovers');
});

t.test('a vendor that acknowledges an unsubscribe but keeps the pair is asked once, and the link settles', async (t) => {
  const sim = await startSimulator(t);
  const link = linkTo(t, sim, { subscribeMinIntervalMs: 100 });
  link.manager.start();
  await link.manager.whenLive();
  link.manager.setDesired(new ChannelSet({ trades: ['AAPL', 'MSFT'] }));
  await link.manager.whenSynced();
  const before = vendorFrames(sim);
  sim.keepOnUnsubscribe();
  link.manager.setDesired(new ChannelSet({ trades: ['AAPL'] }));
  await runFor(link, 200);
  await link.manager.whenSynced(); // before: never settled, and 6,541 frames a second
  await runFor(link, 3000);
  t.equal(vendorFrames(sim) - before, 1, 'one unsubscribe, then nothing more');
  t.same(sim.sessions()[0]?.subscriptions.trades, ['AAPL', 'MSFT'], 'the vendor kept MSFT');
  sim.keepOnUnsubscribe(false);
  link.manager.setDesired(new ChannelSet({ trades: ['AAPL', 'MSFT'] }));
  link.manager.setDesired(new ChannelSet({ trades: ['AAPL'] }));
  await runFor(link, 200);
  await link.manager.whenSynced();
  t.same(sim.sessions()[0]?.subscriptions.trades, ['AAPL'], 'a pair that changes again is asked about afresh');
});

t.test('a caller toggling one symbol every 5 ms: at most one vendor frame per SUBSCRIBE_MIN_INTERVAL_MS', async (t) => {
  const sim = await startSimulator(t);
  const link = linkTo(t, sim, { subscribeMinIntervalMs: 100 });
  link.manager.start();
  await link.manager.whenLive();
  link.manager.setDesired(new ChannelSet({ trades: ['AAPL'] }));
  await link.manager.whenSynced();
  const before = vendorFrames(sim);
  for (let i = 0; i < 600; i++) {
    link.manager.setDesired(new ChannelSet({ trades: i % 2 === 0 ? ['AAPL', 'MSFT'] : ['AAPL'] }));
    // Every frame is answered before the next toggle, so only the link's own floor can hold frames back.
    await turn();
    await eventually(() => link.manager.stats.subscriptionReplies === link.manager.stats.subscriptionFrames, 'the answer to the last frame');
    await turn();
    link.clock.advance(5);
  }
  await runFor(link, 200);
  await link.manager.whenSynced();
  const frames = vendorFrames(sim) - before;
  t.ok(frames <= 3000 / 100 + 2, `${frames} frames for 600 toggles over 3 s (before: 524)`);
  t.same(sim.sessions()[0]?.subscriptions.trades, ['AAPL'], 'the vendor converged on the final set');
});

t.test('a transient error while restoring after a drop keeps every subscription and retries', async (t) => {
  const sim = await startSimulator(t);
  const link = linkTo(t, sim, { retryBaseMs: 100 });
  const refusals: Refusal[] = [];
  link.manager.on('refused', (r) => refusals.push(r));
  link.manager.start();
  await link.manager.whenLive();
  link.manager.setDesired(new ChannelSet({ trades: ['AAPL'], bars: ['*'] }));
  await link.manager.whenSynced();
  sim.rejectSubscribe(500, 1);
  const from = link.states.length;
  sim.dropAll({ terminate: true });
  const lost = await link.reach('backoff', from);
  link.clock.advance(lost.delayMs as number);
  await eventually(() => link.manager.stats.transientSubscriptionErrors === 1, 'the restore to meet the 500');
  t.not(link.manager.state, 'live', 'not live while the restore is incomplete');
  t.same(refusals, [], 'nothing refused');
  await runFor(link, 200);
  await link.manager.whenLive();
  const held = sim.sessions().find((s) => s.authenticated)?.subscriptions;
  t.same([held?.trades, held?.bars], [['AAPL'], ['*']], 'restored in full after the retry');
});

t.test('a stale-data reconnect closes the old socket cleanly', async (t) => {
  const sim = await startSimulator(t, { rate: 2000 });
  const link = linkTo(t, sim, { heartbeatMs: 1000, staleAfterMs: 60_000 });
  link.manager.start();
  await link.manager.whenLive();
  link.manager.setDesired(new ChannelSet({ trades: ['AAPL'] }));
  await link.manager.whenSynced();
  await eventually(() => link.units.length > 10, 'trades flowing');
  sim.setRate(0); // connected, answering pings, and mute
  await new Promise((resolve) => setTimeout(resolve, 50)); // let in-flight frames land
  const closed: { closeCode: number | undefined }[] = [];
  sim.on('closed', (info: { closeCode: number | undefined }) => closed.push(info));
  const from = link.states.length;
  link.clock.advance(60_000);
  const stale = await link.reach('backoff', from);
  t.match(stale.reason, /no data for/);
  await eventually(() => closed.length === 1, 'the vendor to see the old session close');
  t.equal(closed[0]?.closeCode, 1000, 'closed with 1000: the vendor holds no zombie session against the next connect (before: 1006)');
  sim.setRate(2000);
  link.clock.advance(stale.delayMs as number);
  await link.manager.whenLive();
  t.equal(sim.stats.maxConcurrentPerKey, 1, 'the new session came after the old one was gone');
});

t.test('a socket that stops answering pings is cut, not closed politely', async (t) => {
  const sim = await startSimulator(t);
  const link = linkTo(t, sim, { heartbeatMs: 1000, pongTimeoutMs: 500 });
  link.manager.start();
  await link.manager.whenLive();
  const closed: { closeCode: number | undefined }[] = [];
  sim.on('closed', (info: { closeCode: number | undefined }) => closed.push(info));
  sim.stall(3_600_000);
  const from = link.states.length;
  link.clock.advance(1000); // ping
  link.clock.advance(500); // no pong
  await link.reach('backoff', from);
  await eventually(() => closed.length === 1, 'the vendor to see the session go');
  t.equal(closed[0]?.closeCode, 1006, 'cut without a close frame');
  sim.resume();
});

t.test('a shutdown cancels a restart in flight: no vendor connection is opened after it', async (t) => {
  const sim = await startSimulator(t);
  const link = linkTo(t, sim);
  link.manager.start();
  await link.manager.whenLive();
  const restart = link.manager.restart({ correlationId: 'operator' });
  const shutdownAt = link.states.length;
  await link.manager.shutdown();
  await restart.settled;
  t.same(
    link.states.slice(shutdownAt).map((s) => s.to),
    ['stopped'],
    'the restart stopped the link and nothing started it again (before: connecting)',
  );
  link.manager.start();
  t.same(link.manager.restart().joined, false);
  t.equal(link.manager.state, 'stopped', 'start() and restart() are ignored after a shutdown');
  await eventually(() => sim.sessions().length === 0, 'the vendor to see no connection');
  t.equal(sim.stats.connections, 1, 'one connection in all');
});

t.test('restarts within RESTART_COALESCE_MS of the last one share its id and cause no reconnect', async (t) => {
  const sim = await startSimulator(t);
  const link = linkTo(t, sim, { restartCoalesceMs: 1000 });
  link.manager.start();
  await link.manager.whenLive();
  const first = link.manager.restart({ correlationId: 'a' });
  const during = link.manager.restart({ correlationId: 'b' });
  await first.settled;
  link.clock.advance(999);
  const after = link.manager.restart({ correlationId: 'c' });
  t.same([during.id, after.id], [first.id, first.id], 'one id for the three');
  t.same([first.joined, during.joined, after.joined], [false, true, true]);
  await after.settled;
  t.equal(sim.stats.connections, 2, 'one reconnect');
  link.clock.advance(1);
  const later = link.manager.restart({ correlationId: 'd' });
  t.not(later.id, first.id, 'past the window a restart is a new one');
  await later.settled;
  await link.manager.whenLive();
  t.equal(sim.stats.connections, 3);
});

t.test('a subscription request on a connection that is closing fails at once and leaves nothing to reject later', async (t) => {
  const sim = await startSimulator(t);
  const handlers = { onData: () => {}, onUnsolicited: () => {}, onMalformed: () => {}, onClose: () => {}, onPong: () => {}, onBytes: () => {} };
  const connection = VendorConnection.create({ url: sim.url('iex'), encoding: 'json', clock: systemClock, logger: captureLogs('silent').logger, handlers });
  await connection.greeting(5000);
  await connection.authenticate(new Secret('k'), new Secret('s'), 5000);
  const closing = connection.close(5000);
  // Before: the reply wait was set up before the send threw, and its later rejection had no
  // handler — an unhandled rejection that took the whole gateway down on a clean vendor drop.
  await t.rejects(connection.request(Buffer.from('{"action":"subscribe","trades":["AAPL"]}'), 5000), { code: 'ERR_UPSTREAM_CLOSED' });
  await closing;
  await new Promise((resolve) => setImmediate(resolve));
});
