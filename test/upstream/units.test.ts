import t from 'tap';
import { ChannelSet } from '../../src/protocol/channel-set.js';
import { decodeControlMessage } from '../../src/protocol/frame.js';
import { Backoff } from '../../src/upstream/backoff.js';
import { ConnectBreaker, isBreakerOpenError } from '../../src/upstream/connect-breaker.js';
import { StaleWatchdog } from '../../src/upstream/stale-watchdog.js';
import { buildRequests, MAX_REQUEST_BYTES } from '../../src/upstream/subscription-requests.js';

t.test('backoff doubles from the base to the cap, jittered between half and all, and resets', async (t) => {
  const draws = [0, 1, 0.5, 0, 1, 0.5, 0.5];
  let i = 0;
  const backoff = new Backoff(100, 1000, () => draws[i++ % draws.length] as number);
  const delays = Array.from({ length: 7 }, () => backoff.next());
  // nominal 100, 200, 400, 800, 1000, 1000, 1000 → between nominal/2 and nominal by the draw
  t.same(delays, [50, 200, 300, 400, 1000, 750, 750]);
  t.equal(backoff.attempt, 7);
  backoff.reset();
  t.equal(backoff.next(), 50, 'after a reset the sequence starts at the base again');
  const huge = new Backoff(1000, 30000, () => 1);
  for (let n = 0; n < 2000; n++) huge.next();
  t.equal(huge.next(), 30000, 'thousands of attempts stay at the cap (no overflow)');
});

/** Waits for opossum's reset timer, which is unref'd: a ref'd timer keeps this test process alive meanwhile. */
function halfOpen(breaker: ConnectBreaker): Promise<void> {
  return new Promise((resolve) => {
    const keepAlive = setTimeout(() => {}, 10_000);
    const off = breaker.onHalfOpen(() => {
      clearTimeout(keepAlive);
      off();
      resolve();
    });
  });
}

t.test('the breaker opens after N consecutive failures, a success resets the count, half-open lets one probe through', async (t) => {
  const breaker = new ConnectBreaker(3, 20);
  t.teardown(() => breaker.shutdown());
  const fail = (): Promise<void> => Promise.reject(new Error('refused'));
  const succeed = (): Promise<void> => Promise.resolve();
  await t.rejects(breaker.fire(fail));
  await t.rejects(breaker.fire(fail));
  await breaker.fire(succeed);
  t.equal(breaker.failures, 0, 'a success resets the consecutive count');
  t.equal(breaker.state, 'closed');
  for (let n = 0; n < 3; n++) await t.rejects(breaker.fire(fail));
  t.equal(breaker.state, 'open', 'three consecutive failures open it');
  let ran = false;
  const refused = await breaker
    .fire(async () => {
      ran = true;
    })
    .catch((err: unknown) => err);
  t.ok(isBreakerOpenError(refused), 'while open, attempts are refused');
  t.notOk(ran, 'and not run');
  await halfOpen(breaker);
  t.equal(breaker.state, 'half-open');
  await t.rejects(breaker.fire(fail));
  t.equal(breaker.state, 'open', 'a failed probe re-opens it');
  await halfOpen(breaker);
  await breaker.fire(succeed);
  t.equal(breaker.state, 'closed', 'a good probe closes it');
  for (let n = 0; n < 3; n++) await t.rejects(breaker.fire(fail));
  breaker.reset();
  t.equal(breaker.state, 'closed', 'reset closes it');
  t.equal(breaker.failures, 0, 'and forgets the failures');
});

t.test('the stale-data watchdog rule', async (t) => {
  const w = new StaleWatchdog(60_000);
  t.notOk(w.isStale(1_000_000, true), 'a link that never delivered data is quiet, not dead');
  w.onData(0);
  t.notOk(w.isStale(59_999, true), 'silence below the threshold');
  t.ok(w.isStale(60_000, true), 'silence at the threshold with trades or quotes subscribed');
  t.notOk(w.isStale(10_000_000, false), 'never with only quiet channels (bars, statuses…)');
  const sparse = new StaleWatchdog(60_000);
  sparse.onData(0);
  sparse.onData(30_000); // a naturally sparse feed: 30 s between messages
  t.equal(sparse.thresholdMs, 300_000, 'ten times the longest gap seen');
  t.notOk(sparse.isStale(30_000 + 200_000, true), 'a sparse feed earns a longer allowance');
  t.ok(sparse.isStale(30_000 + 300_000, true));
  sparse.reset();
  t.notOk(sparse.isStale(10_000_000, true), 'a new connection starts unjudged');
});

t.test('a 10,000-symbol subscription splits into frames of at most 32 KiB that cover every pair once', async (t) => {
  const symbols = Array.from({ length: 10_000 }, (_, i) => `SYM${String(i).padStart(5, '0')}.WX`);
  const set = new ChannelSet({ trades: symbols, quotes: symbols.slice(0, 5000), bars: ['*'] });
  for (const encoding of ['json', 'msgpack'] as const) {
    const requests = buildRequests('subscribe', set, encoding);
    t.ok(requests.length > 1, `${encoding}: more than one frame`);
    const largest = Math.max(...requests.map((r) => r.frame.length));
    t.ok(largest <= MAX_REQUEST_BYTES, `${encoding}: every frame ≤ 32 KiB (largest ${largest})`);
    t.ok(
      requests.slice(0, -1).every((r) => r.frame.length > MAX_REQUEST_BYTES * 0.9),
      `${encoding}: frames are filled, not many tiny ones`,
    );
    const union = new ChannelSet();
    let pairs = 0;
    for (const request of requests) {
      const decoded = decodeControlMessage(request.frame, encoding === 'msgpack') as Record<string, unknown>;
      t.equal(decoded.action, 'subscribe');
      const part = new ChannelSet(request.set);
      pairs += part.size;
      union.addAll(part);
      t.same(new ChannelSet(decoded as never).toLists(), part.toLists(), 'the frame says what the request says');
    }
    t.equal(pairs, set.size, `${encoding}: no pair sent twice`);
    t.ok(union.equals(set), `${encoding}: every pair sent`);
  }
  t.same(buildRequests('unsubscribe', new ChannelSet(), 'json'), [], 'nothing to send, no frame');
});
