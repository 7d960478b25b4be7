/**
 * `cxmpp bench session --cores 2`: the benchmark's gateway child (SQLite full) with its UDP socket on a
 * socket thread (gateway/cluster/udp-thread.ts), nodes over real UDP through the seeded 10% loss relay.
 * Every reliable stanza arrives exactly once and in order; the figures say which gateway ran and how
 * much of its CPU its own thread spent (the rest: the socket thread and V8's helpers).
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { runSessionBench } from "../../bench/session.js";
import { captureStdout } from "../kit/cli.js";

afterEach(() => {
  vi.restoreAllMocks();
});

async function bench(cores: string): Promise<Record<string, number | string>> {
  const out = captureStdout();
  const code = await runSessionBench({
    nodes: "4",
    stanzas: "40",
    loss: "0.1",
    store: "full",
    cores,
    json: true,
    seed: "3",
  });
  vi.restoreAllMocks();
  expect(code).toBe(0);
  return JSON.parse(out.text().trim()) as Record<string, number | string>;
}

describe("bench session --cores", () => {
  it("--cores 2 --store full through 10% loss: everything delivered once, in order; thread CPU reported", async () => {
    const r = await bench("2");
    expect(r.gateway_cores).toBe(2);
    expect(r.store).toBe("full");
    expect(r.sent).toBe(160);
    expect(r.delivered).toBe(160);
    expect(r.duplicates).toBe(0);
    expect(r.out_of_order).toBe(0);
    expect(r.retransmissions as number).toBeGreaterThan(0); // the relay did drop datagrams
    // The gateway's own thread is part of the process: never more CPU than all its threads together.
    expect(r.gateway_thread_cpu_us_per_stanza as number).toBeLessThanOrEqual(r.cpu_us_per_stanza as number);
  }, 60_000);

  it("--cores 1 is the gateway as before; --cores 3 is refused", async () => {
    const r = await bench("1");
    expect(r.gateway_cores).toBe(1);
    expect(r.delivered).toBe(160);
    expect(r.duplicates).toBe(0);
    const err = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    const code = await runSessionBench({ nodes: "2", stanzas: "2", cores: "3", json: true });
    expect(code).toBe(1); // a usage error
    expect(err.mock.calls.map((c) => String(c[0])).join("")).toMatch(/cores/);
  }, 60_000);
});
