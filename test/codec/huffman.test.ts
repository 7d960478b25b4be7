/**
 * The static Huffman code of string literals: exact round trips, and the HPACK padding rules — a literal
 * is padded to a byte boundary with at most 7 one bits; longer padding, padding that is not all ones, and
 * the EOS symbol are rejected.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { HuffmanCode } from "../../codec/huffman.js";
import { CodecError, DICTIONARY_V1 } from "../../codec/index.js";

const code = DICTIONARY_V1.huffman;
const utf8 = new TextEncoder();

/** Decodes a literal with room for `max` bytes; returns the bytes. */
function decode(c: HuffmanCode, data: Uint8Array, max = 4096): Uint8Array {
  const out = new Uint8Array(max);
  const n = c.decode(data, 0, out);
  return out.slice(0, n);
}

function decodeError(c: HuffmanCode, data: Uint8Array, max = 4096): CodecError | undefined {
  try {
    decode(c, data, max);
    return undefined;
  } catch (error) {
    if (!(error instanceof CodecError)) throw error;
    return error;
  }
}

function withByte(data: Uint8Array, byte: number): Uint8Array {
  const out = new Uint8Array(data.length + 1);
  out.set(data);
  out[data.length] = byte;
  return out;
}

describe("dictionary Huffman code", () => {
  it("round-trips random byte strings exactly", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        expect(Array.from(decode(code, code.encode(bytes)))).toEqual(Array.from(bytes));
      }),
      { seed: 1, numRuns: 2000 },
    );
  });

  it("round-trips XMPP-like strings exactly (where the token alphabet applies)", () => {
    const words = fc.constantFrom(
      "urn:xmpp:",
      "http://jabber.org/protocol/",
      "pubsub",
      "conference",
      "example.com",
      "@",
      "/",
      "#",
      "é",
      "😀",
      " ",
      "0",
      "",
    );
    fc.assert(
      fc.property(fc.array(fc.oneof(words, fc.string({ maxLength: 6 })), { maxLength: 12 }), (parts) => {
        const s = parts.join("");
        const bytes = utf8.encode(s);
        expect(new TextDecoder().decode(decode(code, code.encode(bytes)))).toBe(s);
      }),
      { seed: 2, numRuns: 2000 },
    );
  });

  it("a zero-length literal decodes to the empty string", () => {
    expect(decode(code, new Uint8Array(0)).length).toBe(0);
    expect(code.encode(new Uint8Array(0)).length).toBe(0);
  });

  it("appending a 0xff byte to a valid literal is rejected (padding of 8 bits or more)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 60 }), (bytes) => {
        const literal = code.encode(bytes);
        const error = decodeError(code, withByte(literal, 0xff));
        expect(error?.code).toBe("BAD_HUFFMAN");
      }),
      { seed: 3, numRuns: 1000 },
    );
  });

  it("a literal whose padding is not all ones is rejected (found by search)", () => {
    // Clear the lowest 1 bit of the last byte: where that bit was padding, the literal is invalid.
    let rejected = 0;
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 40 }), (bytes) => {
        const literal = code.encode(bytes);
        const last = literal[literal.length - 1]!;
        if ((last & 1) === 0) return;
        const bad = literal.slice();
        bad[bad.length - 1] = last & 0xfe;
        const error = decodeError(code, bad);
        if (error) {
          expect(error.code).toBe("BAD_HUFFMAN");
          rejected++;
        } else {
          // Where the bit belonged to a code, the result is another literal, never the original bytes.
          expect(Array.from(decode(code, bad))).not.toEqual(Array.from(bytes));
        }
      }),
      { seed: 4, numRuns: 1000 },
    );
    expect(rejected, "literals with invalid padding found").toBeGreaterThan(0);
  });

  it("a run of one bits (the EOS code) is rejected", () => {
    for (const n of [2, 4, 8, 16])
      expect(decodeError(code, new Uint8Array(n).fill(0xff))?.code).toBe("BAD_HUFFMAN");
  });

  it("a literal longer than the output capacity is LIMIT", () => {
    const bytes = utf8.encode("a".repeat(100));
    const literal = code.encode(bytes);
    expect(decode(code, literal, 100).length).toBe(100);
    expect(decodeError(code, literal, 99)?.code).toBe("LIMIT");
  });

  it("any byte string decodes or throws a CodecError", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (data) => {
        try {
          decode(code, data);
        } catch (error) {
          expect(error).toBeInstanceOf(CodecError);
          expect(["BAD_HUFFMAN", "LIMIT"]).toContain((error as CodecError).code);
        }
      }),
      { seed: 5, numRuns: 3000 },
    );
  });
});

describe("padding rules on a code with known lengths", () => {
  // Bytes 0-254: 8 bits; byte 255 and EOS: 9 bits (EOS gets the all-ones code). No code fits in 7
  // bits, so a tail of 1-7 bits is padding and nothing else.
  const lengths = Array.from({ length: 257 }, (_, s) => (s >= 255 ? 9 : 8));
  const known = new HuffmanCode(lengths);
  const paddingBits = (bytes: Uint8Array): number => {
    const bits = bytes.reduce((n, b) => n + (b === 255 ? 9 : 8), 0);
    return (8 - (bits % 8)) % 8;
  };

  /** Byte strings with many 0xff bytes (9 bits each), so that every padding length occurs. */
  const withFfs = fc
    .array(fc.oneof(fc.constant(255), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 40 })
    .map((a) => Uint8Array.from(a));

  it("encodes with exactly the padding the lengths imply, all ones", () => {
    fc.assert(
      fc.property(withFfs, (bytes) => {
        const literal = known.encode(bytes);
        const p = paddingBits(bytes);
        const bits = bytes.reduce((n, b) => n + (b === 255 ? 9 : 8), 0);
        expect(literal.length).toBe((bits + 7) >> 3);
        if (p > 0) {
          const mask = (1 << p) - 1;
          expect(literal[literal.length - 1]! & mask).toBe(mask);
        }
        expect(Array.from(decode(known, literal))).toEqual(Array.from(bytes));
      }),
      { seed: 6, numRuns: 1000 },
    );
  });

  it("clearing any padding bit is BAD_HUFFMAN", () => {
    let checked = 0;
    fc.assert(
      fc.property(withFfs, fc.nat(6), (bytes, which) => {
        const p = paddingBits(bytes);
        if (p === 0) return;
        const literal = known.encode(bytes);
        const bad = literal.slice();
        bad[bad.length - 1] = bad[bad.length - 1]! & ~(1 << (which % p));
        expect(decodeError(known, bad)?.code).toBe("BAD_HUFFMAN");
        checked++;
      }),
      { seed: 7, numRuns: 1000 },
    );
    expect(checked).toBeGreaterThan(100);
  });

  it("one 0xff byte: 9 bits, 7 bits of padding; 8 bits of padding are rejected", () => {
    const literal = known.encode(Uint8Array.of(0xff));
    expect(literal.length).toBe(2);
    expect(Array.from(decode(known, literal))).toEqual([0xff]);
    expect(decodeError(known, withByte(literal, 0xff))?.code).toBe("BAD_HUFFMAN");
    // Byte-aligned literal plus a full byte of ones: 8 bits of padding.
    expect(decodeError(known, withByte(known.encode(Uint8Array.of(1, 2)), 0xff))?.code).toBe("BAD_HUFFMAN");
  });
});
