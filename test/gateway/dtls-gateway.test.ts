/**
 * The gateway's coaps listener end to end (docs/PROTOCOL.md §8): a real gateway (startGateway, SQLite,
 * real UDP) with DTLS on, nodes on our DTLS client over real sockets, and an attacker on the link:
 * - the PSK identity is the device: a DTLS session acts only as its own device, with no connect proof;
 * - a DTLS-only device is refused over plain CoAP; a plain datagram forged (raw socket) from a DTLS
 *   node's own address acts for nobody;
 * - replayed DTLS records route nothing twice; a revoked device's running session ends at once;
 * - a restarted gateway: the node handshakes again by itself and its session resumes.
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { el, type XElement } from "../../codec/index.js";
import {
  CoapEndpoint,
  Code,
  MessageType,
  NodeClient,
  type PeerAddress,
  parseMessage,
  pathOptions,
  protocol,
  SessionError,
  serializeMessage,
} from "../../src/core/index.js";
import { DtlsClient, DtlsError } from "../../src/dtls/index.js";
import {
  cryptoRandom,
  nodeDtlsCrypto,
  nodeMac,
  systemClock,
  timerScheduler,
  UdpTransport,
} from "../../src/node/index.js";
import { inProcessGateway, type TestGateway } from "../kit/in-process-gateway.js";
import { scratch } from "../kit/scratch.js";
import { key } from "../kit/session-harness.js";
import { bodyOf } from "../kit/stanzas.js";
import { Tap } from "../kit/tap.js";
import { sleep, until } from "../kit/wait.js";

const DOMAIN = "iot.localhost";
const { root, cleanups } = scratch("cxmpp-dtls-gw-");

interface DtlsNode {
  readonly client: NodeClient;
  readonly dtls: DtlsClient;
  /** Every datagram sent below DTLS (what an attacker on the link captures), to resend. */
  readonly tap: Tap<UdpTransport>;
  /** The CoAP messages the node puts into DTLS (to see how many round trips a connect takes). */
  readonly coap: Tap<DtlsClient>;
  readonly inbox: string[];
}

async function dtlsNode(
  gw: TestGateway,
  credentials: { identity: string; psk: Uint8Array },
  claims = credentials.identity,
): Promise<DtlsNode> {
  const udp = await UdpTransport.bind("127.0.0.1", 0);
  const tap = new Tap(udp);
  const server = gw.secureAddress as PeerAddress;
  const dtls = new DtlsClient(tap, {
    server,
    identity: credentials.identity,
    psk: credentials.psk,
    crypto: nodeDtlsCrypto,
    clock: systemClock,
    scheduler: timerScheduler(),
    retransmit: { initialMs: 200, maxMs: 800 },
  });
  const coap = new Tap(dtls);
  const endpoint = new CoapEndpoint({
    transport: coap,
    clock: systemClock,
    scheduler: timerScheduler(),
    random: cryptoRandom,
    transmission: { ackTimeoutMs: 300, maxRetransmit: 4 },
  });
  const client = new NodeClient({
    endpoint,
    gateway: server,
    identity: claims,
    key: credentials.psk,
    mac: nodeMac,
    retryDelayMs: 100,
  });
  cleanups.push(() => {
    endpoint.close();
    dtls.close();
  });
  const inbox: string[] = [];
  client.onStanza((s) => {
    if (s.name === "message") inbox.push(bodyOf(s)); // (presence of the other nodes arrives too)
  });
  return { client, dtls, tap, coap, inbox };
}

const sensor = { identity: "sensor1", psk: key(1) };
const actuator = { identity: "actuator1", psk: key(2) };

async function gateway(
  dir: string,
  ports = { coap: 0, coaps: 0 },
  outbound: XElement[] = [],
): Promise<TestGateway> {
  const gw = await inProcessGateway(dir, {
    port: ports.coap,
    outbound,
    flags: { dtls_listen: `127.0.0.1:${ports.coaps}` },
  });
  for (const [i, name] of ["sensor1", "actuator1"].entries()) {
    if (!gw.store.devices.find(name))
      gw.store.devices.add({
        identity: name,
        key: key(i + 1),
        jid: `${name}@${DOMAIN}`,
        peers: [`actuator1@${DOMAIN}`, `sensor1@${DOMAIN}`],
        dtlsOnly: true,
      });
  }
  return gw;
}

function portOf(address: string): number {
  return Number(address.slice(address.lastIndexOf(":") + 1));
}

const chat = (to: string, body: string) =>
  el("jabber:client", "message", { to, type: "chat" }, el("jabber:client", "body", {}, body));

describe("the PSK identity is the device", () => {
  it("a node connects over DTLS in one exchange (no proof) and stanzas flow both ways", async () => {
    const gw = await gateway(join(root, "flow"));
    cleanups.push(() => gw.stop());
    const a = await dtlsNode(gw, sensor);
    const b = await dtlsNode(gw, actuator);
    await a.client.connect();
    expect(a.coap.sent.length).toBe(1); // the connect alone: the handshake proved the key
    await b.client.connect();
    const observing = await b.client.observeDownlink(); // an always-on node: downlink is pushed (RFC 7641)
    cleanups.push(() => observing.cancel().catch(() => {}));
    await a.client.send(chat(`actuator1@${DOMAIN}`, "on"));
    await until(() => b.inbox.length === 1);
    expect(b.inbox).toEqual(["on"]);
    await b.client.send(chat(`sensor1@${DOMAIN}`, "done"));
    await a.client.poll(); // a sleepy node asks when it wakes
    await until(() => a.inbox.length === 1);
    expect(a.inbox).toEqual(["done"]);
    const s = gw.service.session("sensor1");
    expect(s?.peer?.startsWith("coaps://127.0.0.1:")).toBe(true);
    expect(gw.dtls?.tables().sessions).toBe(2);
    expect(gw.service.stats.refusedConnects).toBe(0);
  });

  it("a DTLS session cannot connect as another device", async () => {
    const gw = await gateway(join(root, "other"));
    cleanups.push(() => gw.stop());
    const impostor = await dtlsNode(gw, sensor, "actuator1");
    const error = await impostor.client.connect().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SessionError);
    expect((error as SessionError).kind).toBe("connect-refused");
    expect(gw.service.session("actuator1")).toBeUndefined();
    expect(gw.service.stats.refusedConnects).toBe(1);
  });

  it("a wrong key or an unknown identity never gets a session (one answer for both)", async () => {
    const gw = await gateway(join(root, "wrong"));
    cleanups.push(() => gw.stop());
    const wrong = await dtlsNode(gw, { identity: "sensor1", psk: key(9) });
    const unknown = await dtlsNode(gw, { identity: "nobody", psk: key(1) });
    const e1 = await wrong.dtls.connect().catch((e: unknown) => e);
    const e2 = await unknown.dtls.connect().catch((e: unknown) => e);
    expect(e1).toBeInstanceOf(DtlsError);
    expect(e2).toBeInstanceOf(DtlsError);
    expect([(e1 as DtlsError).kind, (e1 as DtlsError).alert]).toEqual([
      (e2 as DtlsError).kind,
      (e2 as DtlsError).alert,
    ]);
    expect(gw.dtls?.stats.handshakesFailed).toBe(2);
    expect(gw.dtls?.tables()).toEqual({ handshakes: 0, sessions: 0 });
  });

  it("a DTLS-only device is refused over plain CoAP, and told why", async () => {
    const gw = await gateway(join(root, "plain"));
    cleanups.push(() => gw.stop());
    const udp = await UdpTransport.bind("127.0.0.1", 0);
    const endpoint = new CoapEndpoint({
      transport: udp,
      clock: systemClock,
      scheduler: timerScheduler(),
      random: cryptoRandom,
    });
    cleanups.push(() => endpoint.close());
    const plain = new NodeClient({
      endpoint,
      gateway: gw.address as PeerAddress,
      identity: "sensor1",
      key: key(1),
      mac: nodeMac,
    });
    const error = await plain.connect().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SessionError);
    expect(String((error as Error).message)).toContain("DTLS only");
    expect(gw.service.session("sensor1")?.peer).toBeUndefined();
  });
});

/** Sends one UDP datagram with a forged source port from a raw socket (root), as an attacker would. */
function forge(fromPort: number, toPort: number, payload: Uint8Array): void {
  const script = `
import socket, struct, sys
payload = bytes.fromhex(sys.argv[3])
header = struct.pack("!HHHH", int(sys.argv[1]), int(sys.argv[2]), 8 + len(payload), 0)
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
s.sendto(header + payload, ("127.0.0.1", 0))
`;
  const r = spawnSync(
    "python3",
    ["-c", script, String(fromPort), String(toPort), Buffer.from(payload).toString("hex")],
    { encoding: "utf8" },
  );
  if (r.status !== 0) throw new Error(`raw socket send failed: ${r.stderr}`);
}

describe("an attacker on the link", () => {
  it("a plain datagram forged from a DTLS node's own address acts for nobody", async () => {
    const outbound: XElement[] = [];
    const gw = await gateway(join(root, "forge"), { coap: 0, coaps: 0 }, outbound);
    cleanups.push(() => gw.stop());
    const a = await dtlsNode(gw, sensor);
    await a.client.connect();
    await a.client.send(chat("sink@elsewhere.example", "real"));
    await until(() => outbound.length === 1);
    const before = gw.service.stats.stanzasIn;
    // An uplink frame as the node would send it, posted in plain from the node's own address and port.
    const frame = a.tap.sent.length; // (any bytes: the point is which session the gateway finds)
    const uplink = serializeMessage({
      type: MessageType.CON,
      code: Code.POST,
      messageId: 0x4242,
      token: Uint8Array.of(7),
      options: pathOptions(protocol.Paths.UPLINK),
      payload: protocol.encodeUplink({ seq: 2, ack: 0, frames: [Uint8Array.of(frame, 1, 2, 3)] }),
    });
    forge(a.tap.inner.port, portOf(gw.address), uplink);
    // The gateway did read it: its plain answer (no session at that plain address) came back to the
    // node's socket, where DTLS drops it.
    await until(() =>
      a.tap.received.some((d) => {
        try {
          const m = parseMessage(d);
          return m.messageId === 0x4242 && m.code === Code.UNAUTHORIZED;
        } catch {
          return false;
        }
      }),
    );
    expect(gw.service.stats.stanzasIn).toBe(before);
    expect(outbound.map(bodyOf)).toEqual(["real"]);
    // The node's session is untouched: its next stanza goes, and only once.
    await a.client.send(chat("sink@elsewhere.example", "next"));
    await until(() => outbound.length === 2);
    expect(outbound.map(bodyOf)).toEqual(["real", "next"]);
  });

  it("replayed DTLS records route nothing twice", async () => {
    const outbound: XElement[] = [];
    const gw = await gateway(join(root, "replay"), { coap: 0, coaps: 0 }, outbound);
    cleanups.push(() => gw.stop());
    const a = await dtlsNode(gw, sensor);
    await a.client.connect();
    await a.client.send(chat("sink@elsewhere.example", "once"));
    await until(() => outbound.length === 1);
    const dropped = gw.dtls!.stats.badRecords;
    for (const datagram of a.tap.sent) a.tap.inner.send(datagram, gw.secureAddress as PeerAddress);
    await sleep(400);
    expect(outbound.map(bodyOf)).toEqual(["once"]);
    expect(gw.dtls!.stats.badRecords).toBeGreaterThan(dropped);
    await a.client.send(chat("sink@elsewhere.example", "twice"));
    await until(() => outbound.length === 2);
    expect(outbound.map(bodyOf)).toEqual(["once", "twice"]);
  });

  it("revoking a device ends its running DTLS session at once and refuses its handshakes", async () => {
    const outbound: XElement[] = [];
    const gw = await gateway(join(root, "revoke"), { coap: 0, coaps: 0 }, outbound);
    cleanups.push(() => gw.stop());
    const a = await dtlsNode(gw, sensor);
    await a.client.connect();
    await a.client.send(chat("sink@elsewhere.example", "before"));
    await until(() => outbound.length === 1);
    expect(gw.dtls?.tables().sessions).toBe(1);
    gw.store.devices.revoke("sensor1");
    void a.client.send(chat("sink@elsewhere.example", "after")).catch(() => {});
    await until(() => gw.dtls?.tables().sessions === 0);
    await sleep(300);
    expect(outbound.map(bodyOf)).toEqual(["before"]);
    const again = await dtlsNode(gw, sensor);
    await expect(again.dtls.connect()).rejects.toBeInstanceOf(DtlsError);
  });
});

describe("a restarted gateway", () => {
  it("the node handshakes again by itself and its session resumes", async () => {
    const outbound: XElement[] = [];
    const dir = join(root, "restart");
    let gw = await gateway(dir, { coap: 0, coaps: 0 }, outbound);
    const ports = { coap: portOf(gw.address), coaps: portOf(gw.secureAddress!) };
    const a = await dtlsNode(gw, sensor);
    await a.client.connect();
    await a.client.send(chat("sink@elsewhere.example", "r1"));
    await until(() => outbound.length === 1);
    await gw.stop();
    gw = await gateway(dir, ports, outbound);
    cleanups.push(() => gw.stop());
    // The old session is gone from the new DTLS server: the node learns it and handshakes again.
    await a.client.send(chat("sink@elsewhere.example", "r2"));
    await until(() => outbound.length === 2);
    expect(outbound.map(bodyOf)).toEqual(["r1", "r2"]);
    expect(a.dtls.stats.handshakes).toBeGreaterThanOrEqual(2);
    expect(gw.dtls?.stats.handshakesCompleted).toBe(1);
  });
});
