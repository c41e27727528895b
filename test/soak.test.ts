import t from 'tap';
import { spawnNode } from './helpers/processes.js';

interface SoakReport {
  ok: boolean;
  invariants: Record<string, boolean>;
  populations: { healthy: { clients: number; closed: unknown[]; pairsLost: number }; slow: { cycles: number } };
  trades: { checked: number; gapsOutsideOutages: number; firstGapsOutside: unknown[] };
  vendor: { maxSessionsAtOnce: number; maxSubscriptionFramesPerSecond: number | undefined };
  gateway: { aliveAtEnd: boolean; slowClientCloses407: number | undefined; exit: unknown };
  faults: { injected: Record<string, number>; errors: string[] };
}

/**
 * A short soak (issue #8): every population and every vendor fault, and the invariants that must
 * hold whatever the vendor and the clients do. Durations are reported, not asserted; the one
 * rate asserted is a ceiling the gateway's own floor guarantees (vendor subscription frames). The
 * soak's own vendor rate is raised so a paused reader fills the loopback buffers (~4 MB) and
 * reaches its 407 within the run.
 */
t.test('a short soak under vendor faults and hostile clients keeps the invariants', { timeout: 90_000 }, async (t) => {
  const proc = spawnNode(t, ['dist/bench/soak.js', '--seconds', '28', '--seed', '7', '--rate', '6000', '--healthy', '6', '--fault-every-ms', '2500', '--json']);
  const code = await proc.exited;
  const report = JSON.parse(proc.stdout()) as SoakReport;
  const context = { invariants: report.invariants, gaps: report.trades.firstGapsOutside, closed: report.populations.healthy.closed, exit: report.gateway.exit };
  t.equal(code, report.ok ? 0 : 1, 'the exit code says whether every invariant held');

  t.ok(report.gateway.aliveAtEnd, 'the gateway is alive at the end', context);
  t.equal(report.trades.gapsOutsideOutages, 0, 'no trade-id gap for a healthy client outside a vendor outage', context);
  t.ok(report.trades.checked > 0, 'healthy clients checked trades');
  t.ok(report.vendor.maxSessionsAtOnce <= 1, 'never more than one vendor session at once');
  t.same(report.populations.healthy.closed, [], 'no healthy client was closed');
  t.equal(report.populations.healthy.pairsLost, 0, 'no healthy client lost a subscription it did not give up (a 500 on subscribe, also during the restore, is not a refusal)');

  for (const [kind, count] of Object.entries(report.faults.injected)) t.ok(count > 0, `the fault ${kind} was injected`);
  t.same(report.faults.errors, [], 'every fault injection was accepted by the simulator');
  t.ok(report.populations.slow.cycles > 0, 'slow clients ran');
  t.ok((report.gateway.slowClientCloses407 ?? 0) > 0, 'slow clients got 407');
  // SUBSCRIBE_MIN_INTERVAL_MS (100 ms): at most ten sync rounds a second, each a subscribe and an
  // unsubscribe frame or a few 32 KiB frames for a big list — whatever the three churners do
  // (before the floor: 150–180 frames a second from them).
  t.type(report.vendor.maxSubscriptionFramesPerSecond, 'number', 'the vendor subscription frames per second (max) is reported');
  t.ok((report.vendor.maxSubscriptionFramesPerSecond ?? Infinity) <= 40, `at most 40 subscription frames in any second at the vendor (${report.vendor.maxSubscriptionFramesPerSecond})`);
});
