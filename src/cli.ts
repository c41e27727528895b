#!/usr/bin/env node
/**
 * The `tickmux` command: `simulate` runs the vendor simulator alone (for docker-compose and for
 * trying clients); `tail` prints a gateway's live stream; `replay` serves a tape as the vendor;
 * `tape ls` and `tape export` read a tape. Each command loads only the modules it needs, so a
 * short command starts fast.
 */
import { resolve } from 'node:path';
import { type ParseArgsConfig, parseArgs } from 'node:util';
import closeWithGrace from 'close-with-grace';
import { processLogger } from './logger.js';
import { ChannelSet } from './protocol/channel-set.js';
import { CHANNELS, type Channel, STREAM_PATHS, type StreamKind, streamKindOf, streamPathOfUrl } from './protocol/streams.js';
import { replayWindow, WindowError } from './tape/replay-window.js';

const USAGE = `usage: tickmux <command> [options]

commands:
  simulate   run the simulated vendor: every Alpaca market-data stream path (stocks v2/{iex,sip,
             delayed_sip,test}, v1beta1/{boats,overnight}; crypto v1beta3/crypto/{us,us-1,eu-1};
             options v1beta1/{indicative,opra}; news v1beta1/news) on one port
             --host H   (default 127.0.0.1)   --port N   (default 9000)
             --rate R   market messages per second (default 100)
             --seed S   random seed (default 42)
             --key K --secret S   accept only this key pair (default: any)
             --max-buffer-mb M    unsent MiB per connection before 407 (default 16)
             --news-interval-ms N one news item every N ms while anyone holds news (default 5000)
  tail       print the live stream of a gateway
             --url U      the gateway's base (default ws://127.0.0.1:8080), or a full stream URL
                          (ws://127.0.0.1:8080/v2/iex) that names the stream itself
             --stream P   the stream path (default v2/iex): v2/{iex,sip,delayed_sip,test},
                          v1beta1/{boats,overnight}, v1beta3/crypto/{us,us-1,eu-1},
                          v1beta1/{indicative,opra}, v1beta1/news
             --key K --secret S   (default: $APCA_API_KEY_ID / $APCA_API_SECRET_KEY, else "tail")
             channels (repeat, or comma-separate; "*" for all), those of the stream's kind:
               stocks   --trades --quotes --bars --updated-bars --daily-bars --statuses --lulds
                        --imbalances SYM
               crypto   --trades --quotes --bars --updated-bars --daily-bars --orderbooks BTC/USD
               options  --trades --quotes AAPL250117C00150000   (a gateway's: the vendor's is
                        msgpack only, which tail does not speak)
               news     --news SYM or '*'
             --json     print each message as the wire's JSON   --count N   stop after N messages
  replay     serve a recorded window as the vendor on every recorded stream path (point an SDK or
             a gateway's UPSTREAM_URL at ws://HOST:PORT)
             --tape DIR   a TAPE_DIR a gateway recorded (default $TAPE_DIR), or
             --nats URL   a cluster's tape in JetStream (TAPE=1)   --cluster NAME (default tickmux)
             --from T     the window's start: RFC 3339 (up to ns) or Unix ms   --to T  (default: the end)
             --speed S    1 as recorded (default), N times as fast, or max
             --host H (default 127.0.0.1)  --port N (default 9000)  --max-sessions N (default 16)
             --key K --secret S   accept only this key pair (default: any)
  tape ls    what a tape folder holds: per stream its range, bytes, messages, segments and gaps
             --tape DIR   a TAPE_DIR a gateway recorded   --json   as GET /tape's streams
  tape export  a window of one stream's tape, losslessly (ids and nanoseconds exact)
             --tape DIR --stream P --from T --to T   (T: RFC 3339 up to ns, or Unix ms; both included)
             channels as tail takes them (none: every message), e.g. --trades AAPL,MSFT --quotes '*'
             --format ndjson   the vendor's JSON of each message, one a line, with "recv" (its
                               receive time) last; --marks adds link down/up and tape gaps as
                               {"T":"mark",…} lines
             --format csv      one file per message type (t.csv, q.csv …) with a header, in --out DIR
                               (files there are replaced); without --out, stdout if the channels
                               give one type
`;

/** One-line error and exit 2 for a bad command line. */
function usageError(message: string): never {
  process.stderr.write(`tickmux: ${message}\n\n${USAGE}`);
  process.exit(2);
}

/** The command line's options (strict: an unknown option or a missing value is an error), or `fail` naming what is wrong. */
function optionsOf<T extends ParseArgsConfig>(config: T, fail: (message: string) => never = usageError): ReturnType<typeof parseArgs<T & { strict: true }>>['values'] {
  try {
    return parseArgs({ ...config, strict: true }).values;
  } catch (err) {
    if (err instanceof TypeError) fail(err.message);
    throw err;
  }
}

function integerOption(name: string, value: string | undefined, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) usageError(`--${name} must be an integer from ${min} to ${max}`);
  return Number(value);
}

async function simulate(args: string[]): Promise<void> {
  const values = optionsOf({
    args,
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string' },
      rate: { type: 'string' },
      seed: { type: 'string' },
      key: { type: 'string' },
      secret: { type: 'string' },
      'max-buffer-mb': { type: 'string' },
      'news-interval-ms': { type: 'string' },
    },
  });
  if ((values.key === undefined) !== (values.secret === undefined)) usageError('--key and --secret go together');
  const logger = processLogger(process.env.LOG_LEVEL ?? 'info');
  const { VendorSimulator } = await import('./simulator/index.js');
  const simulator = new VendorSimulator({
    host: values.host,
    port: integerOption('port', values.port, 9000, 0, 65535),
    rate: integerOption('rate', values.rate, 100, 0, 10_000_000),
    seed: integerOption('seed', values.seed, 42, 0, 2 ** 32 - 1),
    credentials: values.key === undefined ? undefined : [{ key: values.key, secret: values.secret as string }],
    maxBufferBytes: integerOption('max-buffer-mb', values['max-buffer-mb'], 16, 1, 65536) * 1048576,
    newsIntervalMs: integerOption('news-interval-ms', values['news-interval-ms'], 5000, 10, 86_400_000),
    logger,
  });
  await simulator.start();
  logger.info({ url: simulator.url('iex'), base: simulator.url('iex').replace(/\/v2\/iex$/, ''), paths: simulator.paths }, 'simulated vendor ready');
  closeWithGrace({ delay: 5000 }, async ({ err, signal }) => {
    if (err !== undefined) logger.error({ err }, 'simulator stopping after an error');
    else logger.info({ signal }, 'simulator stopping');
    await simulator.stop();
  });
}

/** A channel's command-line option: `updatedBars` → `updated-bars`. */
function channelOption(channel: Channel): string {
  return channel.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

const DEFAULT_BASE = 'ws://127.0.0.1:8080';
const DEFAULT_STREAM = 'v2/iex';

/**
 * The URL tail connects to and its stream's kind. `--url` is a base the stream path is appended
 * to, or — as before tail knew streams — a full stream URL, which then names the stream itself.
 */
function tailTarget(url: string, stream: string | undefined): { url: string; path: string; kind: StreamKind } {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (err) {
    if (err instanceof TypeError) usageError('--url must be a ws:// or wss:// URL');
    throw err;
  }
  if (parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:') usageError('--url must be a ws:// or wss:// URL');
  const asked = stream?.replace(/^\/+/, '');
  if (asked !== undefined && streamKindOf(asked) === undefined) usageError(`unknown stream ${JSON.stringify(stream)}; known: ${STREAM_PATHS.join(', ')}`);
  const named = streamPathOfUrl(url);
  if (named !== undefined) {
    if (asked !== undefined && asked !== named) usageError(`--url names the stream ${named}; --stream ${asked} differs (give --url as a base to choose the stream)`);
    return { url, path: named, kind: streamKindOf(named) as StreamKind };
  }
  const path = asked ?? DEFAULT_STREAM;
  parsed.pathname = `${parsed.pathname.replace(/\/+$/, '')}/${path}`;
  return { url: parsed.toString(), path, kind: streamKindOf(path) as StreamKind };
}

/** The symbols given for each channel option; a channel the stream's kind lacks is a usage error. */
function tailChannels(values: Record<string, unknown>, path: string, kind: StreamKind): Partial<Record<Channel, string[]>> {
  const own = kind.channels.map((c) => `--${channelOption(c)}`).join(', ');
  const channels: Partial<Record<Channel, string[]>> = {};
  for (const channel of CHANNELS) {
    const given = values[channelOption(channel)] as string[] | undefined;
    if (given === undefined) continue;
    if (!kind.channels.includes(channel)) usageError(`${path} has no --${channelOption(channel)}; its channels: ${own}`);
    channels[channel] = given.flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean);
  }
  if (Object.keys(channels).length === 0) usageError(`tail needs at least one of ${own}`);
  return channels;
}

async function runTail(args: string[]): Promise<void> {
  const values = optionsOf({
    args,
    options: {
      url: { type: 'string', default: DEFAULT_BASE },
      stream: { type: 'string' },
      key: { type: 'string' },
      secret: { type: 'string' },
      json: { type: 'boolean', default: false },
      count: { type: 'string' },
      ...Object.fromEntries(CHANNELS.map((c) => [channelOption(c), { type: 'string', multiple: true } as const])),
    },
  });
  // `tickmux tail … | head` closes the pipe: the reader is done, so tail is too (exit 0, as Unix tools do).
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    process.exit(0);
  });
  const target = tailTarget(values.url, values.stream);
  const channels = tailChannels(values, target.path, target.kind);
  const { tail } = await import('./tail.js');
  const code = await tail({
    url: target.url,
    key: values.key ?? process.env.APCA_API_KEY_ID ?? 'tail',
    secret: values.secret ?? process.env.APCA_API_SECRET_KEY ?? 'tail',
    channels,
    json: values.json,
    count: values.count === undefined ? undefined : integerOption('count', values.count, 0, 1, Number.MAX_SAFE_INTEGER),
    out: (line) => process.stdout.write(`${line}\n`),
    err: (line) => process.stderr.write(`${line}\n`),
  });
  process.exitCode = code;
}

/** A cluster's JetStream tape (`--nats`): the NATS URL checked as the gateway checks NATS_URL. */
async function natsStore(url: string, clusterName: string): Promise<import('./tape/replay-server.js').ReplayStore> {
  const [{ loadConfig }, { ConfigError }, { connect }, { jetStreamStore }] = await Promise.all([
    import('./config.js'),
    import('./errors.js'),
    import('@nats-io/transport-node'),
    import('./cluster/cluster-tape.js'),
  ]);
  let servers: readonly string[];
  try {
    servers = (loadConfig({ NATS_URL: url }).cluster as { servers: readonly string[] }).servers;
  } catch (err) {
    if (err instanceof ConfigError) usageError(`--nats: ${err.message.replace(/^NATS_URL: /, '')}`);
    throw err;
  }
  try {
    return await jetStreamStore(await connect({ servers: [...servers], name: 'tickmux-replay' }), clusterName);
  } catch (err) {
    process.stderr.write(`tickmux: cannot reach NATS at ${url}: ${(err as Error).message}\n`);
    process.exit(1);
  }
}

async function runReplay(args: string[]): Promise<void> {
  const values = optionsOf({
    args,
    options: {
      tape: { type: 'string' },
      nats: { type: 'string' },
      cluster: { type: 'string' },
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string' },
      from: { type: 'string' },
      to: { type: 'string' },
      speed: { type: 'string' },
      key: { type: 'string' },
      secret: { type: 'string' },
      'max-sessions': { type: 'string' },
    },
  });
  if (values.nats !== undefined && values.tape !== undefined) usageError('replay reads --tape DIR or --nats URL, not both');
  if (values.nats === undefined) values.tape ??= process.env.TAPE_DIR;
  if (values.tape === undefined && values.nats === undefined) {
    usageError("replay needs --tape DIR (a TAPE_DIR a gateway recorded; default $TAPE_DIR) or --nats URL (a cluster's TAPE=1 tape in JetStream)");
  }
  const clusterName = values.cluster ?? 'tickmux';
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(clusterName)) usageError('--cluster must be 1 to 64 letters, digits, "-" or "_"');
  if ((values.key === undefined) !== (values.secret === undefined)) usageError('--key and --secret go together');
  let window;
  try {
    window = replayWindow(values.from, values.to, values.speed);
  } catch (err) {
    if (err instanceof WindowError) usageError(err.message);
    throw err;
  }
  const logger = processLogger(process.env.LOG_LEVEL ?? 'info');
  const [{ systemClock }, { loadConfig }, { Secret }, { folderStore, ReplayServer }] = await Promise.all([
    import('./clock.js'),
    import('./config.js'),
    import('./secret.js'),
    import('./tape/replay-server.js'),
  ]);
  const defaults = loadConfig({}).clients;
  const where = values.nats === undefined ? resolve(values.tape as string) : `the cluster ${clusterName}'s tape at ${values.nats}`;
  const store = values.nats === undefined ? folderStore(resolve(values.tape as string)) : await natsStore(values.nats, clusterName);
  const server = new ReplayServer({
    store,
    host: values.host,
    port: integerOption('port', values.port, 9000, 0, 65535),
    window,
    clients: { ...defaults, keys: values.key === undefined ? undefined : new Map([[values.key, new Secret(values.secret as string, '--secret')]]) },
    maxSessions: integerOption('max-sessions', values['max-sessions'], 16, 1, 10_000),
    clock: systemClock,
    logger,
  });
  await server.start();
  if (server.paths.length === 0) {
    await server.stop();
    process.stderr.write(`tickmux: nothing is recorded in ${where}\n`);
    process.exit(1);
  }
  logger.info({ base: server.baseUrl, paths: server.paths, from: values.from, to: values.to ?? 'the end of the tape', speed: window.speed }, 'replay vendor ready');
  closeWithGrace({ delay: 5000 }, async ({ err, signal }) => {
    if (err !== undefined) logger.error({ err }, 'replay stopping after an error');
    else logger.info({ signal }, 'replay stopping');
    await server.stop();
  });
}

/** One line on stderr and exit `code`: 2 for a bad command line, 1 for a tape that cannot be read. */
function tapeFail(message: string, code: 1 | 2): never {
  process.stderr.write(`tickmux tape: ${message}\n`);
  process.exit(code);
}

/** A `tape` command line that is wrong: exit 2. */
const tapeUsage = (message: string): never => tapeFail(message, 2);

/** The channels and symbols `tape export` keeps (undefined: every message); a channel the stream's kind lacks is a usage error. */
function exportSelection(values: Record<string, unknown>, path: string, kind: StreamKind): ChannelSet | undefined {
  const own = kind.channels.map((c) => `--${channelOption(c)}`).join(', ');
  let selection: ChannelSet | undefined;
  for (const channel of CHANNELS) {
    const given = values[channelOption(channel)] as string[] | undefined;
    if (given === undefined) continue;
    const option = `--${channelOption(channel)}`;
    if (!kind.channels.includes(channel)) tapeFail(`${path} has no ${option}; its channels: ${own}`, 2);
    const symbols = given.flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean);
    if (symbols.length === 0) tapeFail(`${option} needs a symbol or '*'`, 2);
    for (const symbol of symbols) {
      // A mistyped symbol would export nothing and say nothing.
      if (!kind.isValidSymbol(symbol)) tapeFail(`${option} ${JSON.stringify(symbol)} is not a ${kind.name} symbol`, 2);
      (selection ??= new ChannelSet()).add(channel, symbol);
    }
  }
  return selection;
}

async function tapeLs(args: string[]): Promise<void> {
  const values = optionsOf({ args, options: { tape: { type: 'string' }, json: { type: 'boolean', default: false } } }, tapeUsage);
  values.tape ??= process.env.TAPE_DIR;
  if (values.tape === undefined) tapeFail('ls needs --tape DIR (a TAPE_DIR a gateway recorded; default $TAPE_DIR)', 2);
  const { formatTapeTable, listTape } = await import('./tape/tape-list.js');
  const listing = await listTape(values.tape);
  process.stdout.write(values.json ? `${JSON.stringify(listing)}\n` : formatTapeTable(listing, values.tape));
}

async function tapeExport(args: string[]): Promise<void> {
  const values = optionsOf({
    args,
    options: {
      tape: { type: 'string' },
      stream: { type: 'string' },
      from: { type: 'string' },
      to: { type: 'string' },
      format: { type: 'string' },
      out: { type: 'string' },
      marks: { type: 'boolean', default: false },
      ...Object.fromEntries(CHANNELS.map((c) => [channelOption(c), { type: 'string', multiple: true } as const])),
    },
  }, tapeUsage);
  values.tape ??= process.env.TAPE_DIR;
  if (values.tape === undefined) tapeFail('export needs --tape DIR (a TAPE_DIR a gateway recorded; default $TAPE_DIR)', 2);
  if (values.stream === undefined) tapeFail(`export needs --stream P: one of ${STREAM_PATHS.join(', ')}`, 2);
  const stream = values.stream.replace(/^\/+/, '');
  const kind = streamKindOf(stream);
  if (kind === undefined) tapeFail(`unknown stream ${JSON.stringify(values.stream)}; known: ${STREAM_PATHS.join(', ')}`, 2);
  if (values.from === undefined || values.to === undefined) tapeFail('export needs --from T and --to T (RFC 3339 up to nanoseconds, or Unix ms)', 2);
  const window = replayWindow(values.from, values.to, undefined);
  const format = values.format;
  if (format !== 'ndjson' && format !== 'csv') tapeFail(format === undefined ? 'export needs --format ndjson or --format csv' : `--format must be ndjson or csv; got ${JSON.stringify(format)}`, 2);
  const selection = exportSelection(values, stream, kind);
  const { exportTape } = await import('./tape/tape-export.js');
  const result = await exportTape(
    { dir: values.tape, stream, kind, fromNs: window.fromNs, toNs: window.toNs as bigint, selection, format, marks: values.marks, outDir: values.out },
    process.stdout,
  );
  for (const table of result.tables) {
    if (table.path !== undefined) process.stderr.write(`wrote ${table.path}: ${table.rows} ${table.rows === 1 ? 'row' : 'rows'}\n`);
    if (table.messagesWithExtraFields > 0) {
      process.stderr.write(`tickmux tape: ${table.messagesWithExtraFields} ${table.type} messages had fields the header lacks (${table.extraFields.join(', ')}), left out of their rows; --format ndjson keeps them\n`);
    }
  }
  for (const [why, n] of result.skipped) process.stderr.write(`tickmux tape: ${n} messages left out: ${why}\n`);
}

/** `tickmux tape ls` and `tickmux tape export`: one line on stderr for what goes wrong. */
async function runTape(args: string[]): Promise<void> {
  const [sub, ...rest] = args;
  // `… | head` closes the pipe: the reader is done, so the command is too (exit 0, as tail does).
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    process.exit(0);
  });
  try {
    if (sub === 'ls') await tapeLs(rest);
    else if (sub === 'export') await tapeExport(rest);
    else tapeFail(sub === undefined ? 'tape needs ls or export' : `unknown tape command ${JSON.stringify(sub)}: tape ls or tape export`, 2);
  } catch (err) {
    // By name: the classes live in modules loaded only by the command that throws them.
    if (err instanceof Error && err.name === 'TapeFolderError') tapeFail(err.message, 1);
    if (err instanceof Error && (err.name === 'TapeExportError' || err instanceof WindowError)) tapeFail(err.message, 2);
    // The disk's refusals (an --out that is a file, no space left): one line too.
    const code = (err as NodeJS.ErrnoException).code;
    if (err instanceof Error && typeof code === 'string' && /^E[A-Z]+$/.test(code)) tapeFail(err.message, 1);
    throw err;
  }
}

const [command, ...rest] = process.argv.slice(2);
switch (command) {
  case 'simulate':
    await simulate(rest);
    break;
  case 'replay':
    await runReplay(rest);
    break;
  case 'tail':
    await runTail(rest);
    break;
  case 'tape':
    await runTape(rest);
    break;
  case undefined:
  case '--help':
  case '-h':
  case 'help':
    process.stdout.write(USAGE);
    break;
  default:
    usageError(`unknown command ${JSON.stringify(command)}`);
}
