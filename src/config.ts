/**
 * Configuration from the environment (DESIGN.md §2): one TypeBox schema, validated at start,
 * frozen after load. A wrong value throws a `ConfigError` whose one-line message names the
 * variable, what is wrong and what is allowed — and never echoes a secret.
 */
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { type TSchema, Type } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { SAFE_NAME } from './cluster/subjects.js';
import { ConfigError } from './errors.js';
import { STREAM_PATHS, streamKindOf, streamPathEnding } from './protocol/streams.js';
import { Secret } from './secret.js';
import type { TapeConfig } from './tape/tape.js';

const MS_MAX = 86_400_000; // a day: anything longer is a typo
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

function ms(defaultValue: number, minimum = 1, description = ''): TSchema {
  return Type.Integer({ minimum, maximum: MS_MAX, default: defaultValue, description });
}

function count(defaultValue: number, minimum: number, maximum: number): TSchema {
  return Type.Integer({ minimum, maximum, default: defaultValue });
}

/** Every variable tickmux reads, with its type, range and default. Secrets are marked. */
export const EnvSchema = Type.Object({
  HOST: Type.String({ minLength: 1, default: '127.0.0.1' }),
  PORT: count(8080, 0, 65535),
  LOG_LEVEL: Type.Union(
    LOG_LEVELS.map((l) => Type.Literal(l)),
    { default: 'info' },
  ),
  UPSTREAM_URL: Type.Optional(Type.String({ pattern: '^wss?://' })),
  STREAMS: Type.Optional(Type.String({ minLength: 1 })),
  APCA_API_KEY_ID: Type.Optional(Type.String({ minLength: 1, secret: true })),
  APCA_API_SECRET_KEY: Type.Optional(Type.String({ minLength: 1, secret: true })),
  UPSTREAM_ENCODING: Type.Union([Type.Literal('msgpack'), Type.Literal('json')], { default: 'msgpack' }),
  CLIENT_KEYS: Type.Optional(Type.String({ minLength: 1, secret: true })),
  CONTROL_TOKEN: Type.Optional(Type.String({ minLength: 1, secret: true })),
  CONNECT_TIMEOUT_MS: ms(5000),
  AUTH_TIMEOUT_MS: ms(5000),
  RETRY_BASE_MS: ms(1000),
  RETRY_MAX_MS: ms(30_000),
  RETRY_AFTER_406_MS: ms(15_000),
  STABLE_AFTER_MS: ms(30_000),
  BREAKER_FAILURES: count(5, 1, 1000),
  BREAKER_RESET_MS: ms(30_000),
  HEARTBEAT_MS: ms(10_000),
  PONG_TIMEOUT_MS: ms(5000),
  STALE_AFTER_MS: ms(60_000),
  STOP_TIMEOUT_MS: ms(5000),
  SUBSCRIBE_TIMEOUT_MS: ms(10_000),
  SUBSCRIBE_MIN_INTERVAL_MS: ms(100),
  RESTART_COALESCE_MS: ms(1000, 0),
  ALLOWED_ORIGINS: Type.Optional(Type.String({ minLength: 1 })),
  UPSTREAM_MAX_SYMBOLS: count(0, 0, 1_000_000),
  MAX_CLIENTS: count(10_000, 1, 1_000_000),
  MAX_PENDING_AUTH: count(1000, 1, 1_000_000),
  MAX_SYMBOLS_PER_CLIENT: count(10_000, 1, 1_000_000),
  CLIENT_AUTH_TIMEOUT_MS: ms(10_000),
  MAX_MESSAGE_BYTES: count(1_048_576, 1024, 268_435_456),
  CLIENT_HIGH_WATER_BYTES: count(1_048_576, 1024, 1_073_741_824),
  CLIENT_MAX_BUFFER_BYTES: count(8_388_608, 1024, 1_073_741_824),
  SHUTDOWN_GRACE_MS: ms(10_000),
  SIMULATOR_RATE: count(200, 0, 10_000_000),
  NATS_URL: Type.Optional(Type.String({ minLength: 1 })),
  CLUSTER_NAME: Type.String({ pattern: SAFE_NAME.source, default: 'tickmux' }),
  NODE_ID: Type.Optional(Type.String({ pattern: SAFE_NAME.source })),
  // Renewals run every TTL/3; below a second they would race the NATS round trip.
  LEASE_TTL_MS: count(3000, 1000, 60_000),
  // What the owner keeps for followers' relay repairs (0 messages: none, every loss a gap notice).
  RELAY_HISTORY_MESSAGES: count(50_000, 0, 10_000_000),
  RELAY_HISTORY_BYTES: count(8_388_608, 0, 1_073_741_824),
  TAPE_DIR: Type.Optional(Type.String({ minLength: 1 })),
  // On a cluster: the tape lives in JetStream (DESIGN.md §12).
  TAPE: Type.Union([Type.Literal('0'), Type.Literal('1')], { default: '0' }),
  // Offsets in a segment's index are 32-bit: a segment stays below 2 GiB (plus its last record).
  TAPE_SEGMENT_BYTES: count(268_435_456, 65_536, 2_147_483_648),
  TAPE_FSYNC_MS: ms(200),
  TAPE_RETENTION_HOURS: count(72, 1, 87_600),
  TAPE_MAX_BYTES: count(0, 0, 2 ** 50),
  TAPE_QUEUE_BYTES: count(67_108_864, 1_048_576, 4_294_967_296),
  REPLAY_MAX_SESSIONS: count(16, 1, 10_000),
  // The status page's live viewers (GET /status/events); they count against MAX_CLIENTS too.
  STATUS_MAX_VIEWERS: count(16, 1, 10_000),
});

/** Variables whose values never appear in an error or log. */
const SECRET_VARIABLES = new Set(
  Object.entries(EnvSchema.properties)
    .filter(([, schema]) => (schema as { secret?: boolean }).secret === true)
    .map(([name]) => name),
);

/** Served when `UPSTREAM_URL` is unset: the embedded simulator serves every path (DESIGN.md §9). */
export const EMBEDDED_DEFAULT_STREAMS = ['v2/iex', 'v1beta3/crypto/us', 'v1beta1/indicative', 'v1beta1/news'] as const;
/** Served with a bare vendor base and no `STREAMS`. */
export const VENDOR_DEFAULT_STREAMS = ['v2/iex'] as const;

export interface UpstreamConfig {
  /** the vendor's base URL (`wss://stream.data.alpaca.markets`, no trailing slash); undefined: the embedded simulator */
  readonly base: string | undefined;
  readonly keyId: Secret | undefined;
  readonly secretKey: Secret | undefined;
  readonly encoding: 'msgpack' | 'json';
  readonly connectTimeoutMs: number;
  readonly authTimeoutMs: number;
  readonly retryBaseMs: number;
  readonly retryMaxMs: number;
  readonly retryAfter406Ms: number;
  /** live this long and the backoff starts over */
  readonly stableAfterMs: number;
  readonly breakerFailures: number;
  readonly breakerResetMs: number;
  readonly heartbeatMs: number;
  readonly pongTimeoutMs: number;
  readonly staleAfterMs: number;
  /** how long `stop()` waits for a clean close before terminating */
  readonly stopTimeoutMs: number;
  /** how long a subscription change waits for the vendor's reply */
  readonly subscribeTimeoutMs: number;
  /** the plan's distinct-symbol limit (0: none) */
  readonly maxSymbols: number;
  /** subscription changes reach the vendor at most once per this interval */
  readonly subscribeMinIntervalMs: number;
}

export interface ClientsConfig {
  /** key → secret; undefined: any key/secret is accepted (loopback only) */
  readonly keys: ReadonlyMap<string, Secret> | undefined;
  readonly maxClients: number;
  /** connections that have not authenticated yet; beyond it an upgrade gets HTTP 503 */
  readonly maxPendingAuth: number;
  readonly maxSymbolsPerClient: number;
  readonly authTimeoutMs: number;
  readonly maxMessageBytes: number;
  readonly highWaterBytes: number;
  readonly maxBufferBytes: number;
}

/** Membership of a cluster on NATS (DESIGN.md §10); absent when `NATS_URL` is unset. */
export interface ClusterConfig {
  /** NATS server URLs (`nats://host:port`), tried in turn by the client */
  readonly servers: readonly string[];
  /** prefixes every subject and bucket name */
  readonly name: string;
  /** this node's id, unique in the cluster */
  readonly nodeId: string;
  /** how long a stream lease outlives its last renewal (the lease bucket's max age) */
  readonly leaseTtlMs: number;
  /** what an owner keeps of its relay messages per stream, for followers' repairs */
  readonly relayHistory: { readonly messages: number; readonly bytes: number };
}

export interface Config {
  /** the stream paths served, each on its own vendor link (`v2/iex`, `v1beta3/crypto/us`…); the first is the control plane's default */
  readonly streams: readonly string[];
  readonly host: string;
  readonly port: number;
  readonly logLevel: (typeof LOG_LEVELS)[number];
  readonly upstream: UpstreamConfig;
  readonly clients: ClientsConfig;
  readonly controlToken: Secret | undefined;
  /** browser origins (`scheme://host[:port]`, lower case) whose requests are served; empty: none */
  readonly allowedOrigins: readonly string[];
  /** a restart requested this long after the last one settled joins it */
  readonly restartCoalesceMs: number;
  readonly shutdownGraceMs: number;
  /** messages per second of the embedded simulator's market */
  readonly simulatorRate: number;
  /** live viewers of the status page at once (each also counts against MAX_CLIENTS) */
  readonly statusMaxViewers: number;
  /** undefined: standalone */
  readonly cluster: ClusterConfig | undefined;
  /** the tape (DESIGN.md §12); undefined: recording is off (`TAPE_DIR` unset) */
  readonly tape: TapeConfig | undefined;
  /** a cluster's tape in JetStream (`TAPE=1` with `NATS_URL`); undefined: off */
  readonly clusterTape?: ClusterTapeConfig | undefined;
}

/** The cluster tape's settings (DESIGN.md §12): retention as the JetStream stream's limits. */
export interface ClusterTapeConfig {
  readonly retentionHours: number;
  /** 0: no limit */
  readonly maxBytes: number;
  readonly replayMaxSessions: number;
}

/** Whether a host binds only to this machine (protected mode allows open access there). */
export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1' || host === '[::1]';
}

function allowed(schema: TSchema): string {
  if (Array.isArray(schema.anyOf)) return `one of ${schema.anyOf.map((s: TSchema) => s.const).join(', ')}`;
  if (schema.type === 'integer') return `an integer from ${schema.minimum} to ${schema.maximum}`;
  if (schema.pattern === '^wss?://') return 'a ws:// or wss:// URL';
  if (schema.pattern === SAFE_NAME.source) return '1 to 64 letters, digits, "-" or "_"';
  return 'a non-empty string';
}

/** Reads the known variables; an empty value counts as unset (as `FOO=` in compose files means). */
function pickEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  const picked: Record<string, string> = {};
  for (const name of Object.keys(EnvSchema.properties)) {
    const value = env[name];
    if (value !== undefined && value.trim() !== '') picked[name] = value.trim();
  }
  return picked;
}

/** Whole decimal numbers become integers; anything else stays text and fails the schema check. */
function convertIntegers(raw: Record<string, string>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...raw };
  for (const [name, schema] of Object.entries(EnvSchema.properties as Record<string, TSchema>)) {
    const value = raw[name];
    if (schema.type === 'integer' && value !== undefined && /^-?\d{1,16}$/.test(value)) out[name] = Number(value);
  }
  return out;
}

/**
 * Validates the environment and returns the frozen configuration.
 * @throws ConfigError naming the first variable that is wrong
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const raw = pickEnv(env);
  const converted = Value.Default(EnvSchema, convertIntegers(raw)) as Record<string, unknown>;
  for (const error of Value.Errors(EnvSchema, converted)) {
    const name = error.path.replace(/^\//, '');
    const schema = (EnvSchema.properties as Record<string, TSchema>)[name];
    if (schema === undefined) continue;
    const shown = SECRET_VARIABLES.has(name) ? 'the value' : JSON.stringify(raw[name] ?? '');
    throw new ConfigError(name, `${shown} is not allowed; expected ${allowed(schema)}`);
  }
  return Object.freeze(buildConfig(converted));
}

function buildConfig(v: Record<string, unknown>): Config {
  const num = (name: string): number => v[name] as number;
  const str = (name: string): string | undefined => v[name] as string | undefined;

  const url = str('UPSTREAM_URL');
  const upstream = url === undefined ? undefined : parseUpstreamUrl(url);
  const streams = parseStreams(str('STREAMS'), upstream);
  let keyId: Secret | undefined;
  let secretKey: Secret | undefined;
  if (url !== undefined) {
    const id = str('APCA_API_KEY_ID');
    const secret = str('APCA_API_SECRET_KEY');
    if (id === undefined) throw new ConfigError('APCA_API_KEY_ID', 'is required when UPSTREAM_URL is set');
    if (secret === undefined) throw new ConfigError('APCA_API_SECRET_KEY', 'is required when UPSTREAM_URL is set');
    keyId = new Secret(id, 'APCA_API_KEY_ID');
    secretKey = new Secret(secret, 'APCA_API_SECRET_KEY');
  }

  if (num('RETRY_BASE_MS') > num('RETRY_MAX_MS')) {
    throw new ConfigError('RETRY_BASE_MS', `${num('RETRY_BASE_MS')} is greater than RETRY_MAX_MS (${num('RETRY_MAX_MS')})`);
  }
  if (num('CLIENT_HIGH_WATER_BYTES') >= num('CLIENT_MAX_BUFFER_BYTES')) {
    throw new ConfigError(
      'CLIENT_HIGH_WATER_BYTES',
      `${num('CLIENT_HIGH_WATER_BYTES')} must be below CLIENT_MAX_BUFFER_BYTES (${num('CLIENT_MAX_BUFFER_BYTES')})`,
    );
  }

  const host = str('HOST') as string;
  const clientKeys = parseClientKeys(str('CLIENT_KEYS'));
  const controlToken = str('CONTROL_TOKEN') === undefined ? undefined : new Secret(str('CONTROL_TOKEN') as string, 'CONTROL_TOKEN');
  if (!isLoopback(host)) {
    const missing = [clientKeys === undefined ? 'CLIENT_KEYS' : '', controlToken === undefined ? 'CONTROL_TOKEN' : ''].filter(Boolean);
    if (missing.length > 0) {
      throw new ConfigError(
        'HOST',
        `${JSON.stringify(host)} is not a loopback address, so ${missing.join(' and ')} must be set (protected mode: open access is allowed on loopback only)`,
      );
    }
  }

  return {
    streams: Object.freeze(streams),
    host,
    port: num('PORT'),
    logLevel: str('LOG_LEVEL') as Config['logLevel'],
    upstream: Object.freeze({
      base: upstream?.base,
      keyId,
      secretKey,
      encoding: str('UPSTREAM_ENCODING') as 'msgpack' | 'json',
      connectTimeoutMs: num('CONNECT_TIMEOUT_MS'),
      authTimeoutMs: num('AUTH_TIMEOUT_MS'),
      retryBaseMs: num('RETRY_BASE_MS'),
      retryMaxMs: num('RETRY_MAX_MS'),
      retryAfter406Ms: num('RETRY_AFTER_406_MS'),
      stableAfterMs: num('STABLE_AFTER_MS'),
      breakerFailures: num('BREAKER_FAILURES'),
      breakerResetMs: num('BREAKER_RESET_MS'),
      heartbeatMs: num('HEARTBEAT_MS'),
      pongTimeoutMs: num('PONG_TIMEOUT_MS'),
      staleAfterMs: num('STALE_AFTER_MS'),
      stopTimeoutMs: num('STOP_TIMEOUT_MS'),
      subscribeTimeoutMs: num('SUBSCRIBE_TIMEOUT_MS'),
      maxSymbols: num('UPSTREAM_MAX_SYMBOLS'),
      subscribeMinIntervalMs: num('SUBSCRIBE_MIN_INTERVAL_MS'),
    }),
    clients: Object.freeze({
      keys: clientKeys,
      maxClients: num('MAX_CLIENTS'),
      maxPendingAuth: num('MAX_PENDING_AUTH'),
      maxSymbolsPerClient: num('MAX_SYMBOLS_PER_CLIENT'),
      authTimeoutMs: num('CLIENT_AUTH_TIMEOUT_MS'),
      maxMessageBytes: num('MAX_MESSAGE_BYTES'),
      highWaterBytes: num('CLIENT_HIGH_WATER_BYTES'),
      maxBufferBytes: num('CLIENT_MAX_BUFFER_BYTES'),
    }),
    controlToken,
    allowedOrigins: Object.freeze(parseOrigins(str('ALLOWED_ORIGINS'))),
    restartCoalesceMs: num('RESTART_COALESCE_MS'),
    shutdownGraceMs: num('SHUTDOWN_GRACE_MS'),
    simulatorRate: num('SIMULATOR_RATE'),
    statusMaxViewers: num('STATUS_MAX_VIEWERS'),
    cluster: parseCluster(v),
    tape: parseTape(v),
    clusterTape: parseClusterTape(v),
  };
}

/** The cluster tape's settings when `TAPE=1`, which needs `NATS_URL` (standalone records with TAPE_DIR). */
function parseClusterTape(v: Record<string, unknown>): ClusterTapeConfig | undefined {
  if (v.TAPE !== '1') return undefined;
  if (v.NATS_URL === undefined) throw new ConfigError('TAPE', "1 records a cluster's tape in JetStream and needs NATS_URL; a standalone gateway records to files: set TAPE_DIR instead");
  return Object.freeze({ retentionHours: v.TAPE_RETENTION_HOURS as number, maxBytes: v.TAPE_MAX_BYTES as number, replayMaxSessions: v.REPLAY_MAX_SESSIONS as number });
}

/** The tape's settings, or undefined (recording off) when `TAPE_DIR` is unset. */
function parseTape(v: Record<string, unknown>): TapeConfig | undefined {
  const dir = v.TAPE_DIR as string | undefined;
  if (dir === undefined) return undefined;
  if (v.NATS_URL !== undefined) {
    throw new ConfigError('TAPE_DIR', "records a standalone gateway's streams to files; a cluster's tape lives in JetStream: unset TAPE_DIR and set TAPE=1");
  }
  return Object.freeze({
    dir: resolve(dir),
    segmentBytes: v.TAPE_SEGMENT_BYTES as number,
    fsyncMs: v.TAPE_FSYNC_MS as number,
    retentionHours: v.TAPE_RETENTION_HOURS as number,
    maxBytes: v.TAPE_MAX_BYTES as number,
    queueBytes: v.TAPE_QUEUE_BYTES as number,
    replayMaxSessions: v.REPLAY_MAX_SESSIONS as number,
  });
}

/** The cluster settings, or undefined (standalone) when `NATS_URL` is unset. */
function parseCluster(v: Record<string, unknown>): ClusterConfig | undefined {
  const url = v.NATS_URL as string | undefined;
  if (url === undefined) return undefined;
  return Object.freeze({
    servers: Object.freeze(parseNatsUrls(url)),
    name: v.CLUSTER_NAME as string,
    nodeId: (v.NODE_ID as string | undefined) ?? defaultNodeId(),
    leaseTtlMs: v.LEASE_TTL_MS as number,
    relayHistory: Object.freeze({ messages: v.RELAY_HISTORY_MESSAGES as number, bytes: v.RELAY_HISTORY_BYTES as number }),
  });
}

/** hostname-pid, with anything that is not a safe token character replaced, at most 64 long. */
export function defaultNodeId(host = hostname(), pid = process.pid): string {
  const suffix = `-${pid}`;
  const safeHost = host.replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 64 - suffix.length) || 'node';
  return `${safeHost}${suffix}`;
}

/** `nats://host:port[,nats://host2:port]`; credentials are refused so no value needs hiding. */
function parseNatsUrls(text: string): string[] {
  return text.split(',').map((raw, index) => {
    const entry = raw.trim();
    const bad = (why: string): ConfigError => new ConfigError('NATS_URL', `entry ${index + 1} ${why}`);
    let parsed: URL;
    try {
      parsed = new URL(entry);
    } catch (err) {
      if (err instanceof TypeError) throw bad(`${JSON.stringify(entry)} is not a URL; expected nats://host:port`);
      throw err;
    }
    // Checked before anything is echoed: the entry may carry a password.
    if (parsed.username !== '' || parsed.password !== '') throw bad('carries credentials, which tickmux does not support yet');
    if (parsed.protocol !== 'nats:' && parsed.protocol !== 'tls:') throw bad(`${JSON.stringify(entry)} is not a nats:// or tls:// URL`);
    if (parsed.hostname === '' || !['', '/'].includes(parsed.pathname) || parsed.search !== '' || parsed.hash !== '') {
      throw bad(`${JSON.stringify(entry)} is not of the form nats://host:port`);
    }
    return `${parsed.protocol}//${parsed.host}`;
  });
}

/** The known stream paths, for error messages. */
const KNOWN_PATHS = STREAM_PATHS.join(', ');

/**
 * `UPSTREAM_URL` is a bare vendor base (`wss://stream.data.alpaca.markets`) or, as before
 * several streams were served, a full stream URL (`…/v2/iex`, possibly behind a proxy's prefix):
 * then its stream path is the one served and the rest is the base.
 */
function parseUpstreamUrl(url: string): { base: string; path: string | undefined } {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (err) {
    if (err instanceof TypeError) throw new ConfigError('UPSTREAM_URL', `${JSON.stringify(url)} is not a valid URL`);
    throw err;
  }
  if (parsed.username !== '' || parsed.password !== '') {
    throw new ConfigError('UPSTREAM_URL', 'must not carry credentials; use APCA_API_KEY_ID and APCA_API_SECRET_KEY');
  }
  if (parsed.search !== '' || parsed.hash !== '') throw new ConfigError('UPSTREAM_URL', 'must not carry a query or a fragment');
  const pathname = parsed.pathname.replace(/\/+$/, '');
  if (pathname === '') return { base: parsed.origin, path: undefined };
  const path = streamPathEnding(pathname);
  if (path === undefined) {
    throw new ConfigError(
      'UPSTREAM_URL',
      `the path ${JSON.stringify(pathname)} is not a stream path; expected a bare base (wss://host) or a URL ending in one of ${KNOWN_PATHS}`,
    );
  }
  return { base: parsed.origin + pathname.slice(0, -(path.length + 1)), path };
}

/** `STREAMS` (comma-separated stream paths), or the default for how `UPSTREAM_URL` is given (DESIGN.md §9). */
function parseStreams(text: string | undefined, upstream: { path: string | undefined } | undefined): string[] {
  const fromUrl = upstream?.path;
  if (text === undefined) {
    if (fromUrl !== undefined) return [fromUrl];
    return [...(upstream === undefined ? EMBEDDED_DEFAULT_STREAMS : VENDOR_DEFAULT_STREAMS)];
  }
  const streams: string[] = [];
  for (const raw of text.split(',')) {
    const path = raw.trim().replace(/^\/+|\/+$/g, '');
    if (streamKindOf(path) === undefined) throw new ConfigError('STREAMS', `${JSON.stringify(raw.trim())} is not a stream path; known: ${KNOWN_PATHS}`);
    if (streams.includes(path)) throw new ConfigError('STREAMS', `${JSON.stringify(path)} is listed twice`);
    streams.push(path);
  }
  if (fromUrl !== undefined && (streams.length !== 1 || streams[0] !== fromUrl)) {
    throw new ConfigError(
      'STREAMS',
      `${JSON.stringify(text)} differs from UPSTREAM_URL's stream path ${JSON.stringify(fromUrl)}; to serve several streams, set UPSTREAM_URL to the vendor base (wss://host)`,
    );
  }
  return streams;
}

/** `key:secret,key2:secret2` → a map; errors say which entry, never its secret. */
function parseClientKeys(text: string | undefined): ReadonlyMap<string, Secret> | undefined {
  if (text === undefined) return undefined;
  const keys = new Map<string, Secret>();
  text.split(',').forEach((entry, index) => {
    const colon = entry.indexOf(':');
    const key = entry.slice(0, colon).trim();
    const secret = entry.slice(colon + 1).trim();
    if (colon < 0 || key === '' || secret === '') {
      throw new ConfigError('CLIENT_KEYS', `entry ${index + 1} is not of the form key:secret`);
    }
    if (keys.has(key)) throw new ConfigError('CLIENT_KEYS', `entry ${index + 1} repeats a key`);
    keys.set(key, new Secret(secret, 'CLIENT_KEYS'));
  });
  return keys;
}

/**
 * `https://app.example,http://localhost:3000` → origins as browsers serialise them (lower case,
 * default port dropped), so a plain string comparison with the `Origin` header is enough.
 */
function parseOrigins(text: string | undefined): string[] {
  if (text === undefined) return [];
  return text.split(',').map((raw) => {
    const entry = raw.trim();
    const bad = (): ConfigError =>
      new ConfigError('ALLOWED_ORIGINS', `${JSON.stringify(entry)} is not an origin; expected http(s)://host[:port] with no path or trailing slash`);
    // The shape first: URL() would silently accept a path, a query or credentials.
    if (!/^https?:\/\/[^/?#@\s\\]+$/i.test(entry)) throw bad();
    try {
      return new URL(entry).origin;
    } catch (err) {
      if (err instanceof TypeError) throw bad();
      throw err;
    }
  });
}
