/**
 * `cxmpp bench federation`: stanzas per second from nodes through the gateway into a real XMPP server
 * and out to a real client, and back, with the CPU each server process spends per stanza, side by side
 * (docs/ARCHITECTURE.md "Targets": the gateway against the Paho MQTT-SN gateway's 62–89 µs per QoS-1 message).
 *
 * The set-up, all on loopback, every part a separate OS process except the load generators:
 * - Prosody 0.12 (Debian package) in the foreground in a temporary directory (prosody-process.ts):
 *   vhost `a.localhost` with the user `alice`, the XEP-0114 component `iot.localhost`, no s2s listener.
 * - The gateway as `cxmpp gateway` (bin/cxmpp.js, the program operators run) in its own process with
 *   CXMPP_* environment: a fresh data directory (SQLite store, durability `full` unless --durability),
 *   CoAP on a free UDP port, federating as `iot.localhost` through Prosody's component port.
 * - N devices registered in that data directory before the gateway starts, each with its device file
 *   (the JSON view `cxmpp provision add NAME --out NAME.json` writes, made by the same functions in this
 *   process, so that registering a hundred devices does not start a hundred programs), with alice as
 *   their allowed peer.
 * - In this process: N always-on nodes (src/core NodeClient on src/node UDP endpoints, one socket each,
 *   keys read from the device files) that observe their downlink (RFC 7641), and alice, a minimal
 *   xmpp.js 0.14 client (`@xmpp/client`, a devDependency: imported only when the benchmark runs, with a
 *   clear message when it is not installed) logged in with PLAIN.
 *
 * Phases (after a warm-up of one stanza per node each way, not counted):
 * 1. uplink: every node sends M chat messages to alice, one at a time (each awaited: `send()` resolves
 *    when the gateway has stored it in its durable outbox), all nodes at once. The gateway sends them to
 *    Prosody (windows of 32 confirmed by barriers, docs/PROTOCOL.md §6.2), Prosody to alice. Counted
 *    where they arrive: at alice, per node, duplicates and order checked by the body `up <node> <seq>`.
 * 2. downlink: alice sends M messages to each node, at most --window per node not yet arrived (so the
 *    mailboxes stay within their limits); Prosody hands them to the gateway, which queues them in the
 *    node's mailbox and pushes them with an Observe notification; the node acknowledges with an empty
 *    uplink. Counted at the nodes. A node that has heard nothing for a second while it still expects
 *    stanzas polls once (counted as `stall_polls`; 0 when Observe did its job).
 * Rates are stanzas that arrived / seconds from the first send to the last arrival.
 *
 * CPU: utime + stime of the gateway process and of the Prosody process (/proc/PID/stat, every thread,
 * clock ticks of 1/CLK_TCK s, usually 10 ms) read before the first send of a phase and 250 ms after its
 * last arrival (so the barrier confirmations and downlink acknowledgements the phase caused are in),
 * divided by the stanzas of the phase. Prosody's figure is what a real XMPP server spends to route the
 * same stanzas (component ⇄ c2s), so the gateway's can be read against it as well as against Paho's.
 * `*_cpu_share` = CPU / wall time of the phase: near 1 means that process was the bottleneck;
 * `load_cpu_share` is this process's (the nodes and alice, the load generators) on the same scale.
 *
 * `--json` prints one JSON object: {nodes, stanzas_per_node, planned, window, durability, clk_tck,
 * uplink: Phase, downlink: Phase, gateway_rss_mb, prosody_version, elapsed_s, anchors}, where Phase has
 * sent, delivered, duplicates, out_of_order, lost, errors, elapsed_s, stanzas_per_s, gateway_cpu_us,
 * prosody_cpu_us, gateway_cpu_us_per_stanza, prosody_cpu_us_per_stanza, gateway_cpu_share,
 * prosody_cpu_share, load_cpu_share (downlink also misrouted and stall_polls). Exit code 1 when a phase did not deliver
 * every stanza exactly once (the figures are still printed), 2 for bad options or missing software.
 */
import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { accessSync, constants, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { performance } from "node:perf_hooks";
import type { Client } from "@xmpp/client";
import { type Element, xml } from "@xmpp/xml";
import { el, type XElement } from "../codec/index.js";
import { nodeFromDevice } from "../gateway/cli/node-command.js";
import { deviceFile } from "../gateway/cli/provision-command.js";
import type { Device } from "../gateway/devices.js";
import { openStore } from "../gateway/store/index.js";
import { packageRoot } from "../gateway/version.js";
import type { NodeClient } from "../src/core/index.js";
import type { UdpEndpoint } from "../src/node/index.js";
import { cleanEnv, freeUdpPort, killOnExit } from "./child-process.js";
import {
  fmt,
  gatewayNodeOptions,
  integer,
  round,
  runBenchCommand,
  sleep,
  table,
  UsageError,
} from "./common.js";
import { type Prosody, startProsody } from "./prosody-process.js";

export interface FederationBenchOptions {
  /** Commander hands over strings; numbers are accepted too. */
  readonly nodes?: string | number;
  /** Stanzas per node, each way. */
  readonly stanzas?: string | number;
  /** Downlink stanzas per node sent by alice and not yet arrived. */
  readonly window?: string | number;
  /** The gateway's SQLite durability: full (default) or normal. */
  readonly durability?: string;
  readonly json?: boolean;
}

interface FederationConfig {
  readonly nodes: number;
  readonly stanzas: number;
  readonly window: number;
  readonly durability: "full" | "normal";
}

/** Anchors (docs/ARCHITECTURE.md), printed beside our figures. */
export const FEDERATION_ANCHORS = Object.freeze({
  paho_cpu_us_per_qos1: [62, 89] as const,
  paho_cpu_us_per_qos0: 50,
});

const VHOST = "a.localhost";
const COMPONENT = "iot.localhost";
const SECRET = "bench-federation-secret";
const ALICE = "alice";
const ALICE_JID = `${ALICE}@${VHOST}`;
const PASSWORD = "bench-pw";
const GRACE_MS = 250;
const CLI = join(packageRoot(), "bin", "cxmpp.js");

/** Software the benchmark needs is missing: exit code 2, like a bad option. */
export class MissingSoftware extends Error {}

// ---------------------------------------------------------------------------------------------------
// CPU of another process, from /proc.

let clockTicks: number | undefined;
/** Clock ticks per second of /proc/PID/stat (getconf CLK_TCK). */
export function clkTck(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    } catch {
      clockTicks = 100; // the value on every Linux this runs on
    }
  }
  return clockTicks;
}

/** utime + stime of process `pid` (all its threads) in µs, from /proc/PID/stat (proc(5)). */
export function processCpuUs(pid: number): number {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch (error) {
    throw new Error(`cannot read the CPU time of process ${pid}: ${(error as Error).message}`);
  }
  // Fields after the command name (which may hold spaces and parentheses): state is field 3,
  // utime field 14, stime field 15.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]);
  if (!Number.isFinite(ticks)) throw new Error(`unexpected /proc/${pid}/stat: ${stat}`);
  return (ticks * 1e6) / clkTck();
}

export const cpuTotal = (u: NodeJS.CpuUsage): number => u.user + u.system;

export function rssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? round(Number(m[1]) / 1024, 1) : 0;
  } catch {
    return 0;
  }
}

/** Whether an executable `program` is on PATH. */
export function onPath(program: string): boolean {
  return (process.env.PATH ?? "").split(delimiter).some((d) => {
    try {
      accessSync(join(d, program), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

// ---------------------------------------------------------------------------------------------------
// The gateway: `cxmpp gateway` as a child process.

export interface GatewayChild {
  readonly pid: number;
  output(): string;
  stop(): Promise<void>;
}

/**
 * Starts `cxmpp gateway` with `env` (and none of the caller's CXMPP_*); resolves once it listens.
 * `onOutput` sees every chunk of its stdout and stderr (its JSON log lines) as it comes.
 */
export async function startGatewayChild(
  env: Readonly<Record<string, string>>,
  cwd: string,
  onOutput?: (chunk: string) => void,
): Promise<GatewayChild> {
  const child = spawn(process.execPath, [...gatewayNodeOptions(), CLI, "gateway"], {
    env: cleanEnv(env),
    cwd, // so that no ./cxmpp.json of the caller's directory is read
    stdio: ["ignore", "pipe", "pipe"],
  });
  killOnExit(child);
  let out = "";
  const keep = (s: string) => {
    out = (out + s).slice(-20_000);
    onOutput?.(s);
  };
  child.stdout!.setEncoding("utf8").on("data", keep);
  child.stderr!.setEncoding("utf8").on("data", keep);
  const exited = new Promise<void>((done) => child.once("exit", () => done()));
  await new Promise<void>((done, fail) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      fail(new Error(`the gateway did not listen within 60 s:\n${out}`));
    }, 60_000);
    const check = () => {
      if (!out.includes("cxmpp gateway listening on ")) return;
      clearTimeout(timer);
      child.stdout!.off("data", check);
      child.off("exit", onExit);
      done();
    };
    const onExit = (code: number | null, signal: string | null) => {
      clearTimeout(timer);
      fail(new Error(`the gateway exited (${signal ?? code}) before listening:\n${out}`));
    };
    child.stdout!.on("data", check);
    child.once("exit", onExit);
  });
  return {
    pid: child.pid!,
    output: () => out,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/**
 * Registers the nodes `indices` in `dataDir` (as `provision add nodeI --allow PEER --out DIR/nodeI.json`
 * on a gateway at `gateway` whose domain is `component`); returns the device files in that order.
 */
export function provisionNodes(
  dataDir: string,
  files: string,
  indices: readonly number[],
  gateway: string,
  component: string = COMPONENT,
  peer: string = ALICE_JID,
): string[] {
  const store = openStore(dataDir);
  try {
    return indices.map((i) => {
      const identity = `node${i}`;
      const device: Device = {
        identity,
        key: Uint8Array.from(randomBytes(16)), // as `provision add` makes a key
        jid: `${identity}@${component}`,
        peers: [peer],
      };
      store.devices.add(device);
      const path = join(files, `${identity}.json`);
      writeFileSync(path, `${JSON.stringify(deviceFile(device, gateway), null, 2)}\n`, { mode: 0o600 });
      return path;
    });
  } finally {
    store.close();
  }
}

// ---------------------------------------------------------------------------------------------------
// Alice: a minimal xmpp.js client.

export type XmppClientModule = typeof import("@xmpp/client");

/** @xmpp/client is a devDependency: load it only now, and say what to do when it is missing. */
export async function loadXmppClient(): Promise<XmppClientModule> {
  try {
    return await import("@xmpp/client");
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND")
      throw new MissingSoftware(
        "this benchmark needs the XMPP client library @xmpp/client (a devDependency of cxmpp): run `npm install` (with dev dependencies) in the cxmpp checkout",
      );
    throw error;
  }
}

export interface Alice {
  readonly client: Client;
  send(stanza: Element): void;
  stop(): Promise<void>;
}

/** The account the receiving client logs in with. */
export interface XmppAccount {
  readonly domain: string;
  readonly username: string;
  readonly password: string;
}

export async function connectAlice(
  mod: XmppClientModule,
  service: string,
  onStanza: (stanza: Element) => void,
  account: XmppAccount = { domain: VHOST, username: ALICE, password: PASSWORD },
): Promise<Alice> {
  const { domain, username, password } = account;
  const xmpp = mod.client({
    service,
    domain,
    username,
    password,
    resource: "bench",
    // PLAIN: SCRAM-SHA-1 costs ~1.35 s per login with xmpp.js (docs/INTEROP.md); the servers the
    // benchmarks start (Prosody, ejabberd) allow PLAIN on loopback.
    credentials: (authenticate, mechanisms) => {
      if (!mechanisms.includes("PLAIN"))
        throw new Error(`the server offers no PLAIN (${mechanisms.join(", ")})`);
      return authenticate({ username, password }, "PLAIN");
    },
  });
  let failure: Error | undefined;
  xmpp.on("error", (error) => {
    failure ??= error;
  });
  xmpp.on("stanza", onStanza);
  try {
    await xmpp.start();
  } catch (error) {
    xmpp.reconnect.stop();
    await xmpp.stop().catch(() => undefined);
    throw new Error(`alice could not log in at ${service}: ${String(error)}`);
  }
  // Initial presence: without it Prosody does not deliver messages for alice's bare JID to this resource.
  await xmpp.send(xml("presence"));
  return {
    client: xmpp,
    send(stanza) {
      xmpp.send(stanza).catch((error: Error) => {
        failure ??= error;
      });
    },
    async stop() {
      xmpp.reconnect.stop();
      await xmpp.stop().catch(() => undefined);
      if (failure && process.env.CXMPP_BENCH_DEBUG) process.stderr.write(`alice: ${failure.message}\n`);
    },
  };
}

/** Sends an iq ping to the component's domain until the gateway answers: the federation link is up. */
export async function waitForLink(
  alice: Alice,
  waiters: Map<string, () => void>,
  timeoutMs: number,
  component: string = COMPONENT,
): Promise<void> {
  const end = performance.now() + timeoutMs;
  for (let attempt = 0; performance.now() < end; attempt++) {
    const id = `bench-ping-${component}-${attempt}`;
    const answered = new Promise<boolean>((done) => {
      waiters.set(id, () => done(true));
      setTimeout(() => done(false), 1_000);
    });
    alice.send(xml("iq", { type: "get", to: component, id }, xml("ping", { xmlns: "urn:xmpp:ping" })));
    const ok = await answered;
    waiters.delete(id);
    if (ok) return;
  }
  throw new Error(`the gateway never answered a ping to ${component} through the XMPP server`);
}

// ---------------------------------------------------------------------------------------------------
// Nodes.

export interface SimNode {
  readonly index: number;
  readonly client: NodeClient;
  readonly udp: UdpEndpoint;
  observation?: { cancel(): Promise<void> };
  /** Last time (performance.now) a downlink stanza arrived. */
  lastArrival: number;
}

function bodyOf(stanza: XElement): string | undefined {
  for (const c of stanza.children)
    if (typeof c !== "string" && c.name === "body")
      return c.children.filter((t): t is string => typeof t === "string").join("");
  return undefined;
}

export async function startNode(
  index: number,
  file: string,
  onStanza: (s: XElement) => void,
): Promise<SimNode> {
  const { client, udp } = await nodeFromDevice(file);
  client.onStanza(onStanza);
  const node: SimNode = { index, client, udp, lastArrival: performance.now() };
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        await client.connect();
        break;
      } catch (error) {
        if (attempt >= 5) throw error;
        await sleep(100);
      }
    }
    node.observation = await client.observeDownlink();
  } catch (error) {
    client.close();
    await udp.close();
    throw new Error(`node${index} could not connect: ${(error as Error).message}`);
  }
  return node;
}

/**
 * Connects node `indices[k]` from `files[k]`, all at once, into `nodes` (sorted by index, so that the
 * caller's clean-up closes whatever connected); throws the first failure once all have settled.
 */
export async function startNodes(
  nodes: SimNode[],
  indices: readonly number[],
  files: readonly string[],
  onStanza: (index: number, stanza: XElement) => void,
): Promise<void> {
  const settled = await Promise.allSettled(
    files.map((file, k) => {
      const i = indices[k] ?? k;
      return startNode(i, file, (stanza) => onStanza(i, stanza));
    }),
  );
  for (const s of settled) if (s.status === "fulfilled") nodes.push(s.value);
  nodes.sort((a, b) => a.index - b.index);
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === "rejected");
  if (failed) throw failed.reason;
}

/** Cancels the nodes' observations and closes their clients and sockets. */
export async function closeNodes(nodes: readonly SimNode[]): Promise<void> {
  for (const n of nodes) {
    await n.observation?.cancel().catch(() => {});
    n.client.close();
    await n.udp.close();
  }
}

/** A chat message with a body, as a node sends it. */
export function chatMessage(to: string, body: string): XElement {
  return el("jabber:client", "message", { to, type: "chat" }, el("jabber:client", "body", {}, body));
}

/**
 * The uplink load: every node sends `stanzas` chat messages to `to`, one at a time (each awaited: the
 * gateway has stored it), all nodes at once. `acked(node, seq)` is told of each acknowledged send.
 */
export async function sendUplink(
  nodes: readonly SimNode[],
  stanzas: number,
  to: string,
  body: (node: number, seq: number) => string,
  acked?: (node: number, seq: number) => void,
): Promise<{ sent: number; failed: number }> {
  let sent = 0;
  let failed = 0;
  await Promise.all(
    nodes.map(async (n) => {
      for (let s = 1; s <= stanzas; s++) {
        sent++;
        try {
          await n.client.send(chatMessage(to, body(n.index, s)));
          acked?.(n.index, s);
        } catch {
          failed++;
        }
      }
    }),
  );
  return { sent, failed };
}

// ---------------------------------------------------------------------------------------------------
// Counting arrivals.

/** Arrivals of one phase: per node, the sequence numbers seen. */
export class Tally {
  delivered = 0;
  duplicates = 0;
  outOfOrder = 0;
  misrouted = 0;
  lastArrival = 0;
  private readonly seen: Set<number>[];
  private readonly max: number[];

  constructor(nodes: number) {
    this.seen = Array.from({ length: nodes }, () => new Set<number>());
    this.max = new Array<number>(nodes).fill(0);
  }

  /** Records stanza `seq` of `node`; true when it is new. */
  add(node: number, seq: number): boolean {
    const seen = this.seen[node];
    if (!seen) {
      this.misrouted++;
      return false;
    }
    if (seen.has(seq)) {
      this.duplicates++;
      return false;
    }
    seen.add(seq);
    this.delivered++;
    this.lastArrival = performance.now();
    if (seq < (this.max[node] ?? 0)) this.outOfOrder++;
    else this.max[node] = seq;
    return true;
  }

  count(node: number): number {
    return this.seen[node]?.size ?? 0;
  }
}

/** Polls `done` every 5 ms until it holds (true) or `deadline` (performance.now) passes (false). */
export async function until(done: () => boolean, deadline: number): Promise<boolean> {
  while (!done()) {
    if (performance.now() > deadline) return false;
    await sleep(5);
  }
  return true;
}

export interface PhaseResult {
  readonly sent: number;
  readonly delivered: number;
  readonly duplicates: number;
  readonly out_of_order: number;
  readonly lost: number;
  /** Stanzas that came back as errors (type='error'), or sends that failed. */
  readonly errors: number;
  readonly elapsed_s: number;
  readonly stanzas_per_s: number;
  readonly gateway_cpu_us: number;
  readonly prosody_cpu_us: number;
  readonly gateway_cpu_us_per_stanza: number;
  readonly prosody_cpu_us_per_stanza: number;
  readonly gateway_cpu_share: number;
  readonly prosody_cpu_share: number;
  /** CPU / wall time of this process: the nodes and alice. */
  readonly load_cpu_share: number;
}

export interface DownlinkResult extends PhaseResult {
  readonly misrouted: number;
  readonly stall_polls: number;
}

export interface FederationResult {
  readonly nodes: number;
  readonly stanzas_per_node: number;
  /** Stanzas per direction: nodes × stanzas. */
  readonly planned: number;
  readonly window: number;
  readonly durability: "full" | "normal";
  readonly clk_tck: number;
  readonly connect_s: number;
  readonly uplink: PhaseResult;
  readonly downlink: DownlinkResult;
  readonly gateway_rss_mb: number;
  readonly prosody_version: string;
  readonly elapsed_s: number;
  readonly anchors: typeof FEDERATION_ANCHORS;
}

interface CpuMark {
  readonly at: number;
  readonly gateway: number;
  readonly prosody: number;
  /** This process (process.cpuUsage), µs. */
  readonly load: number;
}

function phase(
  sent: number,
  tally: Tally,
  errors: number,
  t0: number,
  before: CpuMark,
  after: CpuMark,
): PhaseResult {
  const end = tally.lastArrival > t0 ? tally.lastArrival : performance.now();
  const seconds = (end - t0) / 1000;
  const wallUs = (after.at - before.at) * 1000;
  const gw = after.gateway - before.gateway;
  const pr = after.prosody - before.prosody;
  const n = tally.delivered;
  return {
    sent,
    delivered: n,
    duplicates: tally.duplicates,
    out_of_order: tally.outOfOrder,
    lost: sent - n,
    errors,
    elapsed_s: round(seconds, 3),
    stanzas_per_s: seconds > 0 ? Math.round(n / seconds) : 0,
    gateway_cpu_us: Math.round(gw),
    prosody_cpu_us: Math.round(pr),
    gateway_cpu_us_per_stanza: n > 0 ? round(gw / n, 1) : 0,
    prosody_cpu_us_per_stanza: n > 0 ? round(pr / n, 1) : 0,
    gateway_cpu_share: wallUs > 0 ? round(gw / wallUs, 2) : 0,
    prosody_cpu_share: wallUs > 0 ? round(pr / wallUs, 2) : 0,
    load_cpu_share: wallUs > 0 ? round((after.load - before.load) / wallUs, 2) : 0,
  };
}

// ---------------------------------------------------------------------------------------------------
// One run.

async function runFederation(
  config: FederationConfig,
  progress: (s: string) => void,
): Promise<FederationResult> {
  const started = performance.now();
  const xmppClient = await loadXmppClient();
  for (const program of ["prosody", "prosodyctl"])
    if (!onPath(program))
      throw new MissingSoftware(
        `this benchmark needs Prosody (\`${program}\` is not on PATH): \`apt-get install prosody\`; it runs its own instance on loopback (docs/INTEROP.md)`,
      );
  const dir = mkdtempSync(join(tmpdir(), "cxmpp-bench-federation-"));
  let prosody: Prosody | undefined;
  let gateway: GatewayChild | undefined;
  let alice: Alice | undefined;
  const nodes: SimNode[] = [];
  const planned = config.nodes * config.stanzas;
  const deadlineMs = 20_000 + planned * 10;
  try {
    progress("starting Prosody…");
    prosody = await startProsody({
      vhosts: [VHOST],
      users: [{ username: ALICE, host: VHOST, password: PASSWORD }],
      components: [{ domain: COMPONENT, secret: SECRET }],
      s2sPort: null,
    });
    const version = /Prosody version ([^\s]+)/.exec(prosody.log())?.[1] ?? "0.12";
    const port = await freeUdpPort();
    const address = `127.0.0.1:${port}`;
    const dataDir = join(dir, "data");
    const indices = Array.from({ length: config.nodes }, (_, i) => i);
    const files = provisionNodes(dataDir, dir, indices, address);
    progress(`starting the gateway (${config.nodes} devices registered)…`);
    gateway = await startGatewayChild(
      {
        CXMPP_DATA_DIR: dataDir,
        CXMPP_LISTEN: address,
        CXMPP_DTLS_LISTEN: "off", // the nodes are plain CoAP here (bench dtls compares the two)
        CXMPP_DOMAIN: COMPONENT,
        CXMPP_XMPP_SERVICE: prosody.componentService,
        CXMPP_XMPP_DOMAIN: COMPONENT,
        CXMPP_XMPP_SECRET: SECRET,
        CXMPP_DURABILITY: config.durability,
        CXMPP_LOG_LEVEL: "warn",
      },
      dir,
    );

    // What alice receives: uplink stanzas, errors, ping results.
    const up = new Tally(config.nodes);
    const warmUp = new Set<string>();
    const warmDown = new Set<string>();
    const pings = new Map<string, () => void>();
    let upErrors = 0;
    let downErrors = 0;
    alice = await connectAlice(xmppClient, prosody.c2sService, (stanza) => {
      if (stanza.is("iq")) {
        const id = stanza.attrs.id ?? "";
        if (stanza.attrs.type === "result") pings.get(id)?.();
        return;
      }
      if (!stanza.is("message")) return;
      const body = stanza.getChildText("body") ?? "";
      if (stanza.attrs.type === "error") {
        if (body.startsWith("down ")) downErrors++;
        else upErrors++;
        return;
      }
      const m = /^up (\d+) (\d+)$/.exec(body);
      if (m) up.add(Number(m[1]), Number(m[2]));
      else if (body.startsWith("warm up ")) warmUp.add(body);
    });
    await waitForLink(alice, pings, 20_000);

    // Nodes: everything they receive is counted here.
    const down = new Tally(config.nodes);
    let refill: (node: number) => void = () => {};
    progress(`connecting ${config.nodes} nodes…`);
    const c0 = performance.now();
    await startNodes(nodes, indices, files, (i, stanza) => {
      const node = nodes[i];
      if (node) node.lastArrival = performance.now();
      const body = bodyOf(stanza) ?? "";
      const m = /^down (\d+) (\d+)$/.exec(body);
      if (m) {
        const target = Number(m[1]);
        if (target !== i) down.misrouted++;
        else if (down.add(i, Number(m[2]))) refill(i);
      } else if (body.startsWith("warm down ")) warmDown.add(body);
    });
    const connectS = (performance.now() - c0) / 1000;

    // Warm-up, not counted: one stanza each way per node (JIT, first commits, Prosody's first routes).
    progress("warming up…");
    await Promise.all(nodes.map((n) => n.client.send(chatMessage(ALICE_JID, `warm up ${n.index}`))));
    for (const n of nodes)
      alice.send(
        xml(
          "message",
          { to: `node${n.index}@${COMPONENT}`, type: "chat" },
          xml("body", {}, `warm down ${n.index}`),
        ),
      );
    const warmed = await until(
      () => warmUp.size >= nodes.length && warmDown.size >= nodes.length,
      performance.now() + 20_000,
    );
    if (!warmed)
      throw new Error(
        `warm-up incomplete: ${warmUp.size} of ${nodes.length} uplink and ${warmDown.size} downlink stanzas arrived\n${gateway.output()}`,
      );
    await sleep(GRACE_MS);

    const gatewayPid = gateway.pid;
    const prosodyPid = prosody.pid;
    const mark = (): CpuMark => ({
      at: performance.now(),
      gateway: processCpuUs(gatewayPid),
      prosody: processCpuUs(prosodyPid),
      load: cpuTotal(process.cpuUsage()),
    });

    // 1. Uplink: nodes → gateway → Prosody → alice.
    progress(`uplink: ${config.nodes} nodes × ${config.stanzas} stanzas → ${ALICE_JID}…`);
    const upBefore = mark();
    const upT0 = performance.now();
    const upSends = await sendUplink(nodes, config.stanzas, ALICE_JID, (i, s) => `up ${i} ${s}`);
    await until(() => up.delivered >= planned, upT0 + deadlineMs);
    await sleep(GRACE_MS); // late duplicates show up; the barriers of the last windows come back
    const uplink = phase(upSends.sent, up, upErrors + upSends.failed, upT0, upBefore, mark());

    // 2. Downlink: alice → Prosody → gateway → nodes, at most `window` per node not yet arrived.
    progress(`downlink: ${ALICE_JID} → ${config.nodes} nodes × ${config.stanzas} stanzas…`);
    const next = new Array<number>(config.nodes).fill(1);
    let downSent = 0;
    const sendDown = (i: number) => {
      const s = next[i] ?? config.stanzas + 1;
      if (s > config.stanzas) return;
      next[i] = s + 1;
      downSent++;
      alice!.send(
        xml("message", { to: `node${i}@${COMPONENT}`, type: "chat" }, xml("body", {}, `down ${i} ${s}`)),
      );
    };
    let stallPolls = 0;
    const downBefore = mark();
    const downT0 = performance.now();
    for (const n of nodes) n.lastArrival = downT0;
    refill = sendDown;
    for (let k = 0; k < config.window; k++) for (const n of nodes) sendDown(n.index);
    // Observe is the path being measured; a poll only if a node heard nothing for a second.
    const stall = setInterval(() => {
      const now = performance.now();
      for (const n of nodes)
        if (down.count(n.index) < config.stanzas && now - n.lastArrival > 1_000) {
          n.lastArrival = now;
          stallPolls++;
          n.client.poll().catch(() => {});
        }
    }, 250);
    await until(() => down.delivered >= planned, downT0 + deadlineMs);
    clearInterval(stall);
    await sleep(GRACE_MS); // the nodes' acknowledgements of the last pushes
    const downlink: DownlinkResult = {
      ...phase(downSent, down, downErrors, downT0, downBefore, mark()),
      lost: planned - down.delivered,
      sent: downSent,
      misrouted: down.misrouted,
      stall_polls: stallPolls,
    };

    return {
      nodes: config.nodes,
      stanzas_per_node: config.stanzas,
      planned,
      window: config.window,
      durability: config.durability,
      clk_tck: clkTck(),
      connect_s: round(connectS, 3),
      uplink,
      downlink,
      gateway_rss_mb: rssMb(gatewayPid),
      prosody_version: version,
      elapsed_s: round((performance.now() - started) / 1000, 1),
      anchors: FEDERATION_ANCHORS,
    };
  } finally {
    await closeNodes(nodes);
    await alice?.stop();
    await gateway?.stop();
    await prosody?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------------
// Output.

function format(r: FederationResult): string {
  const row = (name: string, p: PhaseResult) => [
    name,
    fmt(p.sent),
    fmt(p.delivered),
    String(p.duplicates),
    String(p.lost),
    fmt(p.stanzas_per_s),
    String(p.gateway_cpu_us_per_stanza),
    String(p.prosody_cpu_us_per_stanza),
    p.prosody_cpu_us_per_stanza > 0
      ? `${round(p.gateway_cpu_us_per_stanza / p.prosody_cpu_us_per_stanza, 2)}×`
      : "–",
    `${Math.round(p.gateway_cpu_share * 100)}% / ${Math.round(p.prosody_cpu_share * 100)}% / ${Math.round(p.load_cpu_share * 100)}%`,
  ];
  const [lo, hi] = r.anchors.paho_cpu_us_per_qos1;
  return [
    `cxmpp bench federation: ${r.nodes} node(s) × ${r.stanzas_per_node} stanzas each way, Prosody ${r.prosody_version} and \`cxmpp gateway\` (SQLite, durability ${r.durability}) as separate processes on loopback`,
    "",
    table(
      [
        "direction",
        "sent",
        "arrived",
        "dup",
        "lost",
        "stanzas/s",
        "gateway µs/stanza",
        "Prosody µs/stanza",
        "gw/Prosody",
        "busy gw / Prosody / load",
      ],
      [
        row("uplink:   nodes → gateway → Prosody → alice", r.uplink),
        row("downlink: alice → Prosody → gateway → nodes", r.downlink),
      ],
    ),
    "",
    `  anchor (docs/ARCHITECTURE.md): the Paho MQTT-SN gateway spends ${lo}–${hi} µs of CPU per QoS-1 message and its acknowledgement (~${r.anchors.paho_cpu_us_per_qos0} µs at QoS 0)`,
    `  CPU = utime + stime from /proc/PID/stat of each process (1/${r.clk_tck} s ticks), first send to ${GRACE_MS} ms after the last arrival, / stanzas arrived;`,
    "  busy = CPU / wall time of the phase (load = this process: the nodes and alice, the load generators);",
    `  uplink: each node sends one stanza at a time, acknowledged when stored; downlink: alice keeps ≤ ${r.window} per node in flight, nodes observe /d (stall polls ${r.downlink.stall_polls})`,
    `  errors: uplink ${r.uplink.errors}, downlink ${r.downlink.errors}; out of order: uplink ${r.uplink.out_of_order}, downlink ${r.downlink.out_of_order}; connect ${r.connect_s} s; gateway RSS ${r.gateway_rss_mb} MB; total ${r.elapsed_s} s`,
    "",
  ].join("\n");
}

function violated(r: FederationResult): boolean {
  const bad = (p: PhaseResult) =>
    p.lost !== 0 || p.duplicates !== 0 || p.errors !== 0 || p.sent !== r.planned;
  return bad(r.uplink) || bad(r.downlink) || r.downlink.misrouted !== 0;
}

// ---------------------------------------------------------------------------------------------------
// Entry point.

function parse(opts: FederationBenchOptions): FederationConfig {
  const durability = (opts.durability ?? "full").trim();
  if (durability !== "full" && durability !== "normal")
    throw new UsageError(`--durability must be full or normal, not '${opts.durability}'`);
  return {
    nodes: integer("nodes", opts.nodes, 10, 1, 1_000),
    stanzas: integer("stanzas", opts.stanzas, 100, 1, 100_000),
    // The gateway's mailbox holds 100 stanzas per node by default (mailbox_max_stanzas).
    window: integer("window", opts.window, 16, 1, 100),
    durability,
  };
}

/** Entry point of `cxmpp bench federation`; returns the exit code and never throws. */
export function runFederationBench(opts: FederationBenchOptions): Promise<number> {
  return runBenchCommand(
    "federation",
    () => parse(opts),
    (config) => report(opts, config),
    {
      usage: 2,
      failure: (error) => (error instanceof MissingSoftware ? 2 : 1),
    },
  );
}

async function report(opts: FederationBenchOptions, config: FederationConfig): Promise<number> {
  const result = await runFederation(config, (s) => {
    if (!opts.json) process.stderr.write(`  ${s}\n`);
  });
  process.stdout.write(opts.json ? `${JSON.stringify(result)}\n` : format(result));
  if (violated(result)) {
    process.stderr.write(
      `cxmpp bench federation: not every stanza arrived exactly once (uplink lost ${result.uplink.lost}, duplicates ${result.uplink.duplicates}, errors ${result.uplink.errors}; downlink lost ${result.downlink.lost}, duplicates ${result.downlink.duplicates}, errors ${result.downlink.errors})\n`,
    );
    return 1;
  }
  return 0;
}
