/**
 * `tickmux tail`: prints the live stream of a gateway (or of the vendor itself), for operators
 * and for trying things out. It speaks JSON so what it prints is the wire's own text: every
 * nanosecond and every digit of a 64-bit id, as sent. Any stream path works; the options path
 * only through a gateway, since the vendor serves options as msgpack alone.
 */
import { WebSocket } from 'ws';
import { ProtocolError } from './errors.js';
import { jsonValueToWire, type MessageUnit, splitFrame } from './protocol/frame.js';
import { parseJson } from './protocol/json.js';
import type { Channel } from './protocol/streams.js';

export interface TailOptions {
  /** the stream's own URL (`ws://127.0.0.1:8080/v1beta3/crypto/us`) */
  url: string;
  key: string;
  secret: string;
  /** symbols per channel, only channels of the stream's kind */
  channels: Partial<Record<Channel, string[]>>;
  json: boolean;
  /** stop after this many data messages */
  count: number | undefined;
  out: (line: string) => void;
  err: (line: string) => void;
}

/** Errors after which the server closes the session: 412 is a JSON session on the vendor's options path. */
const CLOSING_CODES = new Set([402, 404, 406, 407, 412]);

/** What to do about an error, where tail itself is the cause. */
const HINTS: Readonly<Record<number, string>> = {
  412: 'tail speaks JSON; point it at a tickmux gateway, which serves options as JSON too',
};

type Wire = Record<string, unknown>;

/**
 * One human line per message: time, type, symbol(s) and the fields that matter for it. The kinds
 * share type letters (`t` is a stock, crypto or option trade), so a line shows the fields the
 * message has rather than asking which stream it came from.
 */
export function formatMessage(m: Wire): string {
  const symbols = Array.isArray(m.symbols) ? m.symbols.join(',') : '';
  const head = `${String(m.t ?? m.created_at ?? '-')}  ${String(m.T)}  ${String(m.S ?? symbols)}`.trimEnd();
  switch (m.T) {
    case 't':
      return joinParts(head, `${m.p} x ${m.s}`, m.i !== undefined && `id=${m.i}`, m.x, m.tks !== undefined && `taker=${m.tks}`, conditions(m.c));
    case 'q':
      return joinParts(head, `bid ${m.bp} x ${m.bs}${venue(m.bx)}`, `ask ${m.ap} x ${m.as}${venue(m.ax)}`, conditions(m.c));
    case 'b':
    case 'u':
    case 'd':
      return `${head}  o ${m.o}  h ${m.h}  l ${m.l}  c ${m.c}  v ${m.v}`;
    case 'o':
      return joinParts(head, m.r === true ? 'reset' : 'update', bookSide('bids', m.b, Math.max), bookSide('asks', m.a, Math.min));
    case 'n':
      return joinParts(head, m.headline, `source=${m.source}`, `id=${m.id}`);
    default:
      return `${head}  ${JSON.stringify(m, (_key, value: unknown) => (typeof value === 'bigint' ? String(value) : value))}`;
  }
}

/** The parts a message has, two spaces apart; absent ones (undefined, false) leave no gap. */
function joinParts(...parts: unknown[]): string {
  return parts.filter((p) => p !== undefined && p !== false).join('  ');
}

/** ` (V)` for a quote side's exchange; crypto quotes have none. */
function venue(exchange: unknown): string {
  return exchange === undefined ? '' : ` (${exchange})`;
}

/**
 * `c S`: an option's one condition, a string. Stock trades and quotes carry a list of conditions
 * that their lines have always left to `--json`; crypto carries none.
 */
function conditions(c: unknown): string | undefined {
  return typeof c === 'string' ? `c ${c}` : undefined;
}

/**
 * `bids 10 (top 64000.1 x 0.5)`: how many levels a book message sets on a side and the innermost
 * one — the best bid or ask of a reset, the level nearest the spread that an update changes
 * (`x 0` removes it).
 */
function bookSide(name: string, levels: unknown, inner: (...prices: number[]) => number): string {
  const list = Array.isArray(levels) ? (levels as { p: number; s: number }[]) : [];
  if (list.length === 0) return `${name} 0`;
  const price = inner(...list.map((l) => l.p));
  const top = list.find((l) => l.p === price) as { p: number; s: number };
  return `${name} ${list.length} (top ${top.p} x ${top.s})`;
}

/**
 * Parses one JSON unit for display with the lossless parser, so 64-bit integers keep their exact
 * digits (as bigints); quoting long digit runs in the text before `JSON.parse` also hit them
 * inside strings (a news headline) and broke the parse.
 */
function display(unit: MessageUnit): Wire {
  return jsonValueToWire(parseJson(unit.encoded('json'))) as Wire;
}

/** The reply's lists for the channels tail asked for: the rest of a kind's reply (corrections, …) is noise here. */
function confirmed(reply: Wire, asked: TailOptions['channels']): Wire {
  return Object.fromEntries(Object.keys(asked).map((channel) => [channel, reply[channel]]));
}

/** Runs until interrupted, `count` messages were printed, or the gateway closes; resolves the exit code. */
export function tail(options: TailOptions): Promise<number> {
  return new Promise((resolve) => {
    const socket = new WebSocket(options.url, { perMessageDeflate: false });
    let printed = 0;
    let exitCode = 0;
    let stopped = false;
    const stop = (code: number): void => {
      exitCode = code;
      stopped = true;
      socket.close();
    };
    const interrupted = (): void => stop(0);
    process.once('SIGINT', interrupted);
    socket.on('message', (data: Buffer) => {
      // Frames already on the way while the close handshake runs are not printed.
      if (stopped) return;
      let units: MessageUnit[];
      try {
        units = splitFrame(data, 'json');
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw err;
        options.err(`tickmux tail: unreadable frame: ${err.message}`);
        return;
      }
      for (const unit of units) {
        const message = display(unit);
        if (message.T === 'success' && message.msg === 'connected') {
          socket.send(JSON.stringify({ action: 'auth', key: options.key, secret: options.secret }));
        } else if (message.T === 'success' && message.msg === 'authenticated') {
          socket.send(JSON.stringify({ action: 'subscribe', ...options.channels }));
        } else if (message.T === 'error') {
          const hint = HINTS[Number(message.code)];
          options.err(`tickmux tail: ${message.code} ${message.msg}${hint === undefined ? '' : ` (${hint})`}`);
          if (CLOSING_CODES.has(Number(message.code))) stop(1);
        } else if (message.T === 'subscription') {
          options.err(`subscribed: ${JSON.stringify(confirmed(message, options.channels))}`);
        } else {
          options.out(options.json ? unit.encoded('json').toString() : formatMessage(message));
          printed += 1;
          if (options.count !== undefined && printed >= options.count) {
            stop(0);
            return;
          }
        }
      }
    });
    socket.on('error', (err) => {
      options.err(`tickmux tail: ${err.message}`);
      exitCode = 1;
    });
    socket.on('close', () => {
      // A caller that runs tail again (a test, a script) must not collect one SIGINT listener per run.
      process.off('SIGINT', interrupted);
      resolve(exitCode);
    });
  });
}
