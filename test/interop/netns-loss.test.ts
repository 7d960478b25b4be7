/**
 * Real kernel packet loss (docs/INTEROP.md "Real packet loss"): two fresh network namespaces joined by a veth pair
 * (198.18.0.1/30 ↔ 198.18.0.2/30, addresses that exist only inside them), an nftables INPUT rule in
 * each dropping 30% of UDP datagrams (test/kit/netns.ts). Three tests:
 * - the cxmpp gateway (GatewayService on a UDP endpoint in the server namespace) and a process with
 *   three NodeClients in the client namespace, each sending 200 CON stanzas: every stanza reaches the
 *   gateway's `outbound` exactly once and in order, and every send resolves (over DTLS:
 *   test/interop/netns-dtls.test.ts);
 * - our plain CoAP server process and a client process sending 300 CON requests: every request
 *   completes and reaches the server's handler exactly once;
 * - the client namespace's nftables OUTPUT chain refuses a send (sendto fails with EPERM): UdpTransport
 *   logs and drops it instead of throwing.
 * Needs root (CI and this machine run as root). Namespaces and processes are removed in afterAll, also
 * on failure.
 */
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ask,
  expectRealLoss,
  type LossyLink,
  lossyLink,
  nextJsonLine,
  runNodes,
  startGateway,
} from "../kit/netns.js";

const FIXTURES = join(import.meta.dirname, "fixtures");
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

const link = lossyLink({ prefix: "cxmpp", lossPercent: LOSS_PERCENT });
/** What the lossy chains counted since the link was made (the CoAP test checks the totals). */
let lossSinceOpen: ReturnType<LossyLink["measure"]>;
beforeAll(() => {
  link.open();
  lossSinceOpen = link.measure();
  // For the send-error test: the client namespace refuses to send UDP to port 9 (sendto → EPERM).
  link.nft(link.client, "add chain inet lossy out { type filter hook output priority 0; policy accept; }");
  link.nft(link.client, "add rule inet lossy out udp dport 9 drop");
});
afterAll(() => link.close());

describe("CoAP over a real lossy link (network namespaces, nftables 30% drop each way)", () => {
  it(`cxmpp: ${NODES.length} NodeClients × ${PER_NODE} CON stanzas reach the GatewayService exactly once and in order`, async () => {
    const lossSince = link.measure();
    const gateway = await startGateway(link, {
      security: "udp",
      port: GATEWAY_PORT,
      names: NODES,
      transmission: NODE_TRANSMISSION,
    });
    const summary = await runNodes(link, {
      security: "udp",
      port: GATEWAY_PORT,
      names: NODES,
      perNode: PER_NODE,
      transmission: NODE_TRANSMISSION,
      retryDelayMs: RETRY_DELAY_MS,
      timeoutMs: 100_000,
    });
    const seen = await gateway.report();
    const loss = lossSince();
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
    expectRealLoss(loss, 100, [0.15, 0.45]);
    expect(summary.nodes.reduce((a, n) => a + n.retransmissions, 0)).toBeGreaterThan(0);
    expect(seen.dedupHits).toBeGreaterThan(0);
  }, 120_000);

  it(`${COUNT} CON requests all complete, each reaching the server exactly once`, async () => {
    const server = link.run(link.server, join(FIXTURES, "netns-server.ts"), [
      link.server.ip,
      String(PORT),
      JSON.stringify(TRANSMISSION),
    ]);
    const ready = await nextJsonLine(server, 20_000);
    expect(ready).toEqual({ ready: true, address: `${link.server.ip}:${PORT}` });

    const client = link.run(link.client, join(FIXTURES, "netns-client.ts"), [
      link.server.ip,
      String(PORT),
      link.client.ip,
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

    const seen = (await ask(server, "report", 10_000)) as {
      unique: number;
      total: number;
      duplicates: number;
      dedupHits: number;
      payloads: string[];
    };
    const loss = lossSinceOpen();
    console.log(JSON.stringify({ summary, server: { ...seen, payloads: seen.payloads.length }, nft: loss }));

    expect(summary.failures).toEqual([]);
    expect(summary.completed).toBe(COUNT);
    expect(summary.mismatched).toBe(0);
    expect(seen.unique).toBe(COUNT);
    expect(seen.duplicates).toBe(0);
    expect(new Set(seen.payloads)).toEqual(new Set(Array.from({ length: COUNT }, (_, i) => `req-${i}`)));
    // The kernel really dropped about 30% each way, and the server really saw retransmitted duplicates.
    expectRealLoss(loss, COUNT, [0.2, 0.4]);
    expect(summary.retransmissions).toBeGreaterThan(0);
    expect(seen.dedupHits).toBeGreaterThan(0);
  }, 120_000);

  it("UdpTransport never throws when the kernel refuses a send (nftables OUTPUT drop → EPERM): it logs and drops", async () => {
    const child = link.run(link.client, join(FIXTURES, "netns-send-error.ts"), [
      link.client.ip,
      link.server.ip,
      "9",
    ]);
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
