/**
 * The gateway's two CoAP listeners (docs/PROTOCOL.md §8): coaps, CoAP under DTLS 1.2 PSK on UDP 5684,
 * where the PSK identity is the device's; and plain coap on 5683 for trusted links (config.ts allows
 * it beyond loopback only with `allow_plain_coap`). Both feed one session layer.
 */
import type { CoapEndpoint, CoapTables, Logger, PeerAddress } from "../src/core/index.js";
import type { DtlsServer } from "../src/dtls/index.js";
import { createDtlsServerEndpoint, createUdpEndpoint, type UdpEndpoint } from "../src/node/index.js";
import { createThreadedDtlsServerEndpoint, createThreadedUdpEndpoint } from "./cluster/endpoints.js";
import { formatHostPort, type GatewayConfig, type HostPort } from "./config.js";
import type { DeviceDirectory } from "./devices.js";

/** One listener: its CoAP endpoint on a socket of this thread, or of a socket thread (`cores: 2`). */
export type Listener = Pick<UdpEndpoint, "endpoint" | "close"> & {
  readonly transport: { readonly address: string };
};

export interface Listeners {
  readonly plain: Listener | undefined;
  readonly secure: (Listener & { readonly dtls: DtlsServer }) | undefined;
  readonly endpoints: readonly CoapEndpoint[];
  /** The DTLS identity behind a `coaps://` peer (GatewayServiceOptions.dtlsIdentity). */
  dtlsIdentity(peer: PeerAddress): string | undefined;
  /** The ids of the threads that own the sockets (`cores: 2`); empty when they are on this thread. */
  readonly socketThreads: readonly number[];
  /** Both endpoints' CoAP tables, added up (metrics). */
  tables(): CoapTables;
  close(): Promise<void>;
}

async function listen<T>(where: HostPort, what: string, open: () => Promise<T>): Promise<T> {
  try {
    return await open();
  } catch (error) {
    throw new Error(`cannot listen for ${what} on ${formatHostPort(where)}: ${(error as Error).message}`);
  }
}

export async function openListeners(
  config: GatewayConfig,
  devices: DeviceDirectory,
  logger: Logger,
): Promise<Listeners> {
  // A device's key while it may connect; unknown and revoked identities get none (refused at Finished).
  const psk = (identity: string) => {
    const d = devices.find(identity);
    return d && !d.revoked ? d.key : undefined;
  };
  // `cores: 2`: each socket on a thread of its own (docs/DEPLOY.md §10); the rest stays on this one.
  const threaded = config.cores === 2;
  const secureAt = config.dtlsListen;
  const secure = secureAt
    ? await listen<Listener & { readonly dtls: DtlsServer }>(secureAt, "coaps", () =>
        (threaded ? createThreadedDtlsServerEndpoint : createDtlsServerEndpoint)({
          host: secureAt.host,
          port: secureAt.port,
          logger,
          dtls: {
            psk,
            authorize: (identity) => psk(identity) !== undefined,
            limits: {
              maxHandshakes: config.dtlsMaxHandshakes,
              maxSessions: config.dtlsMaxSessions,
              sessionIdleMs: config.dtlsSessionIdleS * 1000,
            },
          },
        }),
      )
    : undefined;
  let plain: Listener | undefined;
  try {
    const plainAt = config.listen;
    plain = plainAt
      ? await listen<Listener>(plainAt, "coap", () =>
          (threaded ? createThreadedUdpEndpoint : createUdpEndpoint)({
            host: plainAt.host,
            port: plainAt.port,
            logger,
          }),
        )
      : undefined;
  } catch (error) {
    await secure?.close();
    throw error;
  }
  const endpoints = [plain?.endpoint, secure?.endpoint].filter((e): e is CoapEndpoint => e !== undefined);
  const socketThreads = [plain?.transport, secure?.transport].flatMap((t) =>
    t && "threadId" in t ? [t.threadId as number] : [],
  );
  return {
    plain,
    secure,
    endpoints,
    socketThreads,
    dtlsIdentity: (peer) => secure?.dtls.identityOf(peer),
    tables: () => addTables(endpoints.map((e) => e.tables())),
    close: async () => {
      await plain?.close();
      await secure?.close();
    },
  };
}

function addTables(all: readonly CoapTables[]): CoapTables {
  const [first, ...rest] = all;
  if (!first) throw new Error("no CoAP endpoint");
  return rest.reduce(
    (a, b) => ({
      dedup: a.dedup + b.dedup,
      dedupBytes: a.dedupBytes + b.dedupBytes,
      assemblies: a.assemblies + b.assemblies,
      assemblyBytes: a.assemblyBytes + b.assemblyBytes,
      representations: a.representations + b.representations,
      representationBytes: a.representationBytes + b.representationBytes,
      observers: a.observers + b.observers,
      evicted: {
        dedup: a.evicted.dedup + b.evicted.dedup,
        assemblies: a.evicted.assemblies + b.evicted.assemblies,
        representations: a.evicted.representations + b.evicted.representations,
        observers: a.evicted.observers + b.evicted.observers,
      },
      observersReplaced: a.observersReplaced + b.observersReplaced,
      representationsNotKept: a.representationsNotKept + b.representationsNotKept,
      errorPayloadsCut: a.errorPayloadsCut + b.errorPayloadsCut,
      limits: a.limits,
    }),
    first,
  );
}
