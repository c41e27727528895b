import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import t, { type Test } from 'tap';
import { isJsonContentType, isLoopbackHostHeader } from '../../src/plugins/browser-guard.js';
import { type GatewayFixture, startGateway } from '../helpers/gateway.js';
import { disagreements } from '../helpers/openapi.js';
import { rawUpgrade } from '../helpers/raw-upgrade.js';
import { StreamClient } from '../helpers/stream-client.js';
import { eventually } from '../helpers/wait.js';

const TOKEN = 'guard-control-token';
const AUTH = { authorization: `Bearer ${TOKEN}` };
const PROTECTED = { CLIENT_KEYS: 'alice:alice-secret', CONTROL_TOKEN: TOKEN };
const EVIL = 'https://evil.example';

/** Injects a request and checks the response against openapi.yaml (`path` in OpenAPI form). */
async function call(t: Test, gw: GatewayFixture, specPath: string, options: InjectOptions): Promise<LightMyRequestResponse> {
  const response = await gw.app.inject(options);
  t.same(disagreements(options.method as string, specPath, response as never), [], `${options.method} ${options.url} → ${response.statusCode} agrees with openapi.yaml`);
  return response;
}

const portOf = (gw: GatewayFixture): number => Number(new URL(gw.base).port);

/** An upgrade of /v2/iex over a bare socket that must be refused with `status`, then closed by the server. */
async function refusedUpgrade(t: Test, gw: GatewayFixture, status: number, headers: Record<string, string>, detail: RegExp): Promise<void> {
  const answer = await rawUpgrade(t, portOf(gw), '/v2/iex', { 'x-correlation-id': `upgrade-${status}`, ...headers });
  t.equal(answer.statusCode, status, `the upgrade is refused with ${status}`);
  t.same(disagreements('GET', '/v2/{feed}', answer), [], 'the refusal agrees with openapi.yaml');
  t.match(JSON.parse(answer.body), { status, detail, correlationId: `upgrade-${status}` });
  t.equal(answer.headers.connection, 'close', 'the answer says the connection closes');
  await answer.serverClosed;
  t.pass('the server closed the socket after the answer');
}

t.test('Host headers that name this machine: localhost, *.localhost, 127.0.0.0/8, [::1], with or without a port', async (t) => {
  for (const host of ['localhost', 'LOCALHOST:8080', 'app.localhost', 'a.b.localhost:3000', '127.0.0.1', '127.0.0.1:8080', '127.8.9.10:1', '[::1]', '[::1]:8080']) {
    t.ok(isLoopbackHostHeader(host, '127.0.0.1'), `${host} is loopback`);
  }
  for (const host of ['evil.example', 'evil.example:8080', 'localhost.evil.example', '128.0.0.1', '0.0.0.0:8080', '[::2]:8080', '::1', '127.0.0.1:80:80', '', 'localhost:port', '[::1']) {
    t.notOk(isLoopbackHostHeader(host, '127.0.0.1'), `${JSON.stringify(host)} is not loopback`);
  }
  t.ok(isLoopbackHostHeader('[::1]:9', '::1'), 'the configured HOST itself');
});

t.test('JSON content types: application/json with or without parameters, any case', async (t) => {
  for (const type of ['application/json', 'application/json; charset=utf-8', 'Application/JSON ;charset=UTF-8']) t.ok(isJsonContentType(type), type);
  for (const type of ['text/plain', 'text/plain;charset=UTF-8', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/json-patch+json', 'application/jsonx', '']) {
    t.notOk(isJsonContentType(type), JSON.stringify(type));
  }
});

t.test('a foreign Origin is refused with 403 on the control plane and on the stream upgrade, whose socket is then closed', async (t) => {
  const gw = await startGateway(t, { CONTROL_TOKEN: TOKEN });
  await gw.gateway.defaultStream.link.whenLive(10_000);
  const sim = gw.simulator!;
  const before = sim.stats.connections;
  const origin = { ...AUTH, origin: EVIL, 'x-correlation-id': 'cross-site-1' };
  const restart = await call(t, gw, '/restart', { method: 'POST', url: '/restart', headers: origin });
  t.equal(restart.statusCode, 403, 'POST /restart');
  t.equal(restart.headers['content-type'], 'application/problem+json; charset=utf-8');
  t.match(restart.json(), { status: 403, title: 'Forbidden', detail: /origin "https:\/\/evil\.example" is not allowed/, correlationId: 'cross-site-1' });
  const pin = await call(t, gw, '/subscriptions', { method: 'POST', url: '/subscriptions', headers: origin, payload: { action: 'subscribe', trades: ['SPY'] } });
  t.equal(pin.statusCode, 403, 'POST /subscriptions');
  t.ok(gw.gateway.defaultStream.hub.pinned.isEmpty, 'nothing was pinned');
  t.equal((await call(t, gw, '/subscriptions', { method: 'GET', url: '/subscriptions', headers: origin })).statusCode, 403, 'GET /subscriptions');
  t.equal((await call(t, gw, '/metrics', { method: 'GET', url: '/metrics', headers: { origin: 'null' } })).statusCode, 403, 'GET /metrics, even from an opaque origin');
  await refusedUpgrade(t, gw, 403, { Origin: EVIL }, /origin "https:\/\/evil\.example" is not allowed/);
  t.equal(gw.gateway.defaultStream.hub.stats.connected, 0, 'no session was opened');
  t.equal(sim.stats.connections, before, 'the vendor link was not restarted');
  t.equal(gw.gateway.defaultStream.link.state, 'live');
  t.notMatch(gw.logs().join('\n'), TOKEN, 'the token never reaches a log line');
});

t.test('an origin listed in ALLOWED_ORIGINS is served, in any case; requests without Origin are unaffected', async (t) => {
  const gw = await startGateway(t, { ...PROTECTED, ALLOWED_ORIGINS: 'https://dash.example,http://localhost:3000' });
  const listed = await call(t, gw, '/subscriptions', { method: 'GET', url: '/subscriptions', headers: { ...AUTH, origin: 'https://Dash.Example' } });
  t.equal(listed.statusCode, 200, 'GET /subscriptions from a listed origin');
  const pin = await call(t, gw, '/subscriptions', {
    method: 'POST',
    url: '/subscriptions',
    headers: { ...AUTH, origin: 'http://localhost:3000', 'content-type': 'application/json; charset=utf-8' },
    payload: JSON.stringify({ action: 'subscribe', trades: ['SPY'] }),
  });
  t.ok([200, 202].includes(pin.statusCode), `POST /subscriptions from a listed origin (${pin.statusCode})`);
  t.same(gw.gateway.defaultStream.hub.pinned.toLists().trades, ['SPY']);
  t.equal((await call(t, gw, '/subscriptions', { method: 'GET', url: '/subscriptions', headers: { ...AUTH, origin: 'http://localhost:3001' } })).statusCode, 403, 'another port is another origin');
  const browser = new StreamClient(gw.url(), { headers: { Origin: 'https://dash.example' } });
  t.teardown(() => browser.close());
  await browser.opened();
  t.same(await browser.auth('alice', 'alice-secret'), { T: 'success', msg: 'authenticated' }, 'a stream from a listed origin works');
  const sdk = await gw.connect();
  t.same(await sdk.auth('alice', 'alice-secret'), { T: 'success', msg: 'authenticated' }, 'a client without Origin works');
  await refusedUpgrade(t, gw, 403, { Origin: 'https://dash.example.evil.example' }, /is not allowed/);
});

t.test('a POST body declared as anything but JSON gets 415 and does nothing; a body-less POST /restart still restarts', async (t) => {
  const gw = await startGateway(t);
  await gw.gateway.defaultStream.link.whenLive(10_000);
  const sim = gw.simulator!;
  const before = sim.stats.connections;
  // The "simple request" a page can send cross-site without a preflight.
  const plain = await call(t, gw, '/restart', { method: 'POST', url: '/restart', headers: { 'content-type': 'text/plain;charset=UTF-8' }, payload: 'restart' });
  t.equal(plain.statusCode, 415);
  t.match(plain.json(), { status: 415, title: 'Unsupported Media Type', detail: /content-type of a POST body must be application\/json, not "text\/plain;charset=UTF-8"/, correlationId: plain.headers['x-correlation-id'] });
  for (const type of ['application/x-www-form-urlencoded', 'multipart/form-data; boundary=x']) {
    t.equal((await call(t, gw, '/restart', { method: 'POST', url: '/restart', headers: { 'content-type': type }, payload: 'a=b' })).statusCode, 415, type);
  }
  const untyped = await call(t, gw, '/restart', { method: 'POST', url: '/restart', payload: 'restart' });
  t.equal(untyped.statusCode, 415, 'a body with no content type (a Blob sent with no-cors) is not read either');
  const pin = await call(t, gw, '/subscriptions', { method: 'POST', url: '/subscriptions', headers: { 'content-type': 'text/plain' }, payload: '{"action":"subscribe","trades":["SPY"]}' });
  t.equal(pin.statusCode, 415, 'JSON text declared as text/plain is not read');
  t.ok(gw.gateway.defaultStream.hub.pinned.isEmpty, 'nothing was pinned');
  t.equal(gw.gateway.defaultStream.link.state, 'live', 'the refused restarts did not touch the link');

  const bodyless = await call(t, gw, '/restart', { method: 'POST', url: '/restart' });
  t.equal(bodyless.statusCode, 202, 'curl -X POST …/restart');
  t.equal(bodyless.json().restarts[0].joined, false, 'a restart of its own: none was in flight');
  await gw.gateway.defaultStream.link.whenLive(10_000);
  t.equal(sim.stats.connections, before + 1, 'exactly one reconnect: the body-less one');
});

t.test('an open loopback gateway refuses a foreign Host with 403 (DNS rebinding), on HTTP and on the upgrade', async (t) => {
  // Either secret unset leaves part of the gateway open to any local page, so the check stays on.
  const opens: Record<string, string>[] = [{}, { CLIENT_KEYS: 'alice:alice-secret' }, { CONTROL_TOKEN: TOKEN }];
  for (const env of opens) {
    const gw = await startGateway(t, env);
    const label = JSON.stringify(Object.keys(env));
    const evil = await call(t, gw, '/health/live', { method: 'GET', url: '/health/live', headers: { host: 'evil.example:8080' } });
    t.equal(evil.statusCode, 403, `${label}: GET /health/live`);
    t.match(evil.json(), { status: 403, detail: /host "evil\.example:8080" is not a loopback name/ });
    const restart = await call(t, gw, '/restart', { method: 'POST', url: '/restart', headers: { ...AUTH, host: 'evil.example:8080' } });
    t.equal(restart.statusCode, 403, `${label}: POST /restart`);
    for (const host of ['localhost:8080', 'dev.localhost', '127.0.0.2:8080', '[::1]:8080']) {
      t.equal((await call(t, gw, '/health/live', { method: 'GET', url: '/health/live', headers: { host } })).statusCode, 200, `${label}: ${host} is served`);
    }
    await refusedUpgrade(t, gw, 403, { Host: 'evil.example:8080' }, /is not a loopback name/);
    t.equal(gw.gateway.defaultStream.hub.stats.connected, 0, `${label}: no session was opened`);
  }
});

t.test('with CLIENT_KEYS and CONTROL_TOKEN set, any Host is served', async (t) => {
  const gw = await startGateway(t, PROTECTED);
  t.equal((await call(t, gw, '/health/live', { method: 'GET', url: '/health/live', headers: { host: 'gateway.internal:8080' } })).statusCode, 200);
  const stream = await rawUpgrade(t, portOf(gw), '/v2/iex', { Host: 'gateway.internal:8080' });
  t.equal(stream.statusCode, 101, 'the upgrade goes through');
  stream.socket.destroy();
  await eventually(() => gw.gateway.defaultStream.hub.stats.connected === 0, 'the session of the dropped socket released');
});
