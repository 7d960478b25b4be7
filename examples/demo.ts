/**
 * `cxmpp demo`: the whole system in one process on loopback, with real UDP sockets — a gateway on a
 * throwaway data directory, three simulated nodes (an always-on sensor, an always-on actuator, a sleepy
 * sensor) and a seeded loss relay between them — and a live table of what each node costs on air.
 *
 * What it is for: a first look at cxmpp on a fresh clone (`npm run demo`), and a smoke test of every
 * layer at once under loss (test/gateway/demo.test.ts runs it with `--json`).
 *
 *   sensor    a XEP-0323 reading every second as NON telemetry (to a historian outside the domain, so it
 *             waits in the outbox: no XMPP server in a demo), every 5th reading also a reliable XEP-0325
 *             command to the actuator; observes its downlink.
 *   actuator  observes its downlink; on each command switches and reports its state to the sensor and to
 *             the sleepy sensor (which is usually asleep, so the gateway holds it in the mailbox).
 *   sleepy    announces `wake` seconds of sleep; every wake-up sends one reliable reading to the actuator,
 *             drains its mailbox (the response carries it, polls ack it), then stops talking.
 *
 * "On air" counts every UDP payload to and from a node — CoAP headers, acknowledgements, polls, connects
 * and retransmissions included — where it enters the air: at the node's socket upwards, where the
 * gateway's datagram enters the relay downwards (also when the relay then drops it). "As XML" is the same
 * stanzas as XML text, the size they would have on an XMPP stream without any framing.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { performance } from "node:perf_hooks";
import { el, type XElement } from "../codec/index.js";
import { loadConfig } from "../gateway/config.js";
import { type RunningGateway, startGateway } from "../gateway/index.js";
import type { NodeState } from "../gateway/session/gateway-service.js";
import { AWAKE_WINDOW_MS } from "../gateway/session/node-session.js";
import { xep0082 } from "../gateway/xml/stamps.js";
import { toXml } from "../gateway/xml/stanza-xml.js";
import {
  CoapEndpoint,
  type DatagramTransport,
  NodeClient,
  type PeerAddress,
  type TransmissionParameters,
} from "../src/core/index.js";
import { seededRandom } from "../src/core/seeded-random.js";
import { DtlsClient } from "../src/dtls/index.js";
import {
  cryptoRandom,
  nodeDtlsCrypto,
  nodeMac,
  systemClock,
  timerScheduler,
  UdpTransport,
  wallClock,
} from "../src/node/index.js";
import { SENSORDATA, sensorDataMessage } from "./iot-stanzas.js";
import { LossyRelay } from "./lossy-relay.js";

export interface DemoOptions {
  /** Commander hands over strings; numbers are accepted too. */
  readonly duration?: string | number;
  readonly loss?: string | number;
  readonly seed?: string | number;
  readonly wake?: string | number;
  readonly json?: boolean;
}

export interface DemoSettings {
  /** Undefined: until SIGINT/SIGTERM. */
  readonly durationS: number | undefined;
  readonly loss: number;
  readonly seed: number;
  readonly wakeS: number;
  readonly json: boolean;
}

const DOMAIN = "iot.localhost";
const HISTORIAN = "historian@example.org";
const CONTROL = "urn:xmpp:iot:control";
const DELAY = "urn:xmpp:delay";
const jidOf = (name: string) => `${name}@${DOMAIN}`;

/** The three nodes and their allowed peers (the gateway shows each one's presence to its peers). */
const NODES = [
  { name: "sensor", peers: [jidOf("actuator"), jidOf("sleepy"), HISTORIAN] },
  { name: "actuator", peers: [jidOf("sensor"), jidOf("sleepy")] },
  { name: "sleepy", peers: [jidOf("sensor"), jidOf("actuator")] },
] as const;
type NodeName = (typeof NODES)[number]["name"];

/**
 * Loopback answers in well under a millisecond; the RFC 7252 ACK timeout of 2 s is for real radios. With
 * NSTART 1 every request of a node waits behind the one in back-off (2 s doubling to 16 s), so at 20%
 * loss an always-on node would spend much of the demo stalled. 250 ms is the same back-off, 8× faster.
 */
const TRANSMISSION: Partial<TransmissionParameters> = { ackTimeoutMs: 250, maxRetransmit: 4 };
/** Every 5th reading goes with a command, from the first on: a short run sees the actuator at work. */
const COMMAND_EVERY = 5;
/** Always-on nodes poll this often: it acknowledges pushes whose ack was lost, and fetches lost pushes. */
const POLL_MS = 3_000;
const READING_MS = 1_000;
/** Without a TTY, one summary line per node this often. */
const PLAIN_EVERY_S = 5;
const RECENT = 5;

export class DemoOptionError extends Error {
  override readonly name = "DemoOptionError";
}

/** Validates the command-line options; throws DemoOptionError naming the bad one. */
export function demoSettings(opts: DemoOptions): DemoSettings {
  const number = (value: string | number | undefined, fallback: number | undefined, flag: string) => {
    if (value === undefined) return fallback;
    const n = Number(value);
    if (String(value).trim() === "" || !Number.isFinite(n))
      throw new DemoOptionError(`${flag} must be a number`);
    return n;
  };
  const durationS = number(opts.duration, undefined, "--duration");
  if (durationS !== undefined && durationS <= 0) throw new DemoOptionError("--duration must be > 0 seconds");
  const loss = number(opts.loss, 0.2, "--loss")!;
  if (!(loss >= 0 && loss < 1)) throw new DemoOptionError("--loss must be a probability, 0 ≤ p < 1");
  const seed = number(opts.seed, 1, "--seed")!;
  if (!Number.isInteger(seed)) throw new DemoOptionError("--seed must be an integer");
  const wakeS = number(opts.wake, 8, "--wake")!;
  if (!(wakeS > 0)) throw new DemoOptionError("--wake must be > 0 seconds");
  return { durationS, loss, seed, wakeS, json: opts.json === true };
}

// ---------------------------------------------------------------------------------------------------
// Stanzas: what a sensor, a switch and a sleepy sensor say (XEP-0323 readings, XEP-0325 control).

const stamp = () => xep0082(Date.now());

function reading(to: string, nodeId: string, seqnr: number, name: string, value: string, unit: string) {
  const field = el(SENSORDATA, "numeric", { name, momentary: "true", value, unit });
  return sensorDataMessage({ to }, { nodeId, seqnr, timestamp: stamp(), field });
}

/** A XEP-0325 control message: set the actuator's `on` field. */
function command(to: string, on: boolean): XElement {
  return el(
    "jabber:client",
    "message",
    { to },
    el(CONTROL, "set", {}, el(CONTROL, "boolean", { name: "on", value: String(on) })),
  );
}

/** The actuator's state as a XEP-0323 reading. */
function switchState(to: string, seqnr: number, on: boolean): XElement {
  const field = el(SENSORDATA, "boolean", { name: "on", momentary: "true", value: String(on) });
  return sensorDataMessage({ to }, { nodeId: "actuator", seqnr, timestamp: stamp(), field });
}

/** The `on` value of a XEP-0325 set message, if `stanza` is one. */
function commanded(stanza: XElement): boolean | undefined {
  const set = child(stanza, CONTROL, "set");
  const field = set && child(set, CONTROL, "boolean");
  const value = field?.attrs.find((a) => a.name === "value")?.value;
  return value === undefined ? undefined : value === "true";
}

function child(parent: XElement, ns: string, name: string): XElement | undefined {
  return parent.children.find((c): c is XElement => typeof c !== "string" && c.ns === ns && c.name === name);
}

const xmlBytes = (stanza: XElement) => Buffer.byteLength(toXml(stanza));

// ---------------------------------------------------------------------------------------------------
// One simulated node: its socket (counted), its CoAP endpoint, its NodeClient, its counters.

interface Traffic {
  sent: number;
  received: number;
  xmlSent: number;
  xmlReceived: number;
  airUp: number;
  airDown: number;
  /** CoAP bytes inside DTLS, both ways: what the session layer and the codec spend. */
  coap: number;
  /** Received stanzas the gateway held while the node slept (they carry a XEP-0203 delay). */
  held: number;
  seenAsleep: number;
  mailboxMax: number;
  wakes: number;
  /** Wake-ups after which the gateway's mailbox for the node was empty. */
  drainedWakes: number;
  /** A word on what the node is doing, for the table. */
  note: string;
}

interface DemoNode {
  readonly name: NodeName;
  readonly jid: string;
  readonly transport: UdpTransport;
  readonly endpoint: CoapEndpoint;
  readonly client: NodeClient;
  readonly traffic: Traffic;
  /** Sends reliably; resolves true once the gateway stored it, false when the client closed first. */
  send(stanza: XElement): Promise<boolean>;
  /** Sends one NON reading. */
  telemetry(stanza: XElement): void;
  /** Called for every stanza received, after counting. */
  onStanza(handler: (stanza: XElement) => void): void;
}

export interface Received {
  readonly at: string;
  readonly node: NodeName;
  readonly xml: string;
}

/** Counts the CoAP datagrams the node exchanges inside DTLS (both ways). */
function coapCounter(inner: DatagramTransport, traffic: Traffic): DatagramTransport {
  return {
    send(data, peer) {
      traffic.coap += data.length;
      inner.send(data, peer);
    },
    onReceive: (handler) =>
      inner.onReceive((data, peer) => {
        traffic.coap += data.length;
        handler(data, peer);
      }),
    close: () => inner.close(),
  };
}

/** Counts every datagram the node puts on air, retransmissions included. */
function countingTransport(inner: UdpTransport, traffic: Traffic): DatagramTransport {
  return {
    send(data, peer) {
      traffic.airUp += data.length;
      inner.send(data, peer);
    },
    onReceive: (handler) => inner.onReceive(handler),
    close: () => inner.close(),
  };
}

function newTraffic(): Traffic {
  return {
    sent: 0,
    received: 0,
    xmlSent: 0,
    xmlReceived: 0,
    airUp: 0,
    airDown: 0,
    coap: 0,
    held: 0,
    seenAsleep: 0,
    mailboxMax: 0,
    wakes: 0,
    drainedWakes: 0,
    note: "",
  };
}

async function createNode(
  name: NodeName,
  key: Uint8Array,
  gateway: PeerAddress,
  recent: Received[],
  wakeS?: number,
): Promise<DemoNode> {
  const transport = await UdpTransport.bind("127.0.0.1", 0);
  const traffic = newTraffic();
  // Over DTLS like any node of a new gateway: the name is the PSK identity, the device key the PSK.
  // Bytes are counted below DTLS: what is on air, record headers, nonces and tags included.
  const dtls = new DtlsClient(countingTransport(transport, traffic), {
    server: gateway,
    identity: name,
    psk: key,
    crypto: nodeDtlsCrypto,
    clock: systemClock,
    scheduler: timerScheduler(),
  });
  const endpoint = new CoapEndpoint({
    transport: coapCounter(dtls, traffic),
    clock: wallClock,
    scheduler: timerScheduler(),
    random: cryptoRandom,
    transmission: TRANSMISSION,
    exchange: { tokenLength: 1 }, // a handful of requests in flight at most: one byte tells them apart
  });
  const client = new NodeClient({
    endpoint,
    gateway,
    identity: name,
    key,
    mac: nodeMac,
    retryDelayMs: 500,
    ...(wakeS !== undefined ? { wake: wakeS } : {}),
  });
  let handler: (stanza: XElement) => void = () => {};
  client.onStanza((stanza) => {
    const xml = toXml(stanza);
    traffic.received++;
    traffic.xmlReceived += Buffer.byteLength(xml);
    if (child(stanza, DELAY, "delay")) traffic.held++;
    recent.push({ at: new Date().toTimeString().slice(0, 8), node: name, xml });
    if (recent.length > RECENT) recent.shift();
    handler(stanza);
  });
  return {
    name,
    jid: jidOf(name),
    transport,
    endpoint,
    client,
    traffic,
    send: (stanza) =>
      client.send(stanza).then(
        () => {
          traffic.sent++;
          traffic.xmlSent += xmlBytes(stanza);
          return true;
        },
        () => false,
      ),
    telemetry(stanza) {
      client.sendTelemetry(stanza);
      traffic.sent++;
      traffic.xmlSent += xmlBytes(stanza);
    },
    onStanza(h) {
      handler = h;
    },
  };
}

const sleep = (ms: number) => new Promise<void>((done) => setTimeout(done, ms));

/** Connects, retrying while the lossy link eats whole exchanges (each one retransmits 4 times first). */
async function connect(node: DemoNode, stopped: () => boolean): Promise<void> {
  for (;;) {
    try {
      await node.client.connect();
      return;
    } catch (error) {
      if (stopped()) throw error;
      await sleep(200);
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// What each node does. Each behaviour returns the function that stops it.

type Stop = () => void;

/** An always-on node: observes its downlink (pushes), and polls now and then for what a loss kept back. */
function alwaysOn(node: DemoNode, stopped: () => boolean): Stop {
  void (async () => {
    while (!stopped()) {
      try {
        await node.client.observeDownlink();
        return;
      } catch {
        await sleep(500); // the registration was lost: try again
      }
    }
  })();
  let polling = false;
  const timer = setInterval(() => {
    if (polling) return; // CoAP sends one request at a time (NSTART 1): never queue polls behind a stall
    polling = true;
    node.client
      .poll()
      .catch(() => {})
      .finally(() => {
        polling = false;
      });
  }, POLL_MS);
  return () => clearInterval(timer);
}

function runSensor(node: DemoNode, seed: number): Stop {
  const random = seededRandom(seed);
  let n = 0;
  let on = false;
  node.traffic.note = "1 reading/s NON, a command every 5";
  const timer = setInterval(() => {
    n++;
    const celsius = (20 + 3 * Math.sin(n / 30) + random() - 0.5).toFixed(1);
    node.telemetry(reading(HISTORIAN, node.name, n, "temperature", celsius, "°C"));
    if (n % COMMAND_EVERY === 1) {
      on = !on;
      void node.send(command(jidOf("actuator"), on));
    }
  }, READING_MS);
  return () => clearInterval(timer);
}

function runActuator(node: DemoNode): Stop {
  let reports = 0;
  node.traffic.note = "switch off";
  node.onStanza((stanza) => {
    const on = commanded(stanza);
    if (on === undefined) return;
    node.traffic.note = `switch ${on ? "on" : "off"}`;
    reports++;
    // The reply to the sensor, and the same news for the sleepy sensor: the gateway holds it while it sleeps.
    void node.send(switchState(jidOf("sensor"), reports, on));
    void node.send(switchState(jidOf("sleepy"), reports, on));
  });
  return () => {};
}

/**
 * The sleepy sensor: wakes `wakeS` seconds after its last exchange (what it announced), sends one
 * reliable reading (the response carries waiting downlink, `more` makes the client fetch the rest), then
 * polls until nothing new comes — the last poll acknowledges what it received, which is what empties the
 * gateway's mailbox — and sleeps again.
 */
function runSleepy(node: DemoNode, wakeS: number, seed: number, mailboxDepth: () => number): Stop {
  const random = seededRandom(seed + 1);
  const t = node.traffic;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const wake = async () => {
    t.wakes++;
    t.note = `awake (wake-up ${t.wakes})`;
    try {
      const humidity = (45 + 10 * random()).toFixed(1);
      if (await node.send(reading(jidOf("actuator"), node.name, t.wakes, "humidity", humidity, "%"))) {
        await drain(node);
        if (mailboxDepth() === 0) t.drainedWakes++;
      }
    } catch {
      // a poll ran out of retransmissions: the next wake-up fetches the rest
    }
    t.note = `sleeps ${wakeS} s (${t.wakes} wake-ups)`;
    if (!stopped) timer = setTimeout(wake, wakeS * 1000);
  };
  void wake();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

async function drain(node: DemoNode): Promise<void> {
  for (;;) {
    const before = node.traffic.received;
    await node.client.poll();
    if (node.traffic.received === before) return;
  }
}

// ---------------------------------------------------------------------------------------------------
// Starting and stopping everything.

interface Demo {
  readonly settings: DemoSettings;
  readonly gateway: RunningGateway;
  readonly relay: LossyRelay;
  readonly nodes: readonly DemoNode[];
  readonly recent: readonly Received[];
  readonly startedAt: number;
  stop(): Promise<void>;
}

/**
 * Starts the gateway, the relay and the nodes; on failure, or when `interrupted` resolves first, stops
 * what had started, then throws.
 */
export async function startDemo(settings: DemoSettings, interrupted?: Promise<void>): Promise<Demo> {
  const undo: Array<() => void | Promise<void>> = [];
  let stopped = false;
  const stop = async () => {
    stopped = true;
    for (const step of undo.splice(0).reverse()) {
      try {
        await step();
      } catch {
        // keep going: every other part still has to stop
      }
    }
  };
  try {
    const dataDir = mkdtempSync(join(tmpdir(), "cxmpp-demo-"));
    undo.push(() => rmSync(dataDir, { recursive: true, force: true }));
    const gateway = await startGateway(demoConfig(dataDir));
    undo.push(() => gateway.stop());
    const keys = provision(gateway);
    const byAddress = new Map<string, Traffic>();
    const relay = await startRelay(gateway, settings, byAddress);
    undo.push(() => relay.close());
    const recent: Received[] = [];
    const nodes: DemoNode[] = [];
    for (const { name } of NODES) {
      const node = await createNode(
        name,
        keys.get(name)!,
        relay.address,
        recent,
        name === "sleepy" ? settings.wakeS : undefined,
      );
      nodes.push(node);
      byAddress.set(node.transport.address, node.traffic);
      undo.push(async () => {
        node.client.close();
        node.endpoint.close();
        node.transport.close();
        await node.transport.whenClosed();
      });
    }
    const connected = Promise.all(nodes.map((n) => connect(n, () => stopped))).then(
      () => "connected" as const,
    );
    // Race handles both: a connect failing after an interrupt (its endpoint closed) is not unhandled.
    const first = await Promise.race([
      connected,
      (interrupted ?? new Promise<never>(() => {})).then(() => "interrupted" as const),
    ]);
    if (first === "interrupted") throw new Error("interrupted while connecting");
    const [sensor, actuator, sleepy] = nodes as [DemoNode, DemoNode, DemoNode];
    const depth = () => gateway.service.session("sleepy")?.mailbox.length ?? 0;
    const behaviours = [
      alwaysOn(sensor, () => stopped),
      alwaysOn(actuator, () => stopped),
      runActuator(actuator),
      runSensor(sensor, settings.seed),
      runSleepy(sleepy, settings.wakeS, settings.seed, depth),
    ];
    undo.push(() => {
      for (const b of behaviours) b();
    });
    return { settings, gateway, relay, nodes, recent, startedAt: performance.now(), stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** The gateway's settings: defaults, except what makes it a private, quiet, throwaway instance. */
function demoConfig(dataDir: string) {
  return loadConfig({
    env: {}, // CXMPP_* of the shell belong to a real gateway, not to this one
    cwd: dataDir,
    flags: {
      listen: "off",
      dtls_listen: "127.0.0.1:0",
      domain: DOMAIN,
      data_dir: dataDir,
      log_level: "error", // its JSON log lines would tear the live table apart
      durability: "normal", // the directory is deleted at exit anyway
    },
  });
}

/** Registers the three devices in the gateway's store with fresh random keys. */
function provision(gateway: RunningGateway): Map<NodeName, Uint8Array> {
  const keys = new Map<NodeName, Uint8Array>();
  for (const { name, peers } of NODES) {
    const key = Uint8Array.from(randomBytes(16));
    gateway.store.devices.add({ identity: name, key, jid: jidOf(name), peers: [...peers], dtlsOnly: true });
    keys.set(name, key);
  }
  return keys;
}

/** Starts the relay; the gateway's datagrams towards a node count for the node in `byAddress`. */
function startRelay(
  gateway: RunningGateway,
  settings: DemoSettings,
  byAddress: ReadonlyMap<string, Traffic>,
): Promise<LossyRelay> {
  return LossyRelay.start(gateway.secureAddress as PeerAddress, {
    loss: settings.loss,
    seed: settings.seed,
    onDatagram: (client, direction, bytes) => {
      const traffic = direction === "down" ? byAddress.get(client) : undefined;
      if (traffic) traffic.airDown += bytes;
    },
  });
}

// ---------------------------------------------------------------------------------------------------
// Figures: one snapshot per second, shown as a table, as plain lines, or as JSON at the end.

export interface NodeSummary {
  readonly kind: "node";
  readonly name: string;
  readonly jid: string;
  readonly state: NodeState;
  readonly sent: number;
  readonly received: number;
  readonly air_up_bytes: number;
  readonly air_down_bytes: number;
  readonly air_bytes: number;
  /** The CoAP datagrams inside DTLS: air_bytes less the handshakes and each record's 29 bytes. */
  readonly coap_bytes: number;
  readonly xml_sent_bytes: number;
  readonly xml_received_bytes: number;
  readonly xml_bytes: number;
  /** air_bytes / xml_bytes. */
  readonly air_to_xml: number;
  readonly retransmissions: number;
  readonly mailbox: number;
  readonly mailbox_max: number;
  readonly seen_asleep: number;
  readonly held_received: number;
  readonly wakes: number;
  readonly drained_wakes: number;
  readonly note: string;
}

export interface GatewaySummary {
  readonly kind: "gateway";
  readonly address: string;
  readonly store: string;
  readonly elapsed_s: number;
  readonly sessions: number;
  readonly awake: number;
  readonly asleep: number;
  readonly mailbox: number;
  readonly outbox: number;
  readonly stanzas_in: number;
  readonly telemetry_in: number;
  readonly stanzas_out: number;
  readonly presence_sent: number;
  readonly mailbox_coalesced: number;
  readonly relay: {
    readonly address: string;
    readonly loss: number;
    readonly seed: number;
    readonly up: LossyRelay["stats"]["up"];
    readonly down: LossyRelay["stats"]["down"];
  };
}

export interface Snapshot {
  readonly nodes: readonly NodeSummary[];
  readonly gateway: GatewaySummary;
}

/** Reads the figures now; also records what only a sample can see (asleep, the deepest mailbox). */
function sample(demo: Demo): Snapshot {
  const { service, store } = demo.gateway;
  const nodes = demo.nodes.map((node): NodeSummary => {
    const session = service.session(node.name);
    const state: NodeState = session ? service.state(session) : "unavailable";
    const mailbox = session?.mailbox.length ?? 0;
    const t = node.traffic;
    if (state === "xa") t.seenAsleep++;
    t.mailboxMax = Math.max(t.mailboxMax, mailbox);
    const air = t.airUp + t.airDown;
    const xml = t.xmlSent + t.xmlReceived;
    return {
      kind: "node",
      name: node.name,
      jid: node.jid,
      state,
      sent: t.sent,
      received: t.received,
      air_up_bytes: t.airUp,
      air_down_bytes: t.airDown,
      air_bytes: air,
      coap_bytes: t.coap,
      xml_sent_bytes: t.xmlSent,
      xml_received_bytes: t.xmlReceived,
      xml_bytes: xml,
      air_to_xml: xml > 0 ? Math.round((air / xml) * 1000) / 1000 : 0,
      retransmissions: node.endpoint.messages.stats.retransmissions,
      mailbox,
      mailbox_max: t.mailboxMax,
      seen_asleep: t.seenAsleep,
      held_received: t.held,
      wakes: t.wakes,
      drained_wakes: t.drainedWakes,
      note: t.note,
    };
  });
  const census = service.census();
  const s = service.stats;
  return {
    nodes,
    gateway: {
      kind: "gateway",
      address: demo.gateway.secureAddress ?? demo.gateway.address,
      store: store.path,
      elapsed_s: Math.round((performance.now() - demo.startedAt) / 100) / 10,
      sessions: service.sessions.filter((x) => x.peer !== undefined).length,
      awake: census.awake,
      asleep: census.asleep,
      mailbox: census.mailbox,
      outbox: store.journal.outboxDepth,
      stanzas_in: s.stanzasIn,
      telemetry_in: s.telemetryIn,
      stanzas_out: s.stanzasOut,
      presence_sent: s.presenceSent,
      mailbox_coalesced: s.mailboxCoalesced,
      relay: {
        address: demo.relay.address,
        loss: demo.settings.loss,
        seed: demo.settings.seed,
        up: { ...demo.relay.stats.up },
        down: { ...demo.relay.stats.down },
      },
    },
  };
}

const STATE_LABEL: Readonly<Record<NodeState, string>> = {
  available: "awake",
  xa: "asleep (xa)",
  unavailable: "offline",
};

const fmt = (n: number) => n.toLocaleString("en-US");
const percent = (x: number) => `${Math.round(x * 100)}%`;

function clock(seconds: number): string {
  const s = Math.floor(seconds);
  const two = (n: number) => String(n).padStart(2, "0");
  return `${two(Math.floor(s / 3600))}:${two(Math.floor(s / 60) % 60)}:${two(s % 60)}`;
}

function table(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) =>
        i === 0 || i === 1 || i === cells.length - 1 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!),
      )
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)];
}

function relayLine(g: GatewaySummary): string {
  const { up, down } = g.relay;
  return (
    `relay    ${g.relay.address}, ${percent(g.relay.loss)} loss each way (seed ${g.relay.seed}): ` +
    `up ${fmt(up.received)} datagrams, ${fmt(up.dropped)} dropped · ` +
    `down ${fmt(down.received)}, ${fmt(down.dropped)} dropped`
  );
}

function gatewayLine(g: GatewaySummary): string {
  return (
    `gateway  coaps://${g.address}: ${g.sessions} sessions (${g.awake} awake, ${g.asleep} asleep) · ` +
    `stanzas in ${fmt(g.stanzas_in)} + ${fmt(g.telemetry_in)} telemetry, out ${fmt(g.stanzas_out)} · ` +
    `mailboxes ${g.mailbox} · outbox ${fmt(g.outbox)}`
  );
}

/** The live table (one screen). */
function renderFrame(snapshot: Snapshot, recent: readonly Received[], width: number): string[] {
  const g = snapshot.gateway;
  const rows = snapshot.nodes.map((n) => [
    n.name,
    STATE_LABEL[n.state].padEnd(11), // fixed: the table must not shift when a node falls asleep
    fmt(n.sent),
    fmt(n.received),
    fmt(n.air_bytes),
    fmt(n.xml_bytes),
    n.xml_bytes > 0 ? percent(n.air_to_xml) : "-",
    fmt(n.retransmissions),
    String(n.mailbox),
    n.note,
  ]);
  const clip = (s: string) => (s.length > width ? `${s.slice(0, Math.max(0, width - 1))}…` : s);
  return [
    `cxmpp demo  ${clock(g.elapsed_s)}  three nodes and a gateway over a lossy link  (Ctrl-C to stop)`,
    "",
    ...table(
      ["node", "state", "sent", "recv", "on air B", "as XML B", "air/XML", "retx", "mailbox", ""],
      rows,
    ),
    "",
    gatewayLine(g),
    relayLine(g),
    `store    ${g.store} (removed at exit) · presence sent ${fmt(g.presence_sent)} · coalesced ${fmt(g.mailbox_coalesced)}`,
    "",
    "last stanzas received:",
    ...recent.map((r) => `  ${r.at} ${r.node.padEnd(8)} ← ${r.xml}`),
    "",
    "on air: every UDP payload to and from the node — CoAP, acks, polls, connects, retransmissions;",
    "as XML: the same stanzas as XML text; mailbox: stanzas the gateway holds for the node.",
  ].map(clip);
}

/** One line per node and one for the gateway and the relay, for logs and pipes. */
function plainLines(snapshot: Snapshot): string[] {
  const t = `[${String(Math.round(snapshot.gateway.elapsed_s)).padStart(4)} s]`;
  return [
    ...snapshot.nodes.map(
      (n) =>
        `${t} ${n.name.padEnd(8)} ${STATE_LABEL[n.state].padEnd(11)} sent ${n.sent} recv ${n.received} ` +
        `on air ${fmt(n.air_bytes)} B (CoAP inside DTLS ${fmt(n.coap_bytes)} B) vs ${fmt(n.xml_bytes)} B as XML (${percent(n.air_to_xml)}) ` +
        `retx ${n.retransmissions} mailbox ${n.mailbox}`,
    ),
    `${t} ${gatewayLine(snapshot.gateway)}`,
    `${t} ${relayLine(snapshot.gateway)}`,
  ];
}

// ---------------------------------------------------------------------------------------------------
// The command.

const ANSI = { home: "\x1b[H", clearScreen: "\x1b[2J", clearLine: "\x1b[K", clearBelow: "\x1b[J" };
const CURSOR = { hide: "\x1b[?25l", show: "\x1b[?25h" };

interface View {
  /** Every second. */
  update(snapshot: Snapshot): void;
  /** Once, with the last snapshot, after everything stopped. */
  finish(snapshot: Snapshot): void;
}

/** Live table on a TTY; otherwise plain lines every few seconds (on stderr with --json: stdout is data). */
function createView(demo: Demo): View {
  const live = process.stdout.isTTY === true && !demo.settings.json;
  if (live) {
    process.stdout.write(CURSOR.hide + ANSI.clearScreen);
    const draw = (s: Snapshot) => {
      const lines = renderFrame(s, demo.recent, process.stdout.columns ?? 120);
      process.stdout.write(
        ANSI.home + lines.map((l) => l + ANSI.clearLine).join("\n") + "\n" + ANSI.clearBelow,
      );
    };
    return {
      update: draw,
      finish(s) {
        draw(s);
        process.stdout.write(`${CURSOR.show}stopped; ${dirname(demo.gateway.store.path)} removed\n`);
      },
    };
  }
  const out = demo.settings.json ? process.stderr : process.stdout;
  let ticks = 0;
  return {
    update(s) {
      if (++ticks % PLAIN_EVERY_S === 0) out.write(`${plainLines(s).join("\n")}\n`);
    },
    finish(s) {
      if (!demo.settings.json) {
        out.write(`${plainLines(s).join("\n")}\n`);
        return;
      }
      for (const o of [...s.nodes, s.gateway]) process.stdout.write(`${JSON.stringify(o)}\n`);
    },
  };
}

interface Interrupt {
  /** Whether SIGINT or SIGTERM arrived. */
  readonly fired: () => boolean;
  /** Resolves when one arrives. */
  readonly promise: Promise<void>;
  dispose(): void;
}

/**
 * Catches SIGINT/SIGTERM from the start, so that Ctrl-C while the nodes are still connecting stops them
 * cleanly too and the temporary data directory never outlives the process.
 */
function interrupt(): Interrupt {
  let fired = false;
  let resolve: () => void = () => {};
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  const onSignal = () => {
    fired = true;
    resolve();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  return {
    fired: () => fired,
    promise,
    dispose() {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    },
  };
}

/** Calls `everySecond` until the duration is over or the interrupt fires. */
async function runUntilStopped(
  durationS: number | undefined,
  stop: Interrupt,
  everySecond: () => void,
): Promise<void> {
  const ticker = setInterval(everySecond, 1000);
  let timer: NodeJS.Timeout | undefined;
  const elapsed = new Promise<void>((done) => {
    if (durationS !== undefined) timer = setTimeout(done, durationS * 1000);
  });
  await Promise.race([elapsed, stop.promise]);
  clearInterval(ticker);
  clearTimeout(timer);
}

export async function runDemo(opts: DemoOptions): Promise<number> {
  let settings: DemoSettings;
  try {
    settings = demoSettings(opts);
  } catch (error) {
    if (!(error instanceof DemoOptionError)) throw error;
    process.stderr.write(`cxmpp demo: ${error.message}\n`);
    return 2;
  }
  if (settings.wakeS * 1000 <= AWAKE_WINDOW_MS && !settings.json) {
    process.stderr.write(
      `cxmpp demo: with --wake ${settings.wakeS} the sleepy sensor wakes before the gateway counts it asleep (${AWAKE_WINDOW_MS / 1000} s)\n`,
    );
  }
  const stop = interrupt();
  try {
    return await runStarted(settings, stop);
  } finally {
    stop.dispose();
  }
}

async function runStarted(settings: DemoSettings, stop: Interrupt): Promise<number> {
  let demo: Demo;
  try {
    demo = await startDemo(settings, stop.promise);
  } catch (error) {
    if (stop.fired()) return 0; // Ctrl-C while connecting: everything started is stopped again
    process.stderr.write(`cxmpp demo: ${(error as Error).message}\n`);
    return 1;
  }
  const view = createView(demo);
  let last = sample(demo);
  try {
    await runUntilStopped(settings.durationS, stop, () => {
      last = sample(demo);
      view.update(last);
    });
    last = sample(demo);
  } finally {
    await demo.stop();
  }
  view.finish(last);
  return 0;
}
