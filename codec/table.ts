/**
 * The session table (FORMAT.md §6), QPACK-style (RFC 9204 §2.1.1): an encoder references an entry only
 * after the peer acknowledged the frame that inserted it, or later in the frame that inserts it. Indices
 * are assigned by the encoder, carried in the frame (base + pre-order position), and never reused within
 * a session, so a lost, duplicated or reordered frame can never change what a later frame means.
 *
 * An entry is a string or a shape: an element's name and attributes, which later elements reuse with a
 * few attribute values overridden (FORMAT.md §6.3).
 */
import type { StaticDictionary } from "./dictionary/index.js";
import { CodecError } from "./errors.js";
import type { CodecLimits } from "./limits.js";
import type { XAttr, XElement } from "./tree.js";

/** An element head remembered by the session table. */
export interface Shape {
  readonly kind: "shape";
  readonly ns: string;
  readonly name: string;
  /** Global qname id, the context of the attribute and value ids in overrides. */
  readonly qid: number | undefined;
  readonly attrs: readonly XAttr[];
  /** Global attribute ids, parallel to `attrs` (undefined for attributes outside the dictionary). */
  readonly aids: readonly (number | undefined)[];
}

/** A whole element (with its children) remembered by the session table (FORMAT.md §6.4). */
export interface Subtree {
  readonly kind: "subtree";
  readonly element: XElement;
  /** Nodes and bytes the element expands to, for the decoder's limits. */
  readonly nodes: number;
  readonly bytes: number;
  /**
   * Encoder side: inserted as a template (FORMAT.md §6.6), so the table finds it by structure. Kept with
   * the entry when a gateway saves it, so a restored encoder finds the same templates.
   */
  readonly template?: true;
}

export type Entry = string | Shape | Subtree;

/** An exact identity of an element and everything below it. */
export function treeKey(e: XElement): string {
  let key = `<${e.ns}\u0001${e.name}`;
  for (const a of e.attrs) key += `\u0001${a.ns}\u0002${a.name}\u0002${a.value}`;
  for (const c of e.children) key += typeof c === "string" ? `\u0003${c}` : treeKey(c);
  return `${key}>`;
}

/** Nodes (elements, attributes, texts) and bytes (names, values, texts) of a subtree. */
export function treeSize(e: XElement): { nodes: number; bytes: number } {
  let nodes = 1 + e.attrs.length;
  let bytes = utf8Length(e.name);
  for (const a of e.attrs) bytes += utf8Length(a.name) + utf8Length(a.value);
  for (const c of e.children) {
    if (typeof c === "string") {
      nodes++;
      bytes += utf8Length(c);
    } else {
      const inner = treeSize(c);
      nodes += inner.nodes;
      bytes += inner.bytes;
    }
  }
  return { nodes, bytes };
}

/**
 * A stanza as a template (FORMAT.md §6.6): its structure without values as `key`, and its values — every
 * attribute value and non-empty text, in document order (an element's attributes, then its children) —
 * as `slots`. `owners[i]` is the element slot `i` belongs to and `attrs[i]` the attribute's position in it
 * (-1: a text), which give the value's dictionary context.
 */
export interface Template {
  readonly key: string;
  /** Elements, attributes and texts (FORMAT.md §7's nodes). */
  readonly nodes: number;
  readonly slots: string[];
  readonly owners: XElement[];
  readonly attrs: number[];
}

export function templateOf(e: XElement): Template {
  const t: Template = { key: "", nodes: 0, slots: [], owners: [], attrs: [] };
  (t as { key: string }).key = templateWalk(e, t);
  return t;
}

function templateWalk(e: XElement, t: Template): string {
  let key = `<${e.ns}\u0001${e.name}`;
  (t as { nodes: number }).nodes += 1 + e.attrs.length;
  for (let i = 0; i < e.attrs.length; i++) {
    const a = e.attrs[i]!;
    key += `\u0001${a.ns}\u0002${a.name}`;
    t.slots.push(a.value);
    t.owners.push(e);
    t.attrs.push(i);
  }
  for (const c of e.children) {
    if (typeof c !== "string") key += templateWalk(c, t);
    else if (c !== "") {
      // Empty texts are not written, so the peer's copy of the template has none.
      key += "\u0003";
      (t as { nodes: number }).nodes++;
      t.slots.push(c);
      t.owners.push(e);
      t.attrs.push(-1);
    }
  }
  return `${key}>`;
}

/**
 * The dictionary context of slot `i` of template `t` (FORMAT.md §6.6): the global qname id of its
 * element (if the dictionary has one), and the global attribute id for an attribute value (-1: a text).
 */
export function slotContext(
  dict: StaticDictionary,
  t: Template,
  i: number,
): { qid: number | undefined; aid: number | undefined } {
  const owner = t.owners[i]!;
  const at = t.attrs[i]!;
  const qid = dict.qnameGlobal(owner.ns, owner.name);
  return { qid, aid: at < 0 ? -1 : dict.attributeGlobal(owner.attrs[at]!.ns, owner.attrs[at]!.name) };
}

/** The lookup key of a shape: name and attribute names, not values. */
export function shapeKey(ns: string, name: string, attrs: readonly XAttr[]): string {
  let key = `${ns}\u0001${name}`;
  for (const a of attrs) key += `\u0001${a.ns}\u0002${a.name}`;
  return key;
}

/** Bytes an entry counts against maxTableBytes (UTF-16 length is an upper bound on neither side). */
export function entrySize(entry: Entry): number {
  if (typeof entry === "string") return utf8Length(entry);
  if (entry.kind === "subtree") return entry.bytes;
  let n = utf8Length(entry.name);
  for (const a of entry.attrs) n += utf8Length(a.name) + utf8Length(a.value);
  return n;
}

export function utf8Length(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) n += 1;
    else if (c >= 0xd800 && c <= 0xdbff)
      n += 1; // a surrogate pair: 4 bytes for 2 code units
    else n += 2;
  }
  return n;
}

/** Encoder side: assigns indices, tracks which ones the peer has acknowledged. */
export class EncoderTable {
  private next: number;
  private bytes = 0;
  /** Acknowledged strings and the index the peer holds each at (made on first use: a frame table has none). */
  private acked: Map<string, number> | undefined;
  /** Acknowledged shapes by key. */
  // Shapes, subtrees and their keys are created on first use: an idle session never needs them, and a
  // gateway holds an encoder per session (bench session, memory per idle session).
  private ackedShapes: Map<string, Array<{ index: number; shape: Shape }>> | undefined;
  /** Acknowledged subtrees by treeKey. */
  private ackedTrees: Map<string, number> | undefined;
  /** Index → entry for inserts not yet acknowledged. */
  private pending: Map<number, Entry> | undefined;
  /** Tree keys of pending subtree inserts (computed once by the encoder). */
  private pendingKeys: Map<number, string> | undefined;
  /** Every subtree as a template (FORMAT.md §6.6), pending by index and acknowledged by template key. */
  private pendingTemplates: Map<number, Template> | undefined;
  private ackedTemplates: Map<string, Array<{ index: number; template: Template }>> | undefined;
  /** Template key → index of the newest pending subtree with that key. */
  private pendingTemplateKeys: Map<string, number> | undefined;

  /** `aliases`: strings both peers know from the start, acknowledged at indices 0…n-1. */
  constructor(
    private readonly limits: CodecLimits,
    aliases: readonly string[] = [],
  ) {
    if (aliases.length > 0) {
      const acked = new Map<string, number>();
      for (let i = 0; i < aliases.length; i++) if (!acked.has(aliases[i]!)) acked.set(aliases[i]!, i);
      this.acked = acked;
    }
    this.next = aliases.length;
  }

  lookup(value: string): number | undefined {
    return this.acked?.get(value);
  }

  subtree(key: string): number | undefined {
    return this.ackedTrees?.get(key);
  }

  shapes(key: string): readonly { index: number; shape: Shape }[] | undefined {
    return this.ackedShapes?.get(key);
  }

  /** Acknowledged subtrees whose template key is `key`, oldest first. */
  templates(key: string): readonly { index: number; template: Template }[] | undefined {
    return this.ackedTemplates?.get(key);
  }

  /**
   * The newest subtree with template key `key` still waiting for its acknowledgement, if it was inserted
   * among the last `recent` indices: inserting the same template again would only take table space. An
   * older one counts as lost (its frame was refused), so the template may be inserted again. Depends on
   * the table alone, so a restored encoder decides the same way (`restore`).
   */
  templatePending(key: string, recent: number): boolean {
    const index = this.pendingTemplateKeys?.get(key);
    return index !== undefined && this.next - index <= recent;
  }

  /** While set, nothing is inserted (frames that may be lost or reordered freely: NON telemetry). */
  frozen = false;

  get nextIndex(): number {
    return this.next;
  }

  /** Bytes of every entry assigned so far (maxTableBytes). */
  get size(): number {
    return this.bytes;
  }

  /** True when an entry of `size` bytes still fits the limits the decoder enforces. */
  canInsert(size: number): boolean {
    if (this.frozen) return false;
    return this.next < this.limits.maxTableEntries && this.bytes + size <= this.limits.maxTableBytes;
  }

  /** Assigns the next index to `entry` (the caller writes the insert into the frame). */
  insert(entry: Entry, size: number, key?: string, template?: Template): number {
    const index = this.next++;
    this.bytes += size;
    this.pending ??= new Map();
    this.pending.set(index, entry);
    if (key !== undefined) {
      this.pendingKeys ??= new Map();
      this.pendingKeys.set(index, key);
    }
    if (typeof entry !== "string" && entry.kind === "subtree" && entry.template === true) {
      const t = template ?? templateOf(entry.element);
      this.pendingTemplates ??= new Map();
      this.pendingTemplates.set(index, t);
      this.pendingTemplateKeys ??= new Map();
      this.pendingTemplateKeys.set(t.key, index);
    }
    return index;
  }

  /** The peer decoded the frame that carried these inserts: they may be referenced from now on. */
  acknowledge(indices: Iterable<number>): void {
    for (const index of indices) {
      const entry = this.pending?.get(index);
      if (entry === undefined) continue;
      this.pending?.delete(index);
      if (typeof entry === "string") {
        this.acked ??= new Map();
        if (!this.acked.has(entry)) this.acked.set(entry, index);
      } else if (entry.kind === "subtree") {
        const key = this.pendingKeys?.get(index);
        this.pendingKeys?.delete(index);
        this.ackedTrees ??= new Map();
        if (key !== undefined && !this.ackedTrees.has(key)) this.ackedTrees.set(key, index);
        const template = this.pendingTemplates?.get(index);
        if (template !== undefined) {
          this.pendingTemplates!.delete(index);
          if (this.pendingTemplateKeys?.get(template.key) === index)
            this.pendingTemplateKeys.delete(template.key);
          this.ackedTemplates ??= new Map();
          const list = this.ackedTemplates.get(template.key);
          if (list === undefined) this.ackedTemplates.set(template.key, [{ index, template }]);
          else list.push({ index, template });
        }
      } else {
        const key = shapeKey(entry.ns, entry.name, entry.attrs);
        this.ackedShapes ??= new Map();
        const list = this.ackedShapes.get(key) ?? [];
        list.push({ index, shape: entry });
        this.ackedShapes.set(key, list);
      }
    }
  }

  /** The entry a pending (not yet acknowledged) insert holds, to persist it with its frame. */
  pendingEntry(index: number): Entry | undefined {
    return this.pending?.get(index);
  }

  /**
   * Re-creates an insert from a saved copy (a gateway restarting from its store): indices must come
   * in the order they were first assigned, so the table ends up exactly as it was.
   */
  restore(index: number, entry: Entry, acknowledged: boolean): void {
    if (index !== this.next) {
      throw new CodecError("TABLE_CONFLICT", 0, `restore expected entry ${this.next}, got ${index}`);
    }
    const key = typeof entry !== "string" && entry.kind === "subtree" ? treeKey(entry.element) : undefined;
    this.insert(entry, entrySize(entry), key);
    if (acknowledged) this.acknowledge([index]);
  }

  /** Entries assigned but not acknowledged (inserts in frames that are in flight or lost). */
  get pendingCount(): number {
    return this.pending?.size ?? 0;
  }
}

/** Decoder side: holds what the peer's frames inserted, within the same limits. */
export class DecoderTable {
  private readonly entries = new Map<number, Entry>();
  private bytes = 0;
  /** One more than the highest index held: where a frame without an insert base starts inserting. */
  private top = 0;

  constructor(
    private readonly limits: CodecLimits,
    aliases: readonly string[] = [],
  ) {
    aliases.forEach((alias, i) => void this.entries.set(i, alias));
    this.top = aliases.length;
  }

  get(index: number, offset: number): Entry {
    const entry = this.entries.get(index);
    if (entry === undefined) throw new CodecError("UNKNOWN_REF", offset, `table entry ${index} is not held`);
    return entry;
  }

  /** Stores an insert; the same index with the same entry again is a harmless repeat. */
  insert(index: number, entry: Entry, offset: number): boolean {
    const existing = this.entries.get(index);
    if (existing !== undefined) {
      if (!sameEntry(existing, entry)) {
        throw new CodecError("TABLE_CONFLICT", offset, `table entry ${index} holds something else`);
      }
      return false;
    }
    const size = entrySize(entry);
    if (index >= this.limits.maxTableEntries || this.bytes + size > this.limits.maxTableBytes) {
      throw new CodecError("TABLE_FULL", offset, `insert at ${index} exceeds the table limits`);
    }
    this.entries.set(index, entry);
    this.bytes += size;
    if (index >= this.top) this.top = index + 1;
    return true;
  }

  /** Removes entries (undoes the inserts of a frame that failed to decode). */
  remove(indices: readonly number[]): void {
    for (const index of indices) {
      const entry = this.entries.get(index);
      if (entry === undefined) continue;
      this.entries.delete(index);
      this.bytes -= entrySize(entry);
    }
    if (indices.length > 0) {
      this.top = 0;
      for (const k of this.entries.keys()) if (k >= this.top) this.top = k + 1;
    }
  }

  get size(): number {
    return this.entries.size;
  }

  /** Where inserts of a frame without an explicit base start (FORMAT.md §3). */
  get nextIndex(): number {
    return this.top;
  }
}

function sameEntry(a: Entry, b: Entry): boolean {
  if (typeof a === "string" || typeof b === "string") return a === b;
  if (a.kind === "subtree" || b.kind === "subtree") {
    return a.kind === "subtree" && b.kind === "subtree" && treeKey(a.element) === treeKey(b.element);
  }
  if (a.ns !== b.ns || a.name !== b.name || a.attrs.length !== b.attrs.length) return false;
  return a.attrs.every((x, i) => {
    const y = b.attrs[i]!;
    return x.ns === y.ns && x.name === y.name && x.value === y.value;
  });
}
