/**
 * Where XML text enters: one conformant parser (saxes, XML 1.0 + Namespaces in XML 1.0) for
 *  - `parseXml`: one stanza (or any element) as text → the codec tree, for corpus readers, tools, tests;
 *  - `StreamParser`: an XMPP stream fed in chunks → `@xmpp/xml` (ltx) elements, with the interface of
 *    xmpp.js's own `Parser` (events "start", "element", "end", "error"), for the XEP-0114 link.
 *
 * Both give what XML 1.0 requires: CDATA sections are text (and the text after them is kept), character
 * and entity references are expanded, line ends are normalised (§2.11), attribute values are
 * normalised (§3.3.3: a literal tab, CR or LF is a space, `&#10;` stays a line feed), names and
 * characters are checked, an attribute may appear once (by expanded name), every prefix must be bound
 * and `xml:` means the XML namespace. What XMPP forbids (RFC 6120 §11.1) is handled as the stream
 * needs it: a DOCTYPE (and with it any entity declaration) is an error; comments and processing
 * instructions carry nothing and are skipped.
 *
 * The product loads this module only with the federation link (gateway/federation), so a gateway in
 * local mode never loads saxes.
 */
import { EventEmitter } from "node:events";
import { Element } from "ltx";
import { SaxesParser, type SaxesTagNS } from "saxes";
import { JABBER_CLIENT, normalize, type XAttr, type XElement, type XNode } from "../../codec/index.js";
import { XmlError } from "./xml-error.js";

const XMLNS_NS = "http://www.w3.org/2000/xmlns/";

export interface ParseOptions {
  /** Namespace of unprefixed elements outside any `xmlns` (the stream's default namespace). */
  readonly defaultNs?: string;
  /**
   * Keep whitespace-only text between child elements. Default false: XMPP ignores it (RFC 6120 §11.7)
   * and the brief lets the codec drop it, so it never costs bytes on air.
   */
  readonly keepWhitespace?: boolean;
}

const RESTRICTED_DOCTYPE = "a DOCTYPE is not allowed (XMPP restricted XML, RFC 6120 §11.1)";

/** Parses one stanza (or any element) into the codec tree; throws `XmlError` on malformed XML. */
export function parseXml(xml: string, options: ParseOptions = {}): XElement {
  const parser = new SaxesParser({
    xmlns: true,
    additionalNamespaces: { "": options.defaultNs ?? JABBER_CLIENT },
  });
  const stack: XElement[] = [];
  let root: XElement | undefined;
  parser.on("error", (error) => {
    throw new XmlError(`malformed XML: ${error.message}`);
  });
  parser.on("doctype", () => {
    throw new XmlError(RESTRICTED_DOCTYPE);
  });
  parser.on("opentag", (tag) => {
    const attrs: XAttr[] = [];
    for (const name in tag.attributes) {
      const a = tag.attributes[name]!;
      if (a.uri !== XMLNS_NS) attrs.push({ ns: a.uri, name: a.local, value: a.value });
    }
    const element: XElement = { kind: "element", ns: tag.uri, name: tag.local, attrs, children: [] };
    const parent = stack[stack.length - 1];
    if (parent) (parent.children as XNode[]).push(element);
    stack.push(element);
  });
  const onText = (text: string) => {
    const parent = stack[stack.length - 1];
    if (!parent || text === "") return; // whitespace around the root: saxes rejects anything else
    const children = parent.children as XNode[];
    const last = children[children.length - 1];
    if (typeof last === "string") children[children.length - 1] = last + text;
    else children.push(text);
  };
  parser.on("text", onText);
  parser.on("cdata", onText);
  parser.on("closetag", () => {
    const element = stack.pop();
    if (stack.length === 0) root = element;
  });
  parser.write(xml).close();
  if (!root) throw new XmlError("no element in XML text");
  return options.keepWhitespace ? root : normalize(root);
}

/** The `@xmpp/xml` element as xmpp.js's connection handles it (ltx's, typed here for what we use). */
type StreamElement = Element & { parent: StreamElement | null; children: Array<StreamElement | string> };

/**
 * An XMPP stream parser with the interface of xmpp.js's `Parser` (a connection class's `Parser`):
 * `write(text)` any number of chunks, `end(text?)`; emits "start" with the stream header element,
 * "element" with each complete top-level child (its `parent` the header element, as xmpp.js's parser
 * does), "end" when the stream's root closes, and "error" once on the first XML error, after which it
 * ignores further input (the connection closes the stream with a stream error).
 *
 * Elements keep their qualified names and attributes as written (`xmlns` and `xmlns:*` included), as
 * xmpp.js expects; the values are what XML says they are (references expanded, attribute values
 * normalised, CDATA as text), and the namespaces have been checked.
 */
export class StreamParser extends EventEmitter {
  root: StreamElement | null = null;
  cursor: StreamElement | null = null;
  private readonly parser = new SaxesParser({ xmlns: true });
  private failed = false;

  constructor() {
    super();
    const p = this.parser;
    p.on("error", (error) => this.fail(error.message));
    p.on("doctype", () => this.fail(RESTRICTED_DOCTYPE));
    p.on("opentag", (tag) => this.onOpen(tag));
    p.on("closetag", () => this.onClose());
    p.on("text", (text) => this.onText(text));
    p.on("cdata", (text) => this.onText(text));
  }

  write(data: string): void {
    if (this.failed) return;
    try {
      this.parser.write(data);
    } catch (error) {
      // a throwing "start"/"element" listener must not look like bad XML, nor leave saxes half-way
      this.failed = true;
      throw error;
    }
  }

  end(data?: string): void {
    if (data) this.write(data);
  }

  private fail(message: string): void {
    if (this.failed) return;
    this.failed = true;
    this.emit("error", new XmlError(message));
  }

  private onOpen(tag: SaxesTagNS): void {
    if (this.failed) return;
    const element = new Element(tag.name) as StreamElement;
    const attrs = element.attrs as Record<string, string>;
    for (const name in tag.attributes) {
      const value = tag.attributes[name]!.value;
      if (name === "__proto__") {
        Object.defineProperty(attrs, name, { value, enumerable: true, writable: true, configurable: true });
      } else attrs[name] = value;
    }
    const { root, cursor } = this;
    if (!root) {
      this.root = element;
      this.cursor = element;
      this.emit("start", element);
      return;
    }
    if (cursor !== root) {
      cursor!.children.push(element);
      element.parent = cursor;
    }
    this.cursor = element;
  }

  private onClose(): void {
    if (this.failed) return;
    const { root, cursor } = this;
    if (!cursor) return;
    if (cursor === root) {
      this.cursor = null;
      this.emit("end", root);
      return;
    }
    if (!cursor.parent) {
      cursor.parent = root;
      this.cursor = root;
      this.emit("element", cursor);
      return;
    }
    this.cursor = cursor.parent;
  }

  private onText(text: string): void {
    const { root, cursor } = this;
    // text outside the root is rejected by saxes unless it is whitespace; text directly in the root
    // (whitespace keepalives between stanzas, RFC 6120 §4.6.1) is not kept
    if (this.failed || !cursor || cursor === root || text === "") return;
    const children = cursor.children;
    const last = children[children.length - 1];
    if (typeof last === "string") children[children.length - 1] = last + text;
    else children.push(text);
  }
}
