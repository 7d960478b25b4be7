/**
 * `cxmpp bench wake` on small counts: a real gateway with the durable store and a sleepy node over real
 * UDP on loopback. Every queued stanza must arrive exactly once and in order, the mailbox must end
 * empty (in memory and in the store), a response never carries more than --max-downlink-bytes of
 * frames, and the drain must cost fewer bytes on air than the same stanzas as XML.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { mqttSnDrain, runWakeBench } from "../../bench/wake.js";
import { captureStdout } from "../kit/cli.js";

afterEach(() => {
  vi.restoreAllMocks();
});

describe("cxmpp bench wake", () => {
  it("--counts 1,10 --json: each wake-up drains every stanza once, in order, in few bytes", async () => {
    const out = captureStdout();
    const code = await runWakeBench({ counts: "1,10", json: true });
    vi.restoreAllMocks();
    const lines = out.text().trim().split("\n");
    expect(lines).toHaveLength(1);
    const { runs, mqtt_sn_formula } = JSON.parse(lines[0]!) as {
      runs: Record<string, number | boolean | string | null>[];
      mqtt_sn_formula: string;
    };
    expect(mqtt_sn_formula).toMatch(/PUBLISH 7 \+ payload \+ PUBACK 7/);
    expect(runs.map((r) => r.queued)).toEqual([1, 10]);
    for (const r of runs) {
      const k = r.queued as number;
      expect(r.store).toBe("full");
      expect(r.delivered, `K=${k}`).toBe(k);
      expect(r.duplicates).toBe(0);
      expect(r.in_order).toBe(true);
      expect(r.mailbox_left).toBe(0);
      expect(r.mailbox_left_in_store).toBe(0);
      // At most 512 bytes of frames per response, and the last poll only acknowledges.
      const frames = r.downlink_frame_bytes as number;
      expect(frames).toBeGreaterThan(0);
      expect(r.exchanges as number).toBeGreaterThanOrEqual(Math.ceil(frames / 512));
      expect(r.datagrams_up as number).toBeGreaterThanOrEqual(r.exchanges as number);
      expect(r.datagrams_down as number).toBeGreaterThanOrEqual(r.exchanges as number);
      expect(r.bytes_on_air).toBe((r.bytes_up as number) + (r.bytes_down as number));
      expect(r.bytes_on_air as number).toBeGreaterThan(frames);
      expect(r.bytes_on_air as number).toBeLessThan(r.xml_bytes as number);
      expect(r.mqtt_sn_exchanges).toBe(k + 1);
      expect(r.mqtt_sn_datagrams).toBe(2 * k + 2);
    }
    // Ten stanzas need more than one response at 512 bytes, but far fewer exchanges than MQTT-SN.
    const ten = runs[1]!;
    expect(ten.exchanges as number).toBeLessThan(ten.mqtt_sn_exchanges as number);
    expect(code).toBe(0);
  });

  it("MQTT-SN QoS 1 drain: PINGREQ + PINGRESP, then PUBLISH (7 + payload) and PUBACK (7) per message", () => {
    expect(mqttSnDrain([20])).toEqual({ bytes: 2 + 2 + 34, exchanges: 2, datagrams: 4 });
    expect(mqttSnDrain([10, 5])).toEqual({ bytes: 4 + 24 + 19, exchanges: 3, datagrams: 6 });
  });

  it("refuses a bad option value with exit code 1 and a message, without throwing", async () => {
    const err: string[] = [];
    vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => {
      err.push(String(chunk));
      return true;
    });
    expect(await runWakeBench({ counts: "0", json: true })).toBe(1);
    expect(await runWakeBench({ store: "disk", json: true })).toBe(1);
    expect(await runWakeBench({ maxDownlinkBytes: "8", json: true })).toBe(1);
    vi.restoreAllMocks();
    expect(err.join("")).toMatch(/--counts must be/);
    expect(err.join("")).toMatch(/--store must be one of memory, full, normal/);
    expect(err.join("")).toMatch(/--max-downlink-bytes must be an integer/);
  });
});
