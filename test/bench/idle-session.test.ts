/**
 * `cxmpp bench session --idle N` on a small run (issue 13 item 4): idle nodes connect over real UDP
 * through the gateway's real connect path and the JSON carries the memory and rate figures. The
 * figures themselves are the benchmark's business; here only that they are there and sane.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { idleAddress } from "../../bench/idle.js";
import { runSessionBench } from "../../bench/session.js";
import { captureStdout } from "../kit/cli.js";

afterEach(() => {
  vi.restoreAllMocks();
});

describe("cxmpp bench session --idle", () => {
  it("gives every idle node its own loopback address, never 127.0.0.1", () => {
    const seen = new Set([0, 1, 255, 256, 65_535, 65_536, 1_000_000].map(idleAddress));
    expect(seen.size).toBe(7);
    expect(idleAddress(0)).toBe("127.1.0.0");
    expect(idleAddress(65_536)).toBe("127.2.0.0");
    expect(seen.has("127.0.0.1")).toBe(false);
  });

  it("--idle 2000 --json: every idle node connected, one JSON object with the per-session figures", async () => {
    const out = captureStdout();
    const code = await runSessionBench({ idle: "2000", json: true, seed: "5" });
    vi.restoreAllMocks();
    const lines = out.text().trim().split("\n");
    expect(lines).toHaveLength(1);
    const r = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(r.idle_sessions).toBe(2000);
    expect(r.connected).toBe(2000);
    expect(r.failed).toBe(0);
    expect(r.provisioned_devices).toBe(2000);
    for (const field of [
      "rss_bytes_per_session",
      "heap_bytes_per_session",
      "rss_bytes_per_device",
      "heap_bytes_per_device",
      "connects_per_s",
      "gateway_cpu_us_per_connect",
      "idle_cpu_share",
    ]) {
      expect(typeof r[field], field).toBe("number");
    }
    // Each session costs the gateway something, and far less than a megabyte.
    expect(r.heap_bytes_per_session as number).toBeGreaterThan(0);
    expect(r.heap_bytes_per_session as number).toBeLessThan(1_000_000);
    expect(r.connects_per_s as number).toBeGreaterThan(0);
    expect(r.idle_cpu_share as number).toBeGreaterThanOrEqual(0);
    expect(r.idle_cpu_share as number).toBeLessThan(1);
    expect(code).toBe(0);
  }, 120_000);

  it("refuses --idle 0 with exit code 1 and a message", async () => {
    const err: string[] = [];
    vi.spyOn(process.stderr, "write").mockImplementation((s) => {
      err.push(String(s));
      return true;
    });
    const code = await runSessionBench({ idle: "0", json: true });
    vi.restoreAllMocks();
    expect(code).toBe(1);
    expect(err.join("")).toMatch(/--idle must be an integer/);
  });
});
