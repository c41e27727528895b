/**
 * GET /openapi.yaml and GET /asyncapi.yaml: the control plane's and the stream protocol's
 * descriptions, served as `npm run openapi` and `npm run asyncapi` generated them.
 */
import { readFile } from 'node:fs/promises';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { answer, Forbidden } from '../src/schemas.js';

/** A document at the repository root: two levels up from routes/ in dist/, one from source. */
async function readDocument(name: string): Promise<string> {
  for (const relative of [`../${name}`, `../../${name}`]) {
    try {
      return await readFile(new URL(relative, import.meta.url), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  throw new Error(`${name} not found`);
}

const openapiRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const documents = [
    { name: 'openapi.yaml', operationId: 'getOpenapi', summary: 'This document', description: 'The OpenAPI description.' },
    {
      name: 'asyncapi.yaml',
      operationId: 'getAsyncapi',
      summary: 'The stream protocol as AsyncAPI 3.0',
      description: 'The WebSocket protocol of every stream kind (greeting, auth, subscribe and its reply, every message type, errors and close codes, `?events=1` notices).',
    },
  ];
  for (const { name, operationId, summary, description } of documents) {
    const text = await readDocument(name);
    fastify.get(
      `/${name}`,
      {
        schema: {
          tags: ['observability'],
          operationId,
          summary,
          produces: ['application/yaml'],
          response: { 200: answer(Type.String(), description), 403: Forbidden },
        },
      },
      async (_request, reply) => reply.type('application/yaml').send(text),
    );
  }
};

export default openapiRoutes;
