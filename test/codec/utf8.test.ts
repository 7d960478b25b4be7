/**
 * codec/utf8.ts against the platform's WHATWG encoder and decoder as oracles: the same bytes for every
 * string (lone surrogates included), and for every byte string the same text, the same U+FFFD
 * replacements, and a fatal error exactly when `TextDecoder` fatal throws.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { utf8Decode, utf8Encode, utf8Length } from "../../codec/index.js";
import { utf8DecodeRange, utf8EncodeInto } from "../../codec/utf8.js";

const encoder = new TextEncoder();
const fatalDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const lenientDecoder = new TextDecoder("utf-8", { ignoreBOM: true });

/** What the oracle makes of `bytes` when fatal: the text, or `null` when it throws. */
function oracleFatal(bytes: Uint8Array): string | null {
  try {
    return fatalDecoder.decode(bytes);
  } catch {
    return null;
  }
}

function oursFatal(bytes: Uint8Array): string | null {
  try {
    return utf8Decode(bytes);
  } catch (error) {
    if (!(error instanceof TypeError)) throw error;
    return null;
  }
}

/** Checks fatal and lenient decoding of `bytes` against the oracle; returns a problem or undefined. */
function mismatch(bytes: Uint8Array): string | undefined {
  const hex = () => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ");
  if (oursFatal(bytes) !== oracleFatal(bytes)) return `fatal ${hex()}`;
  if (utf8Decode(bytes, false) !== lenientDecoder.decode(bytes)) return `lenient ${hex()}`;
  return undefined;
}

/** Any UTF-16 code unit, so lone and swapped surrogates come up, surrogates often. */
const codeUnit = fc.oneof(
  fc.integer({ min: 0, max: 0xffff }),
  fc.integer({ min: 0xd800, max: 0xdfff }),
  fc.integer({ min: 0, max: 0x7f }),
);
const anyUnits = fc.string({ unit: codeUnit.map((c) => String.fromCharCode(c)), maxLength: 64 });
const fullUnicode = fc.string({ unit: "binary", maxLength: 64 });

/** Byte strings near UTF-8: valid text, bytes at the edges of the lead and continuation ranges, noise. */
const edgeByte = fc.constantFrom(
  ..."00 7f 80 8f 90 9f a0 bf c0 c1 c2 df e0 e1 ec ed ee ef f0 f1 f3 f4 f5 f8 fe ff"
    .split(" ")
    .map((h) => Number.parseInt(h, 16)),
);
const nearUtf8 = fc
  .array(
    fc.oneof(
      fullUnicode.map((s) => Array.from(encoder.encode(s))),
      fc.array(edgeByte, { minLength: 1, maxLength: 4 }),
      fc.array(fc.integer({ min: 0x80, max: 0xbf }), { minLength: 1, maxLength: 3 }),
      fc.uint8Array({ maxLength: 6 }).map((b) => Array.from(b)),
    ),
    { maxLength: 12 },
  )
  .map((parts) => Uint8Array.from(parts.flat()));

describe("utf8Encode", () => {
  it("gives TextEncoder's bytes for any string of code points", () => {
    fc.assert(
      fc.property(fullUnicode, (s) => {
        expect(utf8Encode(s)).toEqual(encoder.encode(s));
        expect(utf8Length(s)).toBe(encoder.encode(s).length);
      }),
      { numRuns: 2000 },
    );
  });

  it("turns lone surrogates into U+FFFD as TextEncoder does", () => {
    fc.assert(
      fc.property(anyUnits, (s) => {
        expect(utf8Encode(s)).toEqual(encoder.encode(s));
        expect(utf8Length(s)).toBe(encoder.encode(s).length);
      }),
      { numRuns: 3000 },
    );
    for (const s of ["\ud800", "\udc00", "a\udbff", "\udfff\ud800", "\ud83d\ude00\ude00", "\ud83d"]) {
      expect(utf8Encode(s)).toEqual(encoder.encode(s));
    }
  });

  it("writes into a buffer at an offset, and refuses a buffer too small", () => {
    fc.assert(
      fc.property(anyUnits, fc.nat(8), (s, at) => {
        const out = new Uint8Array(at + s.length * 3);
        const n = utf8EncodeInto(s, out, at);
        expect(out.subarray(at, at + n)).toEqual(encoder.encode(s));
        expect(out.subarray(0, at)).toEqual(new Uint8Array(at));
      }),
    );
    expect(() => utf8EncodeInto("é", new Uint8Array(1))).toThrow(RangeError);
    expect(() => utf8EncodeInto("ab", new Uint8Array(3), 2)).toThrow(RangeError);
  });
});

describe("utf8Decode", () => {
  it("round-trips any string of code points", () => {
    fc.assert(
      fc.property(fullUnicode, (s) => {
        expect(utf8Decode(utf8Encode(s))).toBe(s);
      }),
      { numRuns: 2000 },
    );
  });

  it("matches TextDecoder, fatal and not, on arbitrary bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 24 }), (bytes) => {
        expect(mismatch(bytes)).toBeUndefined();
      }),
      { numRuns: 5000 },
    );
  });

  it("matches TextDecoder on bytes near UTF-8 (edge lead and continuation bytes)", () => {
    fc.assert(
      fc.property(nearUtf8, (bytes) => {
        expect(mismatch(bytes)).toBeUndefined();
      }),
      { numRuns: 10_000 },
    );
  });

  it("matches TextDecoder on every 1- and 2-byte string, and 3- and 4-byte leads with edge bytes after", () => {
    const problems: string[] = [];
    const check = (bytes: Uint8Array) => {
      const p = mismatch(bytes);
      if (p !== undefined && problems.length < 10) problems.push(p);
    };
    for (let a = 0; a < 256; a++) {
      check(Uint8Array.of(a));
      for (let b = 0; b < 256; b++) check(Uint8Array.of(a, b));
    }
    const edges = [0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc2, 0xe0, 0xf0, 0xff];
    for (let a = 0xe0; a < 0x100; a++)
      for (let b = 0; b < 256; b++)
        for (const c of edges) {
          check(Uint8Array.of(a, b, c));
          if (a <= 0xf5) for (const d of [0x41, 0x80, 0xbf, 0xc0]) check(Uint8Array.of(a, b, c, d));
        }
    expect(problems).toEqual([]);
  });

  it("keeps a leading byte order mark (as TextDecoder with ignoreBOM)", () => {
    expect(utf8Decode(Uint8Array.of(0xef, 0xbb, 0xbf, 0x61))).toBe("\ufeffa");
  });

  it("decodes a range of a larger buffer", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 16 }), nearUtf8, fc.uint8Array({ maxLength: 16 }), (a, m, z) => {
        const all = Uint8Array.from([...a, ...m, ...z]);
        const from = a.length;
        const to = a.length + m.length;
        expect(utf8DecodeRange(all, from, to, false)).toBe(lenientDecoder.decode(m));
        const want = oracleFatal(m);
        if (want === null) expect(() => utf8DecodeRange(all, from, to)).toThrow(TypeError);
        else expect(utf8DecodeRange(all, from, to)).toBe(want);
      }),
    );
  });

  it("decodes long text across its internal chunks (ASCII, 2-, 3- and 4-byte characters)", () => {
    const long = fc.string({
      unit: fc.oneof(
        fc.constantFrom("a", "é", "€", "😀", "\u0000"),
        fc.string({ unit: "binary", minLength: 1, maxLength: 1 }),
      ),
      minLength: 900,
      maxLength: 3000,
    });
    fc.assert(
      fc.property(long, (s) => {
        const bytes = encoder.encode(s);
        expect(utf8Decode(bytes)).toBe(s);
        const broken = Uint8Array.from([...bytes.subarray(0, bytes.length - 1), 0xc3]);
        expect(mismatch(broken)).toBeUndefined();
      }),
      { numRuns: 200 },
    );
    // A surrogate pair straddling each possible chunk boundary.
    for (let pad = 1015; pad < 1030; pad++) {
      const s = "é".repeat(pad) + "😀".repeat(4) + "x".repeat(40);
      expect(utf8Decode(encoder.encode(s))).toBe(s);
    }
    expect(utf8Decode(encoder.encode("q".repeat(100_000)))).toBe("q".repeat(100_000));
  });
});
