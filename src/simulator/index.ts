/** The simulated vendor, for tests, benchmarks, `npm start` and `tickmux simulate`. */
export { DEFAULT_TRADE_ID_BASE, SyntheticMarket, type MarketMessage } from './market.js';
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
