/**
 * `cxmpp bench session --load-processes N`: the nodes spread over N forked load processes, each with
 * its own slice (and, with loss, its own relay), while the gateway child still counts deliveries per
 * node. Checks the --json contract — every stanza delivered once and in order, the load fields present
 * and sane — not timing.
 */
import { availableParallelism } from "node:os";
import { afterEach, describe, expect, it, vi } from "vitest";
import { defaultLoadProcesses, runSessionBench } from "../../bench/session.js";
import { captureStdout } from "../kit/cli.js";

afterEach(() => {
  vi.restoreAllMocks();
});

async function runJson(opts: Parameters<typeof runSessionBench>[0]) {
  const out = captureStdout();
  const code = await runSessionBench({ ...opts, json: true });
  vi.restoreAllMocks();
  const lines = out.text().trim().split("\n");
  expect(lines).toHaveLength(1);
  return { code, r: JSON.parse(lines[0]!) as Record<string, unknown> };
}

/** A CPU / wall-time share: a number ≥ 0, and below the machine's cores plus a thread pool's margin. */
function expectShare(x: unknown, what: string): void {
  expect(typeof x, what).toBe("number");
  expect(x as number, what).toBeGreaterThanOrEqual(0);
  expect(x as number, what).toBeLessThanOrEqual(availableParallelism() + 1);
}

describe("cxmpp bench session --load-processes", () => {
  it("2 load processes, 7 nodes × 40 at 10% loss: every stanza once and in order, a busy share per process", async () => {
    const { code, r } = await runJson({
      nodes: "7",
      stanzas: "40",
      loss: "0.1",
      seed: "5",
      loadProcesses: "2",
    });
    expect(r.nodes).toBe(7);
    expect(r.planned).toBe(280);
    expect(r.sent).toBe(280);
    expect(r.delivered).toBe(280);
    expect(r.duplicates).toBe(0);
    expect(r.out_of_order).toBe(0);
    expect(r.lost).toBe(0);
    expect(r.load_processes).toBe(2);
    const shares = r.load_cpu_share as number[];
    expect(shares).toHaveLength(2);
    for (const [i, s] of shares.entries()) {
      expectShare(s, `load_cpu_share[${i}]`);
      expect(s, "each load process did some work").toBeGreaterThan(0);
    }
    expect(r.load_cpu_share_max).toBe(Math.max(...shares));
    expectShare(r.gateway_cpu_share, "gateway_cpu_share");
    expectShare(r.machine_cpu_share, "machine_cpu_share");
    expect(r.cores).toBe(availableParallelism());
    expect(r.cpu_us_per_stanza as number).toBeGreaterThan(0);
    expect(r.load_cpu_us_per_stanza as number).toBeGreaterThan(0);
    expect(r.stanzas_per_s as number).toBeGreaterThan(0);
    expect(r.bytes_on_air_median as number).toBeGreaterThan(13);
    // Each process's relay dropped datagrams; their counts are added up, and every loss was repaired.
    const relay = r.relay as Record<"up" | "down", Record<string, number>>;
    expect(relay.up.dropped! + relay.down.dropped!).toBeGreaterThan(0);
    expect(relay.up.received).toBeGreaterThanOrEqual(280);
    expect(r.retransmissions as number).toBeGreaterThan(0);
    expect(code).toBe(0);
  });

  it("a few nodes by default run in this process (load_processes 1), with the same fields", async () => {
    const { code, r } = await runJson({ nodes: "3", stanzas: "20", seed: "2" });
    expect(r.load_processes).toBe(1);
    expect(r.sent).toBe(60);
    expect(r.delivered).toBe(60);
    expect(r.duplicates).toBe(0);
    expect(r.out_of_order).toBe(0);
    expect(r.lost).toBe(0);
    expect(r.relay).toBeNull();
    expect(r.load_cpu_share as number[]).toHaveLength(1);
    expectShare((r.load_cpu_share as number[])[0], "load_cpu_share[0]");
    expect(code).toBe(0);
  });

  it("chooses 1 below 100 nodes and min(2, cores) from 100 on; refuses a bad value", async () => {
    expect(defaultLoadProcesses(1)).toBe(1);
    expect(defaultLoadProcesses(99)).toBe(1);
    expect(defaultLoadProcesses(100)).toBe(Math.min(2, availableParallelism()));
    expect(defaultLoadProcesses(1_000)).toBe(Math.min(2, availableParallelism()));
    const err: string[] = [];
    vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => {
      err.push(String(chunk));
      return true;
    });
    expect(await runSessionBench({ loadProcesses: "0", json: true })).toBe(1);
    expect(await runSessionBench({ loadProcesses: "17", json: true })).toBe(1);
    vi.restoreAllMocks();
    expect(err.join("")).toMatch(/--load-processes must be an integer from 1 to 16/);
  });
});
