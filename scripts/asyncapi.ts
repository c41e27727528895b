/** `npm run asyncapi`: writes asyncapi.yaml at the repository root from the stream definitions (scripts/asyncapi-document.ts). */
import { writeFile } from 'node:fs/promises';
import { asyncapiDocument } from './asyncapi-document.js';

const target = new URL('../asyncapi.yaml', import.meta.url);
await writeFile(target, asyncapiDocument());
process.stdout.write(`wrote ${target.pathname}\n`);
