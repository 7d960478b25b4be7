/**
 * The node's IoT answers without a network (gateway/cli/node-iot.ts): `node report`'s name=value[unit]
 * arguments, the state file, and the XEP-0323 readout / XEP-0325 control answers as slixmpp's plugins
 * expect them (the same against real slixmpp: test/interop/iot-node.test.ts).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { attr, el, type XElement } from "../../codec/index.js";
import {
  answerIoT,
  controlFits,
  guessType,
  type NodeState,
  parseReportArg,
  parseState,
  readStateFile,
  reportFields,
  stateJson,
  writeStateFile,
} from "../../gateway/cli/node-iot.js";
import { StanzaError } from "../../gateway/xml/stanza-error.js";
import { parseXml } from "../../gateway/xml/stanza-xml.js";
import { CONTROL, controlSet } from "../../src/core/iot/control.js";
import { elements, fieldsMessage, parseFields, SENSORDATA } from "../../src/core/iot/sensordata.js";

const NOW = new Date("2026-12-07T10:00:00.000Z");
const BOB = "bob@a.localhost/slix";
const NODE = "sensor1@iot.localhost/cxmpp";

const STATE: NodeState = parseState(
  JSON.stringify({
    fields: {
      temperature: { value: "21.5", unit: "°C", type: "numeric" },
      relay: { value: "false", type: "boolean", writable: true },
      setpoint: { value: 20, unit: "°C", writable: true },
      mode: { value: "eco", writable: true },
      status: { value: "ok", flags: ["status"] },
    },
  }),
);

/** A readout request as slixmpp's xep_0323 request_data sends it. */
function readout(seqnr: string, fields: string[] = [], flags: Record<string, string> = {}): XElement {
  return el(
    "jabber:client",
    "iq",
    { type: "get", id: seqnr, from: BOB, to: NODE },
    el(SENSORDATA, "req", { seqnr, ...flags }, ...fields.map((name) => el(SENSORDATA, "field", { name }))),
  );
}

const child = (e: XElement, ns: string, name: string) => elements(e, ns, name)[0];

describe("node report: name=value[unit]", () => {
  it.each([
    ["temperature=21.5°C", { name: "temperature", type: "numeric", value: "21.5", unit: "°C" }],
    ["temperature=21.5 °C", { name: "temperature", type: "numeric", value: "21.5", unit: "°C" }],
    ["humidity=55%", { name: "humidity", type: "numeric", value: "55", unit: "%" }],
    ["count=3", { name: "count", type: "numeric", value: "3" }],
    ["offset=-0.5", { name: "offset", type: "numeric", value: "-0.5" }],
    ["big=1e3W", { name: "big", type: "numeric", value: "1e3", unit: "W" }],
    ["door=true", { name: "door", type: "boolean", value: "true" }],
    ["door=false", { name: "door", type: "boolean", value: "false" }],
    ["mode=eco", { name: "mode", type: "string", value: "eco" }],
    ["version=1.2.3", { name: "version", type: "string", value: "1.2.3" }],
    ["door=True", { name: "door", type: "string", value: "True" }],
    ["empty=", { name: "empty", type: "string", value: "" }],
    ["eq=a=b", { name: "eq", type: "string", value: "a=b" }],
  ])("%s", (arg, expected) => {
    expect(parseReportArg(arg)).toEqual(expected);
  });

  it.each(["temperature", "=21", ""])("refuses %j", (arg) => {
    expect(() => parseReportArg(arg)).toThrow(/name=value/);
  });

  it("makes one momentary fields message that parses back", () => {
    const fields = reportFields(["temperature=21.5°C", "door=true"].map(parseReportArg), NOW.toISOString());
    const [result] = parseFields(fieldsMessage({ to: BOB }, "0", fields));
    expect(result?.done).toBe(true);
    expect(result?.fields).toEqual([
      {
        type: "numeric",
        name: "temperature",
        value: "21.5",
        unit: "°C",
        timestamp: NOW.toISOString(),
        nodeId: "",
        flags: ["momentary"],
      },
      {
        type: "boolean",
        name: "door",
        value: "true",
        timestamp: NOW.toISOString(),
        nodeId: "",
        flags: ["momentary"],
      },
    ]);
  });
});

describe("state file", () => {
  it("fills in defaults: type from the value, not writable, momentary", () => {
    expect(STATE.fields.setpoint).toEqual({
      value: "20",
      unit: "°C",
      type: "numeric",
      writable: true,
      flags: ["momentary"],
    });
    expect(STATE.fields.mode?.type).toBe("string");
    expect(STATE.fields.temperature?.writable).toBe(false);
    expect(guessType("true")).toBe("boolean");
    expect(parseState(stateJson(STATE))).toEqual(STATE);
  });

  it.each([
    ["[]", /fields/],
    ['{"fields": {"a": 3}}', /not an object/],
    ['{"fields": {"a": {}}}', /value/],
    ['{"fields": {"a": {"value": "1", "type": "float"}}}', /type must be/],
    ['{"fields": {"a": {"value": "1", "flags": "momentary"}}}', /flags/],
  ])("refuses %s", (text, message) => {
    expect(() => parseState(text)).toThrow(message);
  });

  it("is replaced atomically, no temporary file left", () => {
    const dir = mkdtempSync(join(tmpdir(), "cxmpp-state-"));
    try {
      const file = join(dir, "state.json");
      writeFileSync(file, '{"fields": {"relay": {"value": false, "writable": true}}}');
      const state = readStateFile(file);
      writeStateFile(file, { fields: { relay: { ...state.fields.relay!, value: "true" } } });
      expect(readStateFile(file).fields.relay?.value).toBe("true");
      expect(JSON.parse(readFileSync(file, "utf8")).fields.relay.value).toBe("true");
      expect(readdirSync(dir)).toEqual(["state.json"]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("XEP-0323 readout from the state", () => {
  it("accepts, then one done <fields> message with every field, timestamped now", () => {
    const answer = answerIoT(readout("7"), STATE, NOW)!;
    expect(answer.state).toBeUndefined();
    const [accepted, message] = answer.send;
    expect(accepted?.name).toBe("iq");
    expect(attr(accepted!, "type")).toBe("result");
    expect(attr(accepted!, "id")).toBe("7");
    expect(attr(accepted!, "to")).toBe(BOB);
    expect(attr(child(accepted!, SENSORDATA, "accepted")!, "seqnr")).toBe("7");
    expect(message?.name).toBe("message");
    expect(attr(message!, "to")).toBe(BOB);
    const [fields] = parseFields(message!);
    expect(fields?.seqnr).toBe("7");
    expect(fields?.done).toBe(true);
    expect(fields?.fields.map((f) => [f.name, f.type, f.value, f.unit, f.timestamp])).toEqual([
      ["temperature", "numeric", "21.5", "°C", NOW.toISOString()],
      ["relay", "boolean", "false", undefined, NOW.toISOString()],
      ["setpoint", "numeric", "20", "°C", NOW.toISOString()],
      ["mode", "string", "eco", undefined, NOW.toISOString()],
      ["status", "string", "ok", undefined, NOW.toISOString()],
    ]);
    expect(answer.log).toContain("readout 7");
  });

  it("filters by field names and by flags", () => {
    const byName = parseFields(answerIoT(readout("8", ["relay", "nope"]), STATE, NOW)!.send[1]!);
    expect(byName[0]?.fields.map((f) => f.name)).toEqual(["relay"]);
    const byFlag = parseFields(answerIoT(readout("9", [], { status: "true" }), STATE, NOW)!.send[1]!);
    expect(byFlag[0]?.fields.map((f) => f.name)).toEqual(["status"]);
  });

  it("rejects a request for unknown fields only", () => {
    const answer = answerIoT(readout("10", ["nope"]), STATE, NOW)!;
    expect(answer.send).toHaveLength(1);
    const [rejected] = answer.send;
    expect(attr(rejected!, "type")).toBe("error");
    const r = child(rejected!, SENSORDATA, "rejected")!;
    expect(attr(r, "seqnr")).toBe("10");
    expect(JSON.stringify(r)).toContain("unknown field nope");
  });

  it("leaves other stanzas alone", () => {
    expect(answerIoT(parseXml("<message to='x'><body>hi</body></message>"), STATE, NOW)).toBeUndefined();
    expect(
      answerIoT(parseXml("<iq type='get' id='1'><query xmlns='jabber:iq:version'/></iq>"), STATE, NOW),
    ).toBeUndefined();
    expect(
      answerIoT(
        parseXml(`<iq type='result' id='1'><setResponse xmlns='${CONTROL}' responseCode='OK'/></iq>`),
        STATE,
        NOW,
      ),
    ).toBeUndefined();
  });
});

describe("XEP-0325 control of the state", () => {
  const set = (values: Array<[string, string, string]>, iq = true) =>
    controlSet(
      { id: "c1", from: BOB, to: NODE },
      values.map(([name, type, value]) => ({ name, type, value })),
      iq,
    );

  it("applies writable values and answers setResponse OK", () => {
    const answer = answerIoT(
      set([
        ["relay", "boolean", "1"],
        ["setpoint", "double", "22.5"],
        ["mode", "string", "comfort"],
      ]),
      STATE,
      NOW,
    )!;
    expect(answer.state?.fields.relay).toEqual({ ...STATE.fields.relay, value: "true" });
    expect(answer.state?.fields.setpoint?.value).toBe("22.5");
    expect(answer.state?.fields.setpoint?.unit).toBe("°C");
    expect(answer.state?.fields.mode?.value).toBe("comfort");
    expect(answer.state?.fields.temperature).toEqual(STATE.fields.temperature);
    const [reply] = answer.send;
    expect(attr(reply!, "type")).toBe("result");
    expect(attr(reply!, "id")).toBe("c1");
    expect(attr(child(reply!, CONTROL, "setResponse")!, "responseCode")).toBe("OK");
  });

  it("applies a set in a message without answering", () => {
    const answer = answerIoT(set([["relay", "boolean", "true"]], false), STATE, NOW)!;
    expect(answer.send).toEqual([]);
    expect(answer.state?.fields.relay?.value).toBe("true");
  });

  it.each([
    ["not writable", [["temperature", "double", "30"]], "NotFound", "item-not-found"],
    ["unknown", [["nope", "boolean", "true"]], "NotFound", "item-not-found"],
    ["wrong type", [["relay", "string", "on"]], "NotFound", "item-not-found"],
    ["bad value", [["relay", "boolean", "yes"]], "FormError", "bad-request"],
    [
      "one bad among good ones",
      [
        ["relay", "boolean", "true"],
        ["temperature", "double", "30"],
      ],
      "NotFound",
      "item-not-found",
    ],
  ] as const)(
    "refuses %s: nothing changes, setResponse %s as slixmpp reads it",
    (_, values, code, condition) => {
      const answer = answerIoT(set(values as unknown as Array<[string, string, string]>), STATE, NOW)!;
      expect(answer.state).toBeUndefined();
      const [reply] = answer.send;
      expect(attr(reply!, "type")).toBe("error");
      const response = child(reply!, CONTROL, "setResponse")!;
      expect(attr(response, "responseCode")).toBe(code);
      const bad = values[values.length - 1]![0];
      expect(attr(child(response, CONTROL, "parameter")!, "name")).toBe(bad);
      expect(attr(child(response, CONTROL, "error")!, "var")).toBe("Output");
      expect(StanzaError.fromStanza(reply!)?.condition).toBe(condition);
      // A refused message is dropped silently, as slixmpp's device does.
      const quiet = answerIoT(set(values as unknown as Array<[string, string, string]>, false), STATE, NOW)!;
      expect(quiet.send).toEqual([]);
      expect(quiet.state).toBeUndefined();
    },
  );

  it("maps XEP-0325 value types onto XEP-0323 field types", () => {
    expect(controlFits("numeric", "double")).toBe(true);
    expect(controlFits("numeric", "int")).toBe(true);
    expect(controlFits("boolean", "boolean")).toBe(true);
    expect(controlFits("boolean", "string")).toBe(false);
    expect(controlFits("timeSpan", "duration")).toBe(true);
    expect(controlFits("enum", "string")).toBe(true);
  });
});
