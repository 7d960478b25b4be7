/**
 * The static dictionary as flat tables, and the compact text it ships as (codec/dictionary/data.ts).
 *
 * The dictionary used to ship as JSON-like arrays, ~145 KB of source that built thousands of arrays and
 * strings when the module loaded, and then Maps and objects per name on top. It now ships as two ASCII
 * strings that `unpackDictionary` turns into a dozen typed arrays, with no object per entry:
 *
 * - `strings`: every distinct string of the dictionary once (the pool), in byte order, each without the
 *   prefix it shares with the string before it (front coding) and after a separator: a character no
 *   string has, which stands for how many bytes of the string before it are not shared (the d-th
 *   separator for d; the last one for d and above, the rest of d then being a number of `tables`). One
 *   character a string where packing 1 had a `|` and a number; the bytes dropped rather than the bytes
 *   kept, since sorted strings mostly differ in their last few bytes (46 need the last separator, where
 *   202 did with the bytes kept: ~300 B less gzip -9 in a tiny node's bundle).
 * - `tables`: a stream of unsigned integers, each written in base 91 over the printable ASCII characters
 *   `#`…`~` except `\`: a digit below 64 ends the number, a digit 64-90 carries 27 more values and
 *   continues (`n = d0 + 27·n'` for the rest `n'`, after taking 64 off). Small numbers take one character.
 *   In order: the representation version, the logical version, the counts (pool strings, namespaces,
 *   qnames, attributes, values), the pool's size in bytes, the separators (their count, then each as its
 *   code − 32); the token exceptions (their count, then each pool index as the gap − 1 from the one
 *   before); the rest of each dropped length from the last separator on. Then the pool index of each
 *   namespace, attribute and value (each column as zigzag differences from the entry before); each
 *   qname's namespace as the rank of its URI among the namespaces' (zigzag differences), and the pool
 *   index of its local name (a zigzag difference from the previous qname's when that has the same
 *   namespace, else absolute). Then the context lists, each kind as columns, which gzip codes better
 *   than list by list: the element attribute lists (their count; each one's qname id difference; each
 *   length; each one's attribute ids), the attribute value lists (count; the difference of each one's
 *   attribute slot, where a slot is a position in the attribute lists above, all of them back to back;
 *   lengths; each one's first value id, then zigzag differences), the element text lists (count; qname
 *   id differences; lengths; value ids as in the value lists); and the Huffman code lengths as runs
 *   (length, run length − 1).
 *
 * The tokens are not listed: a pool string is a Huffman token when it has 3-24 bytes, the generator's
 * rule, but for the listed exceptions (1: `xml:lang`), and in byte order they are in symbol order. One
 * pool in byte order, rather than the tokens and then the other strings (packing 1), keeps the columns'
 * differences small: the generator orders entries of equal corpus frequency by name (qnames by
 * namespace, then name), so most columns ascend. The loader lays the pool out with the tokens first
 * (token t is pool string t, what HuffmanCode reads) and the others after, in one pass over the strings
 * (the pool's size is in the header), and maps the packed indices onto it: with V8's interpreter (a
 * cold load, `node --jitless`) it takes as long as packing 1, ~3.4 ms. In a tiny node's bundle packing 2
 * is ~3.8 KB smaller minified and ~1.85 KB smaller gzip -9 than packing 1.
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
const PACKING = 2;
/** Digits 0…TERMINAL − 1 end a number; the other RADIX − TERMINAL digits continue it. */
const RADIX = 91;
const TERMINAL = 64;
const CONTINUE = RADIX - TERMINAL;
/** Pool strings are at most this long: bounds what hostile tables can make the loader allocate. */
const MAX_STRING = 255;
/** Token lengths by the generator's rule: the pool strings of this many bytes are tokens, but for exceptions. */
const TOKEN_MIN = 3;
const TOKEN_MAX = 24;

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
  const nsCount = r.next();
  const qnameCount = r.next();
  const attrCount = r.next();
  const valueCount = r.next();
  // The pool's size in bytes: at most MAX_STRING a string, and no more strings than characters (each
  // starts with a separator), so that hostile tables cannot make the loader allocate much.
  const size = r.next();
  if (poolCount > strings.length || size > poolCount * MAX_STRING) throw badTables("bad strings");
  // Separators: `separator[c]` is 1 + the dropped length character c stands for, 0 for a string byte.
  const separators = r.next();
  const separator = new Uint8Array(128);
  for (let i = 0; i < separators; i++) {
    const c = 0x20 + r.next();
    if (c > 0x7e || separator[c]) throw badTables("bad separators");
    separator[c] = i + 1;
  }
  const flip = new Uint8Array(poolCount);
  for (let k = r.next(), i = -1; k > 0; k--) {
    i += 1 + r.next();
    if (i >= poolCount) throw badTables("bad token exceptions");
    flip[i] = 1;
  }
  // One pass, in sorted order: the tokens fill the pool from the start, in order, so token t is pool
  // string t; the others fill it from the end, last first. Each string is decoded at the end of the
  // tokens, in the gap between the two (which holds the rest of the pool, so the string fits: the check
  // after the loop), and moved to the end if it is not a token. `index[i]` is where sorted string i went.
  const bytes = new Uint8Array(size);
  const start = size <= 0xffff ? new Uint16Array(poolCount + 1) : new Uint32Array(poolCount + 1);
  const index = u16(poolCount, "strings");
  let tokenCount = 0;
  let tokenEnd = 0;
  let otherStart = size;
  let previous = 0;
  let previousLength = 0;
  let from = 0;
  for (let i = 0; i < poolCount; i++) {
    const s = separator[strings.charCodeAt(from++)];
    if (!s) throw badTables("bad strings");
    const k = previousLength - (s < separators ? s - 1 : s - 1 + r.next());
    if (k < 0) throw badTables("bad strings");
    bytes.copyWithin(tokenEnd, previous, previous + k);
    let at = tokenEnd + k;
    for (; from < strings.length; from++) {
      const c = strings.charCodeAt(from);
      if (separator[c]) break;
      if (c < 0x20 || c > 0x7e) throw badTables("bad strings");
      bytes[at++] = c;
    }
    const n = at - tokenEnd;
    if ((n >= TOKEN_MIN && n <= TOKEN_MAX) !== (flip[i] === 1)) {
      index[i] = tokenCount++;
      previous = tokenEnd;
      tokenEnd = at;
    } else {
      otherStart -= n;
      bytes.copyWithin(otherStart, tokenEnd, at);
      index[i] = poolCount - 1 - i + tokenCount;
      previous = otherStart;
    }
    start[index[i]!] = previous;
    previousLength = n;
  }
  if (from < strings.length || tokenEnd !== otherStart) throw badTables("bad strings");
  start[poolCount] = size;
  /** A column of zigzag differences, each below `limit`, through `map` if given (loops: V8's typed-array map is slow). */
  const column = (n: number, what: string, limit: number, map?: Uint16Array): Uint16Array => {
    const out = u16(n, what);
    let previous = 0;
    for (let i = 0; i < n; i++) {
      previous = r.delta(previous);
      if (!(previous >= 0 && previous < limit)) throw badTables(`bad ${what}`);
      out[i] = map ? map[previous]! : previous;
    }
    return out;
  };
  const nsSorted = column(nsCount, "namespaces", poolCount);
  const namespaces = new Uint16Array(nsCount);
  for (let i = 0; i < nsCount; i++) namespaces[i] = index[nsSorted[i]!]!;
  const attributes = column(attrCount, "attributes", poolCount, index);
  const values = column(valueCount, "values", poolCount, index);
  // A qname's namespace is given by the rank of its URI among the namespaces' (ties by id).
  const byRank = Uint16Array.from(nsSorted.keys()).sort((a, b) => nsSorted[a]! - nsSorted[b]! || a - b);
  const qnameNs = column(qnameCount, "qname namespaces", nsCount, byRank);
  // A qname's local name: the difference from the previous qname's in the same namespace, else absolute.
  const qnameName = u16(qnameCount, "qnames");
  for (let q = 0, name = 0; q < qnameCount; q++) {
    name = q > 0 && qnameNs[q] === qnameNs[q - 1] ? r.delta(name) : r.next();
    if (!(name >= 0 && name < poolCount)) throw badTables("bad qnames");
    qnameName[q] = index[name]!;
  }
  /**
   * A run of lists of ids below `limit` into one array, as columns (gzip codes each column's numbers
   * alike): the lists' headers, their lengths, then their ids (each, or with `delta` the first, then
   * each as the difference from the one before).
   */
  const lists = (
    count: number,
    limit: number,
    delta: boolean,
    header: (k: number) => void,
  ): [Uint16Array, Uint16Array] => {
    const starts = u16(count + 1, "lists");
    for (let k = 0; k < count; k++) header(k);
    for (let k = 0; k < count; k++) {
      const end = starts[k]! + r.next();
      if (end > 0xffff) throw badTables("lists too long");
      starts[k + 1] = end;
    }
    const ids = new Uint16Array(starts[count]!);
    for (let k = 0, j = 0; k < count; k++)
      for (let id = 0, first = j; j < starts[k + 1]!; j++) {
        id = delta && j > first ? r.delta(id) : r.next();
        if (!(id >= 0 && id < limit)) throw badTables("bad id");
        ids[j] = id;
      }
    return [starts, ids];
  };
  // Element attribute lists, spread to one range per qname.
  const attrStart = u16(qnameCount + 1, "qnames");
  let qid = -1;
  const attrLists = r.next();
  const owners = u16(attrLists, "attribute lists");
  const [listStart, attrIds] = lists(attrLists, attrCount, false, (k) => {
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
  const [attrValueStart, attrValueIds] = lists(attrValueLists, valueCount, true, () => {
    slot += 1 + r.next();
    if (slot >= slotValues.length) throw badTables("bad slot");
    slotValues[slot] = ++context;
  });
  qid = -1;
  const textLists = r.next();
  const textQnames = u16(textLists, "text lists");
  const [textStart, textIds] = lists(textLists, valueCount, true, (k) => {
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
    bytes,
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
 * generator's: printable ASCII strings of at most MAX_STRING bytes, leaving a character for the
 * separators; distinct tokens in byte order; `nsElements` listing each namespace's qnames in id order;
 * the context lists ordered by qname (attribute value lists by qname, then by the position of the
 * attribute in that element's list). `unpackDictionary` then `tablesToData` give `data` back.
 */
export function packDictionary(data: DictionaryData): { strings: string; tables: string } {
  const tokens = data.tokens;
  check(
    tokens.every((t, i) => i === 0 || tokens[i - 1]! < t),
    "tokens not distinct and in byte order",
  );
  const tokenSet = new Set(tokens);
  const names = data.qnames.map(([, name]) => name);
  // Default sort: by UTF-16 unit, which is byte order for ASCII (the tokens' order in the Huffman model).
  const pool = [
    ...new Set([...tokens, ...data.namespaces, ...data.attributes, ...data.values, ...names]),
  ].sort();
  const index = new Map(pool.map((s, i) => [s, i]));
  const used = new Set<number>();
  for (const s of pool) {
    check(/^[\x20-\x7e]*$/.test(s) && s.length <= MAX_STRING, `string ${JSON.stringify(s)}`);
    for (let i = 0; i < s.length; i++) used.add(s.charCodeAt(i));
  }
  // Separators: the printable characters no string has, but for the quotes and backslash that a
  // string literal would escape.
  const separators: number[] = [];
  for (let c = 0x20; c <= 0x7e; c++) if (!used.has(c) && c !== 0x22 && c !== 0x5c) separators.push(c);
  check(separators.length > 0, "no character left for separators");
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
  const zigzag = (d: number): void => put(d >= 0 ? 2 * d : -2 * d - 1);
  const column = (xs: readonly number[]): void => {
    let previous = 0;
    for (const x of xs) {
      zigzag(x - previous);
      previous = x;
    }
  };
  for (const n of [
    PACKING,
    data.version,
    pool.length,
    data.namespaces.length,
    data.qnames.length,
    data.attributes.length,
    data.values.length,
    pool.reduce((size, s) => size + s.length, 0),
    separators.length,
  ])
    put(n);
  for (const c of separators) put(c - 0x20);
  const exceptions: number[] = [];
  pool.forEach((s, i) => {
    if ((s.length >= TOKEN_MIN && s.length <= TOKEN_MAX) !== tokenSet.has(s)) exceptions.push(i);
  });
  put(exceptions.length);
  exceptions.forEach((i, k) => void put(i - (k > 0 ? exceptions[k - 1]! : -1) - 1));
  const text: string[] = [];
  let previous = "";
  const escaped = separators.length - 1;
  for (const s of pool) {
    let k = 0;
    while (k < s.length && k < previous.length && s.charCodeAt(k) === previous.charCodeAt(k)) k++;
    const drop = previous.length - k;
    text.push(String.fromCharCode(separators[Math.min(drop, escaped)]!), s.slice(k));
    if (drop >= escaped) put(drop - escaped);
    previous = s;
  }
  const nsPool = data.namespaces.map((s) => index.get(s)!);
  column(nsPool);
  column(data.attributes.map((s) => index.get(s)!));
  column(data.values.map((s) => index.get(s)!));
  const byRank = nsPool.map((_, i) => i).sort((a, b) => nsPool[a]! - nsPool[b]! || a - b);
  const rank = new Map(byRank.map((ns, r) => [ns, r]));
  column(
    data.qnames.map(([ns]) => {
      check(rank.has(ns), "qname namespace");
      return rank.get(ns)!;
    }),
  );
  data.qnames.forEach(([ns, name], q) => {
    const i = index.get(name)!;
    if (q > 0 && data.qnames[q - 1]![0] === ns) zigzag(i - index.get(data.qnames[q - 1]![1])!);
    else put(i);
  });

  // nsElements is not stored: it is each namespace's qnames in id order.
  check(data.nsElements.length === data.namespaces.length, "nsElements per namespace");
  const byNs: number[][] = data.namespaces.map(() => []);
  data.qnames.forEach(([ns], q) => void byNs[ns]?.push(q));
  check(JSON.stringify(byNs) === JSON.stringify(data.nsElements), "nsElements not in qname order");

  const lists = <T>(
    entries: readonly T[],
    delta: boolean,
    header: (e: T) => void,
    ids: (e: T) => readonly number[],
  ): void => {
    put(entries.length);
    for (const e of entries) header(e);
    for (const e of entries) put(ids(e).length);
    for (const e of entries)
      ids(e).forEach((id, j) => void (delta && j > 0 ? zigzag(id - ids(e)[j - 1]!) : put(id)));
  };
  let qid = -1;
  const slots = new Map<string, number>(); // "qid aid" → attribute slot
  let slotCount = 0;
  lists(
    data.elementAttrs,
    false,
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
    true,
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
    true,
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
  return { strings: text.join(""), tables: out.join("") };
}
