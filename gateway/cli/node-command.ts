/** `cxmpp node run|send`: a simulated node on real UDP, from a device file. */
import { attr, el, type XElement } from "../../codec/index.js";
import { type Logger, NodeClient, peerAddress } from "../../src/core/index.js";
import {
  consoleLogger,
  createDtlsClientEndpoint,
  createUdpEndpoint,
  nodeMac,
  type UdpEndpoint,
  type UdpEndpointOptions,
} from "../../src/node/index.js";
import { type DeviceFile, parseGatewayUri, readDeviceFile } from "../data-dir.js";
import { packageVersion } from "../version.js";
import { StanzaError } from "../xml/stanza-error.js";
import { toXml } from "../xml/stanza-xml.js";

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

function connectNode(deviceFile: string, logLevel: string, wake?: number): Promise<DeviceNode> {
  return connectDeviceNode(deviceFile, {
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
  readonly to: string;
  readonly body: string;
  readonly timeout?: string;
  readonly logLevel?: string;
}

/** Sends one message and exits 0 only when the gateway acknowledged it end to end. */
export async function runNodeSend(opts: NodeSendOptions): Promise<number> {
  const timeoutMs = Number(opts.timeout ?? 30) * 1000;
  let connected: DeviceNode;
  try {
    connected = await connectNode(opts.device, opts.logLevel ?? "warn");
  } catch (error) {
    process.stderr.write(`cxmpp node send: ${(error as Error).message}\n`);
    return 1;
  }
  const stanza = el(
    "jabber:client",
    "message",
    { to: opts.to, type: "chat" },
    el("jabber:client", "body", {}, opts.body),
  );
  try {
    await Promise.race([
      connected.client.send(stanza),
      new Promise((_, reject) =>
        setTimeout(
          () => reject(new Error(`no acknowledgement within ${timeoutMs / 1000} s`)),
          timeoutMs,
        ).unref(),
      ),
    ]);
    process.stdout.write(`acknowledged: ${toXml(stanza)}\n`);
    return 0;
  } catch (error) {
    process.stderr.write(`cxmpp node send: ${(error as Error).message}\n`);
    return 1;
  } finally {
    connected.client.close();
    await connected.udp.close();
  }
}

export interface NodeRunOptions {
  readonly device: string;
  readonly poll?: string;
  readonly wake?: string;
  readonly logLevel?: string;
}

/**
 * Connects and prints every stanza it receives as one line of XML on stdout, until SIGINT/SIGTERM.
 * With --wake N it is a sleepy node: it wakes every N seconds (one poll drains its mailbox); without, it
 * polls every --poll seconds. It answers iq requests as a node must (RFC 6120 §8.2.3).
 */
export async function runNodeRun(opts: NodeRunOptions): Promise<number> {
  const pollMs = Number(opts.poll ?? opts.wake ?? 2) * 1000;
  if (!Number.isFinite(pollMs) || pollMs <= 0) {
    process.stderr.write("cxmpp node run: --poll must be a positive number of seconds\n");
    return 2;
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
  client.onStanza((stanza: XElement) => {
    process.stdout.write(`${toXml(stanza)}\n`);
    const reply = answerIq(stanza);
    if (reply) client.send(reply).catch(() => {});
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
