/**
 * One layer at a time, in memory: the outbox pump (barriers, windows, resend after a cut, origin-id,
 * delay), what the gateway answers for its nodes (network-inbound.ts), and the iq tracker that keeps
 * results unspoofable. The same behaviour against a real Prosody: test/interop/federation.test.ts.
 */
import { describe, expect, it } from "vitest";
import { attr, el, type XElement } from "../../codec/index.js";
import { MemoryDevices } from "../../gateway/devices.js";
import { NetworkInbound } from "../../gateway/federation/network-inbound.js";
import { BARRIER_NS, OutboxPump } from "../../gateway/federation/outbox-pump.js";
import { GatewayService } from "../../gateway/session/gateway-service.js";
import { IqTracker } from "../../gateway/session/iq-tracker.js";
import { capsVer } from "../../gateway/session/node-disco.js";
import { openStore } from "../../gateway/store/index.js";
import { FakeTime, fakeRandom } from "../kit/fake-time.js";
import { key, nodeMac } from "../kit/session-harness.js";
import { bodyOf } from "../kit/stanzas.js";

const DOMAIN = "iot.localhost";
const msg = (from: string, to: string, body: string): XElement =>
  el("jabber:client", "message", { from, to, type: "chat" }, el("jabber:client", "body", {}, body));
const child = (s: XElement, ns: string): XElement | undefined =>
  s.children.find((c): c is XElement => typeof c !== "string" && c.ns === ns);
const condition = (s: XElement): string | undefined => {
  const error = s.children.find((c): c is XElement => typeof c !== "string" && c.name === "error");
  return error?.children.find((c): c is XElement => typeof c !== "string")?.name;
};

const label = (s: XElement): string => (child(s, BARRIER_NS) ? "barrier" : (bodyOf(s) ?? s.name));

class FakeLink {
  online = true;
  readonly sent: XElement[] = [];
  send(stanza: XElement): boolean {
    if (!this.online) return false;
    this.sent.push(stanza);
    return true;
  }
  /** The server routes our barriers back, as Prosody does. */
  barriers(): XElement[] {
    return this.sent.filter((s) => child(s, BARRIER_NS));
  }
}

const flush = () => new Promise((r) => setImmediate(r));

/** The link drops and comes back; what was sent before the cut is forgotten. */
async function cut(link: FakeLink, pump: OutboxPump): Promise<void> {
  link.online = false;
  pump.offline();
  link.sent.length = 0;
  link.online = true;
  pump.online();
  await flush();
}

describe("outbox pump", () => {
  function setup(window = 4, settleMs = 0) {
    const time = new FakeTime();
    const store = openStore(":memory:", { schedule: (c) => queueMicrotask(c) });
    const link = new FakeLink();
    const pump = new OutboxPump(store.journal, link, {
      domain: DOMAIN,
      clock: time,
      window,
      windows: 2,
      settleMs,
    });
    const add = (n: number) => {
      for (let i = 0; i < n; i++)
        store.journal.outboxAdd(msg(`s@${DOMAIN}/cxmpp`, "alice@a.localhost", `m${i}`), time.now());
    };
    return { time, store, link, pump, add };
  }

  it("sends in order, a barrier per window, at most `windows` unconfirmed; removes only what a barrier confirmed", async () => {
    const { store, link, pump, add } = setup(4);
    add(10);
    pump.kick();
    await flush();
    // 2 windows of 4, each followed by its barrier; the rest waits for a confirmation.
    expect(link.sent.map((s) => label(s))).toEqual([
      "m0",
      "m1",
      "m2",
      "m3",
      "barrier",
      "m4",
      "m5",
      "m6",
      "m7",
      "barrier",
    ]);
    expect(store.journal.outboxDepth).toBe(10);
    expect(pump.consume(link.barriers()[0]!)).toBe(true);
    await flush();
    expect(store.journal.outboxDepth).toBe(6);
    expect(link.sent.slice(10).map((s) => label(s))).toEqual(["m8", "m9", "barrier"]);
  });

  it("after a cut, everything unconfirmed goes again, with the same origin-id", async () => {
    const { link, pump, add } = setup(4);
    add(6);
    pump.kick();
    await flush();
    pump.consume(link.barriers()[0]!);
    const firstIds = link.sent
      .filter((s) => s.name === "message" && bodyOf(s))
      .map((s) => attr(child(s, "urn:xmpp:sid:0")!, "id"));
    await cut(link, pump);
    const again = link.sent.filter((s) => !child(s, BARRIER_NS));
    expect(again.map(bodyOf)).toEqual(["m4", "m5"]); // m0-m3 were confirmed, never resent
    expect(again.map((s) => attr(child(s, "urn:xmpp:sid:0")!, "id"))).toEqual(firstIds.slice(4));
  });

  it("confirmed stanzas settle before they leave the outbox: a cut while they settle sends them again (a clustered server's node dying with them in flight)", async () => {
    const { time, store, link, pump, add } = setup(4, 1000);
    add(6);
    pump.kick();
    await flush();
    pump.consume(link.barriers()[0]!); // m0-m3 confirmed at t
    await flush();
    expect(store.journal.outboxDepth).toBe(6); // still settling
    expect(link.sent.slice(10).map(label)).toEqual([]); // nothing new to send: m4, m5 await their barrier
    time.advance(999);
    pump.kick();
    await flush();
    expect(store.journal.outboxDepth).toBe(6);
    // The link's node dies: m0-m3 (settling) and m4-m5 (unconfirmed) all go again, in order.
    await cut(link, pump);
    expect(link.sent.map(label)).toEqual(["m0", "m1", "m2", "m3", "barrier", "m4", "m5", "barrier"]);
    // Both confirmed, then settled: gone once the settle time has passed since the confirmation.
    for (const b of link.barriers()) pump.consume(b);
    await flush();
    expect(store.journal.outboxDepth).toBe(6);
    time.advance(1000);
    pump.kick();
    await flush();
    expect(store.journal.outboxDepth).toBe(0);
  });

  it("a clean stop removes what is settling: nothing the server confirmed goes again after a restart", async () => {
    const { store, link, pump, add } = setup(4, 60_000);
    add(4);
    pump.kick();
    await flush();
    pump.consume(link.barriers()[0]!);
    await flush();
    expect(store.journal.outboxDepth).toBe(4);
    pump.flush();
    await flush();
    expect(store.journal.outboxDepth).toBe(0);
  });

  it("a barrier from anybody but our own domain confirms nothing", async () => {
    const { store, link, pump, add } = setup(4);
    add(4);
    pump.kick();
    await flush();
    const forged = el(
      "jabber:client",
      "message",
      { from: "mallory@evil.example", to: DOMAIN },
      el(BARRIER_NS, "barrier", { n: "1" }),
    );
    expect(pump.consume(forged)).toBe(false);
    expect(store.journal.outboxDepth).toBe(4);
    expect(link.sent).toHaveLength(5);
  });

  it("a stanza that waited gets a XEP-0203 delay stamped with when it was stored", async () => {
    const { time, link, pump, add } = setup(4);
    add(1);
    const stored = time.now();
    time.advance(5_000);
    pump.kick();
    await flush();
    const delay = child(link.sent[0]!, "urn:xmpp:delay");
    expect(attr(delay!, "stamp")).toBe(new Date(stored).toISOString().replace(/\.\d{3}Z$/, "Z"));
  });
});

/** A gateway service on the fake clock whose stanzas for the XMPP side collect in `out`. */
function serviceWith(devices: MemoryDevices, time: FakeTime): { service: GatewayService; out: XElement[] } {
  const out: XElement[] = [];
  const service = new GatewayService({
    devices,
    domain: DOMAIN,
    mac: nodeMac,
    random: fakeRandom(1),
    clock: time,
    outbound: (s) => out.push(s),
  });
  return { service, out };
}

describe("network inbound: the gateway acting for its nodes", () => {
  function setup() {
    const time = new FakeTime();
    const devices = new MemoryDevices([
      { identity: "sensor1", key: key(1), jid: `sensor1@${DOMAIN}`, peers: ["alice@a.localhost"] },
      { identity: "open1", key: key(2), jid: `open1@${DOMAIN}`, peers: [] },
    ]);
    const { service, out } = serviceWith(devices, time);
    return { service, out, inbound: new NetworkInbound(service), devices };
  }
  const ALICE = "alice@a.localhost/phone";

  it("unknown node: service-unavailable; a sender the node does not accept: not-authorized; errors never answered", () => {
    const { inbound, out } = setup();
    inbound.handle(msg(ALICE, `nobody@${DOMAIN}`, "hi"));
    inbound.handle(msg("bob@a.localhost/x", `sensor1@${DOMAIN}`, "hi"));
    inbound.handle({
      ...msg(ALICE, `nobody@${DOMAIN}`, "x"),
      attrs: [
        { ns: "", name: "from", value: ALICE },
        { ns: "", name: "to", value: `nobody@${DOMAIN}` },
        { ns: "", name: "type", value: "error" },
      ],
    });
    expect(out.map(condition)).toEqual(["service-unavailable", "not-authorized"]);
    expect(out.map((s) => attr(s, "to"))).toEqual([ALICE, "bob@a.localhost/x"]);
    expect(attr(out[0]!, "from")).toBe(`nobody@${DOMAIN}`);
  });

  it("disco#info and ping are answered by the gateway, with the caps the presence advertises", () => {
    const { inbound, out } = setup();
    inbound.handle(
      el(
        "jabber:client",
        "iq",
        { from: ALICE, to: `sensor1@${DOMAIN}`, type: "get", id: "d1" },
        el("http://jabber.org/protocol/disco#info", "query", {}),
      ),
    );
    inbound.handle(
      el(
        "jabber:client",
        "iq",
        { from: ALICE, to: `sensor1@${DOMAIN}/cxmpp`, type: "get", id: "p1" },
        el("urn:xmpp:ping", "ping", {}),
      ),
    );
    expect(out.map((s) => [attr(s, "type"), attr(s, "id"), attr(s, "to")])).toEqual([
      ["result", "d1", ALICE],
      ["result", "p1", ALICE],
    ]);
    const features = child(out[0]!, "http://jabber.org/protocol/disco#info")!
      .children.filter((c): c is XElement => typeof c !== "string" && c.name === "feature")
      .map((f) => attr(f, "var"));
    expect(features).toContain("urn:xmpp:ping");
    expect(capsVer("sensor1")).toMatch(/^[A-Za-z0-9+/]{27}=$/);
  });

  it("subscriptions: an allowed peer is approved and gets the presence; anybody else is refused", () => {
    const { inbound, out } = setup();
    inbound.handle(
      el("jabber:client", "presence", { from: ALICE, to: `sensor1@${DOMAIN}`, type: "subscribe" }),
    );
    inbound.handle(
      el("jabber:client", "presence", {
        from: "bob@a.localhost/x",
        to: `sensor1@${DOMAIN}`,
        type: "subscribe",
      }),
    );
    expect(out.map((s) => [attr(s, "type") ?? "available", attr(s, "to")])).toEqual([
      ["subscribed", "alice@a.localhost"],
      ["unavailable", "alice@a.localhost"], // the node never connected
      ["unsubscribed", "bob@a.localhost"],
    ]);
  });

  it("a message for a node waits in its mailbox; an iq request reaches it under a short id", () => {
    const { inbound, service, out } = setup();
    inbound.handle(msg(ALICE, `sensor1@${DOMAIN}/cxmpp`, "switch on"));
    const long = "a-very-long-network-id-0123456789";
    inbound.handle(
      el(
        "jabber:client",
        "iq",
        { from: ALICE, to: `sensor1@${DOMAIN}/cxmpp`, type: "get", id: long },
        el("jabber:iq:version", "query", {}),
      ),
    );
    const queued = service.session("sensor1")!.mailbox.queued.map((q) => q.stanza);
    expect(queued.map((s) => s.name)).toEqual(["iq", "message"]); // iq first (priority)
    expect(attr(queued[0]!, "id")).toBe("1");
    expect(out).toHaveLength(0);
  });
});

describe("iq tracker", () => {
  it("a node's result is accepted once, for a request it was sent, and leaves with the original id", () => {
    const t = new IqTracker(() => 0);
    const short = t.requestToNode("n1", "long-id", "alice@a/x");
    expect(t.resultFromNode("n1", "zz")).toBeUndefined();
    expect(t.resultFromNode("n2", short)).toBeUndefined();
    expect(t.resultFromNode("n1", short)).toEqual(
      expect.objectContaining({ id: "long-id", requester: "alice@a/x" }),
    );
    expect(t.resultFromNode("n1", short)).toBeUndefined(); // only once
  });

  it("a result for a node must come from the JID asked, with the id used", () => {
    const t = new IqTracker(() => 0);
    t.requestFromNode("n1", "q1", "server.example");
    t.requestFromNode("n1", "q2", "bob@b.example");
    expect(t.resultToNode("n1", "q1", "mallory@evil.example")).toBe(false);
    expect(t.resultToNode("n1", "q1", "server.example")).toBe(true);
    expect(t.resultToNode("n1", "q2", "bob@b.example/laptop")).toBe(true); // a bare JID answers from a full one
    expect(t.resultToNode("n1", "q9", "server.example")).toBe(false);
  });

  it("requests are forgotten after 10 minutes", () => {
    let now = 0;
    const t = new IqTracker(() => now);
    const short = t.requestToNode("n1", "x", "alice@a/x");
    now = 600_001;
    expect(t.resultFromNode("n1", short)).toBeUndefined();
  });
});

describe("asleep policy", () => {
  it("bounce: a message for a node that is not awake gets recipient-unavailable; queue (default) keeps it", () => {
    const time = new FakeTime();
    const devices = new MemoryDevices([{ identity: "s1", key: key(1), jid: `s1@${DOMAIN}`, peers: [] }]);
    const { service, out } = serviceWith(devices, time);
    new NetworkInbound(service, undefined, "bounce").handle(msg("alice@a.localhost/x", `s1@${DOMAIN}`, "hi"));
    expect(out.map(condition)).toEqual(["recipient-unavailable"]);
    new NetworkInbound(service).handle(msg("alice@a.localhost/x", `s1@${DOMAIN}`, "hi"));
    expect(out).toHaveLength(1);
    expect(service.session("s1")!.mailbox.length).toBe(1);
  });
});
