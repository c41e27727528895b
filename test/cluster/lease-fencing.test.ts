import { JetStreamApiError } from '@nats-io/jetstream';
import type { KV, KvEntry } from '@nats-io/kv';
import t, { type Test } from 'tap';
import { Lease } from '../../src/cluster/lease.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { captureLogs } from '../helpers/log-capture.js';

const TTL_MS = 3000;

/** A KV that holds one key and whose writes the test makes succeed or fail. */
class FakeKv {
  revision = 0;
  value = '';
  /** what the next updates do: 'ok', 'timeout' (no answer) or 'mismatch' (someone else wrote) */
  updates: 'ok' | 'timeout' | 'mismatch' = 'ok';
  /** a timed-out update was nevertheless written */
  landsAnyway = false;

  async create(_key: string, value: string): Promise<number> {
    if (this.revision !== 0) throw wrongLastSequence();
    this.value = value;
    return ++this.revision;
  }

  async update(_key: string, value: string, revision: number): Promise<number> {
    if (this.updates === 'timeout') {
      if (this.landsAnyway) {
        this.value = value;
        this.revision++;
      }
      throw new Error('TIMEOUT');
    }
    if (this.updates === 'mismatch') {
      this.value = '{"node":"intruder","version":"x","since":"y"}';
      this.revision++;
    }
    if (revision !== this.revision) throw wrongLastSequence();
    this.value = value;
    return ++this.revision;
  }

  async get(): Promise<KvEntry | null> {
    const value = this.value;
    return { operation: 'PUT', revision: this.revision, string: () => value, length: value.length } as unknown as KvEntry;
  }

  async delete(): Promise<void> {
    this.revision++;
  }

  watch(): Promise<never> {
    return Promise.reject(new Error('no watch in this fake'));
  }
}

function wrongLastSequence(): JetStreamApiError {
  return new JetStreamApiError({ code: 400, err_code: 10071, description: 'wrong last sequence' });
}

/** Lets the lease's awaited KV calls settle. */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function owner(t: Test) {
  const clock = new FakeClock();
  const kv = new FakeKv();
  const lost: number[] = [];
  const lease = new Lease({
    kv: kv as unknown as KV,
    ttlMs: TTL_MS,
    path: 'v2/iex',
    node: 'a',
    version: '0.0.0-test',
    clock,
    logger: captureLogs().logger,
    onLost: () => lost.push(clock.now()),
  });
  t.teardown(() => lease.stop());
  const start = clock.now();
  await lease.start();
  t.equal(lease.owning, true);
  /** advances the fake clock by `ms`, letting each renewal's KV call settle */
  const advance = async (ms: number): Promise<void> => {
    for (let i = 0; i < ms; i += 100) {
      clock.advance(Math.min(100, ms - i));
      await settle();
    }
  };
  return { clock, kv, lease, lost, start, advance };
}

t.test('an owner whose renewals get no answer is fenced TTL − TTL/3 after its last confirmed write', async (t) => {
  const o = await owner(t);
  o.kv.updates = 'timeout';
  await o.advance(1999);
  t.equal(o.lease.owning, true, 'still owner one millisecond before the fence');
  await o.advance(1);
  t.same(o.lost, [o.start + 2000], 'fenced at acquisition + 2000 ms, 1000 ms before the key could expire');
  t.equal(o.lease.state, 'following');
});

t.test('a confirmed renewal moves the fence on', async (t) => {
  const o = await owner(t);
  await o.advance(1000); // the first renewal succeeds at +1000
  o.kv.updates = 'timeout';
  await o.advance(1999);
  t.equal(o.lease.owning, true);
  await o.advance(1);
  t.same(o.lost, [o.start + 3000], 'fenced 2000 ms after the last confirmed write');
});

t.test('a renewal refused for a changed revision loses the lease at once', async (t) => {
  const o = await owner(t);
  o.kv.updates = 'mismatch';
  await o.advance(1000);
  t.same(o.lost, [o.start + 1000], 'lost at the first refused renewal, not at the fence');
});

t.test('a renewal that timed out but was written is adopted, not taken for a loss', async (t) => {
  const o = await owner(t);
  o.kv.updates = 'timeout';
  o.kv.landsAnyway = true;
  await o.advance(1000);
  o.kv.updates = 'ok';
  o.kv.landsAnyway = false;
  await o.advance(1000); // revision mismatch → the key holds our bytes → adopt its revision
  await o.advance(1000); // renews with the adopted revision
  t.equal(o.lease.owning, true);
  t.same(o.lost, []);
  t.equal(o.kv.value.includes('"node":"a"'), true);
});

t.test('stop clears every timer the lease set', async (t) => {
  const o = await owner(t);
  t.ok(o.clock.pending().length > 0);
  o.lease.stop();
  t.same(o.clock.pending(), [], 'no renewal, fence or poll left');
  t.equal(o.lease.state, 'stopped');
});
