/**
 * Format 2 on the wire (docs/PROTOCOL.md §3.2-§3.3, docs/FORMAT.md §6.6), against a real gateway over
 * real UDP: the node and the gateway agree on format 2 at connect; a NON reading is then a datagram with
 * no Uri-Path and no No-Response option, `t` and one template instance, that the gateway routes and never
 * answers unless it is wrong; and a node that says nothing at connect is still spoken to in format 1.
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  DICTIONARY_V1,
  diagnostic,
  el,
  SessionDecoder,
  sameInfoset,
  type XElement,
} from "../../codec/index.js";
import { SENSORDATA, sensorDataMessage } from "../../examples/iot-stanzas.js";
import {
  Code,
  ContentFormat,
  findOption,
  MessageType,
  OptionNumber,
  type PeerAddress,
  parseMessage,
  pathOptions,
  protocol,
  uintOption,
} from "../../src/core/index.js";
import { nodeMac, UdpTransport } from "../../src/node/index.js";
import { scratch } from "../kit/scratch.js";
import { key } from "../kit/session-harness.js";
import { DOMAIN, tappedNode, twoDeviceGateway, udpEndpoint } from "../kit/udp-node.js";
import { sleep, until } from "../kit/wait.js";

const { root, cleanups } = scratch("cxmpp-format-");

/** The XEP-0323 reading bench session sends: a template's worth of structure, three values that move. */
const reading = (seq: number, value: string): XElement =>
  sensorDataMessage(
    { to: "sink@elsewhere.example" },
    {
      nodeId: "sensor1",
      seqnr: seq,
      timestamp: new Date(Date.UTC(2026, 11, 7, 12, seq)).toISOString().replace(".000Z", "Z"),
      field: el(SENSORDATA, "numeric", { name: "temperature", momentary: "true", value, unit: "°C" }),
    },
  );

describe("format 2 between a node and the gateway", () => {
  it("agreed at connect; NON readings go at the root without No-Response, ≤ 26 bytes, routed exactly and never answered", async () => {
    const outbound: XElement[] = [];
    const gw = await twoDeviceGateway(join(root, "f2"), 0, outbound);
    cleanups.push(() => gw.stop());
    const n = await tappedNode("sensor1", 1, gw.address, cleanups);
    const connected = await n.client.connect();
    expect(connected.format).toBe(2);

    const sent = [reading(1, "21.5")];
    n.client.sendTelemetry(sent[0]!); // the first of a session goes CON and carries the template
    await until(() => outbound.length === 1);
    await sleep(150); // its ACK: the gateway routes before it answers
    const before = n.tap.received.length;
    for (let i = 2; i <= 12; i++) {
      const r = reading(i, (20 + i / 10).toFixed(1));
      sent.push(r);
      n.client.sendTelemetry(r);
      await sleep(5);
    }
    await until(() => outbound.length === 12);
    await sleep(200);
    expect(n.tap.received.length).toBe(before); // not one answer to eleven NON readings

    const non = n.tap.sent.filter((d) => parseMessage(d).type === MessageType.NON);
    expect(non).toHaveLength(11);
    for (const datagram of non) {
      expect(datagram.length).toBeLessThanOrEqual(26); // MQTT-SN QoS 0 for the same reading: 26
      const m = parseMessage(datagram);
      expect(m.code).toBe(Code.POST);
      expect(m.options).toEqual([]); // no Uri-Path (the root), no No-Response
      expect(m.token.length).toBe(0);
      const u = protocol.decodeUplink(m.payload);
      expect(u.compact).toBe(true);
    }
    // Exactly what was sent, in order, with the node's JID stamped.
    outbound.forEach((s, i) => {
      expect(s.attrs.find((a) => a.name === "from")?.value).toBe(`sensor1@${DOMAIN}/cxmpp`);
      const unstamped = { ...s, attrs: s.attrs.filter((a) => a.name !== "from") };
      expect(sameInfoset(unstamped, sent[i]!)).toBe(true);
    });
    expect(gw.service.stats.telemetryIn).toBe(11);
  });

  it("a NON reading whose frame does not decode is answered 4.00 and not routed", async () => {
    const outbound: XElement[] = [];
    const gw = await twoDeviceGateway(join(root, "bad"), 0, outbound);
    cleanups.push(() => gw.stop());
    const n = await tappedNode("sensor1", 1, gw.address, cleanups);
    await n.client.connect();
    const errors: string[] = [];
    n.client.onTelemetryError((e) => errors.push(e.message));
    n.client.sendTelemetry(reading(1, "20.0")); // CON, then a NON: the client now listens for errors
    n.client.sendTelemetry(reading(2, "20.1"));
    await until(() => outbound.length === 2);
    // A compact reading whose frame refers to a table entry nobody inserted.
    n.endpoint.messages.sendNonConfirmable(
      {
        code: Code.POST,
        token: new Uint8Array(0),
        options: [],
        payload: protocol.encodeUplink({
          seq: 0,
          ack: 0,
          t: 99,
          compact: true,
          frames: [Uint8Array.of(0x38, 0x63)],
        }),
      },
      gw.address as PeerAddress,
    );
    await until(() => errors.length === 1);
    expect(errors[0]).toMatch(/4\.00.*UNKNOWN_REF/);
    expect(outbound).toHaveLength(2);
  });

  it("a node that says nothing of formats gets format 1: no key 7, and downlink without templates", async () => {
    const gw = await twoDeviceGateway(join(root, "f1"), 0);
    cleanups.push(() => gw.stop());
    // A format 1 node, by hand: connect without key 6, poll at /u with the header array.
    const endpoint = udpEndpoint(await UdpTransport.bind("127.0.0.1", 0), cleanups);
    const to = gw.address as PeerAddress;
    const request = { identity: "actuator1", dictionary: DICTIONARY_V1.id };
    const post = (path: string, payload: Uint8Array, echo?: Uint8Array) =>
      endpoint.request(to, {
        code: Code.POST,
        options: [
          ...pathOptions(path),
          uintOption(OptionNumber.CONTENT_FORMAT, ContentFormat.CXMPP_SESSION),
          ...(echo ? [{ number: OptionNumber.ECHO, value: echo }] : []),
        ],
        payload,
      });
    const challenge = await post(protocol.Paths.CONNECT, protocol.encodeConnectRequest(request));
    const echo = findOption(challenge, OptionNumber.ECHO)!.value;
    const proof = nodeMac
      .hmacSha256(key(2), protocol.proofInput(echo, request))
      .subarray(0, protocol.PROOF_BYTES);
    const accepted = await post(
      protocol.Paths.CONNECT,
      protocol.encodeConnectRequest({ ...request, proof }),
      echo,
    );
    expect(accepted.code).toBe(Code.CREATED);
    const session = protocol.decodeConnectResponse(accepted.payload);
    expect(session.format).toBeUndefined();

    // Three stanzas of one structure for it, from a format 2 node: a format 2 downlink would make the
    // second and third instances of the first.
    const sender = await tappedNode("sensor1", 1, gw.address, cleanups);
    await sender.client.connect();
    for (let i = 1; i <= 3; i++) await sender.client.send(body(`actuator1@${DOMAIN}`, `on ${i}`));
    const decoder = new SessionDecoder({ aliases: session.aliases });
    const seen: string[] = [];
    let received = session.delivered;
    for (let polls = 0; polls < 10 && seen.length < 3; polls++) {
      const r = await post(
        protocol.Paths.UPLINK,
        protocol.encodeUplink({ seq: session.h + 1, ack: received, frames: [] }),
      );
      if (r.payload.length === 0) continue;
      const d = protocol.decodeDownlink(r.payload);
      for (const f of d.frames) {
        expect(diagnostic(f)).not.toMatch(/^(\d+, )?13\(|\[-\d+, \{/); // no template, no instance
        seen.push(JSON.stringify(decoder.decode(f).stanza.children));
      }
      received = d.dseq + d.frames.length - 1;
    }
    expect(seen).toHaveLength(3);
    expect(seen[2]).toContain("on 3");
  });
});

const body = (to: string, text: string): XElement =>
  el("jabber:client", "message", { to }, el("jabber:client", "body", {}, text));
