import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { parse } from 'yaml';
import { ROOT } from './processes.js';

type Json = Record<string, unknown>;

/** openapi.yaml, parsed. */
export const SPEC = parse(readFileSync(`${ROOT}openapi.yaml`, 'utf8')) as Json;

const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats.default(ajv);
ajv.addSchema(SPEC, 'spec');

const pointer = (...parts: string[]): string => parts.map((p) => p.replaceAll('~', '~0').replaceAll('/', '~1')).join('/');

/** The spec's operations as `METHOD path` (paths in OpenAPI form, e.g. `/v2/{feed}`). */
export function specOperations(): Map<string, Json> {
  const out = new Map<string, Json>();
  for (const [path, item] of Object.entries(SPEC.paths as Json)) {
    for (const [method, operation] of Object.entries(item as Json)) out.set(`${method.toUpperCase()} ${path}`, operation as Json);
  }
  return out;
}

/** The response object of an operation for `status`, `$ref`s resolved; undefined when not declared. */
function responseOf(method: string, path: string, status: number): { spec: Json; ref: string } | undefined {
  const responses = ((SPEC.paths as Json)[path] as Json | undefined)?.[method.toLowerCase()] as Json | undefined;
  const entry = (responses?.responses as Json | undefined)?.[String(status)] as Json | undefined;
  if (entry === undefined) return undefined;
  if (typeof entry.$ref === 'string') {
    const name = entry.$ref.split('/').pop() as string;
    return { spec: (SPEC.components as { responses: Json }).responses[name] as Json, ref: `spec#/components/responses/${pointer(name)}` };
  }
  return { spec: entry, ref: `spec#/paths/${pointer(path)}/${method.toLowerCase()}/responses/${status}` };
}

/**
 * Checks a real response against openapi.yaml: the status is declared for the operation, the
 * content type is one it lists, the body matches its schema, and `x-correlation-id` is present.
 * Returns the list of problems (empty when it agrees).
 */
export function disagreements(method: string, path: string, response: { statusCode: number; headers: Record<string, unknown>; body: string }): string[] {
  const found = responseOf(method, path, response.statusCode);
  if (found === undefined) return [`${method} ${path}: status ${response.statusCode} is not in openapi.yaml`];
  const problems: string[] = [];
  if (typeof response.headers['x-correlation-id'] !== 'string') problems.push(`${method} ${path} ${response.statusCode}: no x-correlation-id header`);
  const content = found.spec.content as Json | undefined;
  if (content === undefined) return problems;
  const type = String(response.headers['content-type'] ?? '').split(';')[0]!.trim();
  if (!(type in content)) return [...problems, `${method} ${path} ${response.statusCode}: content type ${type} not in ${Object.keys(content).join(', ')}`];
  const body = type.endsWith('json') ? (JSON.parse(response.body) as unknown) : response.body;
  const validate = ajv.compile({ $ref: `${found.ref}/content/${pointer(type)}/schema` });
  if (!validate(body)) problems.push(`${method} ${path} ${response.statusCode}: body does not match: ${ajv.errorsText(validate.errors)}`);
  return problems;
}
