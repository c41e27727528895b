import { Writable } from 'node:stream';
import type { Logger } from 'pino';
import { createLogger } from '../../src/logger.js';

/** A real pino logger (the production options, redaction included) writing into memory. */
export function captureLogs(level = 'trace'): { logger: Logger; lines: () => string[]; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  const logger = createLogger(level, stream);
  const text = (): string => {
    logger.flush();
    return chunks.join('');
  };
  return { logger, text, lines: () => text().split('\n').filter(Boolean) };
}
