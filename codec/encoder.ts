/**
 * Stanza tree → cxmpp frame (FORMAT.md). Builds the frame as plain values (arrays, Maps, Tags, strings,
 * numbers, byte arrays) and serialises them with cbor-x. In every string position it takes the cheapest
 * of: a static dictionary id, a session table reference, a typed binary value, UTF-8 text or a Huffman
 * literal — and inserts strings worth remembering into the table.
 */
import { Encoder, Tag } from "cbor-x";
import { DICTIONARY_V1, type StaticDictionary } from "./dictionary/index.js";
import { CodecError } from "./errors.js";
import { type CodecLimits, resolveLimits } from "./limits.js";
import { EncoderTable } from "./table.js";
import { JABBER_CLIENT, type XElement } from "./tree.js";
import {
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
const utf8 = new TextEncoder();

/** cbor-x writes integers beyond 32 bits as floats; a BigInt makes it write a 64-bit integer head. */
function int(n: number): number | bigint {
  return n >= 4_294_967_296 || n < -4_294_967_296 ? BigInt(n) : n;
}

/** Shared machinery of the stateless and session encoders. */
abstract class FrameEncoder {
  protected readonly dict: StaticDictionary;
  protected readonly limits: CodecLimits;
  protected readonly defaultNs: string;
  /** Strings inserted by the frame being built (referenceable later in the same frame). */
  private frameInserts = new Map<string, number>();
  private inserted: number[] = [];
  private nodes = 0;

  constructor(options: CodecOptions = {}) {
    this.dict = options.dictionary ?? DICTIONARY_V1;
    this.limits = resolveLimits(options.limits);
    this.defaultNs = options.defaultNs ?? JABBER_CLIENT;
  }

  protected abstract get table(): EncoderTable;
  /** Whether `value` (not yet referenceable) should be inserted now. */
  protected abstract shouldInsert(value: string, literalCost: number): boolean;
  /** Whether to write a JID as parts (so that shared domains/locals become references). */
  protected abstract shouldSplitJid(value: string): boolean;
  /** Whether the frame must name its insert base (session mode). */
  protected abstract get writesBase(): boolean;

  encode(stanza: XElement): EncodedFrame {
    this.frameInserts = new Map();
    this.inserted = [];
    this.nodes = 0;
    const base = this.table.nextIndex;
    this.prepare(stanza);
    const root = this.element(stanza, this.defaultNs, 1);
    const head = cbor.encode(root) as Uint8Array;
    let bytes = head;
    if (this.writesBase && this.inserted.length > 0) {
      const prefix = cbor.encode(base) as Uint8Array;
      bytes = new Uint8Array(prefix.length + head.length);
      bytes.set(prefix, 0);
      bytes.set(head, prefix.length);
    } else {
      bytes = Uint8Array.from(head);
    }
    if (bytes.length > this.limits.maxFrameBytes) {
      throw new CodecError("LIMIT", bytes.length, `frame of ${bytes.length} bytes exceeds maxFrameBytes`);
    }
    return { bytes, inserted: this.inserted };
  }

  /** Hook before a frame is built (the stateless encoder counts repeats). */
  protected prepare(_stanza: XElement): void {}

  private element(e: XElement, inheritedNs: string, depth: number): Item[] {
    if (depth > this.limits.maxDepth) throw new CodecError("LIMIT", 0, "stanza deeper than maxDepth");
    if (e.name === "") throw new CodecError("UNENCODABLE", 0, "element with an empty name");
    this.count(1 + e.attrs.length + e.children.length);
    const out: Item[] = [];
    const qid = this.dict.qnameGlobal(e.ns, e.name);
    if (qid !== undefined) out.push(this.dict.elementId(qid, inheritedNs));
    else if (e.ns === inheritedNs) out.push(this.string(e.name, NO_STATIC));
    else out.push([this.namespace(e.ns), this.string(e.name, NO_STATIC)]);
    if (e.attrs.length > 0) {
      const map = new Map<Item, Item>();
      for (const a of e.attrs) {
        if (a.name === "") throw new CodecError("UNENCODABLE", 0, "attribute with an empty name");
        const aid = this.dict.attributeGlobal(a.ns, a.name);
        const key =
          aid !== undefined
            ? this.dict.attributeId(aid, qid)
            : a.ns === ""
              ? this.string(a.name, NO_STATIC)
              : [this.namespace(a.ns), this.string(a.name, NO_STATIC)];
        if (map.has(key)) throw new CodecError("UNENCODABLE", 0, `duplicate attribute '${a.name}'`);
        map.set(key, this.string(a.value, { qid, aid }));
      }
      out.push(map);
    }
    const textContext: ValueContext = { qid, aid: -1 };
    for (const child of e.children) {
      if (typeof child === "string") {
        if (child !== "") out.push(this.string(child, textContext));
      } else out.push(this.element(child, e.ns, depth + 1));
    }
    return out;
  }

  private count(n: number): void {
    this.nodes += n;
    if (this.nodes > this.limits.maxNodes)
      throw new CodecError("LIMIT", 0, "stanza has more nodes than maxNodes");
  }

  private namespace(ns: string): Item {
    const id = this.dict.namespaceId(ns);
    return id !== undefined ? id : this.string(ns, NO_STATIC);
  }

  /** Reference to `value` if the peer can resolve one (acknowledged, or inserted earlier in this frame). */
  protected reference(value: string): number | undefined {
    return this.table.lookup(value) ?? this.frameInserts.get(value);
  }

  /**
   * Encodes a string in a Value position. `context` selects the contextual value ids (FORMAT.md §4.2);
   * NO_STATIC where an unsigned integer means something else (element tag, attribute key, namespace).
   */
  protected string(value: string, context: ValueContext | null): Item {
    if (utf8.encode(value).length > this.limits.maxStringBytes) {
      throw new CodecError("LIMIT", 0, "string longer than maxStringBytes");
    }
    if (context !== NO_STATIC) {
      const id = this.dict.valueId(value, context.qid, context.aid);
      if (id !== undefined) return id;
    }
    const ref = this.reference(value);
    if (ref !== undefined) return -1 - ref;
    const jid = this.shouldSplitJid(value) ? splitJid(value) : undefined;
    const literal = jid ? undefined : this.literal(value);
    const cost = literal ? literal.cost : value.length + 2;
    const insert =
      value.length <= this.limits.maxEntryBytes &&
      this.table.canInsert(value) &&
      this.shouldInsert(value, cost);
    // Pre-order index assignment (FORMAT.md §6): the outer insert is numbered before its parts.
    if (insert) this.recordInsert(value, this.table.insert(value));
    let item: Item;
    if (jid) {
      const parts: Item[] = [
        jid.local === null ? null : this.string(jid.local, NO_STATIC),
        this.string(jid.domain, NO_STATIC),
      ];
      if (jid.resource !== null) parts.push(this.string(jid.resource, NO_STATIC));
      item = new Tag(parts, Tags.JID);
    } else item = literal!.item;
    return insert ? new Tag(item, Tags.INSERT) : item;
  }

  private recordInsert(value: string, index: number): void {
    this.inserted.push(index);
    if (!this.frameInserts.has(value)) this.frameInserts.set(value, index);
  }

  /** The cheapest self-contained form of `value`; ties go to the first candidate in this order. */
  private literal(value: string): { item: Item; cost: number } {
    const bytes = utf8.encode(value);
    let best: { item: Item; cost: number } = { item: value, cost: headSize(bytes.length) + bytes.length };
    const consider = (item: Item, cost: number): void => {
      if (cost < best.cost) best = { item, cost };
    };
    const hlen = this.dict.huffman.sizeOf(bytes);
    if (hlen + headSize(hlen) < best.cost) consider(this.dict.huffman.encode(bytes), headSize(hlen) + hlen);
    const c0 = value.charCodeAt(0);
    if ((c0 >= 48 && c0 <= 57) || c0 === 45) {
      const n = parseInteger(value);
      if (n !== undefined) consider(new Tag(int(n), Tags.INTEGER), 1 + headSize(n));
      const d = n === undefined ? parseDecimal(value) : undefined;
      if (d)
        consider(
          new Tag([d.exponent, int(d.mantissa)], Tags.DECIMAL),
          2 + headSize(d.exponent) + headSize(d.mantissa),
        );
      if (value.length >= 10) {
        const t = parseTimestamp(value);
        if (t) {
          if (t.zone === null && t.fractionDigits === 0)
            consider(new Tag(int(t.seconds), Tags.EPOCH), 1 + headSize(t.seconds));
          else {
            const parts: Item[] = [int(t.seconds), t.zone];
            if (t.fractionDigits > 0) parts.push(t.fraction, t.fractionDigits);
            const cost = 2 + headSize(t.seconds) + (t.zone === null ? 1 : headSize(t.zone));
            consider(
              new Tag(parts, Tags.DATETIME),
              cost + (t.fractionDigits > 0 ? headSize(t.fraction) + 1 : 0),
            );
          }
        }
        const days = parseDate(value);
        if (days !== undefined) consider(new Tag(days, Tags.DATE), 2 + headSize(days));
      }
    }
    if (value.length >= 8) {
      const hex = parseHex(value);
      if (hex) consider(new Tag(hex, Tags.BASE16), 1 + headSize(hex.length) + hex.length);
      const uuid = value.length === 36 ? parseUuid(value) : undefined;
      if (uuid) consider(new Tag(uuid, Tags.UUID), 2 + 1 + 16);
      const b64 = hex ? undefined : parseBase64(value);
      if (b64) consider(new Tag(b64, Tags.BASE64), 1 + headSize(b64.length) + b64.length);
    }
    return best;
  }
}

/**
 * Stateless encoder: every frame stands alone. Strings repeated within one stanza are inserted into a
 * frame-local table on first use and referenced afterwards.
 */
export class StatelessEncoder extends FrameEncoder {
  private frameTable: EncoderTable;
  private repeats = new Map<string, number>();

  constructor(options: CodecOptions = {}) {
    super(options);
    this.frameTable = new EncoderTable(this.limits);
  }

  protected get table(): EncoderTable {
    return this.frameTable;
  }
  protected get writesBase(): boolean {
    return false;
  }

  protected override prepare(stanza: XElement): void {
    this.frameTable = new EncoderTable(this.limits);
    this.repeats = new Map();
    this.countStrings(stanza, this.defaultNs);
  }

  private countStrings(e: XElement, inheritedNs: string): void {
    const seen = (s: string): void => {
      this.repeats.set(s, (this.repeats.get(s) ?? 0) + 1);
    };
    const qid = this.dict.qnameGlobal(e.ns, e.name);
    const value = (s: string, aid: number | undefined): void => {
      if (this.dict.valueId(s, qid, aid) !== undefined) return;
      seen(s);
      const jid = splitJid(s);
      if (jid) {
        seen(jid.domain);
        if (jid.local !== null) seen(jid.local);
        if (jid.resource !== null) seen(jid.resource);
      }
    };
    if (qid === undefined) {
      if (e.ns !== inheritedNs && this.dict.namespaceId(e.ns) === undefined) seen(e.ns);
      seen(e.name);
    }
    for (const a of e.attrs) {
      const aid = this.dict.attributeGlobal(a.ns, a.name);
      if (aid === undefined) seen(a.name);
      value(a.value, aid);
    }
    for (const c of e.children) {
      if (typeof c === "string") value(c, -1);
      else this.countStrings(c, e.ns);
    }
  }

  protected shouldInsert(value: string, literalCost: number): boolean {
    return literalCost > 2 && (this.repeats.get(value) ?? 0) >= 2;
  }

  protected shouldSplitJid(value: string): boolean {
    const jid = splitJid(value);
    if (!jid) return false;
    const reusable = (s: string | null): boolean =>
      s !== null && ((this.repeats.get(s) ?? 0) >= 2 || this.reference(s) !== undefined);
    return reusable(jid.domain) || reusable(jid.local) || reusable(jid.resource);
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
  protected get writesBase(): boolean {
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

  protected shouldInsert(_value: string, literalCost: number): boolean {
    return literalCost > 2;
  }

  protected shouldSplitJid(value: string): boolean {
    return splitJid(value) !== undefined;
  }
}
