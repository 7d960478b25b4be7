/**
 * A real lossy link for tests (docs/INTEROP.md "Real packet loss"): two fresh network namespaces joined
 * by a veth pair (198.18.0.1/30 ↔ 198.18.0.2/30, addresses that exist only inside them), an nftables
 * INPUT rule in each dropping a share of UDP datagrams, with counters. Fixture processes run inside a
 * namespace and talk to the test in JSON lines. Needs root; `close()` (afterAll, also on failure) kills
 * every process in the namespaces and deletes them. Used by test/interop/netns-loss.test.ts (CoAP and
 * cxmpp over UDP) and netns-dtls.test.ts (over DTLS); below the link, what both run on it: the cxmpp
 * gateway and its nodes (fixtures netns-gateway.ts, netns-nodes.ts) and the check that the loss was real.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { resolve } from "node:path";
import { createInterface } from "node:readline";
import { expect } from "vitest";
import type { GatewayStats } from "../../gateway/session/gateway-service.js";
import type { DtlsClientStats, DtlsServerStats } from "../../src/dtls/index.js";

const ROOT = resolve(import.meta.dirname, "../..");
const FIXTURES = resolve(ROOT, "test/interop/fixtures");

export interface NetnsSide {
  readonly ns: string;
  readonly ip: string;
}

/** UDP datagrams a side's INPUT chain saw and dropped, and the share dropped. */
export interface Loss {
  readonly seen: number;
  readonly dropped: number;
  readonly share: number;
}

export interface LossyLink {
  readonly server: NetnsSide;
  readonly client: NetnsSide;
  /** Creates the namespaces, the veth pair and the loss rules (beforeAll). */
  open(): void;
  /** `nft RULE` inside a side's namespace (after `open()`; e.g. a chain of its own in table `inet lossy`). */
  nft(side: NetnsSide, rule: string): void;
  /** `node --import tsx SCRIPT ARGS…` inside a namespace (stdin, stdout, stderr piped). */
  run(side: NetnsSide, script: string, args: readonly string[]): ChildProcess;
  /** Starts counting: the function returned gives what each side's lossy chain counted since. */
  measure(): () => { server: Loss; client: Loss };
  close(): Promise<void>;
}

function sh(args: readonly string[]): string {
  return execFileSync(args[0]!, args.slice(1), { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

/** The nft counters of a side's lossy chain so far. */
function counters(side: NetnsSide): Omit<Loss, "share"> {
  const json = JSON.parse(
    sh(["ip", "netns", "exec", side.ns, "nft", "-j", "list", "table", "inet", "lossy"]),
  );
  const rules = (
    json.nftables as Array<Record<string, { chain?: string; expr?: Array<Record<string, unknown>> }>>
  )
    .filter((e) => e.rule?.chain === "in")
    .map((e) => e.rule!.expr ?? []);
  const packets = (expr: Array<Record<string, unknown>>) =>
    (expr.find((x) => x.counter)?.counter as { packets: number } | undefined)?.packets ?? 0;
  return { seen: packets(rules[0] ?? []), dropped: packets(rules[1] ?? []) };
}

/**
 * A link between namespaces named `<prefix>-s-…` and `<prefix>-c-…` (unique to this process) with veth
 * devices `<prefix>s0` and `<prefix>c0` (the prefix is at most 12 characters). Whatever `open()`
 * created is removed by `close()`, also when `open()` throws half-way.
 */
export function lossyLink(options: { readonly prefix: string; readonly lossPercent: number }): LossyLink {
  const suffix = `${process.pid.toString(36)}${randomBytes(2).toString("hex")}`;
  const server: NetnsSide = { ns: `${options.prefix}-s-${suffix}`, ip: "198.18.0.1" };
  const client: NetnsSide = { ns: `${options.prefix}-c-${suffix}`, ip: "198.18.0.2" };
  const created: string[] = [];
  const processes: ChildProcess[] = [];

  const link: LossyLink = {
    server,
    client,
    open() {
      if (process.getuid?.() !== 0) throw new Error("a lossy link needs root (ip netns, nft)");
      for (const side of [server, client]) {
        sh(["ip", "netns", "add", side.ns]);
        created.push(side.ns);
      }
      const [sDev, cDev] = [`${options.prefix}s0`, `${options.prefix}c0`];
      sh([
        "ip",
        "link",
        "add",
        sDev,
        "netns",
        server.ns,
        "type",
        "veth",
        "peer",
        "name",
        cDev,
        "netns",
        client.ns,
      ]);
      for (const [side, dev] of [
        [server, sDev],
        [client, cDev],
      ] as const) {
        sh(["ip", "-n", side.ns, "addr", "add", `${side.ip}/30`, "dev", dev]);
        sh(["ip", "-n", side.ns, "link", "set", "lo", "up"]);
        sh(["ip", "-n", side.ns, "link", "set", dev, "up"]);
        link.nft(side, "add table inet lossy");
        link.nft(side, "add chain inet lossy in { type filter hook input priority 0; policy accept; }");
        link.nft(side, "add rule inet lossy in meta l4proto udp counter");
        link.nft(
          side,
          `add rule inet lossy in meta l4proto udp numgen random mod 100 < ${options.lossPercent} counter drop`,
        );
      }
    },
    nft(side, rule) {
      sh(["ip", "netns", "exec", side.ns, "nft", rule]);
    },
    run(side, script, args) {
      const child = spawn(
        "ip",
        ["netns", "exec", side.ns, process.execPath, "--import", "tsx", script, ...args],
        { cwd: ROOT, stdio: ["pipe", "pipe", "pipe"] },
      );
      processes.push(child);
      return child;
    },
    measure() {
      const before = { server: counters(server), client: counters(client) };
      type Counted = Omit<Loss, "share">;
      const since = (b: Counted, now: Counted): Loss => {
        const [seen, dropped] = [now.seen - b.seen, now.dropped - b.dropped];
        return { seen, dropped, share: seen > 0 ? Math.round((dropped / seen) * 1000) / 1000 : 0 };
      };
      return () => ({
        server: since(before.server, counters(server)),
        client: since(before.client, counters(client)),
      });
    },
    async close() {
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
      for (const ns of created.splice(0)) {
        try {
          sh(["ip", "netns", "del", ns]);
        } catch (error) {
          console.error(`could not delete namespace ${ns}: ${String(error)}`);
        }
      }
    },
  };

  return link;
}

/** The next stdout line of a child, parsed as JSON (rejects on exit or timeout, with its stderr). */
export function nextJsonLine(child: ChildProcess, timeoutMs: number): Promise<Record<string, unknown>> {
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

/** Writes `line` to a child's stdin and resolves with its next stdout line, parsed as JSON. */
export function ask(child: ChildProcess, line: string, timeoutMs: number): Promise<Record<string, unknown>> {
  const answer = nextJsonLine(child, timeoutMs);
  child.stdin!.write(`${line}\n`);
  return answer;
}

/**
 * The kernel really dropped about the link's share each way: each side's lossy chain saw more than
 * `minSeen` UDP datagrams and dropped a share strictly between the bounds (the default ones, for 30%
 * loss, lie beyond ±4σ from a hundred datagrams on).
 */
export function expectRealLoss(
  loss: { readonly server: Loss; readonly client: Loss },
  minSeen: number,
  [low, high]: readonly [number, number] = [0.15, 0.45],
): void {
  for (const [name, side] of Object.entries(loss)) {
    expect(side.seen, name).toBeGreaterThan(minSeen);
    expect(side.dropped / side.seen, name).toBeGreaterThan(low);
    expect(side.dropped / side.seen, name).toBeLessThan(high);
  }
}

// ---- The cxmpp gateway and its nodes on a link ----

/** Plain CoAP over UDP, or CoAP over DTLS (coaps, the PSK identity being the device). */
export type Security = "udp" | "dtls";

/** What netns-gateway.ts reports: per node the body numbers in arrival order, and its counters. */
export interface GatewayReport<S extends Security = Security> {
  readonly received: Record<string, number[]>;
  readonly strays: string[];
  readonly stats: GatewayStats;
  readonly dedupHits: number;
  /** The DtlsServer's stats and tables, over DTLS. */
  readonly dtls: S extends "dtls" ? DtlsServerStats & { sessions: number; handshakes: number } : undefined;
}

/** What netns-nodes.ts prints: per node its sends and counters, then the elapsed time. */
export interface NodesSummary {
  readonly nodes: ReadonlyArray<{
    readonly name: string;
    readonly resolved: number;
    readonly failed: string[];
    /** Over DTLS: the time to the first completed handshake and the DtlsClient's stats. */
    readonly handshakeMs?: number;
    readonly dtls?: DtlsClientStats;
    readonly connectAttempts: number;
    readonly pumpRetries: number;
    readonly retransmissions: number;
    readonly sent: number;
  }>;
  readonly elapsedMs: number;
}

export interface GatewayOnLink<S extends Security> {
  /** Asks the gateway for its report (stdin line `report`). */
  report(): Promise<GatewayReport<S>>;
  /** Closes its stdin: it closes its endpoint and exits. */
  stop(): void;
}

/**
 * Starts netns-gateway.ts in the server namespace (one device per name, over UDP or DTLS) and waits
 * until it is bound to `port`.
 */
export async function startGateway<S extends Security>(
  link: LossyLink,
  options: {
    readonly security: S;
    readonly port: number;
    readonly names: readonly string[];
    readonly transmission: object;
  },
): Promise<GatewayOnLink<S>> {
  const child = link.run(link.server, resolve(FIXTURES, "netns-gateway.ts"), [
    options.security,
    link.server.ip,
    String(options.port),
    JSON.stringify(options.transmission),
    options.names.join(","),
  ]);
  const ready = await nextJsonLine(child, 20_000);
  expect(ready).toEqual({ ready: true, address: `${link.server.ip}:${options.port}` });
  return {
    report: async () => (await ask(child, "report", 10_000)) as unknown as GatewayReport<S>,
    stop: () => child.stdin!.end(),
  };
}

/**
 * Runs netns-nodes.ts in the client namespace: one NodeClient per name against the gateway on `port`,
 * each sending `perNode` CON stanzas; resolves with its summary.
 */
export async function runNodes(
  link: LossyLink,
  options: {
    readonly security: Security;
    readonly port: number;
    readonly names: readonly string[];
    readonly perNode: number;
    readonly transmission: object;
    readonly retryDelayMs: number;
    readonly timeoutMs: number;
  },
): Promise<NodesSummary> {
  const child = link.run(link.client, resolve(FIXTURES, "netns-nodes.ts"), [
    options.security,
    link.server.ip,
    String(options.port),
    link.client.ip,
    options.names.join(","),
    String(options.perNode),
    JSON.stringify(options.transmission),
    String(options.retryDelayMs),
  ]);
  return (await nextJsonLine(child, options.timeoutMs)) as unknown as NodesSummary;
}
