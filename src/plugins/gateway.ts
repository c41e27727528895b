/**
 * Wires the core gateway (a vendor link and a hub per served stream) into Fastify:
 * `fastify.gateway`, started when the server is ready, stopped (clients closed with 1001, vendor
 * links closed) when it closes. This is where configuration decides what the links connect to:
 * `UPSTREAM_URL`'s base, or — when it is unset — an embedded simulated vendor on 127.0.0.1:0 that
 * serves every stream path (`fastify.simulator`).
 *
 * In a cluster (`NATS_URL` set) the links are not started here: `fastify.cluster` starts each one
 * when this node acquires that stream's lease, and stops it when the lease is lost.
 */
import fp from 'fastify-plugin';
import type { Clock } from '../clock.js';
import { ClusterNode } from '../cluster/cluster-node.js';
import { ClusterTape } from '../cluster/cluster-tape.js';
import { systemClock } from '../clock.js';
import type { Config } from '../config.js';
import { Gateway } from '../hub/gateway.js';
import { VendorSimulator } from '../simulator/index.js';
import type { TapeFiles } from '../tape/stream-recorder.js';
import { VERSION } from '../version.js';

declare module 'fastify' {
  interface FastifyInstance {
    gateway: Gateway;
    config: Config;
    /** the embedded vendor when `UPSTREAM_URL` is unset */
    simulator: VendorSimulator | undefined;
    /** this node's part in the cluster; undefined when standalone */
    cluster: ClusterNode | undefined;
    /** the cluster's tape in JetStream (`TAPE=1`); undefined when off or standalone */
    clusterTape: ClusterTape | undefined;
  }
}

export interface GatewayPluginOptions {
  config: Config;
  clock?: Clock;
  tapeFiles?: TapeFiles;
}

export default fp<GatewayPluginOptions>(
  async (fastify, options) => {
    const { config } = options;
    let simulator: VendorSimulator | undefined;
    let upstreamBase = config.upstream.base;
    if (upstreamBase === undefined) {
      simulator = new VendorSimulator({ port: 0, rate: config.simulatorRate, logger: fastify.log.child({ component: 'embedded-vendor' }) as never });
      await simulator.start();
      upstreamBase = simulator.baseUrl;
    }
    let cluster: ClusterNode | undefined;
    const clusterTape =
      config.cluster === undefined || config.clusterTape === undefined
        ? undefined
        : new ClusterTape({
            clusterName: config.cluster.name,
            config: config.clusterTape,
            streams: config.streams,
            clock: options.clock ?? systemClock,
            logger: fastify.log as never,
            natsConnected: () => cluster?.nats === 'connected',
          });
    cluster =
      config.cluster === undefined ? undefined : new ClusterNode({ cluster: config.cluster, logger: fastify.log as never, clock: options.clock, version: VERSION, tape: clusterTape });
    const gateway = new Gateway({
      config,
      logger: fastify.log as never,
      clock: options.clock,
      tapeFiles: options.tapeFiles,
      upstreamBase,
      upstreamFor: cluster === undefined ? undefined : (path, kind, link) => (cluster as ClusterNode).streamFor(path, kind, link),
      sharedTape: clusterTape,
    });
    cluster?.attach(gateway.streams);
    // A link runs only while this node owns its stream: its ups and downs are the tape's link marks.
    if (clusterTape !== undefined) {
      for (const stream of gateway.streams) {
        stream.link.on('state', (change) => clusterTape.linkState(stream.path, change));
        stream.link.on('acknowledged', (set) => clusterTape.subscriptions(stream.path, set.toLists()));
      }
    }
    fastify.decorate('gateway', gateway);
    fastify.decorate('config', config);
    fastify.decorate('simulator', simulator);
    fastify.decorate('cluster', cluster);
    fastify.decorate('clusterTape', clusterTape);
    fastify.addHook('onReady', async () => {
      await gateway.startTape();
      if (cluster === undefined) gateway.start();
      else cluster.start();
    });
    // preClose runs before the WebSocket plugin closes clients: the links are told first, and the
    // cluster releases its leases as soon as they are down so another node takes over at once.
    fastify.addHook('preClose', async () => {
      void gateway.beginShutdown();
      void cluster?.stop();
    });
    fastify.addHook('onClose', async () => {
      await cluster?.stop();
      clusterTape?.stop();
      await gateway.stop();
      await simulator?.stop();
    });
  },
  { name: 'tickmux-gateway' },
);
