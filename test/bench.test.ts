import t from 'tap';
import { spawnNode } from './helpers/processes.js';

/** The benchmark is measured by hand (`npm run bench`); this only proves it still runs end to end. */
t.test('npm run bench runs end to end on a tiny load and prints one JSON object', async (t) => {
  const proc = spawnNode(t, ['dist/bench/run.js', '--clients', '20', '--seconds', '1', '--idle', '20', '--rates', '200', '--filtered-rate', '200']);
  t.equal(await proc.exited, 0, proc.stderr());
  const result = JSON.parse(proc.stdout()) as {
    clients: number;
    memory: { idleConnections: number; bytesPerConnection: number };
    broadcast: { ramp: { gateway: { deliveredPerSecond: number; latencyMs: { samples: number } }; baseline: { deliveredPerSecond: number } }[]; saturation: { ratio: number } };
    filtered: { gateway: { deliveredPerSecond: number } };
  };
  t.equal(result.clients, 20);
  t.equal(result.memory.idleConnections, 20);
  const step = result.broadcast.ramp[0]!;
  t.ok(step.gateway.deliveredPerSecond > 0, 'the gateway delivered');
  t.ok(step.baseline.deliveredPerSecond > 0, 'the baseline delivered');
  t.ok(step.gateway.latencyMs.samples > 0, 'latency was sampled');
  t.ok(result.broadcast.saturation.ratio > 0);
  t.ok(result.filtered.gateway.deliveredPerSecond > 0, 'the filtered scenario delivered');
});
