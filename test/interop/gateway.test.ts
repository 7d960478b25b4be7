/**
 * The real cxmpp gateway (GatewayService with one device in MemoryDevices) on a real UDP CoapEndpoint
 * (127.0.0.1, ephemeral port, mounted with `endpoint.handle`), probed by independent clients: libcoap's
 * `coap-client-notls`, node-coap's Agent and raw node:dgram datagrams. Checks the resources of
 * docs/PROTOCOL.md §3 answer outsiders as documented, that hostile datagrams get the documented CoAP
 * error (§1 "Bad input") or are dropped, and that a NodeClient on real UDP is served afterwards.
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DICTIONARY_V1, el, SessionDecoder, SessionEncoder, type XElement } from "../../codec/index.js";
import { MemoryDevices } from "../../gateway/devices.js";
import { attachGateway, type GatewayService } from "../../gateway/index.js";
import {
  Code,
  ContentFormat,
  NodeClient,
  OptionNumber,
  type PeerAddress,
  pathOptions,
  peerAddress,
  protocol,
  serializeMessage,
  uintOption,
} from "../../src/core/index.js";
import { SessionReader } from "../../src/core/session/cbor.js";
import { createUdpEndpoint, nodeMac, systemClock, type UdpEndpoint } from "../../src/node/index.js";
import { key } from "../kit/session-harness.js";
import { bodyOf } from "../kit/stanzas.js";
import { Agent, coapClient, header, nodeCoap, pdus, rawExchange } from "./fixtures/peers.js";

const DOMAIN = "iot.example.org";
const IDENTITY = "sensor1";
const JID = `${IDENTITY}@${DOMAIN}/cxmpp`;
const LINKS = protocol.linkFormat(DICTIONARY_V1.id);
const transmission = { ackTimeoutMs: 200, maxRetransmit: 4 };
const encoder = new TextEncoder();

let gatewayUdp: UdpEndpoint;
let gateway: GatewayService;
let gatewayAddress: PeerAddress;
let port: number;
let base: string;
let dir: string;
const outbound: XElement[] = [];
const closers: Array<() => Promise<void> | void> = [];

beforeAll(async () => {
  gatewayUdp = await createUdpEndpoint({ host: "127.0.0.1", transmission });
  gateway = attachGateway(gatewayUdp.endpoint, {
    devices: new MemoryDevices([
      { identity: IDENTITY, key: key(1), jid: `${IDENTITY}@${DOMAIN}`, peers: [] },
    ]),
    domain: DOMAIN,
    clock: systemClock,
    outbound: (s) => outbound.push(s),
  });
  port = gatewayUdp.transport.port;
  gatewayAddress = peerAddress("127.0.0.1", port);
  base = `coap://127.0.0.1:${port}`;
  dir = await mkdtemp(join(tmpdir(), "cxmpp-gw-interop-"));
});

afterAll(async () => {
  for (const c of closers.reverse()) await c();
  await gatewayUdp?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** A NodeClient for the device on its own real UDP endpoint (127.0.0.1, ephemeral port). */
async function node(): Promise<{ client: NodeClient; udp: UdpEndpoint }> {
  const udp = await createUdpEndpoint({ host: "127.0.0.1", transmission });
  const client = new NodeClient({
    endpoint: udp.endpoint,
    gateway: gatewayAddress,
    identity: IDENTITY,
    key: key(1),
    mac: nodeMac,
    retryDelayMs: 100,
  });
  closers.push(() => {
    client.close();
    return udp.close();
  });
  return { client, udp };
}

/** A fresh NodeClient connects (Echo challenge, proof) and sends a stanza that reaches `outbound`. */
async function stillServesANode(text: string): Promise<void> {
  const { client } = await node();
  const session = await client.connect();
  expect(session.jid).toBe(JID);
  const before = outbound.length;
  await client.send(
    el(
      "jabber:client",
      "message",
      { to: "friend@elsewhere.example", type: "chat" },
      el("jabber:client", "body", {}, text),
    ),
  );
  expect(outbound).toHaveLength(before + 1);
  const stanza = outbound[outbound.length - 1];
  expect(bodyOf(stanza)).toBe(text);
  expect(stanza?.attrs.find((a) => a.name === "from")?.value).toBe(JID); // stamped by the gateway
  client.close();
}

function connectRequest(): Uint8Array {
  return protocol.encodeConnectRequest({ identity: IDENTITY, dictionary: DICTIONARY_V1.id });
}

describe("libcoap coap-client-notls → GatewayService", () => {
  it("GET /.well-known/core lists </c> (with the dictionary id), </u> and </d>", async () => {
    const { stdout } = await coapClient(["-m", "get", `${base}/.well-known/core`]);
    const links = stdout.trim();
    expect(links).toBe(LINKS);
    expect(links).toContain(`</c>;rt="cxmpp.connect";dict="${DICTIONARY_V1.id}"`);
    expect(links).toContain("</u>;");
    expect(links).toContain("</d>;");
  });

  it("POST /u without a session → 4.01", async () => {
    const { stdout, stderr } = await coapClient(["-v", "6", "-m", "post", "-e", "x", `${base}/u`]);
    const lines = pdus(stdout + stderr);
    expect(lines.some((l) => /t:ACK c:4\.01 /.test(l))).toBe(true);
  });

  it("POST /c without Echo → 4.01 carrying a 12-byte Echo option (the nonce)", async () => {
    const input = join(dir, "connect.cbor");
    await writeFile(input, connectRequest());
    const { stdout, stderr } = await coapClient([
      "-v",
      "6",
      "-m",
      "post",
      "-t",
      String(ContentFormat.CXMPP_SESSION),
      "-f",
      input,
      `${base}/c`,
    ]);
    const reply = pdus(stdout + stderr).find((l) => /t:ACK c:4\.01 /.test(l));
    expect(reply).toBeDefined();
    expect(reply).toMatch(/\[ Echo:0x[0-9a-f]{24} \]/); // libcoap 4.3.1 knows option 252 by name
  });
});

describe("node-coap Agent → GatewayService", () => {
  let agent: Agent;
  beforeAll(() => {
    agent = new Agent({ type: "udp4" });
  });
  afterAll(() => {
    agent.close();
  });

  it("GET /.well-known/core: 2.05 application/link-format with the three resources", async () => {
    const res = await nodeCoap({ port, method: "GET", pathname: "/.well-known/core", agent });
    expect(res.code).toBe("2.05");
    expect(res.headers["Content-Format"]).toBe("application/link-format");
    expect(res.payload.toString()).toBe(LINKS);
  });

  it("POST /u without a session → 4.01", async () => {
    const res = await nodeCoap({ port, method: "POST", pathname: "/u", agent, payload: Buffer.from("x") });
    expect(res.code).toBe("4.01");
  });

  it("POST /c without Echo → 4.01 with a 12-byte Echo option", async () => {
    const res = await nodeCoap({
      port,
      method: "POST",
      pathname: "/c",
      agent,
      payload: Buffer.from(connectRequest()),
    });
    expect(res.code).toBe("4.01");
    // coap-packet has no name for option 252 (RFC 9175 Echo): it reports the number as the name.
    const echo = res._packet.options?.find((o) => String(o.name) === "252");
    expect(echo?.value).toHaveLength(protocol.NONCE_BYTES);
  });
});

describe("raw datagrams → GatewayService", () => {
  it("a malformed CON (reserved option nibble) gets RST; a NodeClient on real UDP connects and sends afterwards", async () => {
    // CON POST, token length 0, MID 0x1234, option byte 0xf0: delta nibble 15 is reserved (RFC 7252 §3.1).
    const replies = await rawExchange(Uint8Array.of(0x40, 0x02, 0x12, 0x34, 0xf0, 0x01), port);
    expect(replies.map((r) => [...r])).toEqual([[0x70, 0x00, 0x12, 0x34]]); // RST, Empty, same MID
    await stillServesANode("after the malformed datagram");
  });

  it("hostile datagrams each get the documented error or are dropped; the gateway keeps serving", async () => {
    const malformedBefore = gatewayUdp.endpoint.messages.stats.malformed;

    // 1. Truncated header (3 of 4 bytes): not CoAP, no message id to reset → dropped (PROTOCOL.md §1).
    expect(await rawExchange(Uint8Array.of(0x40, 0x02, 0x12), port, 300)).toEqual([]);

    // 2. A 60 KB datagram: a well-formed CON POST /u from an address without a session is refused
    //    with 4.01 before its payload is looked at.
    const big = serializeMessage({
      type: 0,
      code: Code.POST,
      messageId: 0x2001,
      token: Uint8Array.of(7),
      options: pathOptions(protocol.Paths.UPLINK),
      payload: new Uint8Array(60_000).fill(0xa5),
    });
    expect(big.length).toBeGreaterThan(60_000);
    const bigReply = await rawExchange(big, port);
    expect(bigReply).toHaveLength(1);
    expect(header(bigReply[0]!)).toMatchObject({ type: 2, code: "4.01", messageId: 0x2001 });

    // 3. A 60 KB datagram of junk whose first byte says CON: malformed (token length nibble 15 is
    //    reserved) → RST with its message id.
    const junk = new Uint8Array(60_000).fill(0xff);
    junk.set([0x4f, 0x01, 0x20, 0x02]);
    const junkReply = await rawExchange(junk, port);
    expect(junkReply.map((r) => [...r])).toEqual([[0x70, 0x00, 0x20, 0x02]]);

    // 4. CON with a reserved option nibble → RST.
    const nibble = await rawExchange(Uint8Array.of(0x40, 0x01, 0x20, 0x03, 0xf0), port);
    expect(nibble.map((r) => [...r])).toEqual([[0x70, 0x00, 0x20, 0x03]]);

    // 5. GET /.well-known/core with option 9 (unassigned, odd = critical) → 4.02 Bad Option (§5.4.1).
    const critical = serializeMessage({
      type: 0,
      code: Code.GET,
      messageId: 0x2004,
      token: Uint8Array.of(1, 2),
      options: [{ number: 9, value: Uint8Array.of(1) }, ...pathOptions(protocol.Paths.CORE)],
      payload: new Uint8Array(0),
    });
    const criticalReply = await rawExchange(critical, port);
    expect(criticalReply).toHaveLength(1);
    expect(header(criticalReply[0]!)).toMatchObject({
      type: 2,
      tokenLength: 2,
      code: "4.02",
      messageId: 0x2004,
    });

    expect(gatewayUdp.endpoint.messages.stats.malformed - malformedBefore).toBe(3);
    await stillServesANode("after the hostile datagrams");
  });

  it("POST /u with a non-CBOR payload from a peer that has a session → 4.00; the session goes on", async () => {
    const { client, udp } = await node();
    await client.connect();
    const h = gateway.session(IDENTITY)?.h;
    for (const payload of [encoder.encode("<message>not CBOR</message>"), Uint8Array.of(0xff, 0xff, 0x00)]) {
      const response = await udp.endpoint.request(gatewayAddress, {
        code: Code.POST,
        options: [
          ...pathOptions(protocol.Paths.UPLINK),
          uintOption(OptionNumber.CONTENT_FORMAT, ContentFormat.CXMPP_SESSION),
        ],
        payload,
      });
      expect(response.code).toBe(Code.BAD_REQUEST);
    }
    expect(gateway.session(IDENTITY)?.h).toBe(h);
    const before = outbound.length;
    await client.send(
      el(
        "jabber:client",
        "message",
        { to: "friend@elsewhere.example" },
        el("jabber:client", "body", {}, "same session"),
      ),
    );
    expect(bodyOf(outbound[before])).toBe("same session");
    await stillServesANode("after the bad uplink");
  });
});

describe("libcoap carries cxmpp frames into a node's session", () => {
  it("a frame POSTed by coap-client-notls from the node's address is routed, `from` stamped; a batch goes as 16-byte Block1", async () => {
    const { client, udp } = await node();
    const session = await client.connect();
    const nodePort = udp.transport.port;
    // The node's side of the codec after connect (fresh tables, as PROTOCOL.md §3.2 says).
    const frames = new SessionEncoder({ aliases: session.aliases, implicitBase: true });
    const message = (text: string) =>
      el(
        "jabber:client",
        "message",
        { to: "friend@elsewhere.example" },
        el("jabber:client", "body", {}, text),
      );
    client.close();
    await udp.close(); // libcoap takes over the node's address, to which the session is bound

    const first = frames.encode(message("via libcoap"));
    const one = join(dir, "uplink-1.bin");
    await writeFile(
      one,
      protocol.encodeUplink({ seq: session.h + 1, ack: session.delivered, frames: [first.bytes] }),
    );
    const before = outbound.length;
    await coapClient(["-p", String(nodePort), "-m", "post", "-f", one, `${base}/u`]);
    expect(outbound.slice(before).map(bodyOf)).toEqual(["via libcoap"]);
    expect(outbound[before]?.attrs.find((a) => a.name === "from")?.value).toBe(JID);
    frames.acknowledge(first.inserted); // the empty 2.04 said: stored

    const batch = ["one", "two", "three", "four"].map((t) => frames.encode(message(`block-wise ${t}`)));
    const many = join(dir, "uplink-2.bin");
    const payload = protocol.encodeUplink({
      seq: session.h + 2,
      ack: session.delivered,
      frames: batch.map((f) => f.bytes),
    });
    expect(payload.length).toBeGreaterThan(48); // several 16-byte blocks
    await writeFile(many, payload);
    const { stdout, stderr } = await coapClient([
      "-v",
      "7",
      "-p",
      String(nodePort),
      "-b",
      "16",
      "-m",
      "post",
      "-f",
      many,
      `${base}/u`,
    ]);
    expect(pdus(stdout + stderr).filter((l) => l.includes("Block1:")).length).toBeGreaterThanOrEqual(3);
    expect(outbound.slice(before + 1).map(bodyOf)).toEqual(
      ["one", "two", "three", "four"].map((t) => `block-wise ${t}`),
    );
  });
});

describe("libcoap observes a node's downlink at the gateway", () => {
  it("coap-client-notls -s on /d/<session> receives the pushed frames, which decode to the routed stanzas", async () => {
    const { client, udp } = await node();
    const session = await client.connect();
    const nodePort = udp.transport.port;
    client.close();
    await udp.close(); // libcoap observes from the node's address, to which the session is bound
    const out = join(dir, "observed.bin");
    const observing = coapClient([
      "-s",
      "2",
      "-p",
      String(nodePort),
      "-o",
      out,
      `${base}/d/${session.session}`,
    ]);
    await new Promise((r) => setTimeout(r, 500));
    const push = (text: string) =>
      gateway.route(
        el(
          "jabber:client",
          "message",
          { to: `${IDENTITY}@${DOMAIN}`, from: `other@${DOMAIN}/x` },
          el("jabber:client", "body", {}, text),
        ),
      );
    push("first push");
    await new Promise((r) => setTimeout(r, 300));
    push("second push");
    await observing;
    // libcoap appends every notification's payload: [h, dseq] then frames, again and again; each frame
    // is decoded once, in sequence order, with the node's side of the codec.
    const reader = new SessionReader(new Uint8Array(await readFile(out)));
    const decoder = new SessionDecoder({ aliases: session.aliases });
    const bodies: string[] = [];
    let next = session.delivered + 1;
    let seq = 0;
    while (!reader.done) {
      const item = reader.read();
      if (Array.isArray(item)) seq = item[1] as number;
      else if (item instanceof Uint8Array) {
        if (seq === next) {
          bodies.push(bodyOf(decoder.decode(item).stanza) ?? "");
          next++;
        }
        seq++;
      }
    }
    expect(bodies).toEqual(["first push", "second push"]);
  });
});
