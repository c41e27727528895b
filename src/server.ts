/**
 * The process entry point (`npm start`): validates the configuration (one line and exit 1 when
 * wrong), builds the logger, serves the app, and on SIGTERM/SIGINT closes clients with 1001,
 * stops the vendor link and exits 0 within SHUTDOWN_GRACE_MS.
 */
import closeWithGrace from 'close-with-grace';
import Fastify from 'fastify';
import app, { fastifyOptions } from './app.js';
import { type Config, loadConfig } from './config.js';
import { ConfigError } from './errors.js';
import { processLogger } from './logger.js';

function readConfig(): Config {
  try {
    return loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`tickmux: configuration error: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
}

const config = readConfig();
const logger = processLogger(config.logLevel);
const fastify = Fastify(fastifyOptions(logger));
await fastify.register(app, { config });

closeWithGrace({ delay: config.shutdownGraceMs, logger }, async ({ err, signal }) => {
  if (err !== undefined) logger.error({ err }, 'stopping after an error');
  else logger.info({ signal }, 'stopping');
  await fastify.close();
});

const address = await fastify.listen({ host: config.host, port: config.port });
const streams = config.streams.map((path) => `${address.replace(/^http/, 'ws')}/${path}`);
logger.info({ address, streams, upstream: config.upstream.base === undefined ? 'embedded simulator' : 'vendor' }, 'tickmux ready');
