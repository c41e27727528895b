import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';

/**
 * Why the cluster tests cannot run here, or undefined when `nats-server` is on the PATH. The
 * reason is printed loudly once so a skipped cluster suite is never mistaken for a passing one.
 */
export const NATS_SKIP: string | undefined = (() => {
  const probe = spawnSync('nats-server', ['--version'], { encoding: 'utf8' });
  if (probe.error === undefined && probe.status === 0) return undefined;
  const reason = 'nats-server is not installed (apt-get install nats-server): the cluster tests are SKIPPED';
  process.stderr.write(`\n*** ${reason} ***\n\n`);
  return reason;
})();

/** A port nobody listens on right now: listen on 0, read the port, close. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface NatsServer {
  readonly url: string;
  readonly port: number;
  /** stops the server (SIGTERM, SIGKILL after a while) and starts it again on the same port and store */
  restart(): Promise<void>;
  /** stops the server; the store stays until teardown */
  stop(): Promise<void>;
}

/**
 * Starts a real `nats-server` with JetStream on a free loopback port and a temporary store; the
 * test's teardown stops it and removes the store.
 */
export async function startNats(t: Test): Promise<NatsServer> {
  const port = await freePort();
  const storeDir = mkdtempSync(join(tmpdir(), 'tickmux-nats-'));
  let child: ChildProcess | undefined;
  let stderr = '';

  const launch = (): Promise<void> =>
    new Promise((resolve, reject) => {
      stderr = '';
      const proc = spawn('nats-server', ['-js', '-sd', storeDir, '-p', String(port), '-a', '127.0.0.1'], { stdio: ['ignore', 'ignore', 'pipe'] });
      child = proc;
      const onData = (chunk: Buffer): void => {
        stderr += chunk.toString();
        if (stderr.includes('Server is ready')) {
          proc.stderr.off('data', onData);
          proc.stderr.resume();
          resolve();
        }
      };
      proc.stderr.on('data', onData);
      proc.once('exit', (code, signal) => reject(new Error(`nats-server exited (${code ?? signal}) before it was ready: ${stderr}`)));
      proc.once('error', reject);
    });

  const stop = async (): Promise<void> => {
    const proc = child;
    child = undefined;
    if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill('SIGTERM');
    const kill = setTimeout(() => proc.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(kill);
  };

  t.teardown(async () => {
    await stop();
    rmSync(storeDir, { recursive: true, force: true });
  });
  await launch();
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    stop,
    restart: async () => {
      await stop();
      await launch();
    },
  };
}
