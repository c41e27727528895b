import t from 'tap';
import { spawnNode } from './helpers/processes.js';

interface Step {
  deliveredPerSecond: number;
  latencyMs: { samples: number };
  streams?: Record<string, { vendorPerSecond: number; sentPerSecond: number }>;
}

/** The benchmark is measured by hand (`npm run bench`); this only proves it still runs end to end. */
t.test('npm run bench runs end to end on a tiny load and prints one JSON object', async (t) => {
  const proc = spawnNode(t, ['dist/bench/run.js', '--clients', '20', '--seconds', '0.5', '--warmup', '0.3', '--idle', '20', '--rates', '200', '--filtered-rate', '200', '--mixed-rate', '200', '--overload-ramp', '200', '--overload-steps', '1']);
  t.equal(await proc.exited, 0, proc.stderr());
  const result = JSON.parse(proc.stdout()) as {
    clients: number;
    memory: { idleConnections: number; bytesPerConnection: number };
    broadcast: { ramp: { gateway: Step; baseline: Step }[]; saturation: { ratio: number } };
    filtered: { gateway: Step };
    mixed: {
      groups: { name: string; stream: string; clients: number }[];
      together: Step & { groups: Record<string, Step> };
      alone: Record<string, Step>;
      stocksOnly: Step;
      ratio: { delivered: number };
    };
    overload: {
      saturation: { vendorRate: number };
      steps: {
        multiple: number;
        gateway: Step & {
          healthLive: { probes: number; failures: number };
          eventLoopLagP99Ms: number | null;
          rssPeakMb: number;
          slowClientCloses: number;
          conflated: number;
          kernel: { tcpMemPeakMb: number; memoryPressures: number | null; receiveQueueDrops: number | null };
        };
        baseline: Step & { kernel: { tcpMemPeakMb: number } };
      }[];
      shutdown: { exitMs: number | null; exitCode: number | string | null };
    };
  };
  t.equal(result.clients, 20);
  t.equal(result.memory.idleConnections, 20);
  const step = result.broadcast.ramp[0]!;
  t.ok(step.gateway.deliveredPerSecond > 0, 'the gateway delivered');
  t.ok(step.baseline.deliveredPerSecond > 0, 'the baseline delivered');
  t.ok(step.gateway.latencyMs.samples > 0, 'latency was sampled');
  t.ok(result.broadcast.saturation.ratio > 0);
  t.ok(result.filtered.gateway.deliveredPerSecond > 0, 'the filtered scenario delivered');

  const { mixed } = result;
  t.same(
    mixed.groups.map((g) => g.stream),
    ['v2/iex', 'v1beta3/crypto/us', 'v1beta1/indicative', 'v1beta1/indicative', 'v1beta1/news'],
    'the mixed scenario spreads its clients over the four streams',
  );
  t.equal(mixed.groups.reduce((sum, g) => sum + g.clients, 0), 20, 'and over all of them');
  for (const name of ['stocks', 'crypto', 'options (msgpack)', 'options (JSON)']) {
    const group = mixed.together.groups[name]!;
    t.ok(group.deliveredPerSecond > 0, `${name} clients received data alongside the others`);
    t.ok(group.latencyMs.samples > 0, `${name} latency was sampled`);
    t.ok(mixed.alone[name]!.deliveredPerSecond > 0, `${name} clients received data alone`);
  }
  for (const path of ['v2/iex', 'v1beta3/crypto/us', 'v1beta1/indicative']) {
    t.ok(mixed.together.streams![path]!.sentPerSecond > 0, `the gateway counted what it sent on ${path}`);
  }
  t.ok(mixed.stocksOnly.deliveredPerSecond > 0, 'the stocks-only baseline delivered');
  t.ok(mixed.ratio.delivered > 0);

  const { overload } = result;
  t.equal(overload.saturation.vendorRate, 200, 'the overload ramp kept up at its one rate: that is its base');
  t.same(overload.steps.map((s) => s.multiple), [1], 'one step per multiple of it');
  for (const s of overload.steps) {
    t.ok(s.gateway.deliveredPerSecond > 0 && s.baseline.deliveredPerSecond > 0, `${s.multiple}×: the gateway's JSON clients and the JSON baseline's received data`);
    t.ok(s.gateway.healthLive.probes > 0, `${s.multiple}×: /health/live was probed`);
    t.equal(s.gateway.healthLive.failures, 0, `${s.multiple}×: and answered`);
    t.type(s.gateway.eventLoopLagP99Ms, 'number', `${s.multiple}×: the gateway's event-loop lag read from /metrics`);
    t.ok(s.gateway.rssPeakMb > 0);
    t.ok(s.gateway.kernel.tcpMemPeakMb >= 0 && s.baseline.kernel.tcpMemPeakMb >= 0, `${s.multiple}×: the kernel's TCP memory read for both`);
    t.type(s.gateway.kernel.receiveQueueDrops, 'number', `${s.multiple}×: and its receive-queue drops`);
  }
  t.equal(overload.shutdown.exitCode, 0, 'the overload gateway stopped on SIGTERM');
});
