/**
 * The cxmpp session layer end to end on the in-memory network: connect with proof of the device key,
 * reliable uplink exactly once and in order under loss, downlink, local routing, telemetry, errors.
 */
import { describe, expect, it } from "vitest";
import { attr, el, type XElement } from "../../codec/index.js";
import { SessionError } from "../../src/core/index.js";
import { DOMAIN, harness, key } from "../kit/session-harness.js";
import { bodyOf } from "../kit/stanzas.js";

const msg = (to: string, body: string): XElement =>
  el("jabber:client", "message", { to, type: "chat" }, el("jabber:client", "body", {}, body));

describe("cxmpp session: connect", () => {
  it("proves the device key over the gateway's nonce and gets the node's JID and aliases", async () => {
    const h = harness(["sensor1"]);
    const node = h.node("sensor1");
    const connected = node.connect();
    await h.settle(200);
    const session = await connected;
    expect(session.jid).toBe(`sensor1@${DOMAIN}/cxmpp`);
    expect(session.aliases.slice(0, 2)).toEqual([`sensor1@${DOMAIN}/cxmpp`, DOMAIN]);
    expect(h.gateway.stats.connects).toBe(1);
    expect(h.gateway.session("sensor1")?.peer).toBeDefined();
  });

  it("refuses a wrong key and an unknown identity the same way (4.03), without a session", async () => {
    const h = harness(["sensor1"]);
    const wrong = h.node("sensor1", { key: key(99) });
    const p1 = wrong.connect();
    const e1 = expect(p1).rejects.toThrow(/4\.03/);
    await h.settle(200);
    await e1;
    const unknown = h.node("nobody");
    const p2 = unknown.connect();
    const e2 = expect(p2).rejects.toBeInstanceOf(SessionError);
    await h.settle(200);
    await e2;
    expect(h.gateway.stats.refusedConnects).toBe(2);
    expect(h.gateway.session("sensor1")?.peer).toBeUndefined();
  });

  it("answers an uplink without a session with 4.01 (the client connects again on its own)", async () => {
    const h = harness(["sensor1"]);
    const node = h.node("sensor1");
    const c = node.connect();
    await h.settle(200);
    await c;
    // The gateway forgets the session (as after a restart without durable state).
    (h.gateway as unknown as { registry: { byPeer: Map<unknown, unknown> } }).registry.byPeer.clear();
    const sent = node.send(msg(`out@elsewhere.example`, "after restart"));
    await h.settle(1000);
    await sent;
    expect(h.gateway.stats.connects).toBe(2);
    expect(h.outbound.map(bodyOf)).toEqual(["after restart"]);
  });
});

describe("cxmpp session: uplink and routing", () => {
  it("stamps `from` from the session, whatever the node wrote", async () => {
    const h = harness(["sensor1"]);
    const node = h.node("sensor1");
    const c = node.connect();
    await h.settle(200);
    await c;
    const forged = el("jabber:client", "message", {
      to: "x@elsewhere.example",
      from: "admin@elsewhere.example",
    });
    const sent = node.send(forged);
    await h.settle(200);
    await sent;
    expect(attr(h.outbound[0]!, "from")).toBe(`sensor1@${DOMAIN}/cxmpp`);
  });

  it("routes between nodes of the gateway: piggybacked on the receiver's next exchange", async () => {
    const h = harness(["sensor1", "actuator1"]);
    const a = h.node("sensor1");
    const b = h.node("actuator1");
    const got: XElement[] = [];
    b.onStanza((s) => got.push(s));
    const ca = a.connect();
    const cb = b.connect();
    await h.settle(300);
    await Promise.all([ca, cb]);
    const sent = a.send(msg(`actuator1@${DOMAIN}`, "switch on"));
    await h.settle(200);
    await sent;
    expect(got).toEqual([]); // the actuator has not asked yet
    const polled = b.poll();
    await h.settle(200);
    await polled;
    expect(got.map(bodyOf)).toEqual(["switch on"]);
    expect(attr(got[0]!, "from")).toBe(`sensor1@${DOMAIN}/cxmpp`);
    // Acknowledged with the next exchange: the mailbox empties.
    const again = b.poll();
    await h.settle(200);
    await again;
    expect(h.gateway.session("actuator1")?.mailbox).toHaveLength(0);
    expect(got).toHaveLength(1);
  });

  it("bounces a stanza for an unknown local JID with service-unavailable (RFC 6120 §8.3.3.19)", async () => {
    const h = harness(["sensor1"]);
    const a = h.node("sensor1");
    const got: XElement[] = [];
    a.onStanza((s) => got.push(s));
    const c = a.connect();
    await h.settle(200);
    await c;
    const sent = a.send(msg(`ghost@${DOMAIN}`, "anyone?"));
    await h.settle(200);
    await sent;
    const p = a.poll();
    await h.settle(200);
    await p;
    expect(got).toHaveLength(1);
    expect(attr(got[0]!, "type")).toBe("error");
    expect(attr(got[0]!, "from")).toBe(`ghost@${DOMAIN}`);
    const error = got[0]!.children.find((c) => typeof c !== "string" && c.name === "error") as XElement;
    expect(error.children.map((c) => (typeof c === "string" ? c : c.name))).toEqual(["service-unavailable"]);
  });

  it("telemetry: the first reading goes reliably, the rest as NON with No-Response and nothing back", async () => {
    const h = harness(["sensor1"]);
    const node = h.node("sensor1");
    const c = node.connect();
    await h.settle(200);
    await c;
    node.sendTelemetry(msg("sink@elsewhere.example", "t0"));
    await h.settle(200); // acknowledged: its inserts are what the NON frames may reference
    const before = h.net.log.length;
    for (let i = 1; i < 5; i++) node.sendTelemetry(msg("sink@elsewhere.example", `t${i}`));
    await h.settle(300);
    expect(h.outbound.map(bodyOf)).toEqual(["t0", "t1", "t2", "t3", "t4"]);
    expect(h.gateway.stats.telemetryIn).toBe(4);
    expect(h.gateway.stats.stanzasIn).toBe(1);
    // Four NON datagrams up, none down (RFC 7967 No-Response), each smaller than the first reading's.
    const after = h.net.log.slice(before);
    expect(after.map((r) => r.from)).toEqual(Array(4).fill(after[0]!.from));
    const first = h.net.log
      .slice(0, before)
      .filter((r) => r.from === after[0]!.from)
      .at(-1)!;
    for (const r of after) expect(r.data.length).toBeLessThan(first.data.length);
  });
});

describe("cxmpp session under loss", () => {
  it("delivers thousands of CON stanzas from several nodes exactly once, in order, at 30% loss each way", async () => {
    const h = harness(
      ["n1", "n2", "n3"],
      { loss: 0.3, duplicate: 0.05, reorder: 0.1, reorderDelayMs: 400 },
      7,
    );
    const nodes = ["n1", "n2", "n3"].map((n) => h.node(n));
    const connects = nodes.map((n) => n.connect());
    await h.settle(30_000);
    await Promise.all(connects);
    const perNode = 400;
    const sends: Promise<void>[] = [];
    nodes.forEach((node, i) => {
      for (let k = 0; k < perNode; k++)
        sends.push(node.send(msg("sink@elsewhere.example", `n${i + 1}:${k}`)));
    });
    let done = 0;
    for (const s of sends) s.then(() => done++);
    for (let round = 0; round < 400 && done < sends.length; round++) await h.settle(2_000, 50);
    expect(done).toBe(sends.length);
    // Exactly once and in order per node; no frame ever failed to decode (no table desync).
    for (let i = 1; i <= 3; i++) {
      const bodies = h.outbound.map(bodyOf).filter((b) => b.startsWith(`n${i}:`));
      expect(bodies).toEqual(Array.from({ length: perNode }, (_, k) => `n${i}:${k}`));
    }
    expect(h.gateway.stats.badFrames).toBe(0);
    expect(h.gateway.stats.duplicateFrames).toBeGreaterThan(0); // retransmissions really happened
  }, 120_000);
});

describe("cxmpp session: push to always-on nodes", () => {
  it("an observing node gets a stanza as soon as it is routed, and acknowledges it with an empty uplink", async () => {
    const h = harness(["sensor1", "display1"]);
    const sensor = h.node("sensor1");
    const display = h.node("display1");
    const got: XElement[] = [];
    display.onStanza((s) => got.push(s));
    const c = Promise.all([sensor.connect(), display.connect()]);
    await h.settle(300);
    await c;
    const observing = display.observeDownlink();
    await h.settle(200);
    await observing;
    const sent = sensor.send(msg(`display1@${DOMAIN}`, "21.5 °C"));
    await h.settle(300);
    await sent;
    expect(got.map(bodyOf)).toEqual(["21.5 °C"]); // no poll: pushed by an Observe notification
    await h.settle(300);
    expect(h.gateway.session("display1")?.mailbox).toHaveLength(0); // acknowledged
    expect(h.gateway.session("display1")?.delivered).toBe(1);
  });
});

describe("cxmpp session: an observation the gateway dropped", () => {
  it("is registered again after a quiet period, so pushed stanzas are not stranded (RFC 7641 §3.3.1)", async () => {
    const h = harness(["sensor1", "display1"]);
    const sensor = h.node("sensor1");
    const display = h.node("display1");
    const got: string[] = [];
    display.onStanza((s) => got.push(bodyOf(s)));
    const c = Promise.all([sensor.connect(), display.connect()]);
    await h.settle(300);
    await c;
    const observing = display.observeDownlink();
    await h.settle(200);
    await observing;
    // The display's datagrams to the gateway are lost for a while: its ACK of the 10th notification
    // (a CON, RFC 7641 §4.5) never arrives, and the gateway drops the observer. The display cannot
    // tell: for it the observation is still on.
    const displayAt = h.address(display);
    h.drop((from) => from === displayAt);
    for (let i = 1; i <= 10; i++) {
      const sent = sensor.send(msg(`display1@${DOMAIN}`, `m${i}`));
      await h.settle(100);
      await sent;
    }
    await h.settle(90_000); // every retransmission of the CON notification goes unanswered
    expect(h.gatewayEndpoint.observers.count()).toBe(0);
    h.drop(undefined);
    const late = sensor.send(msg(`display1@${DOMAIN}`, "after"));
    await h.settle(300);
    await late;
    const before = got.length;
    await h.settle(130_000); // the refresh period (120 s) passes without a notification
    expect(h.gatewayEndpoint.observers.count()).toBe(1); // registered again
    expect(got.length).toBeGreaterThan(before);
    expect(got).toContain("after");
    expect(new Set(got).size).toBe(got.length); // nothing twice
  });
});

describe("cxmpp session: node reboot", () => {
  it("a rebooted node (no RAM, no resume token) reconnects; its mailbox survives; nothing is delivered twice", async () => {
    const h = harness(["sensor1", "actuator1"]);
    const sensor = h.node("sensor1");
    let actuator = h.node("actuator1");
    const first: XElement[] = [];
    actuator.onStanza((s) => first.push(s));
    const c = Promise.all([sensor.connect(), actuator.connect()]);
    await h.settle(300);
    await c;
    const s1 = sensor.send(msg(`actuator1@${DOMAIN}`, "one"));
    await h.settle(200);
    await s1;
    const p1 = actuator.poll();
    await h.settle(200);
    await p1; // "one" received but not yet acknowledged (the ack rides on the next exchange)
    expect(first.map(bodyOf)).toEqual(["one"]);
    // The actuator reboots: a new client, same identity and key, a new address, no session state.
    actuator.close();
    actuator = h.node("actuator1");
    const second: XElement[] = [];
    actuator.onStanza((s) => second.push(s));
    const s2 = sensor.send(msg(`actuator1@${DOMAIN}`, "two"));
    const c2 = actuator.connect();
    await h.settle(300);
    await Promise.all([s2, c2]);
    const p2 = actuator.poll();
    await h.settle(300);
    await p2;
    // "one" was never acknowledged, so it comes again after the reboot (at least once across a reboot
    // that loses RAM); "two" follows in order; each exactly once to the new instance.
    expect(second.map(bodyOf)).toEqual(["one", "two"]);
    const p3 = actuator.poll();
    await h.settle(300);
    await p3;
    expect(h.gateway.session("actuator1")?.mailbox).toHaveLength(0);
    expect(second).toHaveLength(2);
  });
});
