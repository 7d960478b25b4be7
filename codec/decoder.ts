/**
 * cxmpp frame → stanza tree (FORMAT.md). One pass over the bytes with a strict cursor; every failure is a
 * `CodecError` with the offset of the offending item. A frame that fails leaves the session table exactly
 * as it was, so a corrupted frame cannot poison later ones.
 */
import {
  CborReader,
  decodeUtf8Range,
  MAJOR_ARRAY,
  MAJOR_BYTES,
  MAJOR_MAP,
  MAJOR_NEGINT,
  MAJOR_SIMPLE,
  MAJOR_TAG,
  MAJOR_TEXT,
  MAJOR_UINT,
  SIMPLE_FALSE,
  SIMPLE_NULL,
  SIMPLE_TRUE,
} from "./cbor-reader.js";
import { DICTIONARY_V1, type StaticDictionary } from "./dictionary/index.js";
import type { CodecOptions, SessionCodecOptions } from "./encoder.js";
import { CodecError, malformed, overLimit } from "./errors.js";
import { type CodecLimits, resolveLimits } from "./limits.js";
import {
  DecoderTable,
  type Entry,
  type Shape,
  type Subtree,
  slotContext,
  type Template,
  templateOf,
  treeSize,
  utf8Length,
} from "./table.js";
import { JABBER_CLIENT, type XAttr, type XElement, type XNode } from "./tree.js";
import {
  applyDelta,
  isDeltaBase,
  joinJid,
  renderBase64,
  renderDate,
  renderDecimal,
  renderHex,
  renderInteger,
  renderTimestamp,
  renderUuid,
} from "./typed.js";
import {
  TAG_BASE16,
  TAG_BASE64,
  TAG_DATE,
  TAG_DATETIME,
  TAG_DECIMAL,
  TAG_EPOCH,
  TAG_INSERT,
  TAG_INTEGER,
  TAG_JID,
  TAG_PACKED_DECIMAL,
  TAG_SHAPE,
  TAG_SUBTREE,
  TAG_UUID,
} from "./wire.js";

export interface DecodedFrame {
  readonly stanza: XElement;
  /** Table indices the frame inserted (the session layer reports them back as acknowledged). */
  readonly inserted: readonly number[];
}

// Output space for Huffman literals, shared: decoding is synchronous. Sized by what the literal can
// expand to (at most the longest token per bit), never by the configured limit alone.
const MAX_EXPANSION_PER_BIT = 24;
let scratch = new Uint8Array(256);
/** The last view of `scratch` handed out, reused for the same size (bench codec decode). */
let scratchView = scratch;
function huffmanScratch(packedBytes: number, limit: number): Uint8Array {
  const need = Math.min(limit, packedBytes * 8 * MAX_EXPANSION_PER_BIT);
  if (scratchView.length === need && scratchView.buffer === scratch.buffer) return scratchView;
  if (scratch.length < need) scratch = new Uint8Array(Math.max(need, scratch.length * 2));
  scratchView = scratch.subarray(0, need);
  return scratchView;
}

/**
 * Huffman literals recently decoded with one dictionary, direct-mapped by a hash of the packed bytes.
 * Stanzas repeat the same domains, JIDs and names: on the corpus (one pass, in order) 71% of the
 * literals hit 1,024 slots, and a hit skips Huffman and UTF-8 decoding, the largest cost in bench codec
 * decode (cxmpp bench codec, decode). Only literals that decoded without error are stored, so a hit
 * gives exactly what decoding would; one that decoded to more bytes than this decoder's maxStringBytes
 * is decoded again, to fail where it always did. Shared by the decoders of a dictionary (see
 * `memoFor`), so memory stays fixed however many sessions there are (about 300 KB at most, strings included).
 */
const CACHE_SLOTS = 1024;
/** Longest literal cached (packed bytes); each slot keeps a copy of that many bytes. */
const CACHE_BYTES = 32;
/** Longest decoded literal cached (bytes): tokens let 32 packed bytes expand to kilobytes. */
const CACHE_TEXT_BYTES = 256;
/**
 * What decoding with one static dictionary can remember across frames (all of it pure). Element and
 * attribute ids are not memoised: with the dictionary's flat tables, `elementGlobal` and
 * `attributeFromId` are a few array reads, and decoding without memo rows for them measured no slower.
 */
class DictionaryMemo {
  readonly packed = new Uint8Array(CACHE_SLOTS * CACHE_BYTES);
  /** Packed length per slot, -1 when empty. */
  readonly lengths = new Int32Array(CACHE_SLOTS).fill(-1);
  /** Decoded UTF-8 length per slot, checked against the string limit. */
  readonly decoded = new Int32Array(CACHE_SLOTS);
  readonly texts: string[] = new Array<string>(CACHE_SLOTS).fill("");
}

const NO_BYTES = new Uint8Array(0);

const memos = new WeakMap<StaticDictionary, DictionaryMemo>();

/**
 * Forgets what decoding remembered across frames (for cold measurements in bench codec), in place:
 * readers shared by many decoders keep a reference to the memo. Not a DictionaryMemo method, which a
 * tiny node's bundle would carry.
 */
export function clearDecodeMemo(dict: StaticDictionary = DICTIONARY_V1): void {
  const memo = memos.get(dict);
  if (memo === undefined) return;
  memo.lengths.fill(-1);
  memo.texts.fill("");
}
/** Subtrees as templates, computed on first use as one (FORMAT.md §6.6). */
const templates = new WeakMap<Subtree, Template>();
function templateFor(entry: Subtree): Template {
  let t = templates.get(entry);
  if (t === undefined) {
    t = templateOf(entry.element);
    templates.set(entry, t);
  }
  return t;
}

/** A copy of `e` with the slots in `values` replaced (slots numbered as `templateOf` numbers them). */
function withSlots(e: XElement, values: ReadonlyMap<number, string>, counter: { next: number }): XElement {
  const attrs = e.attrs.map((a) => {
    const v = values.get(counter.next++);
    return v === undefined ? a : { ns: a.ns, name: a.name, value: v };
  });
  const children = e.children.map((c) => {
    if (typeof c !== "string") return withSlots(c, values, counter);
    if (c === "") return c;
    return values.get(counter.next++) ?? c;
  });
  return { kind: "element", ns: e.ns, name: e.name, attrs, children };
}

function memoFor(dict: StaticDictionary): DictionaryMemo {
  let memo = memos.get(dict);
  if (memo === undefined) {
    memo = new DictionaryMemo();
    memos.set(dict, memo);
  }
  return memo;
}

/**
 * The decoding of one frame: cursor, insert counter and node budget. It is the cursor itself, and items
 * pass their head as the reader's `major`/`arg`/`start` fields or as plain numbers, never as objects:
 * allocation per item dominated bench codec decode (cxmpp bench codec, decode).
 *
 * Value contexts (FORMAT.md §4.2) travel as two arguments: `qid` (null means no static ids are allowed
 * here: names, namespaces, JID parts) and `aid` (-1 is element text).
 */
class FrameReader extends CborReader {
  private nextInsert = 0;
  inserted: number[] = [];
  /** Indices this frame added (not repeats), to undo if the frame fails. */
  readonly added: number[] = [];
  private nodes = 0;
  private outBytes = 0;
  private readonly maxDepth: number;
  private readonly maxNodes: number;
  private readonly maxStringBytes: number;
  private readonly maxStanzaBytes: number;
  /** A stateless frame gets its table on first use: most frames never insert or reference. */
  private table: DecoderTable | undefined = undefined;
  /** Results of `qualified()`, to return two strings without an object. */
  private qNs = "";
  private qName = "";

  constructor(
    private readonly dict: StaticDictionary,
    private readonly limits: CodecLimits,
    private readonly defaultNs: string,
    private readonly cache: DictionaryMemo | undefined,
  ) {
    super(NO_BYTES);
    this.maxDepth = limits.maxDepth;
    this.maxNodes = limits.maxNodes;
    this.maxStringBytes = limits.maxStringBytes;
    this.maxStanzaBytes = limits.maxStanzaBytes;
  }

  /**
   * Starts on a frame. A decoder reuses one reader: building one per frame (about twenty fields) was
   * a tenth of bench codec decode (cxmpp bench codec, decode). Decoding is synchronous, so one frame
   * is in progress at a time.
   */
  begin(bytes: Uint8Array, table: DecoderTable | undefined): void {
    this.data = bytes;
    this.pos = 0;
    this.nextInsert = 0;
    this.inserted = [];
    this.added.length = 0;
    this.nodes = 0;
    this.outBytes = 0;
    this.table = table;
  }

  /** Lets go of the frame and table (so a reused reader does not keep them alive). */
  end(): void {
    this.data = NO_BYTES;
    this.table = undefined;
  }

  #tab(): DecoderTable {
    if (this.table === undefined) this.table = new DecoderTable(this.limits);
    return this.table;
  }

  /** Removes what this frame inserted (it failed). */
  undo(): void {
    if (this.table !== undefined) this.table.remove(this.added);
  }

  frame(): XElement {
    if (this.data.length > this.limits.maxFrameBytes) {
      throw overLimit(0, `frame of ${this.data.length} bytes exceeds maxFrameBytes`);
    }
    if (this.peekMajor() === MAJOR_UINT) {
      this.next();
      this.nextInsert = this.arg;
    } else {
      // No base: the encoder knew we hold every entry it assigned; insert after the last one we hold.
      this.nextInsert = this.table?.nextIndex ?? 0;
    }
    this.next();
    const offset = this.start;
    const stanza = this.#elementItem(this.defaultNs, 1);
    if (stanza === undefined) throw malformed(offset, "a frame holds one element");
    if (!this.done) throw new CodecError("TRAILING_BYTES", this.pos, "bytes after the stanza");
    return stanza;
  }

  #count(offset: number): void {
    if (++this.nodes > this.maxNodes) throw overLimit(offset, "more nodes than maxNodes");
  }

  /** The element whose array head (`length` items, at `offset`) was just read. */
  #element(length: number, offset: number, inheritedNs: string, depth: number): XElement {
    if (depth > this.maxDepth) throw overLimit(offset, "deeper than maxDepth");
    if (length < 1) throw malformed(offset, "an element needs a name");
    this.#count(offset);
    let remaining = length - 1;
    this.next();
    const nameMajor = this.major;
    const nameArg = this.arg;
    const nameOffset = this.start;
    let ns: string;
    let name: string;
    let qid: number | undefined;
    let attrs: XAttr[] = [];
    // bench codec decode: one table lookup serves both the shape test and a string name.
    const entry = nameMajor === MAJOR_NEGINT ? this.#tab().get(nameArg, nameOffset) : undefined;
    if (typeof entry === "object") {
      if (entry.kind !== "shape") {
        // A template instance (FORMAT.md §6.6): [subtree reference, slot, value, slot, value, …].
        if (remaining === 0 || remaining % 2 !== 0)
          throw malformed(nameOffset, "a subtree reference as a name takes (slot, value) pairs");
        if (depth > this.maxDepth) throw overLimit(offset, "deeper than maxDepth");
        this.nodes--; // counted with the template's nodes
        return this.#instance(entry, nameOffset, remaining / 2);
      }
      // A shape reference (FORMAT.md §6.3): the head comes from the table, a map overrides values.
      ns = entry.ns;
      name = entry.name;
      qid = entry.qid;
      attrs = entry.attrs.slice();
      if (remaining > 0 && this.peekMajor() === MAJOR_MAP) {
        remaining--;
        this.#overrides(entry, attrs);
      }
      let bytes = 0;
      for (const a of attrs) bytes += a.value.length;
      this.#spend(attrs.length, bytes, nameOffset);
    } else {
      let shapeIndex = -1;
      if (entry !== undefined) {
        // A string reference as the name (what `name()` would read, without a second lookup).
        ns = inheritedNs;
        name = this.#checkName(this.#account(entry, nameOffset), nameOffset);
        qid = undefined;
      } else {
        if (nameMajor === MAJOR_TAG && nameArg === TAG_SHAPE) {
          shapeIndex = this.nextInsert++; // pre-order: numbered before the strings of its head (§6.1)
          this.next(); // the name, which may itself be a string insert
        }
        const major = this.major;
        if (major === MAJOR_UINT) {
          const found = this.dict.elementGlobal(this.arg, inheritedNs);
          if (found === undefined)
            throw new CodecError("UNKNOWN_ID", this.start, `no element ${this.arg} in the dictionary`);
          ns = this.dict.qnameNs(found);
          name = this.dict.qnameName(found);
          qid = found;
        } else if (major === MAJOR_ARRAY) {
          this.#qualified();
          ns = this.qNs;
          name = this.qName;
          qid = undefined;
        } else {
          ns = inheritedNs;
          name = this.#name();
          qid = undefined;
        }
      }
      let aids: (number | undefined)[] | undefined;
      if (remaining > 0 && this.peekMajor() === MAJOR_MAP) {
        remaining--;
        this.next();
        const mapLength = this.arg;
        const mapOffset = this.start;
        if (shapeIndex >= 0) aids = [];
        for (let i = 0; i < mapLength; i++) {
          this.#count(this.pos);
          // The attribute name (FORMAT.md §3.2): a dictionary id, [namespace, name] or a Value.
          this.next();
          let keyNs: string;
          let keyName: string;
          let aid: number | undefined;
          if (this.major === MAJOR_UINT) {
            aid = this.dict.attributeFromId(this.arg, qid);
            if (aid === undefined)
              throw new CodecError("UNKNOWN_ID", this.start, `no attribute ${this.arg} in the dictionary`);
            keyNs = this.dict.attributeNs(aid);
            keyName = this.dict.attributeName(aid);
          } else if (this.major === MAJOR_ARRAY) {
            this.#qualified();
            keyNs = this.qNs;
            keyName = this.qName;
          } else {
            keyNs = "";
            keyName = this.#name();
          }
          this.next();
          const value = this.#value(qid, aid);
          for (let j = 0; j < attrs.length; j++) {
            const a = attrs[j]!;
            if (a.name === keyName && a.ns === keyNs) {
              throw malformed(mapOffset, "duplicate attribute");
            }
          }
          attrs.push({ ns: keyNs, name: keyName, value });
          if (aids !== undefined) aids.push(aid);
        }
      }
      if (shapeIndex >= 0) {
        if (attrs.length === 0) throw malformed(nameOffset, "a shape needs attributes");
        const shape: Shape = { kind: "shape", ns, name, qid, attrs, aids: aids ?? [] };
        this.#remember(shapeIndex, shape, nameOffset);
      }
    }
    const children: XNode[] = [];
    for (; remaining > 0; remaining--) {
      this.next();
      if (this.major === MAJOR_NEGINT) {
        // bench codec decode: one lookup decides element or text (elementItem and value both looked up).
        const childOffset = this.start;
        const child = this.#tab().get(this.arg, childOffset);
        if (typeof child === "string") {
          this.#count(childOffset);
          children.push(this.#account(child, childOffset));
        } else children.push(this.#reference(child, childOffset, depth + 1));
      } else if (this.major === MAJOR_ARRAY) {
        // Direct recursion, not through elementItem: with the two mutually recursive, V8 sometimes
        // inlined one into the other and the whole process ran 40% slower (bench codec decode).
        children.push(this.#element(this.arg, this.start, ns, depth + 1)); // counts itself
      } else if (this.major === MAJOR_TAG && this.arg === TAG_SUBTREE) {
        children.push(this.#subtree(ns, depth + 1));
      } else {
        this.#count(this.start);
        children.push(this.#value(qid, -1));
      }
    }
    return { kind: "element", ns, name, attrs, children };
  }

  /**
   * An element in any of its forms (FORMAT.md §3, §6.3, §6.4), or undefined when the head just read
   * starts a text Value instead: an array; a subtree insert 13([…]); a bare reference to a shape (the
   * element with no overrides and no children) or to a subtree (the whole element again).
   */
  #elementItem(inheritedNs: string, depth: number): XElement | undefined {
    const major = this.major;
    const offset = this.start;
    if (major === MAJOR_ARRAY) return this.#element(this.arg, offset, inheritedNs, depth);
    if (major === MAJOR_TAG && this.arg === TAG_SUBTREE) return this.#subtree(inheritedNs, depth);
    if (major !== MAJOR_NEGINT) return undefined;
    const entry = this.#tab().get(this.arg, offset);
    if (typeof entry === "string") return undefined;
    return this.#reference(entry, offset, depth);
  }

  /** The subtree insert 13([…]) whose tag head was just read (FORMAT.md §6.4). */
  #subtree(inheritedNs: string, depth: number): XElement {
    const offset = this.start;
    const index = this.nextInsert++; // pre-order: numbered before everything inside (§6.1)
    this.next();
    if (this.major !== MAJOR_ARRAY) throw malformed(this.start, "a subtree wraps an element");
    const element = this.#element(this.arg, this.start, inheritedNs, depth);
    const { nodes, bytes } = treeSize(element);
    this.#remember(index, { kind: "subtree", element, nodes, bytes }, offset);
    return element;
  }

  /** A bare reference to a shape or subtree entry, as an element. */
  #reference(entry: Shape | Subtree, offset: number, depth: number): XElement {
    if (depth > this.maxDepth) throw overLimit(offset, "deeper than maxDepth");
    if (entry.kind === "subtree") {
      this.#spend(entry.nodes, entry.bytes, offset);
      return entry.element;
    }
    let bytes = 0;
    for (const a of entry.attrs) bytes += a.value.length;
    this.#spend(1 + entry.attrs.length, bytes, offset);
    return { kind: "element", ns: entry.ns, name: entry.name, attrs: entry.attrs.slice(), children: [] };
  }

  /** Counts what a table reference expands to against maxNodes and maxStanzaBytes. */
  #spend(nodes: number, bytes: number, offset: number): void {
    this.nodes += nodes;
    this.outBytes += bytes;
    if (this.nodes > this.maxNodes) throw overLimit(offset, "more nodes than maxNodes");
    if (this.outBytes > this.maxStanzaBytes) throw overLimit(offset, "stanza larger than maxStanzaBytes");
  }

  /** Applies a shape's override map {position: value} to `attrs` (a copy of the shape's attributes). */
  #overrides(shape: Shape, attrs: XAttr[]): void {
    this.next();
    const mapLength = this.arg;
    let previous = -1;
    for (let i = 0; i < mapLength; i++) {
      const position = this.#position(previous, attrs.length);
      previous = position;
      const a = attrs[position]!;
      this.next();
      attrs[position] = {
        ns: a.ns,
        name: a.name,
        value: this.#overrideValue(a.value, shape.qid, shape.aids[position]),
      };
    }
  }

  /** The next key of an override map: a uint above `previous` and below `count`. */
  #position(previous: number, count: number): number {
    this.next();
    const position = this.arg;
    // Positions ascend strictly: no duplicates, and one canonical form per element.
    if (this.major !== MAJOR_UINT || position >= count || position <= previous) {
      throw malformed(this.start, "bad override position");
    }
    return position;
  }

  /**
   * The value of an override whose head was just read (§6.6): where `base` is a number or time, an int
   * is a delta on it; anything else is a value.
   */
  #overrideValue(base: string, qid: number | undefined, aid: number | undefined): string {
    if ((this.major !== MAJOR_UINT && this.major !== MAJOR_NEGINT) || !isDeltaBase(base))
      return this.#value(qid, aid);
    const offset = this.start;
    const d = this.#integerHere();
    const value = applyDelta(base, d);
    if (value === undefined) throw new CodecError("BAD_VALUE", offset, "a delta past the range of its value");
    return this.#account(value, offset);
  }

  /**
   * The stanza of template `entry` with the `overrides` (slot, value) pairs that follow (FORMAT.md §6.6):
   * slots ascending, in document order, each value in its slot's dictionary context.
   */
  #instance(entry: Subtree, offset: number, overrides: number): XElement {
    this.#spend(entry.nodes, entry.bytes, offset);
    const t = templateFor(entry);
    const values = new Map<number, string>();
    let previous = -1;
    for (let i = 0; i < overrides; i++) {
      const slot = this.#position(previous, t.slots.length);
      previous = slot;
      const { qid, aid } = slotContext(this.dict, t, slot);
      this.next();
      values.set(slot, this.#overrideValue(t.slots[slot]!, qid, aid));
    }
    return withSlots(entry.element, values, { next: 0 });
  }

  #remember(index: number, entry: Entry, offset: number): void {
    if (this.#tab().insert(index, entry, offset)) this.added.push(index);
    this.inserted.push(index);
  }

  /** [namespace, name] whose array head was just read: namespace as a dictionary id or a string value. */
  #qualified(): void {
    if (this.arg !== 2) throw malformed(this.start, "a qualified name is [namespace, name]");
    this.next();
    let ns: string;
    if (this.major === MAJOR_UINT) {
      const found = this.dict.namespace(this.arg);
      if (found === undefined) throw new CodecError("UNKNOWN_ID", this.start, `no namespace ${this.arg}`);
      ns = found;
    } else ns = this.#value(null, undefined);
    this.next();
    this.qName = this.#name();
    this.qNs = ns;
  }

  /** The name whose head was just read. */
  #name(): string {
    const offset = this.start;
    return this.#checkName(this.#value(null, undefined), offset);
  }

  #checkName(name: string, offset: number): string {
    if (name === "") throw malformed(offset, "empty name");
    return name;
  }

  /**
   * The Value item (FORMAT.md §5) whose head was just read: the string it stands for. `qid`/`aid` give
   * the context of value ids.
   */
  #value(qid: number | undefined | null, aid: number | undefined): string {
    const offset = this.start;
    return this.#account(this.#rawValue(qid, aid), offset);
  }

  /** Counts a value's text against the string and stanza limits. */
  #account(s: string, offset: number): string {
    // Typed values and JIDs are rendered, not read: their text counts against the limit too.
    if (s.length > this.maxStringBytes / 3 && utf8Length(s) > this.maxStringBytes) {
      throw overLimit(offset, "string longer than maxStringBytes");
    }
    this.outBytes += s.length;
    if (this.outBytes > this.maxStanzaBytes) throw overLimit(offset, "stanza larger than maxStanzaBytes");
    return s;
  }

  #rawValue(qid: number | undefined | null, aid: number | undefined): string {
    const offset = this.start;
    const arg = this.arg;
    switch (this.major) {
      case MAJOR_UINT: {
        if (qid === null) throw malformed(offset, "no dictionary value allowed here");
        const v = this.dict.valueFromId(arg, qid, aid);
        if (v === undefined) throw new CodecError("UNKNOWN_ID", offset, `no value ${arg} in the dictionary`);
        return v;
      }
      case MAJOR_NEGINT: {
        const entry = this.#tab().get(arg, offset);
        if (typeof entry !== "string") throw malformed(offset, "a shape where a string belongs");
        return entry;
      }
      case MAJOR_TEXT:
        return this.nextText(this.maxStringBytes);
      case MAJOR_BYTES:
        return this.#literal(offset);
      case MAJOR_TAG:
        return this.#tagged(qid, aid);
      case MAJOR_SIMPLE:
        if (arg === SIMPLE_TRUE) return "true";
        if (arg === SIMPLE_FALSE) return "false";
        throw malformed(offset, `simple value ${arg} is not a string`);
      default:
        throw malformed(offset, "an element, map or array where a string belongs");
    }
  }

  /** The Huffman literal whose head (at `offset`) was just read. */
  #literal(offset: number): string {
    const from = this.skipBody(this.maxStringBytes);
    const to = this.pos;
    const data = this.data;
    const length = to - from;
    const cache = this.cache;
    let slot = -1;
    if (cache !== undefined && length <= CACHE_BYTES) {
      // Length and the first and last four bytes: packed bits are dense, and a hit is verified below.
      let h = length;
      const headEnd = length < 8 ? to : from + 4;
      for (let i = from; i < headEnd; i++) h = Math.imul(h ^ data[i]!, 0x01000193);
      for (let i = length < 8 ? to : to - 4; i < to; i++) h = Math.imul(h ^ data[i]!, 0x01000193);
      slot = (h ^ (h >>> 16)) & (CACHE_SLOTS - 1);
      if (cache.lengths[slot] === length && cache.decoded[slot]! <= this.maxStringBytes) {
        const packed = cache.packed;
        const base = slot * CACHE_BYTES - from;
        let i = from;
        while (i < to && packed[base + i] === data[i]) i++;
        if (i === to) return cache.texts[slot]!;
      }
    }
    const out = huffmanScratch(length, this.maxStringBytes);
    const n = this.dict.huffman.decode(data.subarray(from, to), offset + 1, out);
    const text = decodeUtf8Range(out, 0, n, offset);
    if (slot >= 0 && n <= CACHE_TEXT_BYTES) {
      const packed = cache!.packed;
      const base = slot * CACHE_BYTES - from;
      for (let i = from; i < to; i++) packed[base + i] = data[i]!; // a loop: `set` of a view cost more
      cache!.lengths[slot] = length;
      cache!.decoded[slot] = n;
      cache!.texts[slot] = text;
    }
    return text;
  }

  /** The tagged Value whose tag head was just read. */
  #tagged(qid: number | undefined | null, aid: number | undefined): string {
    const offset = this.start;
    const tag = this.arg;
    switch (tag) {
      case TAG_INSERT: {
        const index = this.nextInsert++;
        if (this.nextMajor() === MAJOR_TAG && this.arg === TAG_INSERT) {
          throw malformed(this.start, "nested insert");
        }
        const value = this.#value(qid, aid);
        this.#remember(index, value, offset);
        return value;
      }
      case TAG_JID: {
        if (this.nextMajor() !== MAJOR_ARRAY || (this.arg !== 2 && this.arg !== 3)) {
          throw malformed(this.start, "a JID is [local|null, domain, resource?]");
        }
        const parts = this.arg;
        this.next();
        const local = this.#isSimple(SIMPLE_NULL) ? null : this.#value(null, undefined);
        this.next();
        const domain = this.#value(null, undefined);
        let resource: string | null = null;
        if (parts === 3) {
          this.next();
          resource = this.#value(null, undefined);
        }
        const out = joinJid({ local, domain, resource });
        if (out.length > this.maxStringBytes) throw overLimit(offset, "JID too long");
        return out;
      }
      case TAG_INTEGER:
        return renderInteger(this.#integer());
      case TAG_DECIMAL: {
        const major = this.nextMajor();
        const arrOffset = this.start;
        if (major !== MAJOR_ARRAY || this.arg !== 2) throw malformed(arrOffset, "decimal is [e, m]");
        const exponent = this.#integer();
        const mantissa = this.#integer();
        if (exponent > -1 || exponent < -15)
          throw new CodecError("BAD_VALUE", arrOffset, "decimal exponent out of range");
        return renderDecimal({ exponent, mantissa });
      }
      case TAG_PACKED_DECIMAL: {
        const at = this.pos;
        const x = this.#integer();
        const scale = Math.abs(x) % 16;
        if (scale === 0) throw new CodecError("BAD_VALUE", at, "packed decimal without fraction digits");
        const magnitude = Math.floor(Math.abs(x) / 16);
        if (x < 0 && magnitude === 0) throw new CodecError("BAD_VALUE", at, "negative zero decimal");
        return renderDecimal({ exponent: -scale, mantissa: x < 0 ? -magnitude : magnitude });
      }
      case TAG_EPOCH:
        return renderTimestamp({ seconds: this.#seconds(), zone: null, fraction: 0, fractionDigits: 0 });
      case TAG_DATETIME: {
        const major = this.nextMajor();
        const arrOffset = this.start;
        const parts = this.arg;
        if (major !== MAJOR_ARRAY || (parts !== 2 && parts !== 4)) {
          throw malformed(arrOffset, "datetime is [seconds, zone, fraction?, digits?]");
        }
        const seconds = this.#seconds();
        const zoneMajor = this.nextMajor();
        const zoneArg = this.arg;
        let zone: number | null | false = null;
        if (zoneMajor === MAJOR_SIMPLE && zoneArg === SIMPLE_FALSE) zone = false;
        else if (!(zoneMajor === MAJOR_SIMPLE && zoneArg === SIMPLE_NULL)) {
          const zoneOffset = this.start;
          zone = this.#integerHere();
          if (Math.abs(zone) > 24 * 60)
            throw new CodecError("BAD_VALUE", zoneOffset, "zone offset out of range");
        }
        let fraction = 0;
        let fractionDigits = 0;
        if (parts === 4) {
          fraction = this.#integer();
          fractionDigits = this.#integer();
          if (fractionDigits < 1 || fractionDigits > 9 || fraction < 0 || fraction >= 10 ** fractionDigits) {
            throw new CodecError("BAD_VALUE", arrOffset, "fraction out of range");
          }
        }
        return renderTimestamp({ seconds, zone, fraction, fractionDigits });
      }
      case TAG_DATE: {
        const at = this.pos;
        const days = this.#integer();
        if (days < -354_285 || days > 2_932_896)
          throw new CodecError("BAD_VALUE", at, "date outside the years 1000-9999");
        return renderDate(days);
      }
      case TAG_BASE64:
        return renderBase64(this.#bytes());
      case TAG_BASE16:
        return renderHex(this.#bytes());
      case TAG_UUID: {
        const at = this.pos;
        const bytes = this.#bytes();
        if (bytes.length !== 16) throw new CodecError("BAD_VALUE", at, "a UUID has 16 bytes");
        return renderUuid(bytes);
      }
      default:
        throw malformed(offset, `unknown tag ${tag}`);
    }
  }

  /** Whether the head just read is the simple value `value`. */
  #isSimple(value: number): boolean {
    return this.major === MAJOR_SIMPLE && this.arg === value;
  }

  #integer(): number {
    this.next();
    return this.#integerHere();
  }

  /** The integer whose head was just read. */
  #integerHere(): number {
    if (this.major === MAJOR_UINT) return this.arg;
    if (this.major === MAJOR_NEGINT) return -1 - this.arg;
    throw malformed(this.start, "integer expected");
  }

  /** Seconds within the years 1000-9999, so rendering stays four-digit and exact. */
  #seconds(): number {
    const at = this.pos;
    const s = this.#integer();
    if (s < -30_610_224_000 || s > 253_402_300_799)
      throw new CodecError("BAD_VALUE", at, "time out of range");
    return s;
  }

  #bytes(): Uint8Array {
    this.next();
    if (this.major !== MAJOR_BYTES) throw malformed(this.start, "byte string expected");
    const from = this.skipBody(Math.floor(this.maxStringBytes / 2));
    return this.data.subarray(from, this.pos);
  }
}

/**
 * Frame readers shared by decoders with the same dictionary, limits and default namespace: a reader
 * holds only per-frame state (`begin` … `end`) and decoding is synchronous, while a gateway holds a
 * decoder per session (bench session: memory per idle session).
 */
const readers = new WeakMap<StaticDictionary, WeakMap<CodecLimits, Map<string, FrameReader>>>();
function readerFor(
  dict: StaticDictionary,
  limits: CodecLimits,
  defaultNs: string,
  cached: boolean,
): FrameReader {
  const byLimits = readers.get(dict) ?? new WeakMap<CodecLimits, Map<string, FrameReader>>();
  readers.set(dict, byLimits);
  const byNs = byLimits.get(limits) ?? new Map<string, FrameReader>();
  byLimits.set(limits, byNs);
  // A namespace is a URI, which has no space: a leading one keys the reader without the memo.
  const key = cached ? defaultNs : ` ${defaultNs}`;
  const reader =
    byNs.get(key) ?? new FrameReader(dict, limits, defaultNs, cached ? memoFor(dict) : undefined);
  byNs.set(key, reader);
  return reader;
}

abstract class FrameDecoder {
  protected readonly dict: StaticDictionary;
  protected readonly limits: CodecLimits;
  protected readonly defaultNs: string;
  /**
   * Found (or made, with the dictionary's memo: ~68 KB of heap in QuickJS, unless `literalCache` is
   * false) on the first `decode`, not here: a decoder is made at connect and may decode nothing for a
   * long time.
   */
  private reader: FrameReader | undefined = undefined;
  private readonly cached: boolean;

  constructor(options: CodecOptions = {}) {
    this.dict = options.dictionary ?? DICTIONARY_V1;
    this.limits = resolveLimits(options.limits);
    this.defaultNs = options.defaultNs ?? JABBER_CLIENT;
    this.cached = options.literalCache !== false;
  }

  /** The session table, or undefined for a fresh one per frame (made only if the frame needs it). */
  protected abstract tableFor(): DecoderTable | undefined;

  decode(bytes: Uint8Array): DecodedFrame {
    if (!(bytes instanceof Uint8Array)) throw malformed(0, "a frame is a byte array");
    let reader = this.reader;
    if (reader === undefined) {
      reader = readerFor(this.dict, this.limits, this.defaultNs, this.cached);
      this.reader = reader;
    }
    reader.begin(bytes, this.tableFor());
    try {
      const stanza = reader.frame();
      const inserted = reader.inserted;
      if (inserted.length > 1) inserted.sort((a, b) => a - b);
      return { stanza, inserted };
    } catch (error) {
      reader.undo();
      if (error instanceof CodecError) throw error;
      // A bug, not an input problem; still reported as a CodecError so callers have one type to handle.
      throw malformed(0, `internal: ${(error as Error).message}`);
    } finally {
      reader.end();
    }
  }
}

/** Decodes stand-alone frames (no session state). */
export class StatelessDecoder extends FrameDecoder {
  protected tableFor(): undefined {
    return undefined;
  }
}

/** Decodes the frames of one direction of a session; holds the peer's inserts. */
export class SessionDecoder extends FrameDecoder {
  private readonly table: DecoderTable;
  constructor(options: SessionCodecOptions = {}) {
    super(options);
    this.table = new DecoderTable(this.limits, options.aliases ?? []);
  }
  protected tableFor(): DecoderTable {
    return this.table;
  }
  get tableSize(): number {
    return this.table.size;
  }
}
