/**
 * Sleeping nodes at the gateway (docs/PROTOCOL.md §4.2–§4.3) on the in-memory network with the fake
 * clock: mailboxes held while a node sleeps and drained on its next uplink, priorities, limits, TTL,
 * coalescing, lost wake-ups, node presence to peers, and revocation.
 */
import { describe, expect, it } from "vitest";
import { attr, el, type XElement } from "../../codec/index.js";
import { classify } from "../../gateway/session/mailbox.js";
import { AWAKE_WINDOW_MS, type NodeSession } from "../../gateway/session/node-session.js";
import { Code, type NodeClient } from "../../src/core/index.js";
import {
  DOMAIN,
  type ExchangeRecord,
  type Harness,
  type HarnessOptions,
  harness,
} from "../kit/session-harness.js";
import { bodyOf } from "../kit/stanzas.js";

const CLIENT = "jabber:client";
const STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";
const DELAY = "urn:xmpp:delay";
const CONTROL = "urn:xmpp:iot:control";
const CHAT_STATES = "http://jabber.org/protocol/chatstates";
const SLEEPY = `sleepy@${DOMAIN}`;
const SENDER = `sender@${DOMAIN}/cxmpp`;

const msg = (to: string, body: string): XElement =>
  el(CLIENT, "message", { to, type: "chat" }, el(CLIENT, "body", {}, body));
const iq = (to: string, id: string): XElement =>
  el(CLIENT, "iq", { to, type: "get", id }, el("urn:xmpp:ping", "ping"));
const presence = (to: string, status: string): XElement =>
  el(CLIENT, "presence", { to }, el(CLIENT, "status", {}, status));
const control = (to: string, fields: Record<string, number>): XElement =>
  el(
    CLIENT,
    "message",
    { to },
    el(
      CONTROL,
      "set",
      {},
      ...Object.entries(fields).map(([name, value]) => el(CONTROL, "int", { name, value: String(value) })),
    ),
  );
const chatState = (to: string, state: string): XElement =>
  el(CLIENT, "message", { to, type: "chat" }, el(CHAT_STATES, state));

function child(s: XElement | undefined, name: string, ns?: string): XElement | undefined {
  const c = s?.children.find(
    (c) => typeof c !== "string" && c.name === name && (ns === undefined || c.ns === ns),
  );
  return typeof c === "string" ? undefined : c;
}

function text(s: XElement | undefined): string {
  return s ? s.children.filter((c) => typeof c === "string").join("") : "";
}

/** XEP-0082 date-time to the second, as the gateway stamps. */
function stamp(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** A short name for a stanza, to compare orders: a message is the first word of its body. */
function label(s: XElement): string {
  if (s.name === "iq") return `iq:${attr(s, "id")}`;
  if (s.name === "presence") return `presence:${attr(s, "type") ?? text(child(s, "status"))}`;
  const set = child(s, "set", CONTROL);
  if (set) {
    return `set:${set.children
      .filter((c): c is XElement => typeof c !== "string")
      .map((c) => `${attr(c, "name")}=${attr(c, "value")}`)
      .join(",")}`;
  }
  const state = s.children.find((c): c is XElement => typeof c !== "string" && c.ns === CHAT_STATES);
  return state ? `chatstate:${state.name}` : bodyOf(s).split(" ")[0]!;
}

/** Runs the fake clock for `ms`, then returns what `p` settled with (throws if it is still pending). */
async function within<T>(h: Harness, p: Promise<T>, ms = 300): Promise<T> {
  const box: { s?: { ok: true; v: T } | { ok: false; e: unknown } } = {};
  p.then(
    (v) => {
      box.s = { ok: true, v };
    },
    (e: unknown) => {
      box.s = { ok: false, e };
    },
  );
  await h.settle(ms);
  if (!box.s) throw new Error(`still pending after ${ms} ms`);
  if (!box.s.ok) throw box.s.e;
  return box.s.v;
}

/** Runs the fake clock for `ms`, expecting `p` to fail by then; returns its error. */
async function failsWithin(h: Harness, p: Promise<unknown>, ms: number): Promise<Error> {
  try {
    await within(h, p, ms);
  } catch (error) {
    if (error instanceof Error && !error.message.startsWith("still pending")) return error;
    throw error;
  }
  throw new Error("expected a failure");
}

/** The gateway's records of uplinks from `node` since record number `from`. */
function uplinks(h: Harness, node: NodeClient, from = 0): ExchangeRecord[] {
  return h.exchanges.slice(from).filter((r) => r.peer === h.address(node) && r.path === "u");
}

/** One wake-up with nothing to send: a poll, and the `more` polls after it. Returns their exchanges. */
async function wake(h: Harness, node: NodeClient, ms = 1_000): Promise<ExchangeRecord[]> {
  const before = h.exchanges.length;
  await within(h, node.poll(), ms);
  return uplinks(h, node, before);
}

interface Setup {
  h: Harness;
  sleepy: NodeClient;
  sender: NodeClient;
  /** What the sleepy node received, in order. */
  got: XElement[];
  /** What the sender received, in order. */
  senderGot: XElement[];
  session: NodeSession;
  /** Sends a stanza from the (always-on) sender and waits for the gateway to have routed it. */
  send(stanza: XElement): Promise<number>;
}

/** A sleepy node (wake 60 s) and an always-on sender, both connected; the sleepy node has gone to sleep. */
async function asleep(options: HarnessOptions = {}, retryDelayMs?: number): Promise<Setup> {
  const h = harness(["sleepy", "sender"], {}, 1, options);
  const sleepy = h.node("sleepy", { wake: 60, ...(retryDelayMs !== undefined ? { retryDelayMs } : {}) });
  const sender = h.node("sender");
  const got: XElement[] = [];
  const senderGot: XElement[] = [];
  sleepy.onStanza((s) => got.push(s));
  sender.onStanza((s) => senderGot.push(s));
  await within(h, Promise.all([sleepy.connect(), sender.connect()]));
  const session = h.gateway.session("sleepy")!;
  expect(session.wake).toBe(60);
  await h.settle(AWAKE_WINDOW_MS + 100);
  expect(h.gateway.state(session)).toBe("xa");
  return {
    h,
    sleepy,
    sender,
    got,
    senderGot,
    session,
    async send(stanza) {
      const before = h.exchanges.length;
      await within(h, sender.send(stanza), 100);
      const routed = uplinks(h, sender, before);
      expect(routed).toHaveLength(1);
      return routed[0]!.at; // when the gateway routed (and queued) it
    },
  };
}

describe("sleeping node: mailbox", () => {
  it("is asleep 5 s after its last exchange; stanzas wait with a XEP-0203 delay; the next poll drains them over `more` exchanges", async () => {
    const { h, sleepy, got, session, send } = await asleep();
    const seen = session.lastSeen;
    // Awake for 5 s after its last exchange (docs/PROTOCOL.md §4.3), asleep after.
    expect(h.gateway.state(session, seen + 5_000)).toBe("available");
    expect(h.gateway.state(session, seen + 5_001)).toBe("xa");
    expect(h.gateway.census()).toEqual({ awake: 1, asleep: 1, mailbox: 0 });

    const quiet = h.time.now();
    const n = 20;
    const queuedAt: number[] = [];
    for (let i = 0; i < n; i++) {
      queuedAt.push(await send(msg(SLEEPY, `m${i} ${"x".repeat(60)}`)));
      expect(session.mailbox.length).toBe(i + 1);
      await h.settle(700); // spread the stamps over several seconds
    }
    expect(h.gateway.census()).toEqual({ awake: 1, asleep: 1, mailbox: n });
    // Nothing went to the sleeping node: no push, not one datagram.
    expect(h.pushes).toEqual([]);
    expect(h.net.log.filter((r) => r.to === h.address(sleepy) && r.at >= quiet)).toEqual([]);
    expect(got).toEqual([]);
    expect(new Set(queuedAt.map(stamp)).size).toBeGreaterThan(5);

    const drain = await wake(h, sleepy);
    // Every response but the last says `more`; the frames follow each other (none sent twice).
    expect(drain.length).toBeGreaterThan(1);
    expect(drain.map((r) => r.downlink?.more)).toEqual([...Array(drain.length - 1).fill(true), false]);
    let dseq = 1;
    for (const r of drain) {
      expect(r.code).toBe(Code.CHANGED);
      expect(r.downlink!.dseq).toBe(dseq);
      expect(r.downlink!.bytes).toBeLessThanOrEqual(512);
      dseq += r.downlink!.frames;
    }
    expect(dseq - 1).toBe(n);
    expect(drain).toHaveLength(3); // measured: 20 stanzas of ~80 bytes in 3 exchanges of <= 512 bytes

    expect(got.map(label)).toEqual(Array.from({ length: n }, (_, i) => `m${i}`));
    got.forEach((s, i) => {
      const delay = child(s, "delay", DELAY);
      expect(attr(delay!, "stamp")).toBe(stamp(queuedAt[i]!));
      expect(attr(delay!, "from")).toBe(DOMAIN);
      expect(attr(s, "from")).toBe(SENDER);
    });
    expect(h.gateway.stats.stanzasOut).toBe(n);
    expect(h.gateway.state(session)).toBe("available");
    expect(h.gateway.census().awake).toBe(2);

    // The last batch is acknowledged by the next exchange, answered with an empty 2.04.
    expect(session.mailbox.flying).toHaveLength(drain.at(-1)!.downlink!.frames);
    expect(session.mailbox.queued).toHaveLength(0);
    const ack = await wake(h, sleepy);
    expect(ack).toHaveLength(1);
    expect(ack[0]!.code).toBe(Code.CHANGED);
    expect(ack[0]!.downlink).toBeUndefined();
    expect(session.mailbox.length).toBe(0);
    expect(session.mailbox.size).toBe(0);
    expect(session.delivered).toBe(n);
    expect(got).toHaveLength(n);
  });

  it("drains queued iq before messages before presence, in arrival order within each", async () => {
    const { h, sleepy, got, send } = await asleep();
    await send(presence(SLEEPY, "p1"));
    await send(msg(SLEEPY, "m1"));
    await send(iq(SLEEPY, "q1"));
    await send(msg(SLEEPY, "m2"));
    await send(iq(SLEEPY, "q2"));
    await wake(h, sleepy);
    // The iq requests reach the node under short ids of the gateway's (iq-tracker.ts), in arrival order.
    expect(got.map(label)).toEqual(["iq:1", "iq:2", "m1", "m2", "presence:p1"]);
    for (const s of got) expect(child(s, "delay", DELAY)).toBeDefined();
  });

  it("never reorders a stanza in flight: a later iq goes after what was sent, before what is queued", async () => {
    const { h, sleepy, got, send } = await asleep({ maxDownlinkBytes: 250 });
    for (let i = 1; i <= 4; i++) await send(msg(SLEEPY, `m${i} ${"y".repeat(60)}`));
    const before = h.exchanges.length;
    const to = h.address(sleepy);
    h.drop((_, peer) => peer === to); // the answers to this wake-up are lost
    const polled = sleepy.poll();
    await h.settle(AWAKE_WINDOW_MS + 1_000);
    const first = uplinks(h, sleepy, before);
    expect(first).toHaveLength(1); // the CON retransmissions were answered from the CoAP cache
    expect(first[0]!.downlink).toMatchObject({ dseq: 1, frames: 2, more: true });
    await send(iq(SLEEPY, "q1")); // the node is asleep again: queued, ahead of m3 and m4
    h.drop(undefined);
    await within(h, polled, 30_000);
    expect(got.map(label)).toEqual(["m1", "m2", "iq:1", "m3", "m4"]);
    expect(h.dropped).toBeGreaterThan(1);
  });
});

describe("sleeping node: mailbox limits", () => {
  function expectResourceConstraint(error: XElement | undefined, body: string): void {
    expect(error).toBeDefined();
    expect(attr(error!, "type")).toBe("error");
    expect(attr(error!, "from")).toBe(SLEEPY);
    expect(attr(error!, "to")).toBe(SENDER);
    expect(bodyOf(error)).toBe(body); // the original payload comes back
    const e = child(error, "error", CLIENT);
    expect(attr(e!, "type")).toBe("wait");
    const conditions = e!.children.filter((c): c is XElement => typeof c !== "string");
    expect(conditions.map((c) => `${c.ns} ${c.name}`)).toEqual([`${STANZAS} resource-constraint`]);
  }

  it("maxStanzas: the stanza that does not fit is refused with resource-constraint (wait); the accepted ones all arrive", async () => {
    const { h, sleepy, sender, got, senderGot, session, send } = await asleep({ mailbox: { maxStanzas: 3 } });
    for (const body of ["m1", "m2", "m3", "m4"]) await send(msg(SLEEPY, body));
    expect(session.mailbox.length).toBe(3);
    expect(h.gateway.stats.mailboxFull).toBe(1);
    await wake(h, sender);
    expect(senderGot).toHaveLength(1);
    expectResourceConstraint(senderGot[0], "m4");
    await wake(h, sleepy);
    expect(got.map(label)).toEqual(["m1", "m2", "m3"]);
    await wake(h, sleepy); // acknowledged: room again
    expect(session.mailbox.length).toBe(0);
    await send(msg(SLEEPY, "m5"));
    expect(session.mailbox.length).toBe(1);
    expect(h.gateway.stats.mailboxFull).toBe(1);
    expect(senderGot).toHaveLength(1);
  });

  it("maxBytes: a stanza that would overflow is refused, a smaller one after it still fits", async () => {
    const maxBytes = 200;
    const { h, sleepy, sender, got, senderGot, session, send } = await asleep({ mailbox: { maxBytes } });
    await send(msg(SLEEPY, "a".repeat(40)));
    await send(msg(SLEEPY, "b".repeat(40)));
    const small = session.mailbox.size;
    await send(msg(SLEEPY, "c".repeat(90)));
    expect(h.gateway.stats.mailboxFull).toBe(1);
    expect(session.mailbox.size).toBe(small);
    await send(msg(SLEEPY, "d".repeat(40)));
    expect(session.mailbox.length).toBe(3);
    const withD = session.mailbox.size;
    expect(withD).toBeLessThanOrEqual(maxBytes);
    await wake(h, sender);
    expect(senderGot).toHaveLength(1);
    expectResourceConstraint(senderGot[0], "c".repeat(90));
    await wake(h, sleepy);
    expect(got.map(bodyOf)).toEqual(["a".repeat(40), "b".repeat(40), "d".repeat(40)]);
    await wake(h, sleepy); // acknowledged: the bytes are free again
    expect(session.mailbox.size).toBe(0);
    await send(msg(SLEEPY, "c".repeat(90)));
    expect(session.mailbox.length).toBe(1);
    expect(h.gateway.stats.mailboxFull).toBe(1);
    // The arithmetic of the refusal: a + b + c would not fit, a + b + d does.
    const big = session.mailbox.size;
    expect(small + big).toBeGreaterThan(maxBytes);
    expect(big).toBeGreaterThan(withD - small);
  });
});

describe("sleeping node: TTL", () => {
  it("tick drops queued stanzas once ttlMs has passed; they are never delivered", async () => {
    const ttlMs = 30_000;
    const { h, sleepy, got, session, send } = await asleep({ mailbox: { ttlMs } });
    const t1 = await send(msg(SLEEPY, "old"));
    await h.settle(10_000);
    const t2 = await send(msg(SLEEPY, "newer"));
    h.gateway.tick(t1 + ttlMs - 1);
    expect(session.mailbox.length).toBe(2);
    expect(h.gateway.stats.mailboxExpired).toBe(0);
    h.gateway.tick(t1 + ttlMs);
    expect(session.mailbox.queued.map((q) => label(q.stanza))).toEqual(["newer"]);
    expect(h.gateway.stats.mailboxExpired).toBe(1);
    expect(t2 + ttlMs).toBeGreaterThan(h.time.now());
    await wake(h, sleepy);
    expect(got.map(label)).toEqual(["newer"]);
    h.gateway.tick(t2 + ttlMs + 1); // in flight by now: not expired
    expect(h.gateway.stats.mailboxExpired).toBe(1);
    await wake(h, sleepy);
    expect(session.mailbox.length).toBe(0);
    expect(got.map(label)).toEqual(["newer"]);
  });

  it("keeps stanzas in flight (sent, not acknowledged) past their TTL and resends them; only queued ones expire", async () => {
    const ttlMs = 30_000;
    const { h, sleepy, got, session, send } = await asleep({ mailbox: { ttlMs }, maxDownlinkBytes: 250 });
    let queued = 0;
    for (let i = 1; i <= 4; i++) queued = await send(msg(SLEEPY, `m${i} ${"z".repeat(60)}`));
    const to = h.address(sleepy);
    h.drop((_, peer) => peer === to);
    const before = h.exchanges.length;
    const error = await failsWithin(h, sleepy.poll(), 100_000); // every answer lost: the poll gives up
    expect(error.message).toMatch(/after 7 transmissions/);
    const first = uplinks(h, sleepy, before);
    expect(first).toHaveLength(1);
    expect(first[0]!.downlink).toMatchObject({ dseq: 1, frames: 2, more: true });
    expect(h.time.now()).toBeGreaterThan(queued + ttlMs);
    h.gateway.tick();
    expect(h.gateway.stats.mailboxExpired).toBe(2); // m3 and m4, never sent
    expect(session.mailbox.flying.map((q) => label(q.stanza))).toEqual(["m1", "m2"]);
    expect(session.mailbox.queued).toHaveLength(0);
    h.drop(undefined);
    const again = await wake(h, sleepy);
    expect(again).toHaveLength(1);
    expect(again[0]!.downlink).toMatchObject({ dseq: 1, frames: 2, more: false }); // the same frames
    expect(got.map(label)).toEqual(["m1", "m2"]);
    await wake(h, sleepy);
    expect(session.mailbox.length).toBe(0);
    expect(got).toHaveLength(2);
  });
});

describe("sleeping node: coalescing", () => {
  it("three presences from the same sender leave the latest; another sender's stays", async () => {
    const h = harness(["sleepy", "sender", "other"]);
    const sleepy = h.node("sleepy", { wake: 60 });
    const sender = h.node("sender");
    const other = h.node("other");
    const got: XElement[] = [];
    sleepy.onStanza((s) => got.push(s));
    await within(h, Promise.all([sleepy.connect(), sender.connect(), other.connect()]));
    await h.settle(AWAKE_WINDOW_MS + 100);
    const session = h.gateway.session("sleepy")!;
    expect(h.gateway.state(session)).toBe("xa");
    await within(h, sender.send(presence(SLEEPY, "s1")), 100);
    await within(h, other.send(presence(SLEEPY, "o1")), 100);
    await within(h, sender.send(presence(SLEEPY, "s2")), 100);
    await within(h, sender.send(presence(SLEEPY, "s3")), 100);
    expect(session.mailbox.length).toBe(2);
    expect(h.gateway.stats.mailboxCoalesced).toBe(2);
    await wake(h, sleepy);
    expect(got.map((s) => `${attr(s, "from")} ${label(s)}`)).toEqual([
      `other@${DOMAIN}/cxmpp presence:o1`,
      `sender@${DOMAIN}/cxmpp presence:s3`,
    ]);
  });

  it("a presence in flight is not replaced: it is resent, and the later ones coalesce behind it", async () => {
    const { h, sleepy, got, session, send } = await asleep();
    await send(presence(SLEEPY, "p1"));
    const to = h.address(sleepy);
    h.drop((_, peer) => peer === to);
    const polled = sleepy.poll();
    await h.settle(AWAKE_WINDOW_MS + 1_000);
    expect(session.mailbox.flying.map((q) => label(q.stanza))).toEqual(["presence:p1"]);
    await send(presence(SLEEPY, "p2"));
    await send(presence(SLEEPY, "p3"));
    expect(session.mailbox.flying.map((q) => label(q.stanza))).toEqual(["presence:p1"]);
    expect(session.mailbox.queued.map((q) => label(q.stanza))).toEqual(["presence:p3"]);
    expect(h.gateway.stats.mailboxCoalesced).toBe(1);
    h.drop(undefined);
    await within(h, polled, 30_000);
    await wake(h, sleepy);
    expect(got.map(label)).toEqual(["presence:p1", "presence:p3"]);
  });

  it("classifies control sets by sender and fields, chat states by sender (the coalescing keys)", () => {
    const from = { ns: "", name: "from", value: SENDER };
    const withFrom = (s: XElement): XElement => ({ ...s, attrs: [from, ...s.attrs] });
    const x1 = classify(withFrom(control(SLEEPY, { x: 1 })));
    const x2 = classify(withFrom(control(SLEEPY, { x: 2 })));
    const y = classify(withFrom(control(SLEEPY, { y: 1 })));
    const xy = classify(withFrom(control(SLEEPY, { x: 1, y: 1 })));
    const yx = classify(withFrom(control(SLEEPY, { y: 5, x: 5 })));
    const otherSender = classify(control(SLEEPY, { x: 1 }));
    expect(x1.coalesce).toBeDefined();
    expect(x1).toEqual(x2);
    expect(y.coalesce).not.toBe(x1.coalesce);
    expect(xy.coalesce).not.toBe(x1.coalesce);
    expect(xy.coalesce).toBe(yx.coalesce);
    expect(otherSender.coalesce).not.toBe(x1.coalesce);
    // With a reply wanted (a body besides the set) it is an ordinary message.
    const withBody = withFrom({
      ...control(SLEEPY, { x: 1 }),
      children: [...control(SLEEPY, { x: 1 }).children, el(CLIENT, "body", {}, "ack?")],
    });
    expect(classify(withBody).coalesce).toBeUndefined();
    // A message that is only a chat state coalesces per sender, and waits like presence.
    const composing = classify(withFrom(chatState(SLEEPY, "composing")));
    expect(composing).toEqual(classify(withFrom(chatState(SLEEPY, "paused"))));
    expect(composing.priority).toBe(classify(withFrom(presence(SLEEPY, "p"))).priority);
    expect(composing.coalesce).not.toBe(classify(chatState(SLEEPY, "paused")).coalesce);
  });
});

describe("sleeping node: lost wake-ups", () => {
  it("a wake-up lost both ways, then one whose answers are lost, then a clean one: everything exactly once, in order", async () => {
    // The node's pump retries a failed uplink after 60 s: its next wake-up.
    const { h, sleepy, sender, got, senderGot, session, send } = await asleep({}, 60_000);
    const n = 7;
    for (let i = 0; i < n; i++) await send(msg(SLEEPY, `m${i} ${"w".repeat(60)}`));
    const seen = session.lastSeen;

    // Wake-up 1: 100% loss both ways. The node's poll never reaches the gateway.
    h.net.setConditions({ loss: 1 });
    let before = h.exchanges.length;
    expect((await failsWithin(h, sleepy.poll(), 100_000)).message).toMatch(/after 7 transmissions/);
    expect(h.net.log.filter((r) => r.from === h.address(sleepy) && r.at > seen).length).toBeGreaterThan(5);
    expect(uplinks(h, sleepy, before)).toEqual([]);
    expect(session.lastSeen).toBe(seen);
    expect(h.gateway.state(session)).toBe("xa");
    expect(session.mailbox.flying).toHaveLength(0);
    expect(session.mailbox.queued).toHaveLength(n);
    expect(got).toEqual([]);

    // Wake-up 2: the uplink (a reading, CON) gets through, every answer is lost. It counts as a wake:
    // the reading is routed, the mailbox starts to fly, the node shows awake for the window.
    h.net.setConditions({});
    const to = h.address(sleepy);
    h.drop((_, peer) => peer === to);
    before = h.exchanges.length;
    const reading = sleepy.send(msg(`sender@${DOMAIN}`, "reading"));
    await h.settle(1_000);
    const heard = uplinks(h, sleepy, before);
    expect(heard).toHaveLength(1); // its CON retransmissions were answered from the CoAP cache
    expect(heard[0]!.downlink?.more).toBe(true);
    expect(session.lastSeen).toBe(heard[0]!.at);
    expect(h.gateway.state(session)).toBe("available");
    expect(session.h).toBe(1);
    const flying = session.mailbox.flying.length;
    expect(flying).toBe(heard[0]!.downlink!.frames);
    await h.settle(96_000); // the exchange gives up (MAX_TRANSMIT_WAIT); the pump retries in 60 s
    expect(uplinks(h, sleepy, before)).toHaveLength(1);
    expect(h.gateway.state(session)).toBe("xa");
    expect(got).toEqual([]);

    // Wake-up 3: no loss. The reading comes again (seq 1: skipped, not routed twice); the frames in
    // flight come again with their numbers, then the rest, over `more` polls.
    h.drop(undefined);
    before = h.exchanges.length;
    await within(h, reading, 60_000);
    const drained = uplinks(h, sleepy, before);
    expect(drained.map((r) => r.downlink?.dseq)).toEqual([1, 1 + flying]);
    expect(drained.map((r) => r.downlink?.more)).toEqual([true, false]);
    expect(h.gateway.stats.duplicateFrames).toBe(1);
    await wake(h, sleepy);
    expect(got.map(label)).toEqual(Array.from({ length: n }, (_, i) => `m${i}`));
    expect(session.mailbox.length).toBe(0);
    expect(session.delivered).toBe(n);
    await wake(h, sender);
    expect(senderGot.map(bodyOf)).toEqual(["reading"]);
    expect(h.gateway.stats.stanzasIn).toBe(n + 1);
  });

  it("a NON reading counts as a wake-up too", async () => {
    const { h, sleepy, sender, senderGot, session } = await asleep();
    sleepy.sendTelemetry(msg(`sender@${DOMAIN}`, "t0")); // the first one goes CON
    await h.settle(AWAKE_WINDOW_MS + 500);
    expect(h.gateway.state(session)).toBe("xa");
    const before = h.exchanges.length;
    sleepy.sendTelemetry(msg(`sender@${DOMAIN}`, "t1"));
    await h.settle(100);
    const heard = uplinks(h, sleepy, before);
    expect(heard).toHaveLength(1);
    expect(session.lastSeen).toBe(heard[0]!.at);
    expect(h.gateway.state(session)).toBe("available");
    expect(h.gateway.stats.telemetryIn).toBe(1);
    await wake(h, sender);
    expect(senderGot.map(bodyOf)).toEqual(["t0", "t1"]);
  });
});

describe("sleeping node: presence to its peers", () => {
  it("available on connect, xa with idle and wake once asleep, available on the next uplink, unavailable when the session expires", async () => {
    const wakeS = 60;
    const h = harness(["sensor", "actuator", "sender"], {}, 1, {
      peers: { sensor: [`actuator@${DOMAIN}`, "alice@a.example"] },
      sessionExpiryMs: 30_000,
    });
    const actuator = h.node("actuator");
    const fromGateway: XElement[] = [];
    actuator.onStanza((s) => fromGateway.push(s));
    await within(h, actuator.connect());
    await within(h, actuator.observeDownlink());
    const sensor = h.node("sensor", { wake: wakeS });
    await within(h, sensor.connect());
    const session = h.gateway.session("sensor")!;
    const jid = `sensor@${DOMAIN}/cxmpp`;

    const remote = () => h.outbound.filter((s) => s.name === "presence");
    const shown = (s: XElement) => attr(s, "type") ?? (text(child(s, "show")) || "available");
    const check = (s: XElement, to: string) => {
      expect(attr(s, "from")).toBe(jid);
      expect(attr(s, "to")).toBe(to);
    };
    // Connect: available, to both peers.
    expect(remote().map(shown)).toEqual(["available"]);
    check(remote()[0]!, "alice@a.example");
    // Available presence carries only the XEP-0115 caps of the node.
    expect(remote()[0]!.children.map((c) => (typeof c === "string" ? c : `${c.ns} ${c.name}`))).toEqual([
      "http://jabber.org/protocol/caps c",
    ]);
    await h.settle(100);
    expect(fromGateway.map(shown)).toEqual(["available"]);
    check(fromGateway[0]!, `actuator@${DOMAIN}`);

    // Asleep: shown at the first tick after the awake window.
    let seen = session.lastSeen;
    h.gateway.tick(seen + AWAKE_WINDOW_MS);
    expect(remote()).toHaveLength(1);
    await h.settle(AWAKE_WINDOW_MS + 100);
    h.gateway.tick();
    h.gateway.tick(); // shown once, not at every tick
    expect(remote().map(shown)).toEqual(["available", "xa"]);
    const xa = remote()[1]!;
    check(xa, "alice@a.example");
    expect(attr(child(xa, "idle", "urn:xmpp:idle:1")!, "since")).toBe(stamp(seen));
    const wakeEl = child(xa, "wake", "urn:cxmpp:sleep:0");
    expect(attr(wakeEl!, "at")).toBe(stamp(seen + wakeS * 1000));
    expect(attr(wakeEl!, "from")).toBe(DOMAIN);
    expect(text(child(xa, "status"))).toBe(`asleep until ${stamp(seen + wakeS * 1000)}`);
    await h.settle(100);
    expect(fromGateway.map(shown)).toEqual(["available", "xa"]);
    expect(h.gateway.stats.presenceSent).toBe(4);

    // The next uplink (a poll) wakes it: available again, without a tick.
    await h.settle(20_000);
    await wake(h, sensor);
    expect(remote().map(shown)).toEqual(["available", "xa", "available"]);
    seen = session.lastSeen;
    await h.settle(AWAKE_WINDOW_MS + 100);
    h.gateway.tick();
    expect(remote().map(shown)).toEqual(["available", "xa", "available", "xa"]);
    expect(attr(child(remote()[3]!, "wake", "urn:cxmpp:sleep:0")!, "at")).toBe(stamp(seen + wakeS * 1000));

    // Expiry: sessionExpiryMs is 30 s, but a node that sleeps 60 s is given twice that. The actuator
    // keeps its own session alive meanwhile.
    for (let i = 0; i < 5; i++) {
      await h.settle(20_000);
      await within(h, actuator.poll(), 100);
    }
    h.gateway.tick(seen + 31_000);
    h.gateway.tick(seen + 2 * wakeS * 1000);
    expect(h.gateway.state(session, seen + 2 * wakeS * 1000)).toBe("xa");
    expect(remote()).toHaveLength(4);
    h.gateway.tick(seen + 2 * wakeS * 1000 + 1);
    expect(remote().map(shown)).toEqual(["available", "xa", "available", "xa", "unavailable"]);
    expect(remote()[4]!.children).toEqual([]);
    expect(session.peer).toBeUndefined();
    expect(h.gateway.state(session)).toBe("unavailable");
    expect(h.gateway.census()).toMatchObject({ asleep: 0, awake: 1 });
    await h.settle(100);
    expect(fromGateway.map(shown)).toEqual(["available", "xa", "available", "xa", "unavailable"]);

    // Its mailbox stays: a stanza for it waits (stamped), and the next uplink reconnects and gets it.
    const sender = h.node("sender");
    await within(h, sender.connect());
    await within(h, sender.send(msg(`sensor@${DOMAIN}`, "while away")), 100);
    expect(session.mailbox.length).toBe(1);
    const got: XElement[] = [];
    sensor.onStanza((s) => got.push(s));
    const connects = h.gateway.stats.connects;
    await within(h, sensor.poll(), 500); // 4.01: no session at this address; the client connects again
    expect(h.gateway.stats.connects).toBe(connects + 1);
    expect(remote().map(shown).at(-1)).toBe("available");
    await wake(h, sensor);
    expect(got.map(bodyOf)).toEqual(["while away"]);
    expect(child(got[0], "delay", DELAY)).toBeDefined();
  });
});

describe("sleeping node: revocation", () => {
  it("a revoked device is refused at its next exchange (4.03), its session ends, and it cannot connect again", async () => {
    const h = harness(["sensor"], {}, 1, { peers: { sensor: ["alice@a.example"] } });
    const sensor = h.node("sensor", { wake: 60 });
    await within(h, sensor.connect());
    const session = h.gateway.session("sensor")!;
    await h.settle(AWAKE_WINDOW_MS + 100);
    await within(h, sensor.poll()); // still accepted
    expect(h.gateway.state(session)).toBe("available");
    h.devices.revoke("sensor");
    const error = await failsWithin(h, sensor.poll(), 500);
    expect(error.message).toMatch(/4\.03/);
    expect(session.peer).toBeUndefined();
    expect(h.gateway.state(session)).toBe("unavailable");
    h.gateway.tick();
    expect(h.outbound.map((s) => attr(s, "type") ?? "available")).toEqual(["available", "unavailable"]);
    const refused = h.gateway.stats.refusedConnects;
    const again = await failsWithin(h, sensor.connect(), 500);
    expect(again.message).toMatch(/4\.03/);
    expect(h.gateway.stats.refusedConnects).toBe(refused + 1);
    expect(session.peer).toBeUndefined();
  });
});

/*
 * Regressions for bugs these tests found (each failed before its fix):
 * 1. a stanza was classified after <delay/> was added, so control sets and chat states queued for a
 *    sleeping node never coalesced;
 * 2. building a push for a node that does not observe /d marked its stanzas in flight unsent;
 * 3. a coalescing replacement skipped the mailbox limits;
 * 4. a queued presence subscription request was coalesced away by a later availability presence;
 * 5. the last batch of a wake-up reached the node twice when its next wake-up reconnected (the
 *    connect now carries the node's received count, PROTOCOL.md §3.2).
 */
describe("sleeping node: regressions", () => {
  it("coalesces XEP-0325 control sets and chat states queued for a sleeping node (latest value wins)", async () => {
    const { h, sleepy, got, session, send } = await asleep();
    await send(control(SLEEPY, { x: 1 }));
    await send(control(SLEEPY, { y: 9 }));
    await send(control(SLEEPY, { x: 2 }));
    await send(control(SLEEPY, { x: 3 }));
    await send(chatState(SLEEPY, "composing"));
    await send(chatState(SLEEPY, "paused"));
    await send(chatState(SLEEPY, "active"));
    expect(session.mailbox.queued.map((q) => label(q.stanza))).toEqual([
      "set:y=9",
      "set:x=3",
      "chatstate:active",
    ]);
    expect(h.gateway.stats.mailboxCoalesced).toBe(4);
    await wake(h, sleepy);
    expect(got.map(label)).toEqual(["set:y=9", "set:x=3", "chatstate:active"]);
  });

  it("keeps stanzas queued (coalescing, TTL) in the awake window of a node that does not observe /d", async () => {
    const ttlMs = 30_000;
    const { h, sleepy, got, session, send } = await asleep({ mailbox: { ttlMs } });
    await wake(h, sleepy); // awake for 5 s; it never observes its downlink resource
    expect(h.gateway.state(session)).toBe("available");
    const t = await send(presence(SLEEPY, "p1"));
    await send(presence(SLEEPY, "p2"));
    await send(msg(SLEEPY, "m1"));
    await send(presence(SLEEPY, "p3"));
    expect(h.gateway.state(session)).toBe("available");
    // Nothing was sent to the node, so nothing is in flight: the presences coalesce.
    expect(session.mailbox.flying).toHaveLength(0);
    expect(h.gateway.stats.mailboxCoalesced).toBe(2);
    h.gateway.tick(t + ttlMs + 1_000);
    expect(h.gateway.stats.mailboxExpired).toBe(2);
    await wake(h, sleepy);
    expect(got).toEqual([]);
  });

  it("does not let a coalescing replacement push the mailbox over maxBytes", async () => {
    const maxBytes = 200;
    const { h, session, send } = await asleep({ mailbox: { maxBytes } });
    await send(presence(SLEEPY, "p"));
    await send(msg(SLEEPY, "a".repeat(100)));
    expect(session.mailbox.length).toBe(2);
    await send(presence(SLEEPY, "q".repeat(120)));
    expect(session.mailbox.size).toBeLessThanOrEqual(maxBytes);
    expect(h.gateway.stats.mailboxFull + h.gateway.stats.mailboxCoalesced).toBe(1);
  });

  it("does not lose a queued presence subscription request to a later presence from the same sender", async () => {
    const { h, sleepy, got, send } = await asleep();
    await send(el(CLIENT, "presence", { to: SLEEPY, type: "subscribe" }));
    await send(presence(SLEEPY, "online"));
    await wake(h, sleepy);
    expect(got.map(label)).toEqual(["presence:subscribe", "presence:online"]);
  });

  it("does not hand the last (unacknowledged) batch of a wake-up to the node twice when its next wake-up reconnects", async () => {
    const { h, sleepy, got, session, send } = await asleep({ sessionExpiryMs: 30_000 });
    await send(msg(SLEEPY, "x"));
    await wake(h, sleepy); // "x" received; its ack would ride on the next wake-up
    expect(got.map(label)).toEqual(["x"]);
    // The node sleeps longer than 2 x wake: the session ends; its next wake-up gets 4.01 and reconnects.
    h.gateway.tick(h.time.now() + 121_000);
    expect(session.peer).toBeUndefined();
    await wake(h, sleepy); // 4.01, connect (the client resumes with its token)
    await wake(h, sleepy);
    await wake(h, sleepy);
    expect(session.mailbox.length).toBe(0);
    expect(got.map(label)).toEqual(["x"]);
  });
});
