import { inspect } from 'node:util';
import t from 'tap';
import { loadConfig } from '../src/config.js';
import { ConfigError, isKnownVendorCode, TickmuxError, VENDOR_ERRORS, vendorErrorMessage, VendorError } from '../src/errors.js';
import { REDACTED, Secret } from '../src/secret.js';
import { captureLogs } from './helpers/log-capture.js';

const VALUE = 'hunter2-very-secret';

t.test('a secret prints as the redaction marker everywhere', async (t) => {
  const s = new Secret(VALUE, 'TEST_SECRET');
  t.equal(s.reveal(), VALUE);
  t.equal(String(s), REDACTED);
  t.equal(`${s}`, REDACTED);
  t.equal(JSON.stringify({ s }), `{"s":"${REDACTED}"}`);
  t.notMatch(inspect(s), VALUE);
  t.notMatch(inspect({ nested: { s } }, { depth: 10, showHidden: true }), VALUE);
});

t.test('an empty secret is refused at construction', async (t) => {
  t.throws(() => new Secret('', 'APCA_API_SECRET_KEY'), new ConfigError('APCA_API_SECRET_KEY', 'must not be empty'));
});

t.test('secrets never reach a log line, whether wrapped or in known plain fields', async (t) => {
  const { logger, text } = captureLogs();
  const config = loadConfig({
    UPSTREAM_URL: 'wss://stream.data.alpaca.markets/v2/iex',
    APCA_API_KEY_ID: 'AKID-plain-key',
    APCA_API_SECRET_KEY: VALUE,
    CLIENT_KEYS: 'alice:client-secret-1',
    CONTROL_TOKEN: 'control-token-1',
  });
  logger.info({ config }, 'configuration loaded');
  logger.info({ secret: VALUE, key: 'AKID-plain-key', token: 'control-token-1' }, 'plain fields');
  logger.info({ req: { headers: { authorization: 'Bearer control-token-1', 'apca-api-secret-key': VALUE, 'apca-api-key-id': 'AKID-plain-key' } } }, 'request');
  logger.info({ frame: { action: 'auth', key: 'AKID-plain-key', secret: VALUE } }, 'auth frame');
  logger.error({ err: new Error('failed') }, 'an error');
  const out = text();
  t.match(out, 'configuration loaded', 'the lines were written');
  for (const secret of [VALUE, 'AKID-plain-key', 'client-secret-1', 'control-token-1']) t.notMatch(out, secret, `no ${secret}`);
  t.notMatch(inspect(config, { depth: 10 }), VALUE, 'inspect of the config hides it');
  t.notMatch(JSON.stringify(config), VALUE, 'JSON of the config hides it');
});

t.test('errors carry stable codes and the vendor table has the vendor texts', async (t) => {
  const e = new VendorError(406);
  t.ok(e instanceof TickmuxError);
  t.equal(e.code, 'ERR_VENDOR_406');
  t.equal(e.message, 'connection limit exceeded');
  t.equal(new ConfigError('PORT', 'bad').code, 'ERR_CONFIG');
  t.same(
    Object.entries(VENDOR_ERRORS).map(([code, msg]) => `${code} ${msg}`),
    [
      '400 invalid syntax',
      '401 not authenticated',
      '402 auth failed',
      '403 already authenticated',
      '404 auth timeout',
      '405 symbol limit exceeded',
      '406 connection limit exceeded',
      '407 slow client',
      '408 v2 not enabled',
      '409 insufficient subscription',
      '410 invalid subscribe action for this feed',
      '411 insufficient scope',
      '412 option messages are only available in MsgPack format',
      '413 star subscription is not allowed for option quotes',
      '500 internal error',
    ],
  );
  t.equal(vendorErrorMessage(499), 'error 499', 'an unknown code gets a neutral text, not a throw');
  t.ok(isKnownVendorCode(409));
  t.notOk(isKnownVendorCode(499));
});
