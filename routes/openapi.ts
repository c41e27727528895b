/** GET /openapi.yaml: the control plane's description, served as `npm run openapi` generated it. */
import { readFile } from 'node:fs/promises';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { answer, Forbidden } from '../src/schemas.js';

/** openapi.yaml sits at the repository root: two levels up from routes/ in dist/, one from source. */
async function readSpec(): Promise<string> {
  for (const relative of ['../openapi.yaml', '../../openapi.yaml']) {
    try {
      return await readFile(new URL(relative, import.meta.url), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  throw new Error('openapi.yaml not found');
}

const openapiRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const spec = await readSpec();
  fastify.get(
    '/openapi.yaml',
    {
      schema: {
        tags: ['observability'],
        operationId: 'getOpenapi',
        summary: 'This document',
        produces: ['application/yaml'],
        response: { 200: answer(Type.String(), 'The OpenAPI description.'), 403: Forbidden },
      },
    },
    async (_request, reply) => reply.type('application/yaml').send(spec),
  );
};

export default openapiRoutes;
