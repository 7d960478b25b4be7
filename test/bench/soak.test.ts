/**
 * `cxmpp bench soak`, short (15 s of load): a real gateway in this process with SQLite (durability
 * full), 20 nodes through a 20% lossy relay, spoofed floods and hostile datagrams at 300/s. Every
 * acknowledged stanza must arrive exactly once and in order, nothing may be lost, no CoAP table may
 * go above its cap, the heap after GC must stay within the bound explained below, and the command must
 * exit 0.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { FLOOD_KINDS, runSoakBench, type SoakResult } from "../../bench/soak.js";
import { captureStdout } from "../kit/cli.js";

afterEach(() => {
  vi.restoreAllMocks();
});

describe("cxmpp bench soak", () => {
  it("--duration 15 --json: every acknowledged stanza once and in order under floods; tables at their caps; heap bounded", async () => {
    const out = captureStdout();
    const code = await runSoakBench({ duration: "15", json: true });
    vi.restoreAllMocks();
    const lines = out.text().trim().split("\n");
    expect(lines).toHaveLength(1);
    const r = JSON.parse(lines[0]!) as SoakResult;
    console.info(
      `soak 15 s: ${r.stanzas.acknowledged} acknowledged, ${r.telemetry.sent} readings, ${r.flood.total} flood datagrams from ${r.flood.source_ports} ports; ` +
        `heap ${r.memory.heap_start_mib} → ${r.memory.heap_end_mib} MiB (max ${r.memory.heap_max_mib}), RSS ${r.memory.rss_start_mib} → ${r.memory.rss_end_mib} MiB; ` +
        `findings: ${r.findings.join("; ") || "none"}`,
    );

    // Exactly once, in order, nothing lost: per (sender, destination) stream, at the outbox and at nodes.
    const s = r.stanzas;
    expect(s.acknowledged).toBeGreaterThan(500);
    expect(s.sent).toBe(s.acknowledged); // the drain left nothing waiting
    expect(s.unacknowledged_at_end).toBe(0);
    expect(s.delivered).toBe(s.acknowledged);
    expect(s.delivered_unacknowledged).toBe(0);
    expect(s.duplicates).toBe(0);
    expect(s.out_of_order).toBe(0);
    expect(s.lost).toBe(0);
    expect(s.send_failures).toBe(0);
    expect(s.bounced).toBe(0);
    expect(s.to_nodes).toBeGreaterThan(0);
    expect(s.large).toBeGreaterThan(0); // block-wise uploads went on beside the Block1 flood
    expect(s.min_per_node).toBeGreaterThan(0);

    // Telemetry at most once; replays from the node's own address refused by the telemetry number.
    expect(r.telemetry.duplicates).toBe(0);
    expect(r.telemetry.delivered).toBeLessThanOrEqual(r.telemetry.sent);
    expect(r.telemetry.replays_refused).toBeGreaterThan(0);
    expect(r.gateway.bad_acks).toBeGreaterThan(0); // huge acks from the node's own address: 4.22

    // The flood really ran: every kind, at about the rate asked, from many source ports.
    for (const kind of FLOOD_KINDS) expect(r.flood.sent[kind], kind).toBeGreaterThan(0);
    expect(r.flood.total).toBeGreaterThan(0.8 * 300 * 15);
    expect(r.flood.source_ports).toBeGreaterThan(100);

    // Tables never above their caps; the Block1 table reached its cap (the flood filled it).
    for (const [name, t] of Object.entries(r.tables)) {
      expect(t.max, name).toBeLessThanOrEqual(t.cap);
      expect(t.final, name).toBeLessThanOrEqual(t.cap);
    }
    expect(r.tables.block1_assemblies.max).toBe(r.tables.block1_assemblies.cap);
    expect(r.gateway.evictions.block1_assemblies).toBeGreaterThan(0);

    // Heap (+ ArrayBuffers) after GC, whole process: gateway, nodes, relay and flood. What 15 s of this
    // load may add, by the caps and caches it can fill: deduplication entries for every datagram
    // received (flood 300/s and the nodes' ~250/s, under 600 bytes each with key, record and reply:
    // ~5 MiB), the codec's literal memo (a few thousand distinct short strings here, ~450 bytes each:
    // ~2 MiB; it is capped at 16,384), the store's outbox cache (~1,500 stanzas, ~1 KiB each), Block1
    // bodies (64 × 1 KiB), and the code V8 compiles as the run warms up (a few MiB). 24 MiB holds that
    // with room; a leak of a kilobyte per datagram or per stanza (10,000 of them) would not fit.
    expect(r.memory.heap_growth_mib).toBeLessThan(24);
    expect(r.memory.heap_growth_mib).toBeCloseTo(r.memory.heap_end_mib - r.memory.heap_start_mib, 0);

    expect(r.uncaught).toEqual([]);
    expect(r.checks.filter((c) => !c.ok)).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.verdict).toBe("every acknowledged stanza arrived exactly once, in order; memory within bounds");
    expect(code).toBe(0);
  }, 120_000);

  it("refuses bad options with exit code 1 and a message, without running", async () => {
    const err: string[] = [];
    vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => {
      err.push(String(chunk));
      return true;
    });
    expect(await runSoakBench({ duration: "2", json: true })).toBe(1);
    expect(await runSoakBench({ loss: "1", json: true })).toBe(1);
    expect(await runSoakBench({ nodes: "0", json: true })).toBe(1);
    vi.restoreAllMocks();
    expect(err.join("")).toMatch(/--duration must be an integer from 5 to 86400, not '2'/);
    expect(err.join("")).toMatch(/--loss must be a probability in \[0, 1\)/);
    expect(err.join("")).toMatch(/--nodes must be an integer from 1 to 200/);
  });
});
