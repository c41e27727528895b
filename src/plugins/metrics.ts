/**
 * Prometheus metrics (prom-client) on a registry of this app's own: per stream (a `stream` label)
 * the vendor link, clients and subscriptions; fan-out latency; Node's defaults (event-loop lag
 * among them). Values that the core already counts are read at scrape time, so the hot path pays
 * nothing for them.
 */
import fp from 'fastify-plugin';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { RelayCounters } from '../cluster/cluster-stream.js';
import type { ServedStream } from '../hub/gateway.js';
import type { RecorderStats, StreamRecorder } from '../tape/stream-recorder.js';
import { LINK_STATES } from '../upstream/stream-manager.js';

declare module 'fastify' {
  interface FastifyInstance {
    metrics: Registry;
  }
}

const BREAKER_VALUES = { closed: 0, 'half-open': 1, open: 2 } as const;

type Streams = readonly ServedStream[];

/**
 * A counter per stream that mirrors a running total kept elsewhere: at each scrape it adds what
 * grew since the last one, with the stream's path as its `stream` label.
 */
function mirroredCounter(registry: Registry, streams: Streams, name: string, help: string, read: (stream: ServedStream) => number): void {
  const last = new Map<string, number>();
  new Counter({
    name,
    help,
    labelNames: ['stream'],
    registers: [registry],
    collect() {
      for (const stream of streams) {
        const now = read(stream);
        const before = last.get(stream.path) ?? 0;
        this.inc({ stream: stream.path }, Math.max(0, now - before));
        last.set(stream.path, Math.max(before, now));
      }
    },
  });
}

/** A gauge per stream, read at scrape time. */
function streamGauge(registry: Registry, streams: Streams, name: string, help: string, read: (stream: ServedStream) => number): void {
  new Gauge({
    name,
    help,
    labelNames: ['stream'],
    registers: [registry],
    collect() {
      for (const stream of streams) this.set({ stream: stream.path }, read(stream));
    },
  });
}

export default fp(
  async (fastify) => {
    const registry = new Registry();
    const { streams } = fastify.gateway;
    collectDefaultMetrics({ register: registry, prefix: 'tickmux_' });

    new Gauge({
      name: 'tickmux_upstream_state',
      help: 'Vendor link state per stream: 1 for the current state',
      labelNames: ['stream', 'state'],
      registers: [registry],
      collect() {
        for (const { path, link } of streams) for (const state of LINK_STATES) this.set({ stream: path, state }, link.state === state ? 1 : 0);
      },
    });
    streamGauge(registry, streams, 'tickmux_upstream_breaker_state', 'Connect breaker per stream: 0 closed, 1 half-open, 2 open', ({ link }) => BREAKER_VALUES[link.breakerState]);
    const upstream = (name: string, help: string, read: (stats: ServedStream['link']['stats']) => number): void =>
      mirroredCounter(registry, streams, name, help, ({ link }) => read(link.stats));
    upstream('tickmux_upstream_reconnects_total', 'Times the vendor link became live again', (s) => s.reconnects);
    upstream('tickmux_upstream_attempts_total', 'Vendor connect attempts', (s) => s.attempts);
    upstream('tickmux_upstream_messages_total', 'Data messages received from the vendor', (s) => s.messages);
    upstream('tickmux_upstream_bytes_total', 'Bytes received from the vendor', (s) => s.bytes);
    upstream('tickmux_upstream_malformed_frames_total', 'Vendor frames that were not the protocol', (s) => s.malformedFrames);
    upstream('tickmux_upstream_subscription_frames_total', 'Subscribe/unsubscribe frames sent to the vendor', (s) => s.subscriptionFrames);
    upstream(
      'tickmux_upstream_transient_subscription_errors_total',
      'Subscription requests the vendor answered with a transient error (retried, subscriptions kept)',
      (s) => s.transientSubscriptionErrors,
    );
    const downstream = (name: string, help: string, read: (stats: ServedStream['hub']['stats']) => number): void =>
      mirroredCounter(registry, streams, name, help, ({ hub }) => read(hub.stats));
    downstream('tickmux_client_requests_total', 'Frames clients sent (auth, subscribe, anything)', (s) => s.clientRequests);
    downstream('tickmux_client_noop_requests_total', 'Subscribe/unsubscribe requests that changed nothing', (s) => s.noopRequests);
    downstream('tickmux_downstream_messages_total', 'Messages sent to clients', (s) => s.messagesOut);
    downstream('tickmux_downstream_bytes_total', 'Bytes sent to clients', (s) => s.bytesOut);
    downstream('tickmux_conflated_messages_total', 'State messages replaced by a newer one for a lagging client', (s) => s.conflated);
    downstream('tickmux_slow_client_closes_total', 'Clients closed with 407 slow client', (s) => s.slowClientCloses);
    downstream('tickmux_unconvertible_messages_total', 'Vendor messages a client encoding cannot hold (not sent to those clients)', (s) => s.unconvertible);
    downstream('tickmux_rejected_connections_total', 'Clients refused with 406 (MAX_CLIENTS)', (s) => s.rejectedConnections);
    streamGauge(registry, streams, 'tickmux_clients_connected', 'Connected downstream clients', ({ hub }) => hub.stats.connected);
    streamGauge(registry, streams, 'tickmux_clients_authenticated', 'Authenticated downstream clients', ({ hub }) => hub.stats.authenticated);
    new Gauge({
      name: 'tickmux_subscriptions',
      help: 'Symbols the vendor link should hold, per stream and channel (clients and pinned)',
      labelNames: ['stream', 'channel'],
      registers: [registry],
      collect() {
        for (const { path, kind, hub } of streams) for (const channel of kind.channels) this.set({ stream: path, channel }, hub.desiredCount(channel));
      },
    });
    const fanout = new Histogram({
      name: 'tickmux_fanout_latency_seconds',
      help: 'From a vendor frame’s arrival to the frames it caused leaving for clients',
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25],
      registers: [registry],
    });
    for (const { hub } of streams) hub.observeFanout = (seconds) => fanout.observe(seconds);
    const cluster = fastify.cluster;
    if (cluster !== undefined) {
      const relayed = (name: string, help: string, read: (counters: RelayCounters) => number): void =>
        mirroredCounter(registry, streams, name, help, ({ path }) => {
          const counters = cluster.view(path)?.counters;
          return counters === undefined ? 0 : read(counters);
        });
      relayed('tickmux_cluster_published_total', 'Vendor messages this node published to NATS as the stream’s owner', (c) => c.published);
      relayed('tickmux_cluster_received_total', 'Vendor messages this node received from NATS as a follower', (c) => c.received);
      relayed('tickmux_cluster_duplicates_total', 'Second copies of a relayed message dropped (a symbol and its channel’s * both matched)', (c) => c.duplicates);
      relayed('tickmux_cluster_lost_total', 'Relayed messages of subjects this node held that were never delivered (gaps in a subject’s sequence no repair could fill)', (c) => c.lost);
      relayed('tickmux_cluster_repair_requests_total', 'Repair requests this node sent the stream’s owner for relayed messages missing from a subject’s sequence', (c) => c.repairRequests);
      relayed('tickmux_cluster_repaired_total', 'Relayed messages that went missing and were delivered in order once the owner sent them again', (c) => c.repaired);
      relayed('tickmux_cluster_repair_failures_total', 'Gaps that could not be repaired (gone from the owner’s history, no answer, a garbage answer, too much held): each told to its holders in a gap notice', (c) => c.repairFailures);
      relayed('tickmux_cluster_repairs_answered_total', 'Repair requests this node answered as the stream’s owner', (c) => c.repairsAnswered);
      relayed('tickmux_cluster_malformed_total', 'Cluster messages ignored: another format version, or malformed', (c) => c.malformed);
      streamGauge(registry, streams, 'tickmux_cluster_owner', '1 while this node owns the stream (holds its lease and runs its vendor link)', ({ path }) => (cluster.role(path) === 'owner' ? 1 : 0));
      const leaseChanges = { acquired: 0, lost: 0 };
      new Counter({
        name: 'tickmux_cluster_lease_changes_total',
        help: 'Stream leases this node acquired or lost (fenced, taken over)',
        labelNames: ['change'],
        registers: [registry],
        collect() {
          const { leaseAcquired, leaseLost } = cluster.counters;
          this.inc({ change: 'acquired' }, Math.max(0, leaseAcquired - leaseChanges.acquired));
          this.inc({ change: 'lost' }, Math.max(0, leaseLost - leaseChanges.lost));
          leaseChanges.acquired = Math.max(leaseChanges.acquired, leaseAcquired);
          leaseChanges.lost = Math.max(leaseChanges.lost, leaseLost);
        },
      });
      new Gauge({
        name: 'tickmux_cluster_nats_connected',
        help: '1 while this node is connected to NATS',
        registers: [registry],
        collect() {
          this.set(cluster.nats === 'connected' ? 1 : 0);
        },
      });
      new Gauge({
        name: 'tickmux_cluster_nodes',
        help: 'Live nodes in the cluster, as this node sees their entries',
        registers: [registry],
        collect() {
          this.set(cluster.nodes().length);
        },
      });
    }
    const tape = fastify.gateway.tape;
    if (tape !== undefined) {
      const recorded = streams.filter((stream) => stream.recorder !== undefined);
      const recorder = (name: string, help: string, read: (stats: RecorderStats) => number): void =>
        mirroredCounter(registry, recorded, name, help, (stream) => read((stream.recorder as StreamRecorder).stats));
      recorder('tickmux_tape_messages_total', 'Vendor data messages handed to the tape', (s) => s.messages);
      recorder('tickmux_tape_bytes_written_total', 'Bytes written to the tape (records and indexes)', (s) => s.bytesWritten);
      recorder('tickmux_tape_dropped_messages_total', 'Vendor data messages the tape could not keep (write queue full, disk refused): inside gap marks', (s) => s.droppedMessages);
      recorder('tickmux_tape_write_errors_total', 'Failed tape writes (each starts a gap; recording retries by itself)', (s) => s.writeErrors);
      recorder('tickmux_tape_gaps_total', 'Gap marks written (recording resumed after a gap)', (s) => s.gaps);
      recorder('tickmux_tape_segments_total', 'Tape segments opened', (s) => s.segments);
      streamGauge(registry, recorded, 'tickmux_tape_queue_bytes', 'Bytes waiting to be written to the tape', (stream) => (stream.recorder as StreamRecorder).queuedBytes);
      streamGauge(registry, recorded, 'tickmux_tape_degraded', '1 while the stream’s recording is degraded (a gap is open)', (stream) => ((stream.recorder as StreamRecorder).state === 'degraded' ? 1 : 0));
      new Counter({
        name: 'tickmux_tape_deleted_segments_total',
        help: 'Segments deleted by retention (TAPE_RETENTION_HOURS, TAPE_MAX_BYTES)',
        registers: [registry],
        collect() {
          this.reset();
          this.inc(tape.deletedSegments);
        },
      });
    }
    const shared = fastify.gateway.sharedTape;
    if (shared !== undefined) {
      // A cluster's tape (TAPE=1) is one for every stream: the same gauge as a standalone tape's.
      streamGauge(registry, streams, 'tickmux_tape_degraded', '1 while the stream’s recording is degraded (on a cluster: the JetStream tape cannot be written)', () => (shared.state === 'degraded' ? 1 : 0));
    }
    const replays = tape?.replays ?? shared?.replays;
    if (replays !== undefined) {
      new Gauge({
        name: 'tickmux_replay_sessions',
        help: 'Replays running (REPLAY_MAX_SESSIONS caps them)',
        registers: [registry],
        collect() {
          this.set(replays.running);
        },
      });
    }
    fastify.decorate('metrics', registry);
    fastify.addHook('onClose', async () => {
      for (const { hub } of streams) hub.observeFanout = undefined;
      registry.clear();
    });
  },
  { name: 'tickmux-metrics', dependencies: ['tickmux-gateway'] },
);
