/**
 * `cxmpp bench dtls` on a small configuration: every part runs (handshakes over real UDP, connects and
 * readings through a real session layer, the server in a child process under load, bench session's
 * gateway with and without DTLS) and the JSON contract holds. Protocol figures are asserted exactly (6
 * flights, 3 round trips, 13 + 8 + tag bytes per record, 2 exchanges to connect in plain and 1 over
 * DTLS); timing figures only for being there.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { runDtlsBench } from "../../bench/dtls.js";
import { captureStdout } from "../kit/cli.js";

afterEach(() => {
  vi.restoreAllMocks();
});

type Json = Record<string, unknown>;
const CCM_8 = "TLS_PSK_WITH_AES_128_CCM_8";
const GCM = "TLS_PSK_WITH_AES_128_GCM_SHA256";

describe("cxmpp bench dtls", () => {
  it("--json on a small run: one JSON object with the handshake, bytes, server and gateway figures", async () => {
    const out = captureStdout();
    const code = await runDtlsBench({
      handshakes: "3",
      readings: "3",
      duration: "0.3",
      clients: "4",
      nodes: "2",
      stanzas: "10",
      stores: "memory",
      json: true,
    });
    vi.restoreAllMocks();
    const lines = out.text().trim().split("\n");
    expect(lines).toHaveLength(1);
    const r = JSON.parse(lines[0]!) as {
      handshake: Json[];
      connect: Json[];
      bytes: { reading_payload_bytes: number; mqtt_sn: Json; runs: Json[] };
      server: Json[];
      gateway: Json[];
      anchors: Json;
    };

    // 1. The handshake: six flights, three round trips, one datagram each; GCM's two Finished
    // records carry 8 more bytes of tag each.
    expect(r.handshake.map((h) => h.suite)).toEqual([CCM_8, GCM]);
    for (const h of r.handshake) {
      expect(h.handshakes).toBe(3);
      expect(h.failed).toBe(0);
      expect(h.flights).toBe(6);
      expect(h.round_trips).toBe(3);
      expect(h.datagrams_up).toBe(3);
      expect(h.datagrams_down).toBe(3);
      expect(h.bytes_total).toBe((h.bytes_up as number) + (h.bytes_down as number));
      expect(h.extended_master_secret).toBe(true);
      const flights = h.flight_detail as { from: string; messages: string[] }[];
      expect(flights.map((f) => f.from)).toEqual(["node", "server", "node", "server", "node", "server"]);
      expect(flights.map((f) => f.messages.join("+"))).toEqual([
        "ClientHello",
        "HelloVerifyRequest",
        "ClientHello",
        "ServerHello+ServerHelloDone",
        "ClientKeyExchange+ChangeCipherSpec+Finished",
        "ChangeCipherSpec+Finished",
      ]);
    }
    expect((r.handshake[1]!.bytes_up as number) - (r.handshake[0]!.bytes_up as number)).toBe(8);
    expect((r.handshake[1]!.bytes_down as number) - (r.handshake[0]!.bytes_down as number)).toBe(8);

    // The connect: plain is the Echo challenge and the proof; over DTLS one exchange after the handshake.
    expect(r.connect.map((c) => c.mode)).toEqual(["plain", CCM_8, GCM]);
    const [plain, ...secure] = r.connect;
    expect([plain!.exchanges, plain!.handshake_round_trips, plain!.round_trips]).toEqual([2, 0, 2]);
    for (const c of secure) expect([c.exchanges, c.handshake_round_trips, c.round_trips]).toEqual([1, 3, 4]);

    // 2. Bytes on air: the same CoAP inside, plus 13 + 8 + tag bytes per datagram.
    const b = r.bytes;
    expect(b.reading_payload_bytes).toBe(19);
    expect(b.mqtt_sn).toMatchObject({
      qos0: 26,
      qos1: 33,
      qos0_over_dtls_ccm_8: 55,
      qos1_over_dtls_ccm_8: 91,
    });
    expect(b.runs.map((x) => x.mode)).toEqual(["plain", CCM_8, GCM]);
    type Cost = { datagrams_up: number; datagrams_down: number; bytes: number; coap_bytes: number };
    const base = b.runs[0] as { reliable: Cost; telemetry: Cost; record_overhead: null };
    expect(base.record_overhead).toBeNull();
    expect([base.reliable.datagrams_up, base.reliable.datagrams_down]).toEqual([1, 1]);
    expect([base.telemetry.datagrams_up, base.telemetry.datagrams_down]).toEqual([1, 0]);
    expect(base.reliable.bytes).toBe(base.reliable.coap_bytes);
    for (const [i, tag] of [
      [1, 8],
      [2, 16],
    ] as const) {
      const x = b.runs[i] as {
        reliable: Cost;
        telemetry: Cost;
        record_overhead: Json;
        sent: number;
        delivered: number;
      };
      expect(x.record_overhead).toEqual({
        header: 13,
        nonce: 8,
        tag,
        expected: 21 + tag,
        measured: 21 + tag,
      });
      expect(x.reliable.coap_bytes).toBe(base.reliable.coap_bytes);
      expect(x.telemetry.coap_bytes).toBe(base.telemetry.coap_bytes);
      expect(x.reliable.bytes).toBe(base.reliable.bytes + 2 * (21 + tag));
      expect(x.telemetry.bytes).toBe(base.telemetry.bytes + (21 + tag));
      expect(x.delivered).toBe(x.sent);
    }

    // 3. The server under load: something completed, and the CPU figures are there.
    expect(r.server.map((s) => s.mode)).toEqual(["plain", CCM_8, GCM]);
    expect(r.server[0]!.handshakes).toBeNull();
    for (const s of r.server) {
      const records = s.records as Json;
      expect(records.exchanges as number).toBeGreaterThan(0);
      expect(records.cpu_us_per_record as number).toBeGreaterThan(0);
      expect(typeof records.server_busy).toBe("number");
      expect(typeof records.client_busy).toBe("number");
    }
    for (const s of r.server.slice(1)) {
      const h = s.handshakes as Json;
      expect(h.completed as number).toBeGreaterThan(0);
      expect(h.failed).toBe(0);
      expect(h.cpu_us_per_handshake as number).toBeGreaterThan(0);
      expect(h.hello_verify_requests as number).toBeGreaterThanOrEqual(h.completed as number);
    }

    // 4. The gateway over DTLS and plain: everything delivered once, in order; a CCM_8 record each way.
    expect(r.gateway).toHaveLength(1);
    const g = r.gateway[0] as { plain: Json; dtls: Json; nodes: number; store: string; violated: boolean };
    expect([g.nodes, g.store, g.violated]).toEqual([2, "memory", false]);
    for (const run of [g.plain, g.dtls]) {
      expect(run.delivered).toBe(20);
      expect([run.lost, run.duplicates, run.out_of_order]).toEqual([0, 0, 0]);
      expect(run.cpu_us_per_stanza as number).toBeGreaterThan(0);
    }
    expect(g.dtls.bytes_on_air_median).toBe((g.plain.bytes_on_air_median as number) + 2 * 29);
    expect(r.anchors).toMatchObject({ record_header_bytes: 13, explicit_nonce_bytes: 8, ccm_8_tag_bytes: 8 });
    expect(code).toBe(0);
  });

  it("refuses a bad option value with exit code 1 and a message, without throwing", async () => {
    const err: string[] = [];
    vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => {
      err.push(String(chunk));
      return true;
    });
    expect(await runDtlsBench({ handshakes: "0", json: true })).toBe(1);
    expect(await runDtlsBench({ duration: "0", json: true })).toBe(1);
    expect(await runDtlsBench({ stores: "memory,disk", json: true })).toBe(1);
    expect(await runDtlsBench({ nodes: "10,", json: true })).toBe(1);
    vi.restoreAllMocks();
    const text = err.join("");
    expect(text).toMatch(/--handshakes must be an integer/);
    expect(text).toMatch(/--duration must be a number of seconds/);
    expect(text).toMatch(/--store must be one of memory, full, normal/);
    expect(text).toMatch(/--nodes must be a comma-separated list/);
  });
});
