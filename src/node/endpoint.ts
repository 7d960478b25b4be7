/**
 * A CoAP endpoint on a real UDP socket with the Node.js clock, timers and randomness: what a gateway
 * or a simulated node on Node.js starts with.
 */
import { CoapEndpoint, type EndpointOptions } from "../core/coap/endpoint.js";
import type { Logger } from "../core/interfaces.js";
import { cryptoRandom, systemClock, timerScheduler } from "./runtime.js";
import { UdpTransport, type UdpTransportOptions } from "./udp-transport.js";

export interface UdpEndpointOptions
  extends Omit<EndpointOptions, "transport" | "clock" | "scheduler" | "random"> {
  readonly host: string;
  /** 0 (default) picks an ephemeral port. */
  readonly port?: number;
  readonly logger?: Logger;
  readonly udp?: Omit<UdpTransportOptions, "logger">;
  /** Overrides for tests (seeded randomness, a different scheduler). */
  readonly clock?: EndpointOptions["clock"];
  readonly scheduler?: EndpointOptions["scheduler"];
  readonly random?: EndpointOptions["random"];
}

export interface UdpEndpoint {
  readonly endpoint: CoapEndpoint;
  readonly transport: UdpTransport;
  /** Closes the endpoint (failing open exchanges with EndpointClosed) and its socket. */
  close(): Promise<void>;
}

export async function createUdpEndpoint(options: UdpEndpointOptions): Promise<UdpEndpoint> {
  const { host, port = 0, udp, ...rest } = options;
  const transport = await UdpTransport.bind(host, port, { ...udp, logger: options.logger });
  const endpoint = new CoapEndpoint({
    ...rest,
    transport,
    clock: options.clock ?? systemClock,
    scheduler: options.scheduler ?? timerScheduler({ unref: udp?.unref }),
    random: options.random ?? cryptoRandom,
  });
  return {
    endpoint,
    transport,
    close: async () => {
      endpoint.close();
      transport.close();
      await transport.whenClosed();
    },
  };
}
