import { request as httpRequest, type IncomingMessage } from 'node:http';
import { eventually } from './wait.js';

/** One server-sent event as parsed: its name, id and data. */
export interface ServerSentEvent {
  event: string;
  id: string | undefined;
  data: string;
}

/** A reading client of a `text/event-stream` response (or of its refusal). */
export interface EventStreamClient {
  readonly response: IncomingMessage;
  /** the whole body received so far */
  body(): string;
  /** every complete event so far, in order */
  readonly events: ServerSentEvent[];
  /** the `snapshot` events' data, parsed */
  snapshots(): Record<string, unknown>[];
  /** resolves once `count` events have arrived */
  waitForEvents(count: number, what?: string): Promise<void>;
  /** resolves when the server ends or cuts the response */
  readonly ended: Promise<void>;
  close(): void;
}

/** Parses the complete events at the front of `text`; returns them and what is left. */
export function parseEvents(text: string): { events: ServerSentEvent[]; rest: string } {
  const events: ServerSentEvent[] = [];
  let rest = text;
  for (let end = rest.indexOf('\n\n'); end !== -1; end = rest.indexOf('\n\n')) {
    const block = rest.slice(0, end);
    rest = rest.slice(end + 2);
    const fields: Record<string, string> = {};
    for (const line of block.split('\n')) {
      const colon = line.indexOf(':');
      if (colon <= 0) continue;
      fields[line.slice(0, colon)] = line.slice(colon + 1).replace(/^ /, '');
    }
    if (fields.data !== undefined) events.push({ event: fields.event ?? 'message', id: fields.id, data: fields.data });
  }
  return { events, rest };
}

/** GETs `url` and reads its event stream as it arrives. */
export function openEventStream(url: string, headers: Record<string, string> = {}): Promise<EventStreamClient> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { headers: { accept: 'text/event-stream', ...headers } });
    req.on('error', reject);
    req.on('response', (response) => {
      let all = '';
      let pending = '';
      const events: ServerSentEvent[] = [];
      const ended = new Promise<void>((done) => {
        response.on('end', done);
        response.on('close', done);
        response.on('error', () => done());
      });
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        all += chunk;
        const parsed = parseEvents(pending + chunk);
        pending = parsed.rest;
        events.push(...parsed.events);
      });
      resolve({
        response,
        body: () => all,
        events,
        snapshots: () => events.filter((e) => e.event === 'snapshot').map((e) => JSON.parse(e.data) as Record<string, unknown>),
        waitForEvents: (count, what = `${count} events`) => eventually(() => events.length >= count, what),
        ended,
        close: () => req.destroy(),
      });
    });
    req.end();
  });
}
