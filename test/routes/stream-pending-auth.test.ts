import t from 'tap';
import { startGateway } from '../helpers/gateway.js';
import { disagreements } from '../helpers/openapi.js';
import { rawUpgrade } from '../helpers/raw-upgrade.js';
import { StreamClient } from '../helpers/stream-client.js';
import { eventually } from '../helpers/wait.js';

t.test('past MAX_PENDING_AUTH unauthenticated connections an upgrade gets HTTP 503 and its socket closed; an auth frees a place', async (t) => {
  const gw = await startGateway(t, { MAX_PENDING_AUTH: '3', CLIENT_KEYS: 'alice:alice-secret' });
  const port = Number(new URL(gw.base).port);
  const pending = [await gw.connect(), await gw.connect(), await gw.connect()];
  t.match(gw.gateway.defaultStream.hub.stats, { connected: 3, authenticated: 0 }, 'three waiting to authenticate');

  const refused = await rawUpgrade(t, port, '/v2/iex', { 'x-correlation-id': 'pending-4' });
  t.equal(refused.statusCode, 503, 'the fourth upgrade is refused over HTTP');
  t.same(disagreements('GET', '/v2/{feed}', refused), [], 'the refusal agrees with openapi.yaml');
  t.match(JSON.parse(refused.body), { status: 503, title: 'Service Unavailable', detail: /MAX_PENDING_AUTH/, correlationId: 'pending-4' });
  t.equal(refused.headers.connection, 'close');
  await refused.serverClosed;
  t.pass('the server closed the refused socket');
  const sdk = await new StreamClient(gw.url()).opened().then(
    () => undefined,
    (e: { statusCode: number }) => e.statusCode,
  );
  t.equal(sdk, 503, 'a WebSocket client sees the 503 as the upgrade’s answer');
  t.equal(gw.gateway.defaultStream.hub.stats.connected, 3, 'no session was opened for the refused ones');
  t.match(gw.logs().join('\n'), /client refused: pending-auth limit/);

  t.same(await pending[0]!.auth('alice', 'alice-secret'), { T: 'success', msg: 'authenticated' });
  await eventually(() => gw.gateway.defaultStream.hub.stats.authenticated === 1, 'the hub to count the authenticated client');
  const next = await gw.connect();
  t.equal(gw.gateway.defaultStream.hub.stats.connected, 4, 'an authenticated client does not count against the cap: a new upgrade is accepted');
  t.same(await next.auth('alice', 'alice-secret'), { T: 'success', msg: 'authenticated' }, 'and works');

  const third = await gw.connect();
  t.equal(gw.gateway.defaultStream.hub.stats.connected - gw.gateway.defaultStream.hub.stats.authenticated, 3, 'three pending again');
  const full = await rawUpgrade(t, port, '/v2/iex');
  t.equal(full.statusCode, 503, 'so the cap holds again');
  await full.serverClosed;

  await pending[1]!.close();
  await eventually(() => gw.gateway.defaultStream.hub.stats.connected === 4, 'the pending client that left released');
  const afterLeave = await gw.connect();
  t.equal(afterLeave.socket.readyState, afterLeave.socket.OPEN, 'a pending client that leaves frees its place');
  t.ok([pending[2]!, third].every((c) => c.socket.readyState === c.socket.OPEN), 'the pending clients stay connected');
});
