import type { Test } from 'tap';
import { type SimulatorOptions, VendorSimulator } from '../../src/simulator/index.js';
import { type ClientOptions, StreamClient } from './stream-client.js';

/** A started simulator on 127.0.0.1:0 that the test's teardown stops. */
export async function startSimulator(t: Test, options: SimulatorOptions = {}): Promise<VendorSimulator> {
  const simulator = new VendorSimulator({ port: 0, rate: 0, ...options });
  await simulator.start();
  t.teardown(() => simulator.stop());
  return simulator;
}

/** A connected client that the test's teardown closes. */
export async function connect(t: Test, url: string, options: ClientOptions = {}): Promise<StreamClient> {
  const client = new StreamClient(url, options);
  t.teardown(() => client.close());
  await client.opened();
  return client;
}
