/**
 * Real kernel packet loss (docs/INTEROP.md "Real packet loss"): two fresh network namespaces joined by a veth pair
 * (198.18.0.1/30 ↔ 198.18.0.2/30, addresses that exist only inside them), an nftables INPUT rule in
 * each dropping 30% of UDP datagrams. Three tests:
 * - the cxmpp gateway (GatewayService on a UDP endpoint in the server namespace) and a process with
 *   three NodeClients in the client namespace, each sending 200 CON stanzas: every stanza reaches the
 *   gateway's `outbound` exactly once and in order, and every send resolves;
 * - our plain CoAP server process and a client process sending 300 CON requests: every request
 *   completes and reaches the server's handler exactly once;
 * - the client namespace's nftables OUTPUT chain refuses a send (sendto fails with EPERM): UdpTransport
 *   logs and drops it instead of throwing.
 * Needs root (CI and this machine run as root). Namespaces and processes are removed in afterAll, also
 * on failure.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const ROOT = resolve(import.meta.dirname, "../..");
const FIXTURES = join(import.meta.dirname, "fixtures");
const suffix = `${process.pid.toString(36)}${randomBytes(2).toString("hex")}`;
const NS_SERVER = `cxmpp-s-${suffix}`;
const NS_CLIENT = `cxmpp-c-${suffix}`;
const SERVER_IP = "198.18.0.1";
const CLIENT_IP = "198.18.0.2";
const PORT = 5683;
const COUNT = 300;
const LOSS_PERCENT = 30;
// 30% loss each way ⇒ an attempt (CON there, ACK back) succeeds with p = 0.49, and RFC 7252 back-off
// doubles the wait after each failed attempt, so the tail is long. The veth round trip is ~0.1 ms and
// host timers have 1 ms granularity, so a 0.25 ms ACK timeout only makes the first retransmissions
// prompt. P(a request fails) = 0.51^19 ≈ 2.8·10⁻⁶, ≈ 0.08% for all 300; the chance that the slowest
// request needs more than ~80 s (0.25 · 1.25 · 2^18 ms) is about the same. Typically the run takes < 1 s.
const TRANSMISSION = { ackTimeoutMs: 0.25, ackRandomFactor: 1.5, maxRetransmit: 18, nstart: 32 };

// The gateway test: 3 nodes × 200 CON stanzas. A NodeClient queues its stanzas at once and its pump
// sends them in batches (≤ 256-byte uplinks), one exchange at a time per node (~40 per node). The ACK
// timeout is 25 ms (the veth round trip is ~0.1 ms) and maxRetransmit 4, so an exchange fails with
// p = 0.51^5 ≈ 3.5% after at most 25 · 1.5 · 31 ≈ 1.2 s: a run has a few such failures, and the
// NodeClient retries them itself after RETRY_DELAY_MS (doubling while they keep failing) with the
// same sequence numbers — the gateway skips frames ≤ h, so nothing arrives twice. Typically 3–8 s.
const NODES = ["n1", "n2", "n3"];
const PER_NODE = 200;
const GATEWAY_PORT = 5684;
const NODE_TRANSMISSION = { ackTimeoutMs: 25, ackRandomFactor: 1.5, maxRetransmit: 4 };
const RETRY_DELAY_MS = 100;

const processes: ChildProcess[] = [];
const created: string[] = [];

function sh(args: string[]): string {
  return execFileSync(args[0]!, args.slice(1), { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

function nodeIn(ns: string, script: string, args: string[]): ChildProcess {
  const child = spawn(
    "ip",
    ["netns", "exec", ns, process.execPath, "--import", "tsx", join(FIXTURES, script), ...args],
    {
      cwd: ROOT,
      stdio: ["pipe", "pipe", "pipe"],
    },
  );
  processes.push(child);
  return child;
}

/** The next stdout line of a child, parsed as JSON (rejects on exit or timeout, with its stderr). */
function nextJsonLine(child: ChildProcess, timeoutMs: number): Promise<Record<string, unknown>> {
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  return new Promise((resolvePromise, reject) => {
    const lines = createInterface({ input: child.stdout! });
    const timer = setTimeout(() => fail(new Error(`no output within ${timeoutMs} ms`)), timeoutMs);
    const onExit = (code: number | null) => fail(new Error(`exited with ${code} before printing`));
    function fail(error: Error) {
      clearTimeout(timer);
      lines.close();
      reject(new Error(`${error.message}\nstderr:\n${stderr}`));
    }
    child.once("exit", onExit);
    lines.once("line", (line) => {
      clearTimeout(timer);
      child.off("exit", onExit);
      lines.close();
      try {
        resolvePromise(JSON.parse(line));
      } catch {
        reject(new Error(`not JSON: ${line}\nstderr:\n${stderr}`));
      }
    });
  });
}

/** nft counters of the lossy chain: [all UDP seen on input, UDP dropped]. */
function counters(ns: string): { seen: number; dropped: number } {
  const json = JSON.parse(sh(["ip", "netns", "exec", ns, "nft", "-j", "list", "table", "inet", "lossy"]));
  const rules = (
    json.nftables as Array<Record<string, { chain?: string; expr?: Array<Record<string, unknown>> }>>
  )
    .filter((e) => e.rule?.chain === "in")
    .map((e) => e.rule!.expr ?? []);
  const packets = (expr: Array<Record<string, unknown>>) =>
    (expr.find((x) => x.counter)?.counter as { packets: number } | undefined)?.packets ?? 0;
  return { seen: packets(rules[0] ?? []), dropped: packets(rules[1] ?? []) };
}

beforeAll(() => {
  if (process.getuid?.() !== 0) throw new Error("netns-loss needs root (ip netns, nft)");
  for (const ns of [NS_SERVER, NS_CLIENT]) {
    sh(["ip", "netns", "add", ns]);
    created.push(ns);
  }
  sh([
    "ip",
    "link",
    "add",
    "cxs0",
    "netns",
    NS_SERVER,
    "type",
    "veth",
    "peer",
    "name",
    "cxc0",
    "netns",
    NS_CLIENT,
  ]);
  sh(["ip", "-n", NS_SERVER, "addr", "add", `${SERVER_IP}/30`, "dev", "cxs0"]);
  sh(["ip", "-n", NS_CLIENT, "addr", "add", `${CLIENT_IP}/30`, "dev", "cxc0"]);
  for (const [ns, dev] of [
    [NS_SERVER, "cxs0"],
    [NS_CLIENT, "cxc0"],
  ] as const) {
    sh(["ip", "-n", ns, "link", "set", "lo", "up"]);
    sh(["ip", "-n", ns, "link", "set", dev, "up"]);
    const nft = (rule: string) => sh(["ip", "netns", "exec", ns, "nft", rule]);
    nft("add table inet lossy");
    nft("add chain inet lossy in { type filter hook input priority 0; policy accept; }");
    nft("add rule inet lossy in meta l4proto udp counter");
    nft(`add rule inet lossy in meta l4proto udp numgen random mod 100 < ${LOSS_PERCENT} counter drop`);
  }
  // For the send-error test: the client namespace refuses to send UDP to port 9 (sendto → EPERM).
  sh([
    "ip",
    "netns",
    "exec",
    NS_CLIENT,
    "nft",
    "add chain inet lossy out { type filter hook output priority 0; policy accept; }",
  ]);
  sh(["ip", "netns", "exec", NS_CLIENT, "nft", "add rule inet lossy out udp dport 9 drop"]);
});

afterAll(async () => {
  for (const child of processes) {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  }
  for (const ns of created) {
    let pids: string[] = [];
    try {
      pids = sh(["ip", "netns", "pids", ns]).split(/\s+/).filter(Boolean);
    } catch {
      // namespace already gone
    }
    for (const pid of pids) {
      try {
        process.kill(Number(pid), "SIGKILL");
      } catch {
        // already exited
      }
    }
  }
  await new Promise((r) => setTimeout(r, 50));
  for (const ns of created) {
    try {
      sh(["ip", "netns", "del", ns]);
    } catch (error) {
      console.error(`could not delete namespace ${ns}: ${String(error)}`);
    }
  }
});

describe("CoAP over a real lossy link (network namespaces, nftables 30% drop each way)", () => {
  it(`cxmpp: ${NODES.length} NodeClients × ${PER_NODE} CON stanzas reach the GatewayService exactly once and in order`, async () => {
    const before = { server: counters(NS_SERVER), client: counters(NS_CLIENT) };
    const gateway = nodeIn(NS_SERVER, "netns-gateway.ts", [
      SERVER_IP,
      String(GATEWAY_PORT),
      JSON.stringify(NODE_TRANSMISSION),
      NODES.join(","),
    ]);
    const ready = await nextJsonLine(gateway, 20_000);
    expect(ready).toEqual({ ready: true, address: `${SERVER_IP}:${GATEWAY_PORT}` });

    const nodes = nodeIn(NS_CLIENT, "netns-nodes.ts", [
      SERVER_IP,
      String(GATEWAY_PORT),
      CLIENT_IP,
      NODES.join(","),
      String(PER_NODE),
      JSON.stringify(NODE_TRANSMISSION),
      String(RETRY_DELAY_MS),
    ]);
    const summary = (await nextJsonLine(nodes, 100_000)) as {
      nodes: Array<{
        name: string;
        resolved: number;
        failed: string[];
        connectAttempts: number;
        pumpRetries: number;
        retransmissions: number;
        sent: number;
      }>;
      elapsedMs: number;
    };

    const report = nextJsonLine(gateway, 10_000);
    gateway.stdin!.write("report\n");
    const seen = (await report) as {
      received: Record<string, number[]>;
      strays: string[];
      stats: { stanzasIn: number; duplicateFrames: number; badFrames: number; connects: number };
      dedupHits: number;
    };
    const after = { server: counters(NS_SERVER), client: counters(NS_CLIENT) };
    const loss = {
      server: {
        seen: after.server.seen - before.server.seen,
        dropped: after.server.dropped - before.server.dropped,
      },
      client: {
        seen: after.client.seen - before.client.seen,
        dropped: after.client.dropped - before.client.dropped,
      },
    };
    console.log(
      JSON.stringify({
        nodes: summary,
        gateway: { stats: seen.stats, dedupHits: seen.dedupHits, strays: seen.strays.length },
        nft: loss,
      }),
    );

    const expected = Array.from({ length: PER_NODE }, (_, k) => k);
    for (const n of summary.nodes) {
      expect(n.failed).toEqual([]);
      expect(n.resolved).toBe(PER_NODE);
    }
    expect(summary.nodes.map((n) => n.name).sort()).toEqual([...NODES].sort());
    for (const name of NODES) expect(seen.received[name]).toEqual(expected); // exactly once, in order
    expect(seen.strays).toEqual([]);
    expect(seen.stats.stanzasIn).toBe(NODES.length * PER_NODE);
    expect(seen.stats.badFrames).toBe(0);
    // The kernel really dropped about 30% each way (~150–300 datagrams per side: bounds at ±4σ), and
    // the loss was really repaired, by CoAP retransmission and CoAP deduplication at the gateway.
    for (const side of [loss.server, loss.client]) {
      expect(side.seen).toBeGreaterThan(100);
      expect(side.dropped / side.seen).toBeGreaterThan(0.15);
      expect(side.dropped / side.seen).toBeLessThan(0.45);
    }
    expect(summary.nodes.reduce((a, n) => a + n.retransmissions, 0)).toBeGreaterThan(0);
    expect(seen.dedupHits).toBeGreaterThan(0);
  }, 120_000);

  it(`${COUNT} CON requests all complete, each reaching the server exactly once`, async () => {
    const server = nodeIn(NS_SERVER, "netns-server.ts", [
      SERVER_IP,
      String(PORT),
      JSON.stringify(TRANSMISSION),
    ]);
    const ready = await nextJsonLine(server, 20_000);
    expect(ready).toEqual({ ready: true, address: `${SERVER_IP}:${PORT}` });

    const client = nodeIn(NS_CLIENT, "netns-client.ts", [
      SERVER_IP,
      String(PORT),
      CLIENT_IP,
      String(COUNT),
      JSON.stringify(TRANSMISSION),
    ]);
    const summary = (await nextJsonLine(client, 100_000)) as {
      count: number;
      completed: number;
      mismatched: number;
      failures: Array<{ payload: string; error: string }>;
      retransmissions: number;
      sendErrors: number;
      elapsedMs: number;
    };

    const report = nextJsonLine(server, 10_000);
    server.stdin!.write("report\n");
    const seen = (await report) as {
      unique: number;
      total: number;
      duplicates: number;
      dedupHits: number;
      payloads: string[];
    };
    const loss = { server: counters(NS_SERVER), client: counters(NS_CLIENT) };
    console.log(JSON.stringify({ summary, server: { ...seen, payloads: seen.payloads.length }, nft: loss }));

    expect(summary.failures).toEqual([]);
    expect(summary.completed).toBe(COUNT);
    expect(summary.mismatched).toBe(0);
    expect(seen.unique).toBe(COUNT);
    expect(seen.duplicates).toBe(0);
    expect(new Set(seen.payloads)).toEqual(new Set(Array.from({ length: COUNT }, (_, i) => `req-${i}`)));
    // The kernel really dropped about 30% each way, and the server really saw retransmitted duplicates.
    for (const side of [loss.server, loss.client]) {
      expect(side.seen).toBeGreaterThan(COUNT);
      expect(side.dropped / side.seen).toBeGreaterThan(0.2);
      expect(side.dropped / side.seen).toBeLessThan(0.4);
    }
    expect(summary.retransmissions).toBeGreaterThan(0);
    expect(seen.dedupHits).toBeGreaterThan(0);
  }, 120_000);

  it("UdpTransport never throws when the kernel refuses a send (nftables OUTPUT drop → EPERM): it logs and drops", async () => {
    const child = nodeIn(NS_CLIENT, "netns-send-error.ts", [CLIENT_IP, SERVER_IP, "9"]);
    const result = (await nextJsonLine(child, 20_000)) as {
      threw: boolean;
      stats: { sent: number; sendErrors: number };
      events: Array<{ level: string; event: string; reason?: string }>;
    };
    expect(result.threw).toBe(false);
    expect(result.stats.sendErrors).toBe(3);
    expect(result.events.filter((e) => e.event === "udp.send_failed")).toHaveLength(3);
    expect(result.events.every((e) => e.event !== "udp.send_failed" || /EPERM/.test(e.reason ?? ""))).toBe(
      true,
    );
  }, 30_000);
});
