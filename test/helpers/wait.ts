import { WAIT_LIMIT_MS } from './stream-client.js';

/**
 * Resolves once `check()` holds, looking again every few milliseconds. For conditions with no
 * event to wait on (a count of messages that arrive over real sockets); the deadline turns a hang
 * into a failure that names what never happened, it measures nothing.
 */
export function eventually(check: () => boolean, what: string, limitMs = WAIT_LIMIT_MS): Promise<void> {
  return new Promise((resolve, reject) => {
    if (check()) return resolve();
    const deadline = setTimeout(() => {
      clearInterval(poll);
      reject(new Error(`gave up waiting for ${what}`));
    }, limitMs);
    const poll = setInterval(() => {
      if (!check()) return;
      clearInterval(poll);
      clearTimeout(deadline);
      resolve();
    }, 2);
  });
}
