import type { IncomingMessage } from 'node:http';
import type { Test } from 'tap';
import { WebSocketServer } from 'ws';
import { loadConfig } from '../../src/config.js';
import { Hub, type HubOptions } from '../../src/hub/hub.js';
import type { Encoding, MessageUnit } from '../../src/protocol/frame.js';
import type { VendorSimulator } from '../../src/simulator/index.js';
import type { MarketMessage } from '../../src/simulator/stream-market.js';
import { type LinkFixture, linkTo } from './link.js';
import { captureLogs } from './log-capture.js';
import { connect } from './simulator.js';
import type { ClientOptions, Message, StreamClient } from './stream-client.js';

export interface StreamFixture {
  hub: Hub;
  link: LinkFixture;
  /** every data unit the link handed the hub, in order */
  vendor: MessageUnit[];
  /** a client of the hub, authenticated, that the teardown closes */
  client(options?: ClientOptions): Promise<StreamClient>;
}

/**
 * A hub and its link for the stream `path` on `sim` (any kind: crypto, news, options…), behind a
 * WebSocket listener on 127.0.0.1:0, live before it is returned; torn down with the test.
 */
export async function hubFor(
  t: Test,
  sim: VendorSimulator,
  path: string,
  encoding: Encoding = 'msgpack',
  bounds: Pick<HubOptions, 'turnDeliveries' | 'flushSlice' | 'flushSliceMs'> & { clock?: HubOptions['clock'] } = {},
): Promise<StreamFixture> {
  let hub: Hub | undefined;
  const vendor: MessageUnit[] = [];
  const onData = (units: MessageUnit[]): void => {
    vendor.push(...units);
    hub?.onData(units);
  };
  const link = linkTo(t, sim, { url: sim.url(path), encoding, onData });
  const { logger } = captureLogs('info');
  hub = new Hub({ clients: loadConfig({}).clients, upstreamMaxSymbols: 0, link: link.manager, logger, clock: link.clock, ...bounds });
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise<void>((resolve) => server.once('listening', resolve));
  server.on('connection', (socket, request: IncomingMessage) => {
    const msgpack = (request.headers['content-type'] ?? '').startsWith('application/msgpack');
    hub.accept(socket, { encoding: msgpack ? 'msgpack' : 'json', options: { snapshot: false, events: false }, remoteAddress: '127.0.0.1' });
  });
  t.teardown(async () => {
    await hub.closeAll();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  link.manager.start();
  await link.manager.whenLive();
  const url = `ws://127.0.0.1:${(server.address() as { port: number }).port}/${path}`;
  let n = 0;
  return {
    hub,
    link,
    vendor,
    client: async (options = {}) => {
      const c = await connect(t, url, options);
      await c.auth(`client-${n++}`, 'secret');
      return c;
    },
  };
}

/** Data messages (no control replies) a client has received. */
export const data = (c: StreamClient): Message[] => c.messages.filter((m) => !['success', 'subscription', 'error'].includes(m.T as string));

/** Publishes on `path` once the vendor holds what the link was asked for, so nothing is lost to a subscribe in flight. */
export async function publishSynced(f: StreamFixture, sim: VendorSimulator, path: string, messages: MarketMessage[]): Promise<void> {
  await f.link.manager.whenSynced();
  sim.publish(messages, path);
}
