/**
 * XML text ⇄ codec tree. Parsing uses ltx through `@xmpp/xml` (the parser xmpp.js uses on the wire);
 * namespace prefixes are resolved here so that the codec only ever sees (namespace, local name) pairs.
 */
import { Element, parse } from "ltx";
import {
  JABBER_CLIENT,
  normalize,
  type XAttr,
  type XElement,
  XML_NS,
  type XNode,
} from "../../codec/index.js";

const COMMENT = /<!--[\s\S]*?-->/g;
/** A start tag with its attributes (values may hold '>'), as XML 1.0 §3.1 STag. */
const START_TAG = /<[^\s/>!?]+((?:\s+[^\s=/>]+\s*=\s*(?:'[^']*'|"[^"]*"))*)\s*\/?>/g;
const ATTRIBUTE_NAME = /([^\s=/>]+)\s*=\s*(?:'[^']*'|"[^"]*")/g;

/**
 * ltx keeps attributes in a plain object, so a repeated attribute silently overwrites the first and
 * `__proto__` silently disappears. XML 1.0 §3.1 forbids the first (well-formedness constraint "Unique
 * Att Spec"); the second cannot be represented faithfully here. Both become a clear XmlError.
 */
function checkAttributes(xml: string): void {
  if (!xml.includes("=")) return;
  for (const tag of xml.matchAll(START_TAG)) {
    const list = tag[1];
    if (!list) continue;
    const names = new Set<string>();
    for (const m of list.matchAll(ATTRIBUTE_NAME)) {
      const name = m[1]!;
      if (name === "__proto__") throw new XmlError("attribute name '__proto__' is not supported");
      if (names.has(name)) throw new XmlError(`duplicate attribute '${name}'`);
      names.add(name);
    }
  }
}

export class XmlError extends Error {
  override readonly name = "XmlError";
}

export interface ParseOptions {
  /** Namespace of an unprefixed root without `xmlns` (the stream's default namespace). */
  readonly defaultNs?: string;
  /**
   * Keep whitespace-only text between child elements. Default false: XMPP ignores it (RFC 6120 §11.7)
   * and the brief lets the codec drop it, so it never costs bytes on air.
   */
  readonly keepWhitespace?: boolean;
}

/** Parses one stanza (or any element) into the codec tree; throws `XmlError` on malformed XML. */
export function parseXml(xml: string, options: ParseOptions = {}): XElement {
  checkAttributes(xml);
  let root: Element;
  try {
    // ltx 3.1.2 drops the text that follows a comment or CDATA section in the same parent: comments
    // carry nothing for XMPP (RFC 6120 §11.1 forbids them on the stream), so remove them first.
    root = parse(xml.includes("<!--") ? xml.replace(COMMENT, "") : xml);
  } catch (error) {
    throw new XmlError(`malformed XML: ${(error as Error).message}`);
  }
  if (!root || typeof root !== "object") throw new XmlError("no element in XML text");
  const tree = fromLtx(root, options.defaultNs ?? JABBER_CLIENT, new Map([["xml", XML_NS]]));
  return options.keepWhitespace ? tree : normalize(tree);
}

/** Converts an `@xmpp/xml` / ltx element (as the XMPP component receives it) into the codec tree. */
export function fromLtx(
  node: Element,
  defaultNs: string = JABBER_CLIENT,
  inherited: ReadonlyMap<string, string> = new Map([["xml", XML_NS]]),
): XElement {
  let prefixes = inherited;
  let ns = defaultNs;
  const raw = node.attrs as Record<string, unknown>;
  for (const key of Object.keys(raw)) {
    const value = raw[key];
    if (value === undefined || value === null) continue;
    if (key === "xmlns") ns = String(value);
    else if (key.startsWith("xmlns:")) {
      if (prefixes === inherited) prefixes = new Map(inherited);
      (prefixes as Map<string, string>).set(key.slice(6), String(value));
    }
  }
  const childDefault = ns;
  let name = node.name;
  const colon = name.indexOf(":");
  if (colon >= 0) {
    const prefix = name.slice(0, colon);
    const bound = prefixes.get(prefix);
    if (bound === undefined) throw new XmlError(`unbound prefix '${prefix}' on <${name}>`);
    ns = bound;
    name = name.slice(colon + 1);
  }
  const attrs: XAttr[] = [];
  for (const key of Object.keys(raw)) {
    const value = raw[key];
    if (value === undefined || value === null) continue;
    if (key === "xmlns" || key.startsWith("xmlns:")) continue;
    const c = key.indexOf(":");
    if (c < 0) {
      attrs.push({ ns: "", name: key, value: String(value) });
    } else {
      const bound = prefixes.get(key.slice(0, c));
      if (bound === undefined) throw new XmlError(`unbound prefix on attribute '${key}'`);
      attrs.push({ ns: bound, name: key.slice(c + 1), value: String(value) });
    }
  }
  const children: XNode[] = [];
  for (const child of node.children) {
    if (typeof child === "string") {
      const last = children[children.length - 1];
      if (typeof last === "string") children[children.length - 1] = last + child;
      else children.push(child);
    } else {
      children.push(fromLtx(child as Element, childDefault, prefixes));
    }
  }
  return { kind: "element", ns, name, attrs, children };
}

/**
 * Converts the codec tree into an ltx / `@xmpp/xml` element, the form xmpp.js sends and receives (the
 * XEP-0114 component link). Namespaces become `xmlns` where they change and generated prefixes for
 * namespaced attributes, as in `toXml`.
 */
export function toElement(element: XElement, parentNs = ""): Element {
  const attrs: Record<string, string> = {};
  if (element.ns !== parentNs) attrs.xmlns = element.ns;
  let declared: Map<string, string> | undefined;
  for (const a of element.attrs) {
    if (a.ns === "") attrs[a.name] = a.value;
    else if (a.ns === XML_NS) attrs[`xml:${a.name}`] = a.value;
    else {
      declared ??= new Map();
      let prefix = declared.get(a.ns);
      if (prefix === undefined) {
        prefix = `ns${declared.size + 1}`;
        declared.set(a.ns, prefix);
        attrs[`xmlns:${prefix}`] = a.ns;
      }
      attrs[`${prefix}:${a.name}`] = a.value;
    }
  }
  const out = new Element(element.name, attrs);
  for (const child of element.children) {
    if (typeof child === "string") out.children.push(child);
    else {
      const c = toElement(child, element.ns);
      c.parent = out;
      out.children.push(c);
    }
  }
  return out;
}

function escapeText(text: string): string {
  return text.replace(/[&<>]/g, (c) => (c === "&" ? "&amp;" : c === "<" ? "&lt;" : "&gt;"));
}

function escapeAttr(text: string): string {
  return text.replace(/[&<>'"\t\n\r]/g, (c) => ENTITY[c] ?? c);
}

const ENTITY: Readonly<Record<string, string>> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  "'": "&apos;",
  '"': "&quot;",
  "\t": "&#9;",
  "\n": "&#10;",
  "\r": "&#13;",
};

/**
 * Serialises the tree as XML text. `xmlns` is written where an element's namespace differs from its
 * parent's; namespaced attributes get generated prefixes (`xml:` for the XML namespace).
 */
export function toXml(element: XElement, parentNs: string = ""): string {
  const out: string[] = [];
  write(element, parentNs, out);
  return out.join("");
}

function write(element: XElement, parentNs: string, out: string[]): void {
  out.push("<", element.name);
  if (element.ns !== parentNs) out.push(" xmlns='", escapeAttr(element.ns), "'");
  let declared: Map<string, string> | undefined;
  for (const a of element.attrs) {
    let qname = a.name;
    if (a.ns === XML_NS) qname = `xml:${a.name}`;
    else if (a.ns !== "") {
      declared ??= new Map();
      let prefix = declared.get(a.ns);
      if (prefix === undefined) {
        prefix = `ns${declared.size + 1}`;
        declared.set(a.ns, prefix);
        out.push(" xmlns:", prefix, "='", escapeAttr(a.ns), "'");
      }
      qname = `${prefix}:${a.name}`;
    }
    out.push(" ", qname, "='", escapeAttr(a.value), "'");
  }
  if (element.children.length === 0) {
    out.push("/>");
    return;
  }
  out.push(">");
  for (const child of element.children) {
    if (typeof child === "string") out.push(escapeText(child));
    else write(child, element.ns, out);
  }
  out.push("</", element.name, ">");
}

export { xmlByteLength } from "./xml-size.js";
