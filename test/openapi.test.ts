import { Validator } from '@seriousme/openapi-schema-validator';
import Fastify, { type FastifyBaseLogger, type RouteOptions } from 'fastify';
import fp from 'fastify-plugin';
import t from 'tap';
import app, { fastifyOptions } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { captureLogs } from './helpers/log-capture.js';
import { SPEC, specOperations } from './helpers/openapi.js';

t.test('openapi.yaml is a valid OpenAPI 3.1 document', async (t) => {
  const result = await new Validator().validate(SPEC as never);
  t.same(result.errors ?? [], [], 'no schema errors');
  t.equal(result.valid, true);
});

t.test('every route is in openapi.yaml with the same statuses, and every documented operation is a route', async (t) => {
  const routes: RouteOptions[] = [];
  const { logger } = captureLogs('silent');
  const fastify = Fastify(fastifyOptions(logger as FastifyBaseLogger));
  fastify.addHook('onRoute', (route) => {
    routes.push(route);
  });
  await fastify.register(fp(app), { config: loadConfig({ SIMULATOR_RATE: '0' }) });
  await fastify.ready();
  t.teardown(() => fastify.close());

  const fromRoutes = new Map<string, string[]>();
  for (const route of routes) {
    for (const method of [route.method].flat()) {
      if (method === 'HEAD') continue; // fastify's automatic HEAD for each GET
      const path = route.url.replace(/:(\w+)/g, '{$1}');
      const statuses = Object.keys((route.schema?.response as Record<string, unknown> | undefined) ?? {}).sort();
      fromRoutes.set(`${method} ${path}`, statuses);
    }
  }
  const documented = specOperations();
  t.same([...fromRoutes.keys()].sort(), [...documented.keys()].sort(), 'the same operations on both sides');
  for (const [operation, statuses] of fromRoutes) {
    const spec = documented.get(operation);
    if (spec === undefined) continue;
    // 101 Switching Protocols is the WebSocket upgrade itself, which no route schema can declare.
    const specStatuses = Object.keys(spec.responses as Record<string, unknown>).filter((s) => s !== '101').sort();
    t.same(statuses, specStatuses, `${operation}: the route declares exactly the documented statuses`);
  }
});
