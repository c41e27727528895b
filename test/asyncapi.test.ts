import { readFileSync } from 'node:fs';
import { type AsyncAPIDocumentInterface, DiagnosticSeverity, Parser } from '@asyncapi/parser';
import t from 'tap';
import { parse } from 'yaml';
import { asyncapiDocument } from '../scripts/asyncapi-document.js';
import { VENDOR_ERRORS } from '../src/errors.js';
import { STREAM_KINDS } from '../src/protocol/streams.js';
import { startGateway } from './helpers/gateway.js';
import { ROOT } from './helpers/processes.js';

const TEXT = readFileSync(`${ROOT}asyncapi.yaml`, 'utf8');

t.test('asyncapi.yaml is what `npm run asyncapi` generates from the stream definitions now, the same on every run', async (t) => {
  const generated = asyncapiDocument();
  t.equal(TEXT, generated, 'asyncapi.yaml is stale: run `npm run asyncapi` and commit asyncapi.yaml');
  t.equal(asyncapiDocument(), generated, 'a second generation gives the same text');
});

t.test('asyncapi.yaml is a valid AsyncAPI 3.0 document (@asyncapi/parser: no error, no warning)', async (t) => {
  const { document, diagnostics } = await new Parser().parse(TEXT);
  const serious = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error || d.severity === DiagnosticSeverity.Warning);
  t.same(
    serious.map((d) => `${d.code}: ${d.message} at ${d.path.join('.')}`),
    [],
    'no errors or warnings',
  );
  t.ok(document !== undefined, 'it parses into a document');
  const doc = document as AsyncAPIDocumentInterface;
  t.equal(doc.version(), '3.0.0');

  for (const kind of STREAM_KINDS) {
    const channel = doc.channels().get(kind.name);
    t.ok(channel !== undefined, `a channel for ${kind.name}`);
    if (channel === undefined) continue;
    t.same(channel.parameters().get('path')?.schema()?.enum(), [...kind.paths], `${kind.name}: every path of the kind`);
    const data = channel.messages().get('data');
    const types = (data?.payload()?.items() as { oneOf(): { properties(): Record<string, { const(): unknown }> }[] } | undefined)?.oneOf().map((s) => s.properties().T?.const());
    t.same(types?.sort(), Object.keys(kind.typeToChannel).sort(), `${kind.name}: a schema for every data type the gateway routes`);
    const subscribe = channel.messages().get('subscribe')?.payload()?.items() as { properties(): Record<string, unknown> } | undefined;
    t.same(Object.keys(subscribe?.properties() ?? {}).filter((k) => k !== 'action'), [...kind.channels], `${kind.name}: the subscribe keys are the kind's channels`);
    const operations = doc.operations().filterBy((op) => op.channels().all().some((c) => c.id() === kind.name));
    t.same(operations.map((op) => op.action()).sort(), ['receive', 'send', 'send'], `${kind.name}: what a client sends, and what it gets`);
  }
});

t.test('the document names every vendor error code with its text, float fields as numbers and 64-bit ids as integers', async (t) => {
  const doc = parse(TEXT) as { components: { schemas: Record<string, { properties: Record<string, { type?: unknown; enum?: unknown[]; format?: string }> }> } };
  const error = doc.components.schemas.Error!;
  t.same(error.properties.code!.enum, Object.keys(VENDOR_ERRORS).map(Number));
  t.same(error.properties.msg!.enum, Object.values(VENDOR_ERRORS));
  const cryptoTrade = doc.components.schemas.CryptoT!.properties;
  t.equal(cryptoTrade.s!.type, 'number', 'crypto sizes are fractional');
  t.equal(cryptoTrade.i!.type, 'integer', 'crypto trade ids are integers');
  t.equal(doc.components.schemas.StocksT!.properties.s!.type, 'integer', 'stock sizes are whole');
  t.equal(doc.components.schemas.NewsN!.properties.created_at!.format, 'date-time');
});

t.test('GET /asyncapi.yaml serves the document; a foreign Origin gets 403 as on every route', async (t) => {
  const gw = await startGateway(t, { SIMULATOR_RATE: '0' });
  const res = await gw.app.inject({ method: 'GET', url: '/asyncapi.yaml' });
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], /^application\/yaml/);
  t.equal(res.body, TEXT);
  const foreign = await gw.app.inject({ method: 'GET', url: '/asyncapi.yaml', headers: { origin: 'https://evil.example' } });
  t.equal(foreign.statusCode, 403);
  t.match(foreign.headers['content-type'], /^application\/problem\+json/);
});
