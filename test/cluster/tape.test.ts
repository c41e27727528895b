/**
 * The cluster tape (issue #18, DESIGN.md §12): three gateway processes with TAPE=1 on one real
 * nats-server record the pinned AAPL trades into one JetStream stream; the owner is killed with
 * SIGKILL while recording; the next owner records a `tape_gap` for the time no owner recorded; and
 * a follower replays the whole window from JetStream: the trades in order, the gap at its place.
 */
import t from 'tap';
import { NATS_SKIP, startNats } from '../helpers/nats.js';
import { type Spawned, spawnNode } from '../helpers/processes.js';
import { startSimulator } from '../helpers/simulator.js';
import { type Message, StreamClient } from '../helpers/stream-client.js';
import { Timestamp } from '../../src/protocol/timestamp.js';

const STOCKS = 'v2/iex';
const LEASE_TTL_MS = 3000;
const GAP_REASON = 'no owner recorded (failover)';

interface Node {
  readonly id: string;
  readonly proc: Spawned;
  readonly base: string;
}

interface TapeBody {
  state: string;
  streams: { stream: string; from: string | null; to: string | null; messages: number; bytes: number; gaps: { from: string; to: string | null; reason: string }[] }[];
}

async function getJson<T>(url: string): Promise<T | undefined> {
  try {
    const res = await fetch(url);
    return res.ok ? ((await res.json()) as T) : undefined;
  } catch (err) {
    if (err instanceof TypeError) return undefined; // not listening (yet, or any more)
    throw err;
  }
}

async function until<T>(check: () => Promise<T | undefined | false>, what: string, limitMs = 20_000): Promise<T> {
  const deadline = Date.now() + limitMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const ms = (text: string): number => Number(Timestamp.parse(text).toEpochNanos() / 1_000_000n);

t.test('TAPE=1 on a cluster: recorded in JetStream across a kill -9 of the owner, one gap mark, replayed from a follower', { skip: NATS_SKIP }, async (t) => {
  const nats = await startNats(t);
  const sim = await startSimulator(t);
  let nextId = 1;
  const publisher = setInterval(() => sim.publish([{ T: 't', S: 'AAPL', i: nextId++, x: 'V', p: 100, s: 1, c: ['@'], t: new Date().toISOString(), z: 'C' }]), 5);
  t.teardown(() => clearInterval(publisher));

  const nodes: Node[] = [];
  for (const id of ['t1', 't2', 't3']) {
    const proc = spawnNode(t, ['dist/src/server.js'], {
      PORT: '0',
      UPSTREAM_URL: sim.baseUrl,
      STREAMS: STOCKS,
      APCA_API_KEY_ID: 'AKTAPE',
      APCA_API_SECRET_KEY: 'tape-secret',
      RETRY_BASE_MS: '50',
      RETRY_MAX_MS: '500',
      NATS_URL: nats.url,
      CLUSTER_NAME: 'tapetest',
      NODE_ID: id,
      LEASE_TTL_MS: String(LEASE_TTL_MS),
      TAPE: '1',
      SHUTDOWN_GRACE_MS: '3000',
    });
    const ready = JSON.parse(await proc.line(/tickmux ready/)) as { streams: string[] };
    nodes.push({ id, proc, base: (ready.streams[0] as string).replace(/^ws/, 'http').replace(`/${STOCKS}`, '') });
  }
  const ownerOf = async (among: Node[]): Promise<Node | undefined> => {
    const views = await Promise.all(among.map((n) => getJson<{ streams: Record<string, { owner: string | null; state: string }> }>(`${n.base}/cluster`)));
    const owners = new Set(views.map((v) => v?.streams[STOCKS]?.owner));
    const live = views.every((v) => v?.streams[STOCKS]?.state === 'live');
    const [id] = [...owners];
    return live && owners.size === 1 ? among.find((n) => n.id === id) : undefined;
  };
  await until(() => ownerOf(nodes), 'one owner, every node live');

  // Pinned cluster-wide: the vendor streams AAPL trades whoever owns the stream, with no client.
  const pinned = await fetch(`${nodes[0]?.base}/subscriptions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ action: 'subscribe', trades: ['AAPL'] }) });
  t.equal(pinned.status, 200, 'AAPL trades pinned');
  const tapeOf = (node: Node): Promise<TapeBody['streams'][number] | undefined> => getJson<TapeBody>(`${node.base}/tape`).then((body) => body?.streams.find((s) => s.stream === STOCKS));
  const first = await until(async () => {
    const s = await tapeOf(nodes[1] as Node);
    return s !== undefined && s.messages > 50 && s.from !== null ? s : undefined;
  }, 'trades on the tape');
  const fromText = first.from as string;
  const health = await getJson<{ tape: { state: string } }>(`${nodes[2]?.base}/health`);
  t.equal(health?.tape.state, 'recording', '/health on any node: the tape is recording');
  const streams = await getJson<{ streams: { tape: string }[] }>(`${nodes[2]?.base}/streams`);
  t.equal(streams?.streams[0]?.tape, 'recording', '/streams: recording');
  const metrics = await (await fetch(`${nodes[2]?.base}/metrics`)).text();
  t.match(metrics, /tickmux_tape_degraded\{stream="v2\/iex"\} 0/, '/metrics: not degraded');

  // kill -9 of the owner while it records.
  const owner = (await ownerOf(nodes)) as Node;
  const survivors = nodes.filter((n) => n !== owner);
  const killedAt = Date.now();
  owner.proc.child.kill('SIGKILL');
  await owner.proc.exited;
  const exitedAt = Date.now();
  const withGap = await until(async () => {
    const s = await tapeOf(survivors[0] as Node);
    const gap = s?.gaps.find((g) => g.reason === GAP_REASON);
    // ... and a second of trades recorded by the next owner after it.
    return gap !== undefined && s?.to !== null && s !== undefined && ms(s.to as string) > ms(gap.to as string) + 1000 ? { s, gap } : undefined;
  }, 'the gap mark and trades after it');
  const { gap } = withGap;
  const gapMs = ms(gap.to as string) - ms(gap.from);
  t.comment(`kill -9 at ${new Date(killedAt).toISOString()}; gap recorded ${gap.from} → ${gap.to} (${gapMs} ms, LEASE_TTL_MS ${LEASE_TTL_MS})`);
  t.equal(withGap.s.gaps.filter((g) => g.reason === GAP_REASON).length, 1, 'exactly one failover gap on the tape');
  t.ok(ms(gap.from) >= killedAt - 1000 && ms(gap.from) <= exitedAt, 'the gap starts at the last record, right before the kill');
  t.ok(ms(gap.to as string) >= exitedAt, 'and ends after it');
  t.ok(gapMs < LEASE_TTL_MS + 3000, `it lasts less than LEASE_TTL_MS + 3 s (${gapMs} ms)`);
  const toText = withGap.s.to as string;

  // A replay from a follower, out of JetStream: every trade in order, the gap notice at its place.
  const newOwner = await until(() => ownerOf(survivors), 'a survivor owning the stream');
  const follower = survivors.find((n) => n !== newOwner) as Node;
  const replay = new StreamClient(`${follower.base.replace(/^http/, 'ws')}/replay/${STOCKS}?from=${encodeURIComponent(fromText)}&to=${encodeURIComponent(toText)}&speed=max&events=1`);
  t.teardown(() => replay.close());
  await replay.opened();
  await replay.auth('replayer', 's');
  await replay.request({ action: 'subscribe', trades: ['AAPL'] });
  await replay.waitFor((m) => m.T === 'gateway' && m.event === 'replay_end', 'the end of the replay');
  const played = replay.messages.filter((m: Message) => (m.T === 't' && m.S === 'AAPL') || (m.T === 'gateway' && m.event === 'tape_gap'));
  const gapAt = played.findIndex((m) => m.T === 'gateway');
  t.ok(gapAt > 0, 'the tape_gap notice comes after the trades before the kill');
  t.equal(played.filter((m) => m.T === 'gateway').length, 1, 'one tape_gap notice');
  t.match(played[gapAt], { event: 'tape_gap', stream: STOCKS, reason: GAP_REASON }, 'the notice names the stream and the reason');
  const before = played.slice(0, gapAt).map((m) => Number(m.i));
  const after = played.slice(gapAt + 1).map((m) => Number(m.i));
  t.ok(after.length > 100, `trades after the gap are on the tape (${after.length})`);
  const ids = [...before, ...after];
  t.ok(
    ids.every((id, k) => k === 0 || id > (ids[k - 1] as number)),
    'trades in recorded order, none twice',
  );
  const jumps = ids.flatMap((id, k) => (k > 0 && id !== (ids[k - 1] as number) + 1 ? [k] : []));
  t.same(jumps, [before.length], 'continuous but for the failover: the only missing trades are at the gap');
  t.ok((before.at(-1) as number) < (after[0] as number), 'the gap separates the last recorded trade before the kill from the first after');
  t.comment(`replayed ${ids.length} trades: #${ids[0]}…#${before.at(-1)}, gap, #${after[0]}…#${after.at(-1)}`);

  // The same window from `tickmux replay --nats`: a vendor made of the cluster's tape.
  const vendor = spawnNode(t, ['dist/src/cli.js', 'replay', '--nats', nats.url, '--cluster', 'tapetest', '--from', fromText, '--to', toText, '--speed', 'max', '--port', '0']);
  const ready = JSON.parse(await vendor.line(/replay vendor ready/)) as { base: string; paths: string[] };
  t.same(ready.paths, [STOCKS], 'tickmux replay --nats serves the recorded stream path');
  const fromCli = new StreamClient(`${ready.base}/${STOCKS}?events=1`, { encoding: 'msgpack' });
  t.teardown(() => fromCli.close());
  await fromCli.opened();
  await fromCli.auth('replayer', 's');
  await fromCli.request({ action: 'subscribe', trades: ['AAPL'] });
  await fromCli.waitFor((m) => m.T === 'gateway' && m.event === 'replay_end', 'the end of the CLI replay');
  t.same(
    fromCli.messages.filter((m) => m.T === 't').map((m) => Number(m.i)),
    ids,
    'the same trades, in the same order, as the gateway’s replay',
  );
  vendor.child.kill('SIGTERM');
  t.equal(await vendor.exited, 0, 'and it stops cleanly');
});
