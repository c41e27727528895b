import t from 'tap';
import { NATS_SKIP } from './helpers/nats.js';
import { spawnNode } from './helpers/processes.js';

/** `npm run bench -- --cluster` is measured by hand; this proves it still runs end to end (its own file: it runs beside the other bench test). */
interface ClusterStep {
  deliveredPerSecond: number;
  latencyMs: { samples: number };
  processes: Record<string, { cpuPercent: number; rssMb: number }>;
  counters: Record<string, Record<string, number>>;
}

t.test('npm run bench -- --cluster runs owner, follower and nats-server beside a standalone gateway and prints one JSON object', { skip: NATS_SKIP }, async (t) => {
  const proc = spawnNode(t, ['dist/bench/run.js', '--cluster', '--clients', '20', '--seconds', '0.5', '--warmup', '0.2', '--rates', '200']);
  t.equal(await proc.exited, 0, proc.stderr());
  const result = JSON.parse(proc.stdout()) as {
    clients: number;
    machine: { loadAverageAtStart: number[] };
    cluster: { ramp: { vendorRate: number; standalone: ClusterStep; cluster: ClusterStep; ratio: Record<string, number | null> }[] };
  };
  t.equal(result.clients, 20);
  t.equal(result.machine.loadAverageAtStart.length, 3, 'the load average is reported');
  const [step] = result.cluster.ramp;
  t.equal(step?.vendorRate, 200);
  t.ok(step!.standalone.deliveredPerSecond > 0, 'the standalone gateway delivered');
  t.ok(step!.cluster.deliveredPerSecond > 0, 'the follower delivered');
  t.ok(step!.cluster.latencyMs.samples > 0, 'latency was sampled through the cluster');
  t.same(Object.keys(step!.cluster.processes).sort(), ['follower', 'nats', 'owner'], 'CPU and RSS of the owner, the follower and nats-server');
  t.ok(step!.cluster.counters.owner!.cluster_published! > 0, 'the owner published to NATS');
  t.ok(step!.cluster.counters.follower!.cluster_received! > 0, 'the follower received from NATS');
  t.equal(step!.cluster.counters.follower!.upstream_messages, undefined, 'the follower has no vendor link of its own');
  for (const key of ['delivered', 'p50', 'p99', 'followerCpu', 'clusterCpu', 'followerRss', 'clusterRss']) t.type(step!.ratio[key], 'number', `ratio ${key}`);
});
