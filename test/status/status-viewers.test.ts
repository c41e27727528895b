import { EventEmitter } from 'node:events';
import t from 'tap';
import { serverSentEvent, StatusViewers, type ViewerSink } from '../../src/status/status-viewers.js';
import { captureLogs } from '../helpers/log-capture.js';

/** A sink whose peer takes `takes` bytes of each write and leaves the rest unsent. */
class Sink extends EventEmitter implements ViewerSink {
  writableLength = 0;
  written = '';
  destroyed = false;
  ended = false;

  constructor(readonly takes: number) {
    super();
  }

  write(chunk: string): boolean {
    this.written += chunk;
    this.writableLength += Math.max(0, Buffer.byteLength(chunk) - this.takes);
    return true;
  }

  end(): void {
    this.ended = true;
    this.emit('close');
  }

  destroy(): void {
    this.destroyed = true;
    this.emit('close');
  }
}

const viewersWith = (options: { maxViewers?: number; connectionsLeft?: () => boolean } = {}): StatusViewers =>
  new StatusViewers({ maxViewers: options.maxViewers ?? 4, maxBufferedBytes: 1000, connectionsLeft: options.connectionsLeft ?? (() => true), logger: captureLogs('silent').logger as never });

t.test('a viewer that holds more than the bound unsent is dropped before the write; one that reads is not', async (t) => {
  const viewers = viewersWith();
  const slow = new Sink(0);
  const fast = new Sink(Infinity);
  const chunk = 'x'.repeat(300);
  const slowViewer = viewers.add(slow, '10.0.0.1', chunk)!;
  viewers.add(fast, '10.0.0.2', chunk);
  t.equal(viewers.count, 2);
  for (let i = 0; i < 10; i++) viewers.broadcast(chunk);
  t.equal(viewers.dropped, 1);
  t.ok(slow.destroyed, 'the slow one is cut');
  t.equal(slow.writableLength, 900, 'it was never written past the bound (three chunks of 300 ≤ 1000)');
  t.equal(slowViewer.peakBufferedBytes, 900);
  t.equal(fast.written.length, 11 * 300, 'the reading one got every chunk');
  t.equal(viewers.count, 1);
});

t.test('admission: STATUS_MAX_VIEWERS, then the connection limit; a closed sink frees its place; closeAll ends every stream', async (t) => {
  let left = true;
  const viewers = viewersWith({ maxViewers: 2, connectionsLeft: () => left });
  const a = new Sink(Infinity);
  t.ok(viewers.add(a, 'a', 'hi'));
  t.ok(viewers.add(new Sink(Infinity), 'b', 'hi'));
  t.equal(viewers.refusal(), 'viewers');
  t.equal(viewers.add(new Sink(Infinity), 'c', 'hi'), undefined);
  t.equal(viewers.refused, 1);
  a.emit('close');
  t.equal(viewers.count, 1, 'a closed viewer is forgotten');
  left = false;
  t.equal(viewers.refusal(), 'connections', 'MAX_CLIENTS is full');
  left = true;
  t.equal(viewers.refusal(), undefined);
  const rest = viewers.viewers.length;
  viewers.closeAll();
  t.equal(rest, 1);
  t.equal(viewers.count, 0);
  t.equal(viewers.refusal(), 'viewers', 'none is admitted after a shutdown began');
});

t.test('server-sent events carry the name, id and one line of data', async (t) => {
  t.equal(serverSentEvent('snapshot', 7, '{"a":1}'), 'event: snapshot\nid: 7\ndata: {"a":1}\n\n');
});
