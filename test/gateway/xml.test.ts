/** XML text ⇄ codec tree (gateway/xml/stanza-xml.ts). */
import { describe, expect, it } from "vitest";
import { el, JABBER_CLIENT, sameInfoset, type XElement, XML_NS } from "../../codec/index.js";
import {
  fromLtx,
  parseXml,
  toElement,
  toXml,
  XmlError,
  xmlByteLength,
} from "../../gateway/xml/stanza-xml.js";
import { loadCorpus } from "../kit/corpus.js";

const child = (e: XElement, i: number): XElement => {
  const c = e.children[i];
  if (c === undefined || typeof c === "string") throw new Error(`child ${i} is not an element`);
  return c;
};

describe("parseXml: namespaces and prefixes", () => {
  it("gives the root the default namespace unless it declares one", () => {
    expect(parseXml("<message/>").ns).toBe(JABBER_CLIENT);
    expect(parseXml("<message/>", { defaultNs: "jabber:server" }).ns).toBe("jabber:server");
    expect(parseXml("<message xmlns='jabber:component:accept'/>").ns).toBe("jabber:component:accept");
  });

  it("resolves prefixed elements and inherits default namespaces", () => {
    const t = parseXml(
      "<iq xmlns='jabber:client' xmlns:ps='http://jabber.org/protocol/pubsub' type='set'>" +
        "<ps:pubsub><ps:publish node='n'><item/></ps:publish></ps:pubsub></iq>",
    );
    const pubsub = child(t, 0);
    expect([pubsub.ns, pubsub.name]).toEqual(["http://jabber.org/protocol/pubsub", "pubsub"]);
    const publish = child(pubsub, 0);
    expect([publish.ns, publish.name]).toEqual(["http://jabber.org/protocol/pubsub", "publish"]);
    // <item/> has no prefix: it is in the default namespace in scope, jabber:client.
    expect([child(publish, 0).ns, child(publish, 0).name]).toEqual([JABBER_CLIENT, "item"]);
    // The prefix declaration is not an attribute.
    expect(t.attrs).toEqual([{ ns: "", name: "type", value: "set" }]);
  });

  it("the same element under different prefixes has the same infoset", () => {
    const a = parseXml("<a xmlns='urn:a'><b xmlns='urn:b' x='1'/></a>");
    const b = parseXml("<p:a xmlns:p='urn:a' xmlns:q='urn:b'><q:b x='1'/></p:a>");
    expect(sameInfoset(a, b)).toBe(true);
    const c = parseXml("<a xmlns='urn:a'><b xmlns='urn:c' x='1'/></a>");
    expect(sameInfoset(a, c)).toBe(false);
  });

  it("resolves prefixed attributes and xml:lang", () => {
    const t = parseXml("<message xmlns:e='urn:example:e' e:mark='1' xml:lang='en' to='a@b.c'/>");
    expect(t.attrs).toEqual([
      { ns: "urn:example:e", name: "mark", value: "1" },
      { ns: XML_NS, name: "lang", value: "en" },
      { ns: "", name: "to", value: "a@b.c" },
    ]);
    // el() maps xml:lang to the XML namespace too.
    expect(el(JABBER_CLIENT, "message", { "xml:lang": "en" }).attrs).toEqual([
      { ns: XML_NS, name: "lang", value: "en" },
    ]);
  });

  it("a prefix declared on a child is scoped to that child", () => {
    expect(() => parseXml("<a><b xmlns:p='urn:p'/><p:c/></a>")).toThrow(XmlError);
  });

  it("serialises namespaced attributes and xml:lang so they parse back", () => {
    const t = parseXml("<message xmlns:e='urn:example:e' e:mark='1' xml:lang='en'><e:x e:y='2'/></message>");
    const back = parseXml(toXml(t));
    expect(sameInfoset(back, t)).toBe(true);
  });
});

describe("parseXml: comments, text and whitespace", () => {
  it("removes comments without losing the text after them", () => {
    const t = parseXml("<a>x<!-- c -->y</a>");
    expect(t.children).toEqual(["xy"]);
    expect(parseXml("<a><!-- one --><b/>z<!-- two --></a>").children).toEqual([
      { kind: "element", ns: JABBER_CLIENT, name: "b", attrs: [], children: [] },
      "z",
    ]);
    expect(parseXml("<a>p<!-- <b>not an element</b> -->q</a>").children).toEqual(["pq"]);
  });

  it("drops whitespace-only text between elements by default", () => {
    const t = parseXml("<a>\n  <b/>\n  <c> </c>\n</a>");
    expect(t.children.length).toBe(2);
    // Whitespace that is the only content of an element is text, not formatting.
    expect(child(t, 1).children).toEqual([" "]);
  });

  it("keeps whitespace-only text with keepWhitespace", () => {
    const t = parseXml("<a>\n  <b/>\n</a>", { keepWhitespace: true });
    expect(t.children).toEqual([
      "\n  ",
      { kind: "element", ns: JABBER_CLIENT, name: "b", attrs: [], children: [] },
      "\n",
    ]);
    // Both forms are the same infoset.
    expect(sameInfoset(t, parseXml("<a><b/></a>"))).toBe(true);
  });

  it("keeps mixed text with its spaces", () => {
    expect(parseXml("<body> Hello, <b>big</b> world </body>").children).toEqual([
      " Hello, ",
      { kind: "element", ns: JABBER_CLIENT, name: "b", attrs: [], children: ["big"] },
      " world ",
    ]);
  });
});

describe("escaping round-trips", () => {
  const nasty = `a & b < c > d ' e " f &amp; &lt; ]]> \t tab`;

  it("parses entities and character references in text and attributes", () => {
    const t = parseXml("<a v='&amp;&lt;&gt;&apos;&quot;&#9;&#10;&#x41;'>&amp;&lt;&gt;&apos;&quot;&#65;</a>");
    expect(t.attrs[0]!.value).toBe("&<>'\"\t\nA");
    expect(t.children).toEqual(["&<>'\"A"]);
  });

  it("toXml escapes & < > ' \" in text and attributes so that they parse back", () => {
    const t = el(JABBER_CLIENT, "message", { v: nasty, w: "line\nbreak\r\nand\ttab", q: "'\"" }, nasty);
    const xml = toXml(t);
    const back = parseXml(xml);
    expect(sameInfoset(back, t)).toBe(true);
    expect(back.attrs.map((a) => a.value)).toEqual([nasty, "line\nbreak\r\nand\ttab", "'\""]);
    expect(back.children).toEqual([nasty]);
  });

  it("round-trips unicode and namespaces of every kind", () => {
    const t = el(
      "urn:example:ü",
      "x",
      { v: "日本語 😀 é" },
      el("urn:example:other", "y", {}, "ß"),
      el("", "z"),
      "tail",
    );
    expect(sameInfoset(parseXml(toXml(t)), t)).toBe(true);
  });
});

describe("malformed XML throws XmlError", () => {
  it.each([
    "",
    "plain text",
    "<a>",
    "<a></b>",
    "<a><b></a></b>",
    "<a b='1>",
    "<a><!-- unterminated</a>",
    "<p:a/>",
    "<a p:b='1'/>",
  ])("%j", (xml) => {
    expect(() => parseXml(xml)).toThrow(XmlError);
  });

  it("a repeated attribute is not well-formed (XML 1.0 §3.1, Unique Att Spec)", () => {
    expect(() => parseXml("<a b='1' b='2'/>")).toThrow(XmlError);
  });

  it("attributes named like Object.prototype members are kept, __proto__ too", () => {
    const t = parseXml("<a constructor='y' toString='z' hasOwnProperty='w'/>");
    expect(t.attrs.map((a) => a.name)).toEqual(["constructor", "toString", "hasOwnProperty"]);
    const p = parseXml("<a __proto__='x'/>");
    expect(p.attrs).toEqual([{ ns: "", name: "__proto__", value: "x" }]);
    expect(fromLtx(toElement(p))).toEqual(p);
    expect(({} as Record<string, unknown>).x).toBeUndefined();
  });
});

describe("codec tree ⇄ ltx / @xmpp/xml elements (the component link's form)", () => {
  it("round-trips through ltx elements: namespaces, prefixed attributes, xml:lang, text", () => {
    const xml =
      "<message xmlns='jabber:client' to='a@b.c' xml:lang='en'><body>hi &amp; bye</body><x xmlns='urn:a' xmlns:p='urn:b' p:q='1'><y/></x></message>";
    const tree = parseXml(xml);
    const element = toElement(tree);
    expect(element.attrs.xmlns).toBe("jabber:client");
    expect(sameInfoset(fromLtx(element), tree)).toBe(true);
    // And through ltx's own serialiser and parser, as the XMPP server would see it.
    expect(sameInfoset(parseXml(element.toString()), tree)).toBe(true);
  });
});

describe("xmlByteLength", () => {
  const bytes = (e: XElement, parentNs?: string) => Buffer.byteLength(toXml(e, parentNs));

  it("is the UTF-8 length of toXml for every corpus stanza, in and out of a client stream", () => {
    for (const source of ["visible", "rfc"] as const) {
      for (const s of loadCorpus(source)) {
        expect(xmlByteLength(s.tree), `${source} ${s.index}`).toBe(bytes(s.tree));
        expect(xmlByteLength(s.tree, JABBER_CLIENT), `${source} ${s.index}`).toBe(
          bytes(s.tree, JABBER_CLIENT),
        );
      }
    }
  });

  it("counts escapes, namespaced attributes and every UTF-8 width (lone surrogates as U+FFFD)", () => {
    const e: XElement = {
      kind: "element",
      ns: "urn:a&'b",
      name: "x",
      attrs: [
        { ns: "", name: "v", value: `<&>'"\t\n\r é € 😀` },
        { ns: XML_NS, name: "lang", value: "en" },
        { ns: "urn:p", name: "a", value: "1" },
        { ns: "urn:q", name: "b", value: "2" },
        { ns: "urn:p", name: "c", value: "3" },
      ],
      children: [
        "a<b>&c'\"\t\n é\ud800x\udc00",
        { kind: "element", ns: "urn:a&'b", name: "y", attrs: [], children: [] },
      ],
    };
    expect(xmlByteLength(e)).toBe(bytes(e));
    expect(xmlByteLength(e, "urn:a&'b")).toBe(bytes(e, "urn:a&'b"));
  });
});
