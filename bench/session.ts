/**
 * `cxmpp bench session`: the session layer end to end over real UDP on loopback — a real gateway
 * (GatewayService on a CoapEndpoint) and N simulated nodes (NodeClient, one UDP socket each), with the
 * Paho MQTT-SN and node-coap anchors printed beside our figures (docs/ARCHITECTURE.md, "Targets").
 *
 * How it measures:
 * - The gateway runs in a CHILD PROCESS (this same file, forked with the tsx loader), so its CPU figure
 *   is clean: `cpu_us_per_stanza` is the child's process.cpuUsage() (user + system, every thread: UDP
 *   receive and send, CoAP parsing and deduplication, HMAC, codec, routing, timers, GC) between the
 *   moment every node is connected and the moment the last stanza is acknowledged, divided by the
 *   stanzas delivered. It is the figure to hold beside Paho's 62–89 µs of CPU per QoS-1 message and its
 *   acknowledgement. `gateway_cpu_share` (gateway CPU / wall time) says whether the gateway was the
 *   bottleneck (near 1) or the node side was (well below 1).
 * - The nodes run in `load_processes` load processes, each a contiguous slice of them (with loss, each
 *   with its own relay; the first keeps the run's seed): with 1 they run in this process, as before;
 *   with more, in children forked from this same file (like the gateway's), started together after
 *   every node of every slice has connected. Each reports its own CPU / wall time while it sent
 *   (`load_cpu_share`, one per process, and `load_cpu_share_max`), beside `gateway_cpu_share`: the side
 *   near 1 set the pace. `load_cpu_us_per_stanza` is their CPU together per stanza delivered, and
 *   `machine_cpu_share` = (gateway + load CPU) / (wall time × `cores`): near 1, neither side could
 *   have been faster on this machine (with 2 cores the gateway and two load processes share them). The
 *   gateway child still counts delivered, duplicates and out-of-order per node; the parent adds up
 *   what the load sides sent, their retransmissions, bytes on air (as histograms) and relay counts.
 *   `--load-processes N` (1–16, at most one per node) sets N; without it, 1 below 100 nodes (round
 *   trips, not CPU, set the pace there) and min(2, cores) from 100 nodes on, where one load process
 *   spent more CPU per stanza than the gateway and saturated its core first (defaultLoadProcesses).
 * - Each node sends M stanzas one after the other, each awaited (CON: `send()` resolves when the
 *   gateway's `h` covers it, i.e. it was routed; `--telemetry`: one NON each, the next after the NON
 *   response or a timeout). Every stanza is an XEP-0323 fields message with one numeric reading and the
 *   node's sequence number in `seqnr`, to `sink@elsewhere.example` (outside the gateway's domain, so it
 *   reaches the GatewayService `outbound` callback, where the child counts delivered, duplicates and
 *   out-of-order per node). lost = sent − delivered after the drain.
 * - `--loss P` puts a seeded relay (lossy-relay.ts) between the nodes and the gateway that drops each
 *   datagram with probability P in each direction. Transmission parameters for loopback then: ACK
 *   timeout 100 ms (`--ack-timeout`), MAX_RETRANSMIT 4 (without loss the RFC defaults, 2 s and 4).
 *   NodeClient retries an exchange that ran out of retransmissions itself (after 100 ms, same sequence
 *   number), so reliable delivery must stay at 100%. MAX_RETRANSMIT 8 would also deliver everything,
 *   but at 30% loss half the exchanges fail each round trip and the doubling back-off makes single
 *   stanzas wait a minute; 4 plus the client's retry bounds that wait to a few seconds.
 * - Bytes on air: UDP payload bytes of every datagram a node sends (counted at its transport) and of
 *   every datagram the gateway sends towards it (counted at the node's transport, or at the relay where
 *   it enters, before the loss decision), between the start of a stanza and its acknowledgement. Beside
 *   it, MQTT-SN for the same reading as a plain string (`temperature=21.5°C`, 19 bytes): QoS 1 = PUBLISH
 *   (7-byte header + payload) + PUBACK (7 bytes); QoS 0 (beside --telemetry) = the PUBLISH alone.
 * - `--store full|normal` gives the gateway child the durable SQLite store (gateway/store) in a fresh
 *   temporary data directory, removed afterwards: devices in its `devices` table, every session change,
 *   the outbox row of each stanza and the group commit before each response (docs/PROTOCOL.md §4.1),
 *   with `synchronous=FULL` (survives power loss) or `NORMAL` (survives a crash of the process). The
 *   default `memory` keeps nothing, as before. The suite runs 100 and 1,000 nodes with all three, so
 *   the cost of "acked means stored" shows beside the in-memory figures.
 * - `dtls` in the run config (used by `cxmpp bench dtls`, not a flag of this command): the gateway child
 *   listens with a DtlsServer and the nodes run a DtlsClient (their device key as PSK) beneath their
 *   CoAP endpoint; the handshakes happen at connect, before the CPU mark. Without it nothing changes.
 * - RSS per idle session (suite): a fresh child with --expose-gc creates sessions through the
 *   GatewayService's real connect path (POST /c, the 4.01 Echo challenge, then the proof) by calling
 *   `service.handle` with synthetic requests from distinct fake peer addresses, no sockets. Devices are
 *   provisioned before the baseline; rss and heapUsed are read after a full GC before and after. The
 *   CoAP endpoint's per-exchange deduplication state is not included: it expires after EXCHANGE_LIFETIME,
 *   so an idle session does not hold it.
 *
 * - `--idle N` (bench/idle.ts): N more devices whose nodes connect over real UDP through the real
 *   connect path, each from its own loopback address, and then stay silent. The gateway child forces a
 *   full GC and reads its RSS and heap before the devices, after them (per provisioned device), after
 *   a warm-up of min(10,000, N/5) connects that fills the capped deduplication and used-nonce tables,
 *   and after every idle node connected (per idle session: the last two marks, so those tables are
 *   full at both); connects_per_s counts the connects after the warm-up; idle_cpu_share is its CPU over
 *   10 s once all are idle, with the tick and the census running as in `cxmpp gateway`. Alone it prints
 *   those figures (`--json`: one object with rss_bytes_per_session, heap_bytes_per_session,
 *   connects_per_s, rss/heap_bytes_per_device, …); with --nodes M the M active nodes then run as usual
 *   while the idle sessions are held, and the result gains `idle` and, as every reliable run,
 *   latency_ms_p50/p99 (send to acknowledgement at the node).
 *
 * Without options (or with `--suite`) the standard suite runs: throughput at 1, 100 and 1,000 nodes,
 * delivery at 0, 10 and 30% loss, bytes on air (CON and NON), memory at 10,000 idle sessions, and
 * throughput at 100 and 1,000 nodes with each store (memory, full, normal).
 * Any of --nodes, --stanzas, --loss, --telemetry, --store, --load-processes or --json without --suite
 * runs one configuration; with --suite, --load-processes applies to every run of the suite.
 *
 * Contract of `--json` for one configuration (other tools read it): ONE JSON object on stdout with at
 * least sent, delivered, duplicates, out_of_order, lost, stanzas_per_s, bytes_on_air_median,
 * cpu_us_per_stanza, nodes, loss, retransmissions, elapsed_s, store, gateway_cpu_share, load_processes,
 * load_cpu_share (an array, one per load process), load_cpu_share_max. `--suite --json` prints one object
 * `{suite: [...those objects], memory}`; the runs that only the store comparison needs come last, told
 * apart by `store`. Exit code 1 when a reliable run does not deliver every stanza
 * exactly once and in order (the output is still printed), or on an error.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { attr, DICTIONARY_V1, el, type XElement } from "../codec/index.js";
import { SENSORDATA, sensorDataMessage } from "../examples/iot-stanzas.js";
import { LossyRelay } from "../examples/lossy-relay.js";
import { createThreadedDtlsServerEndpoint, createThreadedUdpEndpoint } from "../gateway/cluster/endpoints.js";
import { GATEWAY_DEFAULTS } from "../gateway/defaults.js";
import { type Device, type DeviceDirectory, MemoryDevices } from "../gateway/devices.js";
import { attachGateway, GatewayService } from "../gateway/index.js";
import type { SessionJournal } from "../gateway/session/journal.js";
import { openStore, type Store } from "../gateway/store/index.js";
import {
  CoapEndpoint,
  Code,
  connectOptions,
  type DatagramTransport,
  type Logger,
  NodeClient,
  OptionNumber,
  type PeerAddress,
  protocol,
  type Random,
  type ServerRequest,
  type TransmissionParameters,
} from "../src/core/index.js";
import { seededRandom } from "../src/core/seeded-random.js";
import {
  DtlsClient,
  TLS_PSK_WITH_AES_128_CCM_8,
  TLS_PSK_WITH_AES_128_GCM_SHA256,
} from "../src/dtls/index.js";
import {
  createDtlsServerEndpoint,
  createUdpEndpoint,
  cryptoRandom,
  nodeDtlsCrypto,
  nodeMac,
  systemClock,
  timerScheduler,
  UdpTransport,
  wallClock,
} from "../src/node/index.js";
import { type BenchChild, type ChildRequest, forkBench } from "./child-process.js";
import {
  fmt,
  gatewayNodeOptions,
  integer,
  round,
  runBenchCommand,
  STORE_KINDS,
  type StoreKind,
  sleep,
  storeKind,
  table,
  UsageError,
} from "./common.js";
import { benchDeviceKey, benchIdentity, connectIdleSpread, MAX_IDLE } from "./idle.js";
import { fullGc } from "./memory.js";

export interface SessionBenchOptions {
  /** Commander hands over strings; numbers are accepted too. */
  readonly nodes?: string | number;
  readonly stanzas?: string | number;
  readonly loss?: string | number;
  readonly seed?: string | number;
  readonly json?: boolean;
  readonly telemetry?: boolean;
  readonly suite?: boolean;
  /** ACK timeout in ms when loss > 0 (default 100). */
  readonly ackTimeout?: string | number;
  /** The gateway's state: `memory` (default), or the SQLite store with durability `full` or `normal`. */
  readonly store?: string;
  /** Processes that run the nodes (default: automatic, see defaultLoadProcesses). */
  readonly loadProcesses?: string | number;
  /** Idle sessions connected (and held) before the active nodes run: `--idle N`. */
  readonly idle?: string | number;
  /** What the idle nodes say they sleep, in seconds (default 0: always on). */
  readonly idleWake?: string | number;
  /** Reliable stanzas each node keeps in flight (default 1: each waits for the one before). */
  readonly window?: string | number;
  /** The gateway's `cores` (1 default; 2: its UDP socket on a thread of its own, gateway/cluster). */
  readonly cores?: string | number;
}

/** One configuration, as `runOne` takes it. */
export interface SessionRunConfig {
  readonly nodes: number;
  readonly stanzas: number;
  readonly loss: number;
  readonly seed: number;
  readonly telemetry: boolean;
  readonly ackTimeoutMs: number;
  readonly store: StoreKind;
  /**
   * Nodes reach the gateway over DTLS 1.2 PSK (`cxmpp bench dtls`): the gateway child listens with a
   * DtlsServer (createDtlsServerEndpoint) and passes its `dtlsIdentity`, each node runs a DtlsClient
   * with its device key as PSK and its identity as PSK identity, offering this suite only. Absent: plain
   * UDP, as before. Bytes on air then include the DTLS records; the handshakes happen at connect, before
   * the CPU mark, so `cpu_us_per_stanza` is the steady state.
   */
  readonly dtls?: DtlsSuiteName;
  /**
   * Processes that run the nodes, each a contiguous slice of them (capped at `nodes`). 1: the nodes run
   * in this process, as before. Absent: defaultLoadProcesses(nodes).
   */
  readonly loadProcesses?: number;
  /**
   * Idle sessions (`--idle N`, bench/idle.ts): devices nodes … nodes + idle − 1 connect over real UDP
   * before the active nodes run, and stay silent; the gateway child measures its memory before the
   * devices, after them, after a warm-up and after every idle node connected, and its CPU while idle.
   * 0 or absent: none. With `nodes` 0 only the idle part runs.
   */
  readonly idle?: number;
  /** The idle nodes' connect `wake` (seconds; 0: always on). */
  readonly idleWake?: number;
  /**
   * Reliable stanzas a node has in flight (NodeClient queues them and packs what waits into its next
   * request, which the gateway stores in one commit): 1 or absent, each stanza waits for the one before.
   */
  readonly window?: number;
  /** The gateway child's `cores` (`--cores`): 2 puts its socket on a socket thread (gateway/cluster). */
  readonly gatewayCores?: 1 | 2;
}

/** The suites a `dtls` run can ask for. */
export type DtlsSuiteName = "TLS_PSK_WITH_AES_128_CCM_8" | "TLS_PSK_WITH_AES_128_GCM_SHA256";

/** What the gateway child is given: the run, and the data directory of a durable store. */
interface GatewayChildConfig extends SessionRunConfig {
  readonly dataDir?: string;
}

export const SINK = "sink@elsewhere.example";
const DOMAIN = "iot.bench.example";
const CHILD_FLAG = "--cxmpp-bench-session-child";
const MAX_NODES = 5_000;
const MAX_LOAD_PROCESSES = 16;
/** From this many nodes on, one load process would set the pace instead of the gateway. */
const AUTO_LOAD_NODES = 100;

/**
 * Load processes when `--load-processes` is not given: 1 below AUTO_LOAD_NODES nodes (a few nodes are
 * bound by their round trips, not by CPU, and a fork would only add start-up time), else
 * min(2, cores): at 100 nodes and more one load process spends more CPU per stanza than the gateway
 * and saturated its core first; two give the load side up to twice that without taking more cores than
 * the machine has (with 2 cores the three processes share them: see `machine_cpu_share`).
 */
export function defaultLoadProcesses(nodes: number): number {
  return nodes >= AUTO_LOAD_NODES ? Math.max(1, Math.min(2, availableParallelism())) : 1;
}

/** The load processes a run uses: the requested or automatic number, at most one per node. */
function loadProcessesOf(config: Pick<SessionRunConfig, "nodes" | "loadProcesses">): number {
  return Math.max(1, Math.min(config.nodes, config.loadProcesses ?? defaultLoadProcesses(config.nodes)));
}
const RECV_BUFFER = 2 ** 21;
const DTLS_SUITES: Readonly<Record<DtlsSuiteName, number>> = {
  TLS_PSK_WITH_AES_128_CCM_8,
  TLS_PSK_WITH_AES_128_GCM_SHA256,
};

/** Anchors (docs/ARCHITECTURE.md), printed beside our figures. */
export const ANCHORS = Object.freeze({
  paho_cpu_us_per_qos1: [62, 89] as const,
  paho_cpu_us_per_qos0: 50,
  paho_msgs_per_s_at_100_clients: 13_000,
  paho_kb_per_client: 0.85,
  paho_max_clients: 1_020,
  node_coap_us_per_request: [120, 150] as const,
  mqtt_sn_qos1_bytes_20b_payload: 34,
  target_stanzas_per_s_at_1000_nodes: 5_000,
  target_kb_per_idle_session_issue: 2,
  target_kb_per_idle_session_brief: 1,
  target_bytes_ratio_issue: 2,
  target_bytes_ratio_brief: 1.5,
});

// ---------------------------------------------------------------------------------------------------
// Shared between both processes: devices and readings are derived from (index, seed).

const deviceKey = benchDeviceKey;
const identityOf = benchIdentity;

function benchDeviceList(n: number, seed: number): Device[] {
  return Array.from({ length: n }, (_, i) => ({
    identity: identityOf(i),
    key: deviceKey(i, seed),
    jid: `${identityOf(i)}@${DOMAIN}`,
    peers: [SINK],
  }));
}

function benchDevices(n: number, seed: number): MemoryDevices {
  // One at a time, not from a list of n: the list would be a transient peak (RSS per device, --idle).
  const devices = new MemoryDevices();
  for (let i = 0; i < n; i++)
    devices.add({
      identity: identityOf(i),
      key: deviceKey(i, seed),
      jid: `${identityOf(i)}@${DOMAIN}`,
      peers: [SINK],
    });
  return devices;
}

/**
 * Writes the devices into the store's `devices` table in one transaction. Not through
 * SqliteDevices.add: it reloads its whole cache after each insert, which makes a bulk import
 * quadratic (32 s for 5,000 devices); here the cache loads once, at the first lookup.
 */
function provisionStore(store: Store, devices: readonly Device[]): void {
  const insert = store.db.prepare(
    "INSERT INTO devices (identity, jid, key, peers, revoked, created_at) VALUES (?, ?, ?, ?, 0, ?)",
  );
  const now = Date.now();
  store.db.transaction(() => {
    for (const d of devices) insert.run(d.identity, d.jid, Buffer.from(d.key), JSON.stringify(d.peers), now);
  })();
}

interface GatewayState {
  readonly devices: DeviceDirectory;
  readonly journal?: SessionJournal;
  readonly store?: Store;
}

/** The gateway's devices and journal: in memory, or the SQLite store in `config.dataDir`. */
function gatewayState(config: GatewayChildConfig): GatewayState {
  const devices = config.nodes + (config.idle ?? 0);
  if (config.store === "memory" || config.dataDir === undefined)
    return { devices: benchDevices(devices, config.seed) };
  const store = openStore(config.dataDir, { durability: config.store });
  provisionStore(store, benchDeviceList(devices, config.seed));
  return { devices: store.devices, journal: store.journal, store };
}

export interface Reading {
  readonly stanza: XElement;
  /** The same reading as an MQTT-SN application would publish it: `name=value unit`. */
  readonly plainBytes: number;
}

const T0 = Date.UTC(2025, 5, 1, 12, 0, 0);

/** An XEP-0323 fields message with one numeric reading; `seqnr` carries the node's sequence number. */
export function reading(node: number, seq: number, random: () => number): Reading {
  const value = (15 + random() * 15).toFixed(1);
  const timestamp = new Date(T0 + seq * 60_000).toISOString().replace(".000Z", "Z");
  const field = el(SENSORDATA, "numeric", { name: "temperature", momentary: "true", value, unit: "°C" });
  const stanza = sensorDataMessage({ to: SINK }, { nodeId: identityOf(node), seqnr: seq, timestamp, field });
  return { stanza, plainBytes: Buffer.byteLength(`temperature=${value}°C`) };
}

function transmissionFor(
  c: Pick<SessionRunConfig, "loss" | "ackTimeoutMs">,
): Partial<TransmissionParameters> {
  return c.loss > 0
    ? { ackTimeoutMs: c.ackTimeoutMs, maxRetransmit: 4 }
    : { ackTimeoutMs: 2_000, maxRetransmit: 4 };
}

// ---------------------------------------------------------------------------------------------------
// The child process: the gateway (role "gateway") or the memory measurement (role "memory").

interface GatewayReport {
  readonly cpuUs: number;
  readonly wallMs: number;
  readonly delivered: number;
  readonly duplicates: number;
  readonly outOfOrder: number;
  readonly stats: Record<string, number>;
  readonly endpoint: Record<string, number>;
  readonly rss: number;
  /** CPU of the gateway's own thread (not its socket thread, GC helpers, …); undefined off Linux. */
  readonly threadCpuUs?: number | undefined;
}

/** CPU time of the calling thread in µs, from /proc (clock ticks of 10 ms); undefined where there is none. */
function threadCpuUs(): number | undefined {
  try {
    const fields = readFileSync("/proc/thread-self/stat", "utf8").split(") ")[1]!.split(" ");
    return (Number(fields[11]) + Number(fields[12])) * 10_000;
  } catch {
    return undefined;
  }
}

/** A device's key while it may connect: the DTLS server's PSK lookup (as gateway/listeners.ts). */
function pskOf(devices: DeviceDirectory): (identity: string) => Uint8Array | undefined {
  return (identity) => {
    const d = devices.find(identity);
    return d && !d.revoked ? d.key : undefined;
  };
}

/** The gateway child's memory after a full collection, and its CoAP and connect tables then. */
export interface MemoryMark {
  readonly rss: number;
  /** V8 heap used + ArrayBuffers (bench/memory.ts heapAfterGc). */
  readonly heap: number;
  /** Deduplication entries and kept reply bytes (src/core: capped, expire after EXCHANGE_LIFETIME). */
  readonly dedup: number;
  readonly dedupBytes: number;
  /** Connect nonces remembered as used (capped at GATEWAY_DEFAULTS.maxUsedNonces). */
  readonly usedNonces: number;
}

function memoryMark(tables?: { dedup: number; dedupBytes: number; usedNonces: number }): MemoryMark {
  fullGc();
  const m = process.memoryUsage();
  return {
    rss: m.rss,
    heap: m.heapUsed + m.arrayBuffers,
    dedup: tables?.dedup ?? 0,
    dedupBytes: tables?.dedupBytes ?? 0,
    usedNonces: tables?.usedNonces ?? 0,
  };
}

async function gatewayChild(config: GatewayChildConfig): Promise<void> {
  const idle = (config.idle ?? 0) > 0;
  // Memory before and after the devices are provisioned (bench/idle.ts: per provisioned device).
  const start = idle ? memoryMark() : undefined;
  const state = gatewayState(config);
  state.devices.find(identityOf(0)); // the SQLite registry fills its cache at the first lookup
  const provisioned = idle ? memoryMark() : undefined;
  const listen = {
    host: "127.0.0.1",
    transmission: transmissionFor(config),
    udp: { recvBufferSize: RECV_BUFFER, sendBufferSize: RECV_BUFFER },
  };
  const psk = pskOf(state.devices);
  const threaded = config.gatewayCores === 2;
  const secure = config.dtls
    ? await (threaded ? createThreadedDtlsServerEndpoint : createDtlsServerEndpoint)({
        ...listen,
        dtls: {
          psk,
          authorize: (identity) => psk(identity) !== undefined,
          suites: [DTLS_SUITES[config.dtls]],
          // Every node shares 127.0.0.1: the per-host limit is for a real link, not loopback.
          limits: { maxHandshakes: MAX_NODES, maxHandshakesPerHost: MAX_NODES, maxSessions: MAX_NODES },
        },
      })
    : undefined;
  const udp = secure ?? (await (threaded ? createThreadedUdpEndpoint : createUdpEndpoint)(listen));
  // Per node: the sequence numbers seen and the highest one.
  const seen = new Map<string, { set: Set<number>; max: number }>();
  let delivered = 0;
  let duplicates = 0;
  let outOfOrder = 0;
  const service = attachGateway(udp.endpoint, {
    ...(state.store ? { store: state.store } : { devices: state.devices }),
    ...(secure ? { dtlsIdentity: (peer: PeerAddress) => secure.dtls.identityOf(peer) } : {}),
    domain: DOMAIN,
    clock: wallClock,
    outbound: (stanza) => {
      if (stanza.name === "presence") return; // the gateway shows each node's presence to its peers
      const from = attr(stanza, "from") ?? "";
      const fields = stanza.children.find((c): c is XElement => typeof c !== "string" && c.name === "fields");
      const seq = Number(fields ? attr(fields, "seqnr") : Number.NaN);
      let node = seen.get(from);
      if (!node) {
        node = { set: new Set(), max: 0 };
        seen.set(from, node);
      }
      if (node.set.has(seq)) {
        duplicates++;
        return;
      }
      node.set.add(seq);
      delivered++;
      if (seq < node.max) outOfOrder++;
      else node.max = seq;
    },
  });
  // Idle sessions need time to pass as in `cxmpp gateway` (gateway.ts): the tick, and the census that
  // metrics take after it, so the idle CPU figure includes them.
  const ticker = idle
    ? setInterval(() => {
        service.tick();
        service.census();
      }, GATEWAY_DEFAULTS.tickMs)
    : undefined;
  const tables = () => {
    const t = udp.endpoint.tables();
    return { dedup: t.dedup, dedupBytes: t.dedupBytes, usedNonces: service.usedNonces };
  };
  let cpu0 = process.cpuUsage();
  let thread0 = threadCpuUs();
  let wall0 = performance.now();
  process.on("message", (m: ChildRequest) => {
    if (m.type === "mark") {
      // CPU and wall time since the previous mark, then (idle runs) memory after a full collection.
      const cpu = process.cpuUsage(cpu0);
      const wallMs = performance.now() - wall0;
      const memory = idle ? memoryMark(tables()) : undefined;
      cpu0 = process.cpuUsage();
      thread0 = threadCpuUs();
      wall0 = performance.now();
      process.send?.({
        id: m.id,
        cpuUs: cpu.user + cpu.system,
        wallMs,
        sessions: service.sessionCount,
        ...(memory ? { memory } : {}),
      });
    } else if (m.type === "report") {
      const cpu = process.cpuUsage(cpu0);
      const report: GatewayReport = {
        cpuUs: cpu.user + cpu.system,
        wallMs: performance.now() - wall0,
        delivered,
        duplicates,
        outOfOrder,
        stats: { ...service.stats },
        endpoint: { ...udp.endpoint.messages.stats },
        rss: process.memoryUsage().rss,
        threadCpuUs: thread0 === undefined ? undefined : (threadCpuUs() ?? thread0) - thread0,
      };
      process.send?.({ id: m.id, report });
    }
  });
  process.on("disconnect", () => {
    clearInterval(ticker);
    void udp.close().finally(() => {
      state.store?.close();
      process.exit(0);
    });
  });
  process.send?.({ id: 0, port: udp.transport.port, ...(idle ? { start, provisioned } : {}) });
}

export interface MemoryReport {
  readonly sessions: number;
  readonly connected: number;
  readonly gc: boolean;
  readonly rss_bytes_per_session: number;
  readonly heap_bytes_per_session: number;
  readonly rss_total_mb: number;
}

/** Sessions through the real connect path (4.01 + Echo, then the proof), without sockets. */
async function memoryChild(sessions: number, seed: number): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  const warmup = 100;
  const devices = benchDevices(sessions + warmup, seed);
  const service = new GatewayService({
    devices,
    domain: DOMAIN,
    mac: nodeMac,
    random: cryptoRandom,
    clock: wallClock,
  });
  let mid = 0;
  let connected = 0;
  const request = (peer: PeerAddress, payload: Uint8Array, echo?: Uint8Array): ServerRequest => ({
    code: Code.POST,
    options: connectOptions(echo),
    payload,
    peer,
    token: Uint8Array.of(mid & 0xff),
    messageId: mid++ & 0xffff,
    confirmable: true,
  });
  const connect = async (i: number) => {
    const peer = `10.${(i >> 16) & 0xff}.${(i >> 8) & 0xff}.${i & 0xff}:5683` as PeerAddress;
    const c = { identity: identityOf(i), dictionary: DICTIONARY_V1.id };
    const challenge = await service.handle(request(peer, protocol.encodeConnectRequest(c)));
    const echo = challenge.options.find((o) => o.number === OptionNumber.ECHO)?.value;
    if (challenge.code !== Code.UNAUTHORIZED || !echo) return;
    const proof = nodeMac
      .hmacSha256(deviceKey(i, seed), protocol.proofInput(echo, c))
      .subarray(0, protocol.PROOF_BYTES);
    const done = await service.handle(request(peer, protocol.encodeConnectRequest({ ...c, proof }), echo));
    if (done.code === Code.CREATED) connected++;
  };
  for (let i = sessions; i < sessions + warmup; i++) await connect(i);
  const settle = () => {
    for (let k = 0; k < 3; k++) gc?.();
  };
  settle();
  const before = process.memoryUsage();
  for (let i = 0; i < sessions; i++) await connect(i);
  settle();
  const after = process.memoryUsage();
  const report: MemoryReport = {
    sessions,
    connected: connected - warmup,
    gc: gc !== undefined,
    rss_bytes_per_session: Math.round((after.rss - before.rss) / sessions),
    heap_bytes_per_session: Math.round((after.heapUsed - before.heapUsed) / sessions),
    rss_total_mb: round(after.rss / 2 ** 20, 1),
  };
  process.send?.({ id: 0, memory: report });
  process.on("disconnect", () => process.exit(0));
}

// ---------------------------------------------------------------------------------------------------
// The parent process: children, nodes, relay, figures.

const HERE = fileURLToPath(import.meta.url);

/** This file forked as the gateway, a load or the memory child. */
function spawnChild(role: "gateway" | "load" | "memory", config: unknown): BenchChild {
  const options = role === "gateway" ? ["--expose-gc", ...gatewayNodeOptions()] : ["--expose-gc"];
  return forkBench(HERE, [CHILD_FLAG, role, JSON.stringify(config)], role, options);
}

interface SimNode {
  readonly index: number;
  readonly client: NodeClient;
  readonly endpoint: CoapEndpoint;
  readonly transport: UdpTransport;
  /** The node's DTLS client between its CoAP endpoint and its socket (a `dtls` run). */
  readonly dtls: DtlsClient | undefined;
  /** UDP payload bytes on air for this node so far (both directions). */
  bytes: number;
}

function seededCoreRandom(seed: number): Random {
  const u = seededRandom(seed);
  return { uint32: () => Math.floor(u() * 4_294_967_296) };
}

async function createNode(
  index: number,
  gateway: PeerAddress,
  config: SessionRunConfig,
  countDown: boolean,
  logger: Logger,
): Promise<SimNode> {
  const transport = await UdpTransport.bind("127.0.0.1", 0, { recvBufferSize: 2 ** 18 });
  const node = { index, transport, bytes: 0 } as Partial<SimNode> as SimNode;
  // Counts UDP payload bytes per node: everything it sends, and (without relay) everything it receives.
  const counted: DatagramTransport = {
    send(data, peer) {
      node.bytes += data.length;
      transport.send(data, peer);
    },
    onReceive(handler) {
      transport.onReceive((data, peer) => {
        if (countDown) node.bytes += data.length;
        handler(data, peer);
      });
    },
    close: () => transport.close(),
  };
  // What createDtlsClientEndpoint assembles, but over the counting transport: bytes on air include DTLS.
  const dtls = config.dtls
    ? new DtlsClient(counted, {
        server: gateway,
        identity: identityOf(index),
        psk: deviceKey(index, config.seed),
        crypto: nodeDtlsCrypto,
        clock: systemClock,
        scheduler: timerScheduler(),
        suites: [DTLS_SUITES[config.dtls]],
        ...(config.loss > 0 ? { retransmit: { initialMs: 200, maxMs: 1_000 } } : {}),
      })
    : undefined;
  const endpoint = new CoapEndpoint({
    transport: dtls ?? counted,
    clock: systemClock,
    scheduler: timerScheduler(),
    random: seededCoreRandom(config.seed * 7_919 + index),
    transmission: transmissionFor(config),
    exchange: { tokenLength: 1 }, // as `cxmpp node`: one outstanding request at a time
  });
  const client = new NodeClient({
    endpoint,
    gateway,
    identity: identityOf(index),
    key: deviceKey(index, config.seed),
    mac: nodeMac,
    logger,
    retryDelayMs: config.loss > 0 ? 100 : 1_000,
  });
  return Object.assign(node, { endpoint, client, dtls });
}

async function connectWithRetry(client: NodeClient, deadline: number): Promise<void> {
  for (;;) {
    try {
      await client.connect();
      return;
    } catch (error) {
      if (performance.now() > deadline) throw error;
      await sleep(50);
    }
  }
}

export interface SessionRunResult {
  readonly mode: "reliable" | "telemetry";
  /** The gateway's state: in memory, or SQLite with synchronous=FULL / NORMAL. */
  readonly store: StoreKind;
  readonly nodes: number;
  readonly stanzas_per_node: number;
  readonly loss: number;
  readonly seed: number;
  /** nodes × stanzas; `sent` is smaller only when the drain deadline stopped the run. */
  readonly planned: number;
  readonly sent: number;
  readonly delivered: number;
  readonly duplicates: number;
  readonly out_of_order: number;
  readonly lost: number;
  readonly elapsed_s: number;
  readonly stanzas_per_s: number;
  readonly cpu_us_per_stanza: number;
  readonly gateway_cpu_share: number;
  /** 1e6 / cpu_us_per_stanza: what one core of gateway could route if the nodes kept up. */
  readonly gateway_bound_stanzas_per_s: number;
  /** Processes that ran the nodes (1: this process, as before). */
  readonly load_processes: number;
  /** Each load process's CPU / wall time while it sent (near 1: that process set the pace). */
  readonly load_cpu_share: readonly number[];
  readonly load_cpu_share_max: number;
  /** The load processes' CPU together per stanza delivered. */
  readonly load_cpu_us_per_stanza: number;
  /** os.availableParallelism(). */
  readonly cores: number;
  /** (gateway + load CPU) / (wall time × cores): near 1, the machine had no core to spare. */
  readonly machine_cpu_share: number;
  readonly retransmissions: number;
  readonly exchange_retries: number;
  /** Reliable stanzas each node kept in flight (`--window`). */
  readonly window: number;
  /** The gateway's `cores` (`--cores`). */
  readonly gateway_cores: number;
  /** CPU of the gateway's own thread per stanza (Linux): with `--cores 2`, without its socket thread. */
  readonly gateway_thread_cpu_us_per_stanza?: number;
  readonly bytes_on_air_median: number;
  readonly bytes_on_air_p95: number;
  readonly mqtt_sn_payload_bytes_median: number;
  readonly mqtt_sn_bytes_median: number;
  readonly bytes_ratio_vs_mqtt_sn: number;
  readonly ack_timeout_ms: number;
  readonly max_retransmit: number;
  readonly connect_s: number;
  readonly relay: LossyRelay["stats"] | null;
  readonly gateway: {
    readonly stanzas_in: number;
    readonly telemetry_in: number;
    readonly duplicate_frames: number;
    readonly coap_duplicates: number;
    readonly rss_mb: number;
  };
  readonly anchors: typeof ANCHORS;
  /** Send to acknowledgement of a reliable stanza at the node (0 for NON telemetry). */
  readonly latency_ms_p50: number;
  readonly latency_ms_p99: number;
  /** The DTLS suite the nodes spoke (present only in a `dtls` run). */
  readonly dtls?: DtlsSuiteName;
  /** The idle sessions held meanwhile (`--idle N`). */
  readonly idle?: IdleResult;
}

// ---------------------------------------------------------------------------------------------------
// The load side: a slice of the nodes (and, with loss, their own relay), in this process or a child.

/** The nodes one load side runs, `from` to `to` (exclusive), and the seed of its relay. */
interface LoadSlice {
  readonly from: number;
  readonly to: number;
  readonly relaySeed: number;
}

/** What the load child is given. */
interface LoadChildConfig {
  readonly run: SessionRunConfig;
  readonly gateway: PeerAddress;
  readonly slice: LoadSlice;
}

/** Counts of values (bytes per stanza): a compact form of a long list, across the IPC channel too. */
type Histogram = [value: number, count: number][];

function addTo(h: Map<number, number>, value: number, count = 1): void {
  h.set(value, (h.get(value) ?? 0) + count);
}

/** `percentile` over the values a histogram counts: the value at rank ⌊p × n⌋ (0 for none). */
function histogramPercentile(h: ReadonlyMap<number, number>, p: number): number {
  let n = 0;
  for (const c of h.values()) n += c;
  if (n === 0) return 0;
  const rank = Math.min(n - 1, Math.floor(p * n));
  let seen = 0;
  for (const [value, count] of [...h].sort((a, b) => a[0] - b[0])) {
    seen += count;
    if (seen > rank) return value;
  }
  return 0;
}

/** What one load side measured between `start` and the end of its last stanza. */
interface LoadReport {
  readonly sent: number;
  /** UDP payload bytes on air per stanza, and the MQTT-SN payload of the same reading. */
  readonly bytes: Histogram;
  readonly plain: Histogram;
  /** Send to acknowledgement of each reliable stanza, in units of 10 µs. */
  readonly latency: Histogram;
  readonly retransmissions: number;
  readonly exchangeRetries: number;
  /** Seconds from creating its first node to every node of the slice connected. */
  readonly connectS: number;
  readonly relay: LossyRelay["stats"] | null;
  /** This process's CPU (user + system, every thread) and wall time while it sent. */
  readonly cpuUs: number;
  readonly wallMs: number;
}

interface LoadSide {
  /** Every node of the slice connected: its connect time in seconds. */
  readonly ready: Promise<number>;
  /** Marks the CPU and starts sending. */
  start(): void;
  /** After the last stanza (or the drain deadline). */
  finish(): Promise<LoadReport>;
  close(): Promise<void>;
}

/** Creates and connects the slice's nodes (and relay), then sends when started. */
function startLoad(config: SessionRunConfig, direct: PeerAddress, slice: LoadSlice): LoadSide {
  const nodes: SimNode[] = [];
  let relay: LossyRelay | undefined;
  let exchangeRetries = 0;
  const logger: Logger = {
    log: (_level, event) => {
      if (event === "session.uplink_failed") exchangeRetries++;
    },
  };
  const setup = async (): Promise<number> => {
    const byAddress = new Map<string, SimNode>();
    if (config.loss > 0) {
      relay = await LossyRelay.start(direct, {
        loss: config.loss,
        seed: slice.relaySeed,
        onDatagram: (client, direction, bytes) => {
          const node = direction === "down" ? byAddress.get(client) : undefined;
          if (node) node.bytes += bytes;
        },
      });
    }
    const target = relay ? relay.address : direct;
    for (let i = slice.from; i < slice.to; i++) {
      const node = await createNode(i, target, config, relay === undefined, logger);
      nodes.push(node);
      byAddress.set(node.transport.address, node);
    }
    const c0 = performance.now();
    await Promise.all(nodes.map((n) => connectWithRetry(n.client, c0 + 60_000)));
    return (performance.now() - c0) / 1000;
  };
  const ready = setup();
  let finished: Promise<LoadReport> | undefined;
  const total = config.nodes * config.stanzas;
  const drainMs = 60_000 + total * (config.loss > 0 ? 50 : 5);
  const send = async (connectS: number): Promise<LoadReport> => {
    exchangeRetries = 0;
    const retransmitted0 = nodes.reduce((s, n) => s + n.endpoint.messages.stats.retransmissions, 0);
    const cpu0 = process.cpuUsage();
    const wall0 = performance.now();
    let sent = 0;
    const bytes = new Map<number, number>();
    const plain = new Map<number, number>();
    const latency = new Map<number, number>();
    let stopped = false;
    const window = config.window ?? 1;
    const runNode = async (node: SimNode) => {
      const random = seededRandom(config.seed * 100_003 + node.index);
      const flying = new Set<Promise<void>>();
      const start = node.bytes;
      for (let s = 1; s <= config.stanzas && !stopped; s++) {
        const r = reading(node.index, s, random);
        const before = node.bytes;
        sent++;
        addTo(plain, r.plainBytes);
        if (config.telemetry) {
          // A NON reading gets no answer (No-Response, RFC 7967): pace by time. The first reading of a
          // session goes reliably (NodeClient.sendTelemetry), and its answer lands within the pause.
          node.client.sendTelemetry(r.stanza);
          await sleep(s === 1 ? 20 : 2);
        } else if (window > 1) {
          // A busy node: up to `window` stanzas in flight; bytes are counted per window, shared out.
          const sentAt = performance.now();
          const p = node.client.send(r.stanza).then(
            () => addTo(latency, Math.round((performance.now() - sentAt) * 100)),
            () => {}, // closed at the drain deadline
          );
          flying.add(p);
          void p.finally(() => flying.delete(p));
          if (flying.size >= window) await Promise.race(flying);
          continue;
        } else {
          const sentAt = performance.now();
          try {
            await node.client.send(r.stanza);
          } catch {
            return; // closed at the drain deadline
          }
          addTo(latency, Math.round((performance.now() - sentAt) * 100));
        }
        addTo(bytes, node.bytes - before);
      }
      if (flying.size > 0) await Promise.all(flying);
      if (window > 1 && !config.telemetry) {
        const per = Math.round((node.bytes - start) / config.stanzas);
        for (let s = 0; s < config.stanzas; s++) addTo(bytes, per);
      }
    };
    let deadline: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(nodes.map(runNode)),
      new Promise<void>((done) => {
        deadline = setTimeout(() => {
          stopped = true;
          for (const n of nodes) n.client.close();
          done();
        }, drainMs);
      }),
    ]);
    clearTimeout(deadline);
    const cpu = process.cpuUsage(cpu0);
    const wallMs = performance.now() - wall0;
    return {
      sent,
      bytes: [...bytes],
      plain: [...plain],
      latency: [...latency],
      retransmissions:
        nodes.reduce((s, n) => s + n.endpoint.messages.stats.retransmissions, 0) - retransmitted0,
      exchangeRetries,
      connectS,
      relay: relay ? structuredClone(relay.stats) : null,
      cpuUs: cpu.user + cpu.system,
      wallMs,
    };
  };
  return {
    ready,
    start() {
      finished ??= ready.then(send);
    },
    finish() {
      if (!finished) throw new Error("the load side was not started");
      return finished;
    },
    async close() {
      await ready.catch(() => undefined);
      for (const n of nodes) {
        n.client.close();
        n.endpoint.close();
        n.dtls?.close();
        n.transport.close();
      }
      await relay?.close();
    },
  };
}

/** A forked load process: its slice of the nodes, driven over IPC (`mark` starts, `report` ends). */
async function loadChild(config: LoadChildConfig): Promise<void> {
  const side = startLoad(config.run, config.gateway, config.slice);
  process.on("disconnect", () => {
    void side.close().finally(() => process.exit(0));
  });
  process.on("message", (m: ChildRequest) => {
    if (m.type === "mark") {
      side.start();
      process.send?.({ id: m.id });
    } else if (m.type === "report") {
      side.finish().then(
        (report) => process.send?.({ id: m.id, report }),
        (error: unknown) => {
          process.stderr.write(`cxmpp bench session (load): ${String(error)}\n`);
          process.exit(1);
        },
      );
    }
  });
  process.send?.({ id: 0, connectS: await side.ready });
}

/** The parent's handle on one load side, in this process or forked. */
interface LoadHandle {
  readonly ready: Promise<number>;
  mark(): Promise<void>;
  report(): Promise<LoadReport>;
  stop(): Promise<void>;
}

function localLoad(config: SessionRunConfig, gateway: PeerAddress, slice: LoadSlice): LoadHandle {
  const side = startLoad(config, gateway, slice);
  return {
    ready: side.ready,
    mark: async () => side.start(),
    report: () => side.finish(),
    stop: () => side.close(),
  };
}

function forkedLoad(config: SessionRunConfig, gateway: PeerAddress, slice: LoadSlice): LoadHandle {
  const child = spawnChild("load", { run: config, gateway, slice } satisfies LoadChildConfig);
  return {
    ready: child.first.then((m) => Number(m.connectS)),
    mark: async () => {
      await child.call("mark");
    },
    report: async () => (await child.call("report")).report as LoadReport,
    stop: () => child.stop(),
  };
}

/** Sums the relays' counts (null without loss). */
function sumRelays(relays: readonly (LossyRelay["stats"] | null)[]): LossyRelay["stats"] | null {
  let sum: LossyRelay["stats"] | null = null;
  for (const r of relays) {
    if (!r) continue;
    if (!sum) sum = structuredClone(r);
    else
      for (const d of ["up", "down"] as const)
        for (const k of ["received", "dropped", "duplicated", "forwarded"] as const) sum[d][k] += r[d][k];
  }
  return sum;
}

/**
 * One configuration: a gateway child, N nodes spread over the load processes (and with loss a relay in
 * each), M stanzas each.
 */
export async function runOne(config: SessionRunConfig): Promise<SessionRunResult> {
  // Created (and removed) here rather than in the child, so a child that dies leaves nothing behind.
  const dataDir = config.store === "memory" ? undefined : mkdtempSync(join(tmpdir(), "cxmpp-bench-"));
  const gateway = spawnChild("gateway", { ...config, dataDir } satisfies GatewayChildConfig);
  const processes = loadProcessesOf(config);
  const sides: LoadHandle[] = [];
  try {
    const hello = await gateway.first;
    const port = Number(hello.port);
    const direct = `127.0.0.1:${port}` as PeerAddress;
    const idle = (config.idle ?? 0) > 0 ? await idlePhase(config, gateway, direct, hello) : undefined;
    for (let k = 0; k < processes; k++) {
      // Contiguous slices; the first relay keeps the run's seed, so one process loses as before.
      const slice = {
        from: Math.floor((k * config.nodes) / processes),
        to: Math.floor(((k + 1) * config.nodes) / processes),
        relaySeed: config.seed + k * 7_919,
      };
      sides.push(processes === 1 ? localLoad(config, direct, slice) : forkedLoad(config, direct, slice));
    }
    const connectS = Math.max(...(await Promise.all(sides.map((s) => s.ready))));
    await gateway.call("mark");
    const t0 = performance.now();
    await Promise.all(sides.map((s) => s.mark()));
    const loads = await Promise.all(sides.map((s) => s.report()));
    const elapsed = (performance.now() - t0) / 1000;
    if (config.telemetry) await sleep(100); // NON requests whose response was lost may still be queued
    const report = (await gateway.call("report")).report as GatewayReport;

    const total = config.nodes * config.stanzas;
    const sent = loads.reduce((s, l) => s + l.sent, 0);
    const bytes = new Map<number, number>();
    const plain = new Map<number, number>();
    const latency = new Map<number, number>();
    for (const l of loads) {
      for (const [v, c] of l.bytes) addTo(bytes, v, c);
      for (const [v, c] of l.plain) addTo(plain, v, c);
      for (const [v, c] of l.latency) addTo(latency, v, c);
    }
    const retransmissions = loads.reduce((s, l) => s + l.retransmissions, 0);
    const exchangeRetries = loads.reduce((s, l) => s + l.exchangeRetries, 0);
    const relay = sumRelays(loads.map((l) => l.relay));
    const loadShares = loads.map((l) => round(l.cpuUs / 1000 / l.wallMs, 2));
    const loadCpuUs = loads.reduce((s, l) => s + l.cpuUs, 0);
    const cores = availableParallelism();
    const onAir = histogramPercentile(bytes, 0.5);
    const payload = histogramPercentile(plain, 0.5);
    const mqtt = config.telemetry ? 7 + payload : 7 + payload + 7;
    const delivered = report.delivered;
    const transmission = { ...transmissionFor(config) };
    return {
      mode: config.telemetry ? "telemetry" : "reliable",
      store: config.store,
      nodes: config.nodes,
      stanzas_per_node: config.stanzas,
      loss: config.loss,
      seed: config.seed,
      planned: total,
      sent,
      delivered,
      duplicates: report.duplicates,
      out_of_order: report.outOfOrder,
      lost: sent - delivered,
      elapsed_s: round(elapsed, 3),
      stanzas_per_s: Math.round(delivered / elapsed),
      cpu_us_per_stanza: delivered > 0 ? round(report.cpuUs / delivered, 1) : 0,
      gateway_cpu_share: round(report.cpuUs / 1000 / report.wallMs, 2),
      gateway_bound_stanzas_per_s: report.cpuUs > 0 ? Math.round((delivered * 1e6) / report.cpuUs) : 0,
      load_processes: processes,
      load_cpu_share: loadShares,
      load_cpu_share_max: Math.max(...loadShares),
      load_cpu_us_per_stanza: delivered > 0 ? round(loadCpuUs / delivered, 1) : 0,
      cores,
      machine_cpu_share: round((report.cpuUs + loadCpuUs) / 1000 / (elapsed * 1000) / cores, 2),
      retransmissions,
      exchange_retries: exchangeRetries,
      window: config.window ?? 1,
      gateway_cores: config.gatewayCores ?? 1,
      ...(report.threadCpuUs !== undefined && delivered > 0
        ? { gateway_thread_cpu_us_per_stanza: round(report.threadCpuUs / delivered, 1) }
        : {}),
      bytes_on_air_median: onAir,
      bytes_on_air_p95: histogramPercentile(bytes, 0.95),
      mqtt_sn_payload_bytes_median: payload,
      mqtt_sn_bytes_median: mqtt,
      bytes_ratio_vs_mqtt_sn: round(onAir / mqtt, 2),
      ack_timeout_ms: transmission.ackTimeoutMs ?? 0,
      max_retransmit: transmission.maxRetransmit ?? 0,
      connect_s: round(connectS, 3),
      relay,
      gateway: {
        stanzas_in: report.stats.stanzasIn ?? 0,
        telemetry_in: report.stats.telemetryIn ?? 0,
        duplicate_frames: report.stats.duplicateFrames ?? 0,
        coap_duplicates: report.endpoint.duplicates ?? 0,
        rss_mb: round(report.rss / 2 ** 20, 1),
      },
      latency_ms_p50: histogramPercentile(latency, 0.5) / 100,
      latency_ms_p99: histogramPercentile(latency, 0.99) / 100,
      anchors: ANCHORS,
      ...(config.dtls ? { dtls: config.dtls } : {}),
      ...(idle ? { idle } : {}),
    };
  } finally {
    await Promise.all(sides.map((s) => s.stop()));
    await gateway.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  }
}

/** What `--idle N` measured (bench/idle.ts). */
export interface IdleResult {
  readonly idle_sessions: number;
  readonly connected: number;
  readonly failed: number;
  readonly provisioned_devices: number;
  /** Gateway RSS and heap growth per session from the warm-up mark to every idle node connected. */
  readonly rss_bytes_per_session: number;
  readonly heap_bytes_per_session: number;
  /** Growth per provisioned device (none connected yet) from before the devices to after them. */
  readonly rss_bytes_per_device: number;
  readonly heap_bytes_per_device: number;
  /** Connects after the warm-up per second of the slowest load process; gateway CPU per connect. */
  readonly connects_per_s: number;
  readonly gateway_cpu_us_per_connect: number;
  readonly gateway_connect_cpu_share: number;
  /** What one busy gateway core could take: connects over the gateway's CPU seconds. */
  readonly gateway_bound_connects_per_s: number;
  /** The load processes' CPU per connect (together) and each one's CPU over its wall time. */
  readonly load_cpu_us_per_connect: number;
  readonly load_busy: readonly number[];
  readonly connect_s: number;
  readonly connect_retransmissions: number;
  readonly load_processes: number;
  /** Connects before the first memory mark: they fill the capped deduplication and nonce tables. */
  readonly warmup: number;
  /** Gateway CPU / wall time while every session is idle (tick and census included). */
  readonly idle_cpu_share: number;
  readonly idle_cpu_window_s: number;
  readonly idle_wake_s: number;
  readonly rss_total_mb: number;
  readonly heap_total_mb: number;
  /** Deduplication entries and nonces held at the warm-up mark and at the end (capped tables). */
  readonly dedup_entries: readonly [number, number];
  readonly dedup_reply_bytes: readonly [number, number];
  readonly used_nonces: readonly [number, number];
  readonly store: StoreKind;
  readonly seed: number;
}

/**
 * Connects before the memory mark: enough for the CoAP deduplication table (16,384 exchanges, two per
 * connect) and the used-nonce table (10,000) to reach their caps, so both marks hold them full and the
 * per-session figure is the sessions' own. Smaller runs warm up with a fifth of their nodes and the
 * tables' sizes are printed beside the figure.
 */
const IDLE_WARMUP = 10_000;
/** How long the gateway's CPU is watched while everything is idle, after the awake window passed. */
const IDLE_CPU_MS = 10_000;
/** Connects in flight per idle load process. */
const IDLE_WINDOW = 256;

/** Connects the idle nodes (after a warm-up), marking the gateway's memory and CPU around them. */
async function idlePhase(
  config: SessionRunConfig,
  gateway: BenchChild,
  direct: PeerAddress,
  hello: Record<string, unknown>,
): Promise<IdleResult> {
  const n = config.idle ?? 0;
  const processes = Math.max(1, config.loadProcesses ?? Math.min(2, availableParallelism()));
  const warmup = Math.min(IDLE_WARMUP, Math.floor(n / 5));
  const base = { seed: config.seed, wake: config.idleWake ?? 0, gateway: direct, window: IDLE_WINDOW };
  const from = config.nodes;
  const first = await connectIdleSpread(base, from, from + warmup, processes);
  const warm = await gateway.call("mark");
  const main = await connectIdleSpread(base, from + warmup, from + n, processes);
  const end = await gateway.call("mark");
  // Past the awake window (a sleeping node turns xa once, at the tick after it), then watch the CPU.
  await sleep(6_000);
  await gateway.call("mark");
  await sleep(IDLE_CPU_MS);
  const quiet = await gateway.call("mark");
  const m0 = hello.start as MemoryMark;
  const m1 = hello.provisioned as MemoryMark;
  const m2 = warm.memory as MemoryMark;
  const m3 = end.memory as MemoryMark;
  const measured = Math.max(1, n - warmup);
  const devices = config.nodes + n;
  const endCpuUs = Number(end.cpuUs);
  return {
    idle_sessions: n,
    connected: first.connected + main.connected,
    failed: first.failed + main.failed,
    provisioned_devices: devices,
    rss_bytes_per_session: Math.round((m3.rss - m2.rss) / measured),
    heap_bytes_per_session: Math.round((m3.heap - m2.heap) / measured),
    rss_bytes_per_device: Math.round((m1.rss - m0.rss) / devices),
    heap_bytes_per_device: Math.round((m1.heap - m0.heap) / devices),
    connects_per_s: main.wallMs > 0 ? Math.round(main.connected / (main.wallMs / 1000)) : 0,
    gateway_cpu_us_per_connect: main.connected > 0 ? round(endCpuUs / main.connected, 1) : 0,
    gateway_connect_cpu_share: round(endCpuUs / 1000 / Number(end.wallMs), 2),
    gateway_bound_connects_per_s: endCpuUs > 0 ? Math.round(main.connected / (endCpuUs / 1e6)) : 0,
    load_cpu_us_per_connect: main.connected > 0 ? round(main.cpuUs / main.connected, 1) : 0,
    load_busy: main.busy.map((b) => round(b, 2)),
    connect_s: round((first.wallMs + main.wallMs) / 1000, 2),
    connect_retransmissions: first.retransmissions + main.retransmissions,
    load_processes: processes,
    warmup,
    idle_cpu_share: round(Number(quiet.cpuUs) / 1000 / Number(quiet.wallMs), 4),
    idle_cpu_window_s: round(Number(quiet.wallMs) / 1000, 1),
    idle_wake_s: config.idleWake ?? 0,
    rss_total_mb: round(m3.rss / 2 ** 20, 1),
    heap_total_mb: round(m3.heap / 2 ** 20, 1),
    dedup_entries: [m2.dedup, m3.dedup],
    dedup_reply_bytes: [m2.dedupBytes, m3.dedupBytes],
    used_nonces: [m2.usedNonces, m3.usedNonces],
    store: config.store,
    seed: config.seed,
  };
}

/** `--idle N` alone: a gateway child, the idle nodes, the figures; no active nodes. */
export async function runIdle(config: SessionRunConfig): Promise<IdleResult> {
  const dataDir = config.store === "memory" ? undefined : mkdtempSync(join(tmpdir(), "cxmpp-bench-"));
  const gateway = spawnChild("gateway", { ...config, nodes: 0, dataDir } satisfies GatewayChildConfig);
  try {
    const hello = await gateway.first;
    const direct = `127.0.0.1:${Number(hello.port)}` as PeerAddress;
    return await idlePhase({ ...config, nodes: 0 }, gateway, direct, hello);
  } finally {
    await gateway.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  }
}

/** RSS and heap per idle session, in a fresh child with --expose-gc. */
export async function runMemory(sessions: number, seed: number): Promise<MemoryReport> {
  const child = spawnChild("memory", { sessions, seed });
  try {
    return (await child.first).memory as MemoryReport;
  } finally {
    await child.stop();
  }
}

// ---------------------------------------------------------------------------------------------------
// Output.

/** True when a run broke the guarantee of its mode (reliable: all, once, in order; NON: at most once). */
function violated(r: SessionRunResult): boolean {
  if (r.sent < r.planned) return true;
  if (r.mode === "telemetry") return r.duplicates > 0;
  return r.lost !== 0 || r.duplicates !== 0 || r.out_of_order !== 0;
}

function bytesLine(r: SessionRunResult): string {
  const kind =
    r.mode === "telemetry"
      ? "MQTT-SN QoS 0 (PUBLISH 7 + payload)"
      : "MQTT-SN QoS 1 (PUBLISH 7 + payload + PUBACK 7)";
  return (
    `  ${r.mode === "telemetry" ? "NON telemetry" : "CON reliable "}: median ${r.bytes_on_air_median} B on air ` +
    `(p95 ${r.bytes_on_air_p95}) vs ${kind} = ${r.mqtt_sn_bytes_median} B for a ${r.mqtt_sn_payload_bytes_median}-byte ` +
    `reading → ${r.bytes_ratio_vs_mqtt_sn}×`
  );
}

/** Each load process's busy share, e.g. `61%+58%`. */
function busyList(r: SessionRunResult): string {
  return r.load_cpu_share.map((x) => `${Math.round(x * 100)}%`).join("+");
}

function formatOne(r: SessionRunResult): string {
  const lines = [
    `cxmpp bench session: ${r.nodes} node(s) × ${r.stanzas_per_node} stanzas, ${r.mode === "telemetry" ? "NON telemetry" : "CON reliable"}, loss ${r.loss * 100}% per direction, seed ${r.seed}, store ${storeLabel(r.store)}${r.dtls ? `, over DTLS ${r.dtls}` : ""}${r.window > 1 ? `, ${r.window} in flight per node` : ""}`,
    `  ${r.sent < r.planned ? `STOPPED AT THE DRAIN DEADLINE after ${fmt(r.sent)} of ${fmt(r.planned)};  ` : ""}sent ${fmt(r.sent)}  delivered ${fmt(r.delivered)}  duplicates ${r.duplicates}  out of order ${r.out_of_order}  lost ${r.lost}`,
    `  ${fmt(r.stanzas_per_s)} stanzas/s over ${r.elapsed_s} s (connect ${r.connect_s} s); retransmissions ${r.retransmissions}, failed exchanges retried ${r.exchange_retries}${r.mode === "reliable" ? `; latency p50 ${r.latency_ms_p50} ms, p99 ${r.latency_ms_p99} ms` : ""}`,
    `  gateway CPU ${r.cpu_us_per_stanza} µs/stanza (busy ${Math.round(r.gateway_cpu_share * 100)}% of wall time; one core would route ${fmt(r.gateway_bound_stanzas_per_s)}/s)   Paho MQTT-SN: 62–89 µs per QoS-1 message, ~50 µs QoS 0; node-coap bare server 120–150 µs/request`,
    `  load: ${r.load_processes} process${r.load_processes > 1 ? "es" : ""} busy ${busyList(r)} of wall time, ${r.load_cpu_us_per_stanza} µs/stanza together; machine ${Math.round(r.machine_cpu_share * 100)}% of ${r.cores} cores; the busier side: ${r.gateway_cpu_share >= r.load_cpu_share_max ? "gateway" : "load"}`,
    bytesLine(r),
    `    anchor: 34 B for a 20-byte payload; targets ≤ ${ANCHORS.target_bytes_ratio_issue}× (issue), ≤ ${ANCHORS.target_bytes_ratio_brief}× (ARCHITECTURE.md)`,
  ];
  if (r.relay)
    lines.push(
      `  relay: up ${r.relay.up.received} in, ${r.relay.up.dropped} dropped; down ${r.relay.down.received} in, ${r.relay.down.dropped} dropped`,
    );
  return `${lines.join("\n")}\n`;
}

function formatIdle(r: IdleResult): string {
  return `${[
    `cxmpp bench session --idle: ${fmt(r.connected)} of ${fmt(r.idle_sessions)} idle sessions connected over real UDP (real connect path, ${r.load_processes} load process${r.load_processes > 1 ? "es" : ""}, wake ${r.idle_wake_s} s), ${fmt(r.provisioned_devices)} devices provisioned, store ${storeLabel(r.store)}`,
    `  per idle session: RSS ${fmt(r.rss_bytes_per_session)} B, heap ${fmt(r.heap_bytes_per_session)} B (after ${fmt(r.warmup)} warm-up connects; dedup entries ${r.dedup_entries.join(" → ")}, used nonces ${r.used_nonces.join(" → ")})   Paho ~0.85 KB/client; target ≤ 1 KB`,
    `  per provisioned device (not connected): RSS ${fmt(r.rss_bytes_per_device)} B, heap ${fmt(r.heap_bytes_per_device)} B   target ≤ 0.2 KB`,
    `  connects: ${fmt(r.connects_per_s)}/s (gateway ${r.gateway_cpu_us_per_connect} µs CPU each, busy ${Math.round(r.gateway_connect_cpu_share * 100)}%, one core's worth ${fmt(r.gateway_bound_connects_per_s)}/s; ${r.connect_s} s in all, ${r.connect_retransmissions} retransmissions, ${r.failed} failed)   target ≥ 10,000/s`,
    `  load: ${r.load_busy.length} process${r.load_busy.length > 1 ? "es" : ""} busy ${r.load_busy.map((b) => `${Math.round(b * 100)}%`).join("+")}, ${r.load_cpu_us_per_connect} µs CPU per connect together; the busier side: ${r.gateway_connect_cpu_share >= Math.max(0, ...r.load_busy) ? "gateway" : "load"}`,
    `  idle gateway: ${round(r.idle_cpu_share * 100, 2)}% of a core over ${r.idle_cpu_window_s} s (tick and census included); RSS ${r.rss_total_mb} MB, heap ${r.heap_total_mb} MB`,
  ].join("\n")}\n`;
}

/** Throughput at one size with each store, side by side. */
interface StoreComparison {
  readonly nodes: number;
  readonly stanzas: number;
  readonly runs: Readonly<Record<StoreKind, SessionRunResult>>;
}

interface SuiteResult {
  readonly throughput: SessionRunResult[];
  readonly delivery: SessionRunResult[];
  readonly telemetry: SessionRunResult;
  readonly memory: MemoryReport;
  readonly stores: StoreComparison[];
  /** The runs of `stores` that the throughput section did not already make. */
  readonly storeRuns: SessionRunResult[];
}

/** Every run of the suite, in the order of its JSON output. */
function suiteRuns(s: SuiteResult): SessionRunResult[] {
  return [...s.throughput, ...s.delivery, s.telemetry, ...s.storeRuns];
}

function storeLabel(kind: StoreKind): string {
  return kind === "memory" ? "memory" : `SQLite ${kind}`;
}

function formatStores(stores: readonly StoreComparison[]): string {
  const of = (c: StoreComparison, pick: (r: SessionRunResult) => string) =>
    STORE_KINDS.map((k) => pick(c.runs[k]));
  return table(
    [
      "0% loss, CON",
      ...STORE_KINDS.map((k) => `${k} /s`),
      ...STORE_KINDS.map((k) => `${k} µs`),
      "durable +µs",
      "anchor",
    ],
    stores.map((c, i) => [
      `${fmt(c.nodes)} nodes × ${c.stanzas}`,
      ...of(c, (r) => fmt(r.stanzas_per_s)),
      ...of(c, (r) => String(r.cpu_us_per_stanza)),
      // CPU per stanza is the steadier figure on a shared machine; wall-clock stanzas/s moves with load.
      `+${round(c.runs.full.cpu_us_per_stanza - c.runs.memory.cpu_us_per_stanza, 1)} / +${round(c.runs.normal.cpu_us_per_stanza - c.runs.memory.cpu_us_per_stanza, 1)}`,
      [
        "Paho ~13k msg/s at 100 clients, 62–89 µs/QoS-1 msg, keeps nothing on disk",
        "target ≥ 5,000 stanzas/s at 1,000 nodes",
      ][i] ?? "",
    ]),
  );
}

function formatSuite(s: SuiteResult, seconds: number): string {
  const tp = table(
    [
      "0% loss, CON",
      "stanzas/s",
      "gw CPU µs/stanza",
      "gw busy",
      "load busy",
      "gw-bound/s",
      "B on air",
      "anchor",
    ],
    s.throughput.map((r, i) => [
      `${fmt(r.nodes)} node${r.nodes > 1 ? "s" : ""} × ${r.stanzas_per_node}`,
      fmt(r.stanzas_per_s),
      String(r.cpu_us_per_stanza),
      `${Math.round(r.gateway_cpu_share * 100)}%`,
      busyList(r),
      fmt(r.gateway_bound_stanzas_per_s),
      String(r.bytes_on_air_median),
      [
        "Paho 62–89 µs CPU per QoS-1 msg; node-coap 120–150 µs/request",
        "Paho ~13k msg/s at 100 clients",
        "target ≥ 5,000 stanzas/s at 1,000 nodes (Paho: ≤ 1,020 clients)",
      ][i] ?? "",
    ]),
  );
  const dl = table(
    [
      "CON, loss per direction",
      "sent",
      "delivered",
      "dup",
      "out of order",
      "lost",
      "retrans",
      "retried",
      "s",
      "µs/stanza",
    ],
    s.delivery.map((r) => [
      `${r.nodes} nodes × ${r.stanzas_per_node}, ${Math.round(r.loss * 100)}%`,
      fmt(r.sent),
      fmt(r.delivered),
      String(r.duplicates),
      String(r.out_of_order),
      String(r.lost),
      fmt(r.retransmissions),
      String(r.exchange_retries),
      String(r.elapsed_s),
      String(r.cpu_us_per_stanza),
    ]),
  );
  const m = s.memory;
  const reliable = s.throughput[0];
  return [
    `cxmpp bench session — suite (seed ${s.delivery[0]?.seed ?? 1}, ${round(seconds, 1)} s)`,
    "",
    "Throughput and gateway CPU (gateway in its own process; CPU = its user + system time / stanza;",
    "busy = CPU / wall time of the gateway and of each load process)",
    tp,
    "",
    "Delivery under loss (seeded relay; target: 100% exactly once, in order at 30% loss)",
    dl,
    "",
    "Durable state: stanzas/s and gateway CPU µs/stanza by store (SQLite in WAL mode in a temp data dir;",
    "full = synchronous=FULL, survives power loss; normal = survives a crash of the process; one group",
    "commit per event-loop turn, every response after its commit; durable +µs = full, normal minus memory)",
    formatStores(s.stores),
    "",
    `Memory per idle session (${fmt(m.sessions)} sessions via the real connect path, gc ${m.gc ? "forced" : "not available"})`,
    `  RSS ${fmt(m.rss_bytes_per_session)} B/session, heap ${fmt(m.heap_bytes_per_session)} B/session (gateway RSS ${m.rss_total_mb} MB)` +
      `   Paho ~0.85 KB/client; target ≤ 2 KB (issue), ≤ 1 KB (ARCHITECTURE.md)`,
    "",
    "Bytes on air per telemetry reading (UDP payload, request + response; no DTLS)",
    reliable ? bytesLine(reliable) : "",
    bytesLine(s.telemetry),
    `    anchor: MQTT-SN QoS 1 = 34 B for a 20-byte payload; targets ≤ ${ANCHORS.target_bytes_ratio_issue}× (issue), ≤ ${ANCHORS.target_bytes_ratio_brief}× (ARCHITECTURE.md)`,
    "",
  ].join("\n");
}

// ---------------------------------------------------------------------------------------------------
// Entry point.

function parse(opts: SessionBenchOptions): SessionRunConfig {
  const loss =
    opts.loss === undefined ? 0 : Number(typeof opts.loss === "string" ? opts.loss.trim() : opts.loss);
  if (!Number.isFinite(loss) || loss < 0 || loss >= 1)
    throw new UsageError(`--loss must be a probability in [0, 1), not '${opts.loss}'`);
  const idle = integer("idle", opts.idle, 0, 1, MAX_IDLE);
  return {
    // `--idle N` alone holds idle sessions only; with --nodes the active nodes run beside them.
    nodes: idle > 0 && opts.nodes === undefined ? 0 : integer("nodes", opts.nodes, 10, 1, MAX_NODES),
    stanzas: integer("stanzas", opts.stanzas, 100, 1, 1_000_000),
    loss,
    seed: integer("seed", opts.seed, 1, 0, 2 ** 31 - 1),
    telemetry: opts.telemetry === true,
    ackTimeoutMs: integer("ack-timeout", opts.ackTimeout, 100, 1, 60_000),
    store: storeKind(opts.store),
    ...(opts.loadProcesses === undefined
      ? {}
      : { loadProcesses: integer("load-processes", opts.loadProcesses, 1, 1, MAX_LOAD_PROCESSES) }),
    ...(idle > 0 ? { idle, idleWake: integer("idle-wake", opts.idleWake, 0, 0, 86_400) } : {}),
    ...(opts.window === undefined ? {} : { window: integer("window", opts.window, 1, 1, 64) }),
    ...(opts.cores === undefined ? {} : { gatewayCores: integer("cores", opts.cores, 1, 1, 2) as 1 | 2 }),
  };
}

/** The standard suite; under two minutes on a 2-core machine. */
async function runSuite(base: SessionRunConfig, progress: (s: string) => void): Promise<SuiteResult> {
  const run = async (c: Partial<SessionRunConfig>) => {
    const config = { ...base, telemetry: false, loss: 0, ...c };
    progress(
      `  ${config.nodes} nodes × ${config.stanzas}${config.telemetry ? " NON" : ""}, loss ${config.loss * 100}%, store ${config.store}…`,
    );
    return runOne(config);
  };
  const throughput: SessionRunResult[] = [];
  for (const size of THROUGHPUT_SIZES) throughput.push(await run(size));
  // 20 loopback nodes answer within a few ms: a 25 ms ACK timeout keeps the 30% run (where half the
  // round trips fail) to seconds instead of minutes; the retransmission counts stay meaningful.
  const lossy = { nodes: 20, stanzas: 100, ackTimeoutMs: 25 };
  const delivery = [
    await run({ ...lossy, loss: 0 }),
    await run({ ...lossy, loss: 0.1 }),
    await run({ ...lossy, loss: 0.3 }),
  ];
  const telemetry = await run({ nodes: 1, stanzas: 500, telemetry: true });
  const { stores, storeRuns } = await compareStores(base.store, throughput, run);
  progress("  10,000 idle sessions…");
  const memory = await runMemory(10_000, base.seed);
  return { throughput, delivery, telemetry, memory, stores, storeRuns };
}

/** Throughput runs of the suite: one node (latency-bound), Paho's 100 clients, the 1,000-node target. */
const THROUGHPUT_SIZES = [
  { nodes: 1, stanzas: 5_000 },
  { nodes: 100, stanzas: 300 },
  { nodes: 1_000, stanzas: 50 },
] as const;

/** The sizes compared across stores: where the gateway, not one node's round trips, sets the pace. */
const STORE_SIZES = THROUGHPUT_SIZES.slice(1);

/** Each store at each STORE_SIZES size, reusing the throughput run made with the suite's own store. */
async function compareStores(
  suiteStore: StoreKind,
  throughput: readonly SessionRunResult[],
  run: (c: Partial<SessionRunConfig>) => Promise<SessionRunResult>,
): Promise<{ stores: StoreComparison[]; storeRuns: SessionRunResult[] }> {
  const stores: StoreComparison[] = [];
  const storeRuns: SessionRunResult[] = [];
  for (const size of STORE_SIZES) {
    const runs: Partial<Record<StoreKind, SessionRunResult>> = {};
    for (const kind of STORE_KINDS) {
      const made = throughput.find((r) => r.nodes === size.nodes && r.stanzas_per_node === size.stanzas);
      if (kind === suiteStore && made) runs[kind] = made;
      else {
        const r = await run({ ...size, store: kind });
        storeRuns.push(r);
        runs[kind] = r;
      }
    }
    stores.push({ ...size, runs: runs as Record<StoreKind, SessionRunResult> });
  }
  return { stores, storeRuns };
}

async function run(opts: SessionBenchOptions, config: SessionRunConfig): Promise<number> {
  const single =
    opts.nodes !== undefined ||
    opts.stanzas !== undefined ||
    opts.loss !== undefined ||
    opts.telemetry === true ||
    opts.store !== undefined ||
    opts.loadProcesses !== undefined ||
    opts.idle !== undefined ||
    opts.window !== undefined ||
    opts.cores !== undefined ||
    opts.json === true;
  if (opts.suite === true || !single) {
    const t0 = performance.now();
    const suite = await runSuite(config, (s) => {
      if (!opts.json) process.stderr.write(`${s}\n`);
    });
    const seconds = (performance.now() - t0) / 1000;
    if (opts.json)
      process.stdout.write(
        `${JSON.stringify({ suite: suiteRuns(suite), memory: suite.memory, elapsed_s: round(seconds, 1) })}\n`,
      );
    else process.stdout.write(formatSuite(suite, seconds));
    return suiteRuns(suite).some(violated) ? 1 : 0;
  }
  if (config.nodes === 0) {
    const idle = await runIdle(config);
    process.stdout.write(opts.json ? `${JSON.stringify(idle)}\n` : formatIdle(idle));
    return idle.failed > 0 ? 1 : 0;
  }
  const result = await runOne(config);
  process.stdout.write(
    opts.json
      ? `${JSON.stringify(result)}\n`
      : `${formatOne(result)}${result.idle ? formatIdle(result.idle) : ""}`,
  );
  if (violated(result)) {
    process.stderr.write(
      `cxmpp bench session: ${result.mode} delivery guarantee broken: lost ${result.lost}, duplicates ${result.duplicates}, out of order ${result.out_of_order}\n`,
    );
    return 1;
  }
  return 0;
}

/** Entry point of `cxmpp bench session`; returns the exit code and never throws. */
export function runSessionBench(opts: SessionBenchOptions): Promise<number> {
  return runBenchCommand(
    "session",
    () => parse(opts),
    (config) => run(opts, config),
  );
}

// When forked as the gateway, a load or the memory child (spawnChild), this file is the main module.
if (process.send !== undefined && process.argv[2] === CHILD_FLAG && resolve(process.argv[1] ?? "") === HERE) {
  const role = process.argv[3];
  const config = JSON.parse(process.argv[4] ?? "{}");
  const started =
    role === "memory"
      ? memoryChild(config.sessions, config.seed)
      : role === "load"
        ? loadChild(config)
        : gatewayChild(config);
  started.catch((error: unknown) => {
    process.stderr.write(
      `cxmpp bench session (${role}): ${error instanceof Error ? error.stack : String(error)}\n`,
    );
    process.exit(1);
  });
}
