/**
 * Stanza tree → cxmpp frame (FORMAT.md). Builds the frame as plain values (arrays, Maps, Tags, strings,
 * numbers, byte arrays) and serialises them with cbor-x. In every string position it takes the cheapest
 * of: a contextual dictionary id, a session table reference, a typed binary value, UTF-8 text or a
 * Huffman literal — and inserts strings (and, in session mode, element shapes) worth remembering.
 */
import { Encoder, Tag } from "cbor-x";
import { DICTIONARY_V1, type StaticDictionary } from "./dictionary/index.js";
import { CodecError } from "./errors.js";
import { type CodecLimits, resolveLimits } from "./limits.js";
import { EncoderTable, type Shape, shapeKey, treeKey, treeSize, utf8Length } from "./table.js";
import { JABBER_CLIENT, type XElement } from "./tree.js";
import {
  type JidParts,
  parseBase64,
  parseDate,
  parseDecimal,
  parseHex,
  parseInteger,
  parseTimestamp,
  parseUuid,
  splitJid,
} from "./typed.js";
import { headSize, Tags } from "./wire.js";

export interface CodecOptions {
  /** Default: DICTIONARY_V1. */
  readonly dictionary?: StaticDictionary;
  readonly limits?: Readonly<Partial<CodecLimits>>;
  /** Namespace the root inherits (the stream's default namespace). Default `jabber:client`. */
  readonly defaultNs?: string;
}

export interface SessionCodecOptions extends CodecOptions {
  /**
   * Strings both peers know from the start (the node's JID, its gateway domain, usual peers): table
   * entries 0…n-1, acknowledged from the outset. Both sides must use the same list.
   */
  readonly aliases?: readonly string[];
}

export interface EncodedFrame {
  readonly bytes: Uint8Array;
  /** Table indices this frame inserted: pass them to `acknowledge` once the peer has decoded it. */
  readonly inserted: readonly number[];
}

/** Where a value stands, for contextual value ids: element qname id and attribute id (-1: text). */
interface ValueContext {
  readonly qid: number | undefined;
  readonly aid: number | undefined;
}
/** Positions where an unsigned integer means something else (names, namespaces, JID parts). */
const NO_STATIC = null;

type Item = number | bigint | string | Uint8Array | Tag | Item[] | Map<Item, Item> | boolean | null;

const cbor = new Encoder({
  useRecords: false,
  mapsAsObjects: false,
  tagUint8Array: false,
  variableMapSize: true,
  structuredClone: false,
  pack: false,
} as ConstructorParameters<typeof Encoder>[0]);
const textEncoder = new TextEncoder();

// Scratch space shared by all encoders: encoding is synchronous, so one set is enough and a gateway
// with many sessions does not hold a Huffman work area per session. Grown on demand.
let scratchBytes = new Uint8Array(256);
let scratchSymbols = new Uint16Array(256);
let scratchCost = new Uint32Array(257);
let scratchBack = new Uint16Array(257);

/** UTF-8 of `s` in the shared scratch buffer (valid until the next call). */
function utf8View(s: string): Uint8Array {
  const n = s.length;
  if (n * 3 > scratchBytes.length) scratchBytes = new Uint8Array(n * 3 + 64);
  let i = 0;
  for (; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) break;
    scratchBytes[i] = c;
  }
  if (i === n) return scratchBytes.subarray(0, n);
  const { written } = textEncoder.encodeInto(s, scratchBytes);
  return scratchBytes.subarray(0, written);
}

function ensureSymbolScratch(n: number): void {
  if (n + 1 > scratchCost.length) {
    scratchSymbols = new Uint16Array(n + 64);
    scratchCost = new Uint32Array(n + 65);
    scratchBack = new Uint16Array(n + 65);
  }
}

/** cbor-x writes integers beyond 32 bits as floats; a BigInt makes it write a 64-bit integer head. */
function int(n: number): number | bigint {
  return n >= 4_294_967_296 || n < -4_294_967_296 ? BigInt(n) : n;
}

/** Largest subtree (elements + attributes + texts) worth a table entry; larger ones rarely recur whole. */
const SUBTREE_MAX_NODES = 16;

/** Values that change from stanza to stanza (numbers, times): never worth a table entry. */
const VOLATILE = /^[-+0-9.:TZ]*$/;

/** Shared machinery of the stateless and session encoders. */
abstract class FrameEncoder {
  protected readonly dict: StaticDictionary;
  protected readonly limits: CodecLimits;
  protected readonly defaultNs: string;
  /** Strings inserted by the frame being built (referenceable later in the same frame). */
  private frameInserts = new Map<string, number>();
  /** Shapes inserted by the frame being built. */
  private frameShapes = new Map<string, Array<{ index: number; shape: Shape }>>();
  /** Subtrees inserted by the frame being built. */
  private readonly frameTrees = new Map<string, number>();
  /** Depth of subtree inserts being written: subtrees inside them are not inserted again. */
  private insideSubtree = 0;
  private inserted: number[] = [];
  private nodes = 0;

  constructor(options: CodecOptions = {}) {
    this.dict = options.dictionary ?? DICTIONARY_V1;
    this.limits = resolveLimits(options.limits);
    this.defaultNs = options.defaultNs ?? JABBER_CLIENT;
  }

  protected abstract get table(): EncoderTable;
  /** Whether `value` (not yet referenceable, `cost` bytes as a literal) should be inserted now. */
  protected abstract shouldInsert(value: string, cost: number): boolean;
  /** Whether to write a JID as parts (so that shared domains/locals become references). */
  protected abstract shouldSplitJid(jid: JidParts): boolean;
  /** Session mode: frames name their insert base and element shapes are remembered. */
  protected abstract get sessionMode(): boolean;

  encode(stanza: XElement): EncodedFrame {
    this.frameInserts.clear();
    this.frameShapes.clear();
    this.frameTrees.clear();
    this.inserted = [];
    this.nodes = 0;
    const base = this.table.nextIndex;
    this.prepare(stanza);
    const root = this.elementArray(stanza, this.defaultNs, 1);
    const body = cbor.encode(root) as Uint8Array;
    let bytes: Uint8Array;
    if (this.sessionMode && this.inserted.length > 0) {
      const prefix = cbor.encode(base) as Uint8Array;
      bytes = new Uint8Array(prefix.length + body.length);
      bytes.set(prefix, 0);
      bytes.set(body, prefix.length);
    } else {
      bytes = Uint8Array.from(body); // cbor-x returns a view of its reused buffer
    }
    if (bytes.length > this.limits.maxFrameBytes) {
      throw new CodecError("LIMIT", bytes.length, `frame of ${bytes.length} bytes exceeds maxFrameBytes`);
    }
    return { bytes, inserted: this.inserted };
  }

  /** Hook before a frame is built (the stateless encoder counts repeats). */
  protected prepare(_stanza: XElement): void {}

  /**
   * An element in session mode may be a reference to an identical earlier subtree, or become one
   * (FORMAT.md §6.4); otherwise it is written as an array.
   */
  private element(e: XElement, inheritedNs: string, depth: number): Item {
    if (!this.sessionMode || depth < 2 || e.children.length === 0)
      return this.elementArray(e, inheritedNs, depth);
    const key = treeKey(e);
    const known = this.table.subtree(key) ?? this.frameTrees.get(key);
    if (known !== undefined) {
      const size = treeSize(e);
      this.nodes += size.nodes;
      return -1 - known;
    }
    if (this.insideSubtree > 0) return this.elementArray(e, inheritedNs, depth);
    const size = treeSize(e);
    if (size.nodes > SUBTREE_MAX_NODES || !this.table.canInsert(size.bytes))
      return this.elementArray(e, inheritedNs, depth);
    // Pre-order numbering (FORMAT.md §6.1): the subtree is numbered before anything inside it.
    const index = this.table.insert(
      { kind: "subtree", element: e, nodes: size.nodes, bytes: size.bytes },
      size.bytes,
      key,
    );
    this.inserted.push(index);
    this.frameTrees.set(key, index);
    this.insideSubtree++;
    try {
      return new Tag(this.elementArray(e, inheritedNs, depth), Tags.SUBTREE);
    } finally {
      this.insideSubtree--;
    }
  }

  /** The element as an array, or as a bare shape reference when it is exactly a known shape (§6.3). */
  private elementArray(e: XElement, inheritedNs: string, depth: number): Item {
    if (depth > this.limits.maxDepth) throw new CodecError("LIMIT", 0, "stanza deeper than maxDepth");
    if (e.name === "") throw new CodecError("UNENCODABLE", 0, "element with an empty name");
    this.nodes += 1 + e.attrs.length + e.children.length;
    if (this.nodes > this.limits.maxNodes)
      throw new CodecError("LIMIT", 0, "stanza has more nodes than maxNodes");
    const attrs = e.attrs;
    for (let i = 1; i < attrs.length; i++) {
      for (let j = 0; j < i; j++) {
        if (attrs[i]!.name === attrs[j]!.name && attrs[i]!.ns === attrs[j]!.ns) {
          throw new CodecError("UNENCODABLE", 0, `duplicate attribute '${attrs[i]!.name}'`);
        }
      }
    }
    const qid = this.dict.qnameGlobal(e.ns, e.name);
    const out: Item[] = [];
    const shape = this.sessionMode && attrs.length > 0 ? this.shape(e, qid) : undefined;
    if (typeof shape === "object") {
      if (!shape.overrides && e.children.length === 0) return -1 - shape.index;
      out.push(-1 - shape.index);
      if (shape.overrides) out.push(shape.overrides);
    } else {
      const name = this.elementName(e, qid, inheritedNs);
      out.push(shape === "inserted" ? new Tag(name, Tags.SHAPE) : name);
      if (attrs.length > 0) {
        const map = new Map<Item, Item>();
        for (const a of attrs) {
          if (a.name === "") throw new CodecError("UNENCODABLE", 0, "attribute with an empty name");
          const aid = this.dict.attributeGlobal(a.ns, a.name);
          const key =
            aid !== undefined
              ? this.dict.attributeId(aid, qid)
              : a.ns === ""
                ? this.string(a.name, NO_STATIC)
                : [this.namespace(a.ns), this.string(a.name, NO_STATIC)];
          map.set(key, this.string(a.value, { qid, aid }));
        }
        out.push(map);
      }
    }
    const textContext: ValueContext = { qid, aid: -1 };
    for (const child of e.children) {
      if (typeof child === "string") {
        if (child !== "") out.push(this.string(child, textContext));
      } else {
        out.push(this.element(child, e.ns, depth + 1));
      }
    }
    return out;
  }

  private elementName(e: XElement, qid: number | undefined, inheritedNs: string): Item {
    if (qid !== undefined) return this.dict.elementId(qid, inheritedNs);
    if (e.ns === inheritedNs) return this.string(e.name, NO_STATIC);
    return [this.namespace(e.ns), this.string(e.name, NO_STATIC)];
  }

  /**
   * Session mode (FORMAT.md §6.3): a known shape to reuse with the differing attribute values
   * overridden, or "inserted" when this element's head becomes a new shape (its index is taken now,
   * before the strings inside the head: pre-order numbering, §6.1), or undefined to write it plainly.
   */
  private shape(
    e: XElement,
    qid: number | undefined,
  ): { index: number; overrides?: Map<Item, Item> } | "inserted" | undefined {
    const key = shapeKey(e.ns, e.name, e.attrs);
    let best: { index: number; shape: Shape } | undefined;
    let bestDiffs = Number.POSITIVE_INFINITY;
    for (const list of [this.table.shapes(key), this.frameShapes.get(key)]) {
      if (!list) continue;
      for (const candidate of list) {
        let diffs = 0;
        for (let i = 0; i < e.attrs.length; i++)
          if (candidate.shape.attrs[i]!.value !== e.attrs[i]!.value) diffs++;
        if (diffs < bestDiffs) {
          best = candidate;
          bestDiffs = diffs;
        }
      }
    }
    // Overriding costs a position and a value per attribute: worth it while at most half differ.
    if (best && bestDiffs * 2 <= e.attrs.length) {
      if (bestDiffs === 0) return { index: best.index };
      const overrides = new Map<Item, Item>();
      for (let i = 0; i < e.attrs.length; i++) {
        const value = e.attrs[i]!.value;
        if (best.shape.attrs[i]!.value !== value) {
          overrides.set(i, this.string(value, { qid: best.shape.qid, aid: best.shape.aids[i] }));
        }
      }
      return { index: best.index, overrides };
    }
    // A head whose every value changes each time (a timestamp, a sequence number) never recurs.
    if (e.attrs.every((a) => VOLATILE.test(a.value))) return undefined;
    let size = utf8Length(e.name);
    for (const a of e.attrs) size += utf8Length(a.name) + utf8Length(a.value);
    if (!this.table.canInsert(size)) return undefined;
    const shape: Shape = {
      kind: "shape",
      ns: e.ns,
      name: e.name,
      qid,
      attrs: e.attrs,
      aids: e.attrs.map((a) => this.dict.attributeGlobal(a.ns, a.name)),
    };
    const index = this.table.insert(shape, size);
    this.inserted.push(index);
    const list = this.frameShapes.get(key) ?? [];
    list.push({ index, shape });
    this.frameShapes.set(key, list);
    return "inserted";
  }

  private namespace(ns: string): Item {
    const id = this.dict.namespaceId(ns);
    return id !== undefined ? id : this.string(ns, NO_STATIC);
  }

  /** Reference to `value` if the peer can resolve one (acknowledged, or inserted earlier in this frame). */
  protected reference(value: string): number | undefined {
    const acked = this.table.lookup(value);
    return acked !== undefined ? acked : this.frameInserts.get(value);
  }

  /** Encodes a string in a Value position, with contextual value ids unless `context` is NO_STATIC. */
  protected string(value: string, context: ValueContext | null, insertable = true): Item {
    if (value.length > this.limits.maxStringBytes || utf8Length(value) > this.limits.maxStringBytes) {
      throw new CodecError("LIMIT", 0, "string longer than maxStringBytes");
    }
    if (context !== NO_STATIC) {
      const id = this.dict.valueId(value, context.qid, context.aid);
      if (id !== undefined) return id;
    }
    const ref = this.reference(value);
    if (ref !== undefined) return -1 - ref;
    const split = value.length > 3 ? splitJid(value) : undefined;
    const jid = split && this.shouldSplitJid(split) ? split : undefined;
    const literal = jid ? undefined : this.literal(value);
    const cost = literal ? literal.cost : value.length + 2;
    const size = utf8Length(value);
    const insert =
      insertable &&
      size <= this.limits.maxEntryBytes &&
      !VOLATILE.test(value) &&
      this.shouldInsert(value, cost) &&
      this.table.canInsert(size);
    // Pre-order numbering (FORMAT.md §6.1): the outer insert is numbered before its parts.
    if (insert) {
      const index = this.table.insert(value, size);
      this.inserted.push(index);
      if (!this.frameInserts.has(value)) this.frameInserts.set(value, index);
    }
    let item: Item;
    if (jid) {
      const parts: Item[] = [
        jid.local === null ? null : this.string(jid.local, NO_STATIC),
        this.string(jid.domain, NO_STATIC),
      ];
      // Resources rarely recur apart from their full JID, which is inserted whole.
      if (jid.resource !== null) parts.push(this.string(jid.resource, NO_STATIC, !this.sessionMode));
      item = new Tag(parts, Tags.JID);
    } else item = literal!.item;
    return insert ? new Tag(item, Tags.INSERT) : item;
  }

  /** The cheapest self-contained form of `value`; ties go to the earlier candidate. */
  private literal(value: string): { item: Item; cost: number } {
    const bytes = utf8View(value);
    const n = bytes.length;
    let item: Item = value;
    let cost = headSize(n) + n;
    if (n > 1) {
      ensureSymbolScratch(n);
      const plan = this.dict.huffman.plan(bytes, scratchSymbols, scratchCost, scratchBack);
      const hcost = headSize(plan.size) + plan.size;
      if (hcost < cost) {
        const out = new Uint8Array(plan.size);
        this.dict.huffman.emit(scratchSymbols, plan.count, out, 0);
        item = out;
        cost = hcost;
      }
    }
    const c0 = value.charCodeAt(0);
    if ((c0 >= 48 && c0 <= 57) || c0 === 45) {
      const i = parseInteger(value);
      if (i !== undefined && 1 + headSize(i) < cost)
        return { item: new Tag(int(i), Tags.INTEGER), cost: 1 + headSize(i) };
      const d = i === undefined ? parseDecimal(value) : undefined;
      if (d) {
        const scale = -d.exponent;
        const packed = Math.abs(d.mantissa) * 16 + scale;
        if (scale < 16 && Number.isSafeInteger(packed)) {
          const x = d.mantissa < 0 ? -packed : packed;
          const c = 1 + headSize(x);
          if (c < cost) return { item: new Tag(int(x), Tags.PACKED_DECIMAL), cost: c };
        } else {
          const c = 2 + headSize(d.exponent) + headSize(d.mantissa);
          if (c < cost) return { item: new Tag([d.exponent, int(d.mantissa)], Tags.DECIMAL), cost: c };
        }
      }
      if (n >= 10) {
        const t = parseTimestamp(value);
        if (t) {
          if (t.zone === null && t.fractionDigits === 0) {
            const c = 1 + headSize(t.seconds);
            if (c < cost) return { item: new Tag(int(t.seconds), Tags.EPOCH), cost: c };
          } else {
            const parts: Item[] = [int(t.seconds), t.zone];
            let c = 2 + headSize(t.seconds) + (typeof t.zone === "number" ? headSize(t.zone) : 1);
            if (t.fractionDigits > 0) {
              parts.push(t.fraction, t.fractionDigits);
              c += headSize(t.fraction) + 1;
            }
            if (c < cost) return { item: new Tag(parts, Tags.DATETIME), cost: c };
          }
        }
        const days = n === 10 ? parseDate(value) : undefined;
        if (days !== undefined && 2 + headSize(days) < cost)
          return { item: new Tag(days, Tags.DATE), cost: 2 + headSize(days) };
      }
    }
    if (n >= 8) {
      const hex = n % 2 === 0 ? parseHex(value) : undefined;
      if (hex && 1 + headSize(hex.length) + hex.length < cost) {
        item = new Tag(hex, Tags.BASE16);
        cost = 1 + headSize(hex.length) + hex.length;
      }
      const uuid = n === 36 ? parseUuid(value) : undefined;
      if (uuid && 19 < cost) return { item: new Tag(uuid, Tags.UUID), cost: 19 };
      const b64 = !hex && n % 4 === 0 ? parseBase64(value) : undefined;
      if (b64 && 1 + headSize(b64.length) + b64.length < cost) {
        item = new Tag(b64, Tags.BASE64);
        cost = 1 + headSize(b64.length) + b64.length;
      }
    }
    return { item, cost };
  }
}

/**
 * Stateless encoder: every frame stands alone. Strings repeated within one stanza are inserted into a
 * frame-local table on first use and referenced afterwards.
 */
export class StatelessEncoder extends FrameEncoder {
  private frameTable: EncoderTable;
  private readonly repeats = new Map<string, number>();

  constructor(options: CodecOptions = {}) {
    super(options);
    this.frameTable = new EncoderTable(this.limits);
  }

  protected get table(): EncoderTable {
    return this.frameTable;
  }
  protected get sessionMode(): boolean {
    return false;
  }

  protected override prepare(stanza: XElement): void {
    this.frameTable = new EncoderTable(this.limits);
    this.repeats.clear();
    this.countStrings(stanza, this.defaultNs);
  }

  private seen(s: string): void {
    this.repeats.set(s, (this.repeats.get(s) ?? 0) + 1);
  }

  private seenValue(s: string, qid: number | undefined, aid: number | undefined): void {
    if (this.dict.valueId(s, qid, aid) !== undefined) return;
    this.seen(s);
    const jid = s.length > 3 ? splitJid(s) : undefined;
    if (jid) {
      this.seen(jid.domain);
      if (jid.local !== null) this.seen(jid.local);
      if (jid.resource !== null) this.seen(jid.resource);
    }
  }

  /** Counts the strings a frame will write, so that only repeated ones are inserted. */
  private countStrings(e: XElement, inheritedNs: string): void {
    const qid = this.dict.qnameGlobal(e.ns, e.name);
    if (qid === undefined) {
      if (e.ns !== inheritedNs && this.dict.namespaceId(e.ns) === undefined) this.seen(e.ns);
      this.seen(e.name);
    }
    for (const a of e.attrs) {
      const aid = this.dict.attributeGlobal(a.ns, a.name);
      if (aid === undefined) {
        this.seen(a.name);
        if (a.ns !== "" && this.dict.namespaceId(a.ns) === undefined) this.seen(a.ns);
      }
      this.seenValue(a.value, qid, aid);
    }
    for (const c of e.children) {
      if (typeof c === "string") this.seenValue(c, qid, -1);
      else this.countStrings(c, e.ns);
    }
  }

  protected shouldInsert(value: string, cost: number): boolean {
    return cost > 2 && (this.repeats.get(value) ?? 0) >= 2;
  }

  protected shouldSplitJid(jid: JidParts): boolean {
    return this.reusable(jid.domain) || this.reusable(jid.local) || this.reusable(jid.resource);
  }

  private reusable(s: string | null): boolean {
    return s !== null && ((this.repeats.get(s) ?? 0) >= 2 || this.reference(s) !== undefined);
  }
}

/**
 * Session encoder: one per direction of a session. Inserts what is worth remembering; references an entry
 * only once `acknowledge` says the peer decoded the frame that inserted it.
 */
export class SessionEncoder extends FrameEncoder {
  private readonly sessionTable: EncoderTable;

  constructor(options: SessionCodecOptions = {}) {
    super(options);
    this.sessionTable = new EncoderTable(this.limits, options.aliases ?? []);
  }

  protected get table(): EncoderTable {
    return this.sessionTable;
  }
  protected get sessionMode(): boolean {
    return true;
  }

  /** The peer has decoded a frame: its inserts may now be referenced. */
  acknowledge(inserted: Iterable<number>): void {
    this.sessionTable.acknowledge(inserted);
  }

  /** Inserts not yet acknowledged (in flight or lost). */
  get pendingInserts(): number {
    return this.sessionTable.pendingCount;
  }

  protected shouldInsert(_value: string, cost: number): boolean {
    return cost > 2;
  }

  protected shouldSplitJid(_jid: JidParts): boolean {
    return true;
  }
}
