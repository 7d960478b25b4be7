/**
 * The codec's own stanza tree. A tiny node builds stanzas in code with these plain objects and never
 * parses XML; the XML string ⇄ tree conversion lives in `gateway/xml`.
 *
 * Namespaces are explicit on every element (`ns`), attributes carry their own namespace ("" for none,
 * as for almost every attribute in XMPP). Prefixes do not exist here: they are a serialisation detail.
 */

/** The XML namespace (`xml:lang`), fixed by "Namespaces in XML 1.0" §3. */
export const XML_NS = "http://www.w3.org/XML/1998/namespace";
/** The default stanza namespace of a c2s stream (RFC 6120 §4.8.3). */
export const JABBER_CLIENT = "jabber:client";

export interface XAttr {
  readonly ns: string;
  readonly name: string;
  readonly value: string;
}

export interface XElement {
  readonly kind: "element";
  readonly ns: string;
  readonly name: string;
  readonly attrs: readonly XAttr[];
  /** Element children and text, in document order; text is a plain string. */
  readonly children: readonly XNode[];
}

export type XNode = XElement | string;

/** Builds an element; `attrs` is a plain record of unqualified attributes (the common case). */
export function el(
  ns: string,
  name: string,
  attrs: Readonly<Record<string, string>> = {},
  ...children: XNode[]
): XElement {
  const list: XAttr[] = [];
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "xml:lang") list.push({ ns: XML_NS, name: "lang", value });
    else list.push({ ns: "", name: key, value });
  }
  return { kind: "element", ns, name, attrs: list, children };
}

/** The value of an unqualified attribute, or undefined. */
export function attr(element: XElement, name: string, ns = ""): string | undefined {
  for (const a of element.attrs) if (a.name === name && a.ns === ns) return a.value;
  return undefined;
}

/**
 * The infoset form used for equality: adjacent text merged, whitespace-only text between child
 * elements dropped (XMPP ignores it, RFC 6120 §11.7), everything else kept in order.
 */
export function normalize(element: XElement): XElement {
  const hasElementChild = element.children.some((c) => typeof c !== "string");
  const children: XNode[] = [];
  for (const child of element.children) {
    if (typeof child === "string") {
      if (child === "") continue;
      if (hasElementChild && /^[ \t\r\n]*$/.test(child)) continue;
      const last = children[children.length - 1];
      if (typeof last === "string") children[children.length - 1] = last + child;
      else children.push(child);
    } else {
      children.push(normalize(child));
    }
  }
  return { kind: "element", ns: element.ns, name: element.name, attrs: element.attrs, children };
}

/** True when both trees have the same infoset (see `normalize`); attribute order is significant. */
export function sameInfoset(a: XElement, b: XElement): boolean {
  return equalNormalized(normalize(a), normalize(b));
}

function equalNormalized(a: XElement, b: XElement): boolean {
  if (a.ns !== b.ns || a.name !== b.name) return false;
  if (a.attrs.length !== b.attrs.length || a.children.length !== b.children.length) return false;
  for (let i = 0; i < a.attrs.length; i++) {
    const x = a.attrs[i]!;
    const y = b.attrs[i]!;
    if (x.ns !== y.ns || x.name !== y.name || x.value !== y.value) return false;
  }
  for (let i = 0; i < a.children.length; i++) {
    const x = a.children[i]!;
    const y = b.children[i]!;
    if (typeof x === "string" || typeof y === "string") {
      if (x !== y) return false;
    } else if (!equalNormalized(x, y)) return false;
  }
  return true;
}
