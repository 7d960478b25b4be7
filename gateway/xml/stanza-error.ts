/**
 * XMPP stanza errors (RFC 6120 §8.3): the defined conditions of §8.3.3, each with the error type that
 * section gives it, as a typed error that reads from and writes to a stanza's <error/> child.
 */
import { attr, el, type XElement } from "../../codec/index.js";

export const STANZAS_NS = "urn:ietf:params:xml:ns:xmpp-stanzas";

export type StanzaErrorType = "auth" | "cancel" | "continue" | "modify" | "wait";

/** RFC 6120 §8.3.3.1–23: every defined condition and the type its section (and example) gives it. */
export const STANZA_ERROR_CONDITIONS = Object.freeze({
  "bad-request": "modify",
  conflict: "cancel",
  "feature-not-implemented": "cancel",
  forbidden: "auth",
  gone: "cancel",
  "internal-server-error": "cancel",
  "item-not-found": "cancel",
  "jid-malformed": "modify",
  "not-acceptable": "modify",
  "not-allowed": "cancel",
  "not-authorized": "auth",
  "policy-violation": "modify",
  "recipient-unavailable": "wait",
  redirect: "modify",
  "registration-required": "auth",
  "remote-server-not-found": "cancel",
  "remote-server-timeout": "wait",
  "resource-constraint": "wait",
  "service-unavailable": "cancel",
  "subscription-required": "auth",
  "undefined-condition": "modify",
  "unexpected-request": "wait",
} as const satisfies Record<string, StanzaErrorType>);

export type StanzaErrorCondition = keyof typeof STANZA_ERROR_CONDITIONS;

const TYPES: readonly string[] = ["auth", "cancel", "continue", "modify", "wait"];

export class StanzaError extends Error {
  override readonly name: string = "StanzaError";
  readonly type: StanzaErrorType;

  constructor(
    readonly condition: StanzaErrorCondition,
    type?: StanzaErrorType,
    /** Human-readable <text/> (§8.3.2), optional. */
    readonly text?: string,
  ) {
    super(text ? `${condition}: ${text}` : condition);
    this.type = type ?? STANZA_ERROR_CONDITIONS[condition];
  }

  /** The error a stanza of type "error" carries; undefined when it has none we understand. */
  static fromStanza(stanza: XElement): StanzaError | undefined {
    const error = stanza.children.find((c): c is XElement => typeof c !== "string" && c.name === "error");
    if (!error) return undefined;
    const condition = error.children.find(
      (c): c is XElement => typeof c !== "string" && c.ns === STANZAS_NS && c.name !== "text",
    );
    if (!condition || !(condition.name in STANZA_ERROR_CONDITIONS)) return undefined;
    const text = error.children.find(
      (c): c is XElement => typeof c !== "string" && c.ns === STANZAS_NS && c.name === "text",
    );
    const type = attr(error, "type");
    return new StanzaError(
      condition.name as StanzaErrorCondition,
      type !== undefined && TYPES.includes(type) ? (type as StanzaErrorType) : undefined,
      text?.children.filter((c) => typeof c === "string").join("") || undefined,
    );
  }

  /** The <error/> element, in the stanza's namespace `ns` (§8.3.2). */
  toElement(ns: string): XElement {
    return el(
      ns,
      "error",
      { type: this.type },
      el(STANZAS_NS, this.condition),
      ...(this.text ? [el(STANZAS_NS, "text", {}, this.text)] : []),
    );
  }

  /** The error reply to `stanza` (§8.3.1): addresses swapped, type "error", its payload kept. */
  reply(stanza: XElement): XElement {
    const kept = stanza.attrs.filter((a) => !(a.ns === "" && ["to", "from", "type"].includes(a.name)));
    const to = attr(stanza, "from");
    const from = attr(stanza, "to");
    return {
      ...stanza,
      attrs: [
        ...(to ? [{ ns: "", name: "to", value: to }] : []),
        ...(from ? [{ ns: "", name: "from", value: from }] : []),
        { ns: "", name: "type", value: "error" },
        ...kept,
      ],
      children: [...stanza.children, this.toElement(stanza.ns)],
    };
  }
}
