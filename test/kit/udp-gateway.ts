/**
 * A GatewayService answering on a real UDP endpoint, wired as `cxmpp gateway` wires it (downlink pushes
 * as Observe notifications, `observed` from the endpoint's observers), with the node runtime's MAC and
 * randomness unless a test gives its own. The clock is the caller's choice: tests differ on it.
 */
import { GatewayService, type GatewayServiceOptions } from "../../gateway/session/gateway-service.js";
import { cryptoRandom, nodeMac, type UdpEndpoint } from "../../src/node/index.js";

export type UdpGatewayOptions = Omit<GatewayServiceOptions, "mac" | "random" | "push" | "observed"> &
  Partial<Pick<GatewayServiceOptions, "mac" | "random">>;

export function gatewayOnUdp(udp: UdpEndpoint, options: UdpGatewayOptions): GatewayService {
  const service = new GatewayService({
    mac: nodeMac,
    random: cryptoRandom,
    ...options,
    push: (path, response) => udp.endpoint.notify(path, response),
    observed: (path) => udp.endpoint.observers.count(path) > 0,
  });
  udp.endpoint.handle(service.handle);
  return service;
}
