/**
 * A real lossy link for tests (docs/INTEROP.md "Real packet loss"): two fresh network namespaces joined
 * by a veth pair (198.18.0.1/30 ↔ 198.18.0.2/30, addresses that exist only inside them), an nftables
 * INPUT rule in each dropping a share of UDP datagrams, with counters. Fixture processes run inside a
 * namespace and talk to the test in JSON lines. Needs root; `close()` (afterAll, also on failure) kills
 * every process in the namespaces and deletes them.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { resolve } from "node:path";
import { createInterface } from "node:readline";

const ROOT = resolve(import.meta.dirname, "../..");

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
        const nft = (rule: string) => sh(["ip", "netns", "exec", side.ns, "nft", rule]);
        nft("add table inet lossy");
        nft("add chain inet lossy in { type filter hook input priority 0; policy accept; }");
        nft("add rule inet lossy in meta l4proto udp counter");
        nft(
          `add rule inet lossy in meta l4proto udp numgen random mod 100 < ${options.lossPercent} counter drop`,
        );
      }
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
