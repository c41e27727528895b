/** The simulated vendor, for tests, benchmarks, `npm start` and `tickmux simulate`. */
export { CryptoMarket, DEFAULT_CRYPTO_UNIVERSE } from './crypto-market.js';
export { DEFAULT_TRADE_ID_BASE, StockMarket, SyntheticMarket } from './market.js';
export { DEFAULT_NEWS_UNIVERSE, NewsWire } from './news-wire.js';
export { DEFAULT_OPTION_UNIVERSE, OptionMarket } from './option-market.js';
export type { MarketMessage, StreamMarket } from './stream-market.js';
export { seededRandom, type Random } from '../random.js';
export {
  DEFAULT_UNIVERSE,
  type MalformedKind,
  type SessionInfo,
  type SimulatedCredential,
  type SimulatorOptions,
  type SimulatorStats,
  VendorSimulator,
} from './simulator.js';
export type { SimulatedPlan } from './vendor-session.js';
