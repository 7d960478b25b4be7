/**
 * The gateway's listeners with their sockets on a socket thread (`cores: 2`, udp-thread.ts): the same
 * CoAP endpoint, and under coaps the same DTLS server, as src/node/endpoint.ts assembles on a socket of
 * this thread; only the DatagramTransport beneath them differs.
 */
import { CoapEndpoint, type EndpointOptions, type Logger } from "../../src/core/index.js";
import { DtlsServer, type DtlsServerOptions } from "../../src/dtls/index.js";
import { cryptoRandom, nodeDtlsCrypto, systemClock, timerScheduler } from "../../src/node/index.js";
import { UdpThreadTransport } from "./udp-thread.js";

export interface ThreadedEndpoint {
  readonly endpoint: CoapEndpoint;
  readonly transport: UdpThreadTransport;
  close(): Promise<void>;
}

type Hosted<T> = Omit<T, "crypto" | "clock" | "scheduler" | "logger">;

/** As src/node/endpoint.ts's UdpEndpointOptions: the address, the socket's buffers, CoAP's options. */
export interface ThreadedEndpointOptions
  extends Omit<EndpointOptions, "transport" | "clock" | "scheduler" | "random" | "logger"> {
  readonly host: string;
  readonly port?: number;
  readonly logger?: Logger;
  readonly udp?: { readonly recvBufferSize?: number; readonly sendBufferSize?: number };
}

/** Plain CoAP on HOST:PORT, the socket on its own thread. */
export async function createThreadedUdpEndpoint(options: ThreadedEndpointOptions): Promise<ThreadedEndpoint> {
  const { host, port = 0, udp, logger, ...rest } = options;
  const transport = await UdpThreadTransport.bind(host, port, { ...udp, ...(logger ? { logger } : {}) });
  const endpoint = new CoapEndpoint({
    ...rest,
    transport,
    clock: systemClock,
    scheduler: timerScheduler(),
    random: cryptoRandom,
    ...(logger ? { logger } : {}),
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

/** CoAP under DTLS 1.2 PSK on HOST:PORT: the DTLS server on this thread, the socket on its own. */
export async function createThreadedDtlsServerEndpoint(
  options: ThreadedEndpointOptions & { readonly dtls: Hosted<DtlsServerOptions> },
): Promise<ThreadedEndpoint & { readonly dtls: DtlsServer }> {
  const { host, port = 0, udp, logger, dtls: dtlsOptions, ...rest } = options;
  const transport = await UdpThreadTransport.bind(host, port, { ...udp, ...(logger ? { logger } : {}) });
  const scheduler = timerScheduler();
  const dtls = new DtlsServer(transport, {
    ...dtlsOptions,
    crypto: nodeDtlsCrypto,
    clock: systemClock,
    scheduler,
    ...(logger ? { logger } : {}),
  });
  const endpoint = new CoapEndpoint({
    ...rest,
    transport: dtls,
    clock: systemClock,
    scheduler,
    random: cryptoRandom,
    ...(logger ? { logger } : {}),
  });
  return {
    endpoint,
    transport,
    dtls,
    close: async () => {
      endpoint.close();
      dtls.close();
      transport.close();
      await transport.whenClosed();
    },
  };
}
