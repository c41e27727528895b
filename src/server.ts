/**
 * The process entry point: validates the configuration (one line and exit 1 when wrong), builds
 * the logger, serves, and stops cleanly on SIGTERM/SIGINT.
 *
 * Until the gateway lands (issue: fan-out), `npm start` serves the embedded simulated vendor on
 * HOST:PORT, so Alpaca clients can already connect to `ws://HOST:PORT/v2/{feed}`.
 */
import closeWithGrace from 'close-with-grace';
import { type Config, loadConfig } from './config.js';
import { ConfigError } from './errors.js';
import { createLogger } from './logger.js';
import { VendorSimulator } from './simulator/index.js';

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
const logger = createLogger(config.logLevel);
const credentials =
  config.clients.keys === undefined ? undefined : [...config.clients.keys].map(([key, secret]) => ({ key, secret: secret.reveal() }));
const simulator = new VendorSimulator({
  host: config.host,
  port: config.port,
  rate: config.simulatorRate,
  credentials,
  logger: logger.child({ component: 'simulator' }),
});
await simulator.start();
logger.info({ url: simulator.url(config.upstream.feed) }, 'tickmux serving the simulated vendor');

closeWithGrace({ delay: config.shutdownGraceMs }, async ({ err, signal }) => {
  if (err !== undefined) logger.error({ err }, 'stopping after an error');
  else logger.info({ signal }, 'stopping');
  await simulator.stop();
});
