/**
 * `cxmpp demo` end to end, as a user starts it: a child process running the gateway, three nodes and the
 * lossy relay for 12 s over real UDP on loopback, then its `--json` summary.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import { demoSettings, type GatewaySummary, type NodeSummary } from "../../examples/demo.js";

const ROOT = join(import.meta.dirname, "..", "..");
const CLI = join(ROOT, "bin", "cxmpp.js");

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

function demo(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, "demo", ...args],
      { cwd: ROOT, timeout: 30_000 },
      (error, stdout, stderr) =>
        resolve({ code: error ? (typeof error.code === "number" ? error.code : 1) : 0, stdout, stderr }),
    );
  });
}

describe("cxmpp demo", () => {
  it("runs a sensor, an actuator and a sleepy sensor over 20% loss and reports what they cost on air", async () => {
    const run = await demo("--duration", "12", "--loss", "0.2", "--json");
    expect(run.stderr).not.toMatch(/error|Error/);
    expect(run.code).toBe(0);
    const objects = run.stdout
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as NodeSummary | GatewaySummary);
    const nodes = new Map(
      objects.filter((o): o is NodeSummary => o.kind === "node").map((n) => [n.name, n] as const),
    );
    const gateway = objects.find((o): o is GatewaySummary => o.kind === "gateway");
    expect([...nodes.keys()]).toEqual(["sensor", "actuator", "sleepy"]);
    expect(gateway).toBeDefined();

    for (const node of nodes.values()) {
      expect(node.sent, `${node.name} sent`).toBeGreaterThan(0);
      expect(node.received, `${node.name} received`).toBeGreaterThan(0);
      expect(node.air_up_bytes + node.air_down_bytes).toBe(node.air_bytes);
      // DTLS (handshakes, and 29 bytes a record) is on air too: below it, the CoAP the codec fills.
      expect(node.coap_bytes).toBeGreaterThan(0);
      expect(node.coap_bytes).toBeLessThan(node.air_bytes);
    }
    // Everything the session layer sends — connects, acks, polls, retransmissions included — costs less
    // than the stanzas as XML. Per node that holds for the sensor at once; the others need longer than
    // 12 s to amortise their connect (the response names every alias) and the downlink resent after a
    // lost ack. The DTLS handshakes (~500 B each, more under loss) weigh on a 12-second run on top.
    const total = (key: "coap_bytes" | "xml_bytes") =>
      [...nodes.values()].reduce((sum, n) => sum + n[key], 0);
    expect(total("coap_bytes")).toBeLessThan(total("xml_bytes"));
    expect(nodes.get("sensor")!.coap_bytes).toBeLessThan(nodes.get("sensor")!.xml_bytes / 2);
    // The sensor commands the actuator, which acts on it and reports back.
    expect(nodes.get("sensor")!.sent).toBeGreaterThanOrEqual(10);
    expect(nodes.get("actuator")!.received).toBeGreaterThanOrEqual(1);

    const sleepy = nodes.get("sleepy")!;
    expect(sleepy.seen_asleep).toBeGreaterThanOrEqual(1);
    expect(sleepy.wakes).toBeGreaterThanOrEqual(1);
    // Drained: empty at the end, or emptied by a wake-up after the gateway had held stanzas for it.
    expect(sleepy.mailbox === 0 || sleepy.drained_wakes >= 1).toBe(true);
    expect(sleepy.mailbox_max).toBeGreaterThanOrEqual(1);

    const relay = gateway!.relay;
    expect(relay.loss).toBe(0.2);
    expect(relay.up.dropped + relay.down.dropped).toBeGreaterThan(0);
    expect(gateway!.sessions).toBe(3);
    // The temporary data directory is gone.
    expect(existsSync(dirname(gateway!.store))).toBe(false);
  }, 40_000);

  it("checks its options: defaults, and errors that name the bad one", () => {
    expect(demoSettings({})).toEqual({ durationS: undefined, loss: 0.2, seed: 1, wakeS: 8, json: false });
    expect(demoSettings({ duration: "12", loss: "0", seed: "7", wake: "10", json: true })).toEqual({
      durationS: 12,
      loss: 0,
      seed: 7,
      wakeS: 10,
      json: true,
    });
    expect(() => demoSettings({ loss: "1.5" })).toThrow(/--loss/);
    expect(() => demoSettings({ duration: "0" })).toThrow(/--duration/);
    expect(() => demoSettings({ seed: "x" })).toThrow(/--seed/);
    expect(() => demoSettings({ wake: "-1" })).toThrow(/--wake/);
  });
});
