// The functions handed to the page run in the browser: DOM types for them. (Only the typecheck sees
// this; `npm run build` compiles src/ and routes/ without the DOM, so node code cannot lean on it.)
/// <reference lib="dom" />
/**
 * The status page in a real browser: Debian's chromium (`/usr/bin/chromium`, installed by .ci/run)
 * driven by puppeteer-core. The page must render every served stream live, follow a vendor link
 * that drops and comes back, say plainly when the gateway is gone, and recover when it is back.
 * Screenshots are left in a temporary folder for a person to look at (the paths are printed).
 */
import { existsSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyBaseLogger } from 'fastify';
import fp from 'fastify-plugin';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import t from 'tap';
import app, { fastifyOptions } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { startGateway } from '../helpers/gateway.js';
import { captureLogs } from '../helpers/log-capture.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const STREAMS = ['v2/iex', 'v1beta3/crypto/us', 'v1beta1/indicative', 'v1beta1/news'];
/** Deadlines for what the page must come to show: they turn a hang into a failure, they measure nothing. */
const WAIT = { timeout: 20_000 };
const ENV = { STREAMS: '', SIMULATOR_RATE: '200', RETRY_BASE_MS: '50', RETRY_MAX_MS: '200', BREAKER_RESET_MS: '500' };

async function launch(): Promise<Browser> {
  return puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-dev-shm-usage', '--disable-extensions', '--no-first-run', '--mute-audio'],
  });
}

/** What one stream's card shows, read from the page. */
async function card(page: Page, stream: string): Promise<{ state: string; reason: string; text: string }> {
  return page.$eval(`[data-stream="${stream}"]`, (el) => ({
    state: el.getAttribute('data-state') ?? '',
    reason: (el.querySelectorAll('dd')[1] as HTMLElement).textContent ?? '',
    text: (el as HTMLElement).innerText,
  }));
}

t.test('the status page in chromium: every stream live, a vendor link drops and comes back, the gateway goes and comes back', { skip: existsSync(CHROMIUM) ? false : `chromium is not installed at ${CHROMIUM} (Debian package chromium; .ci/run installs it)` }, async (t) => {
  const gw = await startGateway(t, ENV);
  const port = Number(new URL(gw.base).port);
  // Clients holding every trade and quote of stocks and crypto, so the rates and the chart move.
  for (const stream of ['v2/iex', 'v1beta3/crypto/us']) {
    const client = await gw.connect({ stream });
    await client.auth();
    await client.request({ action: 'subscribe', trades: ['*'], quotes: ['*'] });
  }
  const browser = await launch();
  t.teardown(() => browser.close());
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 900 });
  const pageErrors: string[] = [];
  const requests: string[] = [];
  page.on('pageerror', (err) => pageErrors.push(String(err)));
  page.on('request', (request) => requests.push(request.url()));
  const shots = await mkdtemp(join(tmpdir(), 'tickmux-status-'));

  const answer = await page.goto(`${gw.base}/status`);
  t.equal(answer?.status(), 200, 'the page loads');
  await page.waitForFunction(
    (streams: string[]) => document.body.dataset.connection === 'live' && streams.every((s) => document.querySelector(`[data-stream="${s}"]`)?.getAttribute('data-state') === 'live'),
    WAIT,
    STREAMS,
  );
  t.pass('every served stream is shown live');
  t.same(await page.$$eval('[data-stream]', (els) => els.map((el) => el.getAttribute('data-stream'))), STREAMS, 'one card per stream, in STREAMS order');
  // The chart fills in as samples arrive (one a second).
  await page.waitForFunction(() => (document.querySelector('[data-stream="v2/iex"] polyline')?.getAttribute('points') ?? '').split(' ').length >= 5, WAIT);
  t.pass('the rate chart has points');
  await page.waitForFunction(() => /[1-9][\d.,]* from the vendor/.test(document.querySelector('[data-stream="v2/iex"]')?.textContent ?? ''), WAIT);
  t.pass('the stocks card shows vendor messages per second');

  // The stocks link drops and the vendor refuses it for a while; the other streams stay live.
  gw.simulator!.refuseUpgrades(503);
  gw.simulator!.dropAll({ path: 'v2/iex', terminate: true });
  await page.waitForFunction(() => {
    const el = document.querySelector('[data-stream="v2/iex"]');
    return el !== null && el.getAttribute('data-state') !== 'live' && (el.querySelectorAll('dd')[1]?.textContent ?? '\u2014') !== '\u2014';
  }, WAIT);
  const down = await card(page, 'v2/iex');
  t.not(down.state, 'live', `the page shows the stocks link down (${down.state})`);
  t.match(down.reason, /\S/, `with its reason: ${down.reason}`);
  t.equal((await card(page, 'v1beta3/crypto/us')).state, 'live', 'the crypto link is still shown live');
  const outage = join(shots, 'status-link-down.png');
  await page.screenshot({ path: outage, fullPage: true });
  t.comment(`screenshot (stocks link down): ${outage}`);

  gw.simulator!.refuseUpgrades(undefined);
  await page.waitForFunction(() => document.querySelector('[data-stream="v2/iex"]')?.getAttribute('data-state') === 'live', WAIT);
  t.pass('the page shows the stocks link live again, without a reload');

  // The gateway goes away: the page says so.
  await gw.app.close();
  await page.waitForFunction(() => document.body.dataset.connection === 'unreachable', WAIT);
  const banner = await page.$eval('#banner', (el) => ({ text: el.textContent ?? '', shown: getComputedStyle(el).display !== 'none' }));
  t.ok(banner.shown, 'the banner is visible');
  t.match(banner.text, /Gateway unreachable/, `it says: ${banner.text}`);
  const gone = join(shots, 'status-unreachable.png');
  await page.screenshot({ path: gone, fullPage: true });
  t.comment(`screenshot (gateway unreachable): ${gone}`);

  // A gateway on the same address again: the page recovers by itself.
  const { logger } = captureLogs('warn');
  const again = Fastify(fastifyOptions(logger as FastifyBaseLogger));
  t.teardown(() => again.close());
  await again.register(fp(app), { config: loadConfig(ENV) });
  await again.listen({ host: '127.0.0.1', port });
  await page.waitForFunction(() => document.body.dataset.connection === 'live' && getComputedStyle(document.getElementById('banner') as HTMLElement).display === 'none', WAIT);
  t.pass('the banner goes once the gateway is back, without a reload');

  t.same(pageErrors, [], 'no script error on the page');
  const foreign = requests.filter((url) => !url.startsWith(`${gw.base}/`));
  t.same(foreign, [], 'the page fetched nothing but its own gateway');
  t.ok(requests.some((url) => url === `${gw.base}/status/events`), 'it read the event stream');
  await page.close();
});
