/** Time on stanzas: XEP-0082 date-times and the XEP-0203 <delay/> a gateway adds to what waited. */
import { el, type XElement } from "../../codec/index.js";

export const DELAY = "urn:xmpp:delay";

/** XEP-0082 §3.3 date-time in UTC, to the second (the codec packs it as a typed time). */
export function xep0082(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** XEP-0203 §3: `at` is when the stanza reached `domain`; a stanza that already says when keeps it. */
export function withDelay(stanza: XElement, domain: string, at: number): XElement {
  if (stanza.children.some((c) => typeof c !== "string" && c.ns === DELAY)) return stanza;
  return {
    ...stanza,
    children: [...stanza.children, el(DELAY, "delay", { from: domain, stamp: xep0082(at) })],
  };
}
