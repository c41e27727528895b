import type { KV } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import t, { type Test } from 'tap';
import { type AcquiredVia, Lease, type LeaseOptions, openLeaseBucket } from '../../src/cluster/lease.js';
import { leaseKey } from '../../src/cluster/subjects.js';
import { systemClock } from '../../src/clock.js';
import { captureLogs } from '../helpers/log-capture.js';
import { NATS_SKIP, type NatsServer, startNats } from '../helpers/nats.js';
import { eventually } from '../helpers/wait.js';

const PATH = 'v2/iex';
const KEY = leaseKey(PATH);
// Short enough to keep the file fast, above LEASE_TTL_MS's minimum: renew 500 ms, fence 1000 ms.
const TTL_MS = 1500;
const WAIT_MS = 10_000;

interface LeaseEvent {
  node: string;
  kind: 'acquired' | 'lost';
  via?: AcquiredVia;
  at: number;
}

interface Node {
  id: string;
  nc: NatsConnection;
  kv: KV;
  lease: Lease;
}

interface Cluster {
  server: NatsServer;
  events: LeaseEvent[];
  logs: ReturnType<typeof captureLogs>;
  add(id: string, options?: Partial<LeaseOptions>): Promise<Node>;
  /** nodes `a` (started first: the owner) and `b` (a follower) */
  pair(): Promise<[Node, Node]>;
  /** how many leases count themselves owner right now */
  owners(): string[];
  /** samples `owners()` every few milliseconds until stopped; returns the largest count seen */
  sample(): { stop(): number };
}

/** A nats-server and a way to add nodes (a connection, the lease bucket and one Lease each). */
async function cluster(t: Test): Promise<Cluster> {
  const nodes: Node[] = [];
  // Registered before the server's own teardown, so connections close while it still runs.
  t.teardown(async () => {
    for (const node of nodes) node.lease.stop();
    await Promise.all(nodes.map((node) => node.nc.close()));
  });
  const server = await startNats(t);
  const events: LeaseEvent[] = [];
  const logs = captureLogs('debug');
  const fixture: Cluster = {
    server,
    events,
    logs,
    async add(id, options = {}) {
      const nc = await connect({ servers: server.url, reconnectTimeWait: 50, maxReconnectAttempts: -1 });
      const { kv, ttlMs } = await openLeaseBucket(nc, 'test', TTL_MS, logs.logger);
      const lease = new Lease({
        kv,
        ttlMs,
        path: PATH,
        node: id,
        version: '0.0.0-test',
        clock: systemClock,
        logger: logs.logger,
        onAcquired: (via) => events.push({ node: id, kind: 'acquired', via, at: Date.now() }),
        onLost: () => events.push({ node: id, kind: 'lost', at: Date.now() }),
        ...options,
      });
      const node = { id, nc, kv, lease };
      nodes.push(node);
      return node;
    },
    async pair() {
      const a = await fixture.add('a');
      const b = await fixture.add('b');
      await a.lease.start();
      await b.lease.start();
      return [a, b];
    },
    owners: () => nodes.filter((n) => n.lease.owning).map((n) => n.id),
    sample() {
      let most = 0;
      const timer = setInterval(() => (most = Math.max(most, nodes.filter((n) => n.lease.owning).length)), 2);
      return {
        stop: () => {
          clearInterval(timer);
          return most;
        },
      };
    },
  };
  return fixture;
}

const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const indexOf = (events: LeaseEvent[], node: string, kind: LeaseEvent['kind']): number => events.findIndex((e) => e.node === node && e.kind === kind);

t.test('leases on a real nats-server', { skip: NATS_SKIP }, async (t) => {
  t.test('three nodes starting together: exactly one owns, and renewals keep it past the TTL', async (t) => {
    const c = await cluster(t);
    const nodes = await Promise.all(['a', 'b', 'c'].map((id) => c.add(id)));
    const sampler = c.sample();
    await Promise.all(nodes.map((n) => n.lease.start()));
    t.equal(c.owners().length, 1, 'one owner once every start has settled');
    const owner = c.owners()[0]!;
    const first = await nodes[0]!.kv.get(KEY);
    t.equal(JSON.parse(first!.string()).node, owner, 'the key names the owner');
    await delay(TTL_MS * 1.5);
    t.equal(sampler.stop(), 1, 'never more than one owner at any sample');
    t.same(c.owners(), [owner], 'the same owner after 1.5 TTLs');
    const later = await nodes[0]!.kv.get(KEY);
    t.ok(later!.revision > first!.revision, 'the owner renewed (the revision moved on)');
    t.same(
      c.events.map((e) => [e.node, e.kind, e.via]),
      [[owner, 'acquired', 'start']],
      'one acquisition, no loss',
    );
    const value = JSON.parse(later!.string()) as Record<string, unknown>;
    t.same(Object.keys(value).sort(), ['node', 'since', 'version']);
  });

  t.test('an owner that dies is fenced before its lease expires, and only then does another node acquire', async (t) => {
    const c = await cluster(t);
    const [a, b] = await c.pair();
    t.same(c.owners(), ['a']);
    const sampler = c.sample();
    await a.nc.close(); // the owner's NATS link is gone: no more renewals, no release
    const last = await b.kv.get(KEY);
    await eventually(() => b.lease.owning, 'b to acquire', WAIT_MS);
    t.equal(sampler.stop(), 1, 'never two owners');
    const lost = indexOf(c.events, 'a', 'lost');
    const acquired = c.events.findIndex((e) => e.node === 'b' && e.kind === 'acquired');
    t.ok(lost >= 0 && lost < acquired, "a's onLost came before b acquired");
    t.equal(c.events[acquired]!.via, 'poll', 'noticed by polling: on nats-server 2.9 a watch does not see an entry expire');
    // Against NATS's own timestamp of a's last write (same machine clock), not a measured duration.
    t.ok(c.events[acquired]!.at >= last!.created.getTime() + TTL_MS, "b acquired no earlier than a's last write + TTL");
    t.ok(c.events[lost]!.at < last!.created.getTime() + TTL_MS, 'a was fenced before its lease could expire');
    t.equal(a.lease.state, 'following');
  });

  t.test('a clean release hands over at once through the watch, without waiting for the TTL', async (t) => {
    const c = await cluster(t);
    const a = await c.add('a');
    // b polls too rarely to matter here: only the watch can make it acquire within the test.
    const b = await c.add('b', { pollMs: 60_000 });
    await a.lease.start();
    await b.lease.start();
    t.same(c.owners(), ['a']);
    const last = await a.kv.get(KEY);
    await a.lease.release();
    t.equal(a.lease.state, 'stopped');
    await eventually(() => b.lease.owning, 'b to acquire', WAIT_MS);
    const acquired = c.events.find((e) => e.node === 'b' && e.kind === 'acquired')!;
    t.equal(acquired.via, 'watch', 'the delete reached b through its watch');
    t.ok(acquired.at < last!.created.getTime() + TTL_MS, "b acquired before a's lease would have expired");
    t.equal(indexOf(c.events, 'a', 'lost'), -1, 'a release is not a loss');
  });

  t.test('NATS restarted under an owner: never two owners, and one owner again afterwards', async (t) => {
    const c = await cluster(t);
    const [a] = await c.pair();
    t.same(c.owners(), ['a']);
    const sampler = c.sample();
    await c.server.restart();
    await eventually(() => c.owners().length === 1 && a.nc.isClosed() === false, 'an owner after the restart', WAIT_MS);
    await delay(TTL_MS); // renewals (or a takeover) run on the restarted server
    t.equal(sampler.stop(), 1, 'never two owners at any sample');
    t.equal(c.owners().length, 1, 'one owner');
    t.comment(`events across the restart: ${c.events.map((e) => `${e.node} ${e.kind}${e.via === undefined ? '' : ` (${e.via})`}`).join(', ')}`);
    // Ownership intervals from the events never overlap either.
    let holder: string | undefined;
    for (const e of c.events) {
      if (e.kind === 'acquired') {
        t.equal(holder, undefined, `${e.node} acquired while nobody held the lease`);
        holder = e.node;
      } else if (e.node === holder) holder = undefined;
    }
  });

  t.test('NATS down for longer than the TTL: the owner fences itself, and after the restart exactly one node owns', async (t) => {
    const c = await cluster(t);
    const [a] = await c.pair();
    const sampler = c.sample();
    await c.server.stop();
    await eventually(() => !a.lease.owning, 'a to fence itself while NATS is down', WAIT_MS);
    t.same(c.events.map((e) => [e.node, e.kind]), [['a', 'acquired'], ['a', 'lost']], 'fenced with nobody else owning');
    await delay(TTL_MS); // the lease's age is now past the TTL
    await c.server.restart();
    await eventually(() => c.owners().length === 1, 'an owner after the restart', WAIT_MS);
    await delay(TTL_MS / 2);
    t.equal(sampler.stop(), 1, 'never two owners at any sample');
    t.equal(c.owners().length, 1);
    t.equal(c.events.filter((e) => e.kind === 'acquired').length, 2, 'one acquisition after the restart');
  });

  t.test('a value tickmux did not write is logged and held until it expires, never a crash', async (t) => {
    const c = await cluster(t);
    const a = await c.add('a');
    await a.kv.put(KEY, 'not json {');
    await a.lease.start();
    t.equal(a.lease.owning, false, 'a foreign value counts as held');
    await eventually(() => c.logs.text().includes('did not write'), 'the foreign value to be logged', WAIT_MS);
    await eventually(() => a.lease.owning, 'a to acquire once the foreign value expired', WAIT_MS);
    t.equal(c.events[0]!.via, 'poll');
    const foreign = c.logs.lines().filter((l) => l.includes('did not write'));
    t.equal(foreign.length, 1, 'logged once for that revision, not on every poll');
    t.match(foreign[0], /"level":40/, 'as a warning');
  });
});
