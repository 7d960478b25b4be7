/**
 * A stanza's size as XML, counted without writing it: the gateway counts every stanza's XML size for its
 * "bytes saved by the codec" figures. In a module of its own, without the XML parser, so that a gateway
 * in local mode never loads ltx (it parses XML only on the federation link).
 */
import { type XElement, XML_NS } from "../../codec/index.js";

/**
 * `Buffer.byteLength(toXml(element, parentNs))`, without building the text: the gateway counts every
 * stanza's XML size for its "bytes saved" figures, and this walk costs a fraction of serialising.
 */
export function xmlByteLength(element: XElement, parentNs = ""): number {
  // "<" name, and "/>" or "></" name ">"
  let n = 1 + utf8Length(element.name);
  if (element.ns !== parentNs) n += 9 + escapedLength(element.ns, true); // " xmlns='…'"
  let declared: Map<string, number> | undefined;
  for (const a of element.attrs) {
    let qname = utf8Length(a.name);
    if (a.ns === XML_NS)
      qname += 4; // "xml:"
    else if (a.ns !== "") {
      declared ??= new Map();
      let prefix = declared.get(a.ns);
      if (prefix === undefined) {
        prefix = 2 + String(declared.size + 1).length; // "ns<k>"
        declared.set(a.ns, prefix);
        n += 10 + prefix + escapedLength(a.ns, true); // " xmlns:nsK='…'"
      }
      qname += prefix + 1;
    }
    n += 4 + qname + escapedLength(a.value, true); // " qname='…'"
  }
  if (element.children.length === 0) return n + 2;
  n += 1;
  for (const child of element.children) {
    n += typeof child === "string" ? escapedLength(child, false) : xmlByteLength(child, element.ns);
  }
  return n + 3 + utf8Length(element.name);
}

function utf8Length(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) n += 1;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 2; // a surrogate pair: 2 UTF-16 units, 4 bytes
        i++;
      } else n += 2; // a lone surrogate becomes U+FFFD (3 bytes)
    } else n += 2; // 3 bytes (lone low surrogates too: U+FFFD)
  }
  return n;
}

/** UTF-8 bytes of `s` as escapeAttr (attr) or escapeText writes it. */
function escapedLength(s: string, attr: boolean): number {
  let extra = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 62) continue;
    if (c === 38)
      extra += 4; // &amp;
    else if (c === 60 || c === 62)
      extra += 3; // &lt; &gt;
    else if (attr && (c === 39 || c === 34))
      extra += 5; // &apos; &quot;
    else if (attr && c === 9)
      extra += 3; // &#9;
    else if (attr && (c === 10 || c === 13)) extra += 4; // &#10; &#13;
  }
  return utf8Length(s) + extra;
}
