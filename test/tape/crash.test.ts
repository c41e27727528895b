/**
 * Crash safety (DESIGN.md §12): a recording gateway killed with -9 under load, then started again
 * on the same tape: the tape reads back whole, at most TAPE_FSYNC_MS of the messages its client got
 * are missing from it, a torn record is cut off (with a log line) and recording goes on.
 */
import { appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { decodeFrame } from '../../src/protocol/frame.js';
import { listSegments } from '../../src/tape/segment-files.js';
import { TapeCursor } from '../../src/tape/tape-cursor.js';
import { spawnNode, type Spawned } from '../helpers/processes.js';
import { StreamClient, type Message } from '../helpers/stream-client.js';
import { eventually } from '../helpers/wait.js';

const FSYNC_MS = 200;

async function gateway(t: Test, dir: string): Promise<{ proc: Spawned; base: string }> {
  const proc = spawnNode(t, ['dist/src/server.js'], { PORT: '0', STREAMS: 'v2/iex', SIMULATOR_RATE: '4000', TAPE_DIR: dir, TAPE_FSYNC_MS: String(FSYNC_MS), LOG_LEVEL: 'info' });
  const ready = JSON.parse(await proc.line(/tickmux ready/)) as { address: string };
  return { proc, base: ready.address };
}

/** Every trade on the tape, as `symbol:id`, and whether any record failed its check. */
async function tapeTrades(dir: string): Promise<Set<string>> {
  const cursor = await TapeCursor.open(dir, 'v2/iex', 0n);
  const keys = new Set<string>();
  try {
    for (let records = await cursor.next(); records.length > 0; records = await cursor.next()) {
      for (const record of records) {
        if (record.type !== 'frame') continue;
        for (const m of decodeFrame(record.bytes, record.encoding) as Message[]) if (m.T === 't') keys.add(`${m.S}:${m.i}`);
      }
    }
  } finally {
    await cursor.close();
  }
  return keys;
}

t.test('kill -9 of a recording gateway under load: the tape reads back, at most TAPE_FSYNC_MS of messages are missing, a torn record is cut, recording continues', async (t) => {
  const dir = t.testdir();
  const first = await gateway(t, dir);
  // The operator records every trade and quote: the vendor streams them whether or not a client holds them.
  const pinned = await fetch(`${first.base}/subscriptions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ action: 'subscribe', trades: ['*'], quotes: ['*'] }) });
  t.equal(pinned.status, 200);
  const client = new StreamClient(`${first.base.replace(/^http/, 'ws')}/v2/iex`, { encoding: 'msgpack' });
  t.teardown(() => client.close());
  await client.opened();
  await client.auth('c', 's');
  const receivedAt = new Map<string, number>();
  client.socket.on('message', () => {
    const now = Date.now();
    for (const m of client.messages.slice(-200)) if (m.T === 't' && !receivedAt.has(`${m.S}:${m.i}`)) receivedAt.set(`${m.S}:${m.i}`, now);
  });
  await client.request({ action: 'subscribe', trades: ['*'] });
  await eventually(() => receivedAt.size >= 2000, 'two thousand trades live');
  first.proc.child.kill('SIGKILL');
  t.equal(await first.proc.exited, 'SIGKILL');
  await client.closed;

  const recorded = await tapeTrades(dir);
  const lastAt = Math.max(...receivedAt.values());
  const missing = [...receivedAt].filter(([key]) => !recorded.has(key));
  t.ok(recorded.size > 0, `${recorded.size} trades on the tape`);
  t.ok(
    missing.every(([, at]) => at >= lastAt - FSYNC_MS),
    `the ${missing.length} trades the client got that the tape lacks all came in the last ${FSYNC_MS} ms before the kill`,
  );

  // What a power cut in the middle of a write leaves: half a record at the end of the last segment.
  const segments = await listSegments(join(dir, 'v2/iex'));
  const torn = Buffer.alloc(40);
  torn.writeUInt32LE(4000, 0);
  await appendFile(segments.at(-1)!.path, torn);

  const second = await gateway(t, dir);
  await eventually(() => second.proc.stdout().includes('torn tail truncated'), 'the truncation logged');
  t.match(second.proc.stdout(), /"truncatedBytes":40\b/, 'exactly the torn bytes cut');
  t.same([...(await tapeTrades(dir))].filter((k) => !recorded.has(k)), [], 'nothing of the old tape was lost by the repair');
  const tape = async (): Promise<{ state: string; streams: { messages: number; segments: number; gaps: { reason: string }[] }[] }> => (await (await fetch(`${second.base}/tape`)).json()) as never;
  const before = (await tape()).streams[0]!.messages;
  const repinned = await fetch(`${second.base}/subscriptions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ action: 'subscribe', trades: ['*'] }) });
  t.equal(repinned.status, 200, 'the vendor streams trades again');
  let after = before;
  for (let tries = 0; after <= before && tries < 200; tries++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    after = (await tape()).streams[0]!.messages;
  }
  const status = await tape();
  t.equal(status.state, 'recording');
  t.ok(after > before, 'recording continues after the restart');
  t.ok(status.streams[0]!.segments >= 2, 'in a new segment');
  t.ok(status.streams[0]!.gaps.some((g) => /recorder not running/.test(g.reason)), 'with a gap mark for the time it was down');
  second.proc.child.kill('SIGTERM');
  t.equal(await second.proc.exited, 0);
});
