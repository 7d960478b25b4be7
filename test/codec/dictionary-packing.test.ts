/**
 * The packed dictionary format (codec/dictionary/tables.ts) on dictionaries other than the shipped one:
 * any content `packDictionary` accepts comes back exactly, and tables that are not its output (hostile
 * or damaged) either load into tables `tablesToData` reads, or are refused with a RangeError, in time:
 * never another error, an out-of-range read, or a loop.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DICTIONARY_STRINGS, DICTIONARY_TABLES } from "../../codec/dictionary/data.js";
import {
  type DictionaryData,
  packDictionary,
  tablesToData,
  unpackDictionary,
} from "../../codec/dictionary/tables.js";

/** Short strings over a few letters and separators, so that they share prefixes and repeat. */
const word = fc
  .array(fc.constantFrom("a", "b", "n", ":", "-", "/", "x", "urn:", "jabber:"), { maxLength: 8 })
  .map((parts) => parts.join(""));

/** A logical dictionary with the shape the generator makes (see `packDictionary`). */
const dictionary: fc.Arbitrary<DictionaryData> = fc
  .record({
    namespaces: fc.uniqueArray(word, { minLength: 1, maxLength: 6 }),
    names: fc.array(word, { maxLength: 12 }),
    attributes: fc.uniqueArray(word, { maxLength: 6 }),
    values: fc.array(word, { maxLength: 10 }),
    tokens: fc.uniqueArray(word, { maxLength: 12 }),
    seed: fc.array(fc.nat(1000), { minLength: 64, maxLength: 64 }),
  })
  .map(({ namespaces, names, attributes, values, tokens, seed }) => {
    let k = 0;
    const pick = (n: number): number => seed[k++ % seed.length]! % n;
    const qnames = names.map((name) => [pick(namespaces.length), name] as [number, string]);
    const nsElements = namespaces.map((_, ns) => qnames.flatMap(([n], q) => (n === ns ? [q] : [])));
    const elementAttrs: [number, number[]][] = [];
    const attrValues: [number, number, number[]][] = [];
    const textValues: [number, number[]][] = [];
    qnames.forEach((_, q) => {
      if (attributes.length > 0 && pick(3) > 0) {
        const aids = [...new Set(Array.from({ length: 1 + pick(4) }, () => pick(attributes.length)))];
        elementAttrs.push([q, aids]);
        for (const a of aids)
          if (values.length > 0 && pick(2) > 0)
            attrValues.push([q, a, Array.from({ length: 1 + pick(5) }, () => pick(values.length))]);
      }
      if (values.length > 0 && pick(4) === 0)
        textValues.push([q, Array.from({ length: 1 + pick(3) }, () => pick(values.length))]);
    });
    const sorted = [...tokens].sort();
    return {
      version: pick(5),
      namespaces,
      qnames,
      attributes,
      values,
      nsElements,
      elementAttrs,
      attrValues,
      textValues,
      tokens: sorted,
      huffman: Array.from({ length: 257 + sorted.length }, () => pick(25)),
    };
  });

/** Unpacks, and reads the result back in full; returns the error thrown, if any. */
function load(strings: string, tables: string): unknown {
  try {
    tablesToData(unpackDictionary(strings, tables));
    return undefined;
  } catch (e) {
    return e;
  }
}

/** `text` with one edit: a character replaced, some deleted, some inserted, or the end cut off. */
const edited = (text: string): fc.Arbitrary<string> =>
  fc
    .tuple(
      fc.nat(Math.max(0, text.length)),
      fc.constantFrom("replace", "delete", "insert", "cut"),
      fc.string({ unit: fc.integer({ min: 0, max: 0x7f }).map((c) => String.fromCharCode(c)), maxLength: 4 }),
    )
    .map(([at, how, s]) =>
      how === "replace"
        ? text.slice(0, at) + (s || "~") + text.slice(at + 1)
        : how === "delete"
          ? text.slice(0, at) + text.slice(at + 1 + s.length)
          : how === "insert"
            ? text.slice(0, at) + s + text.slice(at)
            : text.slice(0, at),
    );

describe("the dictionary packing", () => {
  it("gives back any content it accepts, exactly", () => {
    fc.assert(
      fc.property(dictionary, (data) => {
        const { strings, tables } = packDictionary(data);
        expect(tablesToData(unpackDictionary(strings, tables))).toEqual(data);
      }),
      { numRuns: 300 },
    );
  });

  it("refuses damaged tables with a RangeError, or loads them into readable tables", () => {
    fc.assert(
      fc.property(
        dictionary.chain((data) => {
          const { strings, tables } = packDictionary(data);
          return fc.oneof(
            edited(tables).map((t) => [strings, t] as const),
            edited(strings).map((s) => [s, tables] as const),
          );
        }),
        ([strings, tables]) => {
          const error = load(strings, tables);
          if (error !== undefined) expect(error).toBeInstanceOf(RangeError);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("refuses arbitrary input with a RangeError, or loads it into readable tables", () => {
    const digits = fc.string({
      unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)),
    });
    fc.assert(
      fc.property(
        // A valid start (packing 2, small counts) makes the input reach past the header.
        fc.tuple(fc.boolean(), digits, digits),
        ([header, strings, tables]) => {
          const error = load(strings, header ? `%#${tables}` : tables);
          if (error !== undefined) expect(error).toBeInstanceOf(RangeError);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("refuses the shipped dictionary damaged with a RangeError, or loads it into readable tables", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          edited(DICTIONARY_TABLES).map((t) => [DICTIONARY_STRINGS, t] as const),
          edited(DICTIONARY_STRINGS).map((s) => [s, DICTIONARY_TABLES] as const),
        ),
        ([strings, tables]) => {
          const error = load(strings, tables);
          if (error !== undefined) expect(error).toBeInstanceOf(RangeError);
        },
      ),
      { numRuns: 60 },
    );
  });
});
