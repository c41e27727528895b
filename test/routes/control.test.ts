import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import t, { type Test } from 'tap';
import { startGateway, type GatewayFixture } from '../helpers/gateway.js';
import { disagreements } from '../helpers/openapi.js';
import { startSimulator } from '../helpers/simulator.js';
import { eventually } from '../helpers/wait.js';

const TOKEN = 'control-token-for-tests';
const AUTH = { authorization: `Bearer ${TOKEN}` };

/** Injects a request and checks the response against openapi.yaml (`path` in OpenAPI form). */
async function call(t: Test, gw: GatewayFixture, specPath: string, options: InjectOptions): Promise<LightMyRequestResponse> {
  const response = await gw.app.inject(options);
  const problems = disagreements(options.method as string, specPath, response as never);
  t.same(problems, [], `${options.method} ${options.url} → ${response.statusCode} agrees with openapi.yaml`);
  return response;
}

t.test('correlation ids: accepted, generated, replaced when invalid, echoed on errors, in the logs', async (t) => {
  const gw = await startGateway(t, { CONTROL_TOKEN: TOKEN });
  const given = await call(t, gw, '/health/live', { method: 'GET', url: '/health/live', headers: { 'x-correlation-id': 'ops-run:42.a_b-c' } });
  t.equal(given.headers['x-correlation-id'], 'ops-run:42.a_b-c', 'a valid id is echoed');
  const generated = await call(t, gw, '/health/live', { method: 'GET', url: '/health/live' });
  t.match(generated.headers['x-correlation-id'], /^[0-9a-f-]{36}$/, 'a missing id is generated');
  for (const bad of ['has space', 'x'.repeat(129), 'semi;colon', '']) {
    const replaced = await call(t, gw, '/health/live', { method: 'GET', url: '/health/live', headers: { 'x-correlation-id': bad } });
    t.match(replaced.headers['x-correlation-id'], /^[0-9a-f-]{36}$/, `invalid ${JSON.stringify(bad.slice(0, 12))} is replaced`);
  }
  const error = await call(t, gw, '/subscriptions', { method: 'GET', url: '/subscriptions', headers: { 'x-correlation-id': 'err-7' } });
  t.equal(error.statusCode, 401);
  t.equal(error.headers['x-correlation-id'], 'err-7', 'echoed on errors');
  t.equal(error.json().correlationId, 'err-7', 'and in the problem body');
  t.ok(gw.logs().some((l) => l.includes('"correlationId":"ops-run:42.a_b-c"')), 'request log lines carry it');
});

t.test('control auth: 401 without or with a wrong token; health and metrics stay open', async (t) => {
  const gw = await startGateway(t, { CONTROL_TOKEN: TOKEN });
  const none = await call(t, gw, '/restart', { method: 'POST', url: '/restart' });
  t.equal(none.statusCode, 401);
  t.equal(none.headers['www-authenticate'], 'Bearer realm="tickmux"');
  t.match(none.json(), { status: 401, title: 'Unauthorized', detail: /bearer token is required/ });
  const wrong = await call(t, gw, '/subscriptions', { method: 'POST', url: '/subscriptions', headers: { authorization: 'Bearer nope' }, payload: { action: 'subscribe', trades: ['AAPL'] } });
  t.equal(wrong.statusCode, 401);
  t.match(wrong.json().detail, /not valid/);
  t.same(gw.gateway.defaultStream.hub.pinned.toLists().trades, [], 'nothing changed');
  const basic = await call(t, gw, '/subscriptions', { method: 'GET', url: '/subscriptions', headers: { authorization: `Basic ${TOKEN}` } });
  t.equal(basic.statusCode, 401, 'another scheme is not a bearer token');
  const ok = await call(t, gw, '/subscriptions', { method: 'GET', url: '/subscriptions', headers: AUTH });
  t.equal(ok.statusCode, 200);
  t.equal((await gw.app.inject({ method: 'GET', url: '/metrics' })).statusCode, 200, 'metrics need no token');
  t.notMatch(gw.logs().join('\n'), TOKEN, 'the token never reaches a log line');
});

t.test('health: 200 when live; 503 while the vendor is down or the breaker is open; live stays 200; back to 200', async (t) => {
  const sim = await startSimulator(t);
  const gw = await startGateway(t, {
    UPSTREAM_URL: sim.url('iex'),
    APCA_API_KEY_ID: 'k',
    APCA_API_SECRET_KEY: 's',
    RETRY_BASE_MS: '10',
    RETRY_MAX_MS: '20',
    BREAKER_FAILURES: '2',
    BREAKER_RESET_MS: '60000',
  });
  await gw.gateway.defaultStream.link.whenLive(10_000);
  const up = await call(t, gw, '/health', { method: 'GET', url: '/health' });
  t.equal(up.statusCode, 200);
  t.match(up.json(), { status: 'ok', streams: [{ stream: 'v2/iex', kind: 'stocks', state: 'live', breaker: 'closed', reconnects: 0 }], version: '0.1.0' });
  t.equal((await call(t, gw, '/health/ready', { method: 'GET', url: '/health/ready' })).statusCode, 200);

  sim.refuseUpgrades(503);
  sim.dropAll({ terminate: true });
  await eventually(() => gw.gateway.defaultStream.link.state === 'breaker-open', 'the breaker to open');
  const down = await call(t, gw, '/health', { method: 'GET', url: '/health' });
  t.equal(down.statusCode, 503);
  t.match(down.json(), { status: 'degraded', streams: [{ state: 'breaker-open', breaker: 'open', reason: /consecutive failed attempts/ }] });
  t.equal((await call(t, gw, '/health/ready', { method: 'GET', url: '/health/ready' })).statusCode, 503, 'ready follows /health');
  t.equal((await call(t, gw, '/health/live', { method: 'GET', url: '/health/live' })).statusCode, 200, 'live does not fail on a vendor outage');

  sim.refuseUpgrades(undefined);
  const restart = await call(t, gw, '/restart', { method: 'POST', url: '/restart' });
  t.equal(restart.statusCode, 202);
  await gw.gateway.defaultStream.link.whenLive(10_000);
  const back = await call(t, gw, '/health', { method: 'GET', url: '/health' });
  t.equal(back.statusCode, 200, 'back to 200 after recovery');
  t.match(back.json(), { streams: [{ state: 'live', breaker: 'closed' }] });
});

t.test('pinned symbols reach the vendor and survive the last client leaving; 202 while the link is down', async (t) => {
  const gw = await startGateway(t, { CONTROL_TOKEN: TOKEN, RETRY_BASE_MS: '10', RETRY_MAX_MS: '20' });
  const sim = gw.simulator!;
  await gw.gateway.defaultStream.link.whenLive(10_000);
  const pinned = await call(t, gw, '/subscriptions', {
    method: 'POST',
    url: '/subscriptions',
    headers: { ...AUTH, 'x-correlation-id': 'pin-1' },
    payload: { action: 'subscribe', trades: ['SPY'], bars: ['*'] },
  });
  t.equal(pinned.statusCode, 200);
  t.match(pinned.json(), { applied: true, pinned: { trades: ['SPY'], bars: ['*'] }, acknowledged: { trades: ['SPY'], bars: ['*'] }, upstream: 'live' });
  t.ok(gw.logs().some((l) => l.includes('syncing vendor subscriptions') && l.includes('"correlationId":"pin-1"')), 'the vendor sync logs the request’s correlation id');

  const client = await gw.connect();
  await client.auth('c', 's');
  await client.request({ action: 'subscribe', trades: ['SPY', 'AAPL'] });
  await gw.gateway.defaultStream.link.whenSynced(10_000);
  await client.close();
  await eventually(() => gw.gateway.defaultStream.hub.stats.connected === 0, 'the client gone');
  await gw.gateway.defaultStream.link.whenSynced(10_000);
  const held = sim.sessions().find((s) => s.authenticated)!.subscriptions;
  t.same([held.trades, held.bars], [['SPY'], ['*']], 'SPY stays pinned after the last client left; AAPL went');
  const state = await call(t, gw, '/subscriptions', { method: 'GET', url: '/subscriptions', headers: AUTH });
  t.match(state.json(), { pinned: { trades: ['SPY'] }, clients: { trades: [] }, desired: { trades: ['SPY'] } });

  sim.refuseUpgrades(503);
  sim.dropAll({ terminate: true });
  await eventually(() => gw.gateway.defaultStream.link.state !== 'live', 'the link down');
  const queued = await call(t, gw, '/subscriptions', { method: 'POST', url: '/subscriptions', headers: AUTH, payload: { action: 'subscribe', quotes: ['QQQ'] } });
  t.equal(queued.statusCode, 202);
  t.match(queued.json(), { applied: false, pinned: { quotes: ['QQQ'] } });
  sim.refuseUpgrades(undefined);
  await gw.gateway.defaultStream.link.whenLive(10_000);
  t.same(sim.sessions().find((s) => s.authenticated)!.subscriptions.quotes, ['QQQ'], 'applied on reconnect');
  const removed = await call(t, gw, '/subscriptions', { method: 'POST', url: '/subscriptions', headers: AUTH, payload: { action: 'unsubscribe', trades: ['SPY'], bars: ['*'], quotes: ['QQQ'] } });
  t.equal(removed.statusCode, 200);
  t.match(removed.json(), { pinned: { trades: [], bars: [], quotes: [] }, acknowledged: { trades: [], bars: [], quotes: [] } });
});

t.test('concurrent restarts share one restart and one id; its log lines carry the first request’s correlation id', async (t) => {
  const gw = await startGateway(t);
  const sim = gw.simulator!;
  await gw.gateway.defaultStream.link.whenLive(10_000);
  const before = sim.stats.connections;
  const responses = await Promise.all(Array.from({ length: 5 }, (_, i) => gw.app.inject({ method: 'POST', url: '/restart', headers: { 'x-correlation-id': `restart-${i}` } })));
  for (const r of responses) t.same(disagreements('POST', '/restart', r as never), []);
  const ids = new Set(responses.map((r) => r.json().restarts[0].restartId));
  t.equal(ids.size, 1, 'one restart id');
  t.same(responses.map((r) => r.json().restarts[0].joined), [false, true, true, true, true]);
  await gw.gateway.defaultStream.link.whenLive(10_000);
  t.equal(sim.stats.connections, before + 1, 'one reconnect');
  const restartLines = gw.logs().filter((l) => l.includes('"component":"vendor-link"') && /vendor link restart|"to":"(stopping|stopped|connecting|authenticating|live)"/.test(l)).slice(-6);
  t.ok(restartLines.length >= 5, `${restartLines.length} vendor-link lines`);
  for (const line of restartLines) t.match(line, '"correlationId":"restart-0"');
});

t.test('bad input on the control plane gets a problem and changes nothing', async (t) => {
  const gw = await startGateway(t, { CONTROL_TOKEN: TOKEN, STREAMS: 'v2/iex,v1beta3/crypto/us' });
  const post = (payload: string, headers: Record<string, string> = { 'content-type': 'application/json' }) =>
    call(t, gw, '/subscriptions', { method: 'POST', url: '/subscriptions', headers: { ...AUTH, ...headers }, payload });
  const cases: [string, string, Record<string, string> | undefined, number, RegExp][] = [
    ['malformed JSON', '{"action":', undefined, 400, /JSON/i],
    ['a wrong type', '{"action":"subscribe","trades":"AAPL"}', undefined, 400, /body\.trades must be array/],
    ['a wrong symbol', '{"action":"subscribe","trades":["aapl"]}', undefined, 400, /body\.trades\[0\] must match pattern/],
    ['an unknown channel', '{"action":"subscribe","trade":["AAPL"]}', undefined, 400, /body\.trade is not a known field/],
    ['a channel the stream lacks', '{"action":"subscribe","orderbooks":["AAPL"]}', undefined, 400, /a channel v2\/iex does not carry has symbols; its channels are trades, quotes/],
    ['a symbol of another kind', '{"action":"subscribe","stream":"v1beta3/crypto/us","trades":["AAPL"]}', undefined, 400, /a symbol is not valid on v1beta3\/crypto\/us \(a crypto stream\)/],
    ['a stream not served', '{"action":"subscribe","stream":"v2/sip","trades":["AAPL"]}', undefined, 404, /stream "v2\/sip" is not served; this gateway serves v2\/iex, v1beta3\/crypto\/us/],
    ['an unknown action', '{"action":"pin","trades":["AAPL"]}', undefined, 400, /body\.action/],
    ['no action', '{"trades":["AAPL"]}', undefined, 400, /action/],
    ['the wrong content type', 'action=subscribe', { 'content-type': 'application/x-www-form-urlencoded' }, 415, /Unsupported Media Type|content-type/i],
    ['a huge body', JSON.stringify({ action: 'subscribe', trades: Array.from({ length: 200_000 }, (_, i) => `S${i}`) }), undefined, 413, /too large|Body/i],
  ];
  for (const [name, payload, headers, status, detail] of cases) {
    const r = await post(payload, headers);
    t.equal(r.statusCode, status, name);
    t.equal(r.headers['content-type'], 'application/problem+json; charset=utf-8', `${name}: problem+json`);
    t.match(r.json(), { status, detail, correlationId: r.headers['x-correlation-id'] }, name);
  }
  t.ok(gw.gateway.streams.every((stream) => stream.hub.pinned.isEmpty), 'nothing was pinned on any stream');
  const restartBody = await call(t, gw, '/restart', { method: 'POST', url: '/restart', headers: { ...AUTH, 'content-type': 'application/json' }, payload: '{oops' });
  t.equal(restartBody.statusCode, 400, 'a malformed body on /restart');
  const unknown = await gw.app.inject({ method: 'DELETE', url: '/subscriptions' });
  t.equal(unknown.statusCode, 404);
  t.match(unknown.json(), { status: 404, detail: 'no route for DELETE /subscriptions' });
  const query = await call(t, gw, '/v2/{feed}', { method: 'GET', url: '/v2/iex?snapshot=maybe' });
  t.equal(query.statusCode, 400, 'a bad stream option');
  const plain = await call(t, gw, '/v2/{feed}', { method: 'GET', url: '/v2/iex' });
  t.equal(plain.statusCode, 426);
  const feed = await call(t, gw, '/v2/{feed}', { method: 'GET', url: '/v2/sip' });
  t.equal(feed.statusCode, 404);
});

t.test('a bad query on GET /subscriptions is 400 and an oversized body on POST /restart is 413, as openapi.yaml says', async (t) => {
  const gw = await startGateway(t, { CONTROL_TOKEN: TOKEN });
  for (const [url, detail] of [
    [`/subscriptions?stream=${'v'.repeat(65)}`, /querystring\.stream must NOT have more than 64 characters/],
    ['/subscriptions?stream=v2/iex&feed=sip', /querystring\.feed is not a known field/],
  ] as const) {
    const r = await call(t, gw, '/subscriptions', { method: 'GET', url, headers: AUTH });
    t.equal(r.statusCode, 400, url.slice(0, 40));
    t.match(r.json(), { status: 400, detail });
  }
  const before = gw.simulator?.stats.connections;
  const huge = await call(t, gw, '/restart', { method: 'POST', url: '/restart', headers: { ...AUTH, 'content-type': 'application/json' }, payload: JSON.stringify({ stream: 'x'.repeat(2_000_000) }) });
  t.equal(huge.statusCode, 413);
  t.match(huge.json(), { status: 413, title: 'Content Too Large' });
  t.equal(gw.simulator?.stats.connections, before, 'nothing restarted');
});

t.test('metrics are present and move', async (t) => {
  const gw = await startGateway(t, { SIMULATOR_RATE: '2000' });
  await gw.gateway.defaultStream.link.whenLive(10_000);
  const scrape = async (): Promise<Map<string, number>> => {
    const r = await call(t, gw, '/metrics', { method: 'GET', url: '/metrics' });
    const values = new Map<string, number>();
    for (const line of r.body.split('\n')) {
      if (line.startsWith('#') || line.trim() === '') continue;
      const [name, value] = line.split(/ (?=[^ ]+$)/);
      values.set(name!, Number(value));
    }
    return values;
  };
  const first = await scrape();
  for (const name of [
    'tickmux_upstream_state{stream="v2/iex",state="live"}',
    'tickmux_upstream_breaker_state{stream="v2/iex"}',
    'tickmux_upstream_reconnects_total{stream="v2/iex"}',
    'tickmux_upstream_messages_total{stream="v2/iex"}',
    'tickmux_upstream_bytes_total{stream="v2/iex"}',
    'tickmux_downstream_messages_total{stream="v2/iex"}',
    'tickmux_downstream_bytes_total{stream="v2/iex"}',
    'tickmux_clients_connected{stream="v2/iex"}',
    'tickmux_subscriptions{stream="v2/iex",channel="trades"}',
    'tickmux_conflated_messages_total{stream="v2/iex"}',
    'tickmux_slow_client_closes_total{stream="v2/iex"}',
    'tickmux_fanout_latency_seconds_count',
    'tickmux_nodejs_eventloop_lag_seconds',
  ]) {
    t.ok(first.has(name), `${name} present`);
  }
  t.equal(first.get('tickmux_upstream_state{stream="v2/iex",state="live"}'), 1);
  const client = await gw.connect();
  await client.auth('m', 's');
  await client.request({ action: 'subscribe', trades: ['AAPL'] });
  await eventually(() => client.messages.length > 30, 'data');
  const second = await scrape();
  t.equal(second.get('tickmux_clients_connected{stream="v2/iex"}'), 1);
  t.equal(second.get('tickmux_subscriptions{stream="v2/iex",channel="trades"}'), 1);
  for (const name of ['tickmux_upstream_messages_total{stream="v2/iex"}', 'tickmux_downstream_messages_total{stream="v2/iex"}', 'tickmux_downstream_bytes_total{stream="v2/iex"}', 'tickmux_fanout_latency_seconds_count']) {
    t.ok((second.get(name) ?? 0) > (first.get(name) ?? 0), `${name} moved`);
  }
});

t.test('GET /openapi.yaml serves the spec', async (t) => {
  const gw = await startGateway(t);
  const r = await call(t, gw, '/openapi.yaml', { method: 'GET', url: '/openapi.yaml' });
  t.equal(r.statusCode, 200);
  t.match(r.body, /^openapi: 3\.1\.0/);
});
