/**
 * The benchmark's load: N WebSocket clients in one process (forked by bench/run.ts, driven over
 * IPC). Every client is an msgpack client like the SDKs; counting reads only each frame's array
 * header, and a few sampled clients decode fully to measure latency from the vendor timestamp.
 */
import { WebSocket } from 'ws';
import { systemClock } from '../src/clock.js';
import { decodeFrame } from '../src/protocol/frame.js';
import { Timestamp } from '../src/protocol/timestamp.js';

interface Plan {
  url: string;
  clients: number;
  /** per client: the symbols it subscribes to for trades and quotes; empty = idle (auth only) */
  symbols: string[][];
  sampled: number;
}

type Command = { type: 'start'; plan: Plan } | { type: 'measure'; ms: number } | { type: 'stop' };

const sockets: WebSocket[] = [];
let counting = false;
let delivered = 0;
let latencies: number[] = [];

/** Messages in an msgpack frame, from its array header alone. */
function countMessages(data: Buffer): number {
  const b = data[0] as number;
  if (b >= 0x90 && b <= 0x9f) return b & 0x0f;
  if (b === 0xdc) return data.readUInt16BE(1);
  if (b === 0xdd) return data.readUInt32BE(1);
  return 0;
}

function connect(url: string, symbols: string[], sampled: boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers: { 'Content-Type': 'application/msgpack' }, perMessageDeflate: false });
    sockets.push(ws);
    let greeted = false;
    ws.on('message', (data: Buffer) => {
      if (!greeted) {
        greeted = true;
        ws.send(JSON.stringify({ action: 'auth', key: 'bench', secret: 'bench' }));
        if (symbols.length > 0) ws.send(JSON.stringify({ action: 'subscribe', trades: symbols, quotes: symbols }));
        resolve();
        return;
      }
      if (!counting) return;
      delivered += countMessages(data);
      if (sampled) {
        const now = systemClock.nanos();
        for (const m of decodeFrame(data, 'msgpack') as { t?: unknown }[]) {
          if (m.t instanceof Timestamp) latencies.push(Number(now - m.t.toEpochNanos()) / 1e6);
        }
      }
    });
    ws.on('error', reject);
  });
}

function percentile(sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return Number(sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!.toFixed(3));
}

process.on('message', async (command: Command) => {
  switch (command.type) {
    case 'start': {
      const { plan } = command;
      const batch = 200; // connect in waves, not 10,000 handshakes at once
      for (let i = 0; i < plan.clients; i += batch) {
        const wave: Promise<void>[] = [];
        for (let j = i; j < Math.min(plan.clients, i + batch); j++) wave.push(connect(plan.url, plan.symbols[j % plan.symbols.length] ?? [], j < plan.sampled));
        await Promise.all(wave);
      }
      process.send?.({ type: 'ready', clients: sockets.length });
      return;
    }
    case 'measure': {
      delivered = 0;
      latencies = [];
      counting = true;
      const started = process.hrtime.bigint();
      await new Promise((resolve) => setTimeout(resolve, command.ms));
      counting = false;
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      latencies.sort((a, b) => a - b);
      process.send?.({
        type: 'measured',
        deliveredPerSecond: Math.round(delivered / seconds),
        latencyMs: { p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), p999: percentile(latencies, 0.999), samples: latencies.length },
      });
      return;
    }
    case 'stop':
      for (const ws of sockets) ws.terminate();
      process.exit(0);
  }
});
