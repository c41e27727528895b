/**
 * The clients of the bench's mixed scenario (issue #9): one gateway serving four streams at once,
 * N clients spread over them with the subscriptions of a desk that trades stocks, crypto and
 * options and reads news — and the deliveries each group is offered, so a shortfall shows.
 */
import { type Random, seededRandom } from '../src/random.js';
import { DEFAULT_CRYPTO_UNIVERSE } from '../src/simulator/crypto-market.js';
import type { ClientGroup, Subscription } from './load-clients.js';

/** The stream path of each kind the bench's gateway serves. */
export const STREAMS = { stocks: 'v2/iex', crypto: 'v1beta3/crypto/us', options: 'v1beta1/indicative', news: 'v1beta1/news' } as const;

/** OCC contracts on three underlyings, calls and puts at two strikes each. */
const OPTION_CONTRACTS = ['AAPL', 'SPY', 'NVDA'].flatMap((root, r) =>
  ['C', 'P'].flatMap((right) => [100, 150].map((strike) => `${root}250117${right}${String((strike + r * 50) * 1000).padStart(8, '0')}`)),
);

/** A group as the plan holds it: its stream path instead of a URL, and each client's symbols. */
export interface PlannedGroup extends Omit<ClientGroup, 'url'> {
  path: string;
  /** what each client holds, in words, for the report */
  holds: string;
  /** per client: the symbols it holds on every channel it subscribes to (`*` for news) */
  symbols: string[][];
}

/** `k` distinct items of `items`, at random. */
function sample<T>(random: Random, items: readonly T[], k: number): T[] {
  const pool = [...items];
  const out: T[] = [];
  while (out.length < k && pool.length > 0) out.push(pool.splice(Math.floor(random() * pool.length), 1)[0] as T);
  return out;
}

/** A group of `clients` each holding `perClient` of `universe` on every one of `channels`. */
function flowGroup(
  random: Random,
  group: Pick<PlannedGroup, 'name' | 'path' | 'clients' | 'encoding'> & { channels: (keyof Subscription)[]; universe: readonly string[]; perClient: number },
): PlannedGroup {
  const symbols = Array.from({ length: group.clients }, () => sample(random, group.universe, group.perClient));
  return {
    name: group.name,
    path: group.path,
    clients: group.clients,
    encoding: group.encoding,
    subscriptions: symbols.map((s) => Object.fromEntries(group.channels.map((channel) => [channel, s]))),
    sampled: 10,
    holds: `${group.channels.join(' + ')} on ${group.perClient} of ${group.universe.length}`,
    symbols,
  };
}

/**
 * N clients over the four streams: 40 % stocks (trades and quotes on 5 of `stockSymbols`), 20 %
 * crypto (trades, quotes and order books on 2 of 6 pairs), 30 % options (trades and quotes on 3 of
 * 12 contracts; half of them JSON clients, which the gateway serves by transcoding the vendor's
 * msgpack), 10 % news (`*`).
 */
export function mixedPlan(clients: number, stockSymbols: readonly string[]): PlannedGroup[] {
  const random = seededRandom(9);
  const crypto = Math.round(clients * 0.2);
  const optionsMsgpack = Math.round(clients * 0.15);
  const optionsJson = Math.round(clients * 0.15);
  const news = Math.round(clients * 0.1);
  const stocks = clients - crypto - optionsMsgpack - optionsJson - news;
  const options = { path: STREAMS.options, channels: ['trades', 'quotes'] as (keyof Subscription)[], universe: OPTION_CONTRACTS, perClient: 3 };
  return [
    flowGroup(random, { name: 'stocks', path: STREAMS.stocks, clients: stocks, encoding: 'msgpack', channels: ['trades', 'quotes'], universe: stockSymbols, perClient: 5 }),
    flowGroup(random, { name: 'crypto', path: STREAMS.crypto, clients: crypto, encoding: 'msgpack', channels: ['trades', 'quotes', 'orderbooks'], universe: DEFAULT_CRYPTO_UNIVERSE, perClient: 2 }),
    flowGroup(random, { name: 'options (msgpack)', clients: optionsMsgpack, encoding: 'msgpack', ...options }),
    flowGroup(random, { name: 'options (JSON)', clients: optionsJson, encoding: 'json', ...options }),
    { name: 'news', path: STREAMS.news, clients: news, encoding: 'msgpack', subscriptions: [{ news: ['*'] }], sampled: 0, holds: 'news on *', symbols: Array.from({ length: news }, () => ['*']) } satisfies PlannedGroup,
  ].filter((group) => group.clients > 0);
}

/** The mix's baseline: `clients` msgpack clients all on the stock stream, each as the mix's stock clients (5 of `stockSymbols`). */
export function stocksOnlyGroup(clients: number, stockSymbols: readonly string[]): PlannedGroup {
  return flowGroup(seededRandom(13), { name: 'stocks', path: STREAMS.stocks, clients, encoding: 'msgpack', channels: ['trades', 'quotes'], universe: stockSymbols, perClient: 5 });
}

/**
 * Deliveries each of `groups`, connected together, is offered per vendor message on its stream.
 * The gateway's link of a stream holds exactly the union of its clients' symbols, and each client
 * here holds every channel the vendor sends for its symbols (news: `*`, every item), so a client
 * is offered its share `its symbols / symbols held on the stream` of what the link receives.
 */
export function deliveriesPerVendorMessage(groups: readonly PlannedGroup[]): Record<string, number> {
  const held = new Map<string, Set<string>>();
  for (const group of groups) {
    const set = held.get(group.path) ?? new Set<string>();
    for (const symbol of group.symbols.flat()) set.add(symbol);
    held.set(group.path, set);
  }
  return Object.fromEntries(
    groups.map((group) => {
      const symbols = group.symbols.reduce((sum, s) => sum + s.length, 0);
      return [group.name, symbols / Math.max(1, held.get(group.path)?.size ?? 0)];
    }),
  );
}
