import t, { type Test } from 'tap';
import { spawnNode } from './helpers/processes.js';

/** `npm run bench -- --tape` is measured by hand; this proves it still runs end to end (its own file: it runs beside the other bench tests). */
interface Side {
  deliveredPerSecond: number;
  offeredPerSecond: number;
  cpuPercent: number;
  steps: { deliveredPerSecond: number; streams: Record<string, { vendorPerSecond: number }> }[];
}

interface Seeks {
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  samples: number;
}

const positive = (t: Test, value: unknown, what: string): void => {
  t.ok(typeof value === 'number' && Number.isFinite(value) && value > 0, `${what} is a positive number (${String(value)})`);
};

t.test('npm run bench -- --tape records beside a gateway that does not, replays, weighs the tape and seeks a synthetic one, and prints one JSON object', async (t) => {
  const proc = spawnNode(t, [
    'dist/bench/run.js',
    '--tape',
    ...['--clients', '20', '--seconds', '0.5', '--warmup', '0.3', '--rates', '200', '--tape-repeats', '1'],
    ...['--tape-fill-rate', '2000', '--tape-fill-seconds', '0.5', '--tape-replays', '2', '--tape-seek-gb', '0.02', '--tape-seeks', '5'],
  ]);
  t.equal(await proc.exited, 0, proc.stderr());
  const result = JSON.parse(proc.stdout()) as {
    clients: number;
    machine: { loadAverageAtStart: number[] };
    tape: {
      stream: string;
      throughput: { steps: { vendorRate: number; order: string[]; plain: Side; recording: Side; ratio: { delivered: number; ofOffered: number; cpu: number } }[]; highest: { ratio: number }; met: boolean };
      recorded: { vendorMessages: number; vendorBytes: number };
      replay: { runs: { messages: number; seconds: number; msgsPerSecond: number }[]; msgsPerSecond: number; complete: boolean; source: string; met: boolean };
      bytes: { segments: number; segmentBytes: number; vendorBytes: number; ratio: number; met: boolean };
      seek:
        | { tape: { gigabytes: number; segments: number }; pageCacheAsWritten: Seeks; pagesDroppedFirst: Seeks | { skipped: string }; correct: string; met: { pageCacheAsWritten: boolean; pagesDroppedFirst: boolean | null } }
        | { skipped: string };
    };
  };
  t.equal(result.clients, 20);
  t.equal(result.machine.loadAverageAtStart.length, 3, 'the load average is reported');
  const { tape } = result;
  t.equal(tape.stream, 'v2/iex');

  const [step] = tape.throughput.steps;
  t.equal(step?.vendorRate, 200);
  t.same(step?.order, ['plain', 'recording'], 'one step against each gateway');
  positive(t, step?.plain.deliveredPerSecond, 'delivered without recording');
  positive(t, step?.recording.deliveredPerSecond, 'delivered while recording');
  positive(t, step?.recording.offeredPerSecond, 'offered to the recording gateway’s clients');
  positive(t, step?.recording.steps[0]?.streams['v2/iex']?.vendorPerSecond, 'what the vendor sent the recording gateway');
  positive(t, step?.ratio.delivered, 'the delivered ratio');
  positive(t, step?.ratio.ofOffered, 'the ratio of delivered to offered');
  positive(t, tape.throughput.highest.ratio, 'the ratio of the highest figures');
  t.type(tape.throughput.met, 'boolean');

  positive(t, tape.recorded.vendorMessages, 'vendor messages recorded');
  t.equal(tape.replay.runs.length, 2, 'one figure per replay');
  for (const run of tape.replay.runs) {
    t.equal(run.messages, tape.recorded.vendorMessages, 'a replay of the whole tape sends every message the vendor sent');
    positive(t, run.msgsPerSecond, 'replayed msgs/s');
  }
  positive(t, tape.replay.msgsPerSecond, 'the replay figure');
  t.equal(tape.replay.complete, true);
  t.match(tape.replay.source, /page cache/, 'the replay says where it read from');

  t.ok(tape.bytes.segments >= 1, 'the stream has segments');
  positive(t, tape.bytes.segmentBytes, 'tape bytes');
  positive(t, tape.bytes.vendorBytes, 'vendor bytes');
  positive(t, tape.bytes.ratio, 'the bytes ratio');

  const { seek } = tape;
  if ('skipped' in seek) {
    // A disk with less than 20 GB free: the bench says so instead of filling it.
    t.match(seek.skipped, /GB free/, 'the seek part says why it wrote nothing');
    return;
  }
  positive(t, seek.tape.gigabytes, 'the synthetic tape’s size');
  t.equal(seek.pageCacheAsWritten.samples, 5, 'five seeks');
  for (const key of ['p50Ms', 'p99Ms', 'maxMs'] as const) positive(t, seek.pageCacheAsWritten[key], `seek ${key}`);
  if ('samples' in seek.pagesDroppedFirst) t.equal(seek.pagesDroppedFirst.samples, 5, 'and five with the pages dropped first');
  t.match(seek.correct, /^(\d+) of \1$/, 'every seek found the first record at or after its instant');
});
