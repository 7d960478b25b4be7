/**
 * The IoT side of `cxmpp node`: what a node knows (a small JSON state file), how `node report` reads
 * `name=value[unit]` arguments, and how `node run --state` answers XEP-0323 readouts and XEP-0325
 * control from that state. Pure functions over codec trees and plain data (the file I/O is at the end,
 * apart), so the answers are tested without a network (test/node/node-iot.test.ts).
 */
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { attr, el, type XElement } from "../../codec/index.js";
import { CONTROL, type ControlValue, controlResponse, parseControlSet } from "../../src/core/iot/control.js";
import {
  FIELD_TYPES,
  type FieldType,
  fieldsMessage,
  parseReadoutRequest,
  readoutAccepted,
  readoutRejected,
  replyAttrs,
  requested,
  type SensorField,
} from "../../src/core/iot/sensordata.js";
import { StanzaError } from "../xml/stanza-error.js";

/** One field of the state file. */
export interface StateField {
  /** As written on the wire (`21.5`, `true`); a JSON number or boolean is taken as its text. */
  readonly value: string;
  /** numeric only. */
  readonly unit?: string;
  /** XEP-0323 §3.4 field type; default from the value, as `node report` does (`guessType`). */
  readonly type: FieldType;
  /** Whether XEP-0325 control may set it. Default false: a reading, not an actuator. */
  readonly writable: boolean;
  /** XEP-0323 field flags; default `["momentary"]`. */
  readonly flags: readonly string[];
}

/**
 * What `cxmpp node run --state FILE` reads (and writes back after a control set):
 *
 * ```json
 * {"fields": {
 *   "temperature": {"value": "21.5", "unit": "°C", "type": "numeric"},
 *   "relay": {"value": "false", "type": "boolean", "writable": true}
 * }}
 * ```
 *
 * Per field: `value` (required; string, number or boolean), `unit` (numeric), `type` (one of
 * numeric, boolean, string, int, long, dateTime, timeSpan, enum; default from the value: a number is
 * numeric, true/false boolean, anything else string), `writable` (default false) and `flags` (XEP-0323
 * categories, default ["momentary"]). The file is read again for every request, so it may be edited
 * while the node runs; a control set replaces it atomically (a temporary file renamed over it).
 */
export interface NodeState {
  readonly fields: Readonly<Record<string, StateField>>;
}

const NUMBER = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?/;

/** The field type a bare value has: a number is numeric, true/false boolean, anything else string. */
export function guessType(value: string): FieldType {
  if (value === "true" || value === "false") return "boolean";
  return splitNumber(value) ? "numeric" : "string";
}

/**
 * A number followed by an optional unit (`21.5°C`, `21.5 °C`, `55%`, `3`); undefined when the text is
 * not that. A unit may not start with a digit or a dot, so `1.2.3` stays a string.
 */
function splitNumber(text: string): { value: string; unit?: string } | undefined {
  const m = NUMBER.exec(text);
  if (!m) return undefined;
  const value = m[0];
  const unit = text.slice(value.length).trim();
  if (unit === "") return { value };
  if (/^[\d.]/.test(unit)) return undefined;
  return { value, unit };
}

/** One `node report` argument, `name=value[unit]`, as a field (no timestamp yet). */
export interface ReportArg {
  readonly name: string;
  readonly type: FieldType;
  readonly value: string;
  readonly unit?: string;
}

/**
 * Reads `name=value[unit]`: `temperature=21.5°C` → numeric 21.5 °C, `count=3` → numeric without unit,
 * `door=true` → boolean, anything else (`mode=eco`, `v=1.2.3`) → string. Throws on a missing `=` or an
 * empty name.
 */
export function parseReportArg(arg: string): ReportArg {
  const eq = arg.indexOf("=");
  if (eq <= 0) throw new Error(`expected name=value[unit], got "${arg}"`);
  const name = arg.slice(0, eq);
  const text = arg.slice(eq + 1);
  if (text === "true" || text === "false") return { name, type: "boolean", value: text };
  const number = splitNumber(text);
  if (number) return { name, type: "numeric", ...number };
  return { name, type: "string", value: text };
}

/** The fields `node report` sends: the arguments with one timestamp, flagged momentary. */
export function reportFields(args: readonly ReportArg[], timestamp: string): SensorField[] {
  return args.map((a) => ({ ...a, timestamp, nodeId: "", flags: ["momentary"] }));
}

/** Reads the state file's JSON text; throws an Error naming what is wrong. */
export function parseState(text: string): NodeState {
  const json: unknown = JSON.parse(text);
  if (typeof json !== "object" || json === null || typeof (json as { fields?: unknown }).fields !== "object")
    throw new Error('a state file is {"fields": {NAME: {"value": …}, …}}');
  const fields: Record<string, StateField> = {};
  for (const [name, raw] of Object.entries((json as { fields: Record<string, unknown> }).fields ?? {})) {
    if (typeof raw !== "object" || raw === null) throw new Error(`field ${name}: not an object`);
    const f = raw as Record<string, unknown>;
    if (!["string", "number", "boolean"].includes(typeof f.value))
      throw new Error(`field ${name}: "value" must be a string, number or boolean`);
    const value = String(f.value);
    if (f.type !== undefined && !FIELD_TYPES.includes(f.type as FieldType))
      throw new Error(`field ${name}: type must be one of ${FIELD_TYPES.join(", ")}`);
    if (f.unit !== undefined && typeof f.unit !== "string")
      throw new Error(`field ${name}: unit must be a string`);
    if (f.flags !== undefined && !(Array.isArray(f.flags) && f.flags.every((x) => typeof x === "string")))
      throw new Error(`field ${name}: flags must be a list of strings`);
    fields[name] = {
      value,
      type: (f.type as FieldType | undefined) ?? guessType(value),
      writable: f.writable === true,
      flags: (f.flags as string[] | undefined) ?? ["momentary"],
      ...(typeof f.unit === "string" ? { unit: f.unit } : {}),
    };
  }
  return { fields };
}

/** The state as its file holds it (defaults written out, so the file says what the node assumes). */
export function stateJson(state: NodeState): string {
  return `${JSON.stringify({ fields: state.fields }, null, 2)}\n`;
}

/** What the node does with one received stanza: the stanzas it sends, its new state, one line of log. */
export interface Answer {
  readonly send: readonly XElement[];
  /** Present when the state changed (to be written back). */
  readonly state?: NodeState;
  readonly log: string;
}

/**
 * The node's answer to `stanza` from its state at `now`, or undefined when it is neither a XEP-0323
 * readout request nor a XEP-0325 control set.
 *
 * Readout (XEP-0323 as slixmpp's xep_0323 speaks it): the iq result `<accepted seqnr/>`, then one
 * `<fields seqnr done='true'>` message with the requested fields (names, flags; `requested()`),
 * timestamped `now`. A request that names only fields the node does not have is rejected (iq error
 * `<rejected>`); one naming some known fields gets those.
 *
 * Control (XEP-0325): every value must name a writable field of a compatible type (`controlFits`) and
 * be valid for it, or nothing is applied. In an iq set the refusal is what slixmpp's xep_0325 device
 * side sends and its client side reads (`_handle_set_response` matches `iq@type=error/setResponse`):
 * `<setResponse responseCode='NotFound'>` naming the `<parameter>` and an `<error var='Output'>` text,
 * beside the RFC 6120 §8.3 error (item-not-found; bad-request with responseCode FormError for a value
 * that does not parse). Applied: `<setResponse responseCode='OK'/>`. In a message nothing is answered
 * (slixmpp's `_handle_direct_set` drops a refused one silently, so does this).
 */
export function answerIoT(stanza: XElement, state: NodeState, now: Date): Answer | undefined {
  const request = parseReadoutRequest(stanza);
  if (request) {
    const from = attr(stanza, "from") ?? "?";
    const names = Object.keys(state.fields);
    if (request.fieldNames.length > 0 && !request.fieldNames.some((n) => names.includes(n))) {
      const reason = `unknown field ${request.fieldNames.join(", ")}`;
      return {
        send: [readoutRejected(stanza, request.seqnr, reason)],
        log: `readout ${request.seqnr} from ${from}: rejected (${reason})`,
      };
    }
    const timestamp = now.toISOString();
    const fields = Object.entries(state.fields)
      .map(
        ([name, f]): SensorField => ({
          type: f.type,
          name,
          value: f.value,
          ...(f.unit !== undefined ? { unit: f.unit } : {}),
          timestamp,
          nodeId: "",
          flags: f.flags,
        }),
      )
      .filter((f) => requested(request, f));
    const to = attr(stanza, "from");
    return {
      send: [
        readoutAccepted(stanza, request.seqnr),
        fieldsMessage(to !== undefined ? { to } : {}, request.seqnr, fields, true),
      ],
      log: `readout ${request.seqnr} from ${from}: ${fields.map((f) => `${f.name}=${f.value}`).join(" ") || "(no fields)"}`,
    };
  }

  const set = parseControlSet(stanza);
  const type = attr(stanza, "type");
  const isIq = stanza.name === "iq";
  if (!set || (isIq && type !== "set") || (!isIq && stanza.name !== "message")) return undefined;
  const from = attr(stanza, "from") ?? "?";
  const what = set.values.map((v) => `${v.name}=${v.value}`).join(" ");
  const refusal = refuseControl(set.values, state);
  if (refusal) {
    return {
      send: isIq ? [controlRefused(stanza, refusal)] : [],
      log: `control from ${from}: refused ${what} (${refusal.code}: ${refusal.text})`,
    };
  }
  const fields = { ...state.fields };
  for (const v of set.values) fields[v.name] = { ...fields[v.name]!, value: normalise(v) };
  return {
    send: isIq ? [controlResponse(stanza)] : [],
    state: { fields },
    log: `control from ${from}: ${what}`,
  };
}

interface Refusal {
  /** XEP-0325 `responseCode`. */
  readonly code: "NotFound" | "FormError";
  readonly field: string;
  readonly text: string;
}

/**
 * Which XEP-0325 value types may set a field of each XEP-0323 type: the two vocabularies differ
 * (double/int/long for numeric readings, duration for timeSpan).
 */
const CONTROL_TYPES: Readonly<Record<FieldType, readonly string[]>> = {
  numeric: ["double", "int", "long"],
  boolean: ["boolean"],
  string: ["string"],
  enum: ["string"],
  int: ["int"],
  long: ["int", "long"],
  dateTime: ["dateTime"],
  timeSpan: ["duration"],
};

/** Whether a control value of type `controlType` may set a field of `fieldType`. */
export function controlFits(fieldType: FieldType, controlType: string): boolean {
  return CONTROL_TYPES[fieldType].includes(controlType);
}

function refuseControl(values: readonly ControlValue[], state: NodeState): Refusal | undefined {
  for (const v of values) {
    const f = state.fields[v.name];
    // As slixmpp's device does (has_control_field by name and type): a field that is not a control
    // field, or not of that type, is not found.
    if (!f?.writable) return { code: "NotFound", field: v.name, text: `Invalid field ${v.name}` };
    if (!controlFits(f.type, v.type))
      return { code: "NotFound", field: v.name, text: `Invalid field ${v.name} (${f.type}, not ${v.type})` };
    if (!validValue(v))
      return { code: "FormError", field: v.name, text: `Invalid value ${v.value} for ${v.name}` };
  }
  return undefined;
}

/** The value checks XML Schema's lexical spaces make cheap: boolean, integers, doubles. */
function validValue(v: ControlValue): boolean {
  switch (v.type) {
    case "boolean":
      return ["true", "false", "1", "0"].includes(v.value);
    case "int":
    case "long":
      return /^[+-]?\d+$/.test(v.value);
    case "double":
      return /^(?:[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]?INF|NaN)$/.test(v.value);
    default:
      return true;
  }
}

/** xs:boolean's 1/0 stored as true/false, the form XEP-0323 readouts show. */
function normalise(v: ControlValue): string {
  if (v.type === "boolean") return v.value === "1" || v.value === "true" ? "true" : "false";
  return v.value;
}

function controlRefused(iq: XElement, refusal: Refusal): XElement {
  const condition = refusal.code === "FormError" ? "bad-request" : "item-not-found";
  return el(
    "jabber:client",
    "iq",
    replyAttrs(iq, "error"),
    el(
      CONTROL,
      "setResponse",
      { responseCode: refusal.code },
      el(CONTROL, "parameter", { name: refusal.field }),
      el(CONTROL, "error", { var: "Output" }, refusal.text),
    ),
    new StanzaError(condition, undefined, refusal.text).toElement("jabber:client"),
  );
}

// The file. Kept apart from the answers above so that they stay pure.

export function readStateFile(file: string): NodeState {
  return parseState(readFileSync(file, "utf8"));
}

/** Replaces the state file atomically: a reader sees the old file or the new one, never half. */
export function writeStateFile(file: string, state: NodeState): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, stateJson(state));
  renameSync(tmp, file);
}
