/**
 * The gateway's listeners with their sockets on a socket thread (`cores: 2`, udp-thread.ts): the same
 * CoAP endpoint, and under coaps the same DTLS server, as src/node/endpoint.ts assembles on a socket of
 * this thread; only the DatagramTransport beneath them differs.
 */
import { CoapEndpoint, type Logger } from "../../src/core/index.js";
import { DtlsServer, type DtlsServerOptions } from "../../src/dtls/index.js";
import { cryptoRandom, nodeDtlsCrypto, systemClock, timerScheduler } from "../../src/node/index.js";
import { UdpThreadTransport } from "./udp-thread.js";

export interface ThreadedEndpoint {
  readonly endpoint: CoapEndpoint;
  readonly transport: UdpThreadTransport;
  close(): Promise<void>;
}

type Hosted<T> = Omit<T, "crypto" | "clock" | "scheduler" | "logger">;

/** Plain CoAP on HOST:PORT, the socket on its own thread. */
export async function createThreadedUdpEndpoint(options: {
  readonly host: string;
  readonly port: number;
  readonly logger?: Logger;
}): Promise<ThreadedEndpoint> {
  const transport = await UdpThreadTransport.bind(options.host, options.port, { ...options });
  const endpoint = new CoapEndpoint({
    transport,
    clock: systemClock,
    scheduler: timerScheduler(),
    random: cryptoRandom,
    ...(options.logger ? { logger: options.logger } : {}),
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
export async function createThreadedDtlsServerEndpoint(options: {
  readonly host: string;
  readonly port: number;
  readonly logger?: Logger;
  readonly dtls: Hosted<DtlsServerOptions>;
}): Promise<ThreadedEndpoint & { readonly dtls: DtlsServer }> {
  const transport = await UdpThreadTransport.bind(options.host, options.port, { ...options });
  const scheduler = timerScheduler();
  const dtls = new DtlsServer(transport, {
    ...options.dtls,
    crypto: nodeDtlsCrypto,
    clock: systemClock,
    scheduler,
    ...(options.logger ? { logger: options.logger } : {}),
  });
  const endpoint = new CoapEndpoint({
    transport: dtls,
    clock: systemClock,
    scheduler,
    random: cryptoRandom,
    ...(options.logger ? { logger: options.logger } : {}),
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
