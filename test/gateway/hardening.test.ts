/**
 * The gateway's session layer against an attacker on the link (docs/PROTOCOL.md §3, §8.3): raw forged
 * datagrams on loopback from a node's own address against a real gateway (`startGateway`, real UDP,
 * SQLite on disk), each reproducing one finding of the hardening review:
 * - an `ack` beyond what was sent is refused (4.22) and the mailbox is intact;
 * - a NON reading replayed with a new message id, after a gateway restart and after the node
 *   reconnected is routed once; a CON frame of an earlier connection is never routed again;
 * - a telemetry frame that does not decode is answered 4.00 (errors come back);
 * - unknown identities cost the same work as wrong keys; challenges keep no state.
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { heapAfterGc } from "../../bench/memory.js";
import { DICTIONARY_V1, el, type XElement } from "../../codec/index.js";
import { MemoryDevices } from "../../gateway/index.js";
import { GatewayService } from "../../gateway/session/gateway-service.js";
import {
  type CoapEndpoint,
  Code,
  type Mac,
  MessageType,
  OptionNumber,
  type PeerAddress,
  parseMessage,
  pathOptions,
  protocol,
  type ServerRequest,
  serializeMessage,
  uintOption,
} from "../../src/core/index.js";
import { cryptoRandom, nodeMac, wallClock } from "../../src/node/index.js";
import { scratch } from "../kit/scratch.js";
import { key } from "../kit/session-harness.js";
import { bodyOf } from "../kit/stanzas.js";
import type { Tap } from "../kit/tap.js";
import { type TappedNode, tappedNode, twoDeviceGateway } from "../kit/udp-node.js";
import { sleep, until } from "../kit/wait.js";

const DOMAIN = "iot.localhost";
const { root, cleanups } = scratch("cxmpp-hardening-");

const node = (identity: string, n: number, gateway: string): Promise<TappedNode> =>
  tappedNode(identity, n, gateway, cleanups);
const gateway = twoDeviceGateway;

const reading = (n: number) =>
  el("jabber:client", "message", { to: "sink@elsewhere.example" }, el("jabber:client", "body", {}, `r${n}`));
/** The datagrams a tap recorded that are NON POSTs (telemetry readings). */
const nonPosts = (tap: Tap) =>
  tap.sent.filter((d) => {
    const m = parseMessage(d);
    return m.type === MessageType.NON && m.code === Code.POST;
  });

describe("replays never route a stanza twice", () => {
  it("a NON reading replayed with a new message id, after a restart and after a reconnect, is routed once", async () => {
    const dir = join(root, "replay-non");
    const outbound: XElement[] = [];
    let gw = await gateway(dir, 0, outbound);
    const port = gw.port;
    const n = await node("sensor1", 1, gw.address);
    await n.client.connect();
    n.client.sendTelemetry(reading(0)); // the first goes CON (table priming)
    await until(() => outbound.length === 1);
    n.client.sendTelemetry(reading(1));
    n.client.sendTelemetry(reading(2));
    await until(() => outbound.length === 3);
    const captured = nonPosts(n.tap);
    expect(captured).toHaveLength(2);

    n.tap.replay(captured[0]!, gw.address as PeerAddress, 0x7001); // a new MID: past deduplication
    await sleep(200);
    expect(outbound.map(bodyOf)).toEqual(["r0", "r1", "r2"]);
    expect(gw.service.stats.replayedTelemetry).toBe(1);

    // A restart: the gateway's memory of what it routed is gone, the store's is not.
    await gw.stop();
    gw = await gateway(dir, port, outbound);
    n.tap.replay(captured[1]!, gw.address as PeerAddress, 0x7002);
    await sleep(200);
    expect(outbound.map(bodyOf)).toEqual(["r0", "r1", "r2"]);
    expect(gw.service.stats.replayedTelemetry).toBe(1);

    // A new connection (new codec tables, new resume token): still refused, and new readings still go.
    await n.client.connect();
    n.tap.replay(captured[0]!, gw.address as PeerAddress, 0x7003);
    n.client.sendTelemetry(reading(3));
    await until(() => outbound.length === 4);
    await sleep(100);
    expect(outbound.map(bodyOf)).toEqual(["r0", "r1", "r2", "r3"]);
    expect(gw.service.stats.replayedTelemetry).toBe(2);
    await gw.stop();
  });

  it("a CON frame of an earlier connection replayed after the node reconnected is a duplicate", async () => {
    const dir = join(root, "replay-con");
    const outbound: XElement[] = [];
    const gw = await gateway(dir, 0, outbound);
    cleanups.push(() => gw.stop());
    const n = await node("sensor1", 1, gw.address);
    await n.client.connect();
    await n.client.send(reading(1));
    const con = n.tap.sent.filter((d) => {
      const m = parseMessage(d);
      if (m.type !== MessageType.CON || m.code !== Code.POST) return false;
      try {
        return protocol.decodeUplink(m.payload).frames.length > 0; // an uplink with a frame (not a connect)
      } catch {
        return false;
      }
    });
    expect(con.length).toBeGreaterThanOrEqual(1);
    await n.client.connect(); // as after a node reboot: h goes on at the gateway
    n.tap.replay(con[0]!, gw.address as PeerAddress, 0x7101);
    await n.client.send(reading(2));
    await sleep(100);
    expect(outbound.map(bodyOf)).toEqual(["r1", "r2"]);
    expect(gw.service.session("sensor1")?.h).toBe(2);
  });
});

describe("acknowledgements are checked against what was sent", () => {
  it("an ack beyond the frames sent is refused with 4.22, counted, and empties nothing", async () => {
    const dir = join(root, "ack");
    const gw = await gateway(dir);
    cleanups.push(() => gw.stop());
    const a = await node("actuator1", 2, gw.address);
    await a.client.connect();
    const device = gw.store.devices.find("actuator1")!;
    for (const i of [1, 2, 3])
      gw.service.deliverTo(
        device,
        el(
          "jabber:client",
          "message",
          { to: `actuator1@${DOMAIN}`, from: "x@elsewhere.example" },
          el("jabber:client", "body", {}, `m${i}`),
        ),
      );
    await gw.service.committed();
    // Forged from the node's address: "I have received 999 frames".
    const forged = serializeMessage({
      type: MessageType.CON,
      code: Code.POST,
      messageId: 0x7201,
      token: Uint8Array.of(9),
      options: [...pathOptions(protocol.Paths.UPLINK)],
      payload: protocol.encodeUplink({ seq: 1, ack: 999, frames: [] }),
    });
    a.tap.replay(forged, gw.address as PeerAddress, 0x7201);
    await until(() => gw.service.stats.badAcks === 1);
    const answer = a.tap.received.map((d) => parseMessage(d)).find((m) => m.messageId === 0x7201);
    expect(answer?.code).toBe(Code.UNPROCESSABLE_ENTITY);
    expect(gw.service.session("actuator1")?.mailbox.length).toBe(3);
    await a.client.poll();
    await until(() => a.inbox.length === 3);
    expect(a.inbox).toEqual(["m1", "m2", "m3"]);
  });
});

describe("observers", () => {
  it("only a session's downlink is observable: /.well-known/core is served without Observe, taking no entry", async () => {
    const gw = await gateway(join(root, "observe"));
    cleanups.push(() => gw.stop());
    const n = await node("sensor1", 1, gw.address);
    const endpoint = (n.client as unknown as { options: { endpoint: CoapEndpoint } }).options.endpoint;
    const o = await endpoint.observe(gw.address as PeerAddress, ".well-known/core", () => {});
    expect(o.response.code).toBe(Code.CONTENT);
    expect(o.response.options.some((opt) => opt.number === OptionNumber.OBSERVE)).toBe(false);
    const scrape = await gw.metrics!.scrape();
    expect(scrape).toMatch(/^cxmpp_coap_table_entries\{table="observers"\} 0$/m);
    await n.client.connect();
    const d = await n.client.observeDownlink(); // the one resource that changes
    expect(await gw.metrics!.scrape()).toMatch(/^cxmpp_coap_table_entries\{table="observers"\} 1$/m);
    await d.cancel();
  });
});

describe("telemetry errors come back", () => {
  it("a NON reading whose frame does not decode is answered 4.00, and the node hears of it", async () => {
    const dir = join(root, "bad-telemetry");
    const outbound: XElement[] = [];
    const gw = await gateway(dir, 0, outbound);
    cleanups.push(() => gw.stop());
    const n = await node("sensor1", 1, gw.address);
    const heard: string[] = [];
    n.client.onTelemetryError((e) => heard.push(`${e.kind}: ${e.message}`));
    await n.client.connect();
    n.client.sendTelemetry(reading(0)); // CON (priming)
    await until(() => outbound.length === 1);
    n.client.sendTelemetry(reading(1)); // NON: from now on the node listens for errors to its readings
    await until(() => outbound.length === 2);
    // The node's next message id: a reading with an earlier one than a routed uplink is dropped as
    // out of order before it is decoded (docs/PROTOCOL.md §3.3).
    const mid = (parseMessage(nonPosts(n.tap).at(-1)!).messageId + 1) & 0xffff;
    const bad = serializeMessage({
      type: MessageType.NON,
      code: Code.POST,
      messageId: mid,
      token: Uint8Array.of(),
      options: [...pathOptions(protocol.Paths.UPLINK), uintOption(OptionNumber.NO_RESPONSE, 2)],
      payload: protocol.encodeUplink({ seq: 0, t: 50, ack: 0, frames: [Uint8Array.of(0xff, 0x00, 0x13)] }),
    });
    n.tap.replay(bad, gw.address as PeerAddress, mid);
    await until(() => n.tap.received.some((d) => parseMessage(d).code === Code.BAD_REQUEST));
    const answer = n.tap.received.map((d) => parseMessage(d)).find((m) => m.code === Code.BAD_REQUEST)!;
    expect(new TextDecoder().decode(answer.payload)).toMatch(/^telemetry 50: [A-Z_]+ at byte \d+$/);
    expect(gw.service.stats.badFrames).toBe(1);
    await until(() => heard.length === 1);
    expect(heard[0]).toMatch(/^frame-rejected: telemetry refused: 4\.00 telemetry 50: /);
  });
});

describe("connect: no timing oracle, no state for strangers", () => {
  /** Counts the HMACs the gateway computes with device keys and with anything else. */
  function countingMac(): Mac & { calls: number } {
    const m = {
      calls: 0,
      hmacSha256(k: Uint8Array, data: Uint8Array) {
        m.calls++;
        return nodeMac.hmacSha256(k, data);
      },
    };
    return m;
  }
  const devices = new MemoryDevices([
    { identity: "sensor1", key: key(1), jid: `sensor1@${DOMAIN}`, peers: [] },
  ]);
  let mid = 0;
  const connect = (peer: string, payload: Uint8Array, echo?: Uint8Array): ServerRequest => ({
    code: Code.POST,
    options: [
      ...pathOptions(protocol.Paths.CONNECT),
      ...(echo ? [{ number: OptionNumber.ECHO, value: echo }] : []),
    ],
    payload,
    peer: peer as PeerAddress,
    token: Uint8Array.of(mid & 0xff),
    messageId: mid++ & 0xffff,
    confirmable: true,
  });
  async function attempt(service: GatewayService, identity: string, k: Uint8Array) {
    const c = { identity, dictionary: DICTIONARY_V1.id };
    const challenge = await service.handle(connect("10.0.0.1:5683", protocol.encodeConnectRequest(c)));
    const echo = challenge.options.find((o) => o.number === OptionNumber.ECHO)!.value;
    const proof = nodeMac.hmacSha256(k, protocol.proofInput(echo, c)).subarray(0, protocol.PROOF_BYTES);
    return service.handle(connect("10.0.0.1:5683", protocol.encodeConnectRequest({ ...c, proof }), echo));
  }

  it("an unknown identity costs the same HMAC work as a wrong key, and gets the same answer", async () => {
    const mac = countingMac();
    const service = new GatewayService({
      devices,
      domain: DOMAIN,
      mac,
      random: cryptoRandom,
      clock: wallClock,
    });
    mac.calls = 0;
    const wrong = await attempt(service, "sensor1", key(9));
    const wrongCalls = mac.calls;
    mac.calls = 0;
    const unknown = await attempt(service, "nobody", key(9));
    expect(mac.calls).toBe(wrongCalls);
    expect([unknown.code, Buffer.from(unknown.payload).toString()]).toEqual([
      wrong.code,
      Buffer.from(wrong.payload).toString(),
    ]);
    expect(wrong.code).toBe(Code.FORBIDDEN);
    const right = await attempt(service, "sensor1", key(1));
    expect(right.code).toBe(Code.CREATED);
  });

  it("100,000 challenges from spoofed addresses leave no state behind", async () => {
    const service = new GatewayService({
      devices,
      domain: DOMAIN,
      mac: nodeMac,
      random: cryptoRandom,
      clock: wallClock,
    });
    const c = protocol.encodeConnectRequest({ identity: "sensor1", dictionary: DICTIONARY_V1.id });
    const before = heapAfterGc();
    for (let i = 0; i < 100_000; i++) {
      const peer = `10.${(i >> 16) & 0xff}.${(i >> 8) & 0xff}.${i & 0xff}:${1024 + (i % 60000)}`;
      const r = await service.handle(connect(peer, c));
      if (r.code !== Code.UNAUTHORIZED) throw new Error(`challenge ${i}: ${r.code}`);
    }
    const grown = heapAfterGc() - before;
    expect(service.usedNonces).toBe(0);
    expect(grown).toBeLessThan(2 * 1024 * 1024); // was ~70 MB with one nonce kept per address
    // A nonce issued to one address is worthless from another.
    const challenge = await service.handle(connect("10.9.9.9:1", c));
    const echo = challenge.options.find((o) => o.number === OptionNumber.ECHO)!.value;
    const proof = nodeMac
      .hmacSha256(key(1), protocol.proofInput(echo, { identity: "sensor1", dictionary: DICTIONARY_V1.id }))
      .subarray(0, protocol.PROOF_BYTES);
    const payload = protocol.encodeConnectRequest({
      identity: "sensor1",
      dictionary: DICTIONARY_V1.id,
      proof,
    });
    expect((await service.handle(connect("10.9.9.10:1", payload, echo))).code).toBe(Code.UNAUTHORIZED);
    expect((await service.handle(connect("10.9.9.9:1", payload, echo))).code).toBe(Code.CREATED);
    // Single use: the same proven connect again is challenged anew.
    expect((await service.handle(connect("10.9.9.9:1", payload, echo))).code).toBe(Code.UNAUTHORIZED);
    expect(service.usedNonces).toBe(1);
  });
});
