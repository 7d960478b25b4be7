/**
 * Hostile input: any byte string decodes to a stanza or throws a CodecError (code, offset) — never another
 * exception, a hang, a huge allocation or prototype pollution. And the encoder side: arbitrary trees
 * round-trip exactly.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  CodecError,
  type CodecLimits,
  DEFAULT_LIMITS,
  DICTIONARY_V1,
  dictionaryLists,
  el,
  JABBER_CLIENT,
  MAX_DEPTH,
  SessionDecoder,
  SessionEncoder,
  StatelessDecoder,
  StatelessEncoder,
  sameInfoset,
  type XAttr,
  type XElement,
  XML_NS,
  type XNode,
} from "../../codec/index.js";
import { toXml } from "../../gateway/xml/stanza-xml.js";
import { concat, head, MAJOR, repeat, text } from "../kit/cbor.js";
import { bySession, describeError, loadCorpus } from "../kit/corpus.js";

interface Decoder {
  decode(bytes: Uint8Array): { stanza: XElement };
}

/**
 * Decodes `bytes`; returns the stanza or the CodecError. Anything else — another exception, or a
 * CodecError that wraps an internal failure, or one with a bad offset — fails the test.
 */
function decodeOrCodecError(decoder: Decoder, bytes: Uint8Array): XElement | CodecError {
  try {
    return decoder.decode(bytes).stanza;
  } catch (error) {
    if (!(error instanceof CodecError)) throw new Error(`not a CodecError: ${describeError(error)}`);
    if (typeof error.code !== "string" || (error.code as string) === "")
      throw new Error(`CodecError without a code: ${error.message}`);
    if (!Number.isInteger(error.offset) || error.offset < 0 || error.offset > bytes.length) {
      throw new Error(`CodecError offset ${error.offset} outside 0..${bytes.length}: ${error.message}`);
    }
    // The decoder turns its own bugs into CodecErrors marked "internal": for hostile input that is a crash.
    if (/internal/i.test(error.message)) throw new Error(`internal failure: ${error.message}`);
    return error;
  }
}

function expectCodecError(decoder: Decoder, bytes: Uint8Array, codes: readonly string[]): CodecError {
  const result = decodeOrCodecError(decoder, bytes);
  if (!(result instanceof CodecError)) throw new Error(`decoded to ${toXml(result).slice(0, 100)}`);
  expect(codes, `got ${result.code}: ${result.message}`).toContain(result.code);
  return result;
}

/** Every node of a decoded stanza is well-formed (the decoder never returns a half-built tree). */
function wellFormed(e: XElement): boolean {
  if (e.kind !== "element" || typeof e.ns !== "string" || typeof e.name !== "string" || e.name === "")
    return false;
  for (const a of e.attrs)
    if (typeof a.ns !== "string" || typeof a.name !== "string" || typeof a.value !== "string") return false;
  return e.children.every((c) => typeof c === "string" || wellFormed(c));
}

const PROTOTYPE_KEYS = Object.getOwnPropertyNames(Object.prototype).sort();
function expectPrototypeIntact(): void {
  expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(PROTOTYPE_KEYS);
  expect(({} as Record<string, unknown>).polluted).toBeUndefined();
}

// ---------------------------------------------------------------------------------------------------------
// Corpus frames to mutate: stateless frames of a sample, and session frames of a few sessions.

const visible = loadCorpus("visible");
const rfc = loadCorpus("rfc");
const SAMPLE = [...visible.filter((s) => s.index % 16 === 0), ...rfc.filter((s) => s.index % 8 === 0)];
const STATELESS_FRAMES = SAMPLE.map((s) => new StatelessEncoder().encode(s.tree).bytes);

/** The frames of a few sessions in order, and a decoder holding the state they built. */
function sessionFrames(): { frames: Uint8Array[]; decoder: SessionDecoder } {
  const groups = bySession(visible);
  const frames: Uint8Array[] = [];
  const encoder = new SessionEncoder();
  const decoder = new SessionDecoder();
  for (const xep of ["xep:323", "xep:325", "xep:60"]) {
    for (const s of groups.get(xep) ?? []) {
      const frame = encoder.encode(s.tree);
      frames.push(frame.bytes);
      encoder.acknowledge(decoder.decode(frame.bytes).inserted);
    }
  }
  return { frames, decoder };
}

// ---------------------------------------------------------------------------------------------------------
// Generators of hostile bytes.

/** CBOR-ish items: heads of every major type with small and extreme arguments, the cxmpp tag numbers… */
const cborToken = fc.oneof(
  fc.integer({ min: 0, max: 255 }).map((b) => Uint8Array.of(b)),
  fc
    .tuple(
      fc.integer({ min: 0, max: 7 }),
      fc.oneof(fc.nat(30), fc.constantFrom(24, 255, 256, 65_535, 2 ** 32)),
    )
    .map(([major, value]) => head(major, value)),
  fc.constantFrom(1, 4, 6, 7, 8, 10, 22, 23, 37, 100, 0xffff).map((tag) => head(MAJOR.tag, tag)),
  fc.string({ maxLength: 6 }).map(text),
  fc.constantFrom(
    Uint8Array.of(0xf4),
    Uint8Array.of(0xf5),
    Uint8Array.of(0xf6),
    Uint8Array.of(0xf7),
    Uint8Array.of(0xff),
  ),
);
const cborish = fc.array(cborToken, { maxLength: 40 }).map((parts) => concat(...parts));

/** A corpus frame with random flips, inserts and deletes. */
function mutated(frames: readonly Uint8Array[]): fc.Arbitrary<Uint8Array> {
  const edit = fc.record({
    kind: fc.constantFrom("flip", "set", "insert", "delete"),
    at: fc.nat(),
    byte: fc.integer({ min: 0, max: 255 }),
    bit: fc.integer({ min: 0, max: 7 }),
  });
  return fc
    .tuple(fc.integer({ min: 0, max: frames.length - 1 }), fc.array(edit, { minLength: 1, maxLength: 4 }))
    .map(([which, edits]) => {
      const bytes = [...frames[which]!];
      for (const e of edits) {
        const at = bytes.length === 0 ? 0 : e.at % (bytes.length + (e.kind === "insert" ? 1 : 0));
        if (e.kind === "flip" && bytes.length > 0) bytes[at] = bytes[at]! ^ (1 << e.bit);
        else if (e.kind === "set" && bytes.length > 0) bytes[at] = e.byte;
        else if (e.kind === "insert") bytes.splice(at, 0, e.byte);
        else if (e.kind === "delete") bytes.splice(at, 1);
      }
      return Uint8Array.from(bytes);
    });
}

describe("hostile input: any bytes give a stanza or a CodecError", () => {
  it("(a) arbitrary bytes, stateless decoder", () => {
    const decoder = new StatelessDecoder();
    let decoded = 0;
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const r = decodeOrCodecError(decoder, bytes);
        if (!(r instanceof CodecError)) {
          decoded++;
          expect(wellFormed(r)).toBe(true);
        }
      }),
      { seed: 42, numRuns: 3000 },
    );
    expect(decoded).toBeLessThan(3000);
  });

  it("(a) CBOR-shaped bytes, stateless and session decoders", () => {
    const stateless = new StatelessDecoder();
    const session = new SessionDecoder();
    const codes = new Set<string>();
    fc.assert(
      fc.property(cborish, (bytes) => {
        for (const decoder of [stateless, session]) {
          const r = decodeOrCodecError(decoder, bytes);
          if (r instanceof CodecError) codes.add(r.code);
          else expect(wellFormed(r)).toBe(true);
        }
      }),
      { seed: 43, numRuns: 3000 },
    );
    // The generator reaches past the first byte: several different failures were exercised.
    expect(codes.size, [...codes].join(",")).toBeGreaterThanOrEqual(5);
  });

  it("(a) arbitrary bytes, session decoder (state carried across inputs)", () => {
    const decoder = new SessionDecoder();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const r = decodeOrCodecError(decoder, bytes);
        if (!(r instanceof CodecError)) expect(wellFormed(r)).toBe(true);
      }),
      { seed: 44, numRuns: 3000 },
    );
  });

  it("(b) mutated corpus frames, stateless", () => {
    expect(STATELESS_FRAMES.length).toBeGreaterThan(100);
    const decoder = new StatelessDecoder();
    let decoded = 0;
    let failed = 0;
    fc.assert(
      fc.property(mutated(STATELESS_FRAMES), (bytes) => {
        const r = decodeOrCodecError(decoder, bytes);
        if (r instanceof CodecError) failed++;
        else {
          decoded++;
          expect(wellFormed(r)).toBe(true);
        }
      }),
      { seed: 45, numRuns: 3000 },
    );
    // Mutations reach deep into frames: both outcomes occur.
    expect(decoded).toBeGreaterThan(0);
    expect(failed).toBeGreaterThan(0);
  });

  it("(b) mutated session frames, on a decoder holding that session's table", () => {
    const { frames, decoder } = sessionFrames();
    expect(frames.length).toBeGreaterThan(100);
    fc.assert(
      fc.property(mutated(frames), (bytes) => {
        const r = decodeOrCodecError(decoder, bytes);
        if (!(r instanceof CodecError)) expect(wellFormed(r)).toBe(true);
      }),
      { seed: 46, numRuns: 3000 },
    );
  });
});

describe("(c) hand-written hostile frames", () => {
  const stateless = new StatelessDecoder();

  it("deep nesting of elements (depth 10,000) is LIMIT or TRUNCATED, not a stack overflow", () => {
    // [ "a", [ "a", [ "a", … — elements with a text name and one child, never closed.
    const open = concat(head(MAJOR.array, 2), text("a"));
    expectCodecError(stateless, repeat(open, 10_000), ["LIMIT", "TRUNCATED"]);
    expectCodecError(new SessionDecoder(), repeat(open, 10_000), ["LIMIT", "TRUNCATED"]);
    // Closed: innermost [ "a" ].
    const closed = concat(repeat(open, 9_999), head(MAJOR.array, 1), text("a"));
    expectCodecError(stateless, closed, ["LIMIT"]);
  });

  it("deep nesting of bare arrays (depth 10,000) is a CodecError", () => {
    expectCodecError(stateless, repeat(head(MAJOR.array, 1), 10_000), [
      "LIMIT",
      "TRUNCATED",
      "BAD_STRUCTURE",
    ]);
    expectCodecError(stateless, repeat(head(MAJOR.map, 1), 10_000), ["LIMIT", "TRUNCATED", "BAD_STRUCTURE"]);
    expectCodecError(stateless, repeat(head(MAJOR.tag, 6), 10_000), ["LIMIT", "TRUNCATED", "BAD_STRUCTURE"]);
  });

  it("a depth limit beyond what recursion can bear is refused when the decoder is made", () => {
    // The decoder recurses per element; MAX_DEPTH keeps every engine's stack out of reach.
    expect(() => new StatelessDecoder({ limits: { maxDepth: 1_000_000 } })).toThrow(RangeError);
    const decoder = new StatelessDecoder({ limits: { maxDepth: MAX_DEPTH, maxNodes: 10_000_000 } });
    const open = concat(head(MAJOR.array, 2), text("a"));
    const closed = concat(repeat(open, MAX_DEPTH - 1), head(MAJOR.array, 1), text("a"));
    expect(decoder.decode(closed).stanza.name).toBe("a");
    expectCodecError(decoder, concat(open, closed), ["LIMIT"]);
  });

  it("a string head claiming 2^32 or 2^64-1 bytes fails fast without allocating", () => {
    const before = process.memoryUsage().arrayBuffers;
    const huge = [2n ** 32n, 2n ** 32n - 1n, 2n ** 53n - 1n, 2n ** 64n - 1n];
    const generous = new StatelessDecoder({ limits: { maxStringBytes: 2 ** 40, maxFrameBytes: 2 ** 40 } });
    for (const n of huge) {
      for (const major of [MAJOR.bytes, MAJOR.text]) {
        const string = head(major, n);
        const frames = [
          concat(head(MAJOR.array, 2), text("a"), string), // as text
          concat(head(MAJOR.array, 1), string), // as the element name
          concat(head(MAJOR.array, 2), text("a"), head(MAJOR.map, 1), text("k"), string), // as an attribute
          concat(head(MAJOR.array, 2), text("a"), head(MAJOR.tag, 22), string), // inside a tag
        ];
        for (const frame of frames) {
          expectCodecError(stateless, frame, ["LIMIT", "TRUNCATED", "BAD_VALUE", "BAD_STRUCTURE"]);
          expectCodecError(generous, frame, ["LIMIT", "TRUNCATED", "BAD_VALUE", "BAD_STRUCTURE"]);
        }
      }
    }
    // Arrays and maps claiming 2^32 entries.
    expectCodecError(stateless, concat(head(MAJOR.array, 2n ** 32n), text("a")), ["TRUNCATED", "LIMIT"]);
    expectCodecError(stateless, concat(head(MAJOR.array, 2), text("a"), head(MAJOR.map, 2n ** 32n)), [
      "TRUNCATED",
      "LIMIT",
    ]);
    const grown = process.memoryUsage().arrayBuffers - before;
    expect(grown, `array buffers grew by ${grown} bytes`).toBeLessThan(32 * 1024 * 1024);
  }, 5_000);

  it("allocation follows the input, not the configured maxStringBytes", () => {
    // A generous limit is an option, not an invitation: decoding a small frame must not reserve it.
    const generous = new StatelessDecoder({ limits: { maxStringBytes: 2 ** 28 } });
    const frames = STATELESS_FRAMES.slice(0, 50);
    const before = process.memoryUsage().arrayBuffers;
    for (const f of frames) expect(generous.decode(f).stanza.name).not.toBe("");
    const grown = process.memoryUsage().arrayBuffers - before;
    expect(grown, `array buffers grew by ${grown} bytes for ${frames.length} small frames`).toBeLessThan(
      32 * 1024 * 1024,
    );
  });

  it("indefinite-length items are BAD_CBOR", () => {
    for (const initial of [0x9f, 0xbf, 0x5f, 0x7f]) {
      const item = Uint8Array.of(initial, 0xff);
      expectCodecError(stateless, item, ["BAD_CBOR"]); // as the frame
      expectCodecError(stateless, concat(head(MAJOR.array, 2), text("a"), item), ["BAD_CBOR"]); // as a child
      expectCodecError(
        stateless,
        concat(head(MAJOR.array, 2), text("a"), head(MAJOR.map, 1), text("k"), item),
        ["BAD_CBOR"],
      );
    }
    expectCodecError(stateless, Uint8Array.of(0xff), ["BAD_CBOR"]); // a lone break
  });

  it("floats are BAD_CBOR", () => {
    const floats = [
      Uint8Array.of(0xf9, 0x3c, 0x00),
      Uint8Array.of(0xfa, 0x3f, 0x80, 0x00, 0x00),
      Uint8Array.of(0xfb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0),
    ];
    for (const f of floats) {
      expectCodecError(stateless, f, ["BAD_CBOR"]);
      expectCodecError(stateless, concat(head(MAJOR.array, 2), text("a"), f), ["BAD_CBOR"]);
      expectCodecError(stateless, concat(head(MAJOR.array, 2), text("a"), head(MAJOR.map, 1), text("k"), f), [
        "BAD_CBOR",
      ]);
    }
  });

  it("__proto__ and constructor are plain attribute and element names; Object.prototype is untouched", () => {
    // JSON.parse makes "__proto__" an own key (an object literal would set the prototype instead).
    const attrs = JSON.parse(
      '{"__proto__":"{\\"polluted\\":\\"yes\\"}","constructor":"polluted","prototype":"x","hasOwnProperty":"y","polluted":"z"}',
    ) as Record<string, string>;
    const stanza = el(
      JABBER_CLIENT,
      "message",
      attrs,
      el("urn:example:proto", "__proto__", { polluted: "yes", __defineGetter__: "g" }, "text"),
      el("urn:example:proto", "constructor", {}),
    );
    expect(stanza.attrs.map((a: XAttr) => a.name)).toContain("__proto__");
    const pairs: [Decoder, { encode(x: XElement): { bytes: Uint8Array } }][] = [
      [new StatelessDecoder(), new StatelessEncoder()],
      [new SessionDecoder(), new SessionEncoder()],
    ];
    for (const [decoder, encoder] of pairs) {
      for (let round = 0; round < 2; round++) {
        const decoded = decoder.decode(encoder.encode(stanza).bytes).stanza;
        expect(sameInfoset(decoded, stanza)).toBe(true);
        expect(decoded.attrs.find((a) => a.name === "__proto__")?.value).toBe('{"polluted":"yes"}');
        expect(Object.getPrototypeOf(decoded)).toBe(Object.prototype);
        expectPrototypeIntact();
      }
    }
  });

  it("a frame over maxFrameBytes is LIMIT", () => {
    const big = new Uint8Array(DEFAULT_LIMITS.maxFrameBytes + 1).fill(0x61);
    big.set(concat(head(MAJOR.array, 2), text("a"), head(MAJOR.text, big.length - 5)), 0);
    expectCodecError(stateless, big, ["LIMIT"]);
    expectCodecError(new SessionDecoder(), big, ["LIMIT"]);
    // Around a custom limit, measured on a real frame.
    const frame = STATELESS_FRAMES.find((f) => f.length > 40)!;
    expect(
      new StatelessDecoder({ limits: { maxFrameBytes: frame.length } }).decode(frame).stanza,
    ).toBeDefined();
    expectCodecError(new StatelessDecoder({ limits: { maxFrameBytes: frame.length - 1 } }), frame, ["LIMIT"]);
    // The encoder refuses to produce such a frame.
    const tree = SAMPLE[STATELESS_FRAMES.indexOf(frame)]!.tree;
    expect(() => new StatelessEncoder({ limits: { maxFrameBytes: frame.length - 1 } }).encode(tree)).toThrow(
      CodecError,
    );
  });
});

describe("(c) small custom limits: maxDepth 3, maxNodes 10, maxStringBytes 8", () => {
  const LIMITS: Partial<CodecLimits> = { maxDepth: 3, maxNodes: 10, maxStringBytes: 8 };
  const limited = new StatelessDecoder({ limits: LIMITS });
  const encode = (x: XElement): Uint8Array => new StatelessEncoder().encode(x).bytes;
  const NS = "urn:x"; // 5 bytes: within maxStringBytes when written as a literal

  it("depth: 3 levels decode, 4 are LIMIT", () => {
    const three = el(NS, "a", {}, el(NS, "b", {}, el(NS, "c")));
    expect(sameInfoset(limited.decode(encode(three)).stanza, three)).toBe(true);
    const four = el(NS, "a", {}, el(NS, "b", {}, el(NS, "c", {}, el(NS, "d"))));
    expectCodecError(limited, encode(four), ["LIMIT"]);
  });

  it("nodes (elements + attributes + text nodes): 10 decode, 11 are LIMIT", () => {
    const attrs = (n: number): Record<string, string> =>
      Object.fromEntries(Array.from({ length: n }, (_, i) => [`a${i}`, "v"]));
    // Counted as CodecLimits documents them: every element, attribute and text node once.
    const cases: [XElement, XElement][] = [
      [el(NS, "r", attrs(9)), el(NS, "r", attrs(10))],
      [
        el(NS, "r", {}, ...Array.from({ length: 9 }, () => el(NS, "c"))),
        el(NS, "r", {}, ...Array.from({ length: 10 }, () => el(NS, "c"))),
      ],
      [
        el(NS, "r", attrs(4), el(NS, "c", attrs(2), "t"), "u"),
        el(NS, "r", attrs(5), el(NS, "c", attrs(2), "t"), "u"),
      ],
    ];
    const problems: string[] = [];
    for (const [ten, eleven] of cases) {
      const r = decodeOrCodecError(limited, encode(ten));
      if (r instanceof CodecError) problems.push(`10 nodes ${toXml(ten)}: ${r.message}`);
      else if (!sameInfoset(r, ten)) problems.push(`10 nodes ${toXml(ten)}: decoded differently`);
      const r11 = decodeOrCodecError(limited, encode(eleven));
      if (!(r11 instanceof CodecError) || r11.code !== "LIMIT")
        problems.push(`11 nodes ${toXml(eleven)}: not LIMIT`);
    }
    expect(problems).toEqual([]);
  });

  it("strings: 8 bytes decode, 9 bytes (UTF-8) are LIMIT", () => {
    for (const ok of ["abcdefgh", "éééé", "qwertzui"]) {
      const x = el(NS, "r", { k: ok }, ok);
      expect(sameInfoset(limited.decode(encode(x)).stanza, x), ok).toBe(true);
    }
    for (const bad of ["abcdefghi", "ééééé", "qwertzuiop"]) {
      expectCodecError(limited, encode(el(NS, "r", { k: bad })), ["LIMIT"]);
      expectCodecError(limited, encode(el(NS, "r", {}, bad)), ["LIMIT"]);
    }
  });

  it("strings carried in binary or as parts are limited by their decoded length too", () => {
    const values = [
      "2002-09-10T23:08:25Z",
      "2002-09-10T23:08:25.123-07:00",
      "2002-09-10",
      "1234567890",
      "-12345.678",
      "f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
      "deadbeefdeadbeef",
      "QUJDREVGR0hJ",
      "ab@cd.ef/gh",
      "é@é.é/é",
    ];
    const problems: string[] = [];
    for (const v of values) {
      const x = el(NS, "r", { k: v });
      const frames = [encode(x), new SessionEncoder().encode(x).bytes];
      frames.forEach((frame, mode) => {
        const decoder = mode === 0 ? limited : new SessionDecoder({ limits: LIMITS });
        const r = decodeOrCodecError(decoder, frame);
        if (!(r instanceof CodecError))
          problems.push(`${mode === 0 ? "stateless" : "session"} '${v}' decoded`);
        else if (r.code !== "LIMIT") problems.push(`'${v}': ${r.code}`);
      });
    }
    expect(problems, "values longer than maxStringBytes (8) that were not LIMIT").toEqual([]);
  });

  it("whatever a limited decoder accepts from the corpus is within its limits", () => {
    const dictionaryStrings = new Set<string>([
      XML_NS,
      ...dictionaryLists(DICTIONARY_V1).namespaces,
      ...dictionaryLists(DICTIONARY_V1).values,
      ...dictionaryLists(DICTIONARY_V1).qnames.map((q) => q.name),
      ...dictionaryLists(DICTIONARY_V1).attributes.map((a) => a.name),
    ]);
    const problems: string[] = [];
    let accepted = 0;
    const within = (e: XElement, depth: number, count: { nodes: number }): string | undefined => {
      if (depth > 3) return "too deep";
      count.nodes += 1 + e.attrs.length;
      const strings = [e.ns, e.name, ...e.attrs.flatMap((a) => [a.ns, a.name, a.value])];
      for (const c of e.children) {
        if (typeof c === "string") {
          count.nodes++;
          strings.push(c);
        } else {
          const why = within(c, depth + 1, count);
          if (why) return why;
        }
      }
      const long = strings.find((s) => !dictionaryStrings.has(s) && new TextEncoder().encode(s).length > 8);
      return long === undefined ? undefined : `string '${long}' longer than 8 bytes`;
    };
    const sessionDecoder = new SessionDecoder({ limits: LIMITS });
    const sessionEncoder = new SessionEncoder();
    for (const s of [...visible, ...rfc]) {
      const frames = [encode(s.tree), sessionEncoder.encode(s.tree).bytes];
      frames.forEach((frame, mode) => {
        const decoder = mode === 0 ? limited : sessionDecoder;
        const r = decodeOrCodecError(decoder, frame);
        if (r instanceof CodecError) {
          if (r.code !== "LIMIT" && !(mode === 1 && r.code === "UNKNOWN_REF"))
            problems.push(`${s.source}#${s.index}: ${r.code}`);
          return;
        }
        accepted++;
        const count = { nodes: 0 };
        const why = within(r, 1, count) ?? (count.nodes > 10 ? `${count.nodes} nodes` : undefined);
        if (why) problems.push(`${s.source}#${s.index}: accepted but ${why}`);
      });
    }
    expect(problems.slice(0, 10), `${problems.length} problems`).toEqual([]);
    expect(accepted, "some small corpus stanzas fit the limits").toBeGreaterThan(0);
  });

  it("what an encoder with given limits produces, a decoder with the same limits accepts", () => {
    const encoder = new StatelessEncoder({ limits: LIMITS });
    let encoded = 0;
    for (const s of [...visible, ...rfc]) {
      let bytes: Uint8Array;
      try {
        bytes = encoder.encode(s.tree).bytes;
      } catch (error) {
        expect(error instanceof CodecError && error.code === "LIMIT", describeError(error)).toBe(true);
        continue;
      }
      encoded++;
      expect(sameInfoset(limited.decode(bytes).stanza, s.tree), `${s.source}#${s.index}`).toBe(true);
    }
    expect(encoded).toBeGreaterThan(0);
  });
});

// ---------------------------------------------------------------------------------------------------------
// (d) Encoder side: random trees round-trip exactly.

const NAMESPACES = [
  JABBER_CLIENT,
  "http://jabber.org/protocol/disco#info",
  "http://jabber.org/protocol/pubsub",
  "urn:xmpp:iot:sensordata",
  "urn:example:unknown",
  "",
];
const ATTR_NAMESPACES = ["", "", "", XML_NS, "urn:example:attr"];

const hexOf = (b: Uint8Array): string => Buffer.from(b).toString("hex");
const SPECIAL_VALUES = [
  "41.70",
  "41.7",
  "-0",
  "-0.0",
  "0",
  "007",
  "1e5",
  "+1",
  "-12",
  "9007199254740993",
  "2002-09-10T23:08:25Z",
  "2002-09-10T23:08:25.123-07:00",
  "2002-09-10T23:08:25.000+00:00",
  "2002-09-10T23:08:25-00:00",
  "2013-03-07T16:24:30",
  "2002-09-10",
  "2002-02-30",
  "QUJDREVGR0hJ",
  "QUJDREVGR0g=",
  "QUJDREVGR0h=",
  "deadbeefdeadbeef",
  "DEADBEEFDEADBEEF",
  "f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
  "F81D4FAE-7DEC-11D0-A765-00A0C91E6BF6",
  "a@b.c/d",
  "a@b.c",
  "b.c/d",
  "@b.c",
  "a@b.c/",
  "a@b@c.d/e/f",
  "",
  " ",
  "true",
  "false",
  "result",
  "chat",
];

const valueArb = fc.oneof(
  fc.constantFrom(...SPECIAL_VALUES),
  fc.string({ unit: "grapheme", maxLength: 20 }),
  fc.string({ unit: fc.constantFrom(..."0123456789-.:TZ+"), maxLength: 30 }),
  fc.integer().map(String),
  fc.tuple(fc.integer({ min: -99999, max: 99999 }), fc.nat(9999)).map(([a, b]) => `${a}.${b}`),
  fc
    .date({
      min: new Date("0001-01-01T00:00:00Z"),
      max: new Date("9999-12-31T23:59:59Z"),
      noInvalidDate: true,
    })
    .chain((d) =>
      fc.constantFrom(
        d.toISOString(),
        d.toISOString().replace(".000Z", "Z"),
        d.toISOString().slice(0, 19),
        d.toISOString().slice(0, 10),
        d.toISOString().replace("Z", "+05:30"),
      ),
    ),
  fc.uint8Array({ maxLength: 24 }).map((b) => Buffer.from(b).toString("base64")),
  fc.uint8Array({ minLength: 1, maxLength: 24 }).map(hexOf),
  fc.uuid(),
  fc
    .tuple(
      fc.stringMatching(/^[a-z0-9]{1,8}$/),
      fc.constantFrom("example.org", "iot.example.com", "b.c"),
      fc.option(fc.string({ unit: "grapheme", minLength: 1, maxLength: 8 }), { nil: undefined }),
    )
    .map(([l, d, r]) => `${l}@${d}${r === undefined ? "" : `/${r}`}`),
);
const textArb = fc.oneof(valueArb, fc.constantFrom(" ", "\n  ", "\t", "\r\n"));
const nameArb = fc.stringMatching(/^[a-z]{1,8}$/);
const attrsArb = fc.uniqueArray(
  fc.record({ ns: fc.constantFrom(...ATTR_NAMESPACES), name: nameArb, value: valueArb }),
  { maxLength: 5, selector: (a) => `${a.ns} ${a.name}` },
);

const { element: elementArb } = fc.letrec<{ element: XElement; child: XNode }>((tie) => ({
  element: fc
    .record({
      ns: fc.constantFrom(...NAMESPACES),
      name: nameArb,
      attrs: attrsArb,
      children: fc.array(tie("child"), { maxLength: 4, depthIdentifier: "tree" }),
    })
    .map((r): XElement => ({ kind: "element", ...r })),
  child: fc.oneof({ depthSize: "small", maxDepth: 6, depthIdentifier: "tree" }, textArb, tie("element")),
}));

describe("(d) random trees round-trip exactly", () => {
  it("stateless", () => {
    const encoder = new StatelessEncoder();
    const decoder = new StatelessDecoder();
    fc.assert(
      fc.property(elementArb, (tree) => {
        const decoded = decoder.decode(encoder.encode(tree).bytes).stanza;
        expect(sameInfoset(decoded, tree), `${JSON.stringify(tree)}\n→ ${JSON.stringify(decoded)}`).toBe(
          true,
        );
      }),
      { seed: 47, numRuns: 1500 },
    );
  });

  it("session: fresh pair per tree, sent three times with acknowledgements", () => {
    fc.assert(
      fc.property(elementArb, (tree) => {
        const encoder = new SessionEncoder();
        const decoder = new SessionDecoder();
        for (let i = 0; i < 3; i++) {
          const frame = encoder.encode(tree);
          const decoded = decoder.decode(frame.bytes);
          expect(sameInfoset(decoded.stanza, tree), `round ${i}: ${JSON.stringify(tree)}`).toBe(true);
          encoder.acknowledge(decoded.inserted);
        }
      }),
      { seed: 48, numRuns: 700 },
    );
  });

  it("session: one long-lived pair across all trees (the table fills up)", () => {
    const encoder = new SessionEncoder();
    const decoder = new SessionDecoder();
    fc.assert(
      fc.property(fc.array(elementArb, { minLength: 1, maxLength: 3 }), (trees) => {
        for (const tree of [...trees, ...trees]) {
          const decoded = decoder.decode(encoder.encode(tree).bytes);
          expect(sameInfoset(decoded.stanza, tree), JSON.stringify(tree)).toBe(true);
          encoder.acknowledge(decoded.inserted);
        }
      }),
      { seed: 49, numRuns: 500 },
    );
    expect(decoder.tableSize).toBeGreaterThan(100);
  });
});
