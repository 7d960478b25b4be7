/**
 * XML conformance where XML text enters (issue 14, item 1): hand-written hostile and edge-case stanzas,
 * each with the infoset XML 1.0 + Namespaces in XML 1.0 give it, or the error it must be. The same
 * cases go through both entry points: `parseXml` (one stanza as text: corpus readers, tools, tests) and
 * `StreamParser` (the XEP-0114 link's stream parser), the latter fed in chunks of every size; and the
 * real `ComponentLink` reads them from a socket split inside CDATA sections and UTF-8 sequences.
 */
import { once } from "node:events";
import { createServer, type Server, type Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import {
  JABBER_CLIENT,
  normalize,
  type XAttr,
  type XElement,
  XML_NS,
  type XNode,
} from "../../codec/index.js";
import { ComponentLink } from "../../gateway/federation/component-link.js";
import { fromLtx, parseXml, XmlError } from "../../gateway/xml/stanza-xml.js";
import { StreamParser } from "../../gateway/xml/xml-parser.js";

/** An expected element: namespace, local name, attributes as [ns, local name, value], children. */
function E(
  ns: string,
  name: string,
  attrs: Array<[string, string, string]> = [],
  ...children: XNode[]
): XElement {
  const list: XAttr[] = attrs.map(([ans, aname, value]) => ({ ns: ans, name: aname, value }));
  return { kind: "element", ns, name, attrs: list, children };
}
const C = JABBER_CLIENT;

interface Case {
  readonly what: string;
  readonly xml: string;
  readonly infoset: XElement;
}

/** Each a stanza as it could arrive, with its infoset (whitespace-only text between elements dropped). */
const CASES: readonly Case[] = [
  {
    what: "text after a CDATA section is kept (the ltx defect)",
    xml: "<message><body><![CDATA[<b>bold</b> & co]]> and after</body></message>",
    infoset: E(C, "message", [], E(C, "body", [], "<b>bold</b> & co and after")),
  },
  {
    what: "CDATA in every position: first, last, only, between text and elements, adjacent, empty",
    xml:
      "<message><body><![CDATA[only]]></body><a xmlns='urn:a'><![CDATA[first]]>mid<![CDATA[]]><![CDATA[ last ]]></a>" +
      "<b xmlns='urn:a'>t<![CDATA[x]]><c/><![CDATA[y]]>u<c/><![CDATA[]]]]><![CDATA[>]]></b></message>",
    infoset: E(
      C,
      "message",
      [],
      E(C, "body", [], "only"),
      E("urn:a", "a", [], "firstmid last "),
      E("urn:a", "b", [], "tx", E("urn:a", "c"), "yu", E("urn:a", "c"), "]]>"),
    ),
  },
  {
    what: "CDATA holding markup, references and what looks like a comment stays literal",
    xml: "<message><body><![CDATA[&amp; &#10; <!-- no --> <?pi?> <x y='1'/>]]></body></message>",
    infoset: E(C, "message", [], E(C, "body", [], "&amp; &#10; <!-- no --> <?pi?> <x y='1'/>")),
  },
  {
    what: "comments and processing instructions carry nothing; the text around them is joined",
    xml: "<message><!-- c --><body>a<!-- in --><?app data?>b<!---->c</body><?pi?></message>",
    infoset: E(C, "message", [], E(C, "body", [], "abc")),
  },
  {
    what: "attribute values: literal newline, tab and CR are spaces (§3.3.3); &#10; &#9; &#13; stay",
    xml: "<message id='a\nb\tc\r\nd\re' to='x&#10;y&#9;z&#13;w'/>",
    infoset: E(C, "message", [
      ["", "id", "a b c d e"],
      ["", "to", "x\ny\tz\rw"],
    ]),
  },
  {
    what: "text: CRLF and lone CR are line feeds (§2.11); &#13; stays a CR",
    xml: "<message><body>1\r\n2\r3\n4&#13;5&#xD;&#xA;6</body></message>",
    infoset: E(C, "message", [], E(C, "body", [], "1\n2\n3\n4\r5\r\n6")),
  },
  {
    what: "the five predefined entities and character references, decimal and hex, in text and attributes",
    xml: "<message id='&lt;&gt;&amp;&apos;&quot;&#65;&#x42;'><body>&lt;&gt;&amp;&apos;&quot;&#x263A;&#9786;</body></message>",
    infoset: E(C, "message", [["", "id", "<>&'\"AB"]], E(C, "body", [], "<>&'\"☺☺")),
  },
  {
    what: "astral-plane characters, literal and as references, in text, attributes and CDATA",
    xml: "<message id='😀&#x1F600;'><body>𝄞&#119070;<![CDATA[🀄]]>&#x10FFFF;</body></message>",
    infoset: E(C, "message", [["", "id", "😀😀"]], E(C, "body", [], "𝄞𝄞🀄\u{10FFFF}")),
  },
  {
    what: "prefixed and default namespaces, redeclared, undeclared (xmlns=''), prefixed attributes",
    xml:
      "<message xmlns:p='urn:p' xmlns:q='urn:q'><p:x q:a='1' a='2'><y/><q:y xmlns:q='urn:q2'/></p:x>" +
      "<z xmlns='urn:z'><w xmlns=''/></z></message>",
    infoset: E(
      C,
      "message",
      [],
      E(
        "urn:p",
        "x",
        [
          ["urn:q", "a", "1"],
          ["", "a", "2"],
        ],
        E(C, "y"),
        E("urn:q2", "y"),
      ),
      E("urn:z", "z", [], E("", "w")),
    ),
  },
  {
    what: "the same local attribute name in two namespaces is two attributes",
    xml: "<message xmlns:p='urn:p' xmlns:q='urn:q' p:id='1' q:id='2' id='3'/>",
    infoset: E(C, "message", [
      ["urn:p", "id", "1"],
      ["urn:q", "id", "2"],
      ["", "id", "3"],
    ]),
  },
  {
    what: "xml:lang and xml:space are in the XML namespace without a declaration",
    xml: "<message xml:lang='de-CH'><body xml:lang='' xml:space='preserve'> x </body></message>",
    infoset: E(
      C,
      "message",
      [[XML_NS, "lang", "de-CH"]],
      E(
        C,
        "body",
        [
          [XML_NS, "lang", ""],
          [XML_NS, "space", "preserve"],
        ],
        " x ",
      ),
    ),
  },
  {
    what: "an element of the stanza namespace written with a prefix is the same infoset",
    xml: "<c:message xmlns:c='jabber:client' type='chat'><c:body>hi</c:body></c:message>",
    infoset: E(C, "message", [["", "type", "chat"]], E(C, "body", [], "hi")),
  },
  {
    what: "whitespace: significant in leaf text, dropped between elements",
    xml: "<message>\n  <body>  two  spaces\n</body>\n  <x xmlns='urn:x'>\t</x>\n</message>",
    infoset: E(C, "message", [], E(C, "body", [], "  two  spaces\n"), E("urn:x", "x", [], "\t")),
  },
  {
    what: "'>' in attribute values and text, ']]' outside a CDATA end",
    xml: "<message id='a>b' to=\"'\"><body>1 > 0 ]] ]>]</body></message>",
    infoset: E(
      C,
      "message",
      [
        ["", "id", "a>b"],
        ["", "to", "'"],
      ],
      E(C, "body", [], "1 > 0 ]] ]>]"),
    ),
  },
  {
    what: "names: non-ASCII, '.', '-', '_' and digits after the first character; spaces around '='",
    xml: "<message><données xmlns='urn:d' a.b-c_1 = 'v' ÿ='w'>x</données></message>",
    infoset: E(
      C,
      "message",
      [],
      E(
        "urn:d",
        "données",
        [
          ["", "a.b-c_1", "v"],
          ["", "ÿ", "w"],
        ],
        "x",
      ),
    ),
  },
  {
    what: "attributes named like Object.prototype members",
    xml: "<message __proto__='p' constructor='c' toString='t'/>",
    infoset: E(C, "message", [
      ["", "__proto__", "p"],
      ["", "constructor", "c"],
      ["", "toString", "t"],
    ]),
  },
];

/** Not well-formed, not namespace-well-formed, or restricted XML: each must be an error. */
const ERRORS: ReadonlyArray<[string, string]> = [
  ["unbound element prefix", "<message><p:x/></message>"],
  ["unbound attribute prefix", "<message p:id='1'/>"],
  ["duplicate attribute", "<message id='1' id='2'/>"],
  ["duplicate attribute by expanded name", "<message xmlns:p='urn:x' xmlns:q='urn:x' p:a='1' q:a='2'/>"],
  ["duplicate namespace declaration", "<message xmlns:p='urn:x' xmlns:p='urn:y'/>"],
  ["undeclaring a prefix (Namespaces 1.0)", "<message xmlns:p='urn:p'><p:x xmlns:p=''/></message>"],
  ["xml prefix bound elsewhere", "<message xmlns:xml='urn:x'/>"],
  ["xmlns as an element prefix", "<xmlns:message/>"],
  ["mismatched end tag", "<message><body></message></body>"],
  ["unclosed element", "<message><body>x</body>"],
  ["'<' in an attribute value", "<message id='<'/>"],
  ["unquoted attribute value", "<message id=1/>"],
  ["attribute without value", "<message id/>"],
  ["undefined entity", "<message><body>&nbsp;</body></message>"],
  ["entity declared in a DOCTYPE", "<!DOCTYPE message [<!ENTITY e 'x'>]><message>&e;</message>"],
  ["character reference to NUL", "<message><body>&#0;</body></message>"],
  ["character reference to a surrogate", "<message><body>&#xD83D;&#xDE00;</body></message>"],
  ["character reference beyond U+10FFFF", "<message><body>&#x110000;</body></message>"],
  ["a control character", "<message><body>\u0001</body></message>"],
  ["U+FFFE", "<message><body>\uFFFE</body></message>"],
  ["']]>' in text", "<message><body>a]]>b</body></message>"],
  ["unterminated CDATA", "<message><body><![CDATA[x</body></message>"],
  ["unterminated comment", "<message><!-- x</message>"],
  ["'--' inside a comment", "<message><!-- a -- b --></message>"],
  ["a second root", "<message/><message/>"],
  ["text after the root", "<message/>x"],
  ["an XML declaration not at the start", "<message><?xml version='1.0'?></message>"],
  ["a name starting with a digit", "<message><1x/></message>"],
  ["two colons in a name", "<message xmlns:a='urn:a'><a:b:c/></message>"],
  ["empty text", ""],
];

describe("parseXml: the infoset of hand-written edge-case stanzas", () => {
  for (const c of CASES) {
    it(c.what, () => {
      expect(parseXml(c.xml)).toEqual(c.infoset);
    });
  }

  it("an XML declaration and a byte order mark before the element are allowed", () => {
    expect(parseXml("\uFEFF<?xml version='1.0' encoding='UTF-8'?>\n<message/>")).toEqual(E(C, "message"));
  });

  it("keepWhitespace keeps whitespace-only text between elements", () => {
    expect(parseXml("<message> <body>x</body>\n</message>", { keepWhitespace: true })).toEqual(
      E(C, "message", [], " ", E(C, "body", [], "x"), "\n"),
    );
  });

  it("defaultNs is the namespace of unprefixed elements without xmlns", () => {
    expect(parseXml("<message><x xmlns='urn:x'><y/></x></message>", { defaultNs: "jabber:server" })).toEqual(
      E("jabber:server", "message", [], E("urn:x", "x", [], E("urn:x", "y"))),
    );
  });
});

describe("parseXml: what is not XML is an XmlError", () => {
  for (const [what, xml] of ERRORS) {
    it(what, () => {
      expect(() => parseXml(xml)).toThrow(XmlError);
    });
  }
});

const HEADER =
  "<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' " +
  "xmlns='jabber:component:accept' from='component.example' id='s1'>";

/** Feeds `chunks` to a StreamParser; what it emitted, the elements as codec trees. */
function feed(chunks: readonly string[]): { start: number; trees: XElement[]; end: number; errors: Error[] } {
  const parser = new StreamParser();
  const out = { start: 0, trees: [] as XElement[], end: 0, errors: [] as Error[] };
  parser.on("start", () => out.start++);
  parser.on("element", (element) => out.trees.push(normalize(fromLtx(element, C))));
  parser.on("end", () => out.end++);
  parser.on("error", (error: Error) => out.errors.push(error));
  for (const chunk of chunks) parser.write(chunk);
  return out;
}

/** `text` cut every `size` UTF-16 units (astral characters split between chunks too). */
function chunked(text: string, size: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size));
  return out;
}

describe("StreamParser (the component link's parser, xmpp.js's Parser interface)", () => {
  const stream = `${HEADER}${CASES.map((c) => c.xml).join(" ")} </stream:stream>`;
  const expected = CASES.map((c) => c.infoset);

  it("gives every case its infoset, the stream in one piece and in chunks of 1 to 13 characters", () => {
    for (const size of [stream.length, 1, 2, 3, 5, 7, 13]) {
      const out = feed(chunked(stream, size));
      expect(out.errors).toEqual([]);
      expect(out.start).toBe(1);
      expect(out.end).toBe(1);
      expect(out.trees).toEqual(expected);
    }
  });

  it("emits the header, and elements whose parent is the header (as xmpp.js's parser does)", () => {
    const parser = new StreamParser();
    let header: { name: string; attrs: Record<string, unknown> } | undefined;
    const elements: Array<{ name: string; parent: unknown; is(name: string, ns?: string): boolean }> = [];
    parser.on("start", (e) => (header = e));
    parser.on("element", (e) => elements.push(e));
    parser.write(
      `${HEADER}<handshake/>\n <stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>`,
    );
    parser.write("</stream:error>");
    expect(header?.name).toBe("stream:stream");
    expect(header?.attrs.xmlns).toBe("jabber:component:accept");
    expect(elements.map((e) => e.name)).toEqual(["handshake", "stream:error"]);
    expect(elements[0]!.parent).toBe(header);
    expect(elements[0]!.is("handshake", "jabber:component:accept")).toBe(true);
    expect(elements[1]!.is("error", "http://etherx.jabber.org/streams")).toBe(true);
    expect((header as unknown as { children: unknown[] }).children).toEqual([]); // keepalives not kept
  });

  it("keeps an element's qualified names and declarations as written, values as XML says", () => {
    const parser = new StreamParser();
    let element: { name: string; attrs: Record<string, string>; children: unknown[] } | undefined;
    parser.on("element", (e) => (element = e));
    parser.write(`${HEADER}<p:x xmlns:p='urn:p' p:a='1\n2' b='&#10;'><![CDATA[c]]>d</p:x>`);
    expect(element?.name).toBe("p:x");
    expect({ ...element?.attrs }).toEqual({ "xmlns:p": "urn:p", "p:a": "1 2", b: "\n" });
    expect(element?.children).toEqual(["cd"]);
  });

  for (const [what, xml] of ERRORS) {
    if (
      xml === "" ||
      what.includes("root") ||
      what.includes("XML declaration") ||
      what === "unclosed element" ||
      what.startsWith("unterminated")
    )
      continue; // not errors inside a stream, or only at its end
    it(`an error, once, and nothing after it: ${what}`, () => {
      const out = feed([HEADER, xml, "<message><body>after</body></message>"]);
      expect(out.errors).toHaveLength(1);
      expect(out.errors[0]).toBeInstanceOf(XmlError);
      expect(out.trees.map((t) => t.children)).not.toContainEqual([E(C, "body", [], "after")]);
    });
  }

  it("a DOCTYPE before the stream header is an error (restricted XML)", () => {
    const out = feed(["<!DOCTYPE stream:stream>", HEADER]);
    expect(out.errors).toHaveLength(1);
    expect(out.start).toBe(0);
  });
});

describe("ComponentLink reads the stream with the conformant parser", () => {
  let server: Server | undefined;
  let link: ComponentLink | undefined;
  afterEach(async () => {
    await link?.stop();
    server?.close();
    link = undefined;
    server = undefined;
  });

  it("stanzas split inside CDATA sections, references and UTF-8 sequences arrive whole", async () => {
    const stanzas = [
      "<message from='a@example.org/r' to='n@component.example' id='m1' type='chat'>" +
        "<body><![CDATA[<b>x</b>]]> after 😀 &amp; é</body><x xmlns='urn:x' v='l1\nl2' w='&#10;'/></message>",
      "<message from='a@example.org/r' to='n@component.example' id='m2'><body>𝄞<![CDATA[]]>ok</body></message>",
    ];
    const sent = Buffer.from(`${stanzas.join("")}`, "utf8");
    server = createServer((socket: Socket) => {
      let input = "";
      socket.on("data", (data) => {
        input += data.toString("utf8");
        if (input.includes("<stream:stream") && !input.includes("<handshake")) {
          socket.write(HEADER);
        } else if (input.includes("</handshake>")) {
          input = "";
          socket.write("<handshake/>");
          // one byte a segment: every CDATA delimiter, reference and multi-byte character is split
          let i = 0;
          const next = () => {
            if (i >= sent.length || socket.destroyed) return;
            socket.write(sent.subarray(i, i + 1), () => setImmediate(next));
            i++;
          };
          next();
        }
      });
      socket.on("error", () => {});
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const port = (server.address() as { port: number }).port;
    const received: XElement[] = [];
    let done: () => void = () => {};
    const all = new Promise<void>((resolve) => (done = resolve));
    link = new ComponentLink(
      { services: [`xmpp://127.0.0.1:${port}`], domain: "component.example", secret: "s" },
      {
        stanza: (tree) => {
          received.push(tree);
          if (received.length === stanzas.length) done();
        },
        online: () => {},
        offline: () => {},
      },
    );
    await link.start();
    await all;
    expect(received).toEqual(stanzas.map((s) => parseXml(s)));
    expect(received[0]!.children).toEqual([
      E(C, "body", [], "<b>x</b> after 😀 & é"),
      E("urn:x", "x", [
        ["", "v", "l1 l2"],
        ["", "w", "\n"],
      ]),
    ]);
  });
});
