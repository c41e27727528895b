/**
 * openapi.yaml, generated from the routes: the app is built with @fastify/swagger registered (never
 * listening; its embedded simulator starts and is closed with it), the routes' schemas and their
 * documentation become the document, and a few passes give the shared parts their names.
 * `npm run openapi` writes the file; test/openapi.test.ts fails when it differs from this.
 */
import swagger, { type FastifyDynamicSwaggerOptions } from '@fastify/swagger';
import Fastify, { type FastifyBaseLogger } from 'fastify';
import fp from 'fastify-plugin';
import { stringify } from 'yaml';
import app, { fastifyOptions } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import {
  BadRequest,
  ChannelLists,
  Forbidden,
  Health,
  Liveness,
  NotServed,
  Problem,
  RestartAccepted,
  RestartRequest,
  Streams,
  StreamProblem,
  StreamStatus,
  SubscriptionChange,
  SubscriptionState,
  Symbols,
  TooLarge,
  Unauthorized,
  UnsupportedMediaType,
} from '../src/schemas.js';
import { VERSION } from '../src/version.js';

type Json = Record<string, unknown>;

/** Schemas the document names (`components.schemas`), referred to wherever they occur. */
const SCHEMAS = { Problem, StreamProblem, Health, Liveness, Streams, StreamStatus, SubscriptionChange, SubscriptionState, ChannelLists, Symbols, RestartRequest, RestartAccepted };

/** Answers the routes share (`components.responses`), known by their descriptions. */
const RESPONSES = { BadRequest, Unauthorized, Forbidden, NotServed, TooLarge, UnsupportedMediaType };

const PROBLEMS = new Set(['#/components/schemas/Problem', '#/components/schemas/StreamProblem']);

const INFO = [
  "Operators' REST interface of tickmux, the market-data fan-out gateway, and its WebSocket stream endpoints. The gateway serves several Alpaca market-data streams (STREAMS), each on its own vendor link; a control request names one with `stream`, and without it means the first served (POST /restart without it restarts every link).",
  'Every request may carry `x-correlation-id` (1–128 characters of `A-Za-z0-9._:-`); an absent or invalid one is replaced by a generated UUID. The id is echoed on every response, appears in every log line of the request and of the vendor-link work it triggers, and in error bodies. Errors are `application/problem+json` (RFC 9457); a validation error names the field at fault.',
  'Browsers are kept out: a request carrying an `Origin` header not listed in ALLOWED_ORIGINS gets 403, a POST body declared as anything but `application/json` gets 415, and an open loopback gateway answers only to loopback `Host` names.',
  'Generated from the route schemas by `npm run openapi`; edit the routes, not this file.',
].join('\n\n');

const OPTIONS: FastifyDynamicSwaggerOptions = {
  openapi: {
    openapi: '3.1.0',
    info: { title: 'tickmux control plane', version: VERSION, description: INFO },
    servers: [{ url: 'http://127.0.0.1:8080', description: '`npm start` with the defaults' }],
    security: [],
    tags: [
      { name: 'health', description: 'For load balancers and orchestrators; open.' },
      { name: 'control', description: 'The operator-pinned sets and vendor-link restarts; a bearer token when CONTROL_TOKEN is set.' },
      { name: 'observability', description: 'Streams, metrics and this document; open.' },
      { name: 'stream', description: "The vendor's stream protocols over WebSocket, one route per stream path template." },
    ],
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'CONTROL_TOKEN. When it is unset (loopback only) the control plane is open.' },
      },
      schemas: SCHEMAS as never,
    },
  },
  // A route schema cannot declare 101 (Fastify never sends it: the WebSocket server answers the upgrade).
  transform: ({ schema, url, route }) =>
    route.wsHandler === undefined
      ? { schema, url }
      : { schema: { ...schema, response: { 101: { type: 'null', description: 'Switching Protocols: the connection is now a WebSocket speaking the stream protocol.' }, ...(schema.response as Json) } }, url },
};

/** Calls `visit` on every object and array in `node`, parents first; `visit` returns a replacement or undefined. */
function rewrite(node: unknown, visit: (value: Json) => unknown): unknown {
  if (typeof node !== 'object' || node === null) return node;
  const replaced = visit(node as Json);
  if (replaced !== undefined) return replaced;
  if (Array.isArray(node)) return node.map((item) => rewrite(item, visit));
  return Object.fromEntries(Object.entries(node).map(([key, value]) => [key, rewrite(value, visit)]));
}

/** `anyOf` of one-value enums of one type (TypeBox's union of literals) as one enum. */
function mergeEnums(node: unknown): unknown {
  return rewrite(node, (value) => {
    const members = value.anyOf as Json[] | undefined;
    if (!Array.isArray(members) || members.length < 2) return undefined;
    const type = members[0]?.type;
    if (!members.every((m) => Object.keys(m).length === 2 && m.type === type && Array.isArray(m.enum) && m.enum.length === 1)) return undefined;
    const { anyOf: _, ...rest } = value;
    return { type, enum: members.map((m) => (m.enum as unknown[])[0]), ...(mergeEnums(rest) as Json) };
  });
}

/** Every occurrence of a named schema, in the paths and inside the other named schemas, as a `$ref`. */
function referSchemas(paths: Json, schemas: Json): { paths: Json; schemas: Json } {
  const byText = new Map<string, string>();
  for (const [name, schema] of Object.entries(schemas)) {
    const text = JSON.stringify(schema);
    if (byText.has(text)) throw new Error(`schemas ${byText.get(text)} and ${name} are the same`);
    byText.set(text, name);
  }
  const refer = (node: unknown): unknown =>
    rewrite(node, (value) => {
      const name = byText.get(JSON.stringify(value));
      return name === undefined ? undefined : { $ref: `#/components/schemas/${name}` };
    });
  return {
    paths: refer(paths) as Json,
    schemas: Object.fromEntries(Object.entries(schemas).map(([name, schema]) => [name, Object.fromEntries(Object.entries(schema as Json).map(([k, v]) => [k, refer(v)]))])),
  };
}

const mapValues = (object: Json, f: (value: Json, key: string) => unknown): Json => Object.fromEntries(Object.entries(object).map(([key, value]) => [key, f(value as Json, key)]));

/** `object` with `keys` first, in that order, then the rest. */
function ordered(object: Json, keys: readonly string[]): Json {
  const first = keys.filter((key) => object[key] !== undefined).map((key) => [key, object[key]]);
  return Object.fromEntries([...first, ...Object.entries(object).filter(([key]) => !keys.includes(key))]);
}

/**
 * Components of one section (`responses`, `parameters`), each recognised by a predicate: the first
 * item it matches becomes the component, and every later match must equal that one (a near-copy
 * would be a route saying something else under the same name) and becomes a `$ref` to it.
 */
class Shared {
  readonly #found = new Map<string, Json>();

  constructor(
    readonly section: string,
    readonly named: Record<string, (item: Json) => boolean>,
  ) {}

  refer(item: Json): Json {
    const name = Object.keys(this.named).find((n) => this.named[n]?.(item));
    if (name === undefined) return item;
    const first = this.#found.get(name);
    if (first === undefined) this.#found.set(name, item);
    else if (JSON.stringify(first) !== JSON.stringify(item)) throw new Error(`two different ${this.section} are ${name}: ${JSON.stringify(first)} and ${JSON.stringify(item)}`);
    return { $ref: `#/components/${this.section}/${name}` };
  }

  /** The components found, in the order they are named (not the order of the routes). */
  get components(): Json {
    return Object.fromEntries(Object.keys(this.named).flatMap((name) => (this.#found.has(name) ? [[name, this.#found.get(name)]] : [])));
  }
}

/** One response with the facts the problems plugin makes true of every response. */
function response(generated: Json, status: string): Json {
  const content = generated.content as Record<string, Json> | undefined;
  const media = content === undefined ? undefined : Object.values(content)[0];
  return ordered(
    {
      ...generated,
      // Every response but the 101 (written by the WebSocket server) echoes the correlation id…
      ...(status === '101' ? {} : { headers: { 'x-correlation-id': { $ref: '#/components/headers/CorrelationId' }, ...(generated.headers as Json) } }),
      // …and every problem is application/problem+json.
      ...(media !== undefined && PROBLEMS.has((media.schema as Json).$ref as string) ? { content: { 'application/problem+json': media } } : {}),
    },
    ['description', 'headers', 'content'],
  );
}

/** The generated document with its shared parts named, the facts every response shares added, and its keys in reading order. */
function finish(generated: Json): Json {
  const converted = mergeEnums(generated) as Json;
  const components = converted.components as Json;
  const { paths, schemas } = referSchemas(converted.paths as Json, components.schemas as Json);
  const parameters = new Shared('parameters', { CorrelationId: (p) => p.in === 'header' && p.name === 'x-correlation-id' });
  const responses = new Shared(
    'responses',
    mapValues(RESPONSES, (answer) => (r: Json) => r.description === answer['x-response-description']) as Record<string, (r: Json) => boolean>,
  );
  const operations = mapValues(paths, (item) =>
    mapValues(item, ({ 'x-body-optional': optional, ...operation }) =>
      ordered(
        {
          ...operation,
          // @fastify/swagger marks every body required (Fastify refuses a missing one unless a route fills it in).
          ...(optional === true ? { requestBody: { ...(operation.requestBody as Json), required: false } } : {}),
          parameters: (operation.parameters as Json[] | undefined)?.map((p) => parameters.refer(p)),
          responses: mapValues(operation.responses as Json, (r, status) => responses.refer(response(r, status))),
        },
        ['tags', 'summary', 'description', 'operationId', 'security', 'parameters', 'requestBody', 'responses'],
      ),
    ),
  );
  return {
    openapi: converted.openapi,
    info: converted.info,
    servers: converted.servers,
    security: converted.security,
    tags: converted.tags,
    paths: operations,
    components: {
      securitySchemes: components.securitySchemes,
      parameters: parameters.components,
      headers: { CorrelationId: { description: "The request's correlation id (the caller's, or a generated UUID).", schema: { type: 'string' } } },
      responses: responses.components,
      schemas,
    },
  };
}

/** openapi.yaml as the routes describe it now. */
export async function openapiDocument(): Promise<string> {
  const fastify = Fastify(fastifyOptions(createLogger('silent') as FastifyBaseLogger));
  try {
    await fastify.register(swagger, OPTIONS);
    await fastify.register(fp(app), { config: loadConfig({ SIMULATOR_RATE: '0' }) });
    await fastify.ready();
    return stringify(finish(fastify.swagger() as Json), { aliasDuplicateObjects: false, lineWidth: 100 });
  } finally {
    await fastify.close();
  }
}
