/**
 * The gateway assembled, in one place: the session layer on a CoAP endpoint (`attachGateway`, for any
 * transport: real UDP, an in-memory lossy link, a network namespace), and the whole program from
 * resolved configuration (`startGateway`: the data-directory lock, the store, UDP, federation, metrics
 * and /healthz, the tick, and a clean stop). `cxmpp gateway`, the demo, the benchmarks and the test
 * kits all start gateways through here.
 */
import { readFileSync } from "node:fs";
import { DICTIONARY_V1, type XElement } from "../codec/index.js";
import { type CoapEndpoint, protocol } from "../src/core/index.js";
import type { DtlsServer } from "../src/dtls/index.js";
import { consoleLogger, cryptoRandom, nodeMac, wallClock } from "../src/node/index.js";
import type { GatewayConfig } from "./config.js";
import { type DataDirLock, lockDataDir } from "./data-dir-lock.js";
import { GATEWAY_DEFAULTS } from "./defaults.js";
import type { ComponentLink } from "./federation/component-link.js";
import type { OutboxPump } from "./federation/outbox-pump.js";
import { IotLayer } from "./iot/iot-layer.js";
import { openListeners } from "./listeners.js";
import type { GatewayMetrics, HealthReport, MetricsServer } from "./metrics.js";
import { GatewayService, type GatewayServiceOptions } from "./session/gateway-service.js";
import { openStore, type Store } from "./store/index.js";
import { packageVersion } from "./version.js";

export type AttachOptions = Omit<GatewayServiceOptions, "mac" | "random" | "push" | "observed" | "devices"> &
  Partial<Pick<GatewayServiceOptions, "mac" | "random">> &
  (
    | {
        /** The durable store: its devices and journal, and its failed batches make the gateway reload. */
        readonly store: Store;
        readonly devices?: undefined;
      }
    | { readonly store?: undefined; readonly devices: GatewayServiceOptions["devices"] }
  );

/**
 * The session layer answering on `endpoint`: downlink pushed as Observe notifications to nodes that
 * observe (RFC 7641), node:crypto's HMAC and randomness unless the caller gives its own.
 */
export function attachGateway(
  endpoints: CoapEndpoint | readonly CoapEndpoint[],
  options: AttachOptions,
): GatewayService {
  const { store, devices, ...rest } = options;
  const all: readonly CoapEndpoint[] = Array.isArray(endpoints)
    ? (endpoints as readonly CoapEndpoint[])
    : [endpoints as CoapEndpoint];
  const service = new GatewayService({
    mac: nodeMac,
    random: cryptoRandom,
    ...(store ? { devices: store.devices, journal: store.journal } : { devices: devices! }),
    ...rest,
    // A session's downlink path is observed on the one endpoint its node uses (coap or coaps).
    push: (path, response) => all.reduce((n, e) => n + e.notify(path, response), 0),
    observed: (path) => all.some((e) => e.observers.count(path) > 0),
  });
  // After a failed commit the store is the truth (its requests got 5.03): throw away what it changed.
  if (store) {
    const logger = options.logger;
    store.batch.onFailure = (error) => {
      logger?.log("error", "gateway.store_batch_failed", { error: error.message });
      service.reload();
    };
  }
  // Only a session's downlink is observable (docs/PROTOCOL.md §3.4): nothing else ever changes.
  // An address with a session is a node that proved its key: its block-wise transfers outlive strangers'.
  for (const endpoint of all) {
    endpoint.handle(service.handle, {
      observable: (path) => path.startsWith(`${protocol.Paths.DOWNLINK}/`),
      trusted: (peer) => service.hasSession(peer),
    });
  }
  return service;
}

export interface RunningGateway {
  /** The plain CoAP address it listens on (HOST:PORT); the coaps one when plain CoAP is off. */
  readonly address: string;
  /** The coaps (DTLS) address, when DTLS is on. */
  readonly secureAddress: string | undefined;
  /** The DTLS server, when DTLS is on (its stats and tables). */
  readonly dtls: DtlsServer | undefined;
  readonly config: GatewayConfig;
  /** Devices registered when it started. */
  readonly devices: number;
  readonly service: GatewayService;
  readonly store: Store;
  /** The Prometheus registry, when `metrics_listen` is set (undefined otherwise: nothing is loaded). */
  readonly metrics: GatewayMetrics | undefined;
  readonly metricsAddress: string | undefined;
  /** What /healthz answers. */
  health(): HealthReport;
  /** Stops listening, closes the federation link, commits and closes the store, releases the lock. */
  stop(): Promise<void>;
}

export interface StartHooks {
  /** Every stanza for another domain, after it is in the outbox (the benchmarks count deliveries). */
  readonly outbound?: (stanza: XElement) => void;
}

/** Starts the gateway from resolved settings; resolves once it listens. */
export async function startGateway(config: GatewayConfig, hooks: StartHooks = {}): Promise<RunningGateway> {
  const logger = consoleLogger(config.logLevel, { base: { component: "gateway" } });
  const cleanup: (() => void | Promise<void>)[] = [];
  const undo = async () => {
    for (const step of cleanup.reverse()) await step();
  };
  try {
    const lock: DataDirLock = lockDataDir(config.dataDir);
    cleanup.push(() => lock.release());
    const store = openStore(config.dataDir, { durability: config.durability });
    cleanup.push(() => store.close()); // commits what is pending first
    const listeners = await openListeners(config, store.devices, logger);
    cleanup.push(() => listeners.close());
    let pump: OutboxPump | undefined;
    // XMPP's IoT vocabulary (gateway/iot): last reported fields, readouts for sleeping nodes, pubsub.
    const iot = new IotLayer({
      domain: config.xmppDomain,
      clock: wallClock,
      mailboxTtlMs: config.mailboxTtlS * 1000,
      pubsubService: config.pubsubService,
      devices: store.devices,
      logger,
    });
    // What the gateway answers on its own JID for the network (federation/network-inbound.ts), it
    // answers for its nodes too; in local mode there is nobody there to answer.
    let toGateway: ((stanza: XElement) => void) | undefined;
    const service = attachGateway(listeners.endpoints, {
      tap: iot.tap,
      toGateway: (stanza) => {
        if (!toGateway) return false;
        toGateway(stanza);
        return true;
      },
      store,
      dtlsIdentity: listeners.dtlsIdentity,
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
      clock: wallClock, // stored and stamped instants: wall clock, not the process's monotonic one
      logger,
      outbound: (stanza) => {
        pump?.kick();
        hooks.outbound?.(stanza);
      },
    });
    iot.routeWith((stanza) => service.route(stanza));

    // Federation is loaded only when configured: local mode never loads the XMPP libraries.
    let link: ComponentLink | undefined;
    let fromFederation = 0;
    if (config.xmppService) {
      const federation = await import("./federation/index.js");
      const inbound = new federation.NetworkInbound(service, logger, config.asleepPolicy, iot);
      toGateway = (stanza) => inbound.handle(stanza);
      const l = new federation.ComponentLink(
        {
          services: config.xmppService,
          domain: config.xmppDomain,
          secret: config.xmppSecret ?? "",
          tls: {
            ...(config.xmppTlsCa !== undefined ? { ca: readFileSync(config.xmppTlsCa, "utf8") } : {}),
            ...(config.xmppTlsPin !== undefined ? { pins: config.xmppTlsPin } : {}),
          },
          logger,
        },
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
      link = l;
      pump = new federation.OutboxPump(store.journal, l, {
        domain: config.xmppDomain,
        clock: wallClock,
        logger,
      });
      const p = pump;
      cleanup.push(() => {
        p.flush(); // a clean stop: what the server confirmed need not go again after the restart
        return l.stop();
      });
      await l.start();
    }

    const started = Date.now();
    // Healthy while the store takes writes: acked means stored. Federation down is reported, not
    // unhealthy: stanzas wait in the durable outbox until it is back.
    const health = (): HealthReport => {
      const storeError = store.batch.lastError;
      return {
        ok: storeError === undefined,
        version: packageVersion(),
        uptime_s: Math.round((Date.now() - started) / 1000),
        store: storeError === undefined ? "ok" : `failing: ${storeError.message}`,
        federation: config.xmppService ? (link?.online ? "up" : "down") : "off",
        sessions: service.sessionCount,
        outbox: store.journal.outboxDepth,
      };
    };

    // Metrics are loaded only when served: prom-client and node:http cost memory that a border router
    // without a scraper should not pay (the idle budget, README).
    let metrics: GatewayMetrics | undefined;
    let metricsServer: MetricsServer | undefined;
    // One scan of the sessions per tick serves the three gauges that need it (not three per scrape);
    // without metrics nobody reads it, so it is not taken.
    let census = { awake: 0, asleep: 0, mailbox: 0 };
    if (config.metricsListen) {
      census = service.census();
      const m = await import("./metrics.js");
      const gauges = new m.GatewayMetrics();
      metrics = gauges;
      gauges.bind({
        sessions: () => service.sessionCount,
        awake: () => census.awake,
        asleep: () => census.asleep,
        mailboxDepth: () => census.mailbox,
        outboxDepth: () => store.journal.outboxDepth,
        federationUp: () => link?.online ?? false,
        usedNonces: () => service.usedNonces,
        coapTables: () => listeners.tables(),
        dtlsTables: () => listeners.secure?.dtls.tables() ?? { handshakes: 0, sessions: 0 },
        iotFieldsCached: () => iot.cache.size,
        iotReadoutsPending: () => iot.readouts.pending,
        sessionTimers: () => service.scheduled,
      });
      const server = await m.startMetricsServer(gauges, config.metricsListen, health);
      metricsServer = server;
      cleanup.push(() => server.close());
    }
    const sync = (gauges: GatewayMetrics) =>
      gauges.syncTotals({
        stanzasFromNodes: service.stats.stanzasIn + service.stats.telemetryIn,
        stanzasToNodes: service.stats.stanzasOut,
        stanzasFromFederation: fromFederation,
        stanzasToFederation: pump?.stats.sent ?? 0,
        bytesUp: service.stats.bytesIn,
        xmlUp: service.stats.xmlBytesIn,
        bytesDown: service.stats.bytesOut,
        xmlDown: service.stats.xmlBytesOut,
        retransmissions: listeners.endpoints.reduce((n, e) => n + e.messages.stats.retransmissions, 0),
        duplicateFrames: service.stats.duplicateFrames,
        badFrames: service.stats.badFrames,
        tableMisses: service.stats.tableMisses,
        mailboxFull: service.stats.mailboxFull,
        mailboxExpired: service.stats.mailboxExpired,
        mailboxCoalesced: service.stats.mailboxCoalesced,
        connects: service.stats.connects,
        refusedConnects: service.stats.refusedConnects,
        badAcks: service.stats.badAcks,
        replayedTelemetry: service.stats.replayedTelemetry,
        outOfOrderTelemetry: service.stats.outOfOrderTelemetry,
        gaps: service.stats.gaps,
        usedNoncesEvicted: service.stats.usedNoncesEvicted,
        federationFailovers: link?.failovers ?? 0,
        coap: listeners.tables(),
        dtls: listeners.secure?.dtls.stats,
        iot: iot.counters(),
      });
    const ticker = setInterval(() => {
      try {
        service.tick();
        iot.sweep(wallClock.now(), (identity) => {
          const device = store.devices.find(identity);
          return device !== undefined && !device.revoked;
        });
        if (metrics) {
          census = service.census();
          sync(metrics);
        }
      } catch (error) {
        logger.log("error", "gateway.tick_failed", { error: (error as Error).message });
      }
    }, GATEWAY_DEFAULTS.tickMs);
    ticker.unref();
    cleanup.push(() => clearInterval(ticker));

    const address = (listeners.plain ?? listeners.secure)!.transport.address;
    const secureAddress = listeners.secure?.transport.address;
    logger.log("info", "gateway.listening", {
      address,
      coap: listeners.plain ? listeners.plain.transport.address : "off",
      coaps: secureAddress ?? "off",
      domain: config.xmppDomain,
      dataDir: config.dataDir,
      store: store.path,
      durability: config.durability,
      cores: config.cores,
      socketThreads: listeners.socketThreads,
      devices: store.devices.size,
      sessions: service.sessionCount,
      dictionary: DICTIONARY_V1.id,
      metrics: metricsServer?.address,
      federation:
        config.xmppService?.join(", ") ?? "off (local mode: stanzas for other domains wait in the outbox)",
    });
    let stopped = false;
    return {
      address,
      secureAddress,
      dtls: listeners.secure?.dtls,
      config,
      devices: store.devices.size,
      service,
      store,
      metrics,
      metricsAddress: metricsServer?.address,
      health,
      async stop() {
        if (stopped) return;
        stopped = true;
        await undo();
        logger.log("info", "gateway.stopped", {});
      },
    };
  } catch (error) {
    await undo();
    throw error;
  }
}
