/**
 * The gateway's IoT layer in pieces (gateway/iot): the last-values cache (limits, eviction, stale
 * values, the sweep, its counts), the readout decision (pure), the readout desk (cached answer, queued
 * answer, the node's own result turned into <started/>) and the pubsub publisher (publish iq, answers
 * consumed and counted) and the XEP-0326 concentrator (what each requester may see).
 */
import { describe, expect, it } from "vitest";
import { attr, el, type XElement } from "../../codec/index.js";
import { MemoryDevices } from "../../gateway/devices.js";
import { CONCENTRATORS, Concentrator, SOURCE_ID } from "../../gateway/iot/concentrator.js";
import { FieldsCache } from "../../gateway/iot/fields-cache.js";
import { PubsubPublisher } from "../../gateway/iot/pubsub-publisher.js";
import { decideReadout } from "../../gateway/iot/readout-decision.js";
import { ReadoutDesk } from "../../gateway/iot/readout-desk.js";
import { PUBSUB, publishedItemId } from "../../src/core/iot/pubsub.js";
import {
  fieldsMessage,
  parseFields,
  parseReadoutRequest,
  type ReadoutRequest,
  SENSORDATA,
  type SensorField,
} from "../../src/core/iot/sensordata.js";

const field = (
  name: string,
  value: string,
  timestamp = "2026-01-01T10:00:00Z",
  nodeId = "",
): SensorField => ({
  type: "numeric",
  name,
  value,
  unit: "°C",
  timestamp,
  nodeId,
  flags: ["momentary"],
});

const request = (over: Partial<ReadoutRequest> = {}): ReadoutRequest => ({
  seqnr: "1",
  nodeIds: [],
  fieldNames: [],
  flags: [],
  ...over,
});

function readoutIq(id: string, fields: string[] = [], extra: Record<string, string> = {}): XElement {
  return el(
    "jabber:client",
    "iq",
    { type: "get", id, from: "bob@a.localhost/slix", to: "s1@iot.localhost" },
    el(
      SENSORDATA,
      "req",
      { seqnr: id, ...extra },
      ...fields.map((name) => el(SENSORDATA, "field", { name })),
    ),
  );
}

describe("FieldsCache", () => {
  it("keeps the latest value per (nodeId, name), with its own timestamp; an older reading is stale", () => {
    const cache = new FieldsCache();
    cache.record("d1", [
      field("temp", "20", "2026-01-01T10:00:00Z"),
      field("temp", "5", "2026-01-01T10:00:00Z", "n2"),
    ]);
    cache.record("d1", [field("temp", "21", "2026-01-01T10:05:00Z")]);
    cache.record("d1", [field("temp", "19", "2026-01-01T09:00:00Z")]);
    const held = cache.fields("d1");
    expect(held.map((f) => [f.nodeId, f.value, f.timestamp])).toEqual([
      ["n2", "5", "2026-01-01T10:00:00Z"],
      ["", "21", "2026-01-01T10:05:00Z"],
    ]);
    expect(cache.size).toBe(2);
    expect(cache.stats).toEqual({ stored: 3, evicted: 0, tooLarge: 0, stale: 1 });
  });

  it("holds at most maxFieldsPerDevice (least recently reported evicted) and refuses values over maxFieldBytes", () => {
    const cache = new FieldsCache({ maxFieldsPerDevice: 3, maxFieldBytes: 100, maxDevices: 10 });
    for (let i = 0; i < 5; i++) cache.record("d1", [field(`f${i}`, String(i))]);
    expect(cache.fields("d1").map((f) => f.name)).toEqual(["f2", "f3", "f4"]);
    cache.record("d1", [field("big", "x".repeat(200))]);
    expect(cache.fields("d1").map((f) => f.name)).toEqual(["f2", "f3", "f4"]);
    expect(cache.stats).toMatchObject({ evicted: 2, tooLarge: 1 });
    expect(cache.size).toBe(3);
  });

  it("holds at most maxDevices (least recently reporting goes) and sweeps devices no longer provisioned", () => {
    const cache = new FieldsCache({ maxFieldsPerDevice: 8, maxFieldBytes: 1024, maxDevices: 2 });
    cache.record("d1", [field("a", "1"), field("b", "2")]);
    cache.record("d2", [field("a", "1")]);
    cache.record("d1", [field("a", "3")]); // d1 reported last: d2 is the oldest
    cache.record("d3", [field("a", "1")]);
    expect(cache.fields("d2")).toEqual([]);
    expect(cache.deviceCount).toBe(2);
    expect(cache.size).toBe(3);
    cache.sweep((identity) => identity !== "d1");
    expect(cache.fields("d1")).toEqual([]);
    expect(cache.size).toBe(1);
    expect(cache.stats.evicted).toBe(3);
  });
});

describe("decideReadout", () => {
  const held = [field("temp", "21"), field("hum", "40"), field("temp", "5", undefined, "n2")];
  const now = Date.parse("2026-06-01T00:00:00Z");

  it("answers from the cache when every named field is held, with their original timestamps", () => {
    const d = decideReadout(request({ fieldNames: ["temp", "hum"] }), held, now);
    expect(d.kind).toBe("cached");
    if (d.kind === "cached") expect(d.fields.map((f) => f.name)).toEqual(["temp", "hum", "temp"]);
  });

  it("without names: any held field that matches the nodes and categories", () => {
    expect(decideReadout(request(), held, now).kind).toBe("cached");
    const d = decideReadout(request({ nodeIds: ["n2"] }), held, now);
    expect(d.kind === "cached" && d.fields.map((f) => f.value)).toEqual(["5"]);
    expect(decideReadout(request({ flags: ["momentary"] }), held, now).kind).toBe("cached");
    expect(decideReadout(request({ flags: ["peak"] }), held, now)).toEqual({
      kind: "queue",
      reason: "missing",
    });
  });

  it("queues what the cache cannot answer, and a `when` in the future (fresh values)", () => {
    expect(decideReadout(request({ fieldNames: ["temp", "co2"] }), held, now)).toEqual({
      kind: "queue",
      reason: "missing",
    });
    expect(decideReadout(request(), [], now)).toEqual({ kind: "queue", reason: "missing" });
    expect(decideReadout(request({ when: "2026-06-01T00:01:00Z" }), held, now)).toEqual({
      kind: "queue",
      reason: "fresh",
    });
    expect(decideReadout(request({ when: "2026-05-01T00:00:00Z" }), held, now).kind).toBe("cached");
  });
});

describe("ReadoutDesk", () => {
  const now = Date.parse("2026-06-01T00:00:00Z");

  it("answers from the cache: accepted, then fields from the node's JID with the cached timestamps", () => {
    const cache = new FieldsCache();
    cache.record("d1", [field("temp", "21", "2026-01-01T10:00:00Z")]);
    const desk = new ReadoutDesk({ cache, ttlMs: 60_000 });
    const replies = desk.answer(readoutIq("7", ["temp"]), "d1", "s1@iot.localhost/cxmpp", now)!;
    expect(replies).toHaveLength(2);
    const [result, message] = replies as [XElement, XElement];
    expect([attr(result, "type"), attr(result, "id"), attr(result, "to"), attr(result, "from")]).toEqual([
      "result",
      "7",
      "bob@a.localhost/slix",
      "s1@iot.localhost",
    ]);
    const accepted = result.children[0] as XElement;
    expect([accepted.name, attr(accepted, "seqnr"), attr(accepted, "queued")]).toEqual([
      "accepted",
      "7",
      undefined,
    ]);
    expect(attr(message, "from")).toBe("s1@iot.localhost/cxmpp");
    expect(parseFields(message)).toEqual([
      { seqnr: "7", done: true, fields: [field("temp", "21", "2026-01-01T10:00:00Z")] },
    ]);
    expect(desk.answer(readoutIq("8", ["co2"]), "d1", "s1@iot.localhost/cxmpp", now)).toBeUndefined();
    expect(desk.stats.cached).toBe(1);
  });

  it("queued: accepted queued at once; the node's own result becomes <started/>, its error <failure/>; fields pass", () => {
    const desk = new ReadoutDesk({ cache: new FieldsCache(), ttlMs: 60_000 });
    const q = desk.queued(readoutIq("9"), "d1", now)!;
    expect(attr(q, "type")).toBe("result");
    expect(attr(q.children[0] as XElement, "queued")).toBe("true");
    expect(desk.pending).toBe(1);
    const nodeResult = el("jabber:client", "iq", { type: "result", id: "9", to: "bob@a.localhost/slix" });
    const started = desk.fromNode("d1", "s1@iot.localhost/cxmpp", nodeResult, now);
    expect(started).not.toBe("pass");
    const s = started as XElement;
    expect([s.name, attr(s, "from"), attr(s, "to")]).toEqual([
      "message",
      "s1@iot.localhost/cxmpp",
      "bob@a.localhost/slix",
    ]);
    expect([(s.children[0] as XElement).name, attr(s.children[0] as XElement, "seqnr")]).toEqual([
      "started",
      "9",
    ]);
    // Only once: a second result is not ours any more.
    expect(desk.fromNode("d1", "s1@iot.localhost/cxmpp", nodeResult, now)).toBe("pass");
    const fields = fieldsMessage({ to: "bob@a.localhost/slix" }, "9", [field("temp", "1")]);
    expect(desk.fromNode("d1", "s1@iot.localhost/cxmpp", fields, now)).toBe("pass");

    desk.queued(readoutIq("10"), "d1", now);
    const refused = el(
      "jabber:client",
      "iq",
      { type: "error", id: "10", to: "bob@a.localhost/slix" },
      el(SENSORDATA, "rejected", { seqnr: "10" }, el(SENSORDATA, "error", {}, "busy")),
    );
    const failure = desk.fromNode("d1", "s1@iot.localhost/cxmpp", refused, now) as XElement;
    expect((failure.children[0] as XElement).name).toBe("failure");
    expect(desk.stats).toMatchObject({ queued: 2, started: 1, failed: 1 });
  });

  it("forgets queued readouts after the TTL and beyond maxPendingPerDevice", () => {
    const desk = new ReadoutDesk({ cache: new FieldsCache(), ttlMs: 1000, maxPendingPerDevice: 2 });
    for (const id of ["1", "2", "3"]) desk.queued(readoutIq(id), "d1", now);
    expect(desk.pending).toBe(2);
    expect(desk.stats.forgotten).toBe(1);
    desk.sweep(now + 1000);
    expect(desk.pending).toBe(0);
    expect(desk.stats.forgotten).toBe(3);
    expect(desk.queued(el("jabber:client", "iq", { type: "get", id: "x" }), "d1", now)).toBeUndefined();
    expect(parseReadoutRequest(readoutIq("1"))?.seqnr).toBe("1");
  });
});

describe("PubsubPublisher", () => {
  it("publishes <fields> from the component domain to the device's node; consumes and counts the answers", () => {
    const sent: XElement[] = [];
    const p = new PubsubPublisher({
      service: "pubsub.localhost",
      domain: "iot.localhost",
      route: (s) => sent.push(s),
    });
    const fieldsEl = fieldsMessage({}, "", [field("temp", "21")]).children[0] as XElement;
    p.publish("s1@iot.localhost/cxmpp", fieldsEl);
    p.publish("s1@iot.localhost", fieldsEl);
    expect(sent).toHaveLength(2);
    const iq = sent[0]!;
    expect([attr(iq, "type"), attr(iq, "to"), attr(iq, "from")]).toEqual([
      "set",
      "pubsub.localhost",
      "iot.localhost",
    ]);
    const publish = (iq.children[0] as XElement).children[0] as XElement;
    expect([publish.ns, publish.name, attr(publish, "node")]).toEqual([
      PUBSUB,
      "publish",
      "s1@iot.localhost",
    ]);
    const item = publish.children[0] as XElement;
    expect(attr(item, "id")).toBe(attr(iq, "id"));
    expect(item.children[0]).toEqual(fieldsEl);

    const answer = (type: string, id: string, from = "pubsub.localhost") =>
      el("jabber:client", "iq", { type, id, from, to: "iot.localhost" });
    expect(p.consume(answer("result", attr(iq, "id")!))).toBe(true);
    expect(publishedItemId(answer("result", "x"))).toBeUndefined();
    const error = {
      ...answer("error", attr(sent[1]!, "id")!),
      children: [
        el(
          "jabber:client",
          "error",
          { type: "auth" },
          el("urn:ietf:params:xml:ns:xmpp-stanzas", "forbidden", {}),
        ),
      ],
    };
    expect(p.consume(error)).toBe(true);
    expect(p.consume(answer("result", "other-id"))).toBe(false);
    expect(p.consume(answer("result", attr(iq, "id")!, "evil.localhost"))).toBe(false);
    expect(p.stats).toEqual({ published: 2, ok: 1, errors: 1, forgotten: 0 });
  });
});

describe("Concentrator (XEP-0326)", () => {
  const dev = (name: string, peers: string[], revoked = false) => ({
    identity: name,
    key: new Uint8Array(16),
    jid: `${name}@iot.localhost`,
    peers,
    revoked,
  });
  const devices = [
    dev("s1", ["bob@a.localhost"]),
    dev("open", []),
    dev("other", ["carol@c.localhost"]),
    dev("gone", [], true),
  ];
  const c = new Concentrator(new MemoryDevices(devices), "iot.localhost");
  const ask = (from: string, name: string, a: Record<string, string> = {}) =>
    c.answer(
      el(
        "jabber:client",
        "iq",
        { type: "get", id: "q", from, to: "iot.localhost" },
        el(CONCENTRATORS, name, a),
      ),
    );
  const response = (iq: XElement | undefined) => iq?.children[0] as XElement;
  const nodeIds = (iq: XElement | undefined) =>
    response(iq)
      .children.filter((n): n is XElement => typeof n !== "string" && n.name === "node")
      .map((n) => attr(n, "nodeId"));

  it("capabilities and the one data source", () => {
    const caps = response(ask("bob@a.localhost/x", "getCapabilities"));
    expect([caps.name, attr(caps, "result")]).toEqual(["getCapabilitiesResponse", "OK"]);
    expect(caps.children.map((v) => (v as XElement).children[0])).toContain("getRootNodes");
    const sources = response(ask("bob@a.localhost/x", "getAllDataSources"));
    expect(attr(sources.children[0] as XElement, "sourceId")).toBe(SOURCE_ID);
  });

  it("lists and describes only the devices that allow the requester; others are NotFound", () => {
    expect(nodeIds(ask("bob@a.localhost/x", "getRootNodes", { sourceId: SOURCE_ID }))).toEqual([
      "s1",
      "open",
    ]);
    expect(nodeIds(ask("eve@a.localhost/x", "getRootNodes", { sourceId: SOURCE_ID }))).toEqual(["open"]);
    expect(attr(response(ask("bob@a.localhost/x", "getRootNodes", { sourceId: "x" })), "result")).toBe(
      "NotFound",
    );
    const info = ask("bob@a.localhost/x", "getNodeInfo", { sourceId: SOURCE_ID, nodeId: "s1" });
    expect(attr(response(info), "result")).toBe("OK");
    expect(attr(response(info).children[0] as XElement, "displayName")).toBe("s1@iot.localhost");
    expect(
      attr(
        response(ask("eve@a.localhost/x", "getNodeInfo", { sourceId: SOURCE_ID, nodeId: "s1" })),
        "result",
      ),
    ).toBe("NotFound");
    expect(
      attr(
        response(ask("bob@a.localhost/x", "getNodeInfo", { sourceId: SOURCE_ID, nodeId: "gone" })),
        "result",
      ),
    ).toBe("NotFound");
    const children = response(
      ask("bob@a.localhost/x", "getChildNodes", { sourceId: SOURCE_ID, nodeId: "s1" }),
    );
    expect([attr(children, "result"), children.children.length]).toEqual(["OK", 0]);
    expect(
      c.answer(el("jabber:client", "iq", { type: "get", id: "q" }, el("urn:xmpp:ping", "ping", {}))),
    ).toBeUndefined();
  });
});
