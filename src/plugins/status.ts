/**
 * Wires the status page's live parts into Fastify (`fastify.status`): the rate history sampled
 * every second on the gateway's clock from the links' and hubs' own counters, and the live viewers
 * of GET /status/events, who count against MAX_CLIENTS with the stream clients (the gateway adds
 * them to what its hubs admit against) and are capped by STATUS_MAX_VIEWERS. After each sample,
 * while anyone watches, one snapshot is built (by the route, which knows what the page shows) and
 * sent to every viewer. Viewers' streams end when the server closes; no timer outlives it.
 */
import fp from 'fastify-plugin';
import { RateHistory } from '../status/rate-history.js';
import { serverSentEvent, StatusViewers } from '../status/status-viewers.js';

/** Unsent bytes a viewer may hold before it is dropped: a few dozen snapshots, the first (with the history) included. */
export const VIEWER_MAX_BUFFERED_BYTES = 128 * 1024;

/**
 * What the status route builds for the viewers: the snapshot as JSON — for a viewer about to be
 * admitted with the rate history of the last minutes, for everyone else with the latest rates only.
 */
export type SnapshotBuilder = (forNewViewer: boolean) => Promise<string>;

export interface StatusBoard {
  readonly history: RateHistory;
  readonly viewers: StatusViewers;
  /** set by the status route: what a snapshot holds */
  snapshots: SnapshotBuilder | undefined;
  /** the next event id */
  nextId(): number;
  /** builds one snapshot now and sends it to every viewer (each sample does; tests call it to push many) */
  publish(): Promise<void>;
}

declare module 'fastify' {
  interface FastifyInstance {
    status: StatusBoard;
  }
}

export default fp(
  async (fastify) => {
    const { gateway, config } = fastify;
    const viewers = new StatusViewers({
      maxViewers: config.statusMaxViewers,
      maxBufferedBytes: VIEWER_MAX_BUFFERED_BYTES,
      connectionsLeft: () => gateway.connections < config.clients.maxClients,
      logger: fastify.log.child({ component: 'status' }) as never,
    });
    gateway.countConnections(() => viewers.count);
    let id = 0;
    let building = false;
    const board: StatusBoard = {
      history: new RateHistory({
        clock: gateway.clock,
        sources: gateway.streams.map(({ path, link, hub }) => ({ path, messages: () => link.stats.messages, deliveries: () => hub.stats.messagesOut })),
        // Each sample goes to whoever watches; a build still running (a slow NATS read) is not doubled.
        onSample: () => {
          if (viewers.count === 0 || building) return;
          building = true;
          board.publish().finally(() => {
            building = false;
          }).catch((err: unknown) => fastify.log.error({ err }, 'status snapshot failed'));
        },
      }),
      viewers,
      snapshots: undefined,
      nextId: () => ++id,
      publish: async () => {
        if (board.snapshots === undefined || viewers.count === 0) return;
        const data = await board.snapshots(false);
        viewers.broadcast(serverSentEvent('snapshot', board.nextId(), data));
      },
    };
    fastify.decorate('status', board);
    fastify.addHook('onReady', async () => board.history.start());
    // Before the server waits for its connections: an event stream never ends by itself.
    fastify.addHook('preClose', async () => {
      board.history.stop();
      viewers.closeAll();
    });
    fastify.addHook('onClose', async () => board.history.stop());
  },
  { name: 'tickmux-status', dependencies: ['tickmux-gateway'] },
);
