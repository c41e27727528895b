/**
 * Where an idle authenticated connection's memory goes (issue #11). Starts the app in this
 * process on the stock stream alone (no simulated traffic), forks bench/load-clients.js to open N
 * authenticated idle msgpack clients (so their memory is not counted), and reports heap and RSS
 * per connection after a full GC at 0 and at N. With `--snapshot DIR` it also writes a heap
 * snapshot at both points and prints the retained growth per constructor (self size), largest first.
 *
 *   npm run build && node --expose-gc dist/bench/idle-heap.js [--clients 1000] [--snapshot /tmp/heap]
 */
import { fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { getHeapSpaceStatistics, getHeapStatistics, writeHeapSnapshot } from 'node:v8';
import Fastify, { type FastifyBaseLogger } from 'fastify';
import fp from 'fastify-plugin';
import { pino } from 'pino';
import app, { fastifyOptions } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { loggerOptions } from '../src/logger.js';
import type { ClientGroup } from './load-clients.js';
import { track } from './processes.js';

const { values } = parseArgs({ options: { clients: { type: 'string', default: '1000' }, snapshot: { type: 'string' } } });
const N = Number(values.clients);
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with node --expose-gc');

interface Point {
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  rss: number;
  totalHeap: number;
  /** physical bytes committed per V8 heap space */
  spaces: Record<string, number>;
}

async function settle(): Promise<Point> {
  for (let i = 0; i < 3; i++) {
    (gc as () => void)();
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const m = process.memoryUsage();
  const spaces = Object.fromEntries(getHeapSpaceStatistics().map((space) => [space.space_name, space.physical_space_size]));
  return { heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers, rss: m.rss, totalHeap: getHeapStatistics().total_heap_size, spaces };
}

/** Self size and count per constructor name of a .heapsnapshot file. */
function byConstructor(file: string): Map<string, { size: number; count: number }> {
  const snapshot = JSON.parse(readFileSync(file, 'utf8')) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
    nodes: number[];
    strings: string[];
  };
  const fields = snapshot.snapshot.meta.node_fields;
  const width = fields.length;
  const typeAt = fields.indexOf('type');
  const nameAt = fields.indexOf('name');
  const sizeAt = fields.indexOf('self_size');
  const types = snapshot.snapshot.meta.node_types[0];
  const out = new Map<string, { size: number; count: number }>();
  for (let i = 0; i < snapshot.nodes.length; i += width) {
    const type = types[snapshot.nodes[i + typeAt] as number] as string;
    // Objects by constructor; everything else by its node type (strings, closures, arrays, code…).
    const name = type === 'object' || type === 'native' ? (snapshot.strings[snapshot.nodes[i + nameAt] as number] as string) : `(${type})`;
    const entry = out.get(name) ?? { size: 0, count: 0 };
    entry.size += snapshot.nodes[i + sizeAt] as number;
    entry.count += 1;
    out.set(name, entry);
  }
  return out;
}

const config = loadConfig({ SIMULATOR_RATE: '0', STREAMS: 'v2/iex', MAX_CLIENTS: '20000', MAX_PENDING_AUTH: '20000', LOG_LEVEL: 'info' });
// Logged as the gateway logs (level info, its serializers), to nowhere.
const logger = pino(loggerOptions('info'), pino.destination({ dest: '/dev/null', sync: true }));
const fastify = Fastify(fastifyOptions(logger as FastifyBaseLogger));
// Through fastify-plugin, as the tests do, so the app's decorators (`gateway`) are visible here.
await fastify.register(fp(app), { config });
await fastify.listen({ host: '127.0.0.1', port: 0 });
const { port } = fastify.server.address() as { port: number };
await new Promise((resolve) => setTimeout(resolve, 1000));

const before = await settle();
const snapshotBefore = values.snapshot === undefined ? undefined : writeHeapSnapshot(join(values.snapshot, 'idle-before.heapsnapshot'));

const clients = track(fork(new URL('./load-clients.js', import.meta.url), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
const ready = new Promise<void>((resolve) => clients.on('message', (m: { type: string }) => m.type === 'ready' && resolve()));
const group: ClientGroup = { name: 'idle', url: `ws://127.0.0.1:${port}/v2/iex`, clients: N, encoding: 'msgpack', subscriptions: [undefined], sampled: 0 };
clients.send({ type: 'start', plan: { groups: [group] } });
await ready;
const hub = fastify.gateway.defaultStream.hub;
while (hub.stats.authenticated < N) await new Promise((resolve) => setTimeout(resolve, 100));
await new Promise((resolve) => setTimeout(resolve, 1500));

const after = await settle();
const snapshotAfter = values.snapshot === undefined ? undefined : writeHeapSnapshot(join(values.snapshot, 'idle-after.heapsnapshot'));
const per = (key: Exclude<keyof Point, 'spaces'>): number => Math.round((after[key] - before[key]) / N);
const mb = (n: number): number => Math.round(n / 104857.6) / 10;
const report: Record<string, unknown> = {
  clients: N,
  authenticated: hub.stats.authenticated,
  perConnectionBytes: { heapUsed: per('heapUsed'), external: per('external'), arrayBuffers: per('arrayBuffers'), rss: per('rss'), totalHeap: per('totalHeap') },
  beforeMb: { heapUsed: mb(before.heapUsed), rss: mb(before.rss), totalHeap: mb(before.totalHeap) },
  afterMb: { heapUsed: mb(after.heapUsed), rss: mb(after.rss), totalHeap: mb(after.totalHeap) },
  /** committed MB per V8 space, at 0 → at N (new_space grows with the handshakes' garbage, once) */
  heapSpacesMb: Object.fromEntries(Object.keys(after.spaces).map((name) => [name, `${mb(before.spaces[name] ?? 0)} → ${mb(after.spaces[name] ?? 0)}`])),
};
if (snapshotBefore !== undefined && snapshotAfter !== undefined) {
  const b = byConstructor(snapshotBefore);
  const a = byConstructor(snapshotAfter);
  const growth = [...a]
    .map(([name, { size, count }]) => ({ name, bytesPerConnection: (size - (b.get(name)?.size ?? 0)) / N, countPerConnection: (count - (b.get(name)?.count ?? 0)) / N }))
    .filter((g) => Math.abs(g.bytesPerConnection) >= 8)
    .sort((x, y) => y.bytesPerConnection - x.bytesPerConnection)
    .map((g) => ({ ...g, bytesPerConnection: Math.round(g.bytesPerConnection), countPerConnection: Number(g.countPerConnection.toFixed(2)) }));
  report.heapGrowthByConstructor = growth;
}
process.stdout.write(`${JSON.stringify(report, null, 1)}\n`);
clients.send({ type: 'stop' });
await fastify.close();
process.exit(0);
