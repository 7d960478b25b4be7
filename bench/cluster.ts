/**
 * `cxmpp bench cluster`: stanzas per second from nodes through one or two gateways into a real two-node
 * ejabberd cluster and out to a client, with the CPU each process spends per stanza, and the component
 * link's failover when the ejabberd node a gateway is linked to is SIGKILLed under load (issue 16,
 * "Figures"). The single-server figures beside which these are read come from `cxmpp bench federation`
 * (one gateway, one Prosody) on the same machine.
 *
 * The set-up, all on loopback, every part a separate OS process except the load generators:
 * - ejabberd 23.01 (Debian package), two nodes joined into one cluster (ejabberd-process.ts): vhost
 *   `localhost` with the user `alice`, the XEP-0114 components `br1.localhost` and `br2.localhost` in every
 *   node's `ejabberd_service` hosts map (`global_routes: false`: a link serves only its own domain).
 *   Requires root (the kit runs ejabberd as the user `ejabberd`).
 * - G gateways (`cxmpp gateway`, bin/cxmpp.js, each with its own data directory, SQLite durability
 *   `full` unless --durability, CoAP on a free UDP port), gateway g federating as `br<g>.localhost`.
 *   Gateway 1 has `xmpp_service` = node 1, node 2; gateway 2 = node 2, node 1: with two gateways each
 *   ejabberd node carries one component link.
 * - N devices, split in contiguous slices over the gateways (N/G each), alice as their allowed peer,
 *   registered in the data directories before the gateways start (federation.ts `provisionNodes`).
 * - In this process: N always-on nodes on UDP (federation.ts `startNodes`) and alice, an xmpp.js client
 *   logged in (PLAIN) on ejabberd node 2's c2s listener.
 *
 * Runs, one after the other on the same cluster, each with fresh gateways and data directories (the
 * cluster is started once: ~5 s): `--gateways 1`, `--gateways 2` (default: both, then the failover run).
 * After a warm-up of one stanza per node (not counted), every node sends M chat messages to alice, one at
 * a time, each awaited (`send()` resolves when its gateway has stored it in its durable outbox), all
 * nodes at once (federation.ts `sendUplink`). Counted at alice per (node, seq): exactly-once deliveries,
 * duplicates (and whether each carries the XEP-0359 origin-id of its first copy), first copies out of
 * order, and lost = acknowledged to a node but never arrived. Rate = stanzas arrived / seconds from the
 * first send to the last arrival; the total load is the same N × M whatever G is.
 *
 * CPU: utime + stime from /proc/PID/stat of each gateway process and of each ejabberd VM (beam.smp),
 * read before the first send and 250 ms after the last arrival. A gateway's figure is divided by the
 * stanzas of its own nodes, an ejabberd node's by all stanzas of the run (every stanza crosses the
 * cluster: component link on one node, alice's c2s on node 2); `total_cpu_us_per_stanza` is the sum of
 * all of them over all stanzas. `*_cpu_share` = CPU / wall time (near 1: that process was the
 * bottleneck); `load_cpu_share` is this process's (the nodes and alice).
 *
 * Failover run (`--failover`; on by default when --gateways is not given): one gateway linked to node 1
 * first; while its N nodes stream M stanzas each to alice (on node 2), ejabberd node 1 is SIGKILLed once a
 * third of them has arrived. failover_ms = from the kill to the `time` of the gateway's own
 * `federation.online` log line for node 2 (both wall clocks of this machine, 1 ms resolution); offline_ms
 * likewise to its `federation.offline`; arrival_gap_ms = the longest time without any arrival at alice
 * (from the first send); then node 1 is restarted and rejoins the cluster.
 *
 * `--json` prints one JSON object: {nodes, stanzas_per_node, durability, clk_tck, cluster_start_s,
 * runs: Run[], failover: Failover | null, ejabberd_version, elapsed_s, anchors}. Exit code 1 when a
 * stanza acknowledged to a node was lost or a duplicate lacked its first copy's origin-id (the figures
 * are still printed), 2 for bad options or missing software.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import type { Element } from "@xmpp/xml";
import { freeUdpPort } from "./child-process.js";
import { fmt, integer, round, runBenchCommand, sleep, table, UsageError } from "./common.js";
import { type EjabberdCluster, type EjabberdNode, startEjabberdCluster } from "./ejabberd-process.js";
import {
  type Alice,
  clkTck,
  closeNodes,
  connectAlice,
  cpuTotal,
  type GatewayChild,
  loadXmppClient,
  MissingSoftware,
  processCpuUs,
  provisionNodes,
  type SimNode,
  sendUplink,
  startGatewayChild,
  startNodes,
  Tally,
  until,
  waitForLink,
} from "./federation.js";

export interface ClusterBenchOptions {
  /** 1 or 2; default: both runs, one after the other. Commander hands over strings. */
  readonly gateways?: string | number;
  /** Nodes in all (split over the gateways). */
  readonly nodes?: string | number;
  /** Stanzas per node. */
  readonly stanzas?: string | number;
  /** The gateways' SQLite durability: full (default) or normal. */
  readonly durability?: string;
  /** The failover run; default: on when --gateways is not given. */
  readonly failover?: boolean;
  readonly json?: boolean;
}

interface ClusterConfig {
  readonly gateways: readonly number[];
  readonly nodes: number;
  readonly stanzas: number;
  readonly durability: "full" | "normal";
  readonly failover: boolean;
}

/** What these figures are read against; measured by its own command, never copied here. */
export const CLUSTER_ANCHORS = Object.freeze({
  single_server: "cxmpp bench federation",
  single_server_setup:
    "one gateway on one Prosody 0.12, same machine: its uplink stanzas_per_s and gateway/prosody cpu_us_per_stanza",
});

const VHOST = "localhost";
const ALICE = "alice";
const ALICE_JID = `${ALICE}@${VHOST}`;
const PASSWORD = "bench-cluster-pw";
const DOMAINS = ["br1.localhost", "br2.localhost"] as const;
const secretOf = (domain: string) => `bench-cluster-${domain}`;
const SID = "urn:xmpp:sid:0";
const GRACE_MS = 250;
const EJABBERDCTL = "/usr/sbin/ejabberdctl";
const ERL = "/usr/bin/erl";

// ---------------------------------------------------------------------------------------------------
// Arrivals at alice.

/** Arrivals of one run: the tally of first copies, every arrival's time, origin-ids of duplicates. */
class Arrivals {
  readonly tally: Tally;
  /** performance.now() of every arrival, copies included, in order. */
  readonly times: number[] = [];
  duplicatesWithOriginId = 0;
  errors = 0;
  readonly warm = new Set<number>();
  /** Origin-id of the first copy of each (node, seq). */
  private readonly origins = new Map<string, string | undefined>();

  constructor(nodes: number) {
    this.tally = new Tally(nodes);
  }

  add(node: number, seq: number, originId: string | undefined): void {
    this.times.push(performance.now());
    const key = `${node} ${seq}`;
    if (this.tally.add(node, seq)) {
      this.origins.set(key, originId);
      return;
    }
    if (!this.origins.has(key)) return; // misrouted (a node index out of range): counted by the tally
    if (originId !== undefined && originId === this.origins.get(key)) this.duplicatesWithOriginId++;
  }

  arrived(key: string): boolean {
    return this.origins.has(key);
  }

  /** The longest time (ms) without an arrival, from `t0` to the last arrival. */
  longestGap(t0: number): number {
    let gap = 0;
    let last = t0;
    for (const t of this.times) {
      gap = Math.max(gap, t - last);
      last = t;
    }
    return gap;
  }
}

/** Alice's stanzas go to the run in progress; a run's bodies carry its tag, so nothing stale counts. */
interface Receiver {
  tag: string;
  arrivals: Arrivals;
}

function aliceHandler(pings: Map<string, () => void>, current: () => Receiver | undefined) {
  return (stanza: Element): void => {
    if (stanza.is("iq")) {
      if (stanza.attrs.type === "result") pings.get(stanza.attrs.id ?? "")?.();
      return;
    }
    const run = current();
    if (!stanza.is("message") || !run) return;
    const body = stanza.getChildText("body") ?? "";
    if (stanza.attrs.type === "error") {
      run.arrivals.errors++;
      return;
    }
    const m = /^(up|warm) (\S+) (\d+)(?: (\d+))?$/.exec(body);
    if (!m || m[2] !== run.tag) return;
    if (m[1] === "warm") run.arrivals.warm.add(Number(m[3]));
    else {
      const origin = stanza.getChild("origin-id", SID)?.attrs.id as string | undefined;
      run.arrivals.add(Number(m[3]), Number(m[4]), origin);
    }
  };
}

// ---------------------------------------------------------------------------------------------------
// Gateways and their nodes.

interface LinkEvent {
  readonly event: string;
  readonly service: string | undefined;
  /** The log line's own `time`, ms since the epoch. */
  readonly time: number;
}

interface BenchGateway {
  readonly domain: string;
  readonly child: GatewayChild;
  /** The gateway's federation.* log lines, in order. */
  readonly events: LinkEvent[];
  /** The (global) indices of its nodes. */
  readonly indices: readonly number[];
}

/** Collects `federation.*` records from a gateway's JSON log lines. */
function linkEventCollector(events: LinkEvent[]): (chunk: string) => void {
  let partial = "";
  return (chunk) => {
    const lines = (partial + chunk).split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) {
      if (!line.startsWith("{") || !line.includes('"federation.')) continue;
      try {
        const r = JSON.parse(line) as { event?: unknown; service?: unknown; time?: unknown };
        if (typeof r.event !== "string" || !r.event.startsWith("federation.")) continue;
        events.push({
          event: r.event,
          service: typeof r.service === "string" ? r.service : undefined,
          time: typeof r.time === "string" ? Date.parse(r.time) : Date.now(),
        });
      } catch {
        // not a log record
      }
    }
  };
}

interface Bench {
  readonly config: ClusterConfig;
  readonly cluster: EjabberdCluster;
  readonly alice: Alice;
  readonly pings: Map<string, () => void>;
  readonly dir: string;
  receiver: Receiver | undefined;
  progress(s: string): void;
}

interface Fleet {
  readonly gateways: readonly BenchGateway[];
  readonly nodes: readonly SimNode[];
  readonly arrivals: Arrivals;
  readonly tag: string;
  stop(): Promise<void>;
}

/** Node slice of gateway `g` of `count`: contiguous, N/G each (the first ones take a remainder). */
function slice(n: number, count: number, g: number): number[] {
  const from = Math.floor((g * n) / count);
  const to = Math.floor(((g + 1) * n) / count);
  return Array.from({ length: to - from }, (_, k) => from + k);
}

/**
 * Starts `count` gateways (gateway g as DOMAINS[g], linked to `order(g)` in that order of preference)
 * with their nodes, checks each link with a ping from alice and warms up; alice's arrivals go to the
 * returned fleet from now on.
 */
async function startFleet(
  bench: Bench,
  tag: string,
  count: number,
  order: (g: number) => readonly EjabberdNode[],
): Promise<Fleet> {
  const { config } = bench;
  const dir = join(bench.dir, tag);
  mkdirSync(dir, { recursive: true });
  const gateways: BenchGateway[] = [];
  const nodes: SimNode[] = [];
  const arrivals = new Arrivals(config.nodes);
  const stop = async () => {
    if (bench.receiver?.tag === tag) bench.receiver = undefined;
    await closeNodes(nodes);
    await Promise.all(gateways.map((g) => g.child.stop()));
  };
  try {
    bench.progress(`${tag}: starting ${count} gateway(s) with ${config.nodes} devices in all…`);
    const files: string[][] = [];
    const started = await Promise.allSettled(
      Array.from({ length: count }, async (_, g) => {
        const domain = DOMAINS[g]!;
        const address = `127.0.0.1:${await freeUdpPort()}`;
        const indices = slice(config.nodes, count, g);
        const dataDir = join(dir, `gateway${g + 1}`);
        files[g] = provisionNodes(dataDir, dir, indices, address, domain, ALICE_JID);
        const events: LinkEvent[] = [];
        const child = await startGatewayChild(
          {
            CXMPP_DATA_DIR: dataDir,
            CXMPP_LISTEN: address,
            CXMPP_DTLS_LISTEN: "off",
            CXMPP_DOMAIN: domain,
            CXMPP_XMPP_SERVICE: order(g)
              .map((n) => n.componentService)
              .join(","),
            CXMPP_XMPP_DOMAIN: domain,
            CXMPP_XMPP_SECRET: secretOf(domain),
            CXMPP_DURABILITY: config.durability,
            CXMPP_LOG_LEVEL: "info", // federation.online / offline carry the failover's times
          },
          dir,
          linkEventCollector(events),
        );
        gateways[g] = { domain, child, events, indices };
      }),
    );
    const failed = started.find((s): s is PromiseRejectedResult => s.status === "rejected");
    if (failed) throw failed.reason;
    for (const gw of gateways) await waitForLink(bench.alice, bench.pings, 20_000, gw.domain);

    bench.progress(`${tag}: connecting ${config.nodes} nodes…`);
    await startNodes(
      nodes,
      gateways.flatMap((g) => g.indices),
      files.flat(),
      () => {},
    );
    bench.receiver = { tag, arrivals };
    // Warm-up, not counted: one stanza per node (JIT, first commits, the cluster's first routes).
    await Promise.all(
      nodes.map((n) =>
        sendUplink([n], 1, ALICE_JID, () => `warm ${tag} ${n.index}`).then((r) => {
          if (r.failed > 0) throw new Error(`node${n.index}'s warm-up stanza was refused`);
        }),
      ),
    );
    if (!(await until(() => arrivals.warm.size >= nodes.length, performance.now() + 20_000)))
      throw new Error(
        `warm-up incomplete: ${arrivals.warm.size} of ${nodes.length} stanzas arrived\n${gateways.map((g) => g.child.output()).join("\n")}`,
      );
    await sleep(GRACE_MS);
    return { gateways, nodes, arrivals, tag, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Which ejabberd node (1-based name) serves a component service URI. */
function nodeName(cluster: EjabberdCluster, service: string | undefined): string {
  const i = cluster.nodes.findIndex((n) => n.componentService === service);
  return i < 0 ? "?" : `node${i + 1}`;
}

interface CpuMark {
  readonly at: number;
  readonly gateways: number[];
  readonly ejabberd: number[];
  readonly load: number;
}

function mark(bench: Bench, fleet: Fleet): CpuMark {
  return {
    at: performance.now(),
    gateways: fleet.gateways.map((g) => processCpuUs(g.child.pid)),
    ejabberd: bench.cluster.nodes.map((n) => (n.pid > 0 ? processCpuUs(n.pid) : 0)),
    load: cpuTotal(process.cpuUsage()),
  };
}

/** The uplink load of one run, counted until every stanza arrived (or the deadline), plus a grace. */
async function stream(
  bench: Bench,
  fleet: Fleet,
  during?: (t0: number) => Promise<void>,
): Promise<{ t0: number; sent: number; failed: number; acked: Set<string> }> {
  const planned = bench.config.nodes * bench.config.stanzas;
  const acked = new Set<string>();
  const t0 = performance.now();
  const side = during?.(t0);
  const sends = await sendUplink(
    fleet.nodes,
    bench.config.stanzas,
    ALICE_JID,
    (i, s) => `up ${fleet.tag} ${i} ${s}`,
    (i, s) => acked.add(`${i} ${s}`),
  );
  await side;
  await until(() => fleet.arrivals.tally.delivered >= planned, t0 + 20_000 + planned * 10);
  await sleep(GRACE_MS); // late duplicates show up; the barriers of the last windows come back
  return { t0, ...sends, acked };
}

/** What every run reports about its stanzas. */
interface Delivery {
  readonly sent: number;
  readonly acknowledged: number;
  /** First copies that arrived (exactly-once count). */
  readonly delivered: number;
  readonly duplicates: number;
  readonly duplicates_with_origin_id: number;
  readonly out_of_order: number;
  /** Acknowledged to a node, never arrived. */
  readonly lost: number;
  /** Sends that failed plus type='error' stanzas at alice. */
  readonly errors: number;
  readonly elapsed_s: number;
  readonly stanzas_per_s: number;
}

function delivery(fleet: Fleet, s: Awaited<ReturnType<typeof stream>>): Delivery {
  const a = fleet.arrivals;
  let lost = 0;
  for (const key of s.acked) if (!a.arrived(key)) lost++;
  const end = a.tally.lastArrival > s.t0 ? a.tally.lastArrival : performance.now();
  const seconds = (end - s.t0) / 1000;
  return {
    sent: s.sent,
    acknowledged: s.acked.size,
    delivered: a.tally.delivered,
    duplicates: a.tally.duplicates,
    duplicates_with_origin_id: a.duplicatesWithOriginId,
    out_of_order: a.tally.outOfOrder,
    lost,
    errors: s.failed + a.errors,
    elapsed_s: round(seconds, 3),
    stanzas_per_s: seconds > 0 ? Math.round(a.tally.delivered / seconds) : 0,
  };
}

// ---------------------------------------------------------------------------------------------------
// The runs.

export interface RunResult extends Delivery {
  readonly gateways: number;
  readonly nodes: number;
  readonly stanzas_per_node: number;
  /** The ejabberd node each gateway's link was on (node1, node2). */
  readonly linked_to: string[];
  /** Each gateway's CPU / stanzas of its own nodes. */
  readonly gateway_cpu_us_per_stanza: number[];
  /** Each ejabberd node's CPU / all stanzas of the run. */
  readonly ejabberd_cpu_us_per_stanza: number[];
  /** All gateways and ejabberd nodes together / all stanzas. */
  readonly total_cpu_us_per_stanza: number;
  readonly gateway_cpu_share: number[];
  readonly ejabberd_cpu_share: number[];
  readonly load_cpu_share: number;
}

async function uplinkRun(bench: Bench, count: number): Promise<RunResult> {
  const { cluster, config } = bench;
  const [n1, n2] = cluster.nodes as [EjabberdNode, EjabberdNode];
  const fleet = await startFleet(bench, `g${count}`, count, (g) => (g % 2 === 0 ? [n1, n2] : [n2, n1]));
  try {
    bench.progress(`g${count}: ${config.nodes} nodes × ${config.stanzas} stanzas → ${ALICE_JID}…`);
    const before = mark(bench, fleet);
    const s = await stream(bench, fleet);
    const after = mark(bench, fleet);
    const d = delivery(fleet, s);
    const wallUs = (after.at - before.at) * 1000;
    const per = (us: number, n: number) => (n > 0 ? round(us / n, 1) : 0);
    const share = (us: number) => (wallUs > 0 ? round(us / wallUs, 2) : 0);
    const gw = after.gateways.map((x, g) => x - (before.gateways[g] ?? 0));
    const ej = after.ejabberd.map((x, i) => x - (before.ejabberd[i] ?? 0));
    const total = [...gw, ...ej].reduce((x, y) => x + y, 0);
    return {
      gateways: count,
      nodes: config.nodes,
      stanzas_per_node: config.stanzas,
      ...d,
      linked_to: fleet.gateways.map((g) =>
        nodeName(cluster, g.events.filter((e) => e.event === "federation.online").at(-1)?.service),
      ),
      gateway_cpu_us_per_stanza: gw.map((us, g) =>
        per(
          us,
          (fleet.gateways[g]?.indices ?? []).reduce((n, i) => n + fleet.arrivals.tally.count(i), 0),
        ),
      ),
      ejabberd_cpu_us_per_stanza: ej.map((us) => per(us, d.delivered)),
      total_cpu_us_per_stanza: per(total, d.delivered),
      gateway_cpu_share: gw.map(share),
      ejabberd_cpu_share: ej.map(share),
      load_cpu_share: share(after.load - before.load),
    };
  } finally {
    await fleet.stop();
  }
}

export interface FailoverResult extends Delivery {
  readonly nodes: number;
  readonly stanzas_per_node: number;
  /** First copies arrived when node 1 was SIGKILLed. */
  readonly delivered_at_kill: number;
  /** SIGKILL → the gateway's `federation.online` on node 2 (its log's own time). */
  readonly failover_ms: number;
  /** SIGKILL → the gateway's `federation.offline`. */
  readonly offline_ms: number;
  /** The longest time without an arrival at alice, from the first send to the last arrival. */
  readonly arrival_gap_ms: number;
  /** SIGKILL → the next arrival at alice. */
  readonly first_arrival_after_kill_ms: number;
  readonly linked_before: string;
  readonly linked_after: string;
  readonly node1_restart_s: number;
  /** How node 1 came back into the cluster: from its mnesia schema or by join_cluster. */
  readonly node1_rejoined: string;
}

async function failoverRun(bench: Bench): Promise<FailoverResult> {
  const { cluster, config } = bench;
  const [n1, n2] = cluster.nodes as [EjabberdNode, EjabberdNode];
  const planned = config.nodes * config.stanzas;
  const fleet = await startFleet(bench, "failover", 1, () => [n1, n2]);
  let result: Omit<FailoverResult, "node1_restart_s" | "node1_rejoined">;
  try {
    const gw = fleet.gateways[0]!;
    const online = () => gw.events.filter((e) => e.event === "federation.online");
    const linkedBefore = online().at(-1)?.service;
    if (linkedBefore !== n1.componentService)
      throw new Error(`the gateway is not linked to node 1 (${linkedBefore ?? "no link"})`);
    const eventsBefore = gw.events.length;
    let killedAt = 0; // Date.now(), the clock of the gateway's log
    let killedPerf = 0;
    let deliveredAtKill = 0;
    bench.progress(
      `failover: ${config.nodes} nodes × ${config.stanzas} stanzas; SIGKILL of ejabberd node 1 after ${Math.ceil(planned / 3)} arrived…`,
    );
    const s = await stream(bench, fleet, async (t0) => {
      const third = Math.ceil(planned / 3);
      if (!(await until(() => fleet.arrivals.tally.delivered >= third, t0 + 20_000 + planned * 10)))
        throw new Error(
          `only ${fleet.arrivals.tally.delivered} of ${planned} stanzas arrived before the kill`,
        );
      deliveredAtKill = fleet.arrivals.tally.delivered;
      killedPerf = performance.now();
      killedAt = Date.now();
      await n1.kill();
    });
    const after = () => gw.events.slice(eventsBefore);
    await until(() => after().some((e) => e.event === "federation.online"), performance.now() + 20_000);
    const back = after().find((e) => e.event === "federation.online");
    if (!back) throw new Error(`the gateway did not come back online after the kill\n${gw.child.output()}`);
    const offline = after().find((e) => e.event === "federation.offline");
    const next = fleet.arrivals.times.find((t) => t >= killedPerf);
    result = {
      nodes: config.nodes,
      stanzas_per_node: config.stanzas,
      ...delivery(fleet, s),
      delivered_at_kill: deliveredAtKill,
      failover_ms: back.time - killedAt,
      offline_ms: offline ? offline.time - killedAt : -1,
      arrival_gap_ms: round(fleet.arrivals.longestGap(s.t0), 1),
      first_arrival_after_kill_ms: next === undefined ? -1 : round(next - killedPerf, 1),
      linked_before: nodeName(cluster, linkedBefore),
      linked_after: nodeName(cluster, back.service),
    };
  } finally {
    await fleet.stop();
  }
  bench.progress("failover: restarting ejabberd node 1…");
  const r0 = performance.now();
  const { rejoined } = await n1.restart();
  return { ...result, node1_restart_s: round((performance.now() - r0) / 1000, 1), node1_rejoined: rejoined };
}

// ---------------------------------------------------------------------------------------------------
// The benchmark.

export interface ClusterResult {
  readonly nodes: number;
  readonly stanzas_per_node: number;
  readonly durability: "full" | "normal";
  readonly clk_tck: number;
  readonly cluster_start_s: number;
  readonly runs: RunResult[];
  readonly failover: FailoverResult | null;
  readonly ejabberd_version: string;
  readonly elapsed_s: number;
  readonly anchors: typeof CLUSTER_ANCHORS;
}

function ejabberdVersion(): string {
  try {
    const v = execFileSync("dpkg-query", ["-W", "-f", "$" + "{Version}", "ejabberd"], { encoding: "utf8" });
    return v.trim().replace(/-[^-]*$/, "") || "unknown"; // 23.01-1 → 23.01
  } catch {
    return "unknown";
  }
}

async function runCluster(config: ClusterConfig, progress: (s: string) => void): Promise<ClusterResult> {
  const started = performance.now();
  if (process.getuid?.() !== 0)
    throw new MissingSoftware("this benchmark must run as root (it runs ejabberd as the user `ejabberd`)");
  for (const program of [EJABBERDCTL, ERL])
    if (!existsSync(program))
      throw new MissingSoftware(
        `this benchmark needs ejabberd (${program} is missing): \`apt-get install ejabberd\`; it runs its own two-node cluster on loopback (docs/INTEROP.md)`,
      );
  const xmppClient = await loadXmppClient();
  const dir = mkdtempSync(join(tmpdir(), "cxmpp-bench-cluster-"));
  let cluster: EjabberdCluster | undefined;
  let alice: Alice | undefined;
  try {
    progress("starting a two-node ejabberd cluster…");
    cluster = await startEjabberdCluster({
      nodes: 2,
      vhosts: [VHOST],
      components: DOMAINS.map((domain) => ({ domain, secret: secretOf(domain) })),
      users: [{ username: ALICE, host: VHOST, password: PASSWORD }],
    });
    const clusterStartS = (performance.now() - started) / 1000;
    const pings = new Map<string, () => void>();
    let receiver: () => Receiver | undefined = () => undefined;
    alice = await connectAlice(
      xmppClient,
      cluster.nodes[1]!.c2sService,
      aliceHandler(pings, () => receiver()),
      { domain: VHOST, username: ALICE, password: PASSWORD },
    );
    const bench: Bench = { config, cluster, alice, pings, dir, receiver: undefined, progress };
    receiver = () => bench.receiver;

    const runs: RunResult[] = [];
    for (const g of config.gateways) runs.push(await uplinkRun(bench, g));
    const failover = config.failover ? await failoverRun(bench) : null;
    return {
      nodes: config.nodes,
      stanzas_per_node: config.stanzas,
      durability: config.durability,
      clk_tck: clkTck(),
      cluster_start_s: round(clusterStartS, 1),
      runs,
      failover,
      ejabberd_version: ejabberdVersion(),
      elapsed_s: round((performance.now() - started) / 1000, 1),
      anchors: CLUSTER_ANCHORS,
    };
  } finally {
    await alice?.stop();
    await cluster?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------------
// Output.

const pct = (x: number) => `${Math.round(x * 100)}%`;

function format(r: ClusterResult): string {
  const lines = [
    `cxmpp bench cluster: ${r.nodes} node(s) × ${r.stanzas_per_node} stanzas → ${ALICE_JID} (on ejabberd node 2), ejabberd ${r.ejabberd_version} two-node cluster and \`cxmpp gateway\` (SQLite, durability ${r.durability}) as separate processes on loopback`,
    "",
  ];
  if (r.runs.length > 0)
    lines.push(
      table(
        [
          "gateways",
          "linked to",
          "arrived",
          "dup",
          "lost",
          "stanzas/s",
          "gateway µs/stanza",
          "ejabberd µs/stanza (n1 / n2)",
          "all µs/stanza",
          "busy gw / ej n1 / ej n2 / load",
        ],
        r.runs.map((x) => [
          String(x.gateways),
          x.linked_to.join(", "),
          `${fmt(x.delivered)} of ${fmt(x.sent)}`,
          String(x.duplicates),
          String(x.lost),
          fmt(x.stanzas_per_s),
          x.gateway_cpu_us_per_stanza.join(" / "),
          x.ejabberd_cpu_us_per_stanza.join(" / "),
          String(x.total_cpu_us_per_stanza),
          [
            x.gateway_cpu_share.map(pct).join("+"),
            ...x.ejabberd_cpu_share.map(pct),
            pct(x.load_cpu_share),
          ].join(" / "),
        ]),
      ),
      "",
    );
  const f = r.failover;
  if (f)
    lines.push(
      `  failover: 1 gateway, ${f.nodes} nodes × ${f.stanzas_per_node} stanzas; ejabberd node 1 SIGKILLed after ${fmt(f.delivered_at_kill)} arrived`,
      `    link ${f.linked_before} → ${f.linked_after}: offline after ${f.offline_ms} ms, online on ${f.linked_after} after ${f.failover_ms} ms (the gateway's log times)`,
      `    arrivals: longest gap ${f.arrival_gap_ms} ms, first after the kill ${f.first_arrival_after_kill_ms} ms; ${fmt(f.stanzas_per_s)} stanzas/s over the run`,
      `    ${fmt(f.delivered)} of ${fmt(f.acknowledged)} acknowledged arrived exactly once, lost ${f.lost}, duplicates ${f.duplicates} (${f.duplicates_with_origin_id} with the origin-id of their first copy), out of order ${f.out_of_order}, errors ${f.errors}`,
      `    node 1 restarted in ${f.node1_restart_s} s and rejoined the cluster (${f.node1_rejoined === "schema" ? "from its mnesia schema" : "by join_cluster"})`,
      "",
    );
  lines.push(
    `  comparison: the single-server figures (${r.anchors.single_server_setup}) are measured by \`${r.anchors.single_server}\``,
    `  CPU = utime + stime from /proc/PID/stat (1/${r.clk_tck} s ticks), first send to ${GRACE_MS} ms after the last arrival; gateway / its own nodes' stanzas, ejabberd / all stanzas;`,
    "  busy = CPU / wall time (load = this process: the nodes and alice); the same cluster for every run, fresh gateways and data directories each run;",
    `  errors: ${r.runs.map((x) => `${x.gateways} gw ${x.errors}`).join(", ") || "–"}; out of order: ${r.runs.map((x) => `${x.gateways} gw ${x.out_of_order}`).join(", ") || "–"}; cluster start ${r.cluster_start_s} s; total ${r.elapsed_s} s`,
    "",
  );
  return lines.join("\n");
}

/** What makes the exit code 1: a stanza acknowledged to a node lost, a duplicate without its origin-id. */
function violations(r: ClusterResult): string[] {
  const out: string[] = [];
  const check = (name: string, d: Delivery) => {
    if (d.lost > 0) out.push(`${name}: ${d.lost} acknowledged stanza(s) lost`);
    if (d.duplicates !== d.duplicates_with_origin_id)
      out.push(
        `${name}: ${d.duplicates - d.duplicates_with_origin_id} duplicate(s) without their first copy's origin-id`,
      );
  };
  for (const x of r.runs) check(`${x.gateways} gateway(s)`, x);
  if (r.failover) check("failover", r.failover);
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Entry point.

function parse(opts: ClusterBenchOptions): ClusterConfig {
  const durability = (opts.durability ?? "full").trim();
  if (durability !== "full" && durability !== "normal")
    throw new UsageError(`--durability must be full or normal, not '${opts.durability}'`);
  const gateways = opts.gateways === undefined ? [1, 2] : [integer("gateways", opts.gateways, 1, 1, 2)];
  const nodes = integer("nodes", opts.nodes, 20, 1, 1_000);
  if (nodes < Math.max(...gateways))
    throw new UsageError(`--nodes must be at least the number of gateways (${Math.max(...gateways)})`);
  return {
    gateways,
    nodes,
    stanzas: integer("stanzas", opts.stanzas, 100, 1, 100_000),
    durability,
    failover: opts.failover ?? opts.gateways === undefined,
  };
}

/** Entry point of `cxmpp bench cluster`; returns the exit code and never throws. */
export function runClusterBench(opts: ClusterBenchOptions): Promise<number> {
  return runBenchCommand(
    "cluster",
    () => parse(opts),
    (config) => report(opts, config),
    { usage: 2, failure: (error) => (error instanceof MissingSoftware ? 2 : 1) },
  );
}

async function report(opts: ClusterBenchOptions, config: ClusterConfig): Promise<number> {
  const result = await runCluster(config, (s) => {
    if (!opts.json) process.stderr.write(`  ${s}\n`);
  });
  process.stdout.write(opts.json ? `${JSON.stringify(result)}\n` : format(result));
  const bad = violations(result);
  if (bad.length === 0) return 0;
  process.stderr.write(`cxmpp bench cluster: ${bad.join("; ")}\n`);
  return 1;
}
