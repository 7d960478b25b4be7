/**
 * XML text ⇄ codec tree. Parsing is xml-parser.ts's (saxes: XML 1.0 + Namespaces); this module converts
 * between the codec tree and `@xmpp/xml` (ltx) elements, the form xmpp.js sends and receives, and
 * writes XML text. Namespace prefixes are resolved so that the codec only ever sees (namespace, local
 * name) pairs.
 */
import { Element } from "ltx";
import { JABBER_CLIENT, type XAttr, type XElement, XML_NS, type XNode } from "../../codec/index.js";
import { XmlError } from "./xml-error.js";

export { type ParseOptions, parseXml } from "./xml-parser.js";
export { XmlError };

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
  // filled in place: Element's constructor would copy attributes by assignment and lose `__proto__`
  const out = new Element(element.name);
  const attrs = out.attrs as Record<string, string>;
  if (element.ns !== parentNs) attrs.xmlns = element.ns;
  let declared: Map<string, string> | undefined;
  for (const a of element.attrs) {
    if (a.ns === "") setAttr(attrs, a.name, a.value);
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

/** `attrs[name] = value`, also for `__proto__` (an own property, not the prototype). */
function setAttr(attrs: Record<string, string>, name: string, value: string): void {
  if (name === "__proto__") {
    Object.defineProperty(attrs, name, { value, enumerable: true, writable: true, configurable: true });
  } else attrs[name] = value;
}

/** Characters escapeText / escapeAttr replace: most strings have none and are returned as they are. */
const TEXT_SPECIAL = /[&<>]/;
const ATTR_SPECIAL = /[&<>'"\t\n\r]/;

function escapeText(text: string): string {
  if (!TEXT_SPECIAL.test(text)) return text;
  return text.replace(/[&<>]/g, (c) => (c === "&" ? "&amp;" : c === "<" ? "&lt;" : "&gt;"));
}

function escapeAttr(text: string): string {
  if (!ATTR_SPECIAL.test(text)) return text;
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
 * parent's; namespaced attributes get generated prefixes (`xml:` for the XML namespace). Built by
 * concatenation (V8 joins the pieces once, when the text is written), which costs less than an array
 * of pieces and a join: this runs for every stanza the component link sends.
 */
export function toXml(element: XElement, parentNs: string = ""): string {
  let out = `<${element.name}`;
  if (element.ns !== parentNs) out += ` xmlns='${escapeAttr(element.ns)}'`;
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
        out += ` xmlns:${prefix}='${escapeAttr(a.ns)}'`;
      }
      qname = `${prefix}:${a.name}`;
    }
    out += ` ${qname}='${escapeAttr(a.value)}'`;
  }
  if (element.children.length === 0) return `${out}/>`;
  out += ">";
  for (const child of element.children) {
    out += typeof child === "string" ? escapeText(child) : toXml(child, element.ns);
  }
  return `${out}</${element.name}>`;
}

export { xmlByteLength } from "./xml-size.js";
