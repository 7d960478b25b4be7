/**
 * `cxmpp bench dtls`: what DTLS 1.2 PSK on the node link (src/dtls, docs/PROTOCOL.md §8) costs on air
 * and in CPU, with the anchors beside our figures (RFC 6347 and RFC 7925 for the protocol, MQTT-SN and
 * Paho as in `bench session`).
 *
 * How it measures:
 * 1. Handshake, for each suite (TLS_PSK_WITH_AES_128_CCM_8, TLS_PSK_WITH_AES_128_GCM_SHA256), in one
 *    process over real UDP on loopback: a DtlsServer on one socket, a fresh DtlsClient per handshake
 *    (offering that suite alone, PSK identity of 5 bytes like `node0`). Datagrams and UDP payload bytes
 *    are counted at the node's UDP transport, below DTLS, in each direction; a flight is a run of
 *    datagrams in one direction, and round trips are the node's flights (the last server flight ends
 *    it). Each datagram's records are read back (parseRecords) to name the messages of each flight.
 *    Beside it, the connect to a real session layer (attachGateway on a plain and a coaps endpoint, in
 *    this process, memory devices): plain cxmpp is POST /c → 4.01 with an Echo nonce, then POST /c with
 *    the proof → 2.01 (two exchanges); over DTLS the handshake proved the key, so POST /c → 2.01 (one
 *    exchange after the handshake). Counted the same way; `exchanges` are the CoAP requests the node put
 *    into its transport.
 * 2. Bytes on air for one reading, to that same in-process gateway: the XEP-0323 reading `bench session`
 *    sends (its `reading()`), once plain, once per suite, from the same seed (so the CoAP inside is the
 *    same). CON: `send()` until the gateway's `h` covers it (request + piggybacked ACK); NON: one
 *    `sendTelemetry()` after the priming reading (No-Response: nothing comes back), until the gateway
 *    routed it. Each reading is counted twice: UDP payload below DTLS and CoAP bytes above it, so the
 *    difference per datagram is what the DTLS record adds (13 B header + 8 B explicit nonce + tag of 8 B
 *    for CCM_8, 16 B for GCM); a difference other than that fails the run. Medians over `--readings`.
 *    Beside it: MQTT-SN for the same reading as a plain string (`temperature=21.5°C`, 19 bytes): QoS 0 =
 *    PUBLISH (7 + payload), QoS 1 = PUBLISH + PUBACK (7), and the same with a CCM_8 record on each.
 * 3. Handshakes/s and records/s of the DtlsServer: the server runs in a CHILD PROCESS (this file, forked),
 *    so its CPU is clean: process.cpuUsage() (user + system, every thread: UDP, AEAD, HMAC, PRF, timers,
 *    GC) over the measured phase, divided by what it completed. `--clients` node sockets in this
 *    process keep it busy: first each handshakes again and again (a fresh DtlsClient from the same
 *    socket, a reboot to the server: cookie exchange, new session replacing the old) for `--duration`
 *    seconds; then each sends one record at a time (a CoAP reading's size) and the server answers each
 *    with one record (a CoAP ACK's size), for `--duration` seconds. Each phase first runs unmeasured
 *    for min(1 s, duration / 3) so the JIT is warm. The same exchange over plain UDP (same child, no
 *    DTLS) is the baseline: what DTLS adds per record is the difference. "busy" is CPU time / wall time
 *    of each side: a server near 100% was the bottleneck; a client side near 100% (of one core) means
 *    the server could do more than shown (its server-bound rate is 1e6 / µs); both well below 100% means
 *    round-trip-bound or a machine shared with other work. CPU per handshake or record is the steadier
 *    figure; it also falls as the server gets busier (fewer event-loop wake-ups per unit of work).
 * 4. Gateway CPU per reliable stanza over DTLS beside plain UDP: `bench session`'s runOne (gateway in a
 *    child process, CPU from the first stanza to the last acknowledgement) with and without its `dtls`
 *    option (CCM_8), at each `--nodes` size and `--stores` store, 0% loss; 10,000 stanzas per run
 *    unless `--stanzas` says how many per node (the gateway process is fresh, and its warm-up weighs on
 *    short runs).
 *
 * Contract of `--json`: ONE JSON object on stdout `{handshake: [...], connect: [...], bytes: {...},
 * server: [...], gateway: [...], anchors, elapsed_s}`: handshake per suite with at least suite, flights,
 * round_trips, datagrams_up, datagrams_down, bytes_up, bytes_down, failed; connect per mode (plain,
 * then each suite) with exchanges, handshake_round_trips, round_trips, datagrams and bytes each way;
 * bytes with reading_payload_bytes, mqtt_sn and runs per mode, each with reliable and telemetry
 * {datagrams_up, datagrams_down, bytes, coap_bytes} and record_overhead {measured, expected, header,
 * nonce, tag}; server per mode (plain, then each suite) with records {exchanges, records_per_s,
 * cpu_us_per_record, server_busy, client_busy} and, for DTLS, handshakes {completed, per_s,
 * cpu_us_per_handshake, server_busy, client_busy}; gateway per size and store with plain and dtls
 * {cpu_us_per_stanza, stanzas_per_s, …} and added_cpu_us_per_stanza.
 * Exit code 1 when a handshake failed, a record added other than 13 + 8 + tag bytes, a reading was not
 * delivered, a load phase completed nothing, or a reliable gateway run lost, duplicated or reordered a
 * stanza (the output is still printed); 1 on a bad option or an error.
 */
import { createHmac } from "node:crypto";
import { resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import type { XElement } from "../codec/index.js";
import { type Device, MemoryDevices } from "../gateway/devices.js";
import { attachGateway, type GatewayService } from "../gateway/index.js";
import { CoapEndpoint, type DatagramTransport, NodeClient, type PeerAddress } from "../src/core/index.js";
import { seededRandom } from "../src/core/seeded-random.js";
import { HandshakeType } from "../src/dtls/handshake.js";
import {
  CIPHER_SUITES,
  ContentType,
  DtlsClient,
  DtlsServer,
  type DtlsServerStats,
  parseRecords,
  RECORD_HEADER_BYTES,
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
  integer,
  median,
  percentile,
  round,
  runBenchCommand,
  type StoreKind,
  sleep,
  storeKind,
  table,
  UsageError,
} from "./common.js";
import {
  type DtlsSuiteName,
  reading,
  runOne,
  ANCHORS as SESSION_ANCHORS,
  type SessionRunResult,
  SINK,
} from "./session.js";

export interface DtlsBenchOptions {
  /** Commander hands over strings; numbers are accepted too. */
  readonly handshakes?: string | number;
  readonly readings?: string | number;
  readonly duration?: string | number;
  readonly clients?: string | number;
  readonly nodes?: string;
  readonly stanzas?: string | number;
  readonly stores?: string;
  readonly seed?: string | number;
  readonly json?: boolean;
}

export interface DtlsBenchConfig {
  /** Handshakes per suite (part 1) and connects per mode. */
  readonly handshakes: number;
  /** Readings per mode and kind (part 2). */
  readonly readings: number;
  /** Seconds of each load phase (part 3). */
  readonly durationS: number;
  /** Concurrent node sockets of the load (part 3). */
  readonly clients: number;
  /** Node counts of the gateway comparison (part 4). */
  readonly nodes: readonly number[];
  /** Stanzas per node; undefined: GATEWAY_STANZAS / nodes (every size routes as many). */
  readonly stanzas: number | undefined;
  readonly stores: readonly StoreKind[];
  readonly seed: number;
}

export interface Suite {
  readonly id: number;
  readonly name: DtlsSuiteName;
  readonly short: string;
  readonly tag: number;
  readonly nonce: number;
}

function suite(id: number, name: DtlsSuiteName, short: string): Suite {
  const s = CIPHER_SUITES.get(id)!;
  return { id, name, short, tag: s.tagLength, nonce: s.recordIvLength };
}

const SUITES: readonly Suite[] = [
  suite(TLS_PSK_WITH_AES_128_CCM_8, "TLS_PSK_WITH_AES_128_CCM_8", "CCM_8"),
  suite(TLS_PSK_WITH_AES_128_GCM_SHA256, "TLS_PSK_WITH_AES_128_GCM_SHA256", "GCM"),
];
export const CCM_8 = SUITES[0]!;

const DOMAIN = "iot.bench.example";
const CHILD_FLAG = "--cxmpp-bench-dtls-child";
/**
 * Stanzas a gateway run routes by default, whatever its size: a fresh gateway process spends its first
 * thousands of stanzas warming up (with 2,000 the CPU per stanza measured ~1.7× the steady state),
 * and DTLS adds code to warm up, so short runs overstate what it adds.
 */
const GATEWAY_STANZAS = 10_000;
const RECV_BUFFER = 2 ** 21;
/** MQTT-SN v1.2: PUBLISH header (length, type, flags, topic id, msg id) and PUBACK. */
export const MQTT_SN = Object.freeze({ publishHeader: 7, puback: 7 });

/** Anchors printed beside our figures. */
export const DTLS_ANCHORS = Object.freeze({
  rfc6347_flights_with_cookie: 6,
  rfc6347_round_trips_with_cookie: 3,
  rfc6347_round_trips_without_cookie: 2,
  record_header_bytes: RECORD_HEADER_BYTES,
  explicit_nonce_bytes: 8,
  ccm_8_tag_bytes: 8,
  gcm_tag_bytes: 16,
  /** RFC 7925 §3.3: CCM_8 is the mandatory suite of CoAP (RFC 7252 §9.1.3.1). */
  rfc7925_mandatory_suite: "TLS_PSK_WITH_AES_128_CCM_8",
  mqtt_sn_publish_header_bytes: MQTT_SN.publishHeader,
  mqtt_sn_puback_bytes: MQTT_SN.puback,
  paho_cpu_us_per_qos1: SESSION_ANCHORS.paho_cpu_us_per_qos1,
  paho_cpu_us_per_qos0: SESSION_ANCHORS.paho_cpu_us_per_qos0,
  node_coap_us_per_request: SESSION_ANCHORS.node_coap_us_per_request,
});

// ---------------------------------------------------------------------------------------------------
// Counting below and above DTLS.

export interface Direction {
  datagrams: number;
  bytes: number;
}

export interface Counts {
  readonly up: Direction;
  readonly down: Direction;
}

const zero = (): Counts => ({ up: { datagrams: 0, bytes: 0 }, down: { datagrams: 0, bytes: 0 } });

export function minus(a: Counts, b: Counts): Counts {
  return {
    up: { datagrams: a.up.datagrams - b.up.datagrams, bytes: a.up.bytes - b.up.bytes },
    down: { datagrams: a.down.datagrams - b.down.datagrams, bytes: a.down.bytes - b.down.bytes },
  };
}

/** A node-side transport that counts what passes (up = the node sends), and can keep the datagrams. */
export class Counting implements DatagramTransport {
  counts: Counts = zero();
  /** The datagrams in order, while `recording`. */
  readonly log: { readonly up: boolean; readonly data: Uint8Array }[] = [];
  recording = false;

  constructor(private readonly inner: DatagramTransport) {}

  send(data: Uint8Array, peer: PeerAddress): void {
    this.counts.up.datagrams++;
    this.counts.up.bytes += data.length;
    if (this.recording) this.log.push({ up: true, data: data.slice() });
    this.inner.send(data, peer);
  }

  onReceive(handler: (data: Uint8Array, peer: PeerAddress) => void): void {
    this.inner.onReceive((data, peer) => {
      this.counts.down.datagrams++;
      this.counts.down.bytes += data.length;
      if (this.recording) this.log.push({ up: false, data: data.slice() });
      handler(data, peer);
    });
  }

  close(): void {
    this.inner.close();
  }

  snapshot(): Counts {
    return { up: { ...this.counts.up }, down: { ...this.counts.down } };
  }
}

/** UDP datagrams and payload bytes each way, medians over runs (bytes_total: the two medians added). */
export interface Traffic {
  readonly datagrams_up: number;
  readonly datagrams_down: number;
  readonly bytes_up: number;
  readonly bytes_down: number;
  readonly bytes_total: number;
}

function medianTraffic(runs: readonly Counts[]): Traffic {
  const up = median(runs.map((c) => c.up.bytes));
  const down = median(runs.map((c) => c.down.bytes));
  return {
    datagrams_up: median(runs.map((c) => c.up.datagrams)),
    datagrams_down: median(runs.map((c) => c.down.datagrams)),
    bytes_up: up,
    bytes_down: down,
    bytes_total: up + down,
  };
}

// ---------------------------------------------------------------------------------------------------
// Part 1: the handshake.

export interface FlightReport {
  readonly from: "node" | "server";
  readonly datagrams: number;
  readonly bytes: number;
  readonly messages: readonly string[];
}

export interface HandshakeReport extends Traffic {
  readonly suite: DtlsSuiteName;
  readonly handshakes: number;
  readonly failed: number;
  readonly identity_bytes: number;
  readonly flights: number;
  readonly round_trips: number;
  readonly retransmissions: number;
  readonly extended_master_secret: boolean;
  readonly ms_median: number;
  readonly ms_p95: number;
  /** The flights of the first handshake (every other one had the same sizes unless `varied`). */
  readonly flight_detail: readonly FlightReport[];
  readonly varied: boolean;
}

const HANDSHAKE_NAMES: Readonly<Record<number, string>> = {
  [HandshakeType.CLIENT_HELLO]: "ClientHello",
  [HandshakeType.SERVER_HELLO]: "ServerHello",
  [HandshakeType.HELLO_VERIFY_REQUEST]: "HelloVerifyRequest",
  [HandshakeType.SERVER_KEY_EXCHANGE]: "ServerKeyExchange",
  [HandshakeType.SERVER_HELLO_DONE]: "ServerHelloDone",
  [HandshakeType.CLIENT_KEY_EXCHANGE]: "ClientKeyExchange",
  [HandshakeType.FINISHED]: "Finished",
};

/** What the records of a datagram are: handshake messages by name (epoch 1 is the Finished). */
function recordNames(datagram: Uint8Array): string[] {
  return parseRecords(datagram).map((r) => {
    switch (r.type) {
      case ContentType.HANDSHAKE:
        if (r.epoch > 0) return "Finished";
        return HANDSHAKE_NAMES[r.fragment[0] ?? -1] ?? `handshake ${r.fragment[0]}`;
      case ContentType.CHANGE_CIPHER_SPEC:
        return "ChangeCipherSpec";
      case ContentType.ALERT:
        return "Alert";
      default:
        return "ApplicationData";
    }
  });
}

/** Runs of datagrams in one direction. */
function flightsOf(log: readonly { up: boolean; data: Uint8Array }[]): FlightReport[] {
  const flights: { from: "node" | "server"; datagrams: number; bytes: number; messages: string[] }[] = [];
  for (const d of log) {
    const from = d.up ? "node" : "server";
    let last = flights[flights.length - 1];
    if (!last || last.from !== from) {
      last = { from, datagrams: 0, bytes: 0, messages: [] };
      flights.push(last);
    }
    last.datagrams++;
    last.bytes += d.data.length;
    last.messages.push(...recordNames(d.data));
  }
  return flights;
}

/** `node0`: the PSK identities are as long as `bench session`'s. */
const HANDSHAKE_IDENTITY = "node0";

function keyOf(label: string, seed: number): Uint8Array {
  return Uint8Array.from(
    createHmac("sha256", `cxmpp-bench-dtls-${seed}`).update(label).digest().subarray(0, 16),
  );
}

function dtlsClient(
  lower: DatagramTransport,
  server: PeerAddress,
  identity: string,
  psk: Uint8Array,
  s: Suite,
): DtlsClient {
  return new DtlsClient(lower, {
    server,
    identity,
    psk,
    crypto: nodeDtlsCrypto,
    clock: systemClock,
    scheduler: timerScheduler(),
    suites: [s.id],
    handshakeTimeoutMs: 10_000,
  });
}

async function measureHandshakes(s: Suite, config: DtlsBenchConfig): Promise<HandshakeReport> {
  const key = keyOf(HANDSHAKE_IDENTITY, config.seed);
  const serverUdp = await UdpTransport.bind("127.0.0.1", 0);
  const server = new DtlsServer(serverUdp, {
    psk: (identity) => (identity === HANDSHAKE_IDENTITY ? key : undefined),
    crypto: nodeDtlsCrypto,
    clock: systemClock,
    scheduler: timerScheduler({ unref: true }),
  });
  server.onReceive(() => {});
  const udp = await UdpTransport.bind("127.0.0.1", 0);
  const runs: {
    flights: FlightReport[];
    counts: Counts;
    ms: number;
    ems: boolean;
    retransmissions: number;
  }[] = [];
  let failed = 0;
  try {
    for (let i = 0; i < config.handshakes; i++) {
      // A fresh client on the same socket: to the server a node that rebooted (its old session goes).
      const wire = new Counting(udp);
      wire.recording = true;
      const client = dtlsClient(wire, serverUdp.address, HANDSHAKE_IDENTITY, key, s);
      const t0 = performance.now();
      try {
        await client.connect();
      } catch {
        failed++;
        continue;
      }
      const ms = performance.now() - t0;
      runs.push({
        flights: flightsOf(wire.log),
        counts: wire.snapshot(),
        ms,
        ems: client.extendedMasterSecret,
        retransmissions: client.stats.retransmissions,
      });
    }
  } finally {
    server.close();
    udp.close();
  }
  const first = runs[0];
  const shape = (f: readonly FlightReport[]) => JSON.stringify(f);
  const pick = (f: (r: (typeof runs)[number]) => number) => median(runs.map(f));
  const flights = first?.flights ?? [];
  return {
    suite: s.name,
    handshakes: runs.length,
    failed,
    identity_bytes: HANDSHAKE_IDENTITY.length,
    flights: flights.length,
    round_trips: flights.filter((f) => f.from === "node").length,
    ...medianTraffic(runs.map((r) => r.counts)),
    retransmissions: runs.reduce((n, r) => n + r.retransmissions, 0),
    extended_master_secret: runs.every((r) => r.ems),
    ms_median: round(
      pick((r) => r.ms),
      2,
    ),
    ms_p95: round(
      percentile(
        runs.map((r) => r.ms),
        0.95,
      ),
      2,
    ),
    flight_detail: flights,
    varied: runs.some((r) => shape(r.flights) !== shape(flights)),
  };
}

// ---------------------------------------------------------------------------------------------------
// Parts 1 (connect) and 2 (a reading): one gateway in this process, on coap and coaps.

export interface LocalGateway {
  readonly plain: PeerAddress;
  readonly secure: PeerAddress;
  readonly service: GatewayService;
  /** Stanzas routed outside the gateway (to the sink). */
  delivered(): number;
  close(): Promise<void>;
}

/** `onOutbound` sees every stanza routed outside the gateway (presence included), after it is counted. */
export async function localGateway(
  devices: readonly Device[],
  onOutbound: (stanza: XElement) => void = () => {},
): Promise<LocalGateway> {
  const directory = new MemoryDevices(devices);
  const psk = (identity: string) => {
    const d = directory.find(identity);
    return d && !d.revoked ? d.key : undefined;
  };
  const plain = await createUdpEndpoint({ host: "127.0.0.1" });
  const secure = await createDtlsServerEndpoint({
    host: "127.0.0.1",
    dtls: { psk, authorize: (identity) => psk(identity) !== undefined },
  });
  let delivered = 0;
  const service = attachGateway([plain.endpoint, secure.endpoint], {
    devices: directory,
    domain: DOMAIN,
    clock: wallClock,
    dtlsIdentity: (peer) => secure.dtls.identityOf(peer),
    outbound: (stanza) => {
      if (stanza.name !== "presence") delivered++;
      onOutbound(stanza);
    },
  });
  return {
    plain: plain.transport.address,
    secure: secure.transport.address,
    service,
    delivered: () => delivered,
    close: async () => {
      await plain.close();
      await secure.close();
    },
  };
}

export interface BenchNode {
  readonly client: NodeClient;
  /** Below DTLS: the UDP payload on air. */
  readonly wire: Counting;
  /** Above DTLS: the CoAP messages (the same as `wire` without DTLS). */
  readonly coap: Counting;
  readonly dtls: DtlsClient | undefined;
  close(): void;
}

export async function benchNode(
  gw: LocalGateway,
  mode: Suite | undefined,
  device: Device,
): Promise<BenchNode> {
  const udp = await UdpTransport.bind("127.0.0.1", 0);
  const wire = new Counting(udp);
  const server = mode ? gw.secure : gw.plain;
  const dtls = mode ? dtlsClient(wire, server, device.identity, device.key, mode) : undefined;
  const coap = new Counting(dtls ?? wire);
  const endpoint = new CoapEndpoint({
    transport: coap,
    clock: systemClock,
    scheduler: timerScheduler(),
    random: cryptoRandom,
    exchange: { tokenLength: 1 }, // as `cxmpp node` and `bench session`
  });
  const client = new NodeClient({
    endpoint,
    gateway: server,
    identity: device.identity,
    key: device.key,
    mac: nodeMac,
  });
  return {
    client,
    wire,
    coap,
    dtls,
    close: () => {
      client.close();
      endpoint.close();
      dtls?.close();
      udp.close();
    },
  };
}

export interface ConnectReport extends Traffic {
  readonly mode: "plain" | DtlsSuiteName;
  readonly connects: number;
  readonly handshake_round_trips: number;
  /** CoAP requests of the connect (plain: the challenged one and the proof). */
  readonly exchanges: number;
  readonly round_trips: number;
  readonly ms_median: number;
}

const connectIdentity = (mode: Suite | undefined, i: number) =>
  `${mode ? mode.short[0]!.toLowerCase() : "p"}${String(i).padStart(4, "0")}`;

/** A memory device of DOMAIN, its key from `seed`; `peers`: the JIDs it talks to (its codec aliases). */
export function device(identity: string, seed: number, peers: readonly string[] = [SINK]): Device {
  return { identity, key: keyOf(identity, seed), jid: `${identity}@${DOMAIN}`, peers: [...peers] };
}

async function measureConnects(
  gw: LocalGateway,
  mode: Suite | undefined,
  config: DtlsBenchConfig,
): Promise<ConnectReport> {
  const runs: { counts: Counts; exchanges: number; handshakeTrips: number; ms: number }[] = [];
  for (let i = 0; i < config.handshakes; i++) {
    const node = await benchNode(gw, mode, device(connectIdentity(mode, i), config.seed));
    node.wire.recording = true;
    try {
      const t0 = performance.now();
      await node.client.connect();
      const ms = performance.now() - t0;
      // The handshake's flights are the datagrams before the first record of application data.
      const handshake = node.wire.log.filter((d) => !recordNames(d.data).includes("ApplicationData"));
      runs.push({
        counts: node.wire.snapshot(),
        exchanges: node.coap.counts.up.datagrams,
        handshakeTrips: mode ? flightsOf(handshake).filter((f) => f.from === "node").length : 0,
        ms,
      });
    } finally {
      node.close();
    }
  }
  const pick = (f: (r: (typeof runs)[number]) => number) => median(runs.map(f));
  return {
    mode: mode?.name ?? "plain",
    connects: runs.length,
    handshake_round_trips: pick((r) => r.handshakeTrips),
    exchanges: pick((r) => r.exchanges),
    round_trips: pick((r) => r.handshakeTrips + r.exchanges),
    ...medianTraffic(runs.map((r) => r.counts)),
    ms_median: round(
      pick((r) => r.ms),
      2,
    ),
  };
}

export interface ReadingCost {
  readonly datagrams_up: number;
  readonly datagrams_down: number;
  /** UDP payload bytes, both directions (median). */
  readonly bytes: number;
  /** CoAP bytes, both directions (median): what DTLS carries. */
  readonly coap_bytes: number;
  /** CoAP bytes the node sent and received (medians). */
  readonly coap_bytes_up: number;
  readonly coap_bytes_down: number;
}

export interface RecordOverhead {
  readonly header: number;
  readonly nonce: number;
  readonly tag: number;
  readonly expected: number;
  /** (UDP bytes − CoAP bytes) / datagrams over every reading of the run. */
  readonly measured: number;
}

export interface BytesRun {
  readonly mode: "plain" | DtlsSuiteName;
  readonly reliable: ReadingCost;
  readonly telemetry: ReadingCost;
  readonly record_overhead: RecordOverhead | null;
  readonly sent: number;
  readonly delivered: number;
}

export interface BytesReport {
  readonly readings: number;
  readonly reading_payload_bytes: number;
  readonly mqtt_sn: {
    readonly qos0: number;
    readonly qos1: number;
    readonly qos0_over_dtls_ccm_8: number;
    readonly qos1_over_dtls_ccm_8: number;
  };
  readonly runs: readonly BytesRun[];
}

export async function until(what: () => boolean, ms: number): Promise<boolean> {
  const end = performance.now() + ms;
  while (!what()) {
    if (performance.now() > end) return false;
    await sleep(1);
  }
  return true;
}

async function measureReadings(
  gw: LocalGateway,
  mode: Suite | undefined,
  index: number,
  config: DtlsBenchConfig,
  plainBytes: number[],
): Promise<BytesRun> {
  // `node0`, `node1`, `node2`: the readings name their node, so equal lengths keep the CoAP equal.
  const node = await benchNode(gw, mode, device(`node${index}`, config.seed));
  const reliable: { wire: Counts; coap: Counts }[] = [];
  const telemetry: { wire: Counts; coap: Counts }[] = [];
  let sent = 0;
  const delivered0 = gw.delivered();
  try {
    await node.client.connect();
    const random = seededRandom(config.seed);
    let seq = 0;
    const take = () => ({ wire: node.wire.snapshot(), coap: node.coap.snapshot() });
    const since = (t: { wire: Counts; coap: Counts }) => ({
      wire: minus(node.wire.counts, t.wire),
      coap: minus(node.coap.counts, t.coap),
    });
    for (let i = 0; i < config.readings; i++) {
      const r = reading(index, ++seq, random);
      if (index === 0) plainBytes.push(r.plainBytes);
      const before = take();
      sent++;
      await node.client.send(r.stanza);
      reliable.push(since(before));
    }
    // The first telemetry reading of a session goes reliably (NodeClient.sendTelemetry): not counted.
    node.client.sendTelemetry(reading(index, ++seq, random).stanza);
    sent++;
    // Routed, and its ACK back at the node: every run's readings then use the same template (FORMAT.md §6.6).
    await until(() => gw.delivered() - delivered0 >= sent && node.client.unacknowledged === 0, 5_000);
    for (let i = 0; i < config.readings; i++) {
      const r = reading(index, ++seq, random);
      const before = take();
      sent++;
      node.client.sendTelemetry(r.stanza);
      await until(() => gw.delivered() - delivered0 >= sent, 2_000);
      await sleep(2); // (an error answer would come now; No-Response means nothing else does)
      telemetry.push(since(before));
    }
  } finally {
    node.close();
  }
  const cost = (runs: readonly { wire: Counts; coap: Counts }[]): ReadingCost => ({
    datagrams_up: median(runs.map((r) => r.wire.up.datagrams)),
    datagrams_down: median(runs.map((r) => r.wire.down.datagrams)),
    bytes: median(runs.map((r) => r.wire.up.bytes + r.wire.down.bytes)),
    coap_bytes: median(runs.map((r) => r.coap.up.bytes + r.coap.down.bytes)),
    coap_bytes_up: median(runs.map((r) => r.coap.up.bytes)),
    coap_bytes_down: median(runs.map((r) => r.coap.down.bytes)),
  });
  let overhead: RecordOverhead | null = null;
  if (mode) {
    const all = [...reliable, ...telemetry];
    const datagrams = all.reduce((n, r) => n + r.wire.up.datagrams + r.wire.down.datagrams, 0);
    const added = all.reduce(
      (n, r) => n + r.wire.up.bytes + r.wire.down.bytes - r.coap.up.bytes - r.coap.down.bytes,
      0,
    );
    overhead = {
      header: RECORD_HEADER_BYTES,
      nonce: mode.nonce,
      tag: mode.tag,
      expected: RECORD_HEADER_BYTES + mode.nonce + mode.tag,
      measured: datagrams > 0 ? round(added / datagrams, 2) : 0,
    };
  }
  return {
    mode: mode?.name ?? "plain",
    reliable: cost(reliable),
    telemetry: cost(telemetry),
    record_overhead: overhead,
    sent,
    delivered: gw.delivered() - delivered0,
  };
}

// ---------------------------------------------------------------------------------------------------
// Part 3: the server under load, in a child process.

interface ServerChildConfig {
  /** The suite the server speaks; null: plain UDP (the baseline). */
  readonly suite: number | null;
  readonly clients: number;
  readonly seed: number;
  readonly replyBytes: number;
}

interface ServerReport {
  readonly cpuUs: number;
  readonly wallMs: number;
  /** Datagrams (plain) or application records (DTLS) received and answered. */
  readonly received: number;
  readonly answered: number;
  readonly stats: Partial<DtlsServerStats>;
}

const loadIdentity = (i: number) => `load${i}`;

async function serverChild(config: ServerChildConfig): Promise<void> {
  const udp = await UdpTransport.bind("127.0.0.1", 0, {
    recvBufferSize: RECV_BUFFER,
    sendBufferSize: RECV_BUFFER,
  });
  const keys = new Map(
    Array.from({ length: config.clients }, (_, i) => [loadIdentity(i), keyOf(loadIdentity(i), config.seed)]),
  );
  const server =
    config.suite === null
      ? undefined
      : new DtlsServer(udp, {
          psk: (identity) => keys.get(identity),
          crypto: nodeDtlsCrypto,
          clock: systemClock,
          scheduler: timerScheduler(),
          suites: [config.suite],
          // Every client shares 127.0.0.1: the per-host limit is for a real link, not loopback.
          limits: { maxHandshakes: 100_000, maxHandshakesPerHost: 100_000 },
        });
  const upper: DatagramTransport = server ?? udp;
  const reply = new Uint8Array(config.replyBytes);
  let received = 0;
  let answered = 0;
  upper.onReceive((_data, peer) => {
    received++;
    upper.send(reply, peer);
    answered++;
  });
  let cpu0 = process.cpuUsage();
  let wall0 = performance.now();
  let base = { received, answered, stats: { ...server?.stats } };
  process.on("message", (m: ChildRequest) => {
    if (m.type === "mark") {
      base = { received, answered, stats: { ...server?.stats } };
      cpu0 = process.cpuUsage();
      wall0 = performance.now();
      process.send?.({ id: m.id });
    } else {
      const cpu = process.cpuUsage(cpu0);
      const stats: Partial<Record<keyof DtlsServerStats, number>> = {};
      if (server)
        for (const [k, v] of Object.entries(server.stats) as [keyof DtlsServerStats, number][])
          stats[k] = v - (base.stats[k] ?? 0);
      const report: ServerReport = {
        cpuUs: cpu.user + cpu.system,
        wallMs: performance.now() - wall0,
        received: received - base.received,
        answered: answered - base.answered,
        stats,
      };
      process.send?.({ id: m.id, report });
    }
  });
  process.on("disconnect", () => {
    upper.close();
    process.exit(0);
  });
  process.send?.({ id: 0, port: udp.port });
}

const HERE = fileURLToPath(import.meta.url);

/** This file forked as the server (bench session's pattern). */
function spawnServer(config: ServerChildConfig): BenchChild {
  return forkBench(HERE, [CHILD_FLAG, JSON.stringify(config)], "DTLS server");
}

export interface HandshakeLoad {
  readonly completed: number;
  readonly failed: number;
  readonly retransmissions: number;
  readonly hello_verify_requests: number;
  readonly per_s: number;
  readonly cpu_us_per_handshake: number;
  /** 1e6 / cpu_us_per_handshake: what one core of server could do if the clients kept up. */
  readonly server_bound_per_s: number;
  readonly server_busy: number;
  readonly client_busy: number;
  readonly elapsed_s: number;
}

export interface RecordLoad {
  readonly request_bytes: number;
  readonly reply_bytes: number;
  /** One record (or datagram) in and its answer out. */
  readonly exchanges: number;
  readonly lost: number;
  readonly exchanges_per_s: number;
  /** Records in + out per second at the server. */
  readonly records_per_s: number;
  readonly cpu_us_per_record: number;
  readonly cpu_us_per_exchange: number;
  readonly server_bound_records_per_s: number;
  readonly server_busy: number;
  readonly client_busy: number;
  readonly elapsed_s: number;
}

export interface ServerLoadReport {
  readonly mode: "plain" | DtlsSuiteName;
  readonly clients: number;
  readonly duration_s: number;
  readonly handshakes: HandshakeLoad | null;
  readonly records: RecordLoad;
}

interface Phase {
  readonly server: ServerReport;
  readonly wallMs: number;
  readonly clientCpuUs: number;
}

/** Runs `work` between a mark and a report of the child, timing both sides. */
async function phase(child: BenchChild, work: () => Promise<void>): Promise<Phase> {
  await child.call("mark");
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await work();
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const server = (await child.call("report")).report as ServerReport;
  return { server, wallMs, clientCpuUs: cpu.user + cpu.system };
}

/** One record (datagram) at a time from each client until `end`; a reply not back in 500 ms is lost. */
async function exchangeLoop(
  upper: DatagramTransport,
  server: PeerAddress,
  request: Uint8Array,
  end: number,
  tally: { exchanges: number; lost: number },
): Promise<void> {
  let waiting: ((answered: boolean) => void) | undefined;
  let sentAt = 0;
  upper.onReceive(() => {
    const w = waiting;
    waiting = undefined;
    w?.(true);
  });
  const watchdog = setInterval(() => {
    if (!waiting || performance.now() - sentAt < 500) return;
    const w = waiting;
    waiting = undefined;
    w(false);
  }, 100);
  try {
    while (performance.now() < end) {
      const answered = new Promise<boolean>((done) => {
        waiting = done;
      });
      sentAt = performance.now();
      upper.send(request, server);
      if (await answered) tally.exchanges++;
      else tally.lost++;
    }
  } finally {
    clearInterval(watchdog);
  }
}

async function serverLoad(
  mode: Suite | undefined,
  config: DtlsBenchConfig,
  requestBytes: number,
  replyBytes: number,
): Promise<ServerLoadReport> {
  const child = spawnServer({
    suite: mode?.id ?? null,
    clients: config.clients,
    seed: config.seed,
    replyBytes,
  });
  const sockets: UdpTransport[] = [];
  try {
    const server = `127.0.0.1:${Number((await child.first).port)}` as PeerAddress;
    for (let i = 0; i < config.clients; i++)
      sockets.push(
        await UdpTransport.bind("127.0.0.1", 0, { recvBufferSize: 2 ** 18, sendBufferSize: 2 ** 18 }),
      );
    const durationMs = config.durationS * 1000;
    const share = (cpuUs: number, wallMs: number) => round(cpuUs / 1000 / wallMs, 2);

    // Each phase runs unmeasured for a while first, so that the JIT has warmed up the paths it times.
    const warmMs = Math.min(1_000, durationMs / 3);
    let handshakes: HandshakeLoad | null = null;
    const uppers: DatagramTransport[] = [...sockets];
    if (mode) {
      const tally = { completed: 0, failed: 0, retransmissions: 0 };
      const established: DtlsClient[] = [];
      const handshakeRound = (ms: number) => {
        const end = performance.now() + ms;
        return Promise.all(
          sockets.map(async (udp, i) => {
            const key = keyOf(loadIdentity(i), config.seed);
            while (performance.now() < end) {
              // A fresh client on the same socket (UdpTransport has one receive handler: the newest).
              const client = dtlsClient(udp, server, loadIdentity(i), key, mode);
              try {
                await client.connect();
                tally.completed++;
                established[i] = client;
              } catch {
                tally.failed++;
              }
              tally.retransmissions += client.stats.retransmissions;
            }
          }),
        );
      };
      await handshakeRound(warmMs);
      Object.assign(tally, { completed: 0, failed: 0, retransmissions: 0 });
      const p = await phase(child, () => handshakeRound(durationMs).then(() => {}));
      const completed = p.server.stats.handshakesCompleted ?? 0;
      const cpuPer = completed > 0 ? p.server.cpuUs / completed : 0;
      handshakes = {
        completed,
        failed: tally.failed,
        retransmissions: tally.retransmissions,
        hello_verify_requests: p.server.stats.helloVerifyRequests ?? 0,
        per_s: Math.round((completed * 1000) / p.wallMs),
        cpu_us_per_handshake: round(cpuPer, 1),
        server_bound_per_s: cpuPer > 0 ? Math.round(1e6 / cpuPer) : 0,
        server_busy: share(p.server.cpuUs, p.server.wallMs),
        client_busy: share(p.clientCpuUs, p.wallMs),
        elapsed_s: round(p.wallMs / 1000, 2),
      };
      // The records go through each socket's last session (one that failed throughout: a new one).
      for (let i = 0; i < sockets.length; i++) {
        let c = established[i];
        if (!c) {
          c = dtlsClient(sockets[i]!, server, loadIdentity(i), keyOf(loadIdentity(i), config.seed), mode);
          await c.connect();
        }
        uppers[i] = c;
      }
    }

    const request = new Uint8Array(requestBytes).fill(0x42);
    const tally = { exchanges: 0, lost: 0 };
    const exchangeRound = (ms: number) => {
      const end = performance.now() + ms;
      return Promise.all(uppers.map((u) => exchangeLoop(u, server, request, end, tally))).then(() => {});
    };
    await exchangeRound(warmMs);
    Object.assign(tally, { exchanges: 0, lost: 0 });
    const p = await phase(child, () => exchangeRound(durationMs));
    const records = p.server.received + p.server.answered;
    const cpuPerRecord = records > 0 ? p.server.cpuUs / records : 0;
    return {
      mode: mode?.name ?? "plain",
      clients: config.clients,
      duration_s: config.durationS,
      handshakes,
      records: {
        request_bytes: requestBytes,
        reply_bytes: replyBytes,
        exchanges: p.server.answered,
        lost: tally.lost,
        exchanges_per_s: Math.round((p.server.answered * 1000) / p.wallMs),
        records_per_s: Math.round((records * 1000) / p.wallMs),
        cpu_us_per_record: round(cpuPerRecord, 2),
        cpu_us_per_exchange: p.server.answered > 0 ? round(p.server.cpuUs / p.server.answered, 2) : 0,
        server_bound_records_per_s: cpuPerRecord > 0 ? Math.round(1e6 / cpuPerRecord) : 0,
        server_busy: share(p.server.cpuUs, p.server.wallMs),
        client_busy: share(p.clientCpuUs, p.wallMs),
        elapsed_s: round(p.wallMs / 1000, 2),
      },
    };
  } finally {
    for (const s of sockets) s.close();
    await child.stop();
  }
}

// ---------------------------------------------------------------------------------------------------
// Part 4: the gateway's CPU per reliable stanza, over DTLS and plain (bench session's runOne).

/** What of a `bench session` run the comparison shows. */
export interface GatewayRun {
  readonly cpu_us_per_stanza: number;
  readonly stanzas_per_s: number;
  readonly gateway_cpu_share: number;
  readonly gateway_bound_stanzas_per_s: number;
  readonly bytes_on_air_median: number;
  readonly sent: number;
  readonly delivered: number;
  readonly duplicates: number;
  readonly out_of_order: number;
  readonly lost: number;
  readonly connect_s: number;
  readonly elapsed_s: number;
}

export interface GatewayComparison {
  readonly nodes: number;
  readonly stanzas_per_node: number;
  readonly store: StoreKind;
  readonly suite: DtlsSuiteName;
  readonly plain: GatewayRun;
  readonly dtls: GatewayRun;
  readonly added_cpu_us_per_stanza: number;
  readonly violated: boolean;
}

function gatewayRun(r: SessionRunResult): GatewayRun {
  return {
    cpu_us_per_stanza: r.cpu_us_per_stanza,
    stanzas_per_s: r.stanzas_per_s,
    gateway_cpu_share: r.gateway_cpu_share,
    gateway_bound_stanzas_per_s: r.gateway_bound_stanzas_per_s,
    bytes_on_air_median: r.bytes_on_air_median,
    sent: r.sent,
    delivered: r.delivered,
    duplicates: r.duplicates,
    out_of_order: r.out_of_order,
    lost: r.lost,
    connect_s: r.connect_s,
    elapsed_s: r.elapsed_s,
  };
}

const brokeDelivery = (r: SessionRunResult) =>
  r.sent < r.planned || r.lost !== 0 || r.duplicates !== 0 || r.out_of_order !== 0;

async function compareGateway(
  nodes: number,
  store: StoreKind,
  config: DtlsBenchConfig,
): Promise<GatewayComparison> {
  const stanzas = config.stanzas ?? Math.ceil(GATEWAY_STANZAS / nodes);
  const base = {
    nodes,
    stanzas,
    loss: 0,
    seed: config.seed,
    telemetry: false,
    ackTimeoutMs: 100,
    store,
  };
  const plain = await runOne(base);
  const dtls = await runOne({ ...base, dtls: CCM_8.name });
  return {
    nodes,
    stanzas_per_node: stanzas,
    store,
    suite: CCM_8.name,
    plain: gatewayRun(plain),
    dtls: gatewayRun(dtls),
    added_cpu_us_per_stanza: round(dtls.cpu_us_per_stanza - plain.cpu_us_per_stanza, 1),
    violated: brokeDelivery(plain) || brokeDelivery(dtls),
  };
}

// ---------------------------------------------------------------------------------------------------
// The whole run.

export interface DtlsBenchResult {
  readonly handshake: readonly HandshakeReport[];
  readonly connect: readonly ConnectReport[];
  readonly bytes: BytesReport;
  readonly server: readonly ServerLoadReport[];
  readonly gateway: readonly GatewayComparison[];
  readonly anchors: typeof DTLS_ANCHORS;
  readonly seed: number;
  readonly elapsed_s: number;
}

export async function runDtls(
  config: DtlsBenchConfig,
  progress: (line: string) => void = () => {},
): Promise<DtlsBenchResult> {
  const t0 = performance.now();
  progress("  handshakes…");
  const handshake: HandshakeReport[] = [];
  for (const s of SUITES) handshake.push(await measureHandshakes(s, config));

  progress("  connects and readings through a gateway in this process…");
  const modes: (Suite | undefined)[] = [undefined, ...SUITES];
  const devices = [
    ...modes.flatMap((m) =>
      Array.from({ length: config.handshakes }, (_, i) => device(connectIdentity(m, i), config.seed)),
    ),
    ...modes.map((_, i) => device(`node${i}`, config.seed)),
  ];
  const gw = await localGateway(devices);
  const connect: ConnectReport[] = [];
  const runs: BytesRun[] = [];
  const plainBytes: number[] = [];
  try {
    for (const m of modes) connect.push(await measureConnects(gw, m, config));
    for (const [i, m] of modes.entries()) runs.push(await measureReadings(gw, m, i, config, plainBytes));
  } finally {
    await gw.close();
  }
  const payload = median(plainBytes);
  const qos0 = MQTT_SN.publishHeader + payload;
  const qos1 = qos0 + MQTT_SN.puback;
  const ccmRecord = RECORD_HEADER_BYTES + CCM_8.nonce + CCM_8.tag;
  const bytes: BytesReport = {
    readings: config.readings,
    reading_payload_bytes: payload,
    mqtt_sn: {
      qos0,
      qos1,
      qos0_over_dtls_ccm_8: qos0 + ccmRecord,
      qos1_over_dtls_ccm_8: qos1 + 2 * ccmRecord,
    },
    runs,
  };

  // The load's records are a reliable reading's CoAP request and its ACK, as measured above.
  const reliable = runs[0]!.reliable;
  const server: ServerLoadReport[] = [];
  for (const m of modes) {
    progress(
      `  server load, ${m?.name ?? "plain UDP"}, ${config.clients} clients, ${config.durationS} s a phase…`,
    );
    server.push(
      await serverLoad(m, config, Math.max(1, reliable.coap_bytes_up), Math.max(1, reliable.coap_bytes_down)),
    );
  }

  const gateway: GatewayComparison[] = [];
  for (const nodes of config.nodes) {
    for (const store of config.stores) {
      const stanzas = config.stanzas ?? Math.ceil(GATEWAY_STANZAS / nodes);
      progress(`  gateway, ${nodes} nodes × ${stanzas}, store ${store}, plain and DTLS…`);
      gateway.push(await compareGateway(nodes, store, config));
    }
  }
  return {
    handshake,
    connect,
    bytes,
    server,
    gateway,
    anchors: DTLS_ANCHORS,
    seed: config.seed,
    elapsed_s: round((performance.now() - t0) / 1000, 1),
  };
}

// ---------------------------------------------------------------------------------------------------
// Output.

/** What broke a guarantee or an expectation of the run (empty: exit code 0). */
export function failures(r: DtlsBenchResult): string[] {
  const problems: string[] = [];
  for (const h of r.handshake)
    if (h.failed > 0 || h.handshakes === 0) problems.push(`${h.failed} ${h.suite} handshake(s) failed`);
  for (const b of r.bytes.runs) {
    if (b.delivered < b.sent)
      problems.push(`${b.mode}: ${b.sent - b.delivered} of ${b.sent} readings not delivered`);
    const o = b.record_overhead;
    if (o && o.measured !== o.expected)
      problems.push(`${b.mode}: a record added ${o.measured} B per datagram, not ${o.expected}`);
  }
  for (const s of r.server) {
    if (s.handshakes && s.handshakes.completed === 0)
      problems.push(`${s.mode}: no handshake completed under load`);
    if (s.records.exchanges === 0) problems.push(`${s.mode}: no record answered under load`);
  }
  for (const g of r.gateway)
    if (g.violated)
      problems.push(
        `gateway ${g.nodes} nodes, store ${g.store}: a reliable stanza was lost, duplicated or reordered`,
      );
  return problems;
}

const pct = (share: number) => `${Math.round(share * 100)}%`;
const shortName = (mode: string) => SUITES.find((s) => s.name === mode)?.short ?? mode;
const arrows = (up: number, down: number) => `${fmt(up)} / ${fmt(down)}`;

function formatHandshake(r: DtlsBenchResult): string {
  const first = r.handshake[0];
  const rows = r.handshake.map((h) => [
    h.suite,
    String(h.flights),
    String(h.round_trips),
    arrows(h.datagrams_up, h.datagrams_down),
    arrows(h.bytes_up, h.bytes_down),
    fmt(h.bytes_total),
    String(h.retransmissions),
    `${h.ms_median} / ${h.ms_p95}`,
  ]);
  const flights = r.handshake.map(
    (h) =>
      `  ${shortName(h.suite)} flights: ${h.flight_detail
        .map((f) => `${f.from === "node" ? "→" : "←"} ${f.messages.join("+")} ${f.bytes} B`)
        .join(" | ")}${h.varied ? " (sizes varied between handshakes)" : ""}`,
  );
  return [
    `Handshake (real UDP on loopback, one process; counted at the node's UDP socket below DTLS; PSK identity of ${first?.identity_bytes ?? 0} B; ${first?.handshakes ?? 0} per suite)`,
    table(
      [
        "suite",
        "flights",
        "round trips",
        "datagrams ↑/↓",
        "bytes ↑/↓",
        "total B",
        "retrans",
        "ms median / p95",
      ],
      rows,
    ),
    ...flights,
    `  anchor: RFC 6347 §4.2.1: ${DTLS_ANCHORS.rfc6347_flights_with_cookie} flights, ${DTLS_ANCHORS.rfc6347_round_trips_with_cookie} round trips with the stateless cookie exchange (HelloVerifyRequest), ${DTLS_ANCHORS.rfc6347_round_trips_without_cookie} without; PSK: no certificates; extended master secret (RFC 7627): ${r.handshake.every((h) => h.extended_master_secret) ? "yes" : "no"}`,
  ].join("\n");
}

function formatConnect(r: DtlsBenchResult): string {
  const label = (c: ConnectReport) =>
    c.mode === "plain"
      ? "plain cxmpp (POST /c → 4.01 Echo, POST /c + proof → 2.01)"
      : `DTLS ${shortName(c.mode)} (handshake, then POST /c → 2.01)`;
  return [
    `Connect to the gateway (session layer in this process, memory devices; round trips = handshake's + CoAP exchanges; ${r.connect[0]?.connects ?? 0} connects each)`,
    table(
      [
        "connect",
        "round trips",
        "handshake",
        "CoAP exchanges",
        "datagrams ↑/↓",
        "bytes ↑/↓",
        "total B",
        "ms median",
      ],
      r.connect.map((c) => [
        label(c),
        String(c.round_trips),
        String(c.handshake_round_trips),
        String(c.exchanges),
        arrows(c.datagrams_up, c.datagrams_down),
        arrows(c.bytes_up, c.bytes_down),
        fmt(c.bytes_total),
        String(c.ms_median),
      ]),
    ),
    "  plain: the Echo challenge and the HMAC proof are two exchanges on every connect; over DTLS the handshake proved the key, so one",
  ].join("\n");
}

function formatBytes(r: DtlsBenchResult): string {
  const b = r.bytes;
  const runs = b.runs;
  const m = b.mqtt_sn;
  const row = (label: string, pick: (x: BytesRun) => ReadingCost, mqtt: number, mqttDtls: number) => [
    label,
    ...runs.map((x) => String(pick(x).bytes)),
    String(mqtt),
    String(mqttDtls),
  ];
  const plain = runs[0];
  const datagrams = plain
    ? `  datagrams per reading: NON ${plain.telemetry.datagrams_up} ↑ ${plain.telemetry.datagrams_down} ↓, CON ${plain.reliable.datagrams_up} ↑ ${plain.reliable.datagrams_down} ↓ (the same with DTLS: one record per datagram); CoAP inside DTLS = plain: NON ${plain.telemetry.coap_bytes} B, CON ${plain.reliable.coap_bytes} B`
    : "";
  const records = runs
    .filter((x) => x.record_overhead)
    .map((x) => {
      const o = x.record_overhead!;
      return `${shortName(x.mode)} +${o.measured} B measured = ${o.header} header + ${o.nonce} explicit nonce + ${o.tag} tag`;
    });
  return [
    `Bytes on air per reading (UDP payload, both directions; median of ${b.readings} readings: the XEP-0323 reading bench session sends)`,
    table(
      [
        "reading",
        ...runs.map((x) => (x.mode === "plain" ? "plain" : `DTLS ${shortName(x.mode)}`)),
        "MQTT-SN",
        `MQTT-SN in CCM_8`,
      ],
      [
        row("NON telemetry", (x) => x.telemetry, m.qos0, m.qos0_over_dtls_ccm_8),
        row("CON + its ACK", (x) => x.reliable, m.qos1, m.qos1_over_dtls_ccm_8),
      ],
    ),
    datagrams,
    `  the DTLS record per datagram: ${records.join("; ")}`,
    `  anchor: MQTT-SN for the same ${b.reading_payload_bytes}-byte reading (\`temperature=21.5°C\`): QoS 0 = PUBLISH ${MQTT_SN.publishHeader} + ${b.reading_payload_bytes} = ${m.qos0} B, QoS 1 = + PUBACK ${MQTT_SN.puback} = ${m.qos1} B; last column: each of its datagrams in the same CCM_8 record`,
  ].join("\n");
}

function formatServer(r: DtlsBenchResult): string {
  const first = r.server[0];
  const plain = r.server.find((s) => s.mode === "plain");
  const hs = r.server.filter((s) => s.handshakes);
  const handshakes = table(
    [
      "handshakes",
      "completed",
      "per s",
      "µs CPU / handshake",
      "server-bound /s",
      "server busy",
      "clients busy",
      "failed",
      "retrans",
    ],
    hs.map((s) => {
      const h = s.handshakes!;
      return [
        shortName(s.mode),
        fmt(h.completed),
        fmt(h.per_s),
        String(h.cpu_us_per_handshake),
        fmt(h.server_bound_per_s),
        pct(h.server_busy),
        pct(h.client_busy),
        String(h.failed),
        String(h.retransmissions),
      ];
    }),
  );
  const records = table(
    [
      "records",
      "exchanges",
      "records/s",
      "µs CPU / record",
      "+µs vs plain",
      "server-bound records/s",
      "server busy",
      "clients busy",
      "lost",
    ],
    r.server.map((s) => {
      const x = s.records;
      return [
        s.mode === "plain" ? "plain UDP (datagrams)" : shortName(s.mode),
        fmt(x.exchanges),
        fmt(x.records_per_s),
        String(x.cpu_us_per_record),
        plain && s !== plain ? `+${round(x.cpu_us_per_record - plain.records.cpu_us_per_record, 2)}` : "",
        fmt(x.server_bound_records_per_s),
        pct(x.server_busy),
        pct(x.client_busy),
        String(x.lost),
      ];
    }),
  );
  return [
    `DTLS server (in a child process: CPU = its user + system time; ${first?.clients ?? 0} node sockets in this process; ${first?.duration_s ?? 0} s a phase; busy = CPU / wall time, 100% = one core)`,
    handshakes,
    "  each: cookie exchange, PSK key exchange, both Finished; from the same socket again (a rebooted node: the new session replaces the old)",
    records,
    `  one record in (a CoAP reading, ${first?.records.request_bytes ?? 0} B) and one out (its ACK, ${first?.records.reply_bytes ?? 0} B) per exchange; records/s = in + out; CPU includes the UDP system calls (plain UDP: those alone)`,
  ].join("\n");
}

function formatGateway(r: DtlsBenchResult): string {
  if (r.gateway.length === 0) return "";
  const suiteName = shortName(r.gateway[0]!.suite);
  return [
    `Gateway CPU per reliable stanza, DTLS ${suiteName} beside plain UDP (bench session's runOne: gateway in its own process, CPU from the first stanza to the last ACK / stanzas routed; 0% loss)`,
    table(
      [
        "CON, 0% loss",
        "plain µs",
        "DTLS µs",
        "+µs",
        "plain /s",
        "DTLS /s",
        "gw busy plain / DTLS",
        "B on air plain / DTLS",
        "delivered",
        "anchor",
      ],
      r.gateway.map((g, i) => [
        `${fmt(g.nodes)} nodes × ${g.stanzas_per_node}, ${g.store === "memory" ? "memory" : `SQLite ${g.store}`}`,
        String(g.plain.cpu_us_per_stanza),
        String(g.dtls.cpu_us_per_stanza),
        `${g.added_cpu_us_per_stanza >= 0 ? "+" : ""}${g.added_cpu_us_per_stanza}`,
        fmt(g.plain.stanzas_per_s),
        fmt(g.dtls.stanzas_per_s),
        `${pct(g.plain.gateway_cpu_share)} / ${pct(g.dtls.gateway_cpu_share)}`,
        `${g.plain.bytes_on_air_median} / ${g.dtls.bytes_on_air_median}`,
        g.violated ? "BROKEN" : "all, once, in order",
        i === 0 ? "Paho MQTT-SN 62–89 µs per QoS-1 msg (no DTLS); node-coap 120–150 µs/request" : "",
      ]),
    ),
  ].join("\n");
}

export function formatDtls(r: DtlsBenchResult): string {
  return `${[
    `cxmpp bench dtls — DTLS 1.2 PSK on the node link (seed ${r.seed}, ${r.elapsed_s} s)`,
    "",
    formatHandshake(r),
    "",
    formatConnect(r),
    "",
    formatBytes(r),
    "",
    formatServer(r),
    "",
    formatGateway(r),
  ].join("\n")}\n`;
}

// ---------------------------------------------------------------------------------------------------
// Entry point.

function numberList<T>(
  name: string,
  value: string | undefined,
  fallback: string,
  item: (s: string) => T,
): T[] {
  const text = (value ?? fallback).trim();
  const items = text.split(",").map((s) => s.trim());
  if (items.length === 0 || items.some((s) => s === ""))
    throw new UsageError(`--${name} must be a comma-separated list, not '${value}'`);
  return items.map(item);
}

function parse(opts: DtlsBenchOptions): DtlsBenchConfig {
  const duration =
    opts.duration === undefined
      ? 3
      : Number(typeof opts.duration === "string" ? opts.duration.trim() : opts.duration);
  if (!Number.isFinite(duration) || duration < 0.2 || duration > 600)
    throw new UsageError(`--duration must be a number of seconds from 0.2 to 600, not '${opts.duration}'`);
  return {
    handshakes: integer("handshakes", opts.handshakes, 20, 1, 1_000),
    readings: integer("readings", opts.readings, 20, 1, 1_000),
    durationS: duration,
    clients: integer("clients", opts.clients, 32, 1, 1_000),
    nodes: numberList("nodes", opts.nodes, "10,100", (s) => integer("nodes", s, 0, 1, 5_000)),
    stanzas: opts.stanzas === undefined ? undefined : integer("stanzas", opts.stanzas, 0, 1, 100_000),
    stores: numberList("stores", opts.stores, "memory,full", (s) => storeKind(s)),
    seed: integer("seed", opts.seed, 1, 0, 2 ** 31 - 1),
  };
}

/** Entry point of `cxmpp bench dtls`; returns the exit code and never throws. */
export function runDtlsBench(opts: DtlsBenchOptions): Promise<number> {
  return runBenchCommand(
    "dtls",
    () => parse(opts),
    async (config) => {
      const result = await runDtls(config, (line) => {
        if (!opts.json) process.stderr.write(`${line}\n`);
      });
      process.stdout.write(opts.json ? `${JSON.stringify(result)}\n` : formatDtls(result));
      const problems = failures(result);
      if (problems.length === 0) return 0;
      process.stderr.write(`cxmpp bench dtls: ${problems.join("; ")}\n`);
      return 1;
    },
  );
}

// When forked as the DTLS server (spawnServer), this file is the main module.
if (process.send !== undefined && process.argv[2] === CHILD_FLAG && resolve(process.argv[1] ?? "") === HERE) {
  serverChild(JSON.parse(process.argv[3] ?? "{}") as ServerChildConfig).catch((error: unknown) => {
    process.stderr.write(
      `cxmpp bench dtls (server): ${error instanceof Error ? error.stack : String(error)}\n`,
    );
    process.exit(1);
  });
}
