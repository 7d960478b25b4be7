/**
 * A CoAP endpoint on a real UDP socket with the Node.js clock, timers and randomness: what a gateway
 * or a simulated node on Node.js starts with; plain (coap) or under DTLS (coaps, src/dtls).
 */
import { CoapEndpoint, type EndpointOptions } from "../core/coap/endpoint.js";
import type { DatagramTransport, Logger } from "../core/interfaces.js";
import { DtlsClient, type DtlsClientOptions, DtlsServer, type DtlsServerOptions } from "../dtls/index.js";
import { nodeDtlsCrypto } from "./dtls-crypto.js";
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
  /** The UDP socket (beneath DTLS, when there is DTLS). */
  readonly transport: UdpTransport;
  /** Closes the endpoint (failing open exchanges with EndpointClosed) and its socket. */
  close(): Promise<void>;
}

/** What the Node.js host gives DTLS beside its options: node:crypto, the clock, timers. */
type Hosted<T> = Omit<T, "crypto" | "clock" | "scheduler" | "logger">;

async function assemble<T extends DatagramTransport>(
  options: UdpEndpointOptions,
  wrap: (udp: UdpTransport, host: Pick<DtlsServerOptions, "crypto" | "clock" | "scheduler" | "logger">) => T,
): Promise<{ endpoint: CoapEndpoint; transport: UdpTransport; upper: T; close(): Promise<void> }> {
  const { host, port = 0, udp, ...rest } = options;
  const transport = await UdpTransport.bind(host, port, { ...udp, logger: options.logger });
  const clock = options.clock ?? systemClock;
  const scheduler = options.scheduler ?? timerScheduler({ unref: udp?.unref });
  const upper = wrap(transport, {
    crypto: nodeDtlsCrypto,
    clock,
    scheduler,
    ...(options.logger ? { logger: options.logger } : {}),
  });
  const endpoint = new CoapEndpoint({
    ...rest,
    transport: upper,
    clock,
    scheduler,
    random: options.random ?? cryptoRandom,
  });
  return {
    endpoint,
    transport,
    upper,
    close: async () => {
      endpoint.close();
      upper.close();
      transport.close();
      await transport.whenClosed();
    },
  };
}

export async function createUdpEndpoint(options: UdpEndpointOptions): Promise<UdpEndpoint> {
  const { endpoint, transport, close } = await assemble(options, (udp) => udp);
  return { endpoint, transport, close };
}

/** A node's endpoint under DTLS to one gateway: the client handshakes on connect or first send. */
export async function createDtlsClientEndpoint(
  options: UdpEndpointOptions & { readonly dtls: Hosted<DtlsClientOptions> },
): Promise<UdpEndpoint & { readonly dtls: DtlsClient }> {
  const { endpoint, transport, upper, close } = await assemble(
    options,
    (udp, host) => new DtlsClient(udp, { ...host, ...options.dtls }),
  );
  return { endpoint, transport, dtls: upper, close };
}

/** A gateway's coaps endpoint: the DTLS server between the socket and CoAP. */
export async function createDtlsServerEndpoint(
  options: UdpEndpointOptions & { readonly dtls: Hosted<DtlsServerOptions> },
): Promise<UdpEndpoint & { readonly dtls: DtlsServer }> {
  const { endpoint, transport, upper, close } = await assemble(
    options,
    (udp, host) => new DtlsServer(udp, { ...host, ...options.dtls }),
  );
  return { endpoint, transport, dtls: upper, close };
}
