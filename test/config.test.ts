import t from 'tap';
import { defaultNodeId, isLoopback, loadConfig } from '../src/config.js';
import { ConfigError } from '../src/errors.js';
import { STREAM_PATHS } from '../src/protocol/streams.js';

/** The one-line message of the ConfigError `env` causes. */
function errorOf(env: Record<string, string>): string {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.message;
    throw err;
  }
  throw new Error(`expected ${JSON.stringify(env)} to be refused`);
}

const UPSTREAM = { UPSTREAM_URL: 'wss://stream.data.alpaca.markets/v2/sip', APCA_API_KEY_ID: 'AKID', APCA_API_SECRET_KEY: 'vendor-secret-value' };

t.test('with no variables the defaults of DESIGN.md serve the embedded simulator', async (t) => {
  const c = loadConfig({});
  t.equal(c.host, '127.0.0.1');
  t.equal(c.port, 8080);
  t.equal(c.logLevel, 'info');
  t.equal(c.upstream.base, undefined);
  t.same(c.streams, ['v2/iex', 'v1beta3/crypto/us', 'v1beta1/indicative', 'v1beta1/news'], 'the embedded simulator: the four default streams (DESIGN.md §9)');
  t.equal(c.upstream.encoding, 'msgpack');
  t.same(
    [c.upstream.connectTimeoutMs, c.upstream.authTimeoutMs, c.upstream.retryBaseMs, c.upstream.retryMaxMs, c.upstream.retryAfter406Ms],
    [5000, 5000, 1000, 30000, 15000],
  );
  t.same([c.upstream.breakerFailures, c.upstream.breakerResetMs, c.upstream.heartbeatMs, c.upstream.pongTimeoutMs, c.upstream.staleAfterMs], [5, 30000, 10000, 5000, 60000]);
  t.same(
    [c.clients.maxClients, c.clients.maxSymbolsPerClient, c.clients.authTimeoutMs, c.clients.maxMessageBytes, c.clients.highWaterBytes, c.clients.maxBufferBytes],
    [10000, 10000, 10000, 1048576, 1048576, 8388608],
  );
  t.equal(c.shutdownGraceMs, 10000);
  t.equal(c.clients.maxPendingAuth, 1000);
  t.equal(c.upstream.subscribeMinIntervalMs, 100);
  t.equal(c.restartCoalesceMs, 1000);
  t.same(c.allowedOrigins, [], 'no browser origin is allowed by default');
  t.equal(c.clients.keys, undefined);
  t.equal(c.controlToken, undefined);
});

t.test('STREAMS and UPSTREAM_URL: a bare base serves the listed paths, a stream URL its own', async (t) => {
  const keys = { APCA_API_KEY_ID: 'AKID', APCA_API_SECRET_KEY: 'vendor-secret-value' };
  const bare = loadConfig({ UPSTREAM_URL: 'wss://stream.data.alpaca.markets', ...keys });
  t.equal(bare.upstream.base, 'wss://stream.data.alpaca.markets');
  t.same(bare.streams, ['v2/iex'], 'a bare base alone serves v2/iex');
  const several = loadConfig({ UPSTREAM_URL: 'wss://stream.data.alpaca.markets/', STREAMS: ' v2/sip , /v1beta3/crypto/us, v1beta1/opra,v1beta1/news ', ...keys });
  t.same(several.streams, ['v2/sip', 'v1beta3/crypto/us', 'v1beta1/opra', 'v1beta1/news'], 'listed paths, trimmed, in order');
  t.equal(several.upstream.base, 'wss://stream.data.alpaca.markets', 'no trailing slash');
  const proxied = loadConfig({ UPSTREAM_URL: 'ws://proxy:9000/alpaca/v1beta3/crypto/eu-1', ...keys });
  t.equal(proxied.upstream.base, 'ws://proxy:9000/alpaca', "a proxy's prefix stays in the base");
  t.same(proxied.streams, ['v1beta3/crypto/eu-1']);
  t.same(loadConfig({ UPSTREAM_URL: 'ws://x/v2/iex', STREAMS: 'v2/iex', ...keys }).streams, ['v2/iex'], 'STREAMS may repeat the URL’s path');
  t.same(loadConfig({ STREAMS: 'v1beta1/news' }).streams, ['v1beta1/news'], 'the embedded simulator serves what STREAMS lists');
  t.ok(Object.isFrozen(several.streams));
});

t.test('the configuration is frozen after load', async (t) => {
  const c = loadConfig({});
  t.ok(Object.isFrozen(c) && Object.isFrozen(c.upstream) && Object.isFrozen(c.clients) && Object.isFrozen(c.allowedOrigins));
  t.throws(() => {
    (c as { port: number }).port = 1;
  }, TypeError);
});

t.test('values are read, trimmed, and empty ones count as unset', async (t) => {
  const c = loadConfig({ PORT: ' 9001 ', LOG_LEVEL: 'debug', RETRY_BASE_MS: '', UPSTREAM_ENCODING: 'json', ...UPSTREAM });
  t.equal(c.port, 9001);
  t.equal(c.logLevel, 'debug');
  t.equal(c.upstream.retryBaseMs, 1000);
  t.equal(c.upstream.encoding, 'json');
  t.equal(c.upstream.base, 'wss://stream.data.alpaca.markets');
  t.same(c.streams, ['v2/sip'], 'a full stream URL serves its own path');
  t.equal(c.upstream.keyId?.reveal(), 'AKID');
  t.equal(c.upstream.secretKey?.reveal(), 'vendor-secret-value');
});

t.test('each wrong value is refused with one line naming the variable and what is allowed', async (t) => {
  const cases: [Record<string, string>, string][] = [
    [{ PORT: 'abc' }, 'PORT: "abc" is not allowed; expected an integer from 0 to 65535'],
    [{ PORT: '1.5' }, 'PORT: "1.5" is not allowed; expected an integer from 0 to 65535'],
    [{ PORT: '65536' }, 'PORT: "65536" is not allowed; expected an integer from 0 to 65535'],
    [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL: "loud" is not allowed; expected one of fatal, error, warn, info, debug, trace, silent'],
    [{ UPSTREAM_ENCODING: 'xml' }, 'UPSTREAM_ENCODING: "xml" is not allowed; expected one of msgpack, json'],
    [{ UPSTREAM_URL: 'https://example/v2/iex' }, 'UPSTREAM_URL: "https://example/v2/iex" is not allowed; expected a ws:// or wss:// URL'],
    [
      { ...UPSTREAM, UPSTREAM_URL: 'wss://x/v2/crypto' },
      `UPSTREAM_URL: the path "/v2/crypto" is not a stream path; expected a bare base (wss://host) or a URL ending in one of ${STREAM_PATHS.join(', ')}`,
    ],
    [{ ...UPSTREAM, UPSTREAM_URL: 'wss://x/v2/iex?feed=sip' }, 'UPSTREAM_URL: must not carry a query or a fragment'],
    [{ STREAMS: 'v2/iex,v2/nope' }, `STREAMS: "v2/nope" is not a stream path; known: ${STREAM_PATHS.join(', ')}`],
    [{ STREAMS: 'v2/iex,,v2/sip' }, `STREAMS: "" is not a stream path; known: ${STREAM_PATHS.join(', ')}`],
    [{ STREAMS: 'v2/iex,/v2/iex/' }, 'STREAMS: "v2/iex" is listed twice'],
    [
      { ...UPSTREAM, STREAMS: 'v2/iex' },
      'STREAMS: "v2/iex" differs from UPSTREAM_URL\'s stream path "v2/sip"; to serve several streams, set UPSTREAM_URL to the vendor base (wss://host)',
    ],
    [{ ...UPSTREAM, UPSTREAM_URL: 'wss://user:pw@x/v2/iex' }, 'UPSTREAM_URL: must not carry credentials; use APCA_API_KEY_ID and APCA_API_SECRET_KEY'],
    [{ UPSTREAM_URL: UPSTREAM.UPSTREAM_URL }, 'APCA_API_KEY_ID: is required when UPSTREAM_URL is set'],
    [{ UPSTREAM_URL: UPSTREAM.UPSTREAM_URL, APCA_API_KEY_ID: 'AKID' }, 'APCA_API_SECRET_KEY: is required when UPSTREAM_URL is set'],
    [{ CONNECT_TIMEOUT_MS: '0' }, 'CONNECT_TIMEOUT_MS: "0" is not allowed; expected an integer from 1 to 86400000'],
    [{ HEARTBEAT_MS: '-5' }, 'HEARTBEAT_MS: "-5" is not allowed; expected an integer from 1 to 86400000'],
    [{ BREAKER_FAILURES: '0' }, 'BREAKER_FAILURES: "0" is not allowed; expected an integer from 1 to 1000'],
    [{ MAX_CLIENTS: 'many' }, 'MAX_CLIENTS: "many" is not allowed; expected an integer from 1 to 1000000'],
    [{ RETRY_BASE_MS: '40000' }, 'RETRY_BASE_MS: 40000 is greater than RETRY_MAX_MS (30000)'],
    [{ CLIENT_HIGH_WATER_BYTES: '9000000' }, 'CLIENT_HIGH_WATER_BYTES: 9000000 must be below CLIENT_MAX_BUFFER_BYTES (8388608)'],
    [{ CLIENT_KEYS: 'alice:one,bob' }, 'CLIENT_KEYS: entry 2 is not of the form key:secret'],
    [{ CLIENT_KEYS: 'alice:one,alice:two' }, 'CLIENT_KEYS: entry 2 repeats a key'],
    [{ CLIENT_KEYS: ':nokey' }, 'CLIENT_KEYS: entry 1 is not of the form key:secret'],
    [{ MAX_PENDING_AUTH: '0' }, 'MAX_PENDING_AUTH: "0" is not allowed; expected an integer from 1 to 1000000'],
    [{ MAX_PENDING_AUTH: 'lots' }, 'MAX_PENDING_AUTH: "lots" is not allowed; expected an integer from 1 to 1000000'],
    [{ SUBSCRIBE_MIN_INTERVAL_MS: '0' }, 'SUBSCRIBE_MIN_INTERVAL_MS: "0" is not allowed; expected an integer from 1 to 86400000'],
    [{ SUBSCRIBE_MIN_INTERVAL_MS: '0.5' }, 'SUBSCRIBE_MIN_INTERVAL_MS: "0.5" is not allowed; expected an integer from 1 to 86400000'],
    [{ RESTART_COALESCE_MS: '-1' }, 'RESTART_COALESCE_MS: "-1" is not allowed; expected an integer from 0 to 86400000'],
    [{ RESTART_COALESCE_MS: '1s' }, 'RESTART_COALESCE_MS: "1s" is not allowed; expected an integer from 0 to 86400000'],
  ];
  for (const [env, message] of cases) {
    const got = errorOf(env);
    t.equal(got, message, JSON.stringify(env));
    t.notMatch(got, /\n/, 'one line');
  }
});

t.test('the new limits are read: pending-auth cap, vendor subscribe interval, restart coalescing', async (t) => {
  const c = loadConfig({ MAX_PENDING_AUTH: '3', SUBSCRIBE_MIN_INTERVAL_MS: '250', RESTART_COALESCE_MS: '0' });
  t.equal(c.clients.maxPendingAuth, 3);
  t.equal(c.upstream.subscribeMinIntervalMs, 250);
  t.equal(c.restartCoalesceMs, 0, '0 turns restart coalescing off');
});

t.test('ALLOWED_ORIGINS: origins as browsers send them, lower case, default ports dropped', async (t) => {
  const c = loadConfig({ ALLOWED_ORIGINS: ' https://App.Example , http://localhost:3000,https://dash.example:443,http://[::1]:5173' });
  t.same(c.allowedOrigins, ['https://app.example', 'http://localhost:3000', 'https://dash.example', 'http://[::1]:5173']);
  t.same(loadConfig({ ALLOWED_ORIGINS: ' ' }).allowedOrigins, [], 'an empty value allows none');
});

t.test('ALLOWED_ORIGINS: a bad entry is refused with one line naming it', async (t) => {
  const expected = 'is not an origin; expected http(s)://host[:port] with no path or trailing slash';
  for (const entry of [
    'https://app.example/',
    'https://app.example/path',
    'app.example',
    'ws://app.example',
    'ftp://app.example',
    'https://user@app.example',
    'https://app.example?x=1',
    'https://app.example#x',
    'http://app.example:99999',
    'http://:80',
    '*',
    'null',
    '',
  ]) {
    const got = errorOf({ ALLOWED_ORIGINS: `https://ok.example,${entry}` });
    t.equal(got, `ALLOWED_ORIGINS: ${JSON.stringify(entry)} ${expected}`, `${JSON.stringify(entry)} is refused`);
    t.notMatch(got, /\n/, 'one line');
  }
});

t.test('protected mode: a non-loopback HOST needs CLIENT_KEYS and CONTROL_TOKEN', async (t) => {
  t.equal(
    errorOf({ HOST: '0.0.0.0' }),
    'HOST: "0.0.0.0" is not a loopback address, so CLIENT_KEYS and CONTROL_TOKEN must be set (protected mode: open access is allowed on loopback only)',
  );
  t.match(errorOf({ HOST: '0.0.0.0', CLIENT_KEYS: 'a:b' }), 'so CONTROL_TOKEN must be set');
  t.match(errorOf({ HOST: '10.1.2.3', CONTROL_TOKEN: 'tok' }), 'so CLIENT_KEYS must be set');
  const open = loadConfig({ HOST: '0.0.0.0', CLIENT_KEYS: 'alice:s1, bob:s2', CONTROL_TOKEN: 'tok' });
  t.same([...(open.clients.keys?.keys() ?? [])], ['alice', 'bob']);
  t.equal(open.clients.keys?.get('bob')?.reveal(), 's2');
  t.equal(open.controlToken?.reveal(), 'tok');
  for (const host of ['127.0.0.1', '127.8.9.10', 'localhost', '::1']) t.ok(isLoopback(host), `${host} is loopback`);
  for (const host of ['0.0.0.0', '::', '192.168.1.1', 'example.com']) t.notOk(isLoopback(host), `${host} is not loopback`);
});

t.test('configuration errors never echo a secret', async (t) => {
  const secretValues = ['s3cr3t-client-value', 'vendor-secret-value', 'control-token-value'];
  const messages = [
    errorOf({ CLIENT_KEYS: 'alice:s3cr3t-client-value,broken' }),
    errorOf({ CLIENT_KEYS: 'alice:s3cr3t-client-value,alice:s3cr3t-client-value' }),
    errorOf({ ...UPSTREAM, UPSTREAM_URL: 'wss://x/v2/nope' }),
    errorOf({ HOST: '0.0.0.0', CONTROL_TOKEN: 'control-token-value' }),
  ];
  for (const message of messages) for (const secret of secretValues) t.notMatch(message, secret);
});

t.test('cluster: NATS_URL unset is standalone; set, it brings the cluster settings with their defaults', async (t) => {
  t.equal(loadConfig({}).cluster, undefined, 'standalone, as before');
  const c = loadConfig({ NATS_URL: 'nats://127.0.0.1:4222' }).cluster;
  t.same(c?.servers, ['nats://127.0.0.1:4222']);
  t.equal(c?.name, 'tickmux');
  t.equal(c?.leaseTtlMs, 3000, 'DESIGN.md §10');
  t.match(c?.nodeId, new RegExp(`^[A-Za-z0-9_-]+-${process.pid}$`), 'hostname-pid');
  t.ok(Object.isFrozen(c) && Object.isFrozen(c?.servers));
  const several = loadConfig({ NATS_URL: ' nats://a:4222 , tls://b.example:4443/ ', CLUSTER_NAME: 'prod_east-1', NODE_ID: 'gw-1', LEASE_TTL_MS: '5000' }).cluster;
  t.same(several?.servers, ['nats://a:4222', 'tls://b.example:4443'], 'comma-separated, trimmed, trailing slash dropped');
  t.same([several?.name, several?.nodeId, several?.leaseTtlMs], ['prod_east-1', 'gw-1', 5000]);
});

t.test('cluster: the default NODE_ID is hostname-pid made token-safe and at most 64 long', async (t) => {
  t.equal(defaultNodeId('gw.example.com', 42), 'gw-example-com-42');
  t.equal(defaultNodeId('', 7), 'node-7');
  const long = defaultNodeId('h'.repeat(100), 123456);
  t.equal(long.length, 64);
  t.ok(long.endsWith('-123456'));
});

t.test('cluster: wrong values are refused in one line that names the variable', async (t) => {
  t.match(errorOf({ NATS_URL: 'http://a:4222' }), /^NATS_URL: entry 1 "http:\/\/a:4222" is not a nats:\/\/ or tls:\/\/ URL$/);
  t.match(errorOf({ NATS_URL: 'nats://a:4222,nats://b:4222/x' }), /^NATS_URL: entry 2 .* is not of the form nats:\/\/host:port$/);
  t.match(errorOf({ NATS_URL: 'not a url' }), /^NATS_URL: entry 1 "not a url" is not a URL/);
  const withPassword = errorOf({ NATS_URL: 'nats://user:hunter2@a:4222' });
  t.match(withPassword, /^NATS_URL: entry 1 carries credentials/);
  t.notMatch(withPassword, /hunter2/, 'a password is never echoed');
  t.match(errorOf({ CLUSTER_NAME: 'a.b' }), /^CLUSTER_NAME: "a\.b" is not allowed; expected 1 to 64 letters, digits, "-" or "_"$/);
  t.match(errorOf({ NODE_ID: 'node>1' }), /^NODE_ID: "node>1" is not allowed/);
  t.match(errorOf({ LEASE_TTL_MS: '500' }), /^LEASE_TTL_MS: "500" is not allowed; expected an integer from 1000 to 60000$/);
  t.match(errorOf({ LEASE_TTL_MS: '600000' }), /^LEASE_TTL_MS: /);
});

t.test('tape: TAPE_DIR turns recording on with its defaults; TAPE=1 records a cluster into JetStream; each refuses the other mode', async (t) => {
  t.equal(loadConfig({}).tape, undefined, 'off unless TAPE_DIR is set');
  t.equal(loadConfig({}).clusterTape, undefined);
  const tape = loadConfig({ TAPE_DIR: 'relative/tape' }).tape;
  t.match(tape, { segmentBytes: 268_435_456, fsyncMs: 200, retentionHours: 72, maxBytes: 0, queueBytes: 67_108_864, replayMaxSessions: 16 });
  t.ok(tape?.dir.startsWith('/') && tape.dir.endsWith('/relative/tape'), 'the folder as an absolute path');
  t.match(loadConfig({ NATS_URL: 'nats://127.0.0.1:4222', TAPE: '1', TAPE_RETENTION_HOURS: '24', TAPE_MAX_BYTES: '1000000' }).clusterTape, { retentionHours: 24, maxBytes: 1_000_000 });
  t.match(errorOf({ TAPE_DIR: '/tmp/t', NATS_URL: 'nats://127.0.0.1:4222' }), /^TAPE_DIR: .*set TAPE=1$/);
  t.match(errorOf({ TAPE: '1' }), /^TAPE: 1 records a cluster's tape in JetStream and needs NATS_URL/);
  t.match(errorOf({ TAPE: 'yes' }), /^TAPE: "yes" is not allowed; expected one of 0, 1$/);
  t.match(errorOf({ TAPE_DIR: '/tmp/t', TAPE_SEGMENT_BYTES: '1000' }), /^TAPE_SEGMENT_BYTES: "1000" is not allowed; expected an integer from 65536 to 2147483648$/);
  t.match(errorOf({ TAPE_DIR: '/tmp/t', REPLAY_MAX_SESSIONS: '0' }), /^REPLAY_MAX_SESSIONS: "0" is not allowed/);
});
