/**
 * `cxmpp bench cluster` on a small run, through the real CLI (`node bin/cxmpp.js bench cluster`, so dist/
 * must be built, as `npm test` does): a two-node ejabberd 23.01 cluster, one and then two `cxmpp gateway`
 * processes, in-process nodes on real UDP and alice as an xmpp.js client on node 2, then the failover
 * run (ejabberd node 1 SIGKILLed under load, restarted after). Nothing acknowledged may be lost, every
 * duplicate must carry its first copy's origin-id, the two-gateway run must deliver everything, and the
 * JSON must carry the CPU figures of every process. Timings are never asserted (beyond failover_ms > 0).
 * Needs root and ejabberd, as the benchmark does.
 */
import { afterAll, describe, expect, it } from "vitest";
import { cleanEnv, killAllChildren, runCli } from "../kit/federation-kit.js";

afterAll(() => killAllChildren());

const DELIVERY = [
  "sent",
  "acknowledged",
  "delivered",
  "duplicates",
  "duplicates_with_origin_id",
  "out_of_order",
  "lost",
  "errors",
  "elapsed_s",
  "stanzas_per_s",
] as const;

describe("cxmpp bench cluster", () => {
  it("--nodes 4 --stanzas 20 --json: 1 and 2 gateways deliver everything; failover loses nothing", async () => {
    const r = await runCli(
      ["bench", "cluster", "--nodes", "4", "--stanzas", "20", "--json"],
      cleanEnv({}),
      undefined,
      110_000,
    );
    expect(r.stderr).toBe("");
    const lines = r.stdout.trim().split("\n");
    expect(lines).toHaveLength(1);
    const out = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(out.nodes).toBe(4);
    expect(out.stanzas_per_node).toBe(20);
    expect(out.ejabberd_version).toMatch(/^\d+\.\d+/);
    expect(out.anchors).toMatchObject({ single_server: "cxmpp bench federation" });

    const runs = out.runs as Record<string, unknown>[];
    expect(runs.map((x) => x.gateways)).toEqual([1, 2]);
    for (const run of runs) {
      const g = run.gateways as number;
      for (const field of DELIVERY) {
        expect(typeof run[field], `${g} gw ${field}`).toBe("number");
        expect(run[field] as number, `${g} gw ${field}`).toBeGreaterThanOrEqual(0);
      }
      expect(run.nodes).toBe(4);
      expect(run.stanzas_per_node).toBe(20);
      expect(run.sent).toBe(80);
      expect(run.acknowledged).toBe(80);
      expect(run.delivered, `${g} gw delivered`).toBe(80);
      expect(run.lost).toBe(0);
      expect(run.duplicates).toBe(run.duplicates_with_origin_id);
      const gw = run.gateway_cpu_us_per_stanza as number[];
      const ej = run.ejabberd_cpu_us_per_stanza as number[];
      expect(gw).toHaveLength(g);
      expect(ej).toHaveLength(2);
      for (const x of [...gw, ...ej, run.total_cpu_us_per_stanza as number])
        expect(x).toBeGreaterThanOrEqual(0);
      expect((run.gateway_cpu_share as number[]).length).toBe(g);
      expect(typeof run.load_cpu_share).toBe("number");
    }
    // With two gateways each ejabberd node carries one component link.
    expect(runs[1]!.linked_to).toEqual(["node1", "node2"]);

    const f = out.failover as Record<string, unknown>;
    for (const field of DELIVERY) expect(typeof f[field], `failover ${field}`).toBe("number");
    expect(f.linked_before).toBe("node1");
    expect(f.linked_after).toBe("node2");
    expect(f.failover_ms as number).toBeGreaterThan(0);
    expect(f.arrival_gap_ms as number).toBeGreaterThan(0);
    expect(f.lost).toBe(0);
    expect(f.acknowledged).toBe(80);
    expect(f.delivered).toBe(80);
    expect(f.duplicates).toBe(f.duplicates_with_origin_id);
    expect(["schema", "join_cluster"]).toContain(f.node1_rejoined);
    expect(r.code).toBe(0);
  }, 120_000);

  it("refuses a bad option with exit code 2 before starting anything", async () => {
    const r = await runCli(["bench", "cluster", "--gateways", "3"], cleanEnv({}));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--gateways must be an integer from 1 to 2/);
  });
});
