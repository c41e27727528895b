/**
 * The benchmark's load: N WebSocket clients in one process (forked by bench/run.ts, driven over
 * IPC), in groups that each hold one stream path, one encoding and one subscription shape.
 * Counting reads only each frame's array header (msgpack) or its message openings (JSON), and a
 * few sampled clients per group decode fully to measure latency from the vendor timestamp.
 */
import { WebSocket } from 'ws';
import { systemClock } from '../src/clock.js';
import { decodeFrame, type Encoding } from '../src/protocol/frame.js';
import { type Channel, STOCKS, streamKindOfUrl } from '../src/protocol/streams.js';
import { Timestamp } from '../src/protocol/timestamp.js';
import { countJson, countMsgpack } from './message-count.js';
import { type Latency, percentiles } from './percentiles.js';

/** What a client subscribes to: channel → symbols, as in the vendor's subscribe request. */
export type Subscription = Partial<Record<Channel, string[]>>;

/** Clients alike but for their symbols: one stream path, one encoding. */
export interface ClientGroup {
  /** the name its figures are reported under */
  name: string;
  /** the gateway's URL of the stream (`ws://…/v2/iex`) */
  url: string;
  clients: number;
  encoding: Encoding;
  /** per client, cycled: what it subscribes to after auth; undefined = idle (auth only) */
  subscriptions: (Subscription | undefined)[];
  /** the first this many clients decode every frame to measure latency */
  sampled: number;
}

export type { Latency } from './percentiles.js';

/** One window's figures: in total, and per group by name. */
export interface Measured {
  deliveredPerSecond: number;
  /** data frames received: the gateway's cost goes more with frames (socket writes) than with messages */
  framesPerSecond: number;
  latencyMs: Latency;
  groups: Record<string, { clients: number; deliveredPerSecond: number; framesPerSecond: number; latencyMs: Latency }>;
}

type Command = { type: 'start'; plan: { groups: ClientGroup[] } } | { type: 'measure'; ms: number } | { type: 'stop' };

interface Counter {
  readonly group: ClientGroup;
  delivered: number;
  frames: number;
  latencies: number[];
}

const sockets: WebSocket[] = [];
const counters: Counter[] = [];
let counting = false;

function connect(counter: Counter, subscription: Subscription | undefined, sampled: boolean): Promise<void> {
  const { url, encoding } = counter.group;
  const kind = streamKindOfUrl(url) ?? STOCKS;
  const count = encoding === 'msgpack' ? countMsgpack : countJson;
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = encoding === 'msgpack' ? { 'Content-Type': 'application/msgpack' } : {};
    const ws = new WebSocket(url, { headers, perMessageDeflate: false });
    sockets.push(ws);
    let greeted = false;
    ws.on('message', (data: Buffer) => {
      if (!greeted) {
        greeted = true;
        ws.send(JSON.stringify({ action: 'auth', key: 'bench', secret: 'bench' }));
        if (subscription !== undefined) ws.send(JSON.stringify({ action: 'subscribe', ...subscription }));
        resolve();
        return;
      }
      if (!counting) return;
      counter.delivered += count(data);
      counter.frames += 1;
      if (sampled) {
        const now = systemClock.nanos();
        for (const m of decodeFrame(data, encoding, kind) as { t?: unknown }[]) {
          // News items carry no `t` (only whole-second dates): they count but give no latency.
          if (m.t instanceof Timestamp) counter.latencies.push(Number(now - m.t.toEpochNanos()) / 1e6);
        }
      }
    });
    ws.on('error', reject);
  });
}

process.on('message', async (command: Command) => {
  switch (command.type) {
    case 'start': {
      const batch = 200; // connect in waves, not 10,000 handshakes at once
      for (const group of command.plan.groups) {
        const counter: Counter = { group, delivered: 0, frames: 0, latencies: [] };
        counters.push(counter);
        for (let i = 0; i < group.clients; i += batch) {
          const wave: Promise<void>[] = [];
          for (let j = i; j < Math.min(group.clients, i + batch); j++) {
            wave.push(connect(counter, group.subscriptions[j % group.subscriptions.length], j < group.sampled));
          }
          await Promise.all(wave);
        }
      }
      process.send?.({ type: 'ready', clients: sockets.length });
      return;
    }
    case 'measure': {
      for (const counter of counters) {
        counter.delivered = 0;
        counter.frames = 0;
        counter.latencies = [];
      }
      counting = true;
      const started = process.hrtime.bigint();
      await new Promise((resolve) => setTimeout(resolve, command.ms));
      counting = false;
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const perSecond = (n: number): number => Math.round(n / seconds);
      const measured: Measured = {
        deliveredPerSecond: perSecond(counters.reduce((sum, c) => sum + c.delivered, 0)),
        framesPerSecond: perSecond(counters.reduce((sum, c) => sum + c.frames, 0)),
        latencyMs: percentiles(counters.flatMap((c) => c.latencies)),
        groups: Object.fromEntries(
          counters.map((c) => [c.group.name, { clients: c.group.clients, deliveredPerSecond: perSecond(c.delivered), framesPerSecond: perSecond(c.frames), latencyMs: percentiles(c.latencies) }]),
        ),
      };
      process.send?.({ type: 'measured', ...measured });
      return;
    }
    case 'stop':
      for (const ws of sockets) ws.terminate();
      process.exit(0);
  }
});
