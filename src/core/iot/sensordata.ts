/**
 * XEP-0323 (Internet of Things - Sensor Data) as its deployed clients speak it: the request/response
 * flow of version 0.x that slixmpp's `xep_0323` plugin implements (an iq `get` with `<req seqnr/>`,
 * answered by an iq `result` with `<accepted seqnr/>` or an iq `error` with `<rejected seqnr>`, then
 * messages `<started/>`, `<fields seqnr done?>` and `<done/>`, or `<failure/>`), and the field types of
 * §3.4 (numeric with unit, boolean, string, int, long, dateTime, timeSpan, enum).
 *
 * Pure functions over codec trees: the node (src/tiny, gateway/cli) and the gateway use the same ones.
 */
import { attr, el, type XElement } from "../../../codec/index.js";

export const SENSORDATA = "urn:xmpp:iot:sensordata";
const CLIENT = "jabber:client";
const STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";

export type FieldType = "numeric" | "boolean" | "string" | "int" | "long" | "dateTime" | "timeSpan" | "enum";
/** The field types of XEP-0323 §3.4, as element names. */
export const FIELD_TYPES: readonly FieldType[] = [
  "numeric",
  "boolean",
  "string",
  "int",
  "long",
  "dateTime",
  "timeSpan",
  "enum",
];
const FIELD_TYPE_SET: ReadonlySet<string> = new Set(FIELD_TYPES);

/** One field value as XEP-0323 §3.4 carries it. */
export interface SensorField {
  readonly type: FieldType;
  readonly name: string;
  /** As written on the wire (`23.5`, `true`, `2026-12-07T10:00:00Z`). */
  readonly value: string;
  /** numeric only. */
  readonly unit?: string;
  /** The reading's instant, ISO 8601 (the `<timestamp value>` it sits in). */
  readonly timestamp: string;
  /** The sensor node within the device (`<node nodeId>`); "" when the device has one. */
  readonly nodeId: string;
  /** Field flags (`momentary`, `status`, …) set to "true" on the element. */
  readonly flags: readonly string[];
}

const FLAG_NAMES = ["momentary", "peak", "status", "computed", "identity", "historicalSecond"] as const;

/** The `<fields>` results in a message, flattened; [] when it holds none. */
export function parseFields(stanza: XElement): { seqnr: string; done: boolean; fields: SensorField[] }[] {
  const out: { seqnr: string; done: boolean; fields: SensorField[] }[] = [];
  for (const fieldsEl of elements(stanza, SENSORDATA, "fields")) {
    const fields: SensorField[] = [];
    for (const node of elements(fieldsEl, SENSORDATA, "node")) {
      const nodeId = attr(node, "nodeId") ?? "";
      for (const ts of elements(node, SENSORDATA, "timestamp")) {
        const timestamp = attr(ts, "value") ?? "";
        for (const f of ts.children) {
          if (typeof f === "string" || f.ns !== SENSORDATA || !FIELD_TYPE_SET.has(f.name)) continue;
          const name = attr(f, "name");
          const value = attr(f, "value");
          if (name === undefined || value === undefined) continue;
          const unit = attr(f, "unit");
          fields.push({
            type: f.name as FieldType,
            name,
            value,
            ...(unit !== undefined ? { unit } : {}),
            timestamp,
            nodeId,
            flags: FLAG_NAMES.filter((flag) => attr(f, flag) === "true"),
          });
        }
      }
    }
    out.push({ seqnr: attr(fieldsEl, "seqnr") ?? "", done: attr(fieldsEl, "done") === "true", fields });
  }
  return out;
}

/**
 * A `<fields>` message: the fields grouped by node and timestamp, in order of first appearance.
 * `attrs` are the message's (to, from, id…).
 */
export function fieldsMessage(
  attrs: Readonly<Record<string, string>>,
  seqnr: string,
  fields: readonly SensorField[],
  done = true,
): XElement {
  const nodes = new Map<string, Map<string, XElement[]>>();
  for (const f of fields) {
    let stamps = nodes.get(f.nodeId);
    if (!stamps) {
      stamps = new Map();
      nodes.set(f.nodeId, stamps);
    }
    let list = stamps.get(f.timestamp);
    if (!list) {
      list = [];
      stamps.set(f.timestamp, list);
    }
    const a: Record<string, string> = { name: f.name, value: f.value };
    if (f.unit !== undefined) a.unit = f.unit;
    for (const flag of f.flags) a[flag] = "true";
    list.push(el(SENSORDATA, f.type, a));
  }
  const nodeEls = [...nodes].map(([nodeId, stamps]) =>
    el(
      SENSORDATA,
      "node",
      { nodeId },
      ...[...stamps].map(([value, list]) => el(SENSORDATA, "timestamp", { value }, ...list)),
    ),
  );
  return el(
    CLIENT,
    "message",
    attrs,
    el(SENSORDATA, "fields", done ? { seqnr, done: "true" } : { seqnr }, ...nodeEls),
  );
}

/** A readout request (`<req>` in an iq get). */
export interface ReadoutRequest {
  readonly seqnr: string;
  /** Requested node ids; empty: all. */
  readonly nodeIds: readonly string[];
  /** Requested field names; empty: all. */
  readonly fieldNames: readonly string[];
  /** Requested field categories (`momentary="true"` …); empty: any. */
  readonly flags: readonly string[];
  /** `when`: a readout to run later (ISO 8601), if given. */
  readonly when?: string;
}

/** The request an iq get carries, or undefined when it is not a XEP-0323 `<req>`. */
export function parseReadoutRequest(iq: XElement): ReadoutRequest | undefined {
  if (iq.name !== "iq" || attr(iq, "type") !== "get") return undefined;
  const req = elements(iq, SENSORDATA, "req")[0];
  if (!req) return undefined;
  const when = attr(req, "when");
  return {
    seqnr: attr(req, "seqnr") ?? "",
    nodeIds: elements(req, SENSORDATA, "node").flatMap((n) => attr(n, "nodeId") ?? []),
    fieldNames: elements(req, SENSORDATA, "field").flatMap((f) => attr(f, "name") ?? []),
    flags: FLAG_NAMES.filter((flag) => attr(req, flag) === "true"),
    ...(when !== undefined ? { when } : {}),
  };
}

/** Whether `field` is one the request asks for (its nodes, names and categories). */
export function requested(request: ReadoutRequest, field: SensorField): boolean {
  if (request.nodeIds.length > 0 && !request.nodeIds.includes(field.nodeId)) return false;
  if (request.fieldNames.length > 0 && !request.fieldNames.includes(field.name)) return false;
  return request.flags.length === 0 || request.flags.some((flag) => field.flags.includes(flag));
}

/** The iq result accepting a request (`queued` when it runs later, e.g. at the node's wake-up). */
export function readoutAccepted(iq: XElement, seqnr: string, queued = false): XElement {
  return el(
    CLIENT,
    "iq",
    replyAttrs(iq, "result"),
    el(SENSORDATA, "accepted", queued ? { seqnr, queued: "true" } : { seqnr }),
  );
}

/**
 * The iq error refusing a request, with a human-readable reason: XEP-0323's `<rejected>` for its
 * clients, and beside it the RFC 6120 §8.3 `<error>` every XMPP entity understands (default
 * item-not-found: the fields or nodes asked for are not there).
 */
export function readoutRejected(
  iq: XElement,
  seqnr: string,
  reason: string,
  condition = "item-not-found",
): XElement {
  return el(
    CLIENT,
    "iq",
    replyAttrs(iq, "error"),
    el(SENSORDATA, "rejected", { seqnr }, el(SENSORDATA, "error", {}, reason)),
    el(CLIENT, "error", { type: "cancel" }, el(STANZAS, condition, {})),
  );
}

/** `<started/>`: a queued readout begins. */
export function readoutStarted(attrs: Readonly<Record<string, string>>, seqnr: string): XElement {
  return el(CLIENT, "message", attrs, el(SENSORDATA, "started", { seqnr }));
}

/** `<done/>`: the readout is complete. */
export function readoutDone(attrs: Readonly<Record<string, string>>, seqnr: string): XElement {
  return el(CLIENT, "message", attrs, el(SENSORDATA, "done", { seqnr }));
}

/** `<failure done>`: the readout of `nodeId` failed, with a reason. */
export function readoutFailure(
  attrs: Readonly<Record<string, string>>,
  seqnr: string,
  nodeId: string,
  reason: string,
  timestamp: string,
): XElement {
  return el(
    CLIENT,
    "message",
    attrs,
    el(
      SENSORDATA,
      "failure",
      { seqnr, done: "true" },
      el(SENSORDATA, "error", { nodeId, timestamp }, reason),
    ),
  );
}

/** Attributes of the reply to `iq`: same id, from and to swapped. */
export function replyAttrs(iq: XElement, type: "result" | "error"): Record<string, string> {
  const out: Record<string, string> = { type, id: attr(iq, "id") ?? "" };
  const to = attr(iq, "from");
  const from = attr(iq, "to");
  if (to !== undefined) out.to = to;
  if (from !== undefined) out.from = from;
  return out;
}

/** Child elements of `parent` with that namespace and name. */
export function elements(parent: XElement, ns: string, name: string): XElement[] {
  return parent.children.filter(
    (c): c is XElement => typeof c !== "string" && c.ns === ns && c.name === name,
  );
}
