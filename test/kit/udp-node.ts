/**
 * A node on real UDP with a tap on its transport (every datagram it sends and receives: what an attacker
 * on the link captures), and an in-process gateway with devices `sensor1` and `actuator1`: the set-up of
 * the tests that look at what goes over the wire.
 */
import type { XElement } from "../../codec/index.js";
import { CoapEndpoint, type DatagramTransport, NodeClient, type PeerAddress } from "../../src/core/index.js";
import { cryptoRandom, nodeMac, systemClock, timerScheduler, UdpTransport } from "../../src/node/index.js";
import { inProcessGateway, type TestGateway } from "./in-process-gateway.js";
import { key } from "./session-harness.js";
import { bodyOf } from "./stanzas.js";
import { Tap } from "./tap.js";

export const DOMAIN = "iot.localhost";

export interface TappedNode {
  readonly client: NodeClient;
  readonly endpoint: CoapEndpoint;
  /** Every datagram the node sends and receives. */
  readonly tap: Tap;
  /** Bodies of the stanzas it received. */
  readonly inbox: string[];
}

/** A CoAP endpoint on `transport` with the node side's settings (fast retransmission on loopback). */
export function udpEndpoint(transport: DatagramTransport, cleanups: Array<() => unknown>): CoapEndpoint {
  const endpoint = new CoapEndpoint({
    transport,
    clock: systemClock,
    scheduler: timerScheduler(),
    random: cryptoRandom,
    transmission: { ackTimeoutMs: 100, maxRetransmit: 4 },
    exchange: { tokenLength: 1 }, // as `cxmpp node` and the benchmarks
  });
  cleanups.push(() => endpoint.close());
  return endpoint;
}

/** Node `identity` with test key `n`, talking to `gateway`; `cleanups` gets its endpoint's close. */
export async function tappedNode(
  identity: string,
  n: number,
  gateway: string,
  cleanups: Array<() => unknown>,
): Promise<TappedNode> {
  const tap = new Tap(await UdpTransport.bind("127.0.0.1", 0));
  const endpoint = udpEndpoint(tap, cleanups);
  const client = new NodeClient({
    endpoint,
    gateway: gateway as PeerAddress,
    identity,
    key: key(n),
    mac: nodeMac,
    retryDelayMs: 100,
  });
  const inbox: string[] = [];
  client.onStanza((s) => inbox.push(bodyOf(s)));
  return { client, endpoint, tap, inbox };
}

/** A gateway on `dir` (plain CoAP on `port`, 0 = free) holding sensor1 (key 1) and actuator1 (key 2). */
export async function twoDeviceGateway(
  dir: string,
  port = 0,
  outbound: XElement[] = [],
): Promise<TestGateway> {
  const gw = await inProcessGateway(dir, { port, outbound });
  for (const [i, name] of ["sensor1", "actuator1"].entries()) {
    if (!gw.store.devices.find(name))
      gw.store.devices.add({ identity: name, key: key(i + 1), jid: `${name}@${DOMAIN}`, peers: [] });
  }
  return gw;
}
