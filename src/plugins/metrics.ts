/**
 * Prometheus metrics (prom-client) on a registry of this app's own: the vendor link, clients,
 * subscriptions, fan-out, and Node's defaults (event-loop lag among them). Values that the core
 * already counts are read at scrape time, so the hot path pays nothing for them.
 */
import fp from 'fastify-plugin';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { STOCK_CHANNELS } from '../protocol/channels.js';
import type { LinkState } from '../upstream/stream-manager.js';

declare module 'fastify' {
  interface FastifyInstance {
    metrics: Registry;
  }
}

const LINK_STATES: LinkState[] = ['stopped', 'connecting', 'authenticating', 'live', 'backoff', 'breaker-open', 'failed', 'stopping'];
const BREAKER_VALUES = { closed: 0, 'half-open': 1, open: 2 } as const;

/** A counter that mirrors a running total kept elsewhere: it adds what grew since the last scrape. */
function mirroredCounter(registry: Registry, name: string, help: string, read: () => number): void {
  let last = 0;
  new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      const now = read();
      if (now > last) this.inc(now - last);
      last = Math.max(last, now);
    },
  });
}

export default fp(
  async (fastify) => {
    const registry = new Registry();
    const { link, hub } = fastify.gateway;
    collectDefaultMetrics({ register: registry, prefix: 'tickmux_' });

    new Gauge({
      name: 'tickmux_upstream_state',
      help: 'Vendor link state: 1 for the current state',
      labelNames: ['state'],
      registers: [registry],
      collect() {
        for (const state of LINK_STATES) this.set({ state }, link.state === state ? 1 : 0);
      },
    });
    new Gauge({
      name: 'tickmux_upstream_breaker_state',
      help: 'Connect breaker: 0 closed, 1 half-open, 2 open',
      registers: [registry],
      collect() {
        this.set(BREAKER_VALUES[link.breakerState]);
      },
    });
    mirroredCounter(registry, 'tickmux_upstream_reconnects_total', 'Times the vendor link became live again', () => link.stats.reconnects);
    mirroredCounter(registry, 'tickmux_upstream_attempts_total', 'Vendor connect attempts', () => link.stats.attempts);
    mirroredCounter(registry, 'tickmux_upstream_messages_total', 'Data messages received from the vendor', () => link.stats.messages);
    mirroredCounter(registry, 'tickmux_upstream_bytes_total', 'Bytes received from the vendor', () => link.stats.bytes);
    mirroredCounter(registry, 'tickmux_upstream_malformed_frames_total', 'Vendor frames that were not the protocol', () => link.stats.malformedFrames);
    mirroredCounter(registry, 'tickmux_upstream_subscription_frames_total', 'Subscribe/unsubscribe frames sent to the vendor', () => link.stats.subscriptionFrames);
    mirroredCounter(
      registry,
      'tickmux_upstream_transient_subscription_errors_total',
      'Subscription requests the vendor answered with a transient error (retried, subscriptions kept)',
      () => link.stats.transientSubscriptionErrors,
    );
    mirroredCounter(registry, 'tickmux_client_requests_total', 'Frames clients sent (auth, subscribe, anything)', () => hub.stats.clientRequests);
    mirroredCounter(registry, 'tickmux_client_noop_requests_total', 'Subscribe/unsubscribe requests that changed nothing', () => hub.stats.noopRequests);
    mirroredCounter(registry, 'tickmux_downstream_messages_total', 'Messages sent to clients', () => hub.stats.messagesOut);
    mirroredCounter(registry, 'tickmux_downstream_bytes_total', 'Bytes sent to clients', () => hub.stats.bytesOut);
    mirroredCounter(registry, 'tickmux_conflated_messages_total', 'State messages replaced by a newer one for a lagging client', () => hub.stats.conflated);
    mirroredCounter(registry, 'tickmux_slow_client_closes_total', 'Clients closed with 407 slow client', () => hub.stats.slowClientCloses);
    mirroredCounter(registry, 'tickmux_unconvertible_messages_total', 'Vendor messages a client encoding cannot hold (not sent to those clients)', () => hub.stats.unconvertible);
    mirroredCounter(registry, 'tickmux_rejected_connections_total', 'Clients refused with 406 (MAX_CLIENTS)', () => hub.stats.rejectedConnections);
    new Gauge({
      name: 'tickmux_clients_connected',
      help: 'Connected downstream clients',
      registers: [registry],
      collect() {
        this.set(hub.stats.connected);
      },
    });
    new Gauge({
      name: 'tickmux_clients_authenticated',
      help: 'Authenticated downstream clients',
      registers: [registry],
      collect() {
        this.set(hub.stats.authenticated);
      },
    });
    new Gauge({
      name: 'tickmux_subscriptions',
      help: 'Symbols the vendor link should hold, per channel (clients and pinned)',
      labelNames: ['channel'],
      registers: [registry],
      collect() {
        for (const channel of STOCK_CHANNELS) this.set({ channel }, hub.desiredCount(channel));
      },
    });
    const fanout = new Histogram({
      name: 'tickmux_fanout_latency_seconds',
      help: 'From a vendor frame’s arrival to the frames it caused leaving for clients',
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25],
      registers: [registry],
    });
    hub.observeFanout = (seconds) => fanout.observe(seconds);
    fastify.decorate('metrics', registry);
    fastify.addHook('onClose', async () => {
      hub.observeFanout = undefined;
      registry.clear();
    });
  },
  { name: 'tickmux-metrics', dependencies: ['tickmux-gateway'] },
);
