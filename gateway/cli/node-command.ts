/** `cxmpp node run|send|publish|report`: a simulated node on real UDP, from a device file. */
import { randomUUID } from "node:crypto";
import { attr, el, type XElement } from "../../codec/index.js";
import { type Logger, NodeClient, peerAddress } from "../../src/core/index.js";
import { publishedItemId, publishIq } from "../../src/core/iot/pubsub.js";
import { fieldsMessage, type SensorField } from "../../src/core/iot/sensordata.js";
import {
  consoleLogger,
  createDtlsClientEndpoint,
  createUdpEndpoint,
  nodeMac,
  type UdpEndpoint,
  type UdpEndpointOptions,
  within,
} from "../../src/node/index.js";
import { type DeviceFile, parseGatewayUri, readDeviceFile } from "../data-dir.js";
import { packageVersion } from "../version.js";
import { StanzaError } from "../xml/stanza-error.js";
import { parseXml, toXml } from "../xml/stanza-xml.js";
import {
  answerIoT,
  type NodeState,
  parseReportArg,
  readStateFile,
  reportFields,
  writeStateFile,
} from "./node-iot.js";

/** A node made from a device file: the client, its UDP socket and what the file says. */
export interface DeviceNode {
  readonly device: DeviceFile;
  readonly client: NodeClient;
  readonly udp: UdpEndpoint;
}

export interface DeviceNodeOptions {
  /** The node's logger, made once the file says who the node is. */
  readonly logger?: (device: DeviceFile) => Logger;
  /** Seconds the node sleeps between wake-ups: a sleepy node. */
  readonly wake?: number;
  /** Endpoint settings beside the host, which follows the gateway's address (`hostFor`). */
  readonly udp?: Omit<UdpEndpointOptions, "host" | "logger">;
}

/**
 * A NodeClient for the device in `deviceFile` (CBOR or its JSON view) on a UDP socket of its own, not
 * yet connected: `cxmpp node`, `cxmpp bench federation` and the federation test kit all make their nodes
 * here, so they read the file and derive the key alike.
 */
export async function nodeFromDevice(
  deviceFile: string,
  options: DeviceNodeOptions = {},
): Promise<DeviceNode> {
  const device = readDeviceFile(deviceFile);
  const logger = options.logger?.(device);
  const uri = parseGatewayUri(device.gateway);
  const gateway = peerAddress(uri.host, uri.port);
  const key = Uint8Array.from(Buffer.from(device.key_hex, "hex"));
  const at = { ...options.udp, host: hostFor(uri.host), ...(logger ? { logger } : {}) };
  // coaps: the DTLS handshake proves the key (PSK identity = device identity); no connect proof follows.
  const udp =
    uri.scheme === "coaps"
      ? await createDtlsClientEndpoint({
          ...at,
          dtls: { server: gateway, identity: device.identity, psk: key },
        })
      : await createUdpEndpoint(at);
  const client = new NodeClient({
    endpoint: udp.endpoint,
    gateway,
    identity: device.identity,
    key,
    mac: nodeMac,
    ...(logger ? { logger } : {}),
    ...(options.wake !== undefined ? { wake: options.wake } : {}),
  });
  return { device, client, udp };
}

/**
 * `nodeFromDevice`, connected; its socket is closed again when the connect fails. `onStanza` is
 * subscribed before connecting, so that nothing the connect's response carries is missed.
 */
export async function connectDeviceNode(
  deviceFile: string,
  options: DeviceNodeOptions & { readonly onStanza?: (stanza: XElement) => void } = {},
): Promise<DeviceNode> {
  const node = await nodeFromDevice(deviceFile, options);
  if (options.onStanza) node.client.onStanza(options.onStanza);
  try {
    await node.client.connect();
  } catch (error) {
    await node.udp.close();
    throw error;
  }
  return node;
}

function connectNode(
  deviceFile: string,
  logLevel: string,
  wake?: number,
  onStanza?: (stanza: XElement) => void,
): Promise<DeviceNode> {
  return connectDeviceNode(deviceFile, {
    ...(onStanza ? { onStanza } : {}),
    logger: (device) =>
      consoleLogger(logLevel as "info", { base: { component: "node", identity: device.identity } }),
    ...(wake !== undefined ? { wake } : {}),
    udp: { exchange: { tokenLength: 1 } }, // one outstanding request at a time: a 1-byte token is enough
  });
}

const VERSION = "jabber:iq:version";

/**
 * The node's answer to an iq request: XEP-0092 software version; anything else service-unavailable
 * (RFC 6120 §8.3.3.19). The gateway sends it to the requester with the request's original id.
 */
export function answerIq(stanza: XElement): XElement | undefined {
  const type = attr(stanza, "type");
  if (stanza.name !== "iq" || (type !== "get" && type !== "set")) return undefined;
  const id = attr(stanza, "id") ?? "";
  const to = attr(stanza, "from");
  const query = stanza.children.find((c): c is XElement => typeof c !== "string");
  const base = { id, ...(to ? { to } : {}) };
  if (type === "get" && query?.ns === VERSION && query.name === "query") {
    return el(
      "jabber:client",
      "iq",
      { ...base, type: "result" },
      el(
        VERSION,
        "query",
        {},
        el(VERSION, "name", {}, "cxmpp-node"),
        el(VERSION, "version", {}, packageVersion()),
      ),
    );
  }
  return el(
    "jabber:client",
    "iq",
    { ...base, type: "error" },
    new StanzaError("service-unavailable").toElement("jabber:client"),
  );
}

/** Bind next to the gateway: loopback for a loopback gateway, so no traffic leaves the machine. */
function hostFor(host: string): string {
  if (host.startsWith("127.")) return "127.0.0.1";
  if (host === "::1") return "::1";
  return host.includes(":") ? "::" : "0.0.0.0";
}

export interface NodeSendOptions {
  readonly device: string;
  readonly to?: string;
  readonly body?: string;
  /** A whole stanza as XML text, instead of --to/--body. */
  readonly xml?: string;
  readonly timeout?: string;
  readonly logLevel?: string;
}

/** A node connected for one command: `incoming` sees every stanza the gateway delivers to it. */
interface OneShot {
  readonly node: DeviceNode;
  readonly incoming: Set<(stanza: XElement) => void>;
}

/**
 * Connects, runs `body`, closes: the frame of `node send`, `node publish` and `node report`. Every
 * failure is one line on stderr prefixed with the command, and exit 1.
 */
async function oneShot(
  command: string,
  opts: { readonly device: string; readonly logLevel?: string },
  body: (shot: OneShot) => Promise<number>,
): Promise<number> {
  const incoming = new Set<(stanza: XElement) => void>();
  let node: DeviceNode;
  try {
    node = await connectNode(opts.device, opts.logLevel ?? "warn", undefined, (stanza) => {
      for (const listener of incoming) listener(stanza);
    });
  } catch (error) {
    process.stderr.write(`cxmpp node ${command}: ${(error as Error).message}\n`);
    return 1;
  }
  try {
    return await body({ node, incoming });
  } catch (error) {
    process.stderr.write(`cxmpp node ${command}: ${(error as Error).message}\n`);
    return 1;
  } finally {
    node.client.close();
    await node.udp.close();
  }
}

function timeoutMsOf(timeout: string | undefined): number {
  const ms = Number(timeout ?? 30) * 1000;
  if (!Number.isFinite(ms) || ms <= 0) throw new UsageError("--timeout must be a positive number of seconds");
  return ms;
}

/** A wrong command line: exit 2, as commander does for its own checks. */
class UsageError extends Error {}

/** Sends `stanza` and waits until the gateway has stored it (its h covers it). */
async function sendAcknowledged(shot: OneShot, stanza: XElement, timeoutMs: number): Promise<void> {
  await within(shot.node.client.send(stanza), timeoutMs, "no acknowledgement");
}

/**
 * Sends an iq get/set and resolves with its result or error (matched by id, RFC 6120 §8.2.3): the
 * reply comes back as downlink, so the node polls for it (every 200 ms) until it is there.
 */
async function exchangeIq(shot: OneShot, iq: XElement, timeoutMs: number): Promise<XElement> {
  const id = attr(iq, "id") ?? "";
  let poller: NodeJS.Timeout | undefined;
  let listener: ((stanza: XElement) => void) | undefined;
  const reply = new Promise<XElement>((resolve) => {
    listener = (stanza) => {
      const type = attr(stanza, "type");
      if (stanza.name === "iq" && attr(stanza, "id") === id && (type === "result" || type === "error"))
        resolve(stanza);
    };
    shot.incoming.add(listener);
  });
  const started = Date.now();
  try {
    await sendAcknowledged(shot, iq, timeoutMs);
    let polling = false;
    poller = setInterval(() => {
      if (polling) return;
      polling = true;
      shot.node.client.poll().then(
        () => (polling = false),
        () => (polling = false),
      );
    }, 200);
    return await within(reply, Math.max(1, timeoutMs - (Date.now() - started)), `no reply to iq ${id}`);
  } finally {
    clearInterval(poller);
    if (listener) shot.incoming.delete(listener);
  }
}

/** An iq's id, added when it has none (a reply is matched by it). */
function withId(stanza: XElement): XElement {
  if (stanza.name !== "iq" || attr(stanza, "id") !== undefined) return stanza;
  return {
    ...stanza,
    attrs: [...stanza.attrs, { ns: "", name: "id", value: `cx-${randomUUID().slice(0, 8)}` }],
  };
}

/** The condition of an error stanza (RFC 6120 §8.3.3), with its text when it has one. */
function errorCondition(stanza: XElement): string {
  const error = StanzaError.fromStanza(stanza);
  return error ? error.message : "error (no defined condition)";
}

/**
 * `node send`: one message (--to, --body) or any stanza (--xml). Exit 0 once the gateway acknowledged
 * it; an iq get/set waits for its reply, prints it as XML and exits 0 for a result, 1 for an error (its
 * condition on stderr) or no reply in time; 2 for XML that does not parse or is not a stanza.
 */
export async function runNodeSend(opts: NodeSendOptions): Promise<number> {
  let stanza: XElement;
  let timeoutMs: number;
  try {
    timeoutMs = timeoutMsOf(opts.timeout);
    stanza = stanzaToSend(opts);
  } catch (error) {
    process.stderr.write(`cxmpp node send: ${(error as Error).message}\n`);
    return 2;
  }
  const type = attr(stanza, "type");
  const isRequest = stanza.name === "iq" && (type === "get" || type === "set");
  return oneShot("send", opts, async (shot) => {
    if (!isRequest) {
      await sendAcknowledged(shot, stanza, timeoutMs);
      process.stdout.write(`acknowledged: ${toXml(stanza)}\n`);
      return 0;
    }
    const reply = await exchangeIq(shot, stanza, timeoutMs);
    process.stdout.write(`${toXml(reply)}\n`);
    if (attr(reply, "type") === "result") return 0;
    process.stderr.write(`cxmpp node send: ${errorCondition(reply)}\n`);
    return 1;
  });
}

const STANZA_NAMES = ["message", "presence", "iq"];

function stanzaToSend(opts: NodeSendOptions): XElement {
  if (opts.xml !== undefined) {
    if (opts.to !== undefined || opts.body !== undefined)
      throw new UsageError("give either --xml or --to with --body, not both");
    let stanza: XElement;
    try {
      stanza = parseXml(opts.xml);
    } catch (error) {
      throw new UsageError(`--xml: ${(error as Error).message}`);
    }
    if (stanza.ns !== "jabber:client" || !STANZA_NAMES.includes(stanza.name))
      throw new UsageError(
        `--xml: not a stanza: {${stanza.ns}}${stanza.name} (message, presence or iq in jabber:client)`,
      );
    return withId(stanza);
  }
  if (opts.to === undefined || opts.body === undefined)
    throw new UsageError("give --to with --body, or --xml");
  return el(
    "jabber:client",
    "message",
    { to: opts.to, type: "chat" },
    el("jabber:client", "body", {}, opts.body),
  );
}

export interface NodePublishOptions {
  readonly device: string;
  readonly service: string;
  readonly node: string;
  readonly payload: string;
  readonly itemId?: string;
  readonly timeout?: string;
  readonly logLevel?: string;
}

/**
 * `node publish`: one XEP-0060 publish (§7.1.1) of `--payload` to `--node` at `--service`. Exit 0 when
 * the service returned its result (the item id on stdout), 1 with the error condition on stderr
 * otherwise, 2 when the payload does not parse.
 */
export async function runNodePublish(opts: NodePublishOptions): Promise<number> {
  let payload: XElement;
  let timeoutMs: number;
  try {
    timeoutMs = timeoutMsOf(opts.timeout);
    payload = parseXml(opts.payload);
  } catch (error) {
    process.stderr.write(`cxmpp node publish: --payload: ${(error as Error).message}\n`);
    return 2;
  }
  const iq = publishIq(
    { to: opts.service, id: `pub-${randomUUID().slice(0, 8)}` },
    opts.node,
    payload,
    opts.itemId,
  );
  return oneShot("publish", opts, async (shot) => {
    const reply = await exchangeIq(shot, iq, timeoutMs);
    if (attr(reply, "type") !== "result") {
      process.stderr.write(`cxmpp node publish: ${errorCondition(reply)}\n`);
      return 1;
    }
    // §7.1.2: the service may leave the item out when the publisher chose the id.
    process.stdout.write(`${publishedItemId(reply) ?? opts.itemId ?? ""}\n`);
    return 0;
  });
}

export interface NodeReportOptions {
  readonly device: string;
  readonly to: string;
  readonly timeout?: string;
  readonly logLevel?: string;
}

/**
 * `node report`: one XEP-0323 `<fields>` message (momentary, timestamped now) from `name=value[unit]`
 * arguments (`parseReportArg`); its seqnr is 0, answering no request. Exit 0 once acknowledged, 2 for
 * an argument that is not name=value.
 */
export async function runNodeReport(opts: NodeReportOptions, args: readonly string[]): Promise<number> {
  let fields: SensorField[];
  let timeoutMs: number;
  try {
    timeoutMs = timeoutMsOf(opts.timeout);
    if (args.length === 0) throw new Error("give at least one name=value[unit]");
    fields = reportFields(args.map(parseReportArg), new Date().toISOString());
  } catch (error) {
    process.stderr.write(`cxmpp node report: ${(error as Error).message}\n`);
    return 2;
  }
  const stanza = fieldsMessage({ to: opts.to }, "0", fields, true);
  return oneShot("report", opts, async (shot) => {
    await sendAcknowledged(shot, stanza, timeoutMs);
    process.stdout.write(`acknowledged: ${toXml(stanza)}\n`);
    return 0;
  });
}

export interface NodeRunOptions {
  readonly device: string;
  readonly poll?: string;
  readonly wake?: string;
  /** A JSON state file (gateway/cli/node-iot.ts `NodeState`): answer XEP-0323/0325 from it. */
  readonly state?: string;
  readonly logLevel?: string;
}

/**
 * Connects and prints every stanza it receives as one line of XML on stdout, until SIGINT/SIGTERM.
 * With --wake N it is a sleepy node: it wakes every N seconds (one poll drains its mailbox); without, it
 * polls every --poll seconds. It answers iq requests as a node must (RFC 6120 §8.2.3).
 *
 * With --state FILE it is a sensor/actuator: XEP-0323 readouts are answered from the file and XEP-0325
 * control sets change it (`answerIoT`; the format is `NodeState`'s), one line on stderr per answer. A
 * sleepy node answers what the gateway kept for it while it slept at its wake-up, when it gets it.
 */
export async function runNodeRun(opts: NodeRunOptions): Promise<number> {
  const pollMs = Number(opts.poll ?? opts.wake ?? 2) * 1000;
  if (!Number.isFinite(pollMs) || pollMs <= 0) {
    process.stderr.write("cxmpp node run: --poll must be a positive number of seconds\n");
    return 2;
  }
  const stateFile = opts.state;
  if (stateFile !== undefined) {
    try {
      readStateFile(stateFile);
    } catch (error) {
      process.stderr.write(`cxmpp node run: --state ${stateFile}: ${(error as Error).message}\n`);
      return 2;
    }
  }
  let connected: DeviceNode;
  try {
    connected = await connectNode(
      opts.device,
      opts.logLevel ?? "info",
      opts.wake === undefined ? undefined : Number(opts.wake),
    );
  } catch (error) {
    process.stderr.write(`cxmpp node run: ${(error as Error).message}\n`);
    return 1;
  }
  const { client, udp } = connected;
  const reply = (stanza: XElement) => client.send(stanza).catch(() => {});
  client.onStanza((stanza: XElement) => {
    process.stdout.write(`${toXml(stanza)}\n`);
    if (stateFile !== undefined && answerFromState(stateFile, stanza, reply)) return;
    const answer = answerIq(stanza);
    if (answer) void reply(answer);
  });
  process.stderr.write(`connected as ${client.jid}\n`);
  let polling = false;
  const timer = setInterval(() => {
    if (polling) return;
    polling = true;
    client.poll().then(
      () => {
        polling = false;
      },
      () => {
        polling = false;
      },
    );
  }, pollMs);
  await new Promise<void>((resolve) => {
    process.once("SIGINT", () => resolve());
    process.once("SIGTERM", () => resolve());
  });
  clearInterval(timer);
  client.close();
  await udp.close();
  return 0;
}

/**
 * Answers a readout or control from the state file (read afresh: it may have been edited), writing a
 * changed state back before the answer goes; false when the stanza is neither (or the file is broken
 * now: then the caller's generic answer, service-unavailable for an iq, goes instead).
 */
function answerFromState(file: string, stanza: XElement, send: (stanza: XElement) => unknown): boolean {
  let state: NodeState;
  try {
    state = readStateFile(file);
  } catch (error) {
    process.stderr.write(`state ${file}: ${(error as Error).message}\n`);
    return false;
  }
  const answer = answerIoT(stanza, state, new Date());
  if (!answer) return false;
  if (answer.state) {
    try {
      writeStateFile(file, answer.state);
    } catch (error) {
      process.stderr.write(`state ${file}: not written: ${(error as Error).message}\n`);
      return false;
    }
  }
  for (const out of answer.send) send(out);
  process.stderr.write(`${answer.log}\n`);
  return true;
}
