/**
 * cxmpp frame → stanza tree (FORMAT.md). One pass over the bytes with a strict cursor; every failure is a
 * `CodecError` with the offset of the offending item. A frame that fails leaves the session table exactly
 * as it was, so a corrupted frame cannot poison later ones.
 */
import {
  CborReader,
  decodeUtf8,
  type Head,
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
import { CodecError } from "./errors.js";
import { type CodecLimits, resolveLimits } from "./limits.js";
import { DecoderTable, type Entry, type Shape, treeSize, utf8Length } from "./table.js";
import { JABBER_CLIENT, type XAttr, type XElement, type XNode } from "./tree.js";
import {
  joinJid,
  renderBase64,
  renderDate,
  renderDecimal,
  renderHex,
  renderInteger,
  renderTimestamp,
  renderUuid,
} from "./typed.js";
import { Tags } from "./wire.js";

export interface DecodedFrame {
  readonly stanza: XElement;
  /** Table indices the frame inserted (the session layer reports them back as acknowledged). */
  readonly inserted: readonly number[];
}

// Output space for Huffman literals, shared: decoding is synchronous. Sized by what the literal can
// expand to (at most the longest token per bit), never by the configured limit alone.
const MAX_EXPANSION_PER_BIT = 24;
let scratch = new Uint8Array(256);
function huffmanScratch(packedBytes: number, limit: number): Uint8Array {
  const need = Math.min(limit, packedBytes * 8 * MAX_EXPANSION_PER_BIT);
  if (scratch.length < need) scratch = new Uint8Array(Math.max(need, scratch.length * 2));
  return scratch.subarray(0, need);
}

/** Where a value stands, for contextual value ids (FORMAT.md §4.2); aid -1 is element text. */
interface ValueContext {
  readonly qid: number | undefined;
  readonly aid: number | undefined;
}

/** The decoding of one frame: cursor, insert counter and node budget. */
class FrameReader {
  private readonly r: CborReader;
  private nextInsert = 0;
  readonly inserted: number[] = [];
  /** Indices this frame added (not repeats), to undo if the frame fails. */
  readonly added: number[] = [];
  private nodes = 0;
  private outBytes = 0;

  constructor(
    bytes: Uint8Array,
    private readonly dict: StaticDictionary,
    private readonly limits: CodecLimits,
    private readonly table: DecoderTable,
    private readonly defaultNs: string,
  ) {
    this.r = new CborReader(bytes);
  }

  frame(): XElement {
    if (this.r.data.length > this.limits.maxFrameBytes) {
      throw new CodecError("LIMIT", 0, `frame of ${this.r.data.length} bytes exceeds maxFrameBytes`);
    }
    if (this.r.peekMajor() === MAJOR_UINT) this.nextInsert = this.r.head().value;
    const head = this.r.head();
    const stanza = this.elementItem(head, this.defaultNs, 1);
    if (stanza === undefined) throw new CodecError("BAD_STRUCTURE", head.offset, "a frame holds one element");
    if (!this.r.done) throw new CodecError("TRAILING_BYTES", this.r.pos, "bytes after the stanza");
    return stanza;
  }

  private count(offset: number): void {
    if (++this.nodes > this.limits.maxNodes)
      throw new CodecError("LIMIT", offset, "more nodes than maxNodes");
  }

  private element(head: Head, inheritedNs: string, depth: number): XElement {
    if (depth > this.limits.maxDepth) throw new CodecError("LIMIT", head.offset, "deeper than maxDepth");
    if (head.value < 1) throw new CodecError("BAD_STRUCTURE", head.offset, "an element needs a name");
    this.count(head.offset);
    let remaining = head.value - 1;
    const nameHead = this.r.head();
    let ns: string;
    let name: string;
    let qid: number | undefined;
    let attrs: XAttr[] = [];
    const entry =
      nameHead.major === MAJOR_NEGINT ? this.table.get(nameHead.value, nameHead.offset) : undefined;
    if (typeof entry === "object") {
      if (entry.kind !== "shape")
        throw new CodecError("BAD_STRUCTURE", nameHead.offset, "a subtree is not a name");
      // A shape reference (FORMAT.md §6.3): the head comes from the table, a map overrides values.
      ({ ns, name, qid } = entry);
      attrs = entry.attrs.slice();
      if (remaining > 0 && this.r.peekMajor() === MAJOR_MAP) {
        remaining--;
        this.overrides(entry, attrs);
      }
      let bytes = 0;
      for (const a of attrs) bytes += a.value.length;
      this.spend(attrs.length, bytes, nameHead.offset);
    } else {
      let shapeIndex = -1;
      let inner = nameHead;
      if (nameHead.major === MAJOR_TAG && nameHead.value === Tags.SHAPE) {
        shapeIndex = this.nextInsert++; // pre-order: numbered before the strings of its head (§6.1)
        inner = this.r.head(); // the name, which may itself be a string insert
      }
      ({ ns, name, qid } = this.elementName(inner, inheritedNs));
      const aids: (number | undefined)[] = [];
      if (remaining > 0 && this.r.peekMajor() === MAJOR_MAP) {
        remaining--;
        const map = this.r.head();
        for (let i = 0; i < map.value; i++) {
          this.count(this.r.pos);
          const key = this.attributeName(qid);
          const value = this.value(this.r.head(), { qid, aid: key.aid });
          for (const a of attrs) {
            if (a.ns === key.ns && a.name === key.name) {
              throw new CodecError("BAD_STRUCTURE", map.offset, "duplicate attribute");
            }
          }
          attrs.push({ ns: key.ns, name: key.name, value });
          aids.push(key.aid);
        }
      }
      if (shapeIndex >= 0) {
        if (attrs.length === 0)
          throw new CodecError("BAD_STRUCTURE", nameHead.offset, "a shape needs attributes");
        const shape: Shape = { kind: "shape", ns, name, qid, attrs, aids };
        this.remember(shapeIndex, shape, nameHead.offset);
      }
    }
    const children: XNode[] = [];
    for (; remaining > 0; remaining--) {
      const child = this.r.head();
      const element = this.elementItem(child, ns, depth + 1); // counts itself
      if (element) children.push(element);
      else {
        this.count(child.offset);
        children.push(this.value(child, { qid, aid: -1 }));
      }
    }
    return { kind: "element", ns, name, attrs, children };
  }

  /**
   * An element in any of its forms (FORMAT.md §3, §6.3, §6.4), or undefined when `head` starts a text
   * Value instead: an array; a subtree insert 13([…]); a bare reference to a shape (the element with no
   * overrides and no children) or to a subtree (the whole element again).
   */
  private elementItem(head: Head, inheritedNs: string, depth: number): XElement | undefined {
    if (head.major === MAJOR_ARRAY) return this.element(head, inheritedNs, depth);
    if (head.major === MAJOR_TAG && head.value === Tags.SUBTREE) {
      const index = this.nextInsert++; // pre-order: numbered before everything inside (§6.1)
      const inner = this.r.head();
      if (inner.major !== MAJOR_ARRAY)
        throw new CodecError("BAD_STRUCTURE", inner.offset, "a subtree wraps an element");
      const element = this.element(inner, inheritedNs, depth);
      const { nodes, bytes } = treeSize(element);
      this.remember(index, { kind: "subtree", element, nodes, bytes }, head.offset);
      return element;
    }
    if (head.major !== MAJOR_NEGINT) return undefined;
    const entry = this.table.get(head.value, head.offset);
    if (typeof entry === "string") return undefined;
    if (depth > this.limits.maxDepth) throw new CodecError("LIMIT", head.offset, "deeper than maxDepth");
    if (entry.kind === "subtree") {
      this.spend(entry.nodes, entry.bytes, head.offset);
      return entry.element;
    }
    let bytes = 0;
    for (const a of entry.attrs) bytes += a.value.length;
    this.spend(1 + entry.attrs.length, bytes, head.offset);
    return { kind: "element", ns: entry.ns, name: entry.name, attrs: entry.attrs.slice(), children: [] };
  }

  /** Counts what a table reference expands to against maxNodes and maxStanzaBytes. */
  private spend(nodes: number, bytes: number, offset: number): void {
    this.nodes += nodes;
    this.outBytes += bytes;
    if (this.nodes > this.limits.maxNodes) throw new CodecError("LIMIT", offset, "more nodes than maxNodes");
    if (this.outBytes > this.limits.maxStanzaBytes)
      throw new CodecError("LIMIT", offset, "stanza larger than maxStanzaBytes");
  }

  /** Applies a shape's override map {position: value} to `attrs` (a copy of the shape's attributes). */
  private overrides(shape: Shape, attrs: XAttr[]): void {
    const map = this.r.head();
    let previous = -1;
    for (let i = 0; i < map.value; i++) {
      const key = this.r.head();
      // Positions ascend strictly: no duplicates, and one canonical form per element.
      if (key.major !== MAJOR_UINT || key.value >= attrs.length || key.value <= previous) {
        throw new CodecError("BAD_STRUCTURE", key.offset, "bad shape override position");
      }
      previous = key.value;
      const a = attrs[key.value]!;
      attrs[key.value] = {
        ns: a.ns,
        name: a.name,
        value: this.value(this.r.head(), { qid: shape.qid, aid: shape.aids[key.value] }),
      };
    }
  }

  private remember(index: number, entry: Entry, offset: number): void {
    if (this.table.insert(index, entry, offset)) this.added.push(index);
    this.inserted.push(index);
  }

  private elementName(
    head: Head,
    inheritedNs: string,
  ): { ns: string; name: string; qid: number | undefined } {
    if (head.major === MAJOR_UINT) {
      const qid = this.dict.elementGlobal(head.value, inheritedNs);
      if (qid === undefined)
        throw new CodecError("UNKNOWN_ID", head.offset, `no element ${head.value} in the dictionary`);
      const q = this.dict.qnames[qid]!;
      return { ns: q.ns, name: q.name, qid };
    }
    if (head.major === MAJOR_ARRAY) return { ...this.qualified(head), qid: undefined };
    return { ns: inheritedNs, name: this.name(head), qid: undefined };
  }

  private attributeName(qid: number | undefined): { ns: string; name: string; aid: number | undefined } {
    const head = this.r.head();
    if (head.major === MAJOR_UINT) {
      const aid = this.dict.attributeFromId(head.value, qid);
      if (aid === undefined)
        throw new CodecError("UNKNOWN_ID", head.offset, `no attribute ${head.value} in the dictionary`);
      const a = this.dict.attributes[aid]!;
      return { ns: a.ns, name: a.name, aid };
    }
    if (head.major === MAJOR_ARRAY) return { ...this.qualified(head), aid: undefined };
    return { ns: "", name: this.name(head), aid: undefined };
  }

  /** [namespace, name]: namespace as a dictionary id or a string value. */
  private qualified(head: Head): { ns: string; name: string } {
    if (head.value !== 2)
      throw new CodecError("BAD_STRUCTURE", head.offset, "a qualified name is [namespace, name]");
    const nsHead = this.r.head();
    let ns: string;
    if (nsHead.major === MAJOR_UINT) {
      const found = this.dict.namespaces[nsHead.value];
      if (found === undefined)
        throw new CodecError("UNKNOWN_ID", nsHead.offset, `no namespace ${nsHead.value}`);
      ns = found;
    } else ns = this.value(nsHead, null);
    return { ns, name: this.name(this.r.head()) };
  }

  private name(head: Head): string {
    const name = this.value(head, null);
    if (name === "") throw new CodecError("BAD_STRUCTURE", head.offset, "empty name");
    return name;
  }

  /**
   * A Value item (FORMAT.md §5): the string it stands for. `qid`/`aid` give the context of value ids;
   * `qid` null means no static ids are allowed here (names, namespaces, JID parts).
   */
  private value(head: Head, ctx: ValueContext | null): string {
    const s = this.valueOf(head, ctx);
    // Typed values and JIDs are rendered, not read: their text counts against the limit too.
    if (s.length > this.limits.maxStringBytes / 3 && utf8Length(s) > this.limits.maxStringBytes) {
      throw new CodecError("LIMIT", head.offset, "string longer than maxStringBytes");
    }
    this.outBytes += s.length;
    if (this.outBytes > this.limits.maxStanzaBytes)
      throw new CodecError("LIMIT", head.offset, "stanza larger than maxStanzaBytes");
    return s;
  }

  private valueOf(head: Head, ctx: ValueContext | null): string {
    switch (head.major) {
      case MAJOR_UINT: {
        if (ctx === null)
          throw new CodecError("BAD_STRUCTURE", head.offset, "no dictionary value allowed here");
        const v = this.dict.valueFromId(head.value, ctx.qid, ctx.aid);
        if (v === undefined)
          throw new CodecError("UNKNOWN_ID", head.offset, `no value ${head.value} in the dictionary`);
        return v;
      }
      case MAJOR_NEGINT: {
        const entry = this.table.get(head.value, head.offset);
        if (typeof entry !== "string")
          throw new CodecError("BAD_STRUCTURE", head.offset, "a shape where a string belongs");
        return entry;
      }
      case MAJOR_TEXT:
        return this.r.text(head, this.limits.maxStringBytes);
      case MAJOR_BYTES: {
        const packed = this.r.body(head, this.limits.maxStringBytes);
        const out = huffmanScratch(packed.length, this.limits.maxStringBytes);
        const n = this.dict.huffman.decode(packed, head.offset + 1, out);
        return decodeUtf8(out.subarray(0, n), head.offset);
      }
      case MAJOR_TAG:
        return this.tagged(head, ctx);
      case MAJOR_SIMPLE:
        if (head.value === SIMPLE_TRUE) return "true";
        if (head.value === SIMPLE_FALSE) return "false";
        throw new CodecError("BAD_STRUCTURE", head.offset, `simple value ${head.value} is not a string`);
      default:
        throw new CodecError("BAD_STRUCTURE", head.offset, "an element, map or array where a string belongs");
    }
  }

  private tagged(head: Head, ctx: ValueContext | null): string {
    switch (head.value) {
      case Tags.INSERT: {
        const index = this.nextInsert++;
        const inner = this.r.head();
        if (inner.major === MAJOR_TAG && inner.value === Tags.INSERT) {
          throw new CodecError("BAD_STRUCTURE", inner.offset, "nested insert");
        }
        const value = this.value(inner, ctx);
        this.remember(index, value, head.offset);
        return value;
      }
      case Tags.JID: {
        const arr = this.r.head();
        if (arr.major !== MAJOR_ARRAY || (arr.value !== 2 && arr.value !== 3)) {
          throw new CodecError("BAD_STRUCTURE", arr.offset, "a JID is [local|null, domain, resource?]");
        }
        const localHead = this.r.head();
        const local =
          localHead.major === MAJOR_SIMPLE && localHead.value === SIMPLE_NULL
            ? null
            : this.value(localHead, null);
        const domain = this.value(this.r.head(), null);
        const resource = arr.value === 3 ? this.value(this.r.head(), null) : null;
        const out = joinJid({ local, domain, resource });
        if (out.length > this.limits.maxStringBytes)
          throw new CodecError("LIMIT", head.offset, "JID too long");
        return out;
      }
      case Tags.INTEGER:
        return renderInteger(this.integer());
      case Tags.DECIMAL: {
        const arr = this.r.head();
        if (arr.major !== MAJOR_ARRAY || arr.value !== 2)
          throw new CodecError("BAD_STRUCTURE", arr.offset, "decimal is [e, m]");
        const exponent = this.integer();
        const mantissa = this.integer();
        if (exponent > -1 || exponent < -15)
          throw new CodecError("BAD_VALUE", arr.offset, "decimal exponent out of range");
        return renderDecimal({ exponent, mantissa });
      }
      case Tags.PACKED_DECIMAL: {
        const at = this.r.pos;
        const x = this.integer();
        const scale = Math.abs(x) % 16;
        if (scale === 0) throw new CodecError("BAD_VALUE", at, "packed decimal without fraction digits");
        const magnitude = Math.floor(Math.abs(x) / 16);
        if (x < 0 && magnitude === 0) throw new CodecError("BAD_VALUE", at, "negative zero decimal");
        return renderDecimal({ exponent: -scale, mantissa: x < 0 ? -magnitude : magnitude });
      }
      case Tags.EPOCH:
        return renderTimestamp({ seconds: this.seconds(), zone: null, fraction: 0, fractionDigits: 0 });
      case Tags.DATETIME: {
        const arr = this.r.head();
        if (arr.major !== MAJOR_ARRAY || (arr.value !== 2 && arr.value !== 4)) {
          throw new CodecError(
            "BAD_STRUCTURE",
            arr.offset,
            "datetime is [seconds, zone, fraction?, digits?]",
          );
        }
        const seconds = this.seconds();
        const zoneHead = this.r.head();
        let zone: number | null | false = null;
        if (zoneHead.major === MAJOR_SIMPLE && zoneHead.value === SIMPLE_FALSE) zone = false;
        else if (!(zoneHead.major === MAJOR_SIMPLE && zoneHead.value === SIMPLE_NULL)) {
          zone = this.integerFrom(zoneHead);
          if (Math.abs(zone) > 24 * 60)
            throw new CodecError("BAD_VALUE", zoneHead.offset, "zone offset out of range");
        }
        let fraction = 0;
        let fractionDigits = 0;
        if (arr.value === 4) {
          fraction = this.integer();
          fractionDigits = this.integer();
          if (fractionDigits < 1 || fractionDigits > 9 || fraction < 0 || fraction >= 10 ** fractionDigits) {
            throw new CodecError("BAD_VALUE", arr.offset, "fraction out of range");
          }
        }
        return renderTimestamp({ seconds, zone, fraction, fractionDigits });
      }
      case Tags.DATE: {
        const at = this.r.pos;
        const days = this.integer();
        if (Math.abs(days) > 3_000_000) throw new CodecError("BAD_VALUE", at, "date out of range");
        return renderDate(days);
      }
      case Tags.BASE64:
        return renderBase64(this.bytes());
      case Tags.BASE16:
        return renderHex(this.bytes());
      case Tags.UUID: {
        const at = this.r.pos;
        const bytes = this.bytes();
        if (bytes.length !== 16) throw new CodecError("BAD_VALUE", at, "a UUID has 16 bytes");
        return renderUuid(bytes);
      }
      default:
        throw new CodecError("BAD_STRUCTURE", head.offset, `unknown tag ${head.value}`);
    }
  }

  private integer(): number {
    return this.integerFrom(this.r.head());
  }

  private integerFrom(head: Head): number {
    if (head.major === MAJOR_UINT) return head.value;
    if (head.major === MAJOR_NEGINT) return -1 - head.value;
    throw new CodecError("BAD_STRUCTURE", head.offset, "integer expected");
  }

  /** Seconds within the years 1000-9999, so rendering stays four-digit and exact. */
  private seconds(): number {
    const at = this.r.pos;
    const s = this.integer();
    if (s < -30_610_224_000 || s > 253_402_300_799)
      throw new CodecError("BAD_VALUE", at, "time out of range");
    return s;
  }

  private bytes(): Uint8Array {
    const head = this.r.head();
    if (head.major !== MAJOR_BYTES)
      throw new CodecError("BAD_STRUCTURE", head.offset, "byte string expected");
    const limit = Math.floor(this.limits.maxStringBytes / 2);
    return this.r.body(head, limit);
  }
}

abstract class FrameDecoder {
  protected readonly dict: StaticDictionary;
  protected readonly limits: CodecLimits;
  protected readonly defaultNs: string;

  constructor(options: CodecOptions = {}) {
    this.dict = options.dictionary ?? DICTIONARY_V1;
    this.limits = resolveLimits(options.limits);
    this.defaultNs = options.defaultNs ?? JABBER_CLIENT;
  }

  protected abstract tableFor(): DecoderTable;

  decode(bytes: Uint8Array): DecodedFrame {
    if (!(bytes instanceof Uint8Array)) throw new CodecError("BAD_STRUCTURE", 0, "a frame is a byte array");
    const table = this.tableFor();
    const reader = new FrameReader(bytes, this.dict, this.limits, table, this.defaultNs);
    try {
      const stanza = reader.frame();
      return { stanza, inserted: reader.inserted.sort((a, b) => a - b) };
    } catch (error) {
      table.remove(reader.added);
      if (error instanceof CodecError) throw error;
      // A bug, not an input problem; still reported as a CodecError so callers have one type to handle.
      throw new CodecError("BAD_STRUCTURE", 0, `internal: ${(error as Error).message}`);
    }
  }
}

/** Decodes stand-alone frames (no session state). */
export class StatelessDecoder extends FrameDecoder {
  protected tableFor(): DecoderTable {
    return new DecoderTable(this.limits);
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
