/**
 * `cxmpp bench session` on a small configuration: a real gateway (in a child process) and three nodes
 * over real UDP on loopback, through the seeded 10% loss relay. Every reliable stanza must arrive
 * exactly once and in order, and the JSON contract must hold.
 */
import { mkdtempSync, readdirSync, rmSync, watch } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { runSessionBench } from "../../bench/session.js";
import { captureStdout } from "../kit/cli.js";

afterEach(() => {
  vi.restoreAllMocks();
});

describe("cxmpp bench session", () => {
  it("--nodes 3 --stanzas 50 --loss 0.1 --json: one JSON object, everything delivered once, in order", async () => {
    const out = captureStdout();
    const code = await runSessionBench({ nodes: "3", stanzas: "50", loss: "0.1", json: true, seed: "7" });
    vi.restoreAllMocks();
    const lines = out.text().trim().split("\n");
    expect(lines).toHaveLength(1);
    const r = JSON.parse(lines[0]!) as Record<string, unknown>;
    for (const field of [
      "sent",
      "delivered",
      "duplicates",
      "out_of_order",
      "lost",
      "stanzas_per_s",
      "bytes_on_air_median",
      "cpu_us_per_stanza",
      "nodes",
      "loss",
      "retransmissions",
      "elapsed_s",
    ]) {
      expect(typeof r[field], field).toBe("number");
    }
    expect(r.nodes).toBe(3);
    expect(r.loss).toBe(0.1);
    expect(r.store).toBe("memory");
    expect(r.sent).toBe(150);
    expect(r.delivered).toBe(r.sent);
    expect(r.duplicates).toBe(0);
    expect(r.out_of_order).toBe(0);
    expect(r.lost).toBe(0);
    expect(r.stanzas_per_s as number).toBeGreaterThan(0);
    expect(r.cpu_us_per_stanza as number).toBeGreaterThan(0);
    // A reliable reading costs at least its CoAP request and response on air.
    expect(r.bytes_on_air_median as number).toBeGreaterThan(13);
    // 10% loss per direction over 150 exchanges: some datagrams were dropped and retransmitted.
    expect(r.retransmissions as number).toBeGreaterThan(0);
    const relay = r.relay as { up: { dropped: number }; down: { dropped: number } };
    expect(relay.up.dropped + relay.down.dropped).toBeGreaterThan(0);
    expect(code).toBe(0);
  });

  it("--store full: the gateway keeps durable state in SQLite, still exactly once, and cleans up", async () => {
    // The bench makes its data directory under os.tmpdir(): here a private one (TMPDIR, read at each
    // call), since other benches running meanwhile (cores-bench) make and remove theirs in the shared one.
    const tmp = mkdtempSync(join(tmpdir(), "cxmpp-session-test-"));
    const made = new Set<string>();
    const watcher = watch(tmp, (_event, name) => {
      if (name) made.add(name);
    });
    const saved = process.env.TMPDIR;
    process.env.TMPDIR = tmp;
    const out = captureStdout();
    let code: number;
    try {
      code = await runSessionBench({ nodes: "3", stanzas: "30", store: "full", json: true, seed: "3" });
    } finally {
      if (saved === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = saved;
      vi.restoreAllMocks();
    }
    await new Promise((resolve) => setImmediate(resolve)); // the watcher's last events
    watcher.close();
    const left = readdirSync(tmp).filter((d) => d.startsWith("cxmpp-bench-")); // (tsx's cache is there too)
    rmSync(tmp, { recursive: true, force: true });
    const lines = out.text().trim().split("\n");
    expect(lines).toHaveLength(1);
    const r = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(r.store).toBe("full");
    expect(r.sent).toBe(90);
    expect(r.delivered).toBe(90);
    expect(r.duplicates).toBe(0);
    expect(r.out_of_order).toBe(0);
    expect(r.lost).toBe(0);
    expect(r.cpu_us_per_stanza as number).toBeGreaterThan(0);
    expect(code).toBe(0);
    expect([...made].some((d) => d.startsWith("cxmpp-bench-"))).toBe(true); // it made its data directory there
    expect(left).toEqual([]); // and it is gone
  });

  it("--window 6 --store full at 10% loss: a busy node with six in flight, still exactly once and in order", async () => {
    const out = captureStdout();
    const code = await runSessionBench({
      nodes: "2",
      stanzas: "60",
      window: "6",
      store: "full",
      loss: "0.1",
      json: true,
      seed: "5",
    });
    vi.restoreAllMocks();
    const r = JSON.parse(out.text().trim()) as Record<string, number>;
    expect(r.window).toBe(6);
    expect(r.sent).toBe(120);
    expect([r.delivered, r.duplicates, r.out_of_order, r.lost]).toEqual([120, 0, 0, 0]);
    expect(code).toBe(0);
  });

  it("refuses a bad option value with exit code 1 and a message, without throwing", async () => {
    const err: string[] = [];
    vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => {
      err.push(String(chunk));
      return true;
    });
    expect(await runSessionBench({ nodes: "0", json: true })).toBe(1);
    expect(await runSessionBench({ loss: "1.5", json: true })).toBe(1);
    expect(await runSessionBench({ store: "disk", json: true })).toBe(1);
    expect(await runSessionBench({ window: "0", json: true })).toBe(1);
    vi.restoreAllMocks();
    expect(err.join("")).toMatch(/--nodes must be an integer/);
    expect(err.join("")).toMatch(/--loss must be a probability/);
    expect(err.join("")).toMatch(/--store must be one of memory, full, normal/);
  });
});
