/**
 * `cxmpp bench federation` on a small run: a real Prosody 0.12 (vhost a.localhost, component
 * iot.localhost, no s2s), `cxmpp gateway` in its own process federating through it, two in-process
 * nodes on real UDP and alice as an xmpp.js client. Every stanza must arrive exactly once both ways,
 * and the JSON must carry the CPU figures of both processes. Timings are never asserted.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { runFederationBench } from "../../bench/federation.js";
import { captureStdout } from "../kit/cli.js";

afterEach(() => {
  vi.restoreAllMocks();
});

const PHASE_NUMBERS = [
  "sent",
  "delivered",
  "duplicates",
  "out_of_order",
  "lost",
  "errors",
  "elapsed_s",
  "stanzas_per_s",
  "gateway_cpu_us",
  "prosody_cpu_us",
  "gateway_cpu_us_per_stanza",
  "prosody_cpu_us_per_stanza",
  "gateway_cpu_share",
  "prosody_cpu_share",
  "load_cpu_share",
] as const;

describe("cxmpp bench federation", () => {
  it("--nodes 2 --stanzas 20 --json: every stanza arrives exactly once both ways; CPU of gateway and Prosody", async () => {
    const out = captureStdout();
    const code = await runFederationBench({ nodes: "2", stanzas: "20", json: true });
    vi.restoreAllMocks();
    const lines = out.text().trim().split("\n");
    expect(lines).toHaveLength(1);
    const r = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(r.nodes).toBe(2);
    expect(r.stanzas_per_node).toBe(20);
    expect(r.planned).toBe(40);

    for (const name of ["uplink", "downlink"] as const) {
      const p = r[name] as Record<string, unknown>;
      for (const field of PHASE_NUMBERS) {
        expect(typeof p[field], `${name}.${field}`).toBe("number");
        expect(p[field] as number, `${name}.${field}`).toBeGreaterThanOrEqual(0);
      }
      expect(p.sent, name).toBe(40);
      expect(p.delivered, name).toBe(40);
      expect(p.duplicates, name).toBe(0);
      expect(p.lost, name).toBe(0);
      expect(p.errors, name).toBe(0);
      expect(p.out_of_order, name).toBe(0);
    }
    expect((r.downlink as Record<string, unknown>).misrouted).toBe(0);
    expect(r.anchors).toEqual({ paho_cpu_us_per_qos1: [62, 89], paho_cpu_us_per_qos0: 50 });
    expect(code).toBe(0);
  }, 180_000);

  it("refuses a bad option with exit code 2 before starting anything", async () => {
    const err: string[] = [];
    vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => {
      err.push(String(chunk));
      return true;
    });
    expect(await runFederationBench({ nodes: "0" })).toBe(2);
    expect(err.join("")).toMatch(/--nodes must be an integer from 1 to 1000/);
  });
});
