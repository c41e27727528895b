import t from 'tap';
import { RateHistory } from '../../src/status/rate-history.js';
import { FakeClock } from '../helpers/fake-clock.js';

t.test('rates per second come from the counters on the injected clock; the ring keeps the last points; stop leaves no timer', async (t) => {
  const clock = new FakeClock();
  const counters = { messages: 0, deliveries: 0 };
  let samples = 0;
  const history = new RateHistory({
    clock,
    points: 3,
    sources: [{ path: 'v2/iex', messages: () => counters.messages, deliveries: () => counters.deliveries }],
    onSample: () => {
      samples += 1;
    },
  });
  t.same(history.history('v2/iex'), [], 'nothing before the first sample');
  history.start();
  history.start(); // idempotent: still one timer
  t.equal(clock.pending().length, 1);
  for (const [messages, deliveries] of [[100, 300], [50, 0], [0, 10], [20, 40]]) {
    counters.messages += messages!;
    counters.deliveries += deliveries!;
    clock.advance(1000);
  }
  t.equal(samples, 4, 'one sample a second');
  t.same(
    history.history('v2/iex').map((p) => [p.messages, p.deliveries]),
    [[50, 0], [0, 10], [20, 40]],
    'the last three points, oldest first, per second',
  );
  t.equal(history.latest('v2/iex')?.at, clock.now());
  counters.messages = 0; // a counter that started over
  clock.advance(1000);
  t.equal(history.latest('v2/iex')?.messages, 0, 'is not a negative rate');
  counters.messages = 500;
  history.stop();
  t.same(clock.pending(), [], 'no timer left behind');
  clock.advance(5000);
  t.equal(samples, 5, 'no sample after stop');
  history.sample();
  clock.advance(0);
  t.equal(history.latest('v2/iex')?.messages, 500 / 5, 'a sample counts the clock time since the last one');
  t.same(history.history('elsewhere'), [], 'an unknown stream has no history');
});
