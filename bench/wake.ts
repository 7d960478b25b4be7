/**
 * `cxmpp bench wake`: what one wake-up of a sleepy node costs on air. While the node sleeps the
 * gateway queues K stanzas for it (K = 1, 10, 100 by default); then it wakes, polls once, and drains
 * its mailbox (docs/PROTOCOL.md §3.4, §4.2–§4.3), with the MQTT-SN anchor beside our figures.
 *
 * How it measures, in one process over real loopback UDP:
 * - A real gateway (GatewayService on a CoapEndpoint) with the durable SQLite store in a temporary data
 *   directory (`--store full`, the default, or `normal`; `memory` keeps nothing), and one node
 *   (NodeClient with `wake` set) on its own UDP socket. A fresh gateway, store and node per K, so
 *   every K starts from the same state: a session just connected, codec tables holding only the
 *   connect's aliases.
 * - The node connects (not counted), then sleeps: the gateway's clock is moved past the node's awake
 *   window (AWAKE_WINDOW_MS), so the gateway holds what comes as for a sleeping node, with a XEP-0203
 *   <delay/>. K stanzas for it enter through `service.route()` as if from its peers, alternating an
 *   XEP-0323 reading from another node of the gateway and a short chat message from a user elsewhere.
 *   The bench waits for their commit, then the node wakes.
 * - The drain: one poll (POST /u), and a further poll at once while the response says `more`, then one
 *   last poll whose `ack` covers the last batch, after which the mailbox is empty in memory and in the
 *   store. Counted at the node's UDP transport: CoAP exchanges (distinct request message ids the node
 *   sent), datagrams and UDP payload bytes in both directions (CoAP header, token, options, the cxmpp
 *   header and the frames; no DTLS, no IP/UDP headers), and the wall time from the first poll to the
 *   answer to the acknowledgement.
 * - Beside it: the same stanzas as XML (each one as the node received it, serialised inside a
 *   jabber:client stream, <delay/> included), and MQTT-SN QoS 1 for the same payloads (formula below).
 *
 * Contract of `--json`: ONE JSON object `{runs: [...], mqtt_sn_formula, anchors}` on stdout, one run
 * per K with at least queued, delivered, duplicates, in_order, mailbox_left, exchanges, datagrams_up,
 * datagrams_down, bytes_on_air, downlink_frame_bytes, xml_bytes, mqtt_sn_bytes, drain_ms and store.
 * Exit code 1 when a run did not deliver every stanza exactly once and in order or left its mailbox
 * non-empty (the output is still printed), or on an error.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { attr, el, type XElement } from "../codec/index.js";
import { SENSORDATA, sensorDataMessage } from "../examples/iot-stanzas.js";
import { type Device, type DeviceDirectory, MemoryDevices } from "../gateway/devices.js";
import { attachGateway } from "../gateway/index.js";
import type { SessionJournal } from "../gateway/session/journal.js";
import { AWAKE_WINDOW_MS } from "../gateway/session/node-session.js";
import { openStore, type Store } from "../gateway/store/index.js";
import { toXml } from "../gateway/xml/stanza-xml.js";
import {
  type Clock,
  CoapEndpoint,
  type DatagramTransport,
  NodeClient,
  type PeerAddress,
} from "../src/core/index.js";
import { seededRandom } from "../src/core/seeded-random.js";
import {
  createUdpEndpoint,
  cryptoRandom,
  nodeMac,
  systemClock,
  timerScheduler,
  UdpTransport,
  wallClock,
} from "../src/node/index.js";
import {
  fmt,
  integer,
  round,
  runBenchCommand,
  type StoreKind,
  storeKind,
  table,
  UsageError,
} from "./common.js";

export interface WakeBenchOptions {
  /** Commander hands over strings; numbers are accepted too. */
  readonly counts?: string;
  readonly store?: string;
  readonly maxDownlinkBytes?: string | number;
  readonly seed?: string | number;
  readonly json?: boolean;
}

export interface WakeConfig {
  readonly counts: readonly number[];
  readonly store: StoreKind;
  readonly maxDownlinkBytes: number;
  readonly seed: number;
}

const DOMAIN = "iot.bench.example";
const RESOURCE = "cxmpp";
const SLEEPY = "sleepy";
const SENSOR = "sensor1";
const USER = "alice@example.org/phone";
/** Seconds the node says it sleeps: long beside the drain, so it stays a sleeping node throughout. */
const WAKE_S = 300;
const T0 = Date.UTC(2025, 5, 1, 12, 0, 0);

/** MQTT-SN v1.2 sizes: PUBLISH header (length, type, flags, topic id, msg id), PUBACK, PINGREQ/RESP. */
export const MQTT_SN = Object.freeze({ publishHeader: 7, puback: 7, pingreq: 2, pingresp: 2 });
export const MQTT_SN_FORMULA =
  "MQTT-SN QoS 1 = PINGREQ 2 + PINGRESP 2 + Σ (PUBLISH 7 + payload + PUBACK 7); exchanges K + 1, datagrams 2K + 2; payload = the reading as `name=value unit`, or the chat body";

export const WAKE_ANCHORS = Object.freeze({
  mqtt_sn: "a sleeping client drains with PINGREQ; one PUBLISH+PUBACK per message, PINGRESP when done",
  brief:
    "downlink piggybacked on the response to the node's own poll: one exchange per wake-up, more while `more` is set",
});

// ---------------------------------------------------------------------------------------------------
// What waits for the node.

interface Queued {
  readonly stanza: XElement;
  /** Identifies it among the node's received stanzas (exactly once, in order). */
  readonly key: string;
  /** The same content as an MQTT-SN application would publish it. */
  readonly payloadBytes: number;
}

const CHAT_LINES = [
  "setpoint {n} tonight?",
  "window open in the kitchen",
  "battery low, {n}% left",
  "ok, heating off until {n}:00",
  "door opened",
];

/** The K stanzas: an XEP-0323 reading from a sensor node and a short chat message, alternately. */
export function queuedStanzas(k: number, seed: number): Queued[] {
  const random = seededRandom(seed);
  const to = `${SLEEPY}@${DOMAIN}/${RESOURCE}`;
  return Array.from({ length: k }, (_, i) =>
    i % 2 === 0 ? sensorReading(i + 1, to, random) : chat(i + 1, random),
  );
}

function sensorReading(seq: number, to: string, random: () => number): Queued {
  const value = (15 + random() * 15).toFixed(1);
  const timestamp = new Date(T0 + seq * 60_000).toISOString().replace(".000Z", "Z");
  const field = el(SENSORDATA, "numeric", { name: "temperature", momentary: "true", value, unit: "°C" });
  const from = `${SENSOR}@${DOMAIN}/${RESOURCE}`;
  const stanza = sensorDataMessage({ from, to }, { nodeId: SENSOR, seqnr: seq, timestamp, field });
  return { stanza, key: `r${seq}`, payloadBytes: Buffer.byteLength(`temperature=${value}°C`) };
}

function chat(seq: number, random: () => number): Queued {
  const line = CHAT_LINES[Math.floor(random() * CHAT_LINES.length)] ?? "";
  const body = line.replace("{n}", String(10 + Math.floor(random() * 80)));
  const stanza = el(
    "jabber:client",
    "message",
    { from: USER, to: `${SLEEPY}@${DOMAIN}`, type: "chat", id: `m${seq}` },
    el("jabber:client", "body", {}, body),
  );
  return { stanza, key: `m${seq}`, payloadBytes: Buffer.byteLength(body) };
}

/** The key of a received stanza: `r<seqnr>` for a reading, its id for a chat message. */
function keyOf(stanza: XElement): string {
  const fields = stanza.children.find((c): c is XElement => typeof c !== "string" && c.name === "fields");
  return fields ? `r${attr(fields, "seqnr")}` : (attr(stanza, "id") ?? "?");
}

/** MQTT-SN QoS 1 for the same payloads (MQTT_SN_FORMULA). */
export function mqttSnDrain(payloads: readonly number[]): {
  bytes: number;
  exchanges: number;
  datagrams: number;
} {
  const perMessage = payloads.reduce((s, p) => s + MQTT_SN.publishHeader + p + MQTT_SN.puback, 0);
  return {
    bytes: MQTT_SN.pingreq + MQTT_SN.pingresp + perMessage,
    exchanges: payloads.length + 1,
    datagrams: 2 * payloads.length + 2,
  };
}

// ---------------------------------------------------------------------------------------------------
// Counting what goes over the air.

/** Wraps the node's transport: datagrams and UDP payload bytes both ways, and the requests it sent. */
export class AirMeter {
  datagramsUp = 0;
  datagramsDown = 0;
  bytesUp = 0;
  bytesDown = 0;
  /** Message ids of the CoAP requests sent: a retransmission repeats one, a new exchange adds one. */
  private readonly requests = new Set<number>();

  constructor(private readonly inner: DatagramTransport) {}

  get exchanges(): number {
    return this.requests.size;
  }

  reset(): void {
    this.datagramsUp = this.datagramsDown = this.bytesUp = this.bytesDown = 0;
    this.requests.clear();
  }

  readonly transport: DatagramTransport = {
    send: (data, peer) => {
      this.datagramsUp++;
      this.bytesUp += data.length;
      if (isRequest(data)) this.requests.add(((data[2] ?? 0) << 8) | (data[3] ?? 0));
      this.inner.send(data, peer);
    },
    onReceive: (handler) => {
      this.inner.onReceive((data, peer) => {
        this.datagramsDown++;
        this.bytesDown += data.length;
        handler(data, peer);
      });
    },
    close: () => this.inner.close(),
  };
}

/** RFC 7252 §3: code class 0 with a non-zero detail is a request (0.00 is an empty message). */
function isRequest(datagram: Uint8Array): boolean {
  const code = datagram[1] ?? 0;
  return datagram.length >= 4 && code >> 5 === 0 && code !== 0;
}

// ---------------------------------------------------------------------------------------------------
// One run: a gateway, a sleepy node, K stanzas, one wake-up.

const KEY = Uint8Array.from({ length: 16 }, (_, i) => i * 17);

function devices(): Device[] {
  const peers = [`${SENSOR}@${DOMAIN}`, USER.split("/")[0]!];
  return [
    { identity: SLEEPY, key: KEY, jid: `${SLEEPY}@${DOMAIN}`, peers },
    {
      identity: SENSOR,
      key: KEY.map((b) => b ^ 0xff),
      jid: `${SENSOR}@${DOMAIN}`,
      peers: [`${SLEEPY}@${DOMAIN}`],
    },
  ];
}

interface GatewayState {
  readonly devices: DeviceDirectory;
  readonly journal?: SessionJournal;
  readonly store?: Store;
  readonly dataDir?: string;
}

function gatewayState(kind: StoreKind): GatewayState {
  if (kind === "memory") return { devices: new MemoryDevices(devices()) };
  const dataDir = mkdtempSync(join(tmpdir(), "cxmpp-wake-"));
  const store = openStore(dataDir, { durability: kind });
  for (const d of devices()) store.devices.add(d);
  return { devices: store.devices, journal: store.journal, store, dataDir };
}

/** The gateway's clock, which the bench moves forward to put the node to sleep without waiting. */
function skewedClock(): Clock & { skip(ms: number): void } {
  let skew = 0;
  return {
    now: () => wallClock.now() + skew,
    skip: (ms) => {
      skew += ms;
    },
  };
}

export interface WakeRunResult {
  readonly queued: number;
  readonly store: StoreKind;
  readonly max_downlink_bytes: number;
  readonly delivered: number;
  readonly duplicates: number;
  readonly in_order: boolean;
  /** Stanzas left in the node's mailbox after the drain: in memory, and in the store (durable runs). */
  readonly mailbox_left: number;
  readonly mailbox_left_in_store: number | null;
  /** Polls until the mailbox is empty and acknowledged, the final acknowledgement included. */
  readonly exchanges: number;
  readonly datagrams_up: number;
  readonly datagrams_down: number;
  readonly bytes_up: number;
  readonly bytes_down: number;
  readonly bytes_on_air: number;
  /** Downlink frame bytes (the stanzas as cxmpp frames), ≤ max_downlink_bytes per response. */
  readonly downlink_frame_bytes: number;
  readonly xml_bytes: number;
  readonly payload_bytes: number;
  readonly mqtt_sn_bytes: number;
  readonly mqtt_sn_exchanges: number;
  readonly mqtt_sn_datagrams: number;
  readonly bytes_ratio_vs_xml: number;
  readonly bytes_ratio_vs_mqtt_sn: number;
  readonly drain_ms: number;
  /** Datagrams the node sent beyond one per exchange (retransmissions; none expected on loopback). */
  readonly retransmissions: number;
}

/** One wake-up with `k` stanzas waiting. */
export async function runWake(config: WakeConfig, k: number): Promise<WakeRunResult> {
  const state = gatewayState(config.store);
  const clock = skewedClock();
  const gateway = await createUdpEndpoint({ host: "127.0.0.1", clock: systemClock });
  const service = attachGateway(gateway.endpoint, {
    ...(state.store ? { store: state.store } : { devices: state.devices }),
    domain: DOMAIN,
    resource: RESOURCE,
    clock,
    maxDownlinkBytes: config.maxDownlinkBytes,
    // Room for K: the default limit (100 stanzas, 16 KiB) is a policy, not what is measured here.
    mailbox: { maxStanzas: Math.max(100, k), maxBytes: 1 << 20, ttlMs: 86_400_000 },
  });

  const udp = await UdpTransport.bind("127.0.0.1", 0);
  const meter = new AirMeter(udp);
  const endpoint = new CoapEndpoint({
    transport: meter.transport,
    clock: systemClock,
    scheduler: timerScheduler(),
    random: cryptoRandom,
    exchange: { tokenLength: 1 }, // as `cxmpp node`: one outstanding request at a time
  });
  const client = new NodeClient({
    endpoint,
    gateway: gateway.transport.address as PeerAddress,
    identity: SLEEPY,
    key: KEY,
    mac: nodeMac,
    wake: WAKE_S,
  });
  const received: XElement[] = [];
  client.onStanza((s) => received.push(s));
  try {
    await client.connect();
    clock.skip(AWAKE_WINDOW_MS + 1_000); // asleep from the gateway's point of view
    const queued = queuedStanzas(k, config.seed * 1_000 + k);
    const framesBefore = service.stats.bytesOut;
    for (const q of queued) service.route(q.stanza);
    await state.journal?.committed();
    meter.reset();

    const t0 = performance.now();
    await client.poll(); // the wake-up; NodeClient polls again at once while `more` is set
    await client.poll(); // its `ack` covers the last batch: the mailbox empties
    const drainMs = performance.now() - t0;

    return measure(config, k, {
      queued,
      received,
      meter,
      drainMs,
      frameBytes: service.stats.bytesOut - framesBefore,
      mailboxLeft: service.session(SLEEPY)?.mailbox.length ?? 0,
      mailboxLeftInStore: state.store ? storedMailbox(state.store) : null,
    });
  } finally {
    client.close();
    endpoint.close();
    udp.close();
    await gateway.close();
    state.store?.close();
    if (state.dataDir) rmSync(state.dataDir, { recursive: true, force: true });
  }
}

/** What the store holds for the node after the drain: read back as the gateway reads it at start. */
function storedMailbox(store: Store): number {
  return store.journal.load().find((s) => s.identity === SLEEPY)?.mailbox.length ?? 0;
}

interface Observed {
  readonly queued: readonly Queued[];
  readonly received: readonly XElement[];
  readonly meter: AirMeter;
  readonly drainMs: number;
  readonly frameBytes: number;
  readonly mailboxLeft: number;
  readonly mailboxLeftInStore: number | null;
}

function measure(config: WakeConfig, k: number, o: Observed): WakeRunResult {
  const keys = o.received.map(keyOf);
  const distinct = new Set(keys);
  const expected = o.queued.map((q) => q.key);
  const xml = o.received.reduce((s, stanza) => s + Buffer.byteLength(toXml(stanza, "jabber:client")), 0);
  const mqtt = mqttSnDrain(o.queued.map((q) => q.payloadBytes));
  const m = o.meter;
  const onAir = m.bytesUp + m.bytesDown;
  return {
    queued: k,
    store: config.store,
    max_downlink_bytes: config.maxDownlinkBytes,
    delivered: expected.filter((key) => distinct.has(key)).length,
    duplicates: keys.length - distinct.size,
    in_order: keys.length === expected.length && keys.every((key, i) => key === expected[i]),
    mailbox_left: o.mailboxLeft,
    mailbox_left_in_store: o.mailboxLeftInStore,
    exchanges: m.exchanges,
    datagrams_up: m.datagramsUp,
    datagrams_down: m.datagramsDown,
    bytes_up: m.bytesUp,
    bytes_down: m.bytesDown,
    bytes_on_air: onAir,
    downlink_frame_bytes: o.frameBytes,
    xml_bytes: xml,
    payload_bytes: o.queued.reduce((s, q) => s + q.payloadBytes, 0),
    mqtt_sn_bytes: mqtt.bytes,
    mqtt_sn_exchanges: mqtt.exchanges,
    mqtt_sn_datagrams: mqtt.datagrams,
    bytes_ratio_vs_xml: round(onAir / Math.max(1, xml), 3),
    bytes_ratio_vs_mqtt_sn: round(onAir / mqtt.bytes, 2),
    drain_ms: round(o.drainMs, 2),
    retransmissions: m.datagramsUp - m.exchanges,
  };
}

/** True when a run broke exactly-once in-order delivery or left something in the mailbox. */
function violated(r: WakeRunResult): boolean {
  return (
    r.delivered !== r.queued ||
    r.duplicates !== 0 ||
    !r.in_order ||
    r.mailbox_left !== 0 ||
    (r.mailbox_left_in_store ?? 0) !== 0
  );
}

// ---------------------------------------------------------------------------------------------------
// Output.

function storeLabel(kind: StoreKind): string {
  return kind === "memory" ? "in memory" : `SQLite, synchronous=${kind.toUpperCase()}`;
}

function formatRuns(runs: readonly WakeRunResult[], config: WakeConfig): string {
  const drained = table(
    [
      "queued",
      "exchanges",
      "datagrams up/down",
      "B up",
      "B down",
      "B on air",
      "frames B",
      "ms",
      "once, in order",
    ],
    runs.map((r) => [
      fmt(r.queued),
      fmt(r.exchanges),
      `${r.datagrams_up}/${r.datagrams_down}`,
      fmt(r.bytes_up),
      fmt(r.bytes_down),
      fmt(r.bytes_on_air),
      fmt(r.downlink_frame_bytes),
      String(r.drain_ms),
      violated(r) ? `NO (${r.delivered} delivered, ${r.duplicates} dup, ${r.mailbox_left} left)` : "yes",
    ]),
  );
  const compared = table(
    [
      "queued",
      "cxmpp B on air",
      "XML B",
      "vs XML",
      "MQTT-SN B",
      "vs MQTT-SN",
      "cxmpp exch",
      "MQTT-SN exch",
      "MQTT-SN datagrams",
    ],
    runs.map((r) => [
      fmt(r.queued),
      fmt(r.bytes_on_air),
      fmt(r.xml_bytes),
      `${round(r.bytes_ratio_vs_xml, 2)}×`,
      fmt(r.mqtt_sn_bytes),
      `${r.bytes_ratio_vs_mqtt_sn}×`,
      fmt(r.exchanges),
      fmt(r.mqtt_sn_exchanges),
      fmt(r.mqtt_sn_datagrams),
    ]),
  );
  return [
    `cxmpp bench wake — one wake-up of a sleepy node with K stanzas queued (store ${storeLabel(config.store)}, max downlink ${config.maxDownlinkBytes} B per response, seed ${config.seed})`,
    "  stanzas: XEP-0323 readings from a sensor node and short chat messages from a user, alternately,",
    "  each held with a XEP-0203 <delay/>; loopback UDP, no loss, no DTLS",
    "",
    "The drain: polls (the last one acknowledges) and UDP payload bytes both ways, CoAP headers included",
    drained,
    "  (the last exchange only carries the node's `ack`; a node that has a reading to send anyway can let",
    "   its next uplink carry it instead, one exchange less per wake-up)",
    "",
    "Beside XML and MQTT-SN",
    compared,
    "",
    `  XML = each stanza as the node received it, serialised in a jabber:client stream (no TCP/TLS/XEP-0198 bytes)`,
    `  ${MQTT_SN_FORMULA}`,
    "  (MQTT-SN v1.2 §5.4.19: a sleeping client's PINGREQ also carries its ClientId; not counted, which favours MQTT-SN;",
    "   MQTT-SN carries no sender, timestamp or message type: those are in the topic id or nowhere)",
    `  anchor, MQTT-SN: ${WAKE_ANCHORS.mqtt_sn}`,
    `  anchor, ARCHITECTURE.md: ${WAKE_ANCHORS.brief}`,
    "",
  ].join("\n");
}

// ---------------------------------------------------------------------------------------------------
// Entry point.

function parse(opts: WakeBenchOptions): WakeConfig {
  const counts = (opts.counts ?? "1,10,100").split(",").map((c) => Number(c.trim()));
  if (counts.length === 0 || counts.some((c) => !Number.isInteger(c) || c < 1 || c > 10_000))
    throw new UsageError(`--counts must be integers from 1 to 10000, comma-separated, not '${opts.counts}'`);
  return {
    counts,
    store: storeKind(opts.store, "full"),
    maxDownlinkBytes: integer("max-downlink-bytes", opts.maxDownlinkBytes, 512, 64, 60_000),
    seed: integer("seed", opts.seed, 1, 0, 2 ** 31 - 1),
  };
}

async function run(opts: WakeBenchOptions, config: WakeConfig): Promise<number> {
  const runs: WakeRunResult[] = [];
  for (const k of config.counts) runs.push(await runWake(config, k));
  process.stdout.write(
    opts.json
      ? `${JSON.stringify({ runs, mqtt_sn_formula: MQTT_SN_FORMULA, anchors: WAKE_ANCHORS })}\n`
      : formatRuns(runs, config),
  );
  const broken = runs.filter(violated);
  for (const r of broken)
    process.stderr.write(
      `cxmpp bench wake: K=${r.queued}: delivered ${r.delivered}, duplicates ${r.duplicates}, in order ${r.in_order}, left in the mailbox ${r.mailbox_left}\n`,
    );
  return broken.length > 0 ? 1 : 0;
}

/** Entry point of `cxmpp bench wake`; returns the exit code and never throws. */
export function runWakeBench(opts: WakeBenchOptions): Promise<number> {
  return runBenchCommand(
    "wake",
    () => parse(opts),
    (config) => run(opts, config),
  );
}
