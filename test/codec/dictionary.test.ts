/**
 * The static dictionary as it ships (codec/dictionary/tables.ts): packed strings that load as flat tables.
 * The tables give back exactly the logical content whose hash is the id (so the content is the one the id
 * was computed from), the generator still writes data.ts byte for byte, and every answer of
 * StaticDictionary (strings, name → id, contextual ids both ways, Huffman token bytes) equals the one a
 * plain reading of that content gives (FORMAT.md §4), the way the dictionary was loaded before it was packed.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { readCorpus } from "../../bench/corpus.js";
import { DICTIONARY_ID } from "../../codec/dictionary/data.js";
import {
  type DictionaryData,
  packDictionary,
  tablesToData,
  unpackDictionary,
} from "../../codec/dictionary/tables.js";
import { HuffmanCode } from "../../codec/huffman.js";
import { DICTIONARY_V1, dictionaryLists, StaticDictionary, XML_NS } from "../../codec/index.js";
import { buildDictionary, dictionaryId } from "../../tools/gen-dictionary.js";

const ROOT = join(import.meta.dirname, "../..");
const data = tablesToData(DICTIONARY_V1.tables);

/** Position of `g` in `list` (first occurrence), as FORMAT.md §4.2 reads a context list. */
function encodeIn(list: readonly number[], g: number): number {
  const i = list.indexOf(g);
  return i >= 0 ? i : list.length + g;
}
function decodeIn(list: readonly number[], c: number): number {
  return c < list.length ? list[c]! : c - list.length;
}

/** First index of each key, as a Map per key function. */
function firstIndex<T>(xs: readonly T[], key: (x: T) => string): Map<string, number> {
  const m = new Map<string, number>();
  xs.forEach((x, i) => void (m.has(key(x)) || m.set(key(x), i)));
  return m;
}

const attrKey = (a: string): [string, string] => (a.startsWith("xml:") ? [XML_NS, a.slice(4)] : ["", a]);

describe("the packed dictionary", () => {
  it("holds the logical content the id was computed from", () => {
    expect(dictionaryId(data)).toBe(DICTIONARY_ID);
    expect(DICTIONARY_V1.id).toBe(DICTIONARY_ID);
    expect(DICTIONARY_ID).toBe("2f66e29cd1c27974");
  });

  it("is what tools/gen-dictionary.ts writes (npm run gen:dict)", () => {
    const built = buildDictionary(readCorpus("visible"), readCorpus("rfc"));
    expect(built.id).toBe(DICTIONARY_ID);
    expect(built.module).toBe(readFileSync(join(ROOT, "codec/dictionary/data.ts"), "utf8"));
    expect(JSON.stringify(built.data)).toBe(JSON.stringify(data));
  });

  it("round-trips through packDictionary and unpackDictionary", () => {
    const { strings, tables } = packDictionary(data);
    expect(JSON.stringify(tablesToData(unpackDictionary(strings, tables)))).toBe(JSON.stringify(data));
    // Small numbers take one character, larger ones more: every width decodes back.
    const small: DictionaryData = {
      ...data,
      huffman: data.huffman.map((l, s) => (s === 0 ? 24 : l)),
      elementAttrs: data.elementAttrs.map(([q, aids], i) => [q, i === 0 ? [...aids, 412] : aids]),
    };
    const again = packDictionary(small);
    expect(tablesToData(unpackDictionary(again.strings, again.tables))).toEqual(small);
  });

  it("loads as typed arrays, with no object per entry", () => {
    const t = DICTIONARY_V1.tables;
    for (const [name, value] of Object.entries(t)) {
      if (name === "version" || name === "tokenCount") expect(typeof value).toBe("number");
      else expect(ArrayBuffer.isView(value), name).toBe(true);
    }
    expect(t.tokenCount).toBe(data.tokens.length);
  });

  it("refuses tables that do not parse", () => {
    const { strings, tables } = packDictionary(data);
    expect(() => unpackDictionary(strings, `${tables}#`)).toThrow(/trailing/);
    expect(() => unpackDictionary(strings, tables.slice(0, -1))).toThrow(RangeError);
    expect(() => unpackDictionary(strings, `\\${tables.slice(1)}`)).toThrow(/bad digit/);
    // Another string (its separator, the first string's, then its bytes), or a byte that is not ASCII.
    expect(() => unpackDictionary(`${strings}${strings[0]}extra`, tables)).toThrow(/bad strings/);
    expect(() => unpackDictionary(`${strings}é`, tables)).toThrow(/bad strings/);
    expect(() => unpackDictionary(strings.slice(1), tables)).toThrow(/bad strings/);
    expect(() => unpackDictionary(strings, `&${tables.slice(1)}`)).toThrow(/packing/);
  });

  it("refuses content it cannot hold exactly", () => {
    expect(() => packDictionary({ ...data, values: [...data.values, "café"] })).toThrow(/string "café"/);
    expect(() => packDictionary({ ...data, values: [...data.values, "x".repeat(256)] })).toThrow(/string/);
    const printable = Array.from({ length: 95 }, (_, i) => String.fromCharCode(0x20 + i)).join("");
    expect(() => packDictionary({ ...data, values: [...data.values, printable] })).toThrow(/separators/);
    expect(() => packDictionary({ ...data, tokens: [...data.tokens, data.tokens[0]!] })).toThrow(/tokens/);
    expect(() => packDictionary({ ...data, tokens: [...data.tokens].reverse() })).toThrow(/byte order/);
    const swapped = data.nsElements.map((l, i) => (i === 0 ? [...l].reverse() : l));
    expect(() => packDictionary({ ...data, nsElements: swapped })).toThrow(/nsElements/);
    expect(() => packDictionary({ ...data, elementAttrs: [...data.elementAttrs].reverse() })).toThrow(
      /elementAttrs/,
    );
    expect(() => packDictionary({ ...data, attrValues: [...data.attrValues].reverse() })).toThrow(
      /attrValues/,
    );
  });
});

describe("StaticDictionary answers as the logical content reads", () => {
  const d = DICTIONARY_V1;
  const qnameCount = data.qnames.length;

  it("strings by id", () => {
    expect(d.namespaceCount).toBe(data.namespaces.length);
    expect(d.qnameCount).toBe(qnameCount);
    expect(d.attributeCount).toBe(data.attributes.length);
    expect(d.valueCount).toBe(data.values.length);
    expect(data.namespaces.map((_, i) => d.namespace(i))).toEqual(data.namespaces);
    expect(d.namespace(data.namespaces.length)).toBeUndefined();
    expect(data.qnames.map((_, q) => [d.qnameNs(q), d.qnameName(q)])).toEqual(
      data.qnames.map(([ns, name]) => [data.namespaces[ns], name]),
    );
    expect(data.attributes.map((_, a) => [d.attributeNs(a), d.attributeName(a)])).toEqual(
      data.attributes.map(attrKey),
    );
    expect(data.values.map((_, g) => d.value(g))).toEqual(data.values);
    expect(d.value(data.values.length)).toBeUndefined();
    // The same string each time, and the compatibility lists agree.
    expect(d.qnameName(0)).toBe(d.qnameName(0));
    const lists = dictionaryLists(d);
    expect(dictionaryLists(d)).toBe(lists);
    expect(lists.namespaces).toEqual(data.namespaces);
    expect(lists.values).toEqual(data.values);
    expect(lists.qnames).toEqual(data.qnames.map(([ns, name]) => ({ ns: data.namespaces[ns], name })));
    expect(lists.attributes).toEqual(
      data.attributes.map((a) => ({ ns: attrKey(a)[0], name: attrKey(a)[1] })),
    );
  });

  it("ids by name (first occurrence), and no id for other names", () => {
    const fresh = new StaticDictionary(d.id, d.tables); // lookups before any other made a table
    const ns = firstIndex(data.namespaces, (s) => s);
    for (const [s, i] of ns) {
      expect(fresh.namespaceId(s)).toBe(i);
      // A copy of the string (not the same object) finds it too.
      expect(fresh.namespaceId(` ${s}`.slice(1))).toBe(i);
    }
    const qn = firstIndex(data.qnames, ([n, name]) => `${data.namespaces[n]} ${name}`);
    for (const [key, q] of qn) {
      const sp = key.indexOf(" ");
      expect(fresh.qnameGlobal(key.slice(0, sp), key.slice(sp + 1))).toBe(q);
    }
    const at = firstIndex(data.attributes, (a) => attrKey(a).join(" "));
    for (const [key, a] of at) {
      const [ans, name] = attrKey(data.attributes[a]!);
      expect(key).toBe(`${ans} ${name}`);
      expect(fresh.attributeGlobal(ans, name)).toBe(a);
    }
    const va = firstIndex(data.values, (v) => v);
    for (const [v, g] of va) expect(fresh.valueGlobal(v)).toBe(g);
    const misses = [
      "",
      "x",
      "jabber:clien",
      "jabber:client ",
      "urn:example:foo",
      "lang",
      "xml:lang",
      "é",
      "a".repeat(300),
    ];
    for (const s of misses) {
      expect(fresh.namespaceId(s)).toBe(ns.get(s));
      expect(fresh.valueGlobal(s)).toBe(va.get(s));
      expect(fresh.qnameGlobal("jabber:client", s)).toBe(qn.get(`jabber:client ${s}`));
      expect(fresh.qnameGlobal(s, "message")).toBe(qn.get(`${s} message`));
    }
    expect(fresh.attributeGlobal("", "xml:lang")).toBeUndefined();
    expect(fresh.attributeGlobal(XML_NS, "lang")).toBe(data.attributes.indexOf("xml:lang"));
    expect(fresh.attributeGlobal("urn:other", "type")).toBeUndefined();
    expect(fresh.attributeGlobal("", "type")).toBe(data.attributes.indexOf("type"));
  });

  it("contextual element ids, both ways, in every namespace context", () => {
    const contexts = [...data.namespaces, "urn:example:not-in-the-dictionary", ""];
    const wrong: string[] = [];
    for (const ns of contexts) {
      const i = data.namespaces.indexOf(ns);
      const list = i >= 0 ? data.nsElements[i]! : [];
      for (let q = 0; q < qnameCount; q++)
        if (d.elementId(q, ns) !== encodeIn(list, q)) wrong.push(`elementId(${q}, ${ns})`);
      for (let c = 0; c < list.length + qnameCount + 2; c++) {
        const g = decodeIn(list, c);
        if (d.elementGlobal(c, ns) !== (g < qnameCount ? g : undefined))
          wrong.push(`elementGlobal(${c}, ${ns})`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it("contextual attribute ids, both ways, for every element", () => {
    const lists = new Map(data.elementAttrs.map(([q, aids]) => [q, aids]));
    const attrCount = data.attributes.length;
    const wrong: string[] = [];
    for (const q of [undefined, ...Array.from({ length: qnameCount }, (_, i) => i)]) {
      const list = (q === undefined ? undefined : lists.get(q)) ?? [];
      for (let a = 0; a < attrCount; a++)
        if (d.attributeId(a, q) !== encodeIn(list, a)) wrong.push(`attributeId(${a}, ${q})`);
      for (let c = 0; c < list.length + attrCount + 2; c++) {
        const g = decodeIn(list, c);
        if (d.attributeFromId(c, q) !== (g < attrCount ? g : undefined))
          wrong.push(`attributeFromId(${c}, ${q})`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it("contextual value ids, both ways, for every attribute and text list (and some without one)", () => {
    const cases: [number | undefined, number | undefined, readonly number[]][] = [
      ...data.attrValues.map(([q, a, vids]) => [q, a, vids] as [number, number, readonly number[]]),
      ...data.textValues.map(([q, vids]) => [q, -1, vids] as [number, number, readonly number[]]),
      [undefined, undefined, []],
      [0, 9999, []],
      [qnameCount - 1, -1, []],
    ];
    const withLists = new Set(data.attrValues.map(([q, a]) => `${q} ${a}`));
    for (const [q, aids] of data.elementAttrs)
      for (const a of aids) if (!withLists.has(`${q} ${a}`)) cases.push([q, a, []]);
    expect(cases.some(([, , l]) => l.length > 16)).toBe(true); // the sorted search, not only the scan
    const wrong: string[] = [];
    for (const [q, a, list] of cases) {
      for (let g = 0; g < data.values.length; g++)
        if (d.valueIdOf(g, q, a) !== encodeIn(list, g)) wrong.push(`valueIdOf(${g}, ${q}, ${a})`);
      for (let c = 0; c < list.length + data.values.length + 2; c++)
        if (d.valueFromId(c, q, a) !== data.values[decodeIn(list, c)])
          wrong.push(`valueFromId(${c}, ${q}, ${a})`);
      if (list.length > 0 && d.valueId(data.values[list[0]!]!, q, a) !== 0)
        wrong.push(`valueId(…, ${q}, ${a})`);
    }
    expect(wrong).toEqual([]);
  });

  it("Huffman tokens from the pool code and plan as tokens given as strings", () => {
    const fromStrings = new HuffmanCode(data.huffman, data.tokens);
    const utf8 = new TextEncoder();
    const samples = [
      ...data.values.slice(0, 300),
      ...data.namespaces,
      "romeo@montague.lit/orchard",
      "http://jabber.org/protocol/pubsub#publish-options",
      "Wherefore art thou, Romeo?",
      "",
    ];
    for (const s of samples) {
      const bytes = utf8.encode(s);
      const a = d.huffman.encode(bytes);
      expect(a).toEqual(fromStrings.encode(bytes));
      const out = new Uint8Array(bytes.length);
      expect(out.subarray(0, d.huffman.decode(a, 0, out))).toEqual(bytes);
    }
    expect(d.huffman.symbolCount).toBe(data.huffman.length);
  });
});
