/**
 * The child processes of a bench or soak run, and what /proc says about a process. Children are
 * killed when this process exits, however it exits, so no run leaves a gateway or simulator behind.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Measured } from './load-clients.js';

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

/** The repository root (the bench runs the built `dist/`). */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Resolves with the first stdout line of `child` that parses as JSON and passes `accept`. */
export function jsonLine<T>(child: ChildProcess, accept: (v: Record<string, unknown>) => boolean): Promise<T> {
  return new Promise((resolve, reject) => {
    let buffer = '';
    const onData = (chunk: Buffer): void => {
      buffer += chunk.toString();
      let newline: number;
      while ((newline = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        try {
          const value = JSON.parse(line) as Record<string, unknown>;
          if (accept(value)) {
            child.stdout?.off('data', onData);
            child.stdout?.resume();
            resolve(value as T);
            return;
          }
        } catch (err) {
          if (!(err instanceof SyntaxError)) throw err;
        }
      }
    };
    child.stdout?.on('data', onData);
    child.once('exit', (code) => reject(new Error(`process exited (${code}) before it was ready`)));
  });
}

/** Starts `node args…` in the repository, killed when this process exits. */
export function node(args: string[], env: Record<string, string> = {}, nodeArgs: string[] = []): ChildProcess {
  return track(spawn(process.execPath, [...nodeArgs, ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] }));
}

/** Sets the simulator's rate through its control endpoint. */
export async function setRate(controlBase: string, rate: number): Promise<void> {
  const res = await fetch(`${controlBase}/control/rate?value=${rate}`, { method: 'POST' });
  if (!res.ok) throw new Error(`could not set the simulator rate: ${res.status}`);
}

/** Asks the load process for one window's figures. */
export function measure(child: ChildProcess, ms: number): Promise<Measured> {
  return new Promise((resolve) => {
    const onMessage = (m: { type: string } & Measured): void => {
      if (m.type !== 'measured') return;
      child.off('message', onMessage);
      resolve({ deliveredPerSecond: m.deliveredPerSecond, framesPerSecond: m.framesPerSecond, latencyMs: m.latencyMs, groups: m.groups });
    };
    child.on('message', onMessage);
    child.send({ type: 'measure', ms });
  });
}

/** SIGTERM, then SIGKILL if `child` has not exited `graceMs` later; resolves once it has exited. */
export async function stopProcess(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const kill = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(kill);
}

/** Stops the load process and waits for it to exit. */
export async function stopClients(child: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.send({ type: 'stop' });
  await exited;
}

/**
 * Memory of every TCP socket on the machine, in bytes (/proc/net/sockstat, pages). On loopback a
 * client's unread data sits in its socket's receive queue — kernel memory, in no process's RSS.
 */
export function tcpSocketBytes(): number | undefined {
  try {
    const m = /^TCP:.* mem (\d+)$/m.exec(readFileSync('/proc/net/sockstat', 'utf8'));
    return m === null ? undefined : Number(m[1]) * 4096;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** The kernel's TCP extension counters (/proc/net/netstat `TcpExt`), by name; empty where there is no such file. */
export function tcpExtCounters(): Map<string, number> {
  let text: string;
  try {
    text = readFileSync('/proc/net/netstat', 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
    throw err;
  }
  const [names, values] = text.split('\n').filter((line) => line.startsWith('TcpExt:'));
  if (names === undefined || values === undefined) return new Map();
  const counts = values.split(' ').slice(1).map(Number);
  return new Map(names.split(' ').slice(1).map((name, i) => [name, counts[i] as number]));
}
