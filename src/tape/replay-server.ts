/**
 * `tickmux replay`: a vendor made of a tape (DESIGN.md §12). It serves every stream path recorded
 * under the tape folder at `ws://HOST:PORT/{stream path}`, each connection a replay of the same
 * window, so an SDK — or a whole gateway with `UPSTREAM_URL=ws://HOST:PORT` — is fed the recorded
 * traffic in the vendor's own protocol. The tape is a folder, or a cluster's JetStream tape
 * (`tickmux replay --nats`). No Fastify: a plain HTTP server and `ws`.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocketServer } from 'ws';
import type { Clock } from '../clock.js';
import type { ClientsConfig } from '../config.js';
import { streamKindOf, type StreamKind } from '../protocol/streams.js';
import { type ReplayOptions, ReplayRegistry, type ReplayWindow } from './replay.js';
import { recordedStreams, summarizeStream } from './tape-catalog.js';

/** Where a replay vendor finds its tape: a tape folder (`folderStore`), or a cluster's JetStream. */
export interface ReplayStore {
  /** the stream paths recorded */
  paths(): Promise<string[]>;
  /** the end of a stream's tape now (a replay's default `to`) */
  endOf(path: string): Promise<bigint | undefined>;
  /** opens a stream's records from an instant; absent: the tape folder `dir` */
  readonly source?: ReplayOptions['source'];
  /** the tape folder (for the default source) */
  readonly dir: string;
  /** releases what it holds (a NATS connection) */
  close?(): Promise<void>;
}

/** A tape folder as a replay vendor reads it. */
export function folderStore(dir: string): ReplayStore {
  return { dir, paths: () => recordedStreams(dir), endOf: async (path) => (await summarizeStream(dir, path)).toNs };
}

export interface ReplayServerOptions {
  readonly store: ReplayStore;
  readonly host: string;
  readonly port: number;
  /** `from`, `to` and `speed`; `to` undefined: each replay runs to the end of the tape as it is when it starts */
  readonly window: ReplayWindow;
  readonly clients: ClientsConfig;
  readonly maxSessions: number;
  readonly clock: Clock;
  readonly logger: Logger;
}

const header = (request: IncomingMessage, name: string): string | undefined => {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
};

export class ReplayServer {
  readonly #options: ReplayServerOptions;
  readonly #http: Server;
  readonly #wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
  readonly #replays: ReplayRegistry;
  #paths: string[] = [];

  constructor(options: ReplayServerOptions) {
    this.#options = options;
    this.#replays = new ReplayRegistry(options.maxSessions);
    this.#http = createServer((request, response) => {
      response.writeHead(426, { 'content-type': 'text/plain', upgrade: 'websocket' });
      response.end(`a replay vendor: connect with WebSocket to one of ${this.#paths.map((p) => `/${p}`).join(', ')}\n`);
    });
    this.#http.on('upgrade', (request, socket, head) => void this.#upgrade(request, socket, head));
  }

  /** The stream paths served (those recorded when it started). */
  get paths(): readonly string[] {
    return this.#paths;
  }

  /** `ws://host:port`, once listening. */
  get baseUrl(): string {
    const address = this.#http.address();
    if (address === null || typeof address === 'string') throw new Error('not listening');
    return `ws://${this.#options.host}:${address.port}`;
  }

  async start(): Promise<void> {
    this.#paths = await this.#options.store.paths();
    await new Promise<void>((resolve, reject) => {
      this.#http.once('error', reject);
      this.#http.listen(this.#options.port, this.#options.host, () => {
        this.#http.off('error', reject);
        resolve();
      });
    });
  }

  async stop(): Promise<void> {
    await this.#replays.closeAll(1001, 'going away');
    await new Promise<void>((resolve) => this.#wss.close(() => resolve()));
    this.#http.closeAllConnections();
    await new Promise<void>((resolve) => this.#http.close(() => resolve()));
    await this.#options.store.close?.();
  }

  async #upgrade(request: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', () => socket.destroy());
    const path = (request.url ?? '/').split('?')[0]?.replace(/^\/+|\/+$/g, '') ?? '';
    const refuse = (status: number, message: string): void => {
      const body = JSON.stringify({ status, detail: message, served: this.#paths });
      socket.end(`HTTP/1.1 ${status} ${status === 404 ? 'Not Found' : 'Service Unavailable'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
    };
    if (!this.#paths.includes(path)) return refuse(404, `/${path} is not recorded in this tape`);
    if (!this.#replays.admit()) return refuse(503, `${this.#replays.max} replays are running; try again later`);
    // The slot goes back if the upgrade never completes (the client left meanwhile).
    let started = false;
    socket.once('close', () => {
      if (!started) this.#replays.release();
    });
    let window = this.#options.window;
    if (window.toNs === undefined) window = { ...window, toNs: await this.#options.store.endOf(path) };
    const query = new URLSearchParams((request.url ?? '').split('?')[1] ?? '');
    const flag = (name: string): boolean => ['1', 'true'].includes(query.get(name) ?? '');
    this.#wss.handleUpgrade(request, socket, head, (ws) => {
      started = true;
      const contentType = (header(request, 'content-type') ?? '').toLowerCase();
      this.#replays.start(
        ws,
        {
          encoding: contentType.startsWith('application/msgpack') ? 'msgpack' : 'json',
          options: { snapshot: flag('snapshot'), events: flag('events') },
          remoteAddress: request.socket.remoteAddress ?? '',
          headerKey: header(request, 'apca-api-key-id'),
          headerSecret: header(request, 'apca-api-secret-key'),
        },
        {
          dir: this.#options.store.dir,
          source: this.#options.store.source,
          stream: path,
          kind: streamKindOf(path) as StreamKind,
          window,
          clients: this.#options.clients,
          clock: this.#options.clock,
          logger: this.#options.logger,
        },
      );
    });
  }
}
