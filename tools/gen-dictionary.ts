/**
 * Generates `codec/dictionary/data.ts`, the static dictionary, from protocol vocabulary only:
 *  - namespaces and element/attribute names seen in the corpus and listed in tools/vocab/*.json
 *    (these are names the RFCs and XEPs define, never example data);
 *  - enumerated values: the curated list in tools/vocab/values.json, the values in known-xeps.json, and
 *    corpus values of attributes that the specs define as enumerations (ENUM_ATTRS) which pass the
 *    protocol-token filter below (no JIDs, domains, ids or free text);
 *  - the static Huffman model for string literals, trained on the character statistics of RFC 6120/6121
 *    example values (rfc.jsonl), smoothed so every byte has a code. The size benchmark runs on visible.jsonl.
 * Frequencies in the corpus only decide ORDER (short ids for frequent entries), never membership.
 *
 * Run: npm run gen:dict. The dictionary id is the first 8 bytes of SHA-256 over the canonical JSON of the
 * logical content (`DictionaryData`); data.ts holds it packed (codec/dictionary/tables.ts), which loads
 * as flat tables and gives the same content back.
 */
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { type CorpusEntry, readCorpus } from "../bench/corpus.js";
import { type DictionaryData, packDictionary } from "../codec/dictionary/tables.js";
import { HuffmanCode, huffmanCodeLengths } from "../codec/huffman.js";
import { type XElement, XML_NS } from "../codec/tree.js";
import { parseXml } from "../gateway/xml/stanza-xml.js";

const ROOT = join(import.meta.dirname, "..");

interface KnownVocab {
  namespaces: Record<string, { elements?: string[]; attributes?: string[]; values?: string[] }>;
  form_fields?: string[];
  form_types?: string[];
}

/** Attributes whose values the specs enumerate; only their corpus values are candidates. */
const ENUM_ATTRS = new Set([
  "type",
  "action",
  "subscription",
  "ask",
  "affiliation",
  "role",
  "status",
  "category",
  "creator",
  "senders",
  "media",
  "protocol",
  "mode",
  "algo",
  "hash",
  "rel",
  "code",
  "method",
  "profile",
  "var",
  "disposition",
  "reason",
  "condition",
  "access",
  "show",
  "mime-type",
  "encoding",
  "transport",
  "kind",
  "result",
  "state",
  "publish",
  "subscribe",
  "lang",
  "xml:lang",
]);
/** Element text the specs enumerate (presence show, data-form booleans, pubsub option values). */
const ENUM_TEXT_PARENTS = new Set(["show", "value", "priority"]);

/** A protocol token: a lowercase keyword, a registered field name, a MIME type or a namespace URI. */
function isProtocolToken(value: string, namespaces: ReadonlySet<string>): boolean {
  if (namespaces.has(value)) return true;
  if (value.includes("@")) return false;
  if (/^(urn:xmpp:|urn:ietf:|jabber:|http:\/\/jabber\.org\/|http:\/\/www\.w3\.org\/)/.test(value))
    return true;
  if (/^(pubsub|muc|FORM_TYPE|x-|stream)#?[A-Za-z_#-]*$/.test(value)) return true;
  if (/^(text|image|audio|video|application)\/[a-z0-9.+-]+$/.test(value)) return true;
  return /^[a-z][a-z0-9-]{0,23}$/.test(value) || /^[1-5][0-9][0-9]$/.test(value);
}

const PROTOCOL_NS =
  /^(urn:xmpp:|jabber:|http:\/\/jabber\.org\/|urn:ietf:params:xml:ns:|storage:|vcard-temp|roster:|http:\/\/www\.w3\.org\/|https?:\/\/(www\.)?xmpp\.org\/|http:\/\/etherx\.jabber\.org\/|http:\/\/purl\.org\/|http:\/\/jitsi\.org\/|eu\.siacs\.conversations\.)/;

/** A namespace defined by an RFC, an XEP or a widely deployed extension, not one made up for an example. */
function isProtocolNamespace(ns: string): boolean {
  return PROTOCOL_NS.test(ns) && !/example|XXXX/i.test(ns);
}

function walk(
  element: XElement,
  visit: (e: XElement, parent: XElement | undefined) => void,
  parent?: XElement,
) {
  visit(element, parent);
  for (const child of element.children) if (typeof child !== "string") walk(child, visit, element);
}

class Counter<K> {
  readonly counts = new Map<K, number>();
  add(key: K, n = 1): void {
    this.counts.set(key, (this.counts.get(key) ?? 0) + n);
  }
  get(key: K): number {
    return this.counts.get(key) ?? 0;
  }
}

/** Orders keys by corpus frequency (descending), then lexically, so ids are stable and frequent ones short. */
function byFrequency(keys: Iterable<string>, counter: Counter<string>): string[] {
  return [...new Set(keys)].sort((a, b) => counter.get(b) - counter.get(a) || (a < b ? -1 : a > b ? 1 : 0));
}

function addSource(map: Map<string, Set<string>>, value: string, source: string): void {
  const set = map.get(value) ?? new Set<string>();
  set.add(source);
  map.set(value, set);
}

/** Every tools/vocab/known-xeps*.json merged (namespaces, form fields and form types). */
function knownVocabulary(): KnownVocab {
  const merged: KnownVocab = { namespaces: {}, form_fields: [], form_types: [] };
  const dir = join(ROOT, "tools/vocab");
  for (const name of readdirSync(dir).sort()) {
    if (!/^known-xeps.*\.json$/.test(name)) continue;
    const part = JSON.parse(readFileSync(join(dir, name), "utf8")) as KnownVocab;
    for (const [ns, v] of Object.entries(part.namespaces)) {
      const into = merged.namespaces[ns] ?? {};
      merged.namespaces[ns] = {
        elements: [...(into.elements ?? []), ...(v.elements ?? [])],
        attributes: [...(into.attributes ?? []), ...(v.attributes ?? [])],
        values: [...(into.values ?? []), ...(v.values ?? [])],
      };
    }
    merged.form_fields!.push(...(part.form_fields ?? []));
    merged.form_types!.push(...(part.form_types ?? []));
  }
  return merged;
}

/**
 * The id of a dictionary (FORMAT.md §4): the first 16 hex digits of SHA-256 over the canonical JSON of
 * its logical content, its keys in the order of `DictionaryData`.
 */
export function dictionaryId(data: DictionaryData): string {
  const canonical = JSON.stringify({
    version: data.version,
    namespaces: data.namespaces,
    qnames: data.qnames,
    attributes: data.attributes,
    values: data.values,
    nsElements: data.nsElements,
    elementAttrs: data.elementAttrs,
    attrValues: data.attrValues,
    textValues: data.textValues,
    tokens: data.tokens,
    huffman: data.huffman,
  });
  return createHash("sha256").update(canonical).digest("hex").slice(0, 16);
}

export interface BuiltDictionary {
  readonly id: string;
  /** The logical content, which the id hashes. */
  readonly data: DictionaryData;
  /** `data` packed: the two strings `unpackDictionary` loads. */
  readonly strings: string;
  readonly tables: string;
  /** The TypeScript module text of codec/dictionary/data.ts. */
  readonly module: string;
}

/**
 * Builds the dictionary from the vocabulary of `visible` (XEP examples) and `rfc` (RFC examples), the
 * vocab files, and a Huffman model trained on `rfc`. tools/holdout.ts calls it with part of the XEPs to
 * measure the codec on XEPs the dictionary never saw.
 */
export function buildDictionary(
  visible: readonly CorpusEntry[],
  rfc: readonly CorpusEntry[],
): BuiltDictionary {
  const known = knownVocabulary();
  const curated = JSON.parse(readFileSync(join(ROOT, "tools/vocab/values.json"), "utf8")) as string[];

  const nsCount = new Counter<string>();
  const qnameCount = new Counter<string>();
  const attrCount = new Counter<string>();
  const valueCount = new Counter<string>();
  /** Context counts: attribute on element ("qname\tattr"), value of attribute on element, element text. */
  const elementAttrCount = new Counter<string>();
  const attrValueCount = new Counter<string>();
  const textValueCount = new Counter<string>();
  const enumCandidates = new Map<string, Set<string>>(); // value → sources
  const trees: Array<{ tree: XElement; source: string }> = [];
  for (const entry of [...visible, ...rfc]) {
    trees.push({ tree: parseXml(entry.xml), source: `${entry.xep ?? ""}/${entry.rfc ?? ""}` });
  }
  for (const { tree, source } of trees) {
    walk(tree, (e, parent) => {
      // Elements of made-up example namespaces contribute nothing: not their names, attributes or values.
      if (!isProtocolNamespace(e.ns) && !(e.ns in known.namespaces)) return;
      const q = `${e.ns} ${e.name}`;
      nsCount.add(e.ns);
      qnameCount.add(q);
      for (const a of e.attrs) {
        const key = a.ns === XML_NS ? `xml:${a.name}` : a.ns === "" ? a.name : "";
        if (key === "") continue;
        attrCount.add(key);
        elementAttrCount.add(`${q}\t${key}`);
        valueCount.add(a.value);
        attrValueCount.add(`${q}\t${key}\t${a.value}`);
        if (ENUM_ATTRS.has(key)) addSource(enumCandidates, a.value, source);
      }
      if (e.children.length === 1 && typeof e.children[0] === "string") {
        const text = e.children[0];
        valueCount.add(text);
        textValueCount.add(`${q}\t${text}`);
        if (ENUM_TEXT_PARENTS.has(e.name) || parent?.name === "field")
          addSource(enumCandidates, text, source);
      }
    });
  }

  // Namespaces and qualified names: corpus + known vocabulary.
  const nsSet = new Set<string>(nsCount.counts.keys());
  const qnames = new Set<string>(qnameCount.counts.keys());
  const attrs = new Set<string>(attrCount.counts.keys());
  const values = new Set<string>(curated);
  for (const [ns, v] of Object.entries(known.namespaces)) {
    nsSet.add(ns);
    for (const name of v.elements ?? []) qnames.add(`${ns} ${name}`);
    for (const name of v.attributes ?? []) attrs.add(name);
    for (const value of v.values ?? []) values.add(value);
  }
  for (const f of known.form_fields ?? []) values.add(f);
  for (const f of known.form_types ?? []) values.add(f);
  nsSet.delete("");
  // Corpus namespaces enter only when they are protocol namespaces: the examples also invent some
  // (`foo`, `urn:example:…`, `http://mycompany.example.com/…`) and those are example data.
  for (const ns of [...nsSet]) if (!isProtocolNamespace(ns) && !(ns in known.namespaces)) nsSet.delete(ns);
  const namespaces = byFrequency(nsSet, nsCount);
  for (const ns of namespaces) values.add(ns);
  for (const [value, sources] of enumCandidates) {
    if (sources.size >= 2 && isProtocolToken(value, nsSet)) values.add(value);
  }
  for (const v of [...values]) if (v === "" || v.length > 120) values.delete(v);

  const nsIndex = new Map(namespaces.map((ns, i) => [ns, i]));
  const qnameKeys = byFrequency(qnames, qnameCount).filter((q) => nsIndex.has(q.slice(0, q.indexOf(" "))));
  const qnameList = qnameKeys.map((q) => {
    const sp = q.indexOf(" ");
    return [nsIndex.get(q.slice(0, sp))!, q.slice(sp + 1)] as const;
  });
  const attrList = byFrequency(attrs, attrCount).filter((a) => a !== "" && !a.startsWith("xmlns"));
  const attrIndex = new Map(attrList.map((a, i) => [a, i]));
  const valueList = byFrequency(values, valueCount);
  const valueIndex = new Map(valueList.map((v, i) => [v, i]));

  // Context lists (FORMAT.md §4.2): ids local to the namespace, element or attribute come first.
  const nsElements: number[][] = namespaces.map(() => []);
  qnameList.forEach(([ns], qid) => void nsElements[ns]!.push(qid)); // already in frequency order
  const contextList = (counter: Counter<string>, prefix: string, index: Map<string, number>): number[] => {
    const found: Array<[string, number]> = [];
    for (const [key, n] of counter.counts) {
      if (!key.startsWith(prefix)) continue;
      const rest = key.slice(prefix.length);
      if (rest.includes("\t") || !index.has(rest)) continue;
      found.push([rest, n]);
    }
    found.sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
    return found.map(([k]) => index.get(k)!);
  };
  const elementAttrs: Array<[number, number[]]> = [];
  const attrValues: Array<[number, number, number[]]> = [];
  const textValues: Array<[number, number[]]> = [];
  qnameKeys.forEach((q, qid) => {
    const aids = contextList(elementAttrCount, `${q}\t`, attrIndex);
    if (aids.length > 0) elementAttrs.push([qid, aids]);
    for (const aid of aids) {
      const vids = contextList(attrValueCount, `${q}\t${attrList[aid]}\t`, valueIndex);
      if (vids.length > 0) attrValues.push([qid, aid, vids]);
    }
    const tids = contextList(textValueCount, `${q}\t`, valueIndex);
    if (tids.length > 0) textValues.push([qid, tids]);
  });

  // Tokens for string literals: protocol words of this dictionary (element, attribute and value names and
  // the alphabetic parts of values and namespaces) plus the fixed pieces of URIs.
  const words = new Set<string>([
    "http://",
    "https://",
    "urn:xmpp:",
    "urn:ietf:params:",
    "www.",
    ".com",
    ".org",
    ".net",
  ]);
  for (const [, name] of qnameList) words.add(name);
  for (const a of attrList) words.add(a.replace(/^xml:/, ""));
  for (const v of [...valueList, ...namespaces]) {
    if (v.length <= 24) words.add(v);
    for (const part of v.split(/[^A-Za-z]+/)) words.add(part);
  }
  const tokens = [...words].filter((w) => w.length >= 3 && w.length <= 24 && /^[\x21-\x7e]+$/.test(w)).sort();

  // Huffman model over bytes, tokens and EOS, trained on RFC 6120/6121 example values that the dictionary
  // does not already hold (tools/README: the size benchmark runs on the XEP examples instead). Two rounds:
  // the first code decides which tokenisation is cheapest, the second counts that tokenisation.
  const valueSet = new Set(valueList);
  const trainingValues: Uint8Array[] = [];
  const encoder = new TextEncoder();
  for (const entry of rfc) {
    walk(parseXml(entry.xml), (e) => {
      const strings = e.attrs.map((a) => a.value);
      for (const c of e.children) if (typeof c === "string" && c.trim() !== "") strings.push(c);
      for (const s of strings) if (!valueSet.has(s)) trainingValues.push(encoder.encode(s));
    });
  }
  const symbolCount = 257 + tokens.length;
  const eos = symbolCount - 1;
  let lengths: number[] = new Array<number>(symbolCount).fill(12);
  for (let b = 0; b < 256; b++) lengths[b] = 8;
  for (let round = 0; round < 3; round++) {
    const freq = new Array<number>(symbolCount).fill(0.5);
    for (let t = 256; t < eos; t++) freq[t] = 0.8; // an unseen token is still likelier than its letters
    for (let b = 0x20; b < 0x7f; b++) freq[b] = (freq[b] ?? 0) + 2; // printable ASCII: free text uses it all
    freq[eos] = 0.01; // the rarest symbol, so its code is the all-ones longest code (RFC 7541 §5.2)
    const code = new HuffmanCode(lengths, tokens);
    for (const bytes of trainingValues) {
      const symbols = new Uint16Array(bytes.length);
      const { count } = code.plan(
        bytes,
        symbols,
        new Uint32Array(bytes.length + 1),
        new Uint16Array(bytes.length + 1),
      );
      for (let i = 0; i < count; i++) freq[symbols[i]!] = (freq[symbols[i]!] ?? 0) + 4;
    }
    lengths = huffmanCodeLengths(freq, 24);
  }
  if (lengths[eos] !== Math.max(...lengths) || lengths[eos]! < 8)
    throw new Error("EOS must have the longest code");

  const body: DictionaryData = {
    version: 1,
    namespaces,
    qnames: qnameList,
    attributes: attrList,
    values: valueList,
    nsElements,
    elementAttrs,
    attrValues,
    textValues,
    tokens,
    huffman: lengths,
  };
  const id = dictionaryId(body);
  const { strings, tables } = packDictionary(body);
  const module = [
    "// GENERATED by tools/gen-dictionary.ts (npm run gen:dict) — do not edit by hand.",
    "// Protocol vocabulary only; see the generator for where each list comes from. The id is a hash of",
    "// the logical content (FORMAT.md §4), packed here as codec/dictionary/tables.ts describes.",
    `export const DICTIONARY_ID = ${JSON.stringify(id)};`,
    // The tables first: gzip -9 of a tiny node's bundle is ~300 B smaller so (its numbers' Huffman
    // statistics are apart from the strings').
    `export const DICTIONARY_TABLES = ${JSON.stringify(tables)};`,
    `export const DICTIONARY_STRINGS = ${JSON.stringify(strings)};`,
    "",
  ].join("\n");
  return { id, data: body, strings, tables, module };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const built = buildDictionary(readCorpus("visible"), readCorpus("rfc"));
  writeFileSync(join(ROOT, "codec/dictionary/data.ts"), built.module);
  const d = built.data;
  console.log(
    `dictionary ${built.id}: ${d.namespaces.length} namespaces, ${d.qnames.length} elements, ${d.attributes.length} attributes, ${d.values.length} values, ${d.tokens.length} tokens`,
  );
}
