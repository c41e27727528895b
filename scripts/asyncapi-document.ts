/**
 * asyncapi.yaml, generated from the definitions the gateway runs on: each stream kind's paths,
 * channels, reply keys, message types, float and timestamp fields, symbol syntax and encodings
 * (src/protocol/streams.ts), the vendor's error codes and texts (src/errors.ts), the codes that
 * close a client and the `?events=1` notices. What no definition in the code holds — the wire
 * fields of each data message (PROTOCOL.md §1.6, PROTOCOL-STREAMS.md) — is listed here, and
 * checked against the code's float and timestamp fields as the document is built.
 * `npm run asyncapi` writes the file; test/asyncapi.test.ts fails when it differs from this.
 */
import { stringify } from 'yaml';
import { CLOSING_CODES } from '../src/hub/client-session.js';
import { CONTROL_TYPES } from '../src/protocol/channels.js';
import { type StreamKind, STREAM_KINDS } from '../src/protocol/streams.js';
import { VENDOR_ERRORS } from '../src/errors.js';
import { VERSION } from '../src/version.js';

type Json = Record<string, unknown>;

/** A field's wire type; `float` and `timestamp` must agree with the kind's definitions. */
type FieldType = 'string' | 'int' | 'float' | 'timestamp' | 'strings' | 'bool' | 'levels' | 'nullable-string';

const STOCK_BAR: Record<string, FieldType> = { S: 'string', o: 'float', h: 'float', l: 'float', c: 'float', v: 'int', vw: 'float', n: 'int', t: 'timestamp' };
const CRYPTO_BAR: Record<string, FieldType> = { ...STOCK_BAR, v: 'float' };

/** Per kind, per message type: its fields after `T`, as PROTOCOL.md names them. */
const FIELDS: Record<string, Record<string, { title: string; fields: Record<string, FieldType> }>> = {
  stocks: {
    t: { title: 'trade', fields: { S: 'string', i: 'int', x: 'string', p: 'float', s: 'int', c: 'strings', t: 'timestamp', z: 'string' } },
    q: { title: 'quote', fields: { S: 'string', bx: 'string', bp: 'float', bs: 'int', ax: 'string', ap: 'float', as: 'int', c: 'strings', t: 'timestamp', z: 'string' } },
    b: { title: 'minute bar', fields: STOCK_BAR },
    u: { title: 'updated (corrected) minute bar', fields: STOCK_BAR },
    d: { title: 'daily bar', fields: STOCK_BAR },
    c: {
      title: 'trade correction (with trades)',
      fields: { S: 'string', x: 'string', oi: 'int', op: 'float', os: 'int', oc: 'strings', ci: 'int', cp: 'float', cs: 'int', cc: 'strings', t: 'timestamp', z: 'string' },
    },
    x: { title: 'trade cancel or error (with trades)', fields: { S: 'string', i: 'int', x: 'string', p: 'float', s: 'int', a: 'string', t: 'timestamp', z: 'string' } },
    s: { title: 'trading status', fields: { S: 'string', sc: 'string', sm: 'string', rc: 'string', rm: 'string', t: 'timestamp', z: 'string' } },
    l: { title: 'limit up / limit down bands', fields: { S: 'string', u: 'float', d: 'float', i: 'string', t: 'timestamp', z: 'string' } },
    i: { title: 'order imbalance', fields: { S: 'string', p: 'float', z: 'string', t: 'timestamp' } },
  },
  crypto: {
    t: { title: 'trade', fields: { S: 'string', p: 'float', s: 'float', t: 'timestamp', i: 'int', tks: 'string' } },
    q: { title: 'quote', fields: { S: 'string', bp: 'float', bs: 'float', ap: 'float', as: 'float', t: 'timestamp' } },
    b: { title: 'minute bar', fields: CRYPTO_BAR },
    u: { title: 'updated minute bar', fields: CRYPTO_BAR },
    d: { title: 'daily bar', fields: CRYPTO_BAR },
    o: { title: 'order book: a reset (`r: true`, the whole book) or an update (each level set; size 0 removes it)', fields: { S: 'string', t: 'timestamp', b: 'levels', a: 'levels', r: 'bool' } },
  },
  options: {
    t: { title: 'trade', fields: { S: 'string', t: 'timestamp', p: 'float', s: 'int', x: 'string', c: 'string' } },
    q: { title: 'quote', fields: { S: 'string', t: 'timestamp', bx: 'string', bp: 'float', bs: 'int', ax: 'string', ap: 'float', as: 'int', c: 'string' } },
  },
  news: {
    n: {
      title: 'news item (routed by its `symbols`)',
      fields: {
        id: 'int',
        headline: 'string',
        summary: 'string',
        author: 'string',
        created_at: 'timestamp',
        updated_at: 'timestamp',
        url: 'nullable-string',
        content: 'string',
        symbols: 'strings',
        source: 'string',
      },
    },
  },
};

const TIMESTAMP: Json = {
  type: 'string',
  format: 'date-time',
  description: 'RFC 3339 with up to nanoseconds in JSON (kept to the digit); msgpack timestamp extension −1 in msgpack',
};

function fieldSchema(type: FieldType): Json {
  switch (type) {
    case 'string':
      return { type: 'string' };
    case 'nullable-string':
      return { type: ['string', 'null'] };
    case 'int':
      return { type: 'integer', description: 'integer; 64-bit ids (crypto trade ids pass 2^53) are kept exact in both encodings' };
    case 'float':
      return { type: 'number', description: 'float64 on the wire (msgpack float64 even when whole)' };
    case 'timestamp':
      return TIMESTAMP;
    case 'strings':
      return { type: 'array', items: { type: 'string' } };
    case 'bool':
      return { type: 'boolean' };
    case 'levels':
      return { type: 'array', items: { $ref: '#/components/schemas/BookLevel' } };
  }
}

/** The data message schema of `type` on `kind`, its float and timestamp fields checked against the code's. */
function dataSchema(kind: StreamKind, type: string): Json {
  const entry = FIELDS[kind.name]?.[type];
  if (entry === undefined) throw new Error(`asyncapi: no fields listed for ${kind.name} type ${type}`);
  const floats = kind.floatFields[type]?.fields ?? new Set<string>();
  for (const [field, fieldType] of Object.entries(entry.fields)) {
    if ((fieldType === 'float') !== floats.has(field)) throw new Error(`asyncapi: ${kind.name} ${type}.${field} is ${fieldType} here, but the code's float fields say otherwise`);
    if ((fieldType === 'timestamp') !== kind.timestampFields.has(field)) throw new Error(`asyncapi: ${kind.name} ${type}.${field} is ${fieldType} here, but the code's timestamp fields say otherwise`);
  }
  for (const field of floats) if (!(field in entry.fields)) throw new Error(`asyncapi: ${kind.name} ${type}: float field ${field} is not listed`);
  const channel = kind.typeToChannel[type] as string;
  const properties: Json = { T: { const: type } };
  for (const [field, fieldType] of Object.entries(entry.fields)) properties[field] = fieldSchema(fieldType);
  if (kind.symbolsField === 'S') properties.S = { type: 'string', pattern: kind.symbolPattern.source };
  return {
    type: 'object',
    title: `${kind.name} ${entry.title}`,
    description: `\`${type}\`: ${entry.title}; reaches holders of the \`${channel}\` channel. Unknown fields the vendor adds are passed through.`,
    required: ['T', ...(kind.symbolsField === 'S' ? ['S'] : [])],
    properties,
    additionalProperties: true,
  };
}

const cap = (name: string): string => name.charAt(0).toUpperCase() + name.slice(1);
const key = (kind: StreamKind, type: string): string => `${cap(kind.name)}${type === type.toUpperCase() ? `${type}_` : cap(type)}`;

function symbolList(kind: StreamKind): Json {
  return {
    type: ['array', 'null'],
    items: { type: 'string', anyOf: [{ const: '*' }, { pattern: kind.symbolPattern.source }] },
    description: 'symbols of this channel, or `*` for all; null, missing and empty lists are fine',
  };
}

function subscribeSchema(kind: StreamKind, action: 'subscribe' | 'unsubscribe'): Json {
  const refusals = Object.entries(kind.wildcardRefusals).map(([channel, code]) => `\`*\` on ${channel} is refused with ${code}`);
  return {
    type: 'object',
    title: `${kind.name} ${action}`,
    description:
      action === 'subscribe'
        ? `Adds to this client's set (additive). A symbol of the wrong syntax is 400, symbols on a key this stream lacks are 410${refusals.length > 0 ? `, ${refusals.join(', ')}` : ''}; past MAX_SYMBOLS_PER_CLIENT the whole request is 405 and the set unchanged.`
        : "Removes from this client's set.",
    required: ['action'],
    properties: { action: { const: action }, ...Object.fromEntries(kind.channels.map((channel) => [channel, symbolList(kind)])) },
    additionalProperties: true,
  };
}

function replySchema(kind: StreamKind): Json {
  return {
    type: 'object',
    title: `${kind.name} subscription reply`,
    description: "This client's whole set after each subscribe or unsubscribe (never the gateway's upstream set).",
    required: ['T', ...kind.replyKeys.map(([k]) => k)],
    properties: { T: { const: 'subscription' }, ...Object.fromEntries(kind.replyKeys.map(([k, channel]) => [k, { type: 'array', items: { type: 'string' }, description: k === channel ? undefined : `follows ${channel}` }])) },
  };
}

/** One frame: a JSON array (text frame) or a msgpack array (binary frame) of `items`. */
function frame(name: string, title: string, summary: string, items: Json, contentTypes?: string): Json {
  return {
    name,
    title,
    summary,
    ...(contentTypes === undefined ? {} : { description: contentTypes }),
    payload: { type: 'array', minItems: 1, items },
  };
}

function notices(): Json {
  const base = { T: { const: 'gateway' }, stream: { type: 'string', description: 'the stream path' }, at: { type: 'string', format: 'date-time' } };
  return {
    oneOf: [
      {
        type: 'object',
        title: 'vendor link down or up',
        required: ['T', 'event', 'stream', 'state', 'at'],
        properties: { ...base, event: { enum: ['upstream_down', 'upstream_up'] }, state: { type: 'string', description: 'the link state it went to' }, reason: { type: 'string' } },
      },
      {
        type: 'object',
        title: 'relay gap on a cluster follower',
        description: 'Relayed messages that could not be had again, at the hole’s place in the data, to the holders of the pair.',
        required: ['T', 'event', 'stream', 'from', 'to', 'messages', 'reason', 'at'],
        properties: {
          ...base,
          event: { const: 'gap' },
          channel: { type: 'string' },
          symbol: { type: 'string' },
          from: { type: 'integer', description: 'first missing sequence number of the relay subject' },
          to: { type: 'integer', description: 'last missing sequence number' },
          messages: { type: 'integer' },
          reason: { enum: ['gone', 'timeout', 'unavailable', 'malformed', 'overflow', 'superseded'] },
        },
      },
      {
        type: 'object',
        title: 'a hole in a replayed recording',
        required: ['T', 'event', 'stream', 'from', 'to', 'reason', 'at'],
        properties: { ...base, event: { const: 'tape_gap' }, from: { type: 'string', format: 'date-time' }, to: { type: 'string', format: 'date-time' }, reason: { type: 'string' } },
      },
    ],
  };
}

/** The AsyncAPI 3.0 document as YAML text, the same on every run. */
export function asyncapiDocument(): string {
  const schemas: Json = {
    BookLevel: { type: 'object', required: ['p', 's'], properties: { p: { type: 'number' }, s: { type: 'number', description: '0 removes the level' } } },
    Welcome: { type: 'object', required: ['T', 'msg'], properties: { T: { const: 'success' }, msg: { enum: ['connected', 'authenticated'] } } },
    Error: {
      type: 'object',
      description: `The vendor's codes and texts, unchanged: ${Object.entries(VENDOR_ERRORS)
        .map(([code, msg]) => `${code} ${msg}`)
        .join('; ')}. ${[...CLOSING_CODES].sort().join(', ')} are followed by a close with 1008.`,
      required: ['T', 'code', 'msg'],
      properties: {
        T: { const: 'error' },
        code: { enum: Object.keys(VENDOR_ERRORS).map(Number) },
        msg: { enum: Object.values(VENDOR_ERRORS) },
      },
    },
    Auth: {
      type: 'object',
      description: 'Within CLIENT_AUTH_TIMEOUT_MS of the greeting (else 404 and close). Or the APCA-API-KEY-ID / APCA-API-SECRET-KEY headers on the upgrade.',
      required: ['action', 'key', 'secret'],
      properties: { action: { const: 'auth' }, key: { type: 'string' }, secret: { type: 'string' } },
    },
    Notice: notices(),
  };
  const messages: Json = {
    welcome: frame('welcome', 'Greeting and auth success', '`connected` on open, `authenticated` after auth', { $ref: '#/components/schemas/Welcome' }),
    error: frame('error', 'Error', 'A vendor error code with its text', { $ref: '#/components/schemas/Error' }),
    auth: frame('auth', 'Auth', 'Authenticate with a key and secret', { $ref: '#/components/schemas/Auth' }),
    notice: frame('notice', 'Gateway notice (`?events=1`)', 'Vendor link down/up, relay gaps, recording gaps', { $ref: '#/components/schemas/Notice' }),
  };
  const channels: Json = {};
  const operations: Json = {};
  for (const kind of STREAM_KINDS) {
    const K = cap(kind.name);
    schemas[`${K}Subscribe`] = subscribeSchema(kind, 'subscribe');
    schemas[`${K}Unsubscribe`] = subscribeSchema(kind, 'unsubscribe');
    schemas[`${K}Subscription`] = replySchema(kind);
    const dataRefs: Json[] = [];
    for (const type of Object.keys(kind.typeToChannel)) {
      schemas[key(kind, type)] = dataSchema(kind, type);
      dataRefs.push({ $ref: `#/components/schemas/${key(kind, type)}` });
    }
    const encodings =
      kind.encodings.length === 1
        ? `The vendor serves ${kind.name} in ${kind.encodings[0]} only; the gateway serves it as JSON too, transcoded losslessly.`
        : 'JSON text frames, or msgpack binary frames with `Content-Type: application/msgpack` on the upgrade.';
    messages[`${kind.name}Subscribe`] = frame(`${kind.name}Subscribe`, `${K} subscribe`, 'Add channels and symbols', { $ref: `#/components/schemas/${K}Subscribe` });
    messages[`${kind.name}Unsubscribe`] = frame(`${kind.name}Unsubscribe`, `${K} unsubscribe`, 'Remove channels and symbols', { $ref: `#/components/schemas/${K}Unsubscribe` });
    messages[`${kind.name}Subscription`] = frame(`${kind.name}Subscription`, `${K} subscription reply`, "The client's whole set", { $ref: `#/components/schemas/${K}Subscription` });
    messages[`${kind.name}Data`] = frame(`${kind.name}Data`, `${K} data`, `A frame of ${kind.name} data messages, in the vendor's order`, { oneOf: dataRefs }, encodings);
    const own = (name: string): Json => ({ $ref: `#/components/messages/${name}` });
    const channelMessages = {
      welcome: own('welcome'),
      error: own('error'),
      auth: own('auth'),
      notice: own('notice'),
      subscribe: own(`${kind.name}Subscribe`),
      unsubscribe: own(`${kind.name}Unsubscribe`),
      subscription: own(`${kind.name}Subscription`),
      data: own(`${kind.name}Data`),
    };
    channels[kind.name] = {
      address: '/{path}',
      title: `${K} streams`,
      description: `ws://HOST:PORT/{path} speaks the vendor's ${kind.name} protocol. ${encodings} Control messages (${CONTROL_TYPES.join(', ')}) are always alone in a frame. Close codes: 1008 after error ${[...CLOSING_CODES].sort().join('/')}, 1009 for a frame over MAX_MESSAGE_BYTES (4 KiB before auth), 1002 for a protocol error, 1001 on shutdown.`,
      parameters: { path: { enum: [...kind.paths], description: 'the stream path, as the vendor names it; only the paths in STREAMS are served (others: HTTP 404 naming them)' } },
      messages: channelMessages,
      bindings: {
        ws: {
          method: 'GET',
          query: {
            type: 'object',
            properties: {
              events: { enum: ['1', 'true', '0', 'false'], description: '`{"T":"gateway",…}` notices' },
              snapshot: { enum: ['1', 'true', '0', 'false'], description: 'the last values of newly subscribed symbols, sent on subscribe' },
            },
          },
          headers: {
            type: 'object',
            properties: {
              'Content-Type': { const: 'application/msgpack', description: 'msgpack frames instead of JSON' },
              'APCA-API-KEY-ID': { type: 'string' },
              'APCA-API-SECRET-KEY': { type: 'string' },
            },
          },
        },
      },
    };
    const ref = (name: string): Json => ({ $ref: `#/channels/${kind.name}/messages/${name}` });
    const channel = { $ref: `#/channels/${kind.name}` };
    operations[`${kind.name}ReceiveRequests`] = {
      action: 'receive',
      channel,
      title: `${K}: what a client sends`,
      messages: [ref('auth'), ref('subscribe'), ref('unsubscribe')],
    };
    operations[`${kind.name}SendControl`] = {
      action: 'send',
      channel,
      title: `${K}: greeting, replies, errors and notices`,
      messages: [ref('welcome'), ref('subscription'), ref('error'), ref('notice')],
    };
    operations[`${kind.name}SendData`] = { action: 'send', channel, title: `${K}: data`, messages: [ref('data')] };
  }
  const document = {
    asyncapi: '3.0.0',
    info: {
      title: 'tickmux market-data streams',
      version: VERSION,
      description:
        "The WebSocket protocol tickmux serves: Alpaca's real-time market-data streams, spoken as the vendor speaks them, so the vendor's SDKs work unchanged once pointed at the gateway. Generated by `npm run asyncapi` from the gateway's own stream definitions. Every frame is an array of messages.",
    },
    defaultContentType: 'application/json',
    servers: {
      gateway: { host: 'localhost:8080', protocol: 'ws', description: 'HOST:PORT of a tickmux node (default 127.0.0.1:8080)' },
    },
    channels,
    operations,
    components: { schemas, messages },
  };
  return stringify(document, { lineWidth: 0, aliasDuplicateObjects: false });
}
