/**
 * The child processes of a bench or soak run, and what /proc says about a process. Children are
 * killed when this process exits, however it exits, so no run leaves a gateway or simulator behind.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';

const CLK_TCK = 100;
const children = new Set<ChildProcess>();

process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

/** Registers `child` to be killed when this process exits (until it exits itself). */
export function track<C extends ChildProcess>(child: C): C {
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

/** Resident memory of a process in bytes, from /proc; undefined once it is gone. */
export function rssBytes(pid: number): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m === null ? undefined : Number(m[1]) * 1024;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** CPU seconds (user + system) a process has used, from /proc. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}
