/** XEP-0323/0325/0060 vocabulary (src/core/iot): builders and parsers agree, and the parsers take anything. */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { attr, el, type XElement, type XNode } from "../../codec/index.js";
import { parseXml } from "../../gateway/xml/stanza-xml.js";
import {
  CONTROL,
  controlResponse,
  controlSet,
  fieldsMessage,
  PUBSUB,
  parseControlSet,
  parseFields,
  parseReadoutRequest,
  publishedItemId,
  publishIq,
  readoutAccepted,
  readoutRejected,
  requested,
  SENSORDATA,
  type SensorField,
} from "../../src/core/iot/index.js";

const T = "2026-12-07T10:00:00Z";
const temp: SensorField = {
  type: "numeric",
  name: "temperature",
  value: "21.5",
  unit: "°C",
  timestamp: T,
  nodeId: "",
  flags: ["momentary"],
};
const door: SensorField = {
  type: "boolean",
  name: "door",
  value: "false",
  timestamp: T,
  nodeId: "",
  flags: ["status"],
};

describe("XEP-0323 sensor data", () => {
  it("a fields message parses back to its fields, grouped by node and timestamp", () => {
    const other = { ...temp, nodeId: "n2", timestamp: "2026-12-07T09:00:00Z" };
    const m = fieldsMessage({ to: "a@example.org", from: "s@iot.example.org/cxmpp" }, "7", [
      temp,
      door,
      other,
    ]);
    const [fields] = parseFields(m);
    expect(fields).toEqual({ seqnr: "7", done: true, fields: [temp, door, other] });
    const xml = parseXml(
      `<message xmlns='jabber:client'><fields xmlns='${SENSORDATA}' seqnr='7' done='true'><node nodeId=''><timestamp value='${T}'><numeric name='temperature' value='21.5' unit='°C' momentary='true'/><boolean name='door' value='false' status='true'/></timestamp></node></fields></message>`,
    );
    expect(parseFields(xml)[0]!.fields).toEqual([temp, door]);
  });

  it("reads slixmpp's request and answers it", () => {
    const iq = parseXml(
      `<iq xmlns='jabber:client' type='get' id='1' from='c@example.org/slix' to='s@iot.example.org'><req xmlns='${SENSORDATA}' seqnr='1' momentary='true'><field name='temperature'/></req></iq>`,
    );
    const request = parseReadoutRequest(iq)!;
    expect(request).toEqual({ seqnr: "1", nodeIds: [], fieldNames: ["temperature"], flags: ["momentary"] });
    expect(requested(request, temp)).toBe(true);
    expect(requested(request, door)).toBe(false);
    const accepted = readoutAccepted(iq, "1", true);
    expect(accepted.attrs).toEqual([
      { ns: "", name: "type", value: "result" },
      { ns: "", name: "id", value: "1" },
      { ns: "", name: "to", value: "c@example.org/slix" },
      { ns: "", name: "from", value: "s@iot.example.org" },
    ]);
    expect((accepted.children[0] as XElement).attrs.map((a) => a.value)).toEqual(["1", "true"]);
    const rejected = readoutRejected(iq, "1", "no such field");
    expect(rejected.children.map((c) => (c as XElement).name)).toEqual(["rejected", "error"]);
    const error = rejected.children[1] as XElement;
    expect([error.ns, attr(error, "type"), (error.children[0] as XElement).name]).toEqual([
      "jabber:client",
      "cancel",
      "item-not-found",
    ]);
    expect(parseReadoutRequest(el("jabber:client", "iq", { type: "set" }))).toBeUndefined();
  });
});

describe("XEP-0325 control and XEP-0060 publish", () => {
  it("a control set parses back to its values, and is answered", () => {
    const set = controlSet({ to: "act@iot.example.org", id: "c1" }, [
      { type: "boolean", name: "relay", value: "true" },
      { type: "double", name: "setpoint", value: "19.5" },
    ]);
    expect(parseControlSet(set)).toEqual({
      values: [
        { type: "boolean", name: "relay", value: "true" },
        { type: "double", name: "setpoint", value: "19.5" },
      ],
      nodeIds: [],
    });
    const response = controlResponse(set);
    expect((response.children[0] as XElement).ns).toBe(CONTROL);
    expect(parseControlSet(el("jabber:client", "message", {}))).toBeUndefined();
  });

  it("a publish iq carries its item; the result's item id is read", () => {
    const iq = publishIq(
      { to: "pubsub.example.org", id: "p1" },
      "sensors/s1",
      el("urn:x", "reading", { v: "1" }),
    );
    const result = parseXml(
      `<iq xmlns='jabber:client' type='result' id='p1'><pubsub xmlns='${PUBSUB}'><publish node='sensors/s1'><item id='ae890ac52d0df67ed7cfdf51b644e901'/></publish></pubsub></iq>`,
    );
    expect(publishedItemId(result)).toBe("ae890ac52d0df67ed7cfdf51b644e901");
    expect(publishedItemId(iq)).toBeUndefined(); // the request's item has no id
  });
});

describe("the parsers on arbitrary trees", () => {
  const names = fc.constantFrom(
    "iq",
    "message",
    "req",
    "fields",
    "node",
    "timestamp",
    "numeric",
    "boolean",
    "set",
    "field",
    "pubsub",
    "publish",
    "item",
    "x",
  );
  const nss = fc.constantFrom(SENSORDATA, CONTROL, PUBSUB, "jabber:client", "urn:other");
  const attrs = fc.array(
    fc.record({
      ns: fc.constant(""),
      name: fc.constantFrom("type", "name", "value", "seqnr", "nodeId", "unit", "momentary", "id", "done"),
      value: fc.string({ maxLength: 8 }),
    }),
    { maxLength: 4 },
  );
  const tree: fc.Arbitrary<XElement> = fc.letrec<{ node: XElement }>((tie) => ({
    node: fc.record({
      kind: fc.constant("element" as const),
      ns: nss,
      name: names,
      attrs,
      children: fc.array(
        fc.oneof({ depthSize: "small" }, fc.string({ maxLength: 4 }), tie("node")) as fc.Arbitrary<XNode>,
        { maxLength: 4 },
      ),
    }),
  })).node;

  it("never throw, and return well-typed results", () => {
    fc.assert(
      fc.property(tree, (t) => {
        for (const r of parseFields(t)) expect(Array.isArray(r.fields)).toBe(true);
        const req = parseReadoutRequest(t);
        if (req) expect(typeof req.seqnr).toBe("string");
        const set = parseControlSet(t);
        if (set) expect(Array.isArray(set.values)).toBe(true);
        const id = publishedItemId(t);
        expect(id === undefined || typeof id === "string").toBe(true);
      }),
      { numRuns: 2000 },
    );
  });
});
