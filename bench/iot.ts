/**
 * `cxmpp bench iot`: bytes on air for each IoT flow of a node (issue 12): a XEP-0060 publish, a
 * XEP-0323 readout answered, a XEP-0325 control set, beside the same stanzas as XML and beside MQTT-SN
 * where a like-for-like exists.
 *
 * How it measures, through the real code (no formula for our side):
 * - One gateway in this process on a plain CoAP and a coaps endpoint (bench dtls's `localGateway`:
 *   attachGateway, memory devices), and per flow and mode (plain CoAP, DTLS TLS_PSK_WITH_AES_128_CCM_8)
 *   a fresh node (bench dtls's `benchNode`: NodeClient on a CoapEndpoint on its own UDP socket, DTLS in
 *   between for coaps) with a session of its own. Its device lists the requester and the pubsub service
 *   as peers (as `cxmpp provision add --allow` would), so the session's codec tables start with their
 *   JIDs (docs/FORMAT.md §6). The connect is not counted.
 * - Each flow runs `--repeat` times in that session; "first" is its first run after the connect, "warm"
 *   its last, when the session tables know the shape. Each leg is counted at the node's UDP transport
 *   (below DTLS: the UDP payload on air) and above DTLS (the CoAP messages), datagrams and bytes each way.
 * - Uplink legs: the node sends its stanza(s) reliably (CON), each until the gateway's `h` covers it
 *   (the piggybacked ACK). Downlink legs: the stanza enters the gateway from the network
 *   (`service.deliverTo`, as the federation does), then the node polls once (POST /u → 2.04 carrying
 *   the frame); the node's acknowledgement of it rides on its next uplink.
 * - The stanzas: the pubsub publish is src/core/iot's `publishIq` of the `<fields>` that `cxmpp node
 *   report temperature=21.5°C` sends, to `pubsub.example.org` (routed out of the gateway), answered
 *   by the service's iq result with the item id it chose (Prosody-like: a UUID). The readout
 *   (`<req momentary>`) and the control set (`controlSet`, relay=true) come from a requester on another
 *   domain; the node answers them with `cxmpp node run --state`'s own code (answerIoT: `readoutAccepted`
 *   + `fieldsMessage`, `controlResponse`). Every value is seeded, so plain and DTLS carry the same CoAP.
 * - XML: each stanza as the XMPP side of the gateway carries it (full JIDs, the requester's ids),
 *   serialised inside a jabber:client stream; no TCP, TLS or XEP-0198 bytes.
 * - MQTT-SN v1.2 (their side, by formula): PUBLISH = 7 + payload, PUBACK = 7, QoS 1, a pre-registered
 *   topic id; the payload is the same value as text (`temperature=21.5°C`, `relay=true`). It has no
 *   request/response: the readout request and the iq results have no like-for-like ("—"); the readout
 *   answer is compared with the fields alone as one QoS 1 PUBLISH.
 *
 * Contract of `--json`: ONE JSON object `{flows: [...], record_overhead, mqtt_sn, repeat, seed,
 * elapsed_s}`: per flow `{flow, completed, runs, legs: [...], total: {first, warm}}`, per leg `{leg,
 * direction, first, warm}`, each of those a Cost `{plain: Traffic, ccm_8: Traffic,
 * ccm_8_added_per_datagram, xml_bytes, mqtt_sn_bytes (null: no like-for-like), mqtt_sn_ccm_8_bytes}`,
 * a Traffic `{datagrams_up, datagrams_down, bytes_up, bytes_down, bytes, coap_bytes}`.
 * Exit code 1 when a flow did not complete (a stanza not delivered either way) or a DTLS record added
 * other than 13 + 8 + 8 bytes per datagram (the output is still printed), or on an error; 2 on a bad
 * option.
 */
import { performance } from "node:perf_hooks";
import { attr, el, type XElement } from "../codec/index.js";
import { answerIoT, type NodeState, parseReportArg, reportFields } from "../gateway/cli/node-iot.js";
import type { Device } from "../gateway/devices.js";
import { toXml } from "../gateway/xml/stanza-xml.js";
import { CONTROL, controlSet } from "../src/core/iot/control.js";
import { PUBSUB, publishIq } from "../src/core/iot/pubsub.js";
import { fieldsMessage, replyAttrs, SENSORDATA } from "../src/core/iot/sensordata.js";
import { seededRandom } from "../src/core/seeded-random.js";
import { RECORD_HEADER_BYTES } from "../src/dtls/index.js";
import { fmt, integer, round, runBenchCommand, table } from "./common.js";
import {
  type BenchNode,
  benchNode,
  CCM_8,
  type Counts,
  device,
  type LocalGateway,
  localGateway,
  MQTT_SN,
  minus,
  type Suite,
  until,
} from "./dtls.js";

export interface IotBenchOptions {
  /** Commander hands over strings; numbers are accepted too. */
  readonly repeat?: string | number;
  readonly seed?: string | number;
  readonly json?: boolean;
}

export interface IotBenchConfig {
  /** Runs of each flow per session: the first is "first", the last "warm". */
  readonly repeat: number;
  readonly seed: number;
}

const CLIENT = "jabber:client";
const SERVICE = "pubsub.example.org";
const REQUESTER = "operator@example.org/console";
/** What the node's device allows (`provision add --allow`): the session tables start with them. */
const PEERS = ["operator@example.org", SERVICE];
const T0 = Date.UTC(2025, 5, 1, 12, 0, 0);
const RECORD_BYTES = RECORD_HEADER_BYTES + CCM_8.nonce + CCM_8.tag;

export type FlowName = "pubsub publish" | "readout answer" | "control set";
const FLOWS: readonly FlowName[] = ["pubsub publish", "readout answer", "control set"];

/** UDP payload (below DTLS) and CoAP bytes (above it) of one leg in one mode. */
export interface Traffic {
  readonly datagrams_up: number;
  readonly datagrams_down: number;
  readonly bytes_up: number;
  readonly bytes_down: number;
  /** Both directions. */
  readonly bytes: number;
  /** The CoAP inside, both directions (= bytes without DTLS). */
  readonly coap_bytes: number;
}

export interface Cost {
  readonly plain: Traffic;
  readonly ccm_8: Traffic;
  /** (CCM_8 bytes − plain bytes) / datagrams: the DTLS record, 13 + 8 + 8. */
  readonly ccm_8_added_per_datagram: number;
  readonly xml_bytes: number;
  /** null: MQTT-SN has no like-for-like. */
  readonly mqtt_sn_bytes: number | null;
  readonly mqtt_sn_ccm_8_bytes: number | null;
}

export interface LegReport {
  readonly leg: string;
  readonly direction: "up" | "down";
  /** What the MQTT-SN figure is: the same exchange, the readout's fields alone, or nothing alike. */
  readonly mqtt_sn: "like-for-like" | "fields alone" | "none";
  readonly first: Cost;
  readonly warm: Cost;
}

export interface FlowReport {
  readonly flow: FlowName;
  /** Every run, in both modes, delivered every stanza of the flow both ways. */
  readonly completed: boolean;
  readonly runs: number;
  readonly legs: readonly LegReport[];
  readonly total: { readonly first: Cost; readonly warm: Cost };
}

export interface IotBenchResult {
  readonly flows: readonly FlowReport[];
  readonly record_overhead: {
    readonly suite: string;
    readonly header: number;
    readonly nonce: number;
    readonly tag: number;
    readonly expected: number;
  };
  readonly mqtt_sn: { readonly publish_header_bytes: number; readonly puback_bytes: number };
  readonly repeat: number;
  readonly seed: number;
  readonly elapsed_s: number;
}

// ---------------------------------------------------------------------------------------------------
// One node running one flow.

/** One leg of one run in one mode: what crossed the node link, and its stanzas on the XMPP side. */
interface LegSample {
  readonly wire: Counts;
  readonly coap: Counts;
  readonly xml: number;
  /** MQTT-SN payload bytes of the like-for-like PUBLISH, or null. */
  readonly mqttPayload: number | null;
}

interface FlowRun {
  readonly legs: readonly LegSample[];
  readonly completed: boolean;
}

/** A node of the bench with its device, what it received and what the gateway routed out for it. */
interface Harness {
  readonly node: BenchNode;
  readonly device: Device;
  readonly gw: LocalGateway;
  readonly received: XElement[];
  readonly outbound: XElement[];
  readonly random: () => number;
}

const xmlBytes = (stanzas: readonly XElement[]) =>
  stanzas.reduce((n, s) => n + Buffer.byteLength(toXml(s, CLIENT)), 0);
const hex8 = (random: () => number) =>
  Array.from({ length: 8 }, () => Math.floor(random() * 16).toString(16)).join("");
const uuid = (random: () => number) =>
  `${hex8(random)}-${hex8(random).slice(0, 4)}-4${hex8(random).slice(0, 3)}-a${hex8(random).slice(0, 3)}-${hex8(random)}${hex8(random).slice(0, 4)}`;

/** Counts what crosses the node link while `body` runs. */
async function counted<T>(
  h: Harness,
  body: () => Promise<T>,
): Promise<{ wire: Counts; coap: Counts; value: T }> {
  const wire = h.node.wire.snapshot();
  const coap = h.node.coap.snapshot();
  const value = await body();
  return { wire: minus(h.node.wire.counts, wire), coap: minus(h.node.coap.counts, coap), value };
}

/** Uplink: the node sends `stanzas` reliably; the gateway routes them out (returned, as routed). */
async function uplink(
  h: Harness,
  stanzas: readonly XElement[],
  mqttPayload: number | null,
): Promise<{ sample: LegSample; routed: XElement[] }> {
  const before = h.outbound.length;
  const c = await counted(h, () => Promise.all(stanzas.map((s) => h.node.client.send(s))));
  await until(() => h.outbound.length - before >= stanzas.length, 2_000);
  const routed = h.outbound.slice(before);
  return { sample: { wire: c.wire, coap: c.coap, xml: xmlBytes(routed), mqttPayload }, routed };
}

/** Downlink: `stanza` comes from the network for the node, which polls once for it. */
async function downlink(
  h: Harness,
  stanza: XElement,
  mqttPayload: number | null,
): Promise<{ sample: LegSample; got: XElement | undefined }> {
  const before = h.received.length;
  const delivery = h.gw.service.deliverTo(h.device, stanza);
  const c = await counted(h, () => h.node.client.poll());
  const got = delivery === "refused" || delivery === "full" ? undefined : h.received[before];
  return { sample: { wire: c.wire, coap: c.coap, xml: xmlBytes([stanza]), mqttPayload }, got };
}

const isIq = (s: XElement | undefined, type: string, id?: string) =>
  s?.name === "iq" && attr(s, "type") === type && (id === undefined || attr(s, "id") === id);
const has = (s: XElement | undefined, ns: string, name: string) =>
  s?.children.some((c) => typeof c !== "string" && c.ns === ns && c.name === name) ?? false;

/** What the node knows (`cxmpp node run --state`): a temperature it reads and a relay it drives. */
function nodeState(temperature: string): NodeState {
  return {
    fields: {
      temperature: { value: temperature, unit: "°C", type: "numeric", writable: false, flags: ["momentary"] },
      relay: { value: "false", type: "boolean", writable: true, flags: ["status"] },
    },
  };
}

const temperature = (random: () => number) => (15 + random() * 15).toFixed(1);

/** XEP-0060 publish of one reading to the pubsub service, and the service's result back down. */
async function publishFlow(h: Harness, i: number): Promise<FlowRun> {
  const reading = `temperature=${temperature(h.random)}°C`;
  const at = new Date(T0 + i * 60_000).toISOString();
  const fields = fieldsMessage({}, "0", reportFields([parseReportArg(reading)], at), true)
    .children[0] as XElement;
  const jid = h.device.jid;
  const iq = publishIq({ to: SERVICE, id: `pub-${hex8(h.random)}` }, jid, fields);
  const up = await uplink(h, [iq], Buffer.byteLength(reading));
  const routed = up.routed[0];
  // The service's answer (XEP-0060 §7.1.2), with the id it gave the item, as Prosody does.
  const result = el(
    CLIENT,
    "iq",
    routed ? replyAttrs(routed, "result") : { type: "result", id: attr(iq, "id")!, from: SERVICE },
    el(
      PUBSUB,
      "pubsub",
      {},
      el(PUBSUB, "publish", { node: jid }, el(PUBSUB, "item", { id: uuid(h.random) })),
    ),
  );
  const down = await downlink(h, result, null);
  return {
    legs: [up.sample, down.sample],
    completed:
      isIq(routed, "set") && attr(routed!, "to") === SERVICE && isIq(down.got, "result", attr(iq, "id")),
  };
}

/** XEP-0323 readout: the request down, the node's `<accepted>` and `<fields>` up. */
async function readoutFlow(h: Harness, i: number): Promise<FlowRun> {
  const id = `req-${hex8(h.random)}`;
  const seqnr = String(i + 1);
  const request = el(
    CLIENT,
    "iq",
    { type: "get", id, from: REQUESTER, to: `${h.node.client.jid}` },
    el(SENSORDATA, "req", { seqnr, momentary: "true" }),
  );
  const value = temperature(h.random);
  const down = await downlink(h, request, null);
  const answer = down.got && answerIoT(down.got, nodeState(value), new Date(T0 + i * 60_000));
  const up = await uplink(h, answer?.send ?? [], Buffer.byteLength(`temperature=${value}°C`));
  const [accepted, fields] = up.routed;
  return {
    legs: [down.sample, up.sample],
    completed:
      answer?.send.length === 2 &&
      isIq(accepted, "result", id) &&
      attr(accepted!, "to") === REQUESTER &&
      fields?.name === "message" &&
      has(fields, SENSORDATA, "fields"),
  };
}

/** XEP-0325 control: the set down, the node's `<setResponse>` up. */
async function controlFlow(h: Harness, i: number): Promise<FlowRun> {
  const id = `ctl-${hex8(h.random)}`;
  const values = [{ type: "boolean", name: "relay", value: "true" }];
  const set = controlSet({ id, from: REQUESTER, to: `${h.node.client.jid}` }, values);
  const command = Buffer.byteLength("relay=true");
  const down = await downlink(h, set, command);
  const answer = down.got && answerIoT(down.got, nodeState(temperature(h.random)), new Date(T0 + i * 60_000));
  const up = await uplink(h, answer?.send ?? [], null);
  const response = up.routed[0];
  return {
    legs: [down.sample, up.sample],
    completed:
      answer?.send.length === 1 && isIq(response, "result", id) && has(response, CONTROL, "setResponse"),
  };
}

const RUNNERS: Readonly<Record<FlowName, (h: Harness, i: number) => Promise<FlowRun>>> = {
  "pubsub publish": publishFlow,
  "readout answer": readoutFlow,
  "control set": controlFlow,
};

const LEGS: Readonly<Record<FlowName, readonly Omit<LegReport, "first" | "warm">[]>> = {
  "pubsub publish": [
    { leg: "publish iq (node → service)", direction: "up", mqtt_sn: "like-for-like" },
    { leg: "iq result (service → node)", direction: "down", mqtt_sn: "none" },
  ],
  "readout answer": [
    { leg: "req iq get (requester → node)", direction: "down", mqtt_sn: "none" },
    { leg: "accepted + fields (node → requester)", direction: "up", mqtt_sn: "fields alone" },
  ],
  "control set": [
    { leg: "set iq (requester → node)", direction: "down", mqtt_sn: "like-for-like" },
    { leg: "setResponse (node → requester)", direction: "up", mqtt_sn: "none" },
  ],
};

/** One flow `repeat` times in a fresh session of a fresh node: every run's legs. */
async function runFlow(
  gw: LocalGateway,
  flow: FlowName,
  mode: Suite | undefined,
  dev: Device,
  outbound: Map<string, XElement[]>,
  config: IotBenchConfig,
): Promise<FlowRun[]> {
  const node = await benchNode(gw, mode, dev);
  const received: XElement[] = [];
  const routed: XElement[] = [];
  outbound.set(dev.jid, routed);
  node.client.onStanza((s) => received.push(s));
  // The same seed in both modes: the same stanzas, so the same CoAP inside.
  const h: Harness = { node, device: dev, gw, received, outbound: routed, random: seededRandom(config.seed) };
  const runs: FlowRun[] = [];
  try {
    await node.client.connect();
    for (let i = 0; i < config.repeat; i++) runs.push(await RUNNERS[flow](h, i));
  } finally {
    node.close();
    outbound.delete(dev.jid);
  }
  return runs;
}

// ---------------------------------------------------------------------------------------------------
// Figures.

function traffic(s: LegSample): Traffic {
  return {
    datagrams_up: s.wire.up.datagrams,
    datagrams_down: s.wire.down.datagrams,
    bytes_up: s.wire.up.bytes,
    bytes_down: s.wire.down.bytes,
    bytes: s.wire.up.bytes + s.wire.down.bytes,
    coap_bytes: s.coap.up.bytes + s.coap.down.bytes,
  };
}

function cost(plain: LegSample, ccm: LegSample): Cost {
  const p = traffic(plain);
  const c = traffic(ccm);
  const datagrams = c.datagrams_up + c.datagrams_down;
  const mqtt = plain.mqttPayload === null ? null : MQTT_SN.publishHeader + plain.mqttPayload + MQTT_SN.puback;
  return {
    plain: p,
    ccm_8: c,
    ccm_8_added_per_datagram: datagrams > 0 ? round((c.bytes - p.bytes) / datagrams, 2) : 0,
    xml_bytes: plain.xml,
    mqtt_sn_bytes: mqtt,
    mqtt_sn_ccm_8_bytes: mqtt === null ? null : mqtt + 2 * RECORD_BYTES,
  };
}

function sumTraffic(xs: readonly Traffic[]): Traffic {
  const add = (k: keyof Traffic) => xs.reduce((n, x) => n + x[k], 0);
  return {
    datagrams_up: add("datagrams_up"),
    datagrams_down: add("datagrams_down"),
    bytes_up: add("bytes_up"),
    bytes_down: add("bytes_down"),
    bytes: add("bytes"),
    coap_bytes: add("coap_bytes"),
  };
}

function sumCost(xs: readonly Cost[]): Cost {
  const plain = sumTraffic(xs.map((x) => x.plain));
  const ccm = sumTraffic(xs.map((x) => x.ccm_8));
  const mqtt = xs.filter((x) => x.mqtt_sn_bytes !== null);
  const datagrams = ccm.datagrams_up + ccm.datagrams_down;
  return {
    plain,
    ccm_8: ccm,
    ccm_8_added_per_datagram: datagrams > 0 ? round((ccm.bytes - plain.bytes) / datagrams, 2) : 0,
    xml_bytes: xs.reduce((n, x) => n + x.xml_bytes, 0),
    mqtt_sn_bytes: mqtt.length === 0 ? null : mqtt.reduce((n, x) => n + x.mqtt_sn_bytes!, 0),
    mqtt_sn_ccm_8_bytes: mqtt.length === 0 ? null : mqtt.reduce((n, x) => n + x.mqtt_sn_ccm_8_bytes!, 0),
  };
}

export async function runIot(
  config: IotBenchConfig,
  progress: (line: string) => void = () => {},
): Promise<IotBenchResult> {
  const t0 = performance.now();
  const modes: readonly (Suite | undefined)[] = [undefined, CCM_8];
  // `n00`…`n12`: equal lengths, so both modes carry the same bytes.
  const identity = (m: number, f: number) => `n${m}${f}`;
  const devices = modes.flatMap((_, m) => FLOWS.map((_, f) => device(identity(m, f), config.seed, PEERS)));
  const outbound = new Map<string, XElement[]>();
  const gw = await localGateway(devices, (stanza) => {
    if (stanza.name === "presence") return;
    outbound.get((attr(stanza, "from") ?? "").split("/")[0]!)?.push(stanza);
  });
  const flows: FlowReport[] = [];
  try {
    for (const [f, flow] of FLOWS.entries()) {
      progress(`  ${flow}, plain and DTLS CCM_8, ${config.repeat} runs each…`);
      const [plain, ccm] = [
        await runFlow(gw, flow, modes[0], devices[f]!, outbound, config),
        await runFlow(gw, flow, modes[1], devices[FLOWS.length + f]!, outbound, config),
      ];
      const at = (runs: readonly FlowRun[], i: number) => runs[i]?.legs ?? [];
      const legs = LEGS[flow].map((l, k): LegReport => {
        const pick = (i: number) => {
          const p = at(plain, i)[k];
          const c = at(ccm, i)[k];
          return p && c ? cost(p, c) : cost(EMPTY, EMPTY);
        };
        return { ...l, first: pick(0), warm: pick(config.repeat - 1) };
      });
      flows.push({
        flow,
        completed:
          plain.length === config.repeat &&
          ccm.length === config.repeat &&
          [...plain, ...ccm].every((r) => r.completed),
        runs: config.repeat,
        legs,
        total: { first: sumCost(legs.map((l) => l.first)), warm: sumCost(legs.map((l) => l.warm)) },
      });
    }
  } finally {
    await gw.close();
  }
  return {
    flows,
    record_overhead: {
      suite: CCM_8.name,
      header: RECORD_HEADER_BYTES,
      nonce: CCM_8.nonce,
      tag: CCM_8.tag,
      expected: RECORD_BYTES,
    },
    mqtt_sn: { publish_header_bytes: MQTT_SN.publishHeader, puback_bytes: MQTT_SN.puback },
    repeat: config.repeat,
    seed: config.seed,
    elapsed_s: round((performance.now() - t0) / 1000, 1),
  };
}

const NONE: Counts = { up: { datagrams: 0, bytes: 0 }, down: { datagrams: 0, bytes: 0 } };
const EMPTY: LegSample = { wire: NONE, coap: NONE, xml: 0, mqttPayload: null };

// ---------------------------------------------------------------------------------------------------
// Output.

/** What broke the run (empty: exit code 0). */
export function failures(r: IotBenchResult): string[] {
  const problems: string[] = [];
  for (const f of r.flows) {
    if (!f.completed) problems.push(`${f.flow}: a stanza was not delivered`);
    for (const l of f.legs)
      for (const [when, c] of [
        ["first", l.first],
        ["warm", l.warm],
      ] as const)
        if (
          c.ccm_8_added_per_datagram !== r.record_overhead.expected ||
          c.ccm_8.datagrams_up !== c.plain.datagrams_up ||
          c.ccm_8.datagrams_down !== c.plain.datagrams_down
        )
          problems.push(
            `${f.flow}, ${l.leg}, ${when}: DTLS added ${c.ccm_8_added_per_datagram} B per datagram, not ${r.record_overhead.expected}`,
          );
  }
  return problems;
}

const arrows = (up: number, down: number) => `${up} / ${down}`;

function rows(label: string, dir: string, c: { first: Cost; warm: Cost }, mark = ""): string[][] {
  return (["first", "warm"] as const).map((when, i) => {
    const x = c[when];
    return [
      i === 0 ? label : "",
      i === 0 ? dir : "",
      when,
      arrows(x.plain.datagrams_up, x.plain.datagrams_down),
      arrows(x.plain.bytes_up, x.plain.bytes_down),
      fmt(x.plain.bytes),
      fmt(x.ccm_8.bytes),
      fmt(x.xml_bytes),
      `${round(x.xml_bytes / Math.max(1, x.plain.bytes), 1)}×`,
      x.mqtt_sn_bytes === null ? "—" : `${fmt(x.mqtt_sn_bytes)}${mark}`,
    ];
  });
}

export function formatIot(r: IotBenchResult): string {
  const body: string[][] = [];
  for (const f of r.flows) {
    const mark = (l: LegReport) => (l.mqtt_sn === "fields alone" ? "†" : "");
    for (const l of f.legs)
      body.push(...rows(`${f.flow}: ${l.leg}`, l.direction === "up" ? "↑" : "↓", l, mark(l)));
    const label = `${f.flow}: total${f.completed ? "" : " (NOT COMPLETED)"}`;
    body.push(...rows(label, "↑↓", f.total, f.legs.map(mark).join("")));
  }
  const o = r.record_overhead;
  return `${[
    `cxmpp bench iot — bytes on air per IoT flow on the node link (seed ${r.seed}, ${r.repeat} runs per flow and mode, ${r.elapsed_s} s)`,
    "",
    table(
      [
        "flow: leg",
        "dir",
        "run",
        "datagrams ↑/↓",
        "plain B ↑/↓",
        "plain B",
        "CCM_8 B",
        "XML B",
        "XML/plain",
        "MQTT-SN B",
      ],
      body,
    ),
    "",
    "Method",
    `  One gateway in this process (plain CoAP and coaps endpoints, memory devices); per flow and mode a fresh node and session (the connect not counted), the device allowing ${PEERS.join(" and ")}. "first" = the flow's first run after the connect, "warm" = its run #${r.repeat}, when the session tables know the shape.`,
    "  Bytes = UDP payload at the node's socket, both directions (CoAP header, token, options, cxmpp header, frames; no IP/UDP headers). Uplink: CON until the gateway's h covers it (piggybacked ACK); two stanzas go as two exchanges (the node's pump). Downlink: the stanza enters the gateway from the network (service.deliverTo), then the node polls once (POST /u ↑, 2.04 with the frame ↓).",
    `  CCM_8 = the same legs over DTLS TLS_PSK_WITH_AES_128_CCM_8 (the same seeded stanzas): +${o.expected} B per datagram (${o.header} header + ${o.nonce} explicit nonce + ${o.tag} tag), checked on every leg.`,
    "  XML = the stanzas as the XMPP side of the gateway carries them (full JIDs, the requester's ids), in a jabber:client stream; no TCP/TLS/XEP-0198 bytes.",
    `  MQTT-SN v1.2 (formula) = PUBLISH ${MQTT_SN.publishHeader} + payload, + PUBACK ${MQTT_SN.puback} (QoS 1, pre-registered topic id; payload "temperature=21.5°C" or "relay=true" as text). No request/response in MQTT-SN: "—" = no like-for-like (the iq results, the readout request); † = the readout answer compared with its fields alone as one QoS 1 PUBLISH (no like-for-like for the request/response). In CCM_8 records it would add ${2 * o.expected} B per PUBLISH + PUBACK (--json: mqtt_sn_ccm_8_bytes).`,
  ].join("\n")}\n`;
}

// ---------------------------------------------------------------------------------------------------
// Entry point.

function parse(opts: IotBenchOptions): IotBenchConfig {
  return {
    repeat: integer("repeat", opts.repeat, 10, 2, 1_000),
    seed: integer("seed", opts.seed, 1, 0, 2 ** 31 - 1),
  };
}

/** Entry point of `cxmpp bench iot`; returns the exit code and never throws. */
export function runIotBench(opts: IotBenchOptions): Promise<number> {
  return runBenchCommand(
    "iot",
    () => parse(opts),
    async (config) => {
      const result = await runIot(config, (line) => {
        if (!opts.json) process.stderr.write(`${line}\n`);
      });
      process.stdout.write(opts.json ? `${JSON.stringify(result)}\n` : formatIot(result));
      const problems = failures(result);
      if (problems.length === 0) return 0;
      process.stderr.write(`cxmpp bench iot: ${problems.join("; ")}\n`);
      return 1;
    },
    { usage: 2, failure: () => 1 },
  );
}
