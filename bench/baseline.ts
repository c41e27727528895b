/**
 * The benchmark's baseline: a bare `ws` server that takes the simulator's frames over one
 * connection and broadcasts the same pre-encoded bytes to every connected client — no parsing,
 * no routing, no per-client work. What a fan-out costs at least, measured on the same machine.
 */
import { WebSocket, WebSocketServer } from 'ws';

const [upstream, symbolsArg, encoding = 'msgpack', channelsArg = 'trades,quotes'] = process.argv.slice(2);
if (upstream === undefined || symbolsArg === undefined || (encoding !== 'msgpack' && encoding !== 'json')) {
  throw new Error('usage: baseline <vendor url> <symbols,comma,separated> [msgpack|json] [channels: trades,quotes]');
}
const channels = channelsArg.split(',');
const symbols = symbolsArg.split(',');
// JSON clients get the vendor's JSON frames as text, as the gateway sends them.
const binary = encoding === 'msgpack';
const GREETING = [{ T: 'success', msg: 'connected' }];

const server = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
server.on('connection', (ws) => {
  if (binary) ws.send(Buffer.from([0x91, 0x82, 0xa1, 0x54, 0xa7, ...Buffer.from('success'), 0xa3, ...Buffer.from('msg'), 0xa9, ...Buffer.from('connected')]), { binary: true });
  else ws.send(JSON.stringify(GREETING));
  ws.on('message', () => {}); // auth and subscribe are ignored: everyone gets everything
});

const vendor = new WebSocket(upstream, { headers: binary ? { 'Content-Type': 'application/msgpack' } : {}, perMessageDeflate: false });
vendor.on('open', () => {
  vendor.send(JSON.stringify({ action: 'auth', key: 'baseline', secret: 'baseline' }));
  vendor.send(JSON.stringify({ action: 'subscribe', ...Object.fromEntries(channels.map((channel) => [channel, symbols])) }));
});
let greeted = 0;
vendor.on('message', (data: Buffer) => {
  // The first three frames are the greeting, auth and subscription replies.
  if (greeted < 3) {
    greeted += 1;
    if (greeted === 3) process.stdout.write(`${JSON.stringify({ port: (server.address() as { port: number }).port })}\n`);
    return;
  }
  for (const client of server.clients) client.send(data, { binary });
});
process.on('SIGTERM', () => process.exit(0));
