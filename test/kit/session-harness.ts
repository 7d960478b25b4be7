/**
 * A gateway and nodes on the in-memory lossy network with a fake clock, for session-layer tests.
 * `settle` advances fake time in small steps and lets promise callbacks run between them.
 */
import { createHmac } from "node:crypto";
import { type DeviceDirectory, MemoryDevices } from "../../gateway/devices.js";
import { GatewayService } from "../../gateway/session/gateway-service.js";
import { CoapEndpoint, type Mac, NodeClient, type PeerAddress } from "../../src/core/index.js";
import { FakeTime, fakeRandom } from "./fake-time.js";
import { type LinkConditions, LossyNetwork } from "./lossy-link.js";

export const nodeMac: Mac = {
  hmacSha256: (key, data) => Uint8Array.from(createHmac("sha256", key).update(data).digest()),
};

export const GATEWAY = "gateway:5683" as PeerAddress;
export const DOMAIN = "iot.example.org";

export function key(n: number): Uint8Array {
  return Uint8Array.from({ length: 16 }, (_, i) => (n * 31 + i) & 0xff);
}

export interface Harness {
  time: FakeTime;
  net: LossyNetwork;
  gateway: GatewayService;
  gatewayEndpoint: CoapEndpoint;
  devices: DeviceDirectory;
  outbound: import("../../codec/index.js").XElement[];
  node(identity: string, options?: { key?: Uint8Array; address?: string; wake?: number }): NodeClient;
  settle(ms?: number, stepMs?: number): Promise<void>;
}

export function harness(names: string[], conditions: LinkConditions = {}, seed = 1): Harness {
  const time = new FakeTime();
  const net = new LossyNetwork(time, conditions, seed);
  const devices = new MemoryDevices(
    names.map((name, i) => ({ identity: name, key: key(i + 1), jid: `${name}@${DOMAIN}`, peers: [] })),
  );
  const transmission = { ackTimeoutMs: 500, maxRetransmit: 6 };
  const gatewayEndpoint = new CoapEndpoint({
    transport: net.transport(GATEWAY),
    clock: time,
    scheduler: time,
    random: fakeRandom(seed + 1000),
    transmission,
  });
  const outbound: import("../../codec/index.js").XElement[] = [];
  const gateway = new GatewayService({
    devices,
    domain: DOMAIN,
    mac: nodeMac,
    random: fakeRandom(seed + 2000),
    clock: time,
    outbound: (s) => outbound.push(s),
    push: (path, response) => gatewayEndpoint.notify(path, response),
  });
  gatewayEndpoint.handle(gateway.handle);
  let n = 0;
  return {
    time,
    net,
    gateway,
    gatewayEndpoint,
    devices,
    outbound,
    node(identity, options = {}) {
      n++;
      const endpoint = new CoapEndpoint({
        transport: net.transport(options.address ?? `${identity}:${n}`),
        clock: time,
        scheduler: time,
        random: fakeRandom(seed + n),
        transmission,
        exchange: { tokenLength: 1 },
      });
      const index = names.indexOf(identity);
      return new NodeClient({
        endpoint,
        gateway: GATEWAY,
        identity,
        key: options.key ?? key(index + 1),
        mac: nodeMac,
        retryDelayMs: 200,
        ...(options.wake !== undefined ? { wake: options.wake } : {}),
      });
    },
    async settle(ms = 5_000, stepMs = 20) {
      for (let t = 0; t < ms; t += stepMs) {
        time.advance(stepMs);
        await new Promise((r) => setImmediate(r));
      }
    },
  };
}
