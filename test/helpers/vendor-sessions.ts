import type { Test } from 'tap';
import type { VendorSimulator } from '../../src/simulator/index.js';

/** Authenticated, open vendor sessions per stream path right now (every path in `paths` listed, 0 if none). */
export function sessionsPerPath(sim: VendorSimulator, paths: readonly string[] = []): Map<string, number> {
  const counts = new Map<string, number>(paths.map((path) => [path, 0]));
  for (const session of sim.sessions()) {
    if (session.authenticated && session.closeCode === undefined) counts.set(session.path, (counts.get(session.path) ?? 0) + 1);
  }
  return counts;
}

/**
 * Samples the simulator every 2 ms until the test ends; `most()` is the most authenticated open
 * sessions one stream path ever had at once — the "exactly one vendor session" of a cluster.
 */
export function sampleSessions(t: Test, sim: VendorSimulator): { most(): number } {
  let most = 0;
  const timer = setInterval(() => {
    for (const n of sessionsPerPath(sim).values()) most = Math.max(most, n);
  }, 2);
  t.teardown(() => clearInterval(timer));
  return { most: () => most };
}
