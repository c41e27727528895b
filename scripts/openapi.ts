/** `npm run openapi`: writes openapi.yaml at the repository root from the routes (scripts/openapi-document.ts). */
import { writeFile } from 'node:fs/promises';
import { openapiDocument } from './openapi-document.js';

const target = new URL('../openapi.yaml', import.meta.url);
await writeFile(target, await openapiDocument());
process.stdout.write(`wrote ${target.pathname}\n`);
