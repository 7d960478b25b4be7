/**
 * XEP-0325 (Internet of Things - Control) as slixmpp's `xep_0325` plugin speaks it: `<set>` in an iq
 * set (answered with `<setResponse responseCode="OK"/>` or an error) or in a message (no answer: the
 * latest value wins), holding typed values (§3: boolean, color, date, dateTime, double, duration, int,
 * long, string, time) by name.
 */
import { attr, el, type XElement } from "../../../codec/index.js";
import { elements, replyAttrs } from "./sensordata.js";

export const CONTROL = "urn:xmpp:iot:control";
const CLIENT = "jabber:client";

const VALUE_TYPES: ReadonlySet<string> = new Set([
  "boolean",
  "color",
  "date",
  "dateTime",
  "double",
  "duration",
  "int",
  "long",
  "string",
  "time",
]);

export interface ControlValue {
  readonly type: string;
  readonly name: string;
  readonly value: string;
}

/** The control values a stanza sets, or undefined when it holds no XEP-0325 `<set>`. */
export function parseControlSet(
  stanza: XElement,
): { readonly values: readonly ControlValue[]; readonly nodeIds: readonly string[] } | undefined {
  const set = elements(stanza, CONTROL, "set")[0];
  if (!set) return undefined;
  const values: ControlValue[] = [];
  const nodeIds: string[] = [];
  for (const c of set.children) {
    if (typeof c === "string" || c.ns !== CONTROL) continue;
    if (c.name === "node") {
      const id = attr(c, "nodeId");
      if (id !== undefined) nodeIds.push(id);
      continue;
    }
    if (!VALUE_TYPES.has(c.name)) continue;
    const name = attr(c, "name");
    const value = attr(c, "value");
    if (name !== undefined && value !== undefined) values.push({ type: c.name, name, value });
  }
  return { values, nodeIds };
}

/** The iq result of a control set that was applied. */
export function controlResponse(iq: XElement): XElement {
  return el(CLIENT, "iq", replyAttrs(iq, "result"), el(CONTROL, "setResponse", { responseCode: "OK" }));
}

/** A control set (iq `set` when `iq`, else a message), for clients and tests. */
export function controlSet(
  attrs: Readonly<Record<string, string>>,
  values: readonly ControlValue[],
  iq = true,
): XElement {
  return el(
    CLIENT,
    iq ? "iq" : "message",
    iq ? { type: "set", ...attrs } : attrs,
    el(CONTROL, "set", {}, ...values.map((v) => el(CONTROL, v.type, { name: v.name, value: v.value }))),
  );
}
