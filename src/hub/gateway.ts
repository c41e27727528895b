/**
 * The gateway's core, assembled from configuration: the vendor link (to `UPSTREAM_URL`, or to an
 * embedded simulated vendor when it is unset), and the hub that fans it out. Plain TypeScript:
 * the Fastify plugin only starts it, stops it, and hands it sockets.
 */
import type { Logger } from 'pino';
import { type Clock, systemClock } from '../clock.js';
import type { Config } from '../config.js';
import { Secret } from '../secret.js';
import { VendorSimulator } from '../simulator/index.js';
import { StreamManager } from '../upstream/stream-manager.js';
import { Hub } from './hub.js';

export interface GatewayOptions {
  readonly config: Config;
  readonly logger: Logger;
  readonly clock?: Clock;
}

export class Gateway {
  readonly config: Config;
  readonly hub: Hub;
  readonly link: StreamManager;
  /** the embedded vendor when `UPSTREAM_URL` is unset */
  readonly simulator: VendorSimulator | undefined;
  readonly startedAt: number;
  readonly #logger: Logger;
  readonly #clock: Clock;
  #linkShutdown: Promise<void> | undefined;

  private constructor(options: GatewayOptions, simulator: VendorSimulator | undefined, url: string) {
    const { config, logger } = options;
    this.config = config;
    this.#logger = logger;
    this.#clock = options.clock ?? systemClock;
    this.startedAt = this.#clock.now();
    this.simulator = simulator;
    const upstream = config.upstream;
    let hub: Hub | undefined;
    this.link = new StreamManager({
      ...upstream,
      url, // the link takes its stream kind from the URL's path (a bare `…/iex` is a stock feed)
      // The embedded simulator accepts any key; nothing secret is involved then.
      keyId: upstream.keyId ?? new Secret('embedded'),
      secretKey: upstream.secretKey ?? new Secret('embedded'),
      restartCoalesceMs: config.restartCoalesceMs,
      logger,
      clock: this.#clock,
      onData: (units) => hub?.onData(units),
    });
    hub = new Hub({ clients: config.clients, upstreamMaxSymbols: upstream.maxSymbols, link: this.link, logger, clock: this.#clock });
    this.hub = hub;
  }

  /** Builds the gateway; with no `UPSTREAM_URL` it first starts the embedded simulator on 127.0.0.1:0. */
  static async create(options: GatewayOptions): Promise<Gateway> {
    const { config, logger } = options;
    if (config.upstream.url !== undefined) return new Gateway(options, undefined, config.upstream.url);
    const simulator = new VendorSimulator({
      port: 0,
      rate: config.simulatorRate,
      logger: logger.child({ component: 'embedded-vendor' }),
    });
    await simulator.start();
    return new Gateway(options, simulator, simulator.url(config.upstream.feed));
  }

  /** Starts the vendor link (clients may connect before it is live). */
  start(): void {
    this.link.start();
  }

  /**
   * The first step of a shutdown, taken as soon as it begins: the vendor link stops for good, so a
   * restart in flight cannot open a new vendor connection while clients are being closed.
   */
  beginShutdown(): Promise<void> {
    this.#linkShutdown ??= this.link.shutdown();
    return this.#linkShutdown;
  }

  /** Closes clients with 1001, stops the vendor link and the embedded simulator. */
  async stop(): Promise<void> {
    this.#logger.info('gateway stopping');
    const linkStopped = this.beginShutdown();
    await this.hub.closeAll(1001, 'going away');
    await linkStopped;
    await this.simulator?.stop();
  }
}
