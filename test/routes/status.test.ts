import { connect } from 'node:net';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import t, { type Test } from 'tap';
import { VIEWER_MAX_BUFFERED_BYTES } from '../../src/plugins/status.js';
import type { StatusSnapshot } from '../../routes/status.js';
import { type EventStreamClient, openEventStream } from '../helpers/event-stream.js';
import { type GatewayFixture, startGateway } from '../helpers/gateway.js';
import { NATS_SKIP, startNats } from '../helpers/nats.js';
import { disagreements } from '../helpers/openapi.js';
import { startSimulator } from '../helpers/simulator.js';
import { eventually } from '../helpers/wait.js';

const TOKEN = 'status-control-token';
const EVIL = 'https://evil.example';

/** Injects a request and checks the response against openapi.yaml. */
async function call(t: Test, gw: GatewayFixture, specPath: string, options: InjectOptions): Promise<LightMyRequestResponse> {
  const response = await gw.app.inject(options);
  t.same(disagreements(options.method as string, specPath, response as never), [], `${options.method} ${options.url} → ${response.statusCode} agrees with openapi.yaml`);
  return response;
}

/** A viewer of the gateway's event stream that the teardown closes. */
async function viewer(t: Test, gw: GatewayFixture, headers: Record<string, string> = {}): Promise<EventStreamClient> {
  const client = await openEventStream(`${gw.base}/status/events`, headers);
  t.teardown(() => client.close());
  return client;
}

const snapshotsOf = (client: EventStreamClient): StatusSnapshot[] => client.snapshots() as unknown as StatusSnapshot[];

t.test('GET /status is one self-contained HTML page, open like /streams even with CONTROL_TOKEN set', async (t) => {
  const gw = await startGateway(t, { CONTROL_TOKEN: TOKEN });
  const page = await call(t, gw, '/status', { method: 'GET', url: '/status', headers: { 'x-correlation-id': 'page-1' } });
  t.equal(page.statusCode, 200, 'no token needed, as for GET /streams');
  t.equal((await gw.app.inject({ method: 'GET', url: '/streams' })).statusCode, 200, 'GET /streams is open too');
  t.equal((await gw.app.inject({ method: 'GET', url: '/subscriptions' })).statusCode, 401, 'while the lists behind the token stay behind it');
  t.equal(page.headers['content-type'], 'text/html; charset=utf-8');
  t.equal(page.headers['x-correlation-id'], 'page-1');
  t.equal(page.headers['cache-control'], 'no-store');
  t.match(page.headers['content-security-policy'], /default-src 'none'/, 'a CSP that allows nothing from elsewhere');
  t.match(page.headers['content-security-policy'], /connect-src 'self'/, 'and its own event stream');
  t.match(page.body, /^<!doctype html>/);
  t.match(page.body, /new EventSource\('status\/events'\)/, 'the page opens the event stream relative to itself');
  t.match(page.body, /Gateway unreachable/, 'it has the banner for a gateway that is gone');
  t.notMatch(page.body, /\ssrc=|<link|@import|url\(/, 'no script, style sheet or image is fetched from anywhere');
  t.notMatch(page.body, /innerHTML/, 'values are set as text, never as markup');
  t.equal((await gw.app.inject({ method: 'HEAD', url: '/status' })).statusCode, 200, 'HEAD works as for every GET');
});

t.test('a foreign Origin gets 403 on /status and /status/events; a foreign Host on an open gateway too', async (t) => {
  const gw = await startGateway(t);
  for (const url of ['/status', '/status/events']) {
    const foreign = await call(t, gw, url, { method: 'GET', url, headers: { origin: EVIL, 'x-correlation-id': 'cross-site' } });
    t.equal(foreign.statusCode, 403, `${url} with a foreign Origin`);
    t.match(foreign.json(), { status: 403, detail: /origin "https:\/\/evil\.example" is not allowed/, correlationId: 'cross-site' });
    const rebound = await call(t, gw, url, { method: 'GET', url, headers: { host: 'evil.example:8080' } });
    t.equal(rebound.statusCode, 403, `${url} with a foreign Host (DNS rebinding)`);
  }
  t.equal(gw.app.status.viewers.count, 0, 'no viewer was admitted');
  const listed = await startGateway(t, { ALLOWED_ORIGINS: 'https://dash.example' });
  const page = await call(t, listed, '/status', { method: 'GET', url: '/status', headers: { origin: 'https://dash.example' } });
  t.equal(page.statusCode, 200, 'an origin in ALLOWED_ORIGINS is served');
});

t.test('the event stream sends a snapshot with the history at once, then one per sample with the latest rates', async (t) => {
  const gw = await startGateway(t, { SIMULATOR_RATE: '300', STREAMS: 'v2/iex,v1beta3/crypto/us' });
  await gw.gateway.defaultStream.link.whenLive(10_000);
  const client = await gw.connect();
  await client.auth();
  await client.request({ action: 'subscribe', trades: ['*'], quotes: ['*'] });
  const events = await viewer(t, gw, { 'x-correlation-id': 'viewer-1' });
  t.equal(events.response.statusCode, 200);
  t.equal(events.response.headers['content-type'], 'text/event-stream; charset=utf-8');
  t.equal(events.response.headers['x-correlation-id'], 'viewer-1', 'the correlation id is echoed on the stream too');
  await events.waitForEvents(1, 'the first snapshot');
  t.match(events.body(), /^retry: 2000\n\n/, 'it tells the browser how soon to reconnect');
  const [first] = snapshotsOf(events);
  t.same(
    first!.streams.map((s) => s.stream),
    ['v2/iex', 'v1beta3/crypto/us'],
    'every served stream, in STREAMS order',
  );
  t.match(first!.streams[0], {
    stream: 'v2/iex',
    kind: 'stocks',
    state: 'live',
    breaker: 'closed',
    clients: { connected: 1, authenticated: 1 },
    lagging: 0,
    slowClientCloses: 0,
    subscriptions: { desired: 2 },
    history: { messages: Array, deliveries: Array },
  });
  t.match(first, { clients: { authenticated: 1, viewers: 1, maxClients: 10_000, maxViewers: 16 }, cluster: { cluster: null, nodes: [] }, tape: { state: 'off', bytesWritten: null } });
  await eventually(() => snapshotsOf(events).some((s) => s.streams[0]!.rates.deliveries > 0 && s.streams[0]!.rates.messages > 0), 'a sample with vendor messages and deliveries');
  const later = snapshotsOf(events).slice(1);
  t.ok(later.length > 0, 'more snapshots came, one per sample');
  t.ok(later.every((s) => s.streams.every((stream) => stream.history === undefined)), 'later snapshots carry the latest rates only, not the history again');
  const live = later.at(-1)!.streams[0]!;
  t.equal(live.subscriptions.atVendor, 2, 'the pairs the vendor acknowledged (trades and quotes *)');
  t.ok(live.rates.at !== null, 'when the rates were sampled');
  t.equal(new Set(events.events.map((e) => e.id)).size, events.events.length, 'every event has its own id');
  events.close();
  await eventually(() => gw.app.status.viewers.count === 0, 'the viewer that left to be forgotten');
});

t.test('a viewer that stops reading is dropped once it holds the bound unsent; one that reads keeps its snapshots', async (t) => {
  const gw = await startGateway(t);
  const board = gw.app.status;
  const reading = await viewer(t, gw);
  await reading.waitForEvents(1, 'the reading viewer’s first snapshot');
  const port = Number(new URL(gw.base).port);
  const stalled = connect(port, '127.0.0.1');
  t.teardown(() => stalled.destroy());
  stalled.pause(); // it never reads a byte
  stalled.write(`GET /status/events HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAccept: text/event-stream\r\n\r\n`);
  await eventually(() => board.viewers.count === 2, 'the stalled viewer to be admitted');
  const stalledViewer = board.viewers.viewers.reduce((a, b) => (b.id > a.id ? b : a));
  // Push snapshots as fast as they are built, with turns in between for the reading viewer.
  let published = 0;
  while (board.viewers.dropped === 0 && published < 200_000) {
    await board.publish();
    published += 1;
    if (published % 20 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
  t.equal(board.viewers.dropped, 1, 'the stalled viewer was dropped');
  t.ok(stalledViewer.peakBufferedBytes <= VIEWER_MAX_BUFFERED_BYTES, `it never held more than the bound unsent (${stalledViewer.peakBufferedBytes} ≤ ${VIEWER_MAX_BUFFERED_BYTES} bytes)`);
  t.ok(stalledViewer.sentBytes > VIEWER_MAX_BUFFERED_BYTES, `its kernel buffers took ${stalledViewer.sentBytes} bytes first: it was cut for what it held, not on a timer`);
  t.equal(board.viewers.count, 1, 'the reading viewer is still there');
  const before = reading.events.length;
  await board.publish();
  await reading.waitForEvents(before + 1, 'a snapshot after the drop');
  t.ok(reading.events.length >= published, 'the reading viewer got every snapshot');
  const closed = new Promise<void>((resolve) => stalled.once('close', () => resolve()));
  stalled.on('error', () => undefined); // a reset is as good as a close here
  stalled.resume();
  await closed;
  t.pass('the stalled viewer’s socket was closed by the gateway');
  t.ok(gw.logs().some((line) => line.includes('status viewer dropped: it does not read')), 'the drop is logged');
});

t.test('viewers count against STATUS_MAX_VIEWERS and, with the stream clients, against MAX_CLIENTS', async (t) => {
  const capped = await startGateway(t, { STATUS_MAX_VIEWERS: '2' });
  const a = await viewer(t, capped);
  await viewer(t, capped);
  await eventually(() => capped.app.status.viewers.count === 2, 'two viewers');
  const third = await call(t, capped, '/status/events', { method: 'GET', url: '/status/events' });
  t.equal(third.statusCode, 503, 'a third viewer is refused');
  t.match(third.json(), { status: 503, detail: /2 status viewers are watching \(STATUS_MAX_VIEWERS\)/ });
  t.equal(third.headers['retry-after'], '5');
  a.close();
  await eventually(() => capped.app.status.viewers.count === 1, 'a place to free up');
  const again = await viewer(t, capped);
  t.equal(again.response.statusCode, 200, 'a viewer is admitted again once one left');

  const gw = await startGateway(t, { MAX_CLIENTS: '2' });
  const client = await gw.connect();
  t.match(await client.auth(), { T: 'success', msg: 'authenticated' }, 'one stream client');
  const watching = await viewer(t, gw);
  t.equal(watching.response.statusCode, 200, 'and one viewer fill MAX_CLIENTS=2');
  const refused = await call(t, gw, '/status/events', { method: 'GET', url: '/status/events' });
  t.equal(refused.statusCode, 503, 'another viewer is refused');
  t.match(refused.json(), { detail: /2 connections are open \(MAX_CLIENTS counts stream clients and status viewers\)/ });
  const second = await gw.connect();
  t.match(await second.auth(), { T: 'error', code: 406 }, 'another stream client gets 406: the viewer holds a place');
  watching.close();
  await eventually(() => gw.app.status.viewers.count === 0, 'the viewer to leave');
  const third2 = await gw.connect();
  t.match(await third2.auth(), { T: 'success', msg: 'authenticated' }, 'its place goes to a stream client');
});

t.test('a shutdown ends every viewer’s stream, and the server closes while viewers are connected', async (t) => {
  const gw = await startGateway(t);
  const watching = await viewer(t, gw);
  await watching.waitForEvents(1, 'the first snapshot');
  await gw.app.close();
  await watching.ended;
  t.pass('the stream ended');
  t.equal(gw.app.status.viewers.count, 0);
});

t.test('on a cluster the snapshot names each stream’s lease owner and every node with its clients', { skip: NATS_SKIP }, async (t) => {
  const nats = await startNats(t);
  const sim = await startSimulator(t);
  const paths = ['v2/iex', 'v1beta3/crypto/us'];
  const env = (node: string): Record<string, string> => ({
    UPSTREAM_URL: sim.baseUrl,
    STREAMS: paths.join(','),
    APCA_API_KEY_ID: 'AKSTATUS',
    APCA_API_SECRET_KEY: 'status-secret',
    RETRY_BASE_MS: '20',
    RETRY_MAX_MS: '200',
    NATS_URL: nats.url,
    CLUSTER_NAME: 'statuspage',
    NODE_ID: node,
    LEASE_TTL_MS: '1500',
  });
  const a = await startGateway(t, env('node-a'));
  const b = await startGateway(t, env('node-b'));
  await eventually(() => paths.every((path) => [a, b].some((n) => n.gateway.stream(path)?.link.state === 'live')), 'every stream live on some node');
  const client = await b.connect();
  await client.auth();
  const events = await viewer(t, b);
  await eventually(
    () => snapshotsOf(events).some((s) => s.cluster.nodes.length === 2 && s.cluster.nodes.some((n) => n.id === 'node-b' && n.clients === 1) && paths.every((p) => s.cluster.streams[p]?.owner != null)),
    'a snapshot with both nodes, node-b’s client and an owner for every stream',
  );
  const last = snapshotsOf(events).at(-1)!;
  t.match(last.cluster, { cluster: 'statuspage', node: 'node-b', nats: 'connected' });
  t.same(last.cluster.nodes.map((n) => n.id), ['node-a', 'node-b'], 'every node');
  for (const path of paths) {
    const owner = last.cluster.streams[path]!.owner as string;
    const ownerNode = owner === 'node-a' ? a : b;
    t.equal(ownerNode.gateway.stream(path)?.link.state, 'live', `${path}: the owner named (${owner}) runs the live link`);
    const shown = last.streams.find((s) => s.stream === path)!;
    t.equal(shown.subscriptions.atVendor === null, owner !== 'node-b', `${path}: the vendor's set is shown where this node holds it, else left to the owner`);
  }
});

t.test('with a tape configured the snapshot shows it recording, with the bytes written', async (t) => {
  const gw = await startGateway(t, { TAPE_DIR: t.testdir(), SIMULATOR_RATE: '300' });
  await gw.gateway.defaultStream.link.whenLive(10_000);
  const client = await gw.connect();
  await client.auth();
  await client.request({ action: 'subscribe', trades: ['*'] });
  const events = await viewer(t, gw);
  await eventually(() => snapshotsOf(events).some((s) => (s.tape.bytesWritten ?? 0) > 0), 'a snapshot after the tape wrote something');
  const last = snapshotsOf(events).at(-1)!;
  t.match(last.tape, { state: 'recording', reason: null });
  t.equal(last.streams[0]!.tape, 'recording', 'and per stream');
});
