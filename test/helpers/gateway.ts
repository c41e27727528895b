import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Test } from 'tap';
import app, { fastifyOptions } from '../../src/app.js';
import type { Clock } from '../../src/clock.js';
import { loadConfig } from '../../src/config.js';
import type { Gateway } from '../../src/hub/gateway.js';
import type { VendorSimulator } from '../../src/simulator/index.js';
import type { TapeFiles } from '../../src/tape/stream-recorder.js';
import { captureLogs } from './log-capture.js';
import { type ClientOptions, StreamClient } from './stream-client.js';

export interface GatewayFixture {
  app: FastifyInstance;
  gateway: Gateway;
  /** the embedded vendor (unless UPSTREAM_URL was given) */
  simulator: VendorSimulator | undefined;
  /** `ws://127.0.0.1:PORT/{stream path}` (the first served stream by default, a query string if given) */
  url(query?: string, stream?: string): string;
  /** `http://127.0.0.1:PORT` */
  base: string;
  logs: () => string[];
  /** a connected client (of the first served stream unless `stream` says) that the teardown closes */
  connect(options?: ClientOptions & { query?: string; stream?: string }): Promise<StreamClient>;
}

/**
 * The real app on 127.0.0.1:0 with `env` as its environment (the embedded simulator unless
 * UPSTREAM_URL is given), its logs captured; the teardown closes it. It serves the stock stream
 * `v2/iex` alone unless `env` says otherwise (`STREAMS: ''` for the default four streams).
 */
export async function startGateway(t: Test, env: Record<string, string> = {}, clock?: Clock, tapeFiles?: TapeFiles): Promise<GatewayFixture> {
  const config = loadConfig({ SIMULATOR_RATE: '0', ...(env.UPSTREAM_URL === undefined ? { STREAMS: 'v2/iex' } : {}), ...env });
  const { logger, lines } = captureLogs(env.LOG_LEVEL ?? 'info');
  const fastify: FastifyInstance = Fastify(fastifyOptions(logger as FastifyBaseLogger));
  // Registered through fastify-plugin so the test sees the app's decorators (`gateway`), as fastify/demo's tests do.
  await fastify.register(fp(app), { config, clock, tapeFiles });
  t.teardown(() => fastify.close());
  await fastify.listen({ host: '127.0.0.1', port: 0 });
  const address = fastify.server.address() as { port: number };
  const base = `http://127.0.0.1:${address.port}`;
  const url = (query = '', stream: string = config.streams[0] as string): string => `ws://127.0.0.1:${address.port}/${stream}${query ? `?${query}` : ''}`;
  return {
    app: fastify,
    gateway: fastify.gateway,
    simulator: fastify.simulator,
    url,
    base,
    logs: lines,
    connect: async (options = {}) => {
      const client = new StreamClient(url(options.query ?? '', options.stream), options);
      t.teardown(() => client.close());
      await client.opened();
      return client;
    },
  };
}
