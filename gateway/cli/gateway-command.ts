/**
 * `cxmpp gateway`: the border-router program on UDP, until SIGTERM/SIGINT. Settings from the config
 * file, CXMPP_<KEY> and flags (gateway/cli/settings.ts); state in the store of the data directory.
 */
import { DICTIONARY_V1 } from "../../codec/index.js";
import type { Response } from "../../src/core/index.js";
import { consoleLogger, createUdpEndpoint, cryptoRandom, nodeMac, wallClock } from "../../src/node/index.js";
import { ConfigError, formatHostPort, type GatewayConfig } from "../config.js";
import { ComponentAuthError, ComponentLink } from "../federation/component-link.js";
import { NetworkInbound } from "../federation/network-inbound.js";
import { OutboxPump } from "../federation/outbox-pump.js";
import { GatewayMetrics, type MetricsServer, startMetricsServer } from "../metrics.js";
import { GatewayService } from "../session/gateway-service.js";
import { openStore, type Store, StoreError } from "../store/index.js";
import { settings } from "./settings.js";

export interface GatewayCommandOptions {
  readonly config?: string;
  readonly listen?: string;
  readonly domain?: string;
  readonly dataDir?: string;
  readonly logLevel?: string;
  readonly metricsListen?: string;
}

export interface RunningGateway {
  readonly address: string;
  readonly config: GatewayConfig;
  /** Devices registered when it started. */
  readonly devices: number;
  readonly service: GatewayService;
  readonly store: Store;
  readonly metrics: GatewayMetrics;
  readonly metricsAddress: string | undefined;
  stop(): Promise<void>;
}

/** How often mailboxes expire, sleeping nodes are noticed and metrics catch up. */
const TICK_MS = 1000;

/** Starts the gateway from resolved settings; resolves once it listens. */
export async function startGateway(config: GatewayConfig): Promise<RunningGateway> {
  const logger = consoleLogger(config.logLevel, { base: { component: "gateway" } });
  const store = openStore(config.dataDir, { durability: config.durability });
  let udp: Awaited<ReturnType<typeof createUdpEndpoint>>;
  try {
    udp = await createUdpEndpoint({ host: config.listen.host, port: config.listen.port, logger });
  } catch (error) {
    store.close();
    throw new Error(`cannot listen on ${formatHostPort(config.listen)}: ${(error as Error).message}`);
  }
  let push: ((path: string, response: Response) => number) | undefined;
  let pump: OutboxPump | undefined;
  let link: ComponentLink | undefined;
  let fromFederation = 0;
  const service = new GatewayService({
    push: (path, response) => push?.(path, response) ?? 0,
    observed: (path) => udp.endpoint.observers.count(path) > 0,
    devices: store.devices,
    journal: store.journal,
    // Nodes are NAME@<xmpp_domain> (which defaults to `domain`): the component's domain when federating.
    domain: config.xmppDomain,
    resource: config.resource,
    maxDownlinkBytes: config.maxDownlinkBytes,
    mailbox: {
      maxStanzas: config.mailboxMaxStanzas,
      maxBytes: config.mailboxMaxBytes,
      ttlMs: config.mailboxTtlS * 1000,
    },
    sessionExpiryMs: config.sessionExpiryS * 1000,
    mac: nodeMac,
    random: cryptoRandom,
    clock: wallClock, // stored and stamped instants: wall clock, not the process's monotonic one
    logger,
    outbound: () => pump?.kick(),
  });
  store.batch.onFailure = (error) => {
    logger.log("error", "gateway.store_batch_failed", { error: error.message });
    service.reload();
  };
  udp.endpoint.handle(service.handle);
  push = (path, response) => udp.endpoint.notify(path, response);

  if (config.xmppService) {
    const inbound = new NetworkInbound(service, logger, config.asleepPolicy);
    link = new ComponentLink(
      { service: config.xmppService, domain: config.xmppDomain, secret: config.xmppSecret ?? "", logger },
      {
        stanza: (stanza) => {
          if (pump?.consume(stanza)) return;
          fromFederation++;
          inbound.handle(stanza);
        },
        online: () => {
          pump?.online();
          service.reannounce();
        },
        offline: () => pump?.offline(),
      },
    );
    pump = new OutboxPump(store.journal, link, { domain: config.xmppDomain, clock: wallClock, logger });
    try {
      await link.start();
    } catch (error) {
      await link.stop();
      await udp.close();
      store.close();
      throw error;
    }
  }

  // One scan of the sessions per tick serves the three gauges that need it (not three per scrape).
  let census = service.census();
  const metrics = new GatewayMetrics();
  metrics.bind({
    sessions: () => service.sessions.length,
    awake: () => census.awake,
    asleep: () => census.asleep,
    mailboxDepth: () => census.mailbox,
    outboxDepth: () => store.journal.outboxDepth,
    federationUp: () => link?.online ?? false,
  });
  const sync = () =>
    metrics.syncTotals({
      stanzasFromNodes: service.stats.stanzasIn + service.stats.telemetryIn,
      stanzasToNodes: service.stats.stanzasOut,
      stanzasFromFederation: fromFederation,
      stanzasToFederation: pump?.stats.sent ?? 0,
      bytesUp: service.stats.bytesIn,
      xmlUp: service.stats.xmlBytesIn,
      bytesDown: service.stats.bytesOut,
      xmlDown: service.stats.xmlBytesOut,
      retransmissions: udp.endpoint.messages.stats.retransmissions,
      duplicateFrames: service.stats.duplicateFrames,
      badFrames: service.stats.badFrames,
      tableMisses: service.stats.tableMisses,
      mailboxFull: service.stats.mailboxFull,
      mailboxExpired: service.stats.mailboxExpired,
      mailboxCoalesced: service.stats.mailboxCoalesced,
      connects: service.stats.connects,
      refusedConnects: service.stats.refusedConnects,
    });
  let metricsServer: MetricsServer | undefined;
  if (config.metricsListen) {
    try {
      metricsServer = await startMetricsServer(metrics, config.metricsListen);
    } catch (error) {
      await udp.close();
      store.close();
      throw error;
    }
  }
  const ticker = setInterval(() => {
    try {
      service.tick();
      census = service.census();
      sync();
    } catch (error) {
      logger.log("error", "gateway.tick_failed", { error: (error as Error).message });
    }
  }, TICK_MS);
  ticker.unref();

  const address = udp.transport.address;
  logger.log("info", "gateway.listening", {
    address,
    domain: config.xmppDomain,
    dataDir: config.dataDir,
    store: store.path,
    durability: config.durability,
    devices: store.devices.size,
    sessions: service.sessions.length,
    dictionary: DICTIONARY_V1.id,
    metrics: metricsServer?.address,
    federation: config.xmppService ?? "off (local mode: stanzas for other domains wait in the outbox)",
  });
  let stopped = false;
  return {
    address,
    config,
    devices: store.devices.size,
    service,
    store,
    metrics,
    metricsAddress: metricsServer?.address,
    async stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(ticker);
      await link?.stop();
      await udp.close();
      await metricsServer?.close();
      store.close(); // commits what is pending first
      logger.log("info", "gateway.stopped", {});
    },
  };
}

export async function runGateway(opts: GatewayCommandOptions): Promise<number> {
  let running: RunningGateway;
  try {
    running = await startGateway(settings({ ...opts }));
  } catch (error) {
    const known =
      error instanceof ConfigError || error instanceof StoreError || error instanceof ComponentAuthError;
    process.stderr.write(`cxmpp gateway: ${(error as Error).message}\n`);
    if (!known && !(error instanceof Error)) throw error;
    return 2;
  }
  process.stdout.write(`cxmpp gateway listening on coap://${running.address} (Ctrl-C to stop)\n`);
  if (running.metricsAddress) process.stdout.write(`metrics on http://${running.metricsAddress}/metrics\n`);
  if (running.devices === 0) {
    process.stdout.write(
      "no devices yet: register one with `cxmpp provision add NAME --out NAME.cbor`, then `cxmpp node run --device NAME.cbor`\n",
    );
  }
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  await running.stop();
  process.stdout.write("cxmpp gateway stopped\n");
  return 0;
}
