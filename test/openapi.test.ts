import { readFileSync } from 'node:fs';
import { Validator } from '@seriousme/openapi-schema-validator';
import Fastify, { type FastifyBaseLogger, type RouteOptions } from 'fastify';
import fp from 'fastify-plugin';
import t from 'tap';
import { openapiDocument } from '../scripts/openapi-document.js';
import app, { fastifyOptions } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { captureLogs } from './helpers/log-capture.js';
import { SPEC, specOperations } from './helpers/openapi.js';
import { ROOT } from './helpers/processes.js';

t.test('openapi.yaml is what `npm run openapi` generates from the routes now, the same on every run', async (t) => {
  const generated = await openapiDocument();
  t.equal(readFileSync(`${ROOT}openapi.yaml`, 'utf8'), generated, 'openapi.yaml is stale: run `npm run openapi` and commit openapi.yaml');
  t.equal(await openapiDocument(), generated, 'a second generation gives the same text');
});

t.test('openapi.yaml is a valid OpenAPI 3.1 document', async (t) => {
  const result = await new Validator().validate(SPEC as never);
  t.same(result.errors ?? [], [], 'no schema errors');
  t.equal(result.valid, true);
});

t.test('every route is in openapi.yaml with the same statuses and security, and every documented operation is a route', async (t) => {
  const routes: RouteOptions[] = [];
  const { logger } = captureLogs('silent');
  const fastify = Fastify(fastifyOptions(logger as FastifyBaseLogger));
  fastify.addHook('onRoute', (route) => {
    routes.push(route);
  });
  await fastify.register(fp(app), { config: loadConfig({ SIMULATOR_RATE: '0' }) });
  await fastify.ready();
  t.teardown(() => fastify.close());

  const fromRoutes = new Map<string, RouteOptions>();
  for (const route of routes) {
    for (const method of [route.method].flat()) {
      if (method === 'HEAD') continue; // fastify's automatic HEAD for each GET
      fromRoutes.set(`${method} ${route.url.replace(/:(\w+)/g, '{$1}')}`, route);
    }
  }
  const documented = specOperations();
  t.same([...fromRoutes.keys()].sort(), [...documented.keys()].sort(), 'the same operations on both sides');
  for (const [operation, route] of fromRoutes) {
    const spec = documented.get(operation);
    if (spec === undefined) continue;
    const statuses = Object.keys((route.schema?.response as Record<string, unknown> | undefined) ?? {});
    // 101 Switching Protocols is the WebSocket upgrade itself: no route schema can declare it, the spec adds it to WebSocket routes.
    const upgrades = route.wsHandler !== undefined;
    t.same(Object.keys(spec.responses as Record<string, unknown>).sort(), [...statuses, ...(upgrades ? ['101'] : [])].sort(), `${operation}: the documented statuses are exactly the route's`);
    const guarded = [route.preHandler].flat().includes(fastify.requireControlToken);
    t.same(spec.security ?? [], guarded ? [{ bearer: [] }] : [], `${operation}: bearer security exactly when the route requires the control token`);
  }
});
