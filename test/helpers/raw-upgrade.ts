/**
 * A WebSocket upgrade request over a bare TCP socket, for checking how a refused upgrade ends: a
 * WebSocket library hides whether the server closed the socket, this does not.
 */
import { connect, type Socket } from 'node:net';
import type { Test } from 'tap';
import { WAIT_LIMIT_MS } from './stream-client.js';

export interface RawAnswer {
  statusCode: number;
  /** header names in lower case */
  headers: Record<string, string>;
  body: string;
  /** resolves when the server ends the socket; rejects if it never does (the deadline measures nothing) */
  serverClosed: Promise<void>;
  socket: Socket;
}

/**
 * Sends an upgrade request for `path` with `headers` (Host defaults to 127.0.0.1:port) and resolves
 * once the status line, headers and `content-length` bytes of body are in. The test's teardown
 * destroys the socket.
 */
export function rawUpgrade(t: Test, port: number, path: string, headers: Record<string, string> = {}): Promise<RawAnswer> {
  const socket = connect(port, '127.0.0.1');
  t.teardown(() => {
    socket.destroy();
  });
  const all: Record<string, string> = {
    Host: `127.0.0.1:${port}`,
    Connection: 'Upgrade',
    Upgrade: 'websocket',
    'Sec-WebSocket-Version': '13',
    'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
    ...headers,
  };
  socket.write(`GET ${path} HTTP/1.1\r\n${Object.entries(all).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`);
  const serverClosed = new Promise<void>((resolve, reject) => {
    const deadline = setTimeout(() => reject(new Error(`the server never closed the socket of the upgrade to ${path}`)), WAIT_LIMIT_MS);
    socket.once('end', () => {
      clearTimeout(deadline);
      resolve();
    });
    socket.once('close', () => {
      clearTimeout(deadline);
      reject(new Error(`the socket of the upgrade to ${path} closed without the server ending it`));
    });
  });
  serverClosed.catch(() => undefined); // observed by the test that awaits it; never an unhandled rejection
  return new Promise((resolve, reject) => {
    let received = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      received = Buffer.concat([received, chunk]);
      const end = received.indexOf('\r\n\r\n');
      if (end < 0) return;
      const [statusLine, ...lines] = received.subarray(0, end).toString('latin1').split('\r\n');
      const headers: Record<string, string> = {};
      for (const line of lines) {
        const colon = line.indexOf(':');
        headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      const length = Number(headers['content-length'] ?? 0);
      if (received.length < end + 4 + length) return;
      socket.off('data', onData);
      const statusCode = Number(/^HTTP\/1\.1 (\d{3})/.exec(statusLine ?? '')?.[1]);
      resolve({ statusCode, headers, body: received.subarray(end + 4, end + 4 + length).toString('utf8'), serverClosed, socket });
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.once('end', () => reject(new Error(`the socket ended before a whole answer: ${JSON.stringify(received.toString('latin1'))}`)));
  });
}
