/**
 * `cxmpp bench iot`: every flow (pubsub publish, readout answer, control set) completes through a real
 * session layer, plain and over DTLS CCM_8, and the JSON contract holds. Protocol figures are asserted
 * exactly (29 bytes of DTLS record per datagram, the MQTT-SN formula); size figures only for their
 * order (warm ≤ first, cxmpp < XML); no timing threshold.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { type Cost, type IotBenchResult, runIotBench } from "../../bench/iot.js";
import { captureStdout } from "../kit/cli.js";

afterEach(() => {
  vi.restoreAllMocks();
});

async function run(opts: Parameters<typeof runIotBench>[0]): Promise<{ code: number; text: string }> {
  const out = captureStdout();
  const code = await runIotBench(opts);
  const text = out.text();
  vi.restoreAllMocks();
  return { code, text };
}

describe("cxmpp bench iot", () => {
  it("--json: every flow completes, warm ≤ first, CCM_8 adds 13 + 8 + 8 bytes per datagram", async () => {
    const { code, text } = await run({ repeat: "4", json: true });
    expect(code).toBe(0);
    const lines = text.trim().split("\n");
    expect(lines).toHaveLength(1);
    const r = JSON.parse(lines[0]!) as IotBenchResult;

    expect(r.repeat).toBe(4);
    expect(r.record_overhead).toMatchObject({ header: 13, nonce: 8, tag: 8, expected: 29 });
    expect(r.mqtt_sn).toEqual({ publish_header_bytes: 7, puback_bytes: 7 });
    expect(r.flows.map((f) => f.flow)).toEqual(["pubsub publish", "readout answer", "control set"]);

    const costs = (c: { first: Cost; warm: Cost }) => [c.first, c.warm];
    for (const f of r.flows) {
      expect(f.completed).toBe(true);
      expect(f.runs).toBe(4);
      expect(f.legs).toHaveLength(2);
      expect(f.legs.map((l) => l.direction).sort()).toEqual(["down", "up"]);
      // Warm: the session tables know the shape.
      expect(f.total.warm.plain.bytes).toBeLessThanOrEqual(f.total.first.plain.bytes);
      expect(f.total.warm.ccm_8.bytes).toBeLessThanOrEqual(f.total.first.ccm_8.bytes);
      for (const l of f.legs) {
        expect(l.warm.plain.bytes).toBeLessThanOrEqual(l.first.plain.bytes);
        for (const c of costs(l)) {
          const datagrams = c.plain.datagrams_up + c.plain.datagrams_down;
          expect(c.plain.datagrams_up).toBeGreaterThanOrEqual(1);
          expect(c.plain.datagrams_down).toBeGreaterThanOrEqual(1);
          expect(c.ccm_8.datagrams_up).toBe(c.plain.datagrams_up);
          expect(c.ccm_8.datagrams_down).toBe(c.plain.datagrams_down);
          // The same CoAP inside; each datagram in one record of 13 + 8 + 8 bytes.
          expect(c.plain.bytes).toBe(c.plain.bytes_up + c.plain.bytes_down);
          expect(c.plain.coap_bytes).toBe(c.plain.bytes);
          expect(c.ccm_8.coap_bytes).toBe(c.plain.coap_bytes);
          expect(c.ccm_8.bytes - c.plain.bytes).toBe(29 * datagrams);
          expect(c.ccm_8_added_per_datagram).toBe(29);
          expect(c.xml_bytes).toBeGreaterThan(c.plain.bytes);
        }
      }
      for (const c of costs(f.total)) {
        expect(c.plain.bytes).toBe(
          f.legs.reduce((n, l) => n + (c === f.total.first ? l.first : l.warm).plain.bytes, 0),
        );
      }
    }

    // MQTT-SN where a like-for-like exists: QoS 1 PUBLISH (7 + payload) + PUBACK (7).
    const [publish, readout, control] = r.flows;
    const up = (f: typeof publish) => f!.legs.find((l) => l.direction === "up")!;
    const down = (f: typeof publish) => f!.legs.find((l) => l.direction === "down")!;
    const reading = Buffer.byteLength("temperature=21.5°C");
    expect(up(publish).first.mqtt_sn_bytes).toBe(7 + reading + 7);
    expect(down(publish).first.mqtt_sn_bytes).toBeNull();
    expect(down(readout).first.mqtt_sn_bytes).toBeNull();
    expect(up(readout).first.mqtt_sn_bytes).toBe(7 + reading + 7);
    expect(down(control).first.mqtt_sn_bytes).toBe(7 + Buffer.byteLength("relay=true") + 7);
    expect(down(control).first.mqtt_sn_ccm_8_bytes).toBe(7 + 10 + 7 + 2 * 29);
    expect(up(control).first.mqtt_sn_bytes).toBeNull();
    expect(r.flows.flatMap((f) => f.legs.map((l) => l.mqtt_sn))).toEqual([
      "like-for-like",
      "none",
      "none",
      "fields alone",
      "like-for-like",
      "none",
    ]);
    // The readout answer is two stanzas (accepted, fields): two CON exchanges.
    expect(up(readout).first.plain.datagrams_up).toBe(2);
  });

  it("the table and method paragraph; exit 2 on a bad option", async () => {
    const stderr = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    const { code, text } = await run({ repeat: "2" });
    expect(stderr).toHaveBeenCalled(); // the progress lines

    expect(code).toBe(0);
    expect(text).toContain("pubsub publish: total");
    expect(text).toContain("MQTT-SN");
    expect(text).toContain("Method");
    vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    expect(await runIotBench({ repeat: "1" })).toBe(2);
    expect(await runIotBench({ seed: "x" })).toBe(2);
  });
});
