/**
 * Prometheus metrics for the gateway, on a Registry of their own (not prom-client's global default, so
 * tests and embedders can run several gateways in one process without name clashes).
 *
 * Two kinds of numbers, two ways in:
 * - Events (stanzas, bytes, retransmissions, drops, connects) are counters the gateway bumps through
 *   the small methods of GatewayMetrics, right where the event happens.
 * - States (sessions, awake/asleep nodes, queue depths, federation link) are gauges read from a
 *   MetricsSource at scrape time, so they can never drift from the truth the gateway already holds.
 * - The CoAP stack's tables (cxmpp_coap_*): their sizes are gauges read from the source's
 *   `coapTables()` at scrape time, their evictions counters brought up by syncTotals (docs/PROTOCOL.md §1).
 *
 * `startMetricsServer` serves the registry as `GET /metrics` over node:http, and the gateway's health
 * as `GET /healthz` for service managers, load balancers and container probes.
 */
import { createServer, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Counter, collectDefaultMetrics, Gauge, Registry } from "prom-client";
import type { CoapLimits, CoapTables } from "../src/core/index.js";
import { formatHostPort, type HostPort, parseHostPort } from "./config.js";

/** What the gateway knows at any moment; called on every scrape, so keep each call cheap. */
export interface MetricsSource {
  /** Sessions held (awake or asleep). */
  sessions(): number;
  awake(): number;
  asleep(): number;
  /** Stanzas queued in all mailboxes together. */
  mailboxDepth(): number;
  /** Stanzas waiting in the durable outbox for the XMPP server. */
  outboxDepth(): number;
  federationUp(): boolean;
  /** The CoAP endpoint's tables (`CoapEndpoint.tables()`); without it the cxmpp_coap_* gauges read 0. */
  coapTables?(): CoapTableCounts;
  /** Connect nonces remembered as used (the only connect state; bounded, docs/PROTOCOL.md §7). */
  usedNonces?(): number;
  /** The DTLS server's tables (`DtlsServer.tables()`), when coaps listens. */
  dtlsTables?(): { readonly handshakes: number; readonly sessions: number };
  /** XEP-0323 fields held in the gateway's cache of last reported values (gateway/iot). */
  iotFieldsCached?(): number;
  /** Readouts queued for sleeping nodes, remembered until the node answers (gateway/iot). */
  iotReadoutsPending?(): number;
  /** The session timers (GatewayService.scheduled): sessions with a deadline, and changed since the tick. */
  sessionTimers?(): { readonly deadlines: number; readonly recheck: number };
}

/** The IoT layer's cumulative counters (gateway/iot). */
export interface IotCounters {
  readonly fieldsEvicted: number;
  readonly fieldsTooLarge: number;
  readonly fieldsStale: number;
  readonly readoutsCached: number;
  readonly readoutsQueued: number;
  readonly readoutsForgotten: number;
  readonly pubsubPublished: number;
  readonly pubsubOk: number;
  readonly pubsubErrors: number;
}

/** The DTLS server's cumulative counters (`DtlsServer.stats`). */
export interface DtlsCounters {
  readonly helloVerifyRequests: number;
  readonly handshakesCompleted: number;
  readonly handshakesFailed: number;
  readonly handshakesRefused: number;
  readonly handshakesTimedOut: number;
  readonly sessionsEvicted: number;
  readonly sessionsExpired: number;
  readonly badRecords: number;
}

/**
 * The CoAP tables unauthenticated peers can fill, as `CoapEndpoint.tables()` shows them (only the caps
 * that metrics show are needed from `limits`).
 */
export type CoapTableCounts = Omit<CoapTables, "limits"> & {
  readonly limits: Pick<
    CoapLimits,
    "maxDedupEntries" | "maxAssemblies" | "maxRepresentations" | "maxObservers"
  >;
};

/** The CoAP stack's cumulative counters (a part of `CoapEndpoint.tables()`). */
export type CoapCounters = Pick<
  CoapTables,
  "evicted" | "observersReplaced" | "representationsNotKept" | "errorPayloadsCut"
>;

/** One stanza's size as a cxmpp frame (the CoAP payload) and as XML (UTF-8, no whitespace between tags). */
export interface FrameSizes {
  readonly onAir: number;
  readonly asXml: number;
}

export type MailboxDropReason = "full" | "ttl" | "coalesced";

/** Cumulative counts kept by the gateway, for syncTotals. */
export interface Totals {
  readonly stanzasFromNodes: number;
  readonly stanzasToNodes: number;
  readonly stanzasFromFederation: number;
  readonly stanzasToFederation: number;
  readonly bytesUp: number;
  readonly xmlUp: number;
  readonly bytesDown: number;
  readonly xmlDown: number;
  readonly retransmissions: number;
  readonly duplicateFrames: number;
  readonly badFrames: number;
  readonly tableMisses: number;
  readonly mailboxFull: number;
  readonly mailboxExpired: number;
  readonly mailboxCoalesced: number;
  readonly connects: number;
  readonly refusedConnects: number;
  /** Uplinks refused for an ack beyond the frames sent. */
  readonly badAcks?: number;
  /** NON readings dropped as replays (telemetry number already routed). */
  readonly replayedTelemetry?: number;
  /** NON readings dropped for arriving after a newer reading or stanza of the node. */
  readonly outOfOrderTelemetry?: number;
  /** Uplink frames beyond h + 1, not taken. */
  readonly gaps?: number;
  /** Used connect nonces forgotten early (table full). */
  readonly usedNoncesEvicted?: number;
  /** Times the XMPP server link came up on another server than before (xmpp_service lists several). */
  readonly federationFailovers?: number;
  /** The CoAP endpoint's counters; absent, the cxmpp_coap_* counters stay as they are. */
  readonly coap?: CoapCounters;
  /** The DTLS server's counters, when coaps listens. */
  readonly dtls?: DtlsCounters;
  /** The IoT layer's counters; absent, the cxmpp_iot_* counters stay as they are. */
  readonly iot?: IotCounters;
}

/** Totals before anything happened: where syncTotals starts, and a base for callers to spread over. */
export const ZERO_TOTALS: Totals = Object.freeze({
  stanzasFromNodes: 0,
  stanzasToNodes: 0,
  stanzasFromFederation: 0,
  stanzasToFederation: 0,
  bytesUp: 0,
  xmlUp: 0,
  bytesDown: 0,
  xmlDown: 0,
  retransmissions: 0,
  duplicateFrames: 0,
  badFrames: 0,
  tableMisses: 0,
  mailboxFull: 0,
  mailboxExpired: 0,
  mailboxCoalesced: 0,
  connects: 0,
  refusedConnects: 0,
});

export interface GatewayMetricsOptions {
  /** Can also be bound later with bind(); until then the state gauges read 0. */
  readonly source?: MetricsSource;
  /** Node.js process metrics (process_*, nodejs_*: CPU, memory, event loop lag); default true. */
  readonly processMetrics?: boolean;
}

const PATHS = ["node", "federation"] as const;
const DIRECTIONS = ["uplink", "downlink"] as const;
const DROP_REASONS: readonly MailboxDropReason[] = ["full", "ttl", "coalesced"];
/** The `table` label of the cxmpp_coap_* metrics. */
const COAP_TABLES = ["dedup", "block1_assemblies", "block2_representations", "observers"] as const;
type CoapTable = (typeof COAP_TABLES)[number];
const NO_COAP_TABLES: CoapTableCounts = {
  dedup: 0,
  dedupBytes: 0,
  assemblies: 0,
  assemblyBytes: 0,
  representations: 0,
  representationBytes: 0,
  observers: 0,
  limits: { maxDedupEntries: 0, maxAssemblies: 0, maxRepresentations: 0, maxObservers: 0 },
  evicted: { dedup: 0, assemblies: 0, representations: 0, observers: 0 },
  observersReplaced: 0,
  representationsNotKept: 0,
  errorPayloadsCut: 0,
};

export class GatewayMetrics {
  readonly registry = new Registry();
  private source: MetricsSource | undefined;

  private readonly stanzasIn = this.counter("cxmpp_stanzas_in_total", "stanzas received", ["path"], PATHS);
  private readonly stanzasOut = this.counter("cxmpp_stanzas_out_total", "stanzas sent", ["path"], PATHS);
  private readonly bytesOnAir = this.counter(
    "cxmpp_bytes_on_air_total",
    "cxmpp frame bytes of the stanzas to and from nodes, once per stanza (no CoAP headers, no retransmissions)",
    ["direction"],
    DIRECTIONS,
  );
  private readonly bytesAsXml = this.counter(
    "cxmpp_bytes_as_xml_total",
    "the same stanzas' size as XML (exact for a gateway's first 256 stanzas each way, then estimated from every 16th)",
    ["direction"],
    DIRECTIONS,
  );
  private readonly bytesSaved = this.counter(
    "cxmpp_codec_bytes_saved_total",
    "bytes the codec saved over XML (never below 0; the XML side estimated as in cxmpp_bytes_as_xml_total)",
    ["direction"],
    DIRECTIONS,
  );
  private readonly retransmissions = this.counter(
    "cxmpp_retransmissions_total",
    "confirmable CoAP messages sent again for want of an ACK",
  );
  private readonly duplicates = this.counter(
    "cxmpp_duplicate_frames_total",
    "frames received again and answered from the dedup cache",
  );
  private readonly badFrames = this.counter(
    "cxmpp_bad_frames_total",
    "frames that failed to decode or were refused",
  );
  private readonly tableMisses = this.counter(
    "cxmpp_table_misses_total",
    "frames referring to a session string table entry the receiver did not hold",
  );
  private readonly mailboxDrops = this.counter(
    "cxmpp_mailbox_dropped_total",
    "stanzas dropped from mailboxes: full, expired (ttl) or replaced by a newer one (coalesced)",
    ["reason"],
    DROP_REASONS,
  );
  private readonly connects = this.counter("cxmpp_connects_total", "session connects accepted");
  private readonly uplinkRejected = this.counter(
    "cxmpp_uplink_rejected_total",
    "uplinks or frames not taken: an ack beyond the frames sent (bad_ack), a replayed telemetry number (telemetry_replay), a reading that arrived after a newer one was routed (out_of_order), a frame beyond h + 1 (gap)",
    ["reason"],
    ["bad_ack", "telemetry_replay", "out_of_order", "gap"],
  );
  private readonly noncesEvicted = this.counter(
    "cxmpp_connect_nonces_evicted_total",
    "used connect nonces forgotten before their lifetime because the table was full",
  );
  private readonly refused = this.counter("cxmpp_connects_refused_total", "session connects refused");
  private readonly failovers = this.counter(
    "cxmpp_federation_failovers_total",
    "times the XMPP server link came up on another of the xmpp_service servers than the one before",
  );
  private readonly coapEvictions = this.counter(
    "cxmpp_coap_evictions_total",
    "CoAP table entries dropped because the table (or the peer's share of it) was full",
    ["table"],
    COAP_TABLES,
  );
  private readonly coapObserversReplaced = this.counter(
    "cxmpp_coap_observers_replaced_total",
    "observe registrations replaced by a newer one of the same peer for the same resource",
  );
  private readonly coapNotKept = this.counter(
    "cxmpp_coap_block2_not_kept_total",
    "responses larger than the Block2 byte cap, served block by block without a copy",
  );
  private readonly coapErrorsCut = this.counter(
    "cxmpp_coap_error_payloads_cut_total",
    "error responses whose diagnostic payload was cut to the CoAP limit",
  );

  private readonly dtlsHandshakes = this.counter(
    "cxmpp_dtls_handshakes_total",
    "DTLS handshakes after a valid cookie: completed, failed (wrong key, unknown or revoked identity, protocol), refused (limits), timed_out",
    ["result"],
    ["completed", "failed", "refused", "timed_out"],
  );
  private readonly dtlsHelloVerify = this.counter(
    "cxmpp_dtls_hello_verify_requests_total",
    "ClientHellos answered with a cookie and no state (RFC 6347 §4.2.1)",
  );
  private readonly dtlsClosed = this.counter(
    "cxmpp_dtls_sessions_dropped_total",
    "DTLS sessions dropped by the server: table full (evicted) or idle (expired)",
    ["reason"],
    ["evicted", "expired"],
  );
  private readonly dtlsBadRecords = this.counter(
    "cxmpp_dtls_records_dropped_total",
    "DTLS records dropped: malformed, not authentic, replayed, or for no session",
  );

  private readonly iotFieldsDropped = this.counter(
    "cxmpp_iot_fields_dropped_total",
    "XEP-0323 field values not kept in (or dropped from) the last-values cache: evicted (device or cache full, device gone), too_large (over 1 KB), stale (older than the value held)",
    ["reason"],
    ["evicted", "too_large", "stale"],
  );
  private readonly iotReadouts = this.counter(
    "cxmpp_iot_readouts_total",
    "XEP-0323 readouts for sleeping nodes: answered from the cache (cached), queued for the wake-up (queued), queued ones forgotten unanswered (forgotten)",
    ["answer"],
    ["cached", "queued", "forgotten"],
  );
  private readonly iotPublishes = this.counter(
    "cxmpp_iot_pubsub_publishes_total",
    "XEP-0060 publishes of node readings: put in the outbox (sent), answered with a result (ok) or an error (error) by the pubsub service",
    ["result"],
    ["sent", "ok", "error"],
  );

  constructor(options: GatewayMetricsOptions = {}) {
    this.source = options.source;
    this.snapshot("cxmpp_sessions", "sessions held, awake or asleep", (s) => s.sessions());
    this.snapshot("cxmpp_nodes_awake", "nodes with an awake session", (s) => s.awake());
    this.snapshot("cxmpp_nodes_asleep", "nodes with a sleeping session", (s) => s.asleep());
    this.snapshot("cxmpp_mailbox_depth", "stanzas queued in all mailboxes", (s) => s.mailboxDepth());
    this.snapshot("cxmpp_outbox_depth", "stanzas waiting for the XMPP server", (s) => s.outboxDepth());
    this.snapshot("cxmpp_federation_up", "1 when the XMPP server link is up", (s) =>
      s.federationUp() ? 1 : 0,
    );
    this.snapshot(
      "cxmpp_connect_nonces_used",
      "connect nonces remembered as used (single use; only proven connects add one)",
      (s) => s.usedNonces?.() ?? 0,
    );
    this.coapSnapshot("cxmpp_coap_table_entries", "entries held in each CoAP table", (t) => ({
      dedup: t.dedup,
      block1_assemblies: t.assemblies,
      block2_representations: t.representations,
      observers: t.observers,
    }));
    this.coapSnapshot("cxmpp_coap_table_bytes", "bytes held in each CoAP table that keeps data", (t) => ({
      dedup: t.dedupBytes,
      block1_assemblies: t.assemblyBytes,
      block2_representations: t.representationBytes,
    }));
    this.coapSnapshot("cxmpp_coap_table_limit", "the entry cap of each CoAP table", (t) => ({
      dedup: t.limits.maxDedupEntries,
      block1_assemblies: t.limits.maxAssemblies,
      block2_representations: t.limits.maxRepresentations,
      observers: t.limits.maxObservers,
    }));
    this.snapshot(
      "cxmpp_dtls_handshakes_in_progress",
      "DTLS handshakes in progress (only after a valid cookie)",
      (s) => s.dtlsTables?.().handshakes ?? 0,
    );
    this.snapshot("cxmpp_dtls_sessions", "DTLS sessions established", (s) => s.dtlsTables?.().sessions ?? 0);
    this.snapshot(
      "cxmpp_iot_fields_cached",
      "XEP-0323 field values held as the last reported per device (at most 64 per device)",
      (s) => s.iotFieldsCached?.() ?? 0,
    );
    this.snapshot(
      "cxmpp_iot_readouts_pending",
      "readouts queued for sleeping nodes, awaiting the node's answer",
      (s) => s.iotReadoutsPending?.() ?? 0,
    );
    // The deadline heap and the recheck list grow with the sessions, so they are watched like them.
    this.snapshot(
      "cxmpp_session_deadlines",
      "sessions waiting for a deadline in the timer heap (expiry, sleep, mailbox TTL)",
      (s) => s.sessionTimers?.().deadlines ?? 0,
    );
    this.snapshot(
      "cxmpp_session_rechecks",
      "sessions changed since the last tick, which the next tick looks at",
      (s) => s.sessionTimers?.().recheck ?? 0,
    );
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  /** Connects the state gauges to the gateway (which usually exists only after its metrics). */
  bind(source: MetricsSource): void {
    this.source = source;
  }

  /** A stanza from a node. */
  uplink(sizes: FrameSizes): void {
    this.stanzasIn.inc({ path: "node" });
    this.frame("uplink", sizes);
  }

  /** A stanza to a node (routed locally or from the XMPP server). */
  downlink(sizes: FrameSizes): void {
    this.stanzasOut.inc({ path: "node" });
    this.frame("downlink", sizes);
  }

  /** A stanza from the XMPP server. */
  fromFederation(): void {
    this.stanzasIn.inc({ path: "federation" });
  }

  /** A stanza handed to the XMPP server. */
  toFederation(): void {
    this.stanzasOut.inc({ path: "federation" });
  }

  retransmission(): void {
    this.retransmissions.inc();
  }

  duplicateFrame(): void {
    this.duplicates.inc();
  }

  badFrame(): void {
    this.badFrames.inc();
  }

  tableMiss(): void {
    this.tableMisses.inc();
  }

  mailboxDropped(reason: MailboxDropReason, stanzas = 1): void {
    this.mailboxDrops.inc({ reason }, stanzas);
  }

  connect(): void {
    this.connects.inc();
  }

  connectRefused(): void {
    this.refused.inc();
  }

  /**
   * Brings the counters up to cumulative totals the gateway keeps itself (its stats object), adding
   * what changed since the last call: the hot path only bumps plain numbers, the registry follows.
   */
  syncTotals(t: Totals): void {
    const last = this.lastTotals;
    const d = (k: Exclude<keyof Totals, "coap" | "dtls" | "iot">) =>
      Math.max(0, (t[k] ?? 0) - (last[k] ?? 0));
    this.stanzasIn.inc({ path: "node" }, d("stanzasFromNodes"));
    this.stanzasOut.inc({ path: "node" }, d("stanzasToNodes"));
    this.stanzasIn.inc({ path: "federation" }, d("stanzasFromFederation"));
    this.stanzasOut.inc({ path: "federation" }, d("stanzasToFederation"));
    this.bytesOnAir.inc({ direction: "uplink" }, d("bytesUp"));
    this.bytesAsXml.inc({ direction: "uplink" }, d("xmlUp"));
    this.bytesSaved.inc({ direction: "uplink" }, Math.max(0, d("xmlUp") - d("bytesUp")));
    this.bytesOnAir.inc({ direction: "downlink" }, d("bytesDown"));
    this.bytesAsXml.inc({ direction: "downlink" }, d("xmlDown"));
    this.bytesSaved.inc({ direction: "downlink" }, Math.max(0, d("xmlDown") - d("bytesDown")));
    this.retransmissions.inc(d("retransmissions"));
    this.duplicates.inc(d("duplicateFrames"));
    this.badFrames.inc(d("badFrames"));
    this.tableMisses.inc(d("tableMisses"));
    this.mailboxDrops.inc({ reason: "full" }, d("mailboxFull"));
    this.mailboxDrops.inc({ reason: "ttl" }, d("mailboxExpired"));
    this.mailboxDrops.inc({ reason: "coalesced" }, d("mailboxCoalesced"));
    this.connects.inc(d("connects"));
    this.refused.inc(d("refusedConnects"));
    this.uplinkRejected.inc({ reason: "bad_ack" }, d("badAcks"));
    this.uplinkRejected.inc({ reason: "telemetry_replay" }, d("replayedTelemetry"));
    this.uplinkRejected.inc({ reason: "out_of_order" }, d("outOfOrderTelemetry"));
    this.uplinkRejected.inc({ reason: "gap" }, d("gaps"));
    this.noncesEvicted.inc(d("usedNoncesEvicted"));
    this.failovers.inc(d("federationFailovers"));
    if (t.coap) this.syncCoap(t.coap, this.lastTotals.coap ?? NO_COAP_TABLES);
    if (t.dtls) this.syncDtls(t.dtls, this.lastTotals.dtls);
    if (t.iot) this.syncIot(t.iot, this.lastTotals.iot);
    this.lastTotals = {
      ...t,
      coap: t.coap ?? this.lastTotals.coap,
      dtls: t.dtls ?? this.lastTotals.dtls,
      iot: t.iot ?? this.lastTotals.iot,
    };
  }

  private syncIot(now: IotCounters, last: IotCounters | undefined): void {
    const d = (k: keyof IotCounters) => Math.max(0, now[k] - (last?.[k] ?? 0));
    this.iotFieldsDropped.inc({ reason: "evicted" }, d("fieldsEvicted"));
    this.iotFieldsDropped.inc({ reason: "too_large" }, d("fieldsTooLarge"));
    this.iotFieldsDropped.inc({ reason: "stale" }, d("fieldsStale"));
    this.iotReadouts.inc({ answer: "cached" }, d("readoutsCached"));
    this.iotReadouts.inc({ answer: "queued" }, d("readoutsQueued"));
    this.iotReadouts.inc({ answer: "forgotten" }, d("readoutsForgotten"));
    this.iotPublishes.inc({ result: "sent" }, d("pubsubPublished"));
    this.iotPublishes.inc({ result: "ok" }, d("pubsubOk"));
    this.iotPublishes.inc({ result: "error" }, d("pubsubErrors"));
  }

  private syncDtls(now: DtlsCounters, last: DtlsCounters | undefined): void {
    const d = (k: keyof DtlsCounters) => Math.max(0, now[k] - (last?.[k] ?? 0));
    this.dtlsHandshakes.inc({ result: "completed" }, d("handshakesCompleted"));
    this.dtlsHandshakes.inc({ result: "failed" }, d("handshakesFailed"));
    this.dtlsHandshakes.inc({ result: "refused" }, d("handshakesRefused"));
    this.dtlsHandshakes.inc({ result: "timed_out" }, d("handshakesTimedOut"));
    this.dtlsHelloVerify.inc(d("helloVerifyRequests"));
    this.dtlsClosed.inc({ reason: "evicted" }, d("sessionsEvicted"));
    this.dtlsClosed.inc({ reason: "expired" }, d("sessionsExpired"));
    this.dtlsBadRecords.inc(d("badRecords"));
  }

  private syncCoap(now: CoapCounters, last: CoapCounters): void {
    const d = (a: number, b: number) => Math.max(0, a - b);
    this.coapEvictions.inc({ table: "dedup" }, d(now.evicted.dedup, last.evicted.dedup));
    this.coapEvictions.inc(
      { table: "block1_assemblies" },
      d(now.evicted.assemblies, last.evicted.assemblies),
    );
    this.coapEvictions.inc(
      { table: "block2_representations" },
      d(now.evicted.representations, last.evicted.representations),
    );
    this.coapEvictions.inc({ table: "observers" }, d(now.evicted.observers, last.evicted.observers));
    this.coapObserversReplaced.inc(d(now.observersReplaced, last.observersReplaced));
    this.coapNotKept.inc(d(now.representationsNotKept, last.representationsNotKept));
    this.coapErrorsCut.inc(d(now.errorPayloadsCut, last.errorPayloadsCut));
  }

  private lastTotals: Totals = ZERO_TOTALS;

  /** The exposition text, gauges read from the source now. */
  scrape(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  private frame(direction: (typeof DIRECTIONS)[number], sizes: FrameSizes): void {
    this.bytesOnAir.inc({ direction }, sizes.onAir);
    this.bytesAsXml.inc({ direction }, sizes.asXml);
    // A counter cannot go down; a stanza the codec made larger (rare, tiny ones) saves nothing.
    this.bytesSaved.inc({ direction }, Math.max(0, sizes.asXml - sizes.onAir));
  }

  /** A counter whose label values all show from the first scrape, at 0, so rate() works at once. */
  private counter(
    name: string,
    help: string,
    labels: readonly string[] = [],
    values: readonly string[] = [],
  ) {
    const c = new Counter({ name, help, labelNames: labels, registers: [this.registry] });
    const label = labels[0];
    if (label === undefined) c.inc(0);
    else for (const v of values) c.inc({ [label]: v }, 0);
    return c;
  }

  /** A gauge per CoAP table (`table` label), read from the source's coapTables() at scrape time. */
  private coapSnapshot(
    name: string,
    help: string,
    read: (tables: CoapTableCounts) => Partial<Record<CoapTable, number>>,
  ): void {
    const metrics = this;
    new Gauge({
      name,
      help,
      labelNames: ["table"],
      registers: [this.registry],
      collect() {
        const values = read(metrics.source?.coapTables?.() ?? NO_COAP_TABLES);
        for (const table of COAP_TABLES) {
          const v = values[table];
          if (v !== undefined) this.set({ table }, v);
        }
      },
    });
  }

  private snapshot(name: string, help: string, read: (source: MetricsSource) => number): void {
    const metrics = this;
    new Gauge({
      name,
      help,
      registers: [this.registry],
      collect() {
        this.set(metrics.source ? read(metrics.source) : 0);
      },
    });
  }
}

/**
 * The gateway's health as `/healthz` shows it: `ok` decides the status (200 or 503), the other fields
 * say why, for the operator reading the body (store, federation link, sessions, uptime, …).
 */
export interface HealthReport {
  readonly ok: boolean;
  readonly [detail: string]: unknown;
}

export interface MetricsServer {
  /** HOST:PORT actually bound (the real port when 0 was asked for). */
  readonly address: string;
  close(): Promise<void>;
}

/**
 * Serves `GET /metrics` and `GET /healthz` (200 with `health()`'s report when ok, 503 when not; without
 * a health function the process answering is all it says: 200 `{"ok":true}`). Resolves once listening,
 * rejects with a clear Error when it cannot bind.
 */
export async function startMetricsServer(
  metrics: GatewayMetrics,
  listen: string | HostPort,
  health?: () => HealthReport,
): Promise<MetricsServer> {
  const at = typeof listen === "string" ? parseHostPort(listen) : listen;
  if (!at) throw new Error(`metrics: expected HOST:PORT to listen on, got "${String(listen)}"`);
  const wanted = formatHostPort(at);

  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path !== "/metrics" && path !== "/healthz") {
      return reply(res, 404, "not found: metrics are at /metrics, health at /healthz\n");
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.setHeader("Allow", "GET, HEAD");
      return reply(res, 405, "method not allowed: use GET\n");
    }
    if (path === "/healthz") return replyHealth(res, health);
    metrics.scrape().then(
      (text) => {
        res.writeHead(200, { "Content-Type": metrics.contentType });
        res.end(text);
      },
      // A source callback that throws spoils one scrape, not the gateway.
      (error: unknown) => reply(res, 500, `scrape failed: ${(error as Error).message}\n`),
    );
  });

  await new Promise<void>((resolve, reject) => {
    const failed = (error: NodeJS.ErrnoException) =>
      reject(new Error(`metrics: cannot listen on ${wanted}: ${bindProblem(error)}`, { cause: error }));
    server.once("error", failed);
    server.listen(at.port, at.host, () => {
      server.off("error", failed);
      resolve();
    });
  });

  const bound = server.address() as AddressInfo;
  return {
    address: formatHostPort({ host: bound.address, port: bound.port }),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Scrapers keep connections alive; without this, close() would wait for them to time out.
        server.closeAllConnections();
      }),
  };
}

function replyHealth(res: ServerResponse, health: (() => HealthReport) | undefined): void {
  let ok: boolean;
  let body: string;
  try {
    const report = health ? health() : { ok: true };
    ok = report.ok === true;
    body = JSON.stringify(report);
  } catch (error) {
    // A health function that throws (or a report that is not JSON) is itself the news: unhealthy, and why.
    ok = false;
    body = JSON.stringify({ ok, error: `health check failed: ${(error as Error).message}` });
  }
  // A probe must see the state now, never an answer cached by a proxy in between.
  res.writeHead(ok ? 200 : 503, {
    "Content-Type": "application/json; charset=utf-8",
    "Cache-Control": "no-store",
  });
  res.end(`${body}\n`);
}

function reply(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { "Content-Type": "text/plain; charset=utf-8" });
  res.end(text);
}

function bindProblem(error: NodeJS.ErrnoException): string {
  switch (error.code) {
    case "EADDRINUSE":
      return "the address is already in use (EADDRINUSE)";
    case "EACCES":
      return "permission denied (EACCES; ports below 1024 need privileges)";
    case "EADDRNOTAVAIL":
      return "no such local address (EADDRNOTAVAIL)";
    default:
      return error.message;
  }
}
