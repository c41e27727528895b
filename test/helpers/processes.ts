import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';

/** The repository root (tests run the built `dist/` the way `npm start` and `npx tickmux` do). */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface Spawned {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** resolves with the exit code (or the signal name) */
  exited: Promise<number | string>;
  /** waits until stdout has a line matching `pattern` and returns it */
  line: (pattern: RegExp) => Promise<string>;
}

/** Spawns `node args…` in the repository; the test's teardown kills it if it is still running. */
export function spawnNode(t: Test, args: string[], env: Record<string, string> = {}): Spawned {
  const child = spawn(process.execPath, args, { cwd: ROOT, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const listeners = new Set<() => void>();
  child.stdout.on('data', (chunk: Buffer) => {
    out += chunk.toString();
    for (const l of listeners) l();
  });
  child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  const line = (pattern: RegExp): Promise<string> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        const found = out.split('\n').find((l) => pattern.test(l));
        if (found !== undefined) {
          listeners.delete(check);
          resolve(found);
        }
      };
      listeners.add(check);
      void exited.then(() => {
        if (listeners.has(check)) reject(new Error(`process exited before printing ${pattern}; stderr: ${err}`));
      });
      check();
    });
  return { child, stdout: () => out, stderr: () => err, exited, line };
}
