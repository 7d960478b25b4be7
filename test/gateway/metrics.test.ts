/** Gateway metrics as Prometheus sees them: scraped over real HTTP on loopback and parsed. */
import { afterEach, describe, expect, it } from "vitest";
import {
  type CoapTableCounts,
  GatewayMetrics,
  type HealthReport,
  type MetricsServer,
  type MetricsSource,
  startMetricsServer,
  type Totals,
  ZERO_TOTALS,
} from "../../gateway/metrics.js";
import { CoapEndpoint, Code, type PeerAddress, pathOptions } from "../../src/core/index.js";
import { drive, FakeTime, fakeRandom } from "../kit/fake-time.js";
import { LossyNetwork } from "../kit/lossy-link.js";

/** Prometheus text format → `name{labels}` → value (comments dropped). */
function parse(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^(\S+?(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (!m) throw new Error(`unparsable sample line: ${line}`);
    samples.set(m[1]!, Number(m[2]));
  }
  return samples;
}

const servers: MetricsServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function serve(metrics: GatewayMetrics, health?: () => HealthReport): Promise<MetricsServer> {
  const server = await startMetricsServer(metrics, "127.0.0.1:0", health);
  servers.push(server);
  return server;
}

async function scrape(server: MetricsServer): Promise<Map<string, number>> {
  const res = await fetch(`http://${server.address}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
  return parse(await res.text());
}

/** A source with nothing in it, and totals all 0, to spread new fields over. */
const idle: MetricsSource = {
  sessions: () => 0,
  awake: () => 0,
  asleep: () => 0,
  mailboxDepth: () => 0,
  outboxDepth: () => 0,
  federationUp: () => false,
};
const zeroTotals: Totals = ZERO_TOTALS;

describe("GatewayMetrics over /metrics", () => {
  it("shows every counter at 0 from the start and counts events", async () => {
    const metrics = new GatewayMetrics({ processMetrics: false });
    const server = await serve(metrics);
    expect(server.address).toMatch(/^127\.0\.0\.1:\d+$/);

    const before = await scrape(server);
    for (const name of [
      'cxmpp_stanzas_in_total{path="node"}',
      'cxmpp_stanzas_out_total{path="federation"}',
      'cxmpp_bytes_on_air_total{direction="uplink"}',
      'cxmpp_mailbox_dropped_total{reason="coalesced"}',
      "cxmpp_retransmissions_total",
      "cxmpp_connects_refused_total",
      'cxmpp_coap_evictions_total{table="block1_assemblies"}',
      "cxmpp_coap_error_payloads_cut_total",
    ])
      expect(before.get(name), name).toBe(0);

    metrics.uplink({ onAir: 14, asXml: 120 });
    metrics.uplink({ onAir: 20, asXml: 200 });
    metrics.downlink({ onAir: 30, asXml: 25 });
    metrics.fromFederation();
    metrics.toFederation();
    metrics.toFederation();
    metrics.retransmission();
    metrics.duplicateFrame();
    metrics.badFrame();
    metrics.tableMiss();
    metrics.mailboxDropped("ttl", 3);
    metrics.mailboxDropped("full");
    metrics.connect();
    metrics.connect();
    metrics.connectRefused();

    const after = await scrape(server);
    expect(
      Object.fromEntries(
        [...after].filter(
          ([k]) =>
            k.startsWith("cxmpp_") &&
            !k.startsWith("cxmpp_coap_") &&
            !k.startsWith("cxmpp_dtls_") &&
            !/depth|nodes_|sessions|federation_up|nonces_used/.test(k),
        ),
      ),
    ).toEqual({
      'cxmpp_stanzas_in_total{path="node"}': 2,
      'cxmpp_stanzas_in_total{path="federation"}': 1,
      'cxmpp_stanzas_out_total{path="node"}': 1,
      'cxmpp_stanzas_out_total{path="federation"}': 2,
      'cxmpp_bytes_on_air_total{direction="uplink"}': 34,
      'cxmpp_bytes_on_air_total{direction="downlink"}': 30,
      'cxmpp_bytes_as_xml_total{direction="uplink"}': 320,
      'cxmpp_bytes_as_xml_total{direction="downlink"}': 25,
      'cxmpp_codec_bytes_saved_total{direction="uplink"}': 286,
      'cxmpp_codec_bytes_saved_total{direction="downlink"}': 0,
      cxmpp_retransmissions_total: 1,
      cxmpp_duplicate_frames_total: 1,
      cxmpp_bad_frames_total: 1,
      cxmpp_table_misses_total: 1,
      'cxmpp_mailbox_dropped_total{reason="full"}': 1,
      'cxmpp_mailbox_dropped_total{reason="ttl"}': 3,
      'cxmpp_mailbox_dropped_total{reason="coalesced"}': 0,
      cxmpp_connects_total: 2,
      cxmpp_connects_refused_total: 1,
      'cxmpp_uplink_rejected_total{reason="bad_ack"}': 0,
      'cxmpp_uplink_rejected_total{reason="telemetry_replay"}': 0,
      'cxmpp_uplink_rejected_total{reason="out_of_order"}': 0,
      'cxmpp_uplink_rejected_total{reason="gap"}': 0,
      cxmpp_connect_nonces_evicted_total: 0,
      cxmpp_federation_failovers_total: 0,
      cxmpp_iot_fields_cached: 0,
      'cxmpp_iot_fields_dropped_total{reason="evicted"}': 0,
      'cxmpp_iot_fields_dropped_total{reason="too_large"}': 0,
      'cxmpp_iot_fields_dropped_total{reason="stale"}': 0,
      cxmpp_iot_readouts_pending: 0,
      'cxmpp_iot_readouts_total{answer="cached"}': 0,
      'cxmpp_iot_readouts_total{answer="queued"}': 0,
      'cxmpp_iot_readouts_total{answer="forgotten"}': 0,
      'cxmpp_iot_pubsub_publishes_total{result="sent"}': 0,
      'cxmpp_iot_pubsub_publishes_total{result="ok"}': 0,
      'cxmpp_iot_pubsub_publishes_total{result="error"}': 0,
      cxmpp_session_deadlines: 0,
      cxmpp_session_rechecks: 0,
    });
  });

  it("shows the IoT layer (cxmpp_iot_*): cached fields and pending readouts at each scrape, counters by syncTotals", async () => {
    const metrics = new GatewayMetrics({ processMetrics: false });
    metrics.bind({ ...idle, iotFieldsCached: () => 12, iotReadoutsPending: () => 2 });
    const server = await serve(metrics);
    const iot = {
      fieldsEvicted: 1,
      fieldsTooLarge: 2,
      fieldsStale: 0,
      readoutsCached: 3,
      readoutsQueued: 1,
      readoutsForgotten: 0,
      pubsubPublished: 5,
      pubsubOk: 4,
      pubsubErrors: 1,
    };
    metrics.syncTotals({ ...zeroTotals, iot });
    metrics.syncTotals({ ...zeroTotals, iot: { ...iot, readoutsCached: 4, pubsubPublished: 7 } });
    const m = await scrape(server);
    expect(m.get("cxmpp_iot_fields_cached")).toBe(12);
    expect(m.get("cxmpp_iot_readouts_pending")).toBe(2);
    expect(m.get('cxmpp_iot_fields_dropped_total{reason="too_large"}')).toBe(2);
    expect(m.get('cxmpp_iot_readouts_total{answer="cached"}')).toBe(4);
    expect(m.get('cxmpp_iot_pubsub_publishes_total{result="sent"}')).toBe(7);
    expect(m.get('cxmpp_iot_pubsub_publishes_total{result="error"}')).toBe(1);
  });

  it("counts refused acks, replayed readings, gaps and the connect nonces from the session layer", async () => {
    const metrics = new GatewayMetrics({ processMetrics: false });
    let used = 3;
    metrics.bind({ ...idle, usedNonces: () => used });
    const server = await serve(metrics);
    const zero = zeroTotals;
    metrics.syncTotals({ ...zero, badAcks: 2, replayedTelemetry: 5, gaps: 1, usedNoncesEvicted: 0 });
    metrics.syncTotals({
      ...zero,
      badAcks: 3,
      replayedTelemetry: 5,
      gaps: 4,
      usedNoncesEvicted: 1,
      federationFailovers: 2,
    });
    used = 7;
    const m = await scrape(server);
    expect(m.get('cxmpp_uplink_rejected_total{reason="bad_ack"}')).toBe(3);
    expect(m.get('cxmpp_uplink_rejected_total{reason="telemetry_replay"}')).toBe(5);
    expect(m.get('cxmpp_uplink_rejected_total{reason="gap"}')).toBe(4);
    expect(m.get("cxmpp_connect_nonces_evicted_total")).toBe(1);
    expect(m.get("cxmpp_connect_nonces_used")).toBe(7);
    expect(m.get("cxmpp_federation_failovers_total")).toBe(2);
  });

  it("shows the session timers: sessions waiting for a deadline and those the next tick rechecks", async () => {
    const metrics = new GatewayMetrics({ processMetrics: false });
    let timers = { deadlines: 4, recheck: 1 };
    metrics.bind({ ...idle, sessionTimers: () => timers });
    const server = await serve(metrics);
    let m = await scrape(server);
    expect([m.get("cxmpp_session_deadlines"), m.get("cxmpp_session_rechecks")]).toEqual([4, 1]);
    timers = { deadlines: 9, recheck: 0 };
    m = await scrape(server);
    expect([m.get("cxmpp_session_deadlines"), m.get("cxmpp_session_rechecks")]).toEqual([9, 0]);
  });

  it("shows the DTLS server (cxmpp_dtls_*): tables at each scrape, its counters brought up by syncTotals", async () => {
    const metrics = new GatewayMetrics({ processMetrics: false });
    let tables = { handshakes: 2, sessions: 5 };
    metrics.bind({ ...idle, dtlsTables: () => tables });
    const server = await serve(metrics);
    const dtls = {
      helloVerifyRequests: 10,
      handshakesCompleted: 4,
      handshakesFailed: 1,
      handshakesRefused: 0,
      handshakesTimedOut: 2,
      sessionsEvicted: 0,
      sessionsExpired: 3,
      badRecords: 7,
    };
    metrics.syncTotals({ ...zeroTotals, dtls });
    metrics.syncTotals({ ...zeroTotals, dtls: { ...dtls, handshakesCompleted: 6, badRecords: 9 } });
    tables = { handshakes: 0, sessions: 6 };
    const m = await scrape(server);
    expect(m.get('cxmpp_dtls_handshakes_total{result="completed"}')).toBe(6);
    expect(m.get('cxmpp_dtls_handshakes_total{result="failed"}')).toBe(1);
    expect(m.get('cxmpp_dtls_handshakes_total{result="timed_out"}')).toBe(2);
    expect(m.get("cxmpp_dtls_hello_verify_requests_total")).toBe(10);
    expect(m.get('cxmpp_dtls_sessions_dropped_total{reason="expired"}')).toBe(3);
    expect(m.get("cxmpp_dtls_records_dropped_total")).toBe(9);
    expect(m.get("cxmpp_dtls_handshakes_in_progress")).toBe(0);
    expect(m.get("cxmpp_dtls_sessions")).toBe(6);
  });

  it("reads the state gauges from the source at each scrape", async () => {
    const state = { sessions: 5, awake: 2, asleep: 3, mailbox: 7, outbox: 4, up: false };
    const source: MetricsSource = {
      sessions: () => state.sessions,
      awake: () => state.awake,
      asleep: () => state.asleep,
      mailboxDepth: () => state.mailbox,
      outboxDepth: () => state.outbox,
      federationUp: () => state.up,
    };
    const metrics = new GatewayMetrics({ processMetrics: false });
    const server = await serve(metrics);
    expect((await scrape(server)).get("cxmpp_sessions")).toBe(0);

    metrics.bind(source);
    const first = await scrape(server);
    expect([
      first.get("cxmpp_sessions"),
      first.get("cxmpp_nodes_awake"),
      first.get("cxmpp_nodes_asleep"),
      first.get("cxmpp_mailbox_depth"),
      first.get("cxmpp_outbox_depth"),
      first.get("cxmpp_federation_up"),
    ]).toEqual([5, 2, 3, 7, 4, 0]);

    Object.assign(state, { awake: 3, asleep: 2, mailbox: 0, outbox: 0, up: true });
    const second = await scrape(server);
    expect(second.get("cxmpp_nodes_awake")).toBe(3);
    expect(second.get("cxmpp_mailbox_depth")).toBe(0);
    expect(second.get("cxmpp_federation_up")).toBe(1);
  });

  it("shows the CoAP tables (cxmpp_coap_*): sizes read at each scrape, evictions counted up by syncTotals", async () => {
    const metrics = new GatewayMetrics({ processMetrics: false });
    const server = await serve(metrics);
    const coap = (s: Map<string, number>) =>
      Object.fromEntries([...s].filter(([k]) => k.startsWith("cxmpp_coap_")));
    // Before a source is bound: every table at 0, every counter at 0.
    expect(coap(await scrape(server))).toEqual({
      'cxmpp_coap_evictions_total{table="dedup"}': 0,
      'cxmpp_coap_evictions_total{table="block1_assemblies"}': 0,
      'cxmpp_coap_evictions_total{table="block2_representations"}': 0,
      'cxmpp_coap_evictions_total{table="observers"}': 0,
      cxmpp_coap_observers_replaced_total: 0,
      cxmpp_coap_block2_not_kept_total: 0,
      cxmpp_coap_error_payloads_cut_total: 0,
      'cxmpp_coap_table_entries{table="dedup"}': 0,
      'cxmpp_coap_table_entries{table="block1_assemblies"}': 0,
      'cxmpp_coap_table_entries{table="block2_representations"}': 0,
      'cxmpp_coap_table_entries{table="observers"}': 0,
      'cxmpp_coap_table_bytes{table="dedup"}': 0,
      'cxmpp_coap_table_bytes{table="block1_assemblies"}': 0,
      'cxmpp_coap_table_bytes{table="block2_representations"}': 0,
      'cxmpp_coap_table_limit{table="dedup"}': 0,
      'cxmpp_coap_table_limit{table="block1_assemblies"}': 0,
      'cxmpp_coap_table_limit{table="block2_representations"}': 0,
      'cxmpp_coap_table_limit{table="observers"}': 0,
    });

    let tables: CoapTableCounts = {
      dedup: 900,
      dedupBytes: 12_000,
      assemblies: 64,
      assemblyBytes: 1_024,
      representations: 3,
      representationBytes: 9_000,
      observers: 2,
      evicted: { dedup: 10, assemblies: 136, representations: 0, observers: 1 },
      observersReplaced: 999,
      representationsNotKept: 1,
      errorPayloadsCut: 2_000,
      limits: { maxDedupEntries: 65_536, maxAssemblies: 64, maxRepresentations: 256, maxObservers: 4_096 },
    };
    metrics.bind({ ...idle, coapTables: () => tables });
    metrics.syncTotals({ ...zeroTotals, coap: tables });
    const first = coap(await scrape(server));
    expect(first).toMatchObject({
      'cxmpp_coap_table_entries{table="dedup"}': 900,
      'cxmpp_coap_table_entries{table="block1_assemblies"}': 64,
      'cxmpp_coap_table_entries{table="block2_representations"}': 3,
      'cxmpp_coap_table_entries{table="observers"}': 2,
      'cxmpp_coap_table_bytes{table="dedup"}': 12_000,
      'cxmpp_coap_table_bytes{table="block1_assemblies"}': 1_024,
      'cxmpp_coap_table_bytes{table="block2_representations"}': 9_000,
      'cxmpp_coap_table_limit{table="block1_assemblies"}': 64,
      'cxmpp_coap_table_limit{table="observers"}': 4_096,
      'cxmpp_coap_evictions_total{table="dedup"}': 10,
      'cxmpp_coap_evictions_total{table="block1_assemblies"}': 136,
      'cxmpp_coap_evictions_total{table="observers"}': 1,
      cxmpp_coap_observers_replaced_total: 999,
      cxmpp_coap_block2_not_kept_total: 1,
      cxmpp_coap_error_payloads_cut_total: 2_000,
    });
    expect(first).not.toHaveProperty('cxmpp_coap_table_bytes{table="observers"}');

    // The gauges follow the tables at the next scrape; the counters add what changed since the last sync.
    tables = { ...tables, assemblies: 5, evicted: { ...tables.evicted, assemblies: 200 } };
    const between = coap(await scrape(server));
    expect(between['cxmpp_coap_table_entries{table="block1_assemblies"}']).toBe(5);
    expect(between['cxmpp_coap_evictions_total{table="block1_assemblies"}']).toBe(136);
    metrics.syncTotals({ ...zeroTotals, coap: tables });
    metrics.syncTotals({ ...zeroTotals }); // a sync without CoAP numbers leaves them alone
    metrics.syncTotals({ ...zeroTotals, coap: tables });
    expect(coap(await scrape(server))['cxmpp_coap_evictions_total{table="block1_assemblies"}']).toBe(200);
  });

  it("reads a real endpoint's tables() (the gateway binds CoapEndpoint.tables)", async () => {
    const time = new FakeTime();
    const net = new LossyNetwork(time);
    const base = { clock: time, scheduler: time };
    const server = new CoapEndpoint({ ...base, transport: net.transport("s:1"), random: fakeRandom(1) });
    const client = new CoapEndpoint({ ...base, transport: net.transport("c:1"), random: fakeRandom(2) });
    server.handle(() => ({ code: Code.CONTENT, options: [], payload: new Uint8Array(0) }));
    const at = "s:1" as PeerAddress;
    for (let i = 0; i < 3; i++)
      await drive(
        time,
        client.observe(at, "r", () => {}),
      );
    await drive(
      time,
      client.request(at, { code: Code.GET, options: pathOptions("x"), payload: new Uint8Array(0) }),
    );
    const metrics = new GatewayMetrics({ processMetrics: false });
    metrics.bind({ ...idle, coapTables: () => server.tables() });
    metrics.syncTotals({ ...zeroTotals, coap: server.tables() });
    const s = parse(await metrics.scrape());
    expect(s.get('cxmpp_coap_table_entries{table="observers"}')).toBe(1);
    expect(s.get("cxmpp_coap_observers_replaced_total")).toBe(2);
    expect(s.get('cxmpp_coap_table_entries{table="dedup"}')).toBe(4);
    expect(s.get('cxmpp_coap_table_limit{table="dedup"}')).toBe(16_384);
  });

  it("includes the Node.js process metrics unless told not to", async () => {
    const samples = await scrape(await serve(new GatewayMetrics()));
    expect(samples.has("process_cpu_user_seconds_total")).toBe(true);
    expect(samples.has("cxmpp_sessions")).toBe(true);
  });

  it("keeps each instance's numbers apart (own registry, not the global one)", async () => {
    const a = new GatewayMetrics({ processMetrics: false });
    const b = new GatewayMetrics({ processMetrics: false });
    a.connect();
    expect(parse(await b.scrape()).get("cxmpp_connects_total")).toBe(0);
    expect(parse(await a.scrape()).get("cxmpp_connects_total")).toBe(1);
  });

  it("answers 500 when the source throws, and keeps serving", async () => {
    const metrics = new GatewayMetrics({ processMetrics: false });
    let broken = true;
    metrics.bind({
      ...idle,
      sessions: () => {
        if (broken) throw new Error("registry gone");
        return 1;
      },
    });
    const server = await serve(metrics);
    const res = await fetch(`http://${server.address}/metrics`);
    expect(res.status).toBe(500);
    expect(await res.text()).toContain("registry gone");
    broken = false;
    expect((await scrape(server)).get("cxmpp_sessions")).toBe(1);
  });
});

describe("startMetricsServer", () => {
  it("answers 404 off /metrics and 405 to anything but GET", async () => {
    const server = await serve(new GatewayMetrics({ processMetrics: false }));
    const base = `http://${server.address}`;
    const missing = await fetch(`${base}/`);
    expect(missing.status).toBe(404);
    expect(await missing.text()).toBe("not found: metrics are at /metrics, health at /healthz\n");
    expect((await fetch(`${base}/metricsx`)).status).toBe(404);
    const post = await fetch(`${base}/metrics`, { method: "POST", body: "x" });
    expect(post.status).toBe(405);
    expect(post.headers.get("allow")).toBe("GET, HEAD");
    expect((await fetch(`${base}/metrics`, { method: "DELETE" })).status).toBe(405);
    expect((await fetch(`${base}/metrics?name[]=x`)).status).toBe(200);
  });

  it("fails with an Error naming the address when the port is taken", async () => {
    const metrics = new GatewayMetrics({ processMetrics: false });
    const first = await serve(metrics);
    await expect(startMetricsServer(metrics, first.address)).rejects.toThrow(
      `metrics: cannot listen on ${first.address}: the address is already in use (EADDRINUSE)`,
    );
    await expect(startMetricsServer(metrics, "nonsense")).rejects.toThrow(/expected HOST:PORT/);
  });

  it("closes while a scraper still holds a keep-alive connection", async () => {
    const metrics = new GatewayMetrics({ processMetrics: false });
    const server = await startMetricsServer(metrics, { host: "127.0.0.1", port: 0 });
    await scrape(server);
    await server.close();
    await expect(fetch(`http://${server.address}/metrics`)).rejects.toThrow();
  });
});

describe("/healthz", () => {
  const get = (server: MetricsServer, method = "GET") =>
    fetch(`http://${server.address}/healthz`, { method });

  it("answers 200 {ok: true} without a health function: the process answers, that is all it knows", async () => {
    const res = await get(await serve(new GatewayMetrics({ processMetrics: false })));
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/json; charset=utf-8");
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect(await res.json()).toEqual({ ok: true });
  });

  it("shows the report, 200 while ok and 503 when not, read anew on every request (GET and HEAD)", async () => {
    let report: HealthReport = { ok: true, store: "ok", federation: "up", sessions: 3, uptime_s: 12 };
    const server = await serve(new GatewayMetrics({ processMetrics: false }), () => report);
    const healthy = await get(server);
    expect(healthy.status).toBe(200);
    expect(await healthy.json()).toEqual(report);

    report = { ok: false, store: "last commit failed: the disk is full", federation: "down", sessions: 3 };
    const sick = await get(server);
    expect(sick.status).toBe(503);
    expect(sick.headers.get("cache-control")).toBe("no-store");
    expect(await sick.json()).toEqual(report);

    const head = await get(server, "HEAD");
    expect(head.status).toBe(503);
    expect(head.headers.get("cache-control")).toBe("no-store");
    expect(await head.text()).toBe("");
    expect((await get(server, "POST")).status).toBe(405);
    expect((await fetch(`http://${server.address}/healthz?verbose=1`)).status).toBe(503);
  });

  it("answers 503 with the reason when the health function throws or its report is not JSON, and keeps serving", async () => {
    let mode: "throw" | "cycle" | "fine" = "throw";
    const server = await serve(new GatewayMetrics({ processMetrics: false }), () => {
      if (mode === "throw") throw new Error("store closed");
      if (mode === "cycle") {
        const r: { ok: boolean; self?: unknown } = { ok: true };
        r.self = r;
        return r;
      }
      return { ok: true };
    });
    const thrown = await get(server);
    expect(thrown.status).toBe(503);
    expect(await thrown.json()).toEqual({ ok: false, error: "health check failed: store closed" });
    mode = "cycle";
    const cyclic = await get(server);
    expect(cyclic.status).toBe(503);
    expect(((await cyclic.json()) as { error: string }).error).toMatch(/^health check failed: .*circular/i);
    mode = "fine";
    expect((await get(server)).status).toBe(200);
  });

  it("a report with ok anything but true is unhealthy", async () => {
    const server = await serve(
      new GatewayMetrics({ processMetrics: false }),
      () => ({ ok: "yes" }) as unknown as HealthReport,
    );
    expect((await get(server)).status).toBe(503);
  });
});
