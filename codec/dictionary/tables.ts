/**
 * The static dictionary as flat tables, and the compact text it ships as (codec/dictionary/data.ts).
 *
 * The dictionary used to ship as JSON-like arrays, ~145 KB of source that built thousands of arrays and
 * strings when the module loaded, and then Maps and objects per name on top. It now ships as two ASCII
 * strings that `unpackDictionary` turns into a dozen typed arrays, with no object per entry:
 *
 * - `strings`: every distinct string of the dictionary once (the pool), the tokens first in their order
 *   (so token t is pool string t), then the others sorted; each without the prefix it shares with the
 *   string before it (front coding), joined by `|`.
 * - `tables`: a stream of unsigned integers, each written in base 91 over the printable ASCII characters
 *   `#`…`~` except `\`: a digit below 64 ends the number, a digit 64-90 carries 27 more values and
 *   continues (`n = d0 + 27·n'` for the rest `n'`, after taking 64 off). Small numbers take one character.
 *   In order: the representation version, the logical version, the counts (pool strings, tokens,
 *   namespaces, qnames, attributes, values), the shared-prefix length of each pool string; the pool index
 *   of each namespace, attribute and value, the namespace and the pool index of each qname's local name
 *   (each column as zigzag differences from the entry before); the element attribute lists (count, then
 *   per list: qname id difference, length, attribute ids); the attribute value lists (count, then per
 *   list: difference of its attribute slot, length, value ids), where a slot is a position in the
 *   attribute lists above, all of them back to back; the element text lists (count, then per list: qname
 *   id difference, length, value ids); and the Huffman code lengths as runs (length, run length − 1).
 *
 * The id is still computed over the canonical JSON of the logical content (FORMAT.md §4), which
 * `tablesToData` rebuilds exactly; test/codec/dictionary.test.ts checks that it hashes to the id.
 * `packDictionary` (the generator's half) is tree-shaken out of bundles that only load the dictionary.
 */

/** The dictionary's logical content (FORMAT.md §4): what its id is a hash of. */
export interface DictionaryData {
  readonly version: number;
  readonly namespaces: readonly string[];
  readonly qnames: readonly (readonly [number, string])[];
  readonly attributes: readonly string[];
  readonly values: readonly string[];
  /** Per namespace index: its qname ids, most frequent first. */
  readonly nsElements: readonly (readonly number[])[];
  /** [qname id, attribute ids]: the attributes of that element, most frequent first. */
  readonly elementAttrs: readonly (readonly [number, readonly number[]])[];
  /** [qname id, attribute id, value ids]: enumerated values of that attribute on that element. */
  readonly attrValues: readonly (readonly [number, number, readonly number[]])[];
  /** [qname id, value ids]: enumerated text of that element. */
  readonly textValues: readonly (readonly [number, readonly number[]])[];
  /** Token alphabet of the Huffman model (symbols 256…). */
  readonly tokens: readonly string[];
  /** Code lengths of bytes 0-255, the tokens, then EOS. */
  readonly huffman: readonly number[];
}

/** The loaded dictionary: typed arrays over one string pool. */
export interface DictionaryTables {
  readonly version: number;
  /**
   * The pool: string i is the ASCII `bytes[start[i]…start[i + 1]]`. The offsets take 16 bits while the
   * pool is under 64 KB (dictionary version 1's is 36 KB): 6 KB of a tiny node's heap less than 32.
   */
  readonly bytes: Uint8Array;
  readonly start: Uint16Array | Uint32Array;
  /** Pool strings 0…tokenCount − 1 are the Huffman tokens, in symbol order. */
  readonly tokenCount: number;
  /** Pool index of each namespace, attribute name (`xml:lang` spelt so) and value, by global id. */
  readonly namespaces: Uint16Array;
  readonly attributes: Uint16Array;
  readonly values: Uint16Array;
  /** Namespace id and pool index of the local name of each qname, by global qname id. */
  readonly qnameNs: Uint16Array;
  readonly qnameName: Uint16Array;
  /**
   * Attribute context of qname q: `attrIds[attrStart[q]…attrStart[q + 1]]`; each position there is an
   * attribute slot, and `slotValues[slot]` is 1 + the value context of that attribute on q (0: none).
   */
  readonly attrStart: Uint16Array;
  readonly attrIds: Uint16Array;
  readonly slotValues: Uint16Array;
  /**
   * The qnames whose text has a value context, ascending; the k-th one's is the context that follows the
   * attribute value contexts, so 1 + its context is `valueStart.length - textQnames.length + k`. A list
   * of the few (33 of 2,240 in version 1), not an entry per qname: 4.4 KB of a tiny node's heap.
   */
  readonly textQnames: Uint16Array;
  /** Value context c: `valueIds[valueStart[c]…valueStart[c + 1]]`. */
  readonly valueStart: Uint16Array;
  readonly valueIds: Uint16Array;
  /** Code lengths of bytes 0-255, the tokens, then EOS. */
  readonly huffman: Uint8Array;
}

/** Version of this packed representation (not of the dictionary: that is the logical `version`). */
const PACKING = 1;
const SEPARATOR = 124; // "|"
/** Digits 0…TERMINAL − 1 end a number; the other RADIX − TERMINAL digits continue it. */
const RADIX = 91;
const TERMINAL = 64;
const CONTINUE = RADIX - TERMINAL;

function digitChar(d: number): string {
  const c = 0x23 + d;
  return String.fromCharCode(c >= 0x5c ? c + 1 : c);
}

/** The error of `tables` that do not parse (one message prefix, spelt once in a tiny node's bundle). */
function badTables(what: string): RangeError {
  return new RangeError(`dictionary tables: ${what}`);
}

/** Reads the integers of a `tables` string. */
class NumberReader {
  private pos = 0;
  constructor(private readonly text: string) {}
  next(): number {
    let value = 0;
    let scale = 1;
    for (;;) {
      const c = this.text.charCodeAt(this.pos++);
      if (!(c >= 0x23 && c <= 0x7e) || c === 0x5c) throw badTables("bad digit");
      const d = c - (c > 0x5c ? 0x24 : 0x23);
      value += d * scale;
      if (d < TERMINAL) return value;
      scale *= CONTINUE;
    }
  }
  /** The next number as the zigzag difference from `previous`. */
  delta(previous: number): number {
    const z = this.next();
    return previous + (z % 2 === 0 ? z / 2 : -(z + 1) / 2);
  }
  get done(): boolean {
    return this.pos === this.text.length;
  }
}

function u16(n: number, what: string): Uint16Array {
  if (n > 0xffff) throw badTables(`too many ${what}`);
  return new Uint16Array(n);
}

/** The tables of a packed dictionary (the two strings of codec/dictionary/data.ts). */
export function unpackDictionary(strings: string, tables: string): DictionaryTables {
  const r = new NumberReader(tables);
  if (r.next() !== PACKING) throw badTables("unknown packing");
  const version = r.next();
  const poolCount = r.next();
  const tokenCount = r.next();
  const nsCount = r.next();
  const qnameCount = r.next();
  const attrCount = r.next();
  const valueCount = r.next();
  // The pool: each string is the previous one's first `shared` bytes, then its own suffix from `strings`.
  // The expansion is at most the longest string per entry; count it first to allocate once.
  const shared = u16(poolCount, "strings");
  let size = strings.length + 1 - poolCount;
  for (let i = 0; i < poolCount; i++) size += shared[i] = r.next();
  const bytes = new Uint8Array(size);
  const start = size <= 0xffff ? new Uint16Array(poolCount + 1) : new Uint32Array(poolCount + 1);
  let at = 0;
  let from = 0;
  for (let i = 0; i < poolCount; i++) {
    const previous = i > 0 ? start[i - 1]! : 0;
    const keep = shared[i]!;
    if (i > 0 && keep > at - previous) throw badTables("bad prefix");
    bytes.copyWithin(at, previous, previous + keep);
    start[i] = at;
    at += keep;
    for (;;) {
      const c = from < strings.length ? strings.charCodeAt(from++) : SEPARATOR;
      if (c === SEPARATOR) break;
      bytes[at++] = c;
    }
  }
  start[poolCount] = at;
  if (from < strings.length) throw badTables("more strings than counted");
  const column = (n: number, what: string, limit: number): Uint16Array => {
    const out = u16(n, what);
    let previous = 0;
    for (let i = 0; i < n; i++) {
      previous = r.delta(previous);
      if (!(previous >= 0 && previous < limit)) throw badTables(`bad ${what}`);
      out[i] = previous;
    }
    return out;
  };
  const namespaces = column(nsCount, "namespaces", poolCount);
  const attributes = column(attrCount, "attributes", poolCount);
  const values = column(valueCount, "values", poolCount);
  const qnameNs = column(qnameCount, "qname namespaces", nsCount);
  const qnameName = column(qnameCount, "qnames", poolCount);
  /** A run of lists of ids below `limit`, each after its own header, into one array. */
  const lists = (count: number, limit: number, header: (k: number) => void): [Uint16Array, Uint16Array] => {
    const starts = u16(count + 1, "lists");
    const ids: number[] = [];
    for (let k = 0; k < count; k++) {
      header(k);
      const length = r.next();
      for (let j = 0; j < length; j++) {
        const id = r.next();
        if (id >= limit) throw badTables("bad id");
        ids.push(id);
      }
      if (ids.length > 0xffff) throw badTables("lists too long");
      starts[k + 1] = ids.length;
    }
    const out = new Uint16Array(ids.length);
    out.set(ids);
    return [starts, out];
  };
  // Element attribute lists, spread to one range per qname.
  const attrStart = u16(qnameCount + 1, "qnames");
  let qid = -1;
  const attrLists = r.next();
  const owners = u16(attrLists, "attribute lists");
  const [listStart, attrIds] = lists(attrLists, attrCount, (k) => {
    qid += 1 + r.next();
    if (qid >= qnameCount) throw badTables("bad qname");
    owners[k] = qid;
  });
  for (let k = 0, q = 0; q < qnameCount; q++) {
    if (k < attrLists && owners[k] === q) k++;
    attrStart[q + 1] = listStart[k]!;
  }
  // Value lists: attribute values (by attribute slot), then element texts (by qname).
  const slotValues = u16(attrIds.length, "attribute slots");
  let slot = -1;
  const attrValueLists = r.next();
  let context = 0;
  const [attrValueStart, attrValueIds] = lists(attrValueLists, valueCount, () => {
    slot += 1 + r.next();
    if (slot >= slotValues.length) throw badTables("bad slot");
    slotValues[slot] = ++context;
  });
  qid = -1;
  const textLists = r.next();
  const textQnames = u16(textLists, "text lists");
  const [textStart, textIds] = lists(textLists, valueCount, (k) => {
    qid += 1 + r.next();
    if (qid >= qnameCount) throw badTables("bad qname");
    textQnames[k] = qid;
  });
  const valueStart = u16(context + textLists + 1, "value lists");
  valueStart.set(attrValueStart);
  for (let k = 1; k <= textLists; k++) valueStart[attrValueLists + k] = attrValueIds.length + textStart[k]!;
  const valueIds = u16(attrValueIds.length + textIds.length, "values in lists");
  valueIds.set(attrValueIds);
  valueIds.set(textIds, attrValueIds.length);
  // Huffman code lengths, run-length coded.
  const huffman = new Uint8Array(257 + tokenCount);
  for (let s = 0; s < huffman.length; ) {
    const length = r.next();
    const run = r.next() + 1;
    if (s + run > huffman.length) throw badTables("bad Huffman runs");
    huffman.fill(length, s, s + run);
    s += run;
  }
  if (!r.done) throw badTables("trailing data");
  return {
    version,
    bytes: bytes.subarray(0, at),
    start,
    tokenCount,
    namespaces,
    attributes,
    values,
    qnameNs,
    qnameName,
    attrStart,
    attrIds,
    slotValues,
    textQnames,
    valueStart,
    valueIds,
    huffman,
  };
}

/** Pool string `i` of `t` (ASCII). */
export function poolString(t: DictionaryTables, i: number): string {
  return asciiString(t.bytes, t.start[i]!, t.start[i + 1]!);
}

export function asciiString(bytes: Uint8Array, from: number, to: number): string {
  // One call for the whole range: the strings are short (a dictionary string is at most 120 bytes).
  return String.fromCharCode.apply(null, bytes.subarray(from, to) as unknown as number[]);
}

/** The logical content of `t`, exactly as it was packed (and as the id hashes it). */
export function tablesToData(t: DictionaryTables): DictionaryData {
  const strings = (ids: Uint16Array): string[] => Array.from(ids, (i) => poolString(t, i));
  const qnameCount = t.qnameNs.length;
  const range = (ids: Uint16Array, from: number, to: number): number[] => Array.from(ids.subarray(from, to));
  const nsElements: number[][] = Array.from(t.namespaces, () => []);
  for (let q = 0; q < qnameCount; q++) nsElements[t.qnameNs[q]!]!.push(q);
  const elementAttrs: [number, number[]][] = [];
  const attrValues: [number, number, number[]][] = [];
  const textValues: [number, number[]][] = [];
  const valueList = (context: number): number[] =>
    range(t.valueIds, t.valueStart[context - 1]!, t.valueStart[context]!);
  for (let q = 0; q < qnameCount; q++) {
    const from = t.attrStart[q]!;
    const to = t.attrStart[q + 1]!;
    if (to > from) elementAttrs.push([q, range(t.attrIds, from, to)]);
    for (let slot = from; slot < to; slot++) {
      const context = t.slotValues[slot]!;
      if (context > 0) attrValues.push([q, t.attrIds[slot]!, valueList(context)]);
    }
  }
  const texts = t.textQnames;
  for (let k = 0; k < texts.length; k++)
    textValues.push([texts[k]!, valueList(t.valueStart.length - texts.length + k)]);
  return {
    version: t.version,
    namespaces: strings(t.namespaces),
    qnames: Array.from(t.qnameNs, (ns, q) => [ns, poolString(t, t.qnameName[q]!)] as [number, string]),
    attributes: strings(t.attributes),
    values: strings(t.values),
    nsElements,
    elementAttrs,
    attrValues,
    textValues,
    tokens: Array.from({ length: t.tokenCount }, (_, i) => poolString(t, i)),
    huffman: Array.from(t.huffman),
  };
}

/** Throws unless `data` has the shape the tables can hold exactly (what the generator makes). */
function check(ok: boolean, what: string): void {
  if (!ok) throw new RangeError(`dictionary cannot be packed: ${what}`);
}

/**
 * The two strings of codec/dictionary/data.ts for `data` (tools/gen-dictionary.ts). `data` must be the
 * generator's: ASCII strings without `|`, distinct tokens, `nsElements` listing each namespace's qnames in
 * id order, the context lists ordered by qname (attribute value lists by qname, then by the position of
 * the attribute in that element's list); `unpackDictionary` then `tablesToData` give `data` back.
 */
export function packDictionary(data: DictionaryData): { strings: string; tables: string } {
  const tokenSet = new Set(data.tokens);
  check(tokenSet.size === data.tokens.length, "duplicate tokens");
  const others = new Set<string>();
  for (const list of [data.namespaces, data.attributes, data.values, data.qnames.map(([, n]) => n)])
    for (const s of list) if (!tokenSet.has(s)) others.add(s);
  const pool = [...data.tokens, ...[...others].sort()];
  const index = new Map(pool.map((s, i) => [s, i]));
  for (const s of pool)
    check(/^[\x20-\x7b\x7d\x7e]*$/.test(s), `string ${JSON.stringify(s)} is not ASCII without |`);
  const out: string[] = [];
  const put = (n: number): void => {
    check(Number.isInteger(n) && n >= 0, `number ${n}`);
    let rest = n;
    while (rest >= TERMINAL) {
      rest -= TERMINAL;
      out.push(digitChar(TERMINAL + (rest % CONTINUE)));
      rest = Math.floor(rest / CONTINUE);
    }
    out.push(digitChar(rest));
  };
  const column = (xs: readonly number[]): void => {
    let previous = 0;
    for (const x of xs) {
      const d = x - previous;
      put(d >= 0 ? 2 * d : -2 * d - 1);
      previous = x;
    }
  };
  for (const n of [
    PACKING,
    data.version,
    pool.length,
    data.tokens.length,
    data.namespaces.length,
    data.qnames.length,
    data.attributes.length,
    data.values.length,
  ])
    put(n);
  const suffixes: string[] = [];
  let previous = "";
  for (const s of pool) {
    let k = 0;
    while (k < s.length && k < previous.length && s.charCodeAt(k) === previous.charCodeAt(k)) k++;
    put(k);
    suffixes.push(s.slice(k));
    previous = s;
  }
  column(data.namespaces.map((s) => index.get(s)!));
  column(data.attributes.map((s) => index.get(s)!));
  column(data.values.map((s) => index.get(s)!));
  column(data.qnames.map(([ns]) => ns));
  column(data.qnames.map(([, name]) => index.get(name)!));

  // nsElements is not stored: it is each namespace's qnames in id order.
  check(data.nsElements.length === data.namespaces.length, "nsElements per namespace");
  const byNs: number[][] = data.namespaces.map(() => []);
  data.qnames.forEach(([ns], q) => void byNs[ns]?.push(q));
  check(JSON.stringify(byNs) === JSON.stringify(data.nsElements), "nsElements not in qname order");

  const lists = <T>(
    entries: readonly T[],
    header: (e: T) => void,
    ids: (e: T) => readonly number[],
  ): void => {
    put(entries.length);
    for (const e of entries) {
      header(e);
      put(ids(e).length);
      for (const id of ids(e)) put(id);
    }
  };
  let qid = -1;
  const slots = new Map<string, number>(); // "qid aid" → attribute slot
  let slotCount = 0;
  lists(
    data.elementAttrs,
    ([q, aids]) => {
      check(q > qid && q < data.qnames.length, "elementAttrs not by qname");
      put(q - qid - 1);
      qid = q;
      for (const a of aids) {
        check(a < data.attributes.length && !slots.has(`${q} ${a}`), "bad attribute list");
        slots.set(`${q} ${a}`, slotCount++);
      }
    },
    ([, aids]) => aids,
  );
  let slot = -1;
  lists(
    data.attrValues,
    ([q, a]) => {
      const at = slots.get(`${q} ${a}`);
      check(at !== undefined && at > slot, "attrValues not in attribute list order");
      put(at! - slot - 1);
      slot = at!;
    },
    ([, , vids]) => vids,
  );
  qid = -1;
  lists(
    data.textValues,
    ([q]) => {
      check(q > qid && q < data.qnames.length, "textValues not by qname");
      put(q - qid - 1);
      qid = q;
    },
    ([, vids]) => vids,
  );
  check(data.huffman.length === 257 + data.tokens.length, "Huffman lengths for bytes, tokens, EOS");
  for (let s = 0; s < data.huffman.length; ) {
    let e = s;
    while (e < data.huffman.length && data.huffman[e] === data.huffman[s]) e++;
    put(data.huffman[s]!);
    put(e - s - 1);
    s = e;
  }
  return { strings: suffixes.join("|"), tables: out.join("") };
}
