/**
 * Stanza tree → cxmpp frame (FORMAT.md). Writes the frame's CBOR directly into a growable byte buffer
 * (RFC 8949 preferred serialization: shortest heads, definite lengths, attribute maps in document
 * order). In every string position it takes the cheapest of: a contextual dictionary id, a session
 * table reference, a typed binary value, UTF-8 text or a Huffman literal — and inserts strings (and, in
 * session mode, element shapes) worth remembering.
 *
 * Performance notes (benchmark: cxmpp bench codec, StatelessEncoder over the visible corpus,
 * compared with ltx's `parse` of the same XML). The encoder used to build an Item tree (arrays, Maps,
 * cbor-x Tags) and serialise it with cbor-x; it now writes each value as soon as it is chosen, which
 * the format allows because the order in which choices are made (and table indices assigned,
 * FORMAT.md §6.1) is exactly the order in which the values appear in the frame. The bytes are the ones
 * cbor-x wrote (the test vectors pin them). Everything about a string that does not depend on where it
 * stands — UTF-8 length, dictionary value id, JID split, cheapest literal — is memoised per distinct
 * string in a bounded literal memo (see `clearLiteralCache`).
 */
import {
  MAJOR_ARRAY,
  MAJOR_BYTES,
  MAJOR_MAP,
  MAJOR_TAG,
  MAJOR_TEXT,
  SIMPLE_FALSE,
  SIMPLE_NULL,
} from "./cbor-reader.js";
import { DICTIONARY_V1, type StaticDictionary } from "./dictionary/index.js";
import { CodecError, overLimit } from "./errors.js";
import type { HuffmanCode } from "./huffman.js";
import { type CodecLimits, resolveLimits } from "./limits.js";
import {
  EncoderTable,
  type Entry,
  type Shape,
  shapeKey,
  slotContext,
  type Template,
  templateOf,
  treeKey,
  treeSize,
  utf8Length,
} from "./table.js";
import { JABBER_CLIENT, type XAttr, type XElement } from "./tree.js";
import {
  deltaOf,
  isDeltaBase,
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
import { utf8EncodeInto } from "./utf8.js";
import {
  headSize,
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

export interface CodecOptions {
  /** Default: DICTIONARY_V1. */
  readonly dictionary?: StaticDictionary;
  readonly limits?: Readonly<Partial<CodecLimits>>;
  /** Namespace the root inherits (the stream's default namespace). Default `jabber:client`. */
  readonly defaultNs?: string;
  /**
   * Whether the coder may use its dictionary's shared literal memo (the encoder's: see
   * `clearLiteralCache`; the decoder's: 1,024 recently decoded Huffman literals, ~68 KB of a tiny
   * node's heap). Default true; false computes every literal afresh (same bytes and trees, slower).
   */
  readonly literalCache?: boolean;
}

export interface SessionCodecOptions extends CodecOptions {
  /**
   * Strings both peers know from the start (the node's JID, its gateway domain, usual peers): table
   * entries 0…n-1, acknowledged from the outset. Both sides must use the same list.
   */
  readonly aliases?: readonly string[];
  /**
   * Leave the insert base out while every insert so far is acknowledged (FORMAT.md §3, §6.5): 1-3
   * bytes less per frame. Only for a receiver that never decodes a frame twice — a late duplicate of
   * such a frame would insert at the wrong place. The cxmpp session layer guarantees it (sequence
   * numbers, PROTOCOL.md §3); the default (false) is safe against duplicates too.
   */
  readonly implicitBase?: boolean;
  /**
   * Frame format 2 (FORMAT.md §6.6): a stanza is inserted whole as a template and later stanzas of the
   * same structure are written as a reference to it with the values that differ, numbers and times as
   * deltas. Default true; false writes only what format 1 decoders read (a peer that said format 1).
   */
  readonly templates?: boolean;
}

export interface EncodedFrame {
  readonly bytes: Uint8Array;
  /** Table indices this frame inserted: pass them to `acknowledge` once the peer has decoded it. */
  readonly inserted: readonly number[];
}

// ---------------------------------------------------------------------------------------------------
// CBOR writer. One output buffer shared by all encoders: encoding is synchronous and never re-entered,
// so one is enough and a gateway with many sessions does not hold a work area per session. Grown on
// demand; `encode` copies the finished frame out of it.

let out = new Uint8Array(4096);
let pos = 0;

function grow(min: number): void {
  let size = out.length * 2;
  while (size < min) size *= 2;
  const next = new Uint8Array(size);
  next.set(out.subarray(0, pos));
  out = next;
}

/** A CBOR head (RFC 8949 §3): major type and argument, in the shortest form (preferred serialization). */
function writeHead(major: number, n: number): void {
  if (pos + 9 > out.length) grow(pos + 9);
  const m = major << 5;
  if (n < 24) out[pos++] = m | n;
  else if (n < 256) {
    out[pos++] = m | 24;
    out[pos++] = n;
  } else if (n < 65_536) {
    out[pos++] = m | 25;
    out[pos++] = n >>> 8;
    out[pos++] = n & 0xff;
  } else if (n < 4_294_967_296) {
    out[pos++] = m | 26;
    out[pos++] = n >>> 24;
    out[pos++] = (n >>> 16) & 0xff;
    out[pos++] = (n >>> 8) & 0xff;
    out[pos++] = n & 0xff;
  } else {
    // Safe integers only (every caller's value is one): split into 32-bit halves.
    const hi = Math.floor(n / 4_294_967_296);
    const lo = n >>> 0;
    out[pos++] = m | 27;
    out[pos++] = hi >>> 24;
    out[pos++] = (hi >>> 16) & 0xff;
    out[pos++] = (hi >>> 8) & 0xff;
    out[pos++] = hi & 0xff;
    out[pos++] = lo >>> 24;
    out[pos++] = (lo >>> 16) & 0xff;
    out[pos++] = (lo >>> 8) & 0xff;
    out[pos++] = lo & 0xff;
  }
}

/** A safe integer as CBOR major type 0 or 1. */
function writeInt(n: number): void {
  if (n >= 0) writeHead(0, n);
  else writeHead(1, -1 - n);
}

function writeByte(b: number): void {
  if (pos >= out.length) grow(pos + 1);
  out[pos++] = b;
}

function writeRaw(src: Uint8Array, length: number): void {
  if (pos + length > out.length) grow(pos + length);
  if (length < 16) for (let i = 0; i < length; i++) out[pos + i] = src[i]!;
  else out.set(length === src.length ? src : src.subarray(0, length), pos);
  pos += length;
}

function writeByteString(src: Uint8Array): void {
  writeHead(2, src.length);
  writeRaw(src, src.length);
}

/**
 * Finished frames are handed out as views into shared 8 KiB slabs, as Node.js pools small buffers: a
 * fresh Uint8Array of more than 64 bytes costs an off-heap backing store (~0.3-0.5 µs, over 10% of
 * encode time in cxmpp bench codec). Each frame owns its own range, so frames never alias; the
 * price is that a frame's `buffer` is the slab (mind `byteOffset`; do not transfer or detach it), and
 * a retained frame keeps its slab alive. 8 KiB, not 32: a slab per ~50 frames costs no measurable
 * encode time (A/B over the visible corpus), and the 24 KiB less was 5% of a tiny node's peak heap.
 */
const SLAB_BYTES = 8_192;
/** Larger frames get a buffer of their own. */
const SLAB_MAX_FRAME = 1024;
/** Made by the first frame (a peer that only decodes never holds one): full until then. */
let slab = new Uint8Array(0);
let slabPos = SLAB_BYTES;

/** A new array holding `out[from…to)` (a slab view for small frames). */
function takeFrame(from: number, to: number): Uint8Array {
  const length = to - from;
  if (length > SLAB_MAX_FRAME) return out.slice(from, to);
  if (slabPos + length > SLAB_BYTES) {
    slab = new Uint8Array(SLAB_BYTES);
    slabPos = 0;
  }
  const start = slabPos;
  slabPos += length;
  const target = slab;
  for (let i = 0; i < length; i++) target[start + i] = out[from + i]!;
  return target.subarray(start, start + length);
}

const CBOR_NULL = 0xe0 | SIMPLE_NULL;
const CBOR_FALSE = 0xe0 | SIMPLE_FALSE;

// ---------------------------------------------------------------------------------------------------
// Literals: the cheapest self-contained form of a string, and the literal memo.

// Scratch space shared by all encoders (see the output buffer). Grown on demand.
let scratchBytes = new Uint8Array(256);
let scratchSymbols = new Uint16Array(256);
let scratchCost = new Uint32Array(257);
let scratchBack = new Uint16Array(257);

/** UTF-8 of `s` into `scratchBytes` (valid until the next call); returns the byte length. */
function utf8Into(s: string): number {
  const n = s.length;
  if (n * 3 > scratchBytes.length) scratchBytes = new Uint8Array(n * 3 + 64);
  const bytes = scratchBytes;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) return utf8EncodeInto(s, bytes, 0);
    bytes[i] = c;
  }
  return n;
}

function ensureSymbolScratch(n: number): void {
  if (n + 1 > scratchCost.length) {
    scratchSymbols = new Uint16Array(n + 64);
    scratchCost = new Uint32Array(n + 65);
    scratchBack = new Uint16Array(n + 65);
  }
}

/**
 * A text string as cbor-x wrote it, for byte-identical frames: strings under 64 UTF-16 units were
 * converted code unit by code unit (a lone surrogate becomes its 3-byte form), longer ones with the
 * platform's UTF-8 encoder (a lone surrogate becomes U+FFFD, as codec/utf8.ts does) — what `utf8Into` left
 * in `scratchBytes`. Only non-ASCII strings under 64 units can differ, so only they take the slow path.
 */
function writeText(s: string, n: number): void {
  const len = s.length;
  if (n === len || len >= 0x40) {
    writeHead(MAJOR_TEXT, n);
    writeRaw(scratchBytes, n);
    return;
  }
  let size = 0;
  for (let i = 0; i < len; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) size += 1;
    else if (c < 0x800) size += 2;
    else if ((c & 0xfc00) === 0xd800 && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      size += 4;
      i++;
    } else size += 3;
  }
  writeHead(MAJOR_TEXT, size);
  if (pos + size > out.length) grow(pos + size);
  for (let i = 0; i < len; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) out[pos++] = c;
    else if (c < 0x800) {
      out[pos++] = (c >> 6) | 0xc0;
      out[pos++] = (c & 0x3f) | 0x80;
    } else if ((c & 0xfc00) === 0xd800 && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      c = 0x10000 + ((c & 0x03ff) << 10) + (s.charCodeAt(i + 1) & 0x03ff);
      i++;
      out[pos++] = (c >> 18) | 0xf0;
      out[pos++] = ((c >> 12) & 0x3f) | 0x80;
      out[pos++] = ((c >> 6) & 0x3f) | 0x80;
      out[pos++] = (c & 0x3f) | 0x80;
    } else {
      out[pos++] = (c >> 12) | 0xe0;
      out[pos++] = ((c >> 6) & 0x3f) | 0x80;
      out[pos++] = (c & 0x3f) | 0x80;
    }
  }
}

/** Largest stanza inserted whole as a template (FORMAT.md §6.6): telemetry, not documents. */
const TEMPLATE_MAX_NODES = 48;
const TEMPLATE_MAX_BYTES = 512;
/**
 * Templates are inserted only while the table is less than this full. A stanza's template takes all its
 * bytes: on the corpus (one session per XEP, 16 KB tables) inserting every stanza filled the tables, and
 * strings inserted later were missing (mean +1.0 B a stanza); at a quarter, median 31 → 30 B and mean
 * level (cxmpp bench codec --session). Telemetry's templates come first, when the table is empty.
 */
const TEMPLATE_TABLE_SHARE = 0.25;
/** Acknowledged templates of one structure compared with a stanza (the newest). */
const TEMPLATE_CANDIDATES = 4;
/**
 * A template waiting for its acknowledgement is not inserted again unless it is more than this many
 * indices old (its frame was then most likely refused, and the session would go without it).
 */
const TEMPLATE_RECENT = 64;

/** Whether `e` has more than `max` nodes (elements, attributes, texts), counting no further than that. */
function nodesAbove(e: XElement, max: number): boolean {
  let left = max;
  const walk = (x: XElement): boolean => {
    left -= 1 + x.attrs.length;
    for (const c of x.children) {
      if (typeof c === "string") left--;
      else if (walk(c)) return true;
      if (left < 0) return true;
    }
    return left < 0;
  };
  return walk(e);
}

/** Values that change from stanza to stanza (numbers, times): never worth a table entry. */
const VOLATILE = /^[-+0-9.:TZ]*$/;

/**
 * What the encoder knows about one distinct string, whatever position it stands in. Memoised: gateway
 * traffic repeats JIDs, ids and values, and the stateless encoder meets every string twice (counting
 * pass, then writing).
 */
class Lit {
  /** Held by the memo (its per-frame count lives here) rather than made for one use. */
  cached: boolean;
  /** UTF-8 length (table and limit accounting). */
  readonly size: number;
  /** Global dictionary value id, -1 when the string is not a dictionary value. */
  readonly g: number;
  /** The literal's CBOR item and its size as the cost rule counts it; undefined until computed. */
  bytes: Uint8Array | undefined = undefined;
  cost = 0;
  /** splitJid of the string; null until computed. */
  jid: JidParts | undefined | null = null;
  /** VOLATILE.test of the string: -1 until computed, else 0 or 1. */
  volatile = -1;
  /** Last frame that looked this entry up: the memo never evicts an entry the current frame uses. */
  used = 0;
  /** Clock bit (second chance before eviction). */
  ref = false;
  /** Stateless encoder: occurrences in frame `countFrame`. */
  countFrame = 0;
  count = 0;
  /** Evicted from the memo (or the memo was cleared): a holder must look the string up again. */
  dead = false;
  /**
   * The memoised Lits of the JID parts [local, domain, resource], held to skip their lookups (a JID
   * meets its parts up to three times per frame). Only cached Lits are held; see `FrameEncoder.part`.
   */
  parts: [Lit | undefined, Lit | undefined, Lit | undefined] | undefined = undefined;

  constructor(
    readonly value: string,
    dict: StaticDictionary,
    cached: boolean,
  ) {
    this.cached = cached;
    this.size = utf8Length(value);
    this.g = dict.valueGlobal(value) ?? -1;
  }
}

function jidOf(lit: Lit): JidParts | undefined {
  if (lit.jid === null) lit.jid = splitJid(lit.value);
  return lit.jid;
}

function isVolatile(lit: Lit): boolean {
  if (lit.volatile < 0) lit.volatile = VOLATILE.test(lit.value) ? 1 : 0;
  return lit.volatile === 1;
}

/**
 * Entries of each literal memo: enough for a gateway's working set of JIDs, ids and values. It was
 * 4096, below the ~5,000 distinct short strings of the visible corpus: clock eviction over a cyclic
 * stream then missed on most lookups even when "warm" (warm encode +35% in cxmpp bench codec (cold and warm rounds) at
 * 16384). An entry is ~200-300 bytes, so a full memo holds a few MB.
 */
const MEMO_ENTRIES = 16384;
/** Longest string (UTF-16 units) memoised: longer ones are message bodies that rarely recur. */
const MEMO_MAX_CHARS = 64;

/** Bumped by `clearLiteralCache`: a memo from an older epoch empties itself before its next frame. */
let memoEpoch = 0;
/** Frames encoded so far, by any encoder (a frame's identity for the memo and the repeat counts). */
let frameCounter = 0;

/**
 * A bounded map string → Lit with clock (second chance) eviction, one per dictionary (values, ids and
 * Huffman literals depend on it).
 */
class LiteralMemo {
  private readonly map = new Map<string, Lit>();
  private readonly ring: Lit[] = [];
  private hand = 0;
  private epoch = memoEpoch;
  /** A frame during which every entry was in use: it adds no more entries. */
  private fullFrame = 0;

  constructor(
    private readonly dict: StaticDictionary,
    private readonly capacity: number,
  ) {}

  /** Called at the start of each frame. */
  sync(): void {
    if (this.epoch === memoEpoch) return;
    this.epoch = memoEpoch;
    for (const lit of this.ring) lit.dead = true;
    this.map.clear();
    this.ring.length = 0;
    this.hand = 0;
  }

  get(value: string, frame: number): Lit {
    if (value.length > MEMO_MAX_CHARS) return new Lit(value, this.dict, false);
    const hit = this.map.get(value);
    if (hit !== undefined) {
      hit.used = frame;
      hit.ref = true;
      return hit;
    }
    const lit = new Lit(value, this.dict, true);
    lit.used = frame;
    if (!this.#admit(lit, frame)) lit.cached = false;
    return lit;
  }

  #admit(lit: Lit, frame: number): boolean {
    const capacity = this.capacity;
    if (capacity === 0 || this.fullFrame === frame) return false;
    if (this.ring.length < capacity) {
      this.ring.push(lit);
      this.map.set(lit.value, lit);
      return true;
    }
    // Two sweeps clear every second-chance bit, so an evictable entry is found if there is one.
    for (let steps = 0; steps < 2 * capacity; steps++) {
      const victim = this.ring[this.hand]!;
      if (victim.used !== frame) {
        if (victim.ref) victim.ref = false;
        else {
          this.map.delete(victim.value);
          victim.dead = true;
          this.ring[this.hand] = lit;
          this.map.set(lit.value, lit);
          this.hand = (this.hand + 1) % capacity;
          return true;
        }
      }
      this.hand = (this.hand + 1) % capacity;
    }
    // Everything is used by this frame (a stanza of over 4,096 distinct short strings): such a string
    // stays uncached for the rest of the frame, consistently (nothing is evicted mid-frame).
    this.fullFrame = frame;
    return false;
  }
}

/** Shared empty start of the planning arrays; growing replaces it, nothing ever writes into it. */
const NO_INTS = new Int32Array(0);

/** A copy of `a` with room for at least `extra` more entries. */
function grownInt32(a: Int32Array, extra = 1): Int32Array {
  const next = new Int32Array(Math.max(a.length * 2, a.length + extra));
  next.set(a);
  return next;
}

const memos = new WeakMap<StaticDictionary, LiteralMemo>();

function memoFor(dict: StaticDictionary, enabled: boolean): LiteralMemo {
  if (!enabled) return new LiteralMemo(dict, 0);
  let memo = memos.get(dict);
  if (memo === undefined) {
    memo = new LiteralMemo(dict, MEMO_ENTRIES);
    memos.set(dict, memo);
  }
  return memo;
}

/**
 * Empties the literal memo of every encoder (before their next frame). Output bytes never depend on
 * it; benchmarks call it to measure cold encoding (cxmpp bench codec reports cold and warm).
 */
export function clearLiteralCache(): void {
  memoEpoch++;
}

/**
 * Computes `lit.bytes` and `lit.cost`: the cheapest self-contained form of the string (ties go to the
 * earlier candidate). Written at the current end of the output buffer, copied out, then dropped.
 */
function computeLiteral(lit: Lit, huffman: HuffmanCode): void {
  const start = pos;
  lit.cost = writeLiteral(lit.value, huffman);
  lit.bytes = out.slice(start, pos);
  pos = start;
}

const TEXT = 0;
const HUFFMAN = 1;

/** Writes the cheapest form of `value`; returns its cost (its size in bytes). */
function writeLiteral(value: string, huffman: HuffmanCode): number {
  const n = utf8Into(value);
  let kind = TEXT;
  let cost = headSize(n) + n;
  let hcount = 0;
  let hsize = 0;
  if (n > 1) {
    ensureSymbolScratch(n);
    hcount = huffman.planInto(scratchBytes, n, scratchSymbols, scratchCost, scratchBack);
    hsize = (scratchCost[n]! + 7) >>> 3;
    const hcost = headSize(hsize) + hsize;
    if (hcost < cost) {
      kind = HUFFMAN;
      cost = hcost;
    }
  }
  const c0 = value.charCodeAt(0);
  if ((c0 >= 48 && c0 <= 57) || c0 === 45) {
    const i = parseInteger(value);
    if (i !== undefined && 1 + headSize(i) < cost) {
      writeHead(MAJOR_TAG, TAG_INTEGER);
      writeInt(i);
      return 1 + headSize(i);
    }
    const d = i === undefined ? parseDecimal(value) : undefined;
    if (d) {
      const scale = -d.exponent;
      const packed = Math.abs(d.mantissa) * 16 + scale;
      if (scale < 16 && Number.isSafeInteger(packed)) {
        const x = d.mantissa < 0 ? -packed : packed;
        const c = 1 + headSize(x);
        if (c < cost) {
          writeHead(MAJOR_TAG, TAG_PACKED_DECIMAL);
          writeInt(x);
          return c;
        }
      } else {
        const c = 2 + headSize(d.exponent) + headSize(d.mantissa);
        if (c < cost) {
          writeHead(MAJOR_TAG, TAG_DECIMAL);
          writeHead(MAJOR_ARRAY, 2);
          writeInt(d.exponent);
          writeInt(d.mantissa);
          return c;
        }
      }
    }
    if (n >= 10) {
      const t = parseTimestamp(value);
      if (t) {
        if (t.zone === null && t.fractionDigits === 0) {
          const c = 1 + headSize(t.seconds);
          if (c < cost) {
            writeHead(MAJOR_TAG, TAG_EPOCH);
            writeInt(t.seconds);
            return c;
          }
        } else {
          let c = 2 + headSize(t.seconds) + (typeof t.zone === "number" ? headSize(t.zone) : 1);
          if (t.fractionDigits > 0) c += headSize(t.fraction) + 1;
          if (c < cost) {
            writeHead(MAJOR_TAG, TAG_DATETIME);
            writeHead(MAJOR_ARRAY, t.fractionDigits > 0 ? 4 : 2);
            writeInt(t.seconds);
            if (t.zone === null) writeByte(CBOR_NULL);
            else if (t.zone === false) writeByte(CBOR_FALSE);
            else writeInt(t.zone);
            if (t.fractionDigits > 0) {
              writeInt(t.fraction);
              writeInt(t.fractionDigits);
            }
            return c;
          }
        }
      }
      const days = n === 10 ? parseDate(value) : undefined;
      if (days !== undefined && 2 + headSize(days) < cost) {
        writeHead(MAJOR_TAG, TAG_DATE);
        writeInt(days);
        return 2 + headSize(days);
      }
    }
  }
  let blob: Uint8Array | undefined;
  let blobTag = 0;
  if (n >= 8) {
    // Binary forms are parsed only when their size (a lower bound for base64) could beat `cost`: most
    // strings are shorter as Huffman literals, and the parses showed in cold profiles
    // (cxmpp bench codec (cold and warm rounds)). A string that is hex is base64 too, but 3n/4 bytes lose to n/2 ones,
    // so skipping the hex parse never lets base64 win where it did not.
    const half = n >>> 1;
    const hex = n % 2 === 0 && 1 + headSize(half) + half < cost ? parseHex(value) : undefined;
    if (hex && 1 + headSize(hex.length) + hex.length < cost) {
      blob = hex;
      blobTag = TAG_BASE16;
      cost = 1 + headSize(hex.length) + hex.length;
    }
    const uuid = n === 36 && 19 < cost ? parseUuid(value) : undefined;
    if (uuid) {
      writeHead(MAJOR_TAG, TAG_UUID);
      writeByteString(uuid);
      return 19;
    }
    const least = (n >>> 2) * 3 - 2;
    const b64 = !hex && n % 4 === 0 && 1 + headSize(least) + least < cost ? parseBase64(value) : undefined;
    if (b64 && 1 + headSize(b64.length) + b64.length < cost) {
      blob = b64;
      blobTag = TAG_BASE64;
      cost = 1 + headSize(b64.length) + b64.length;
    }
  }
  if (blob) {
    writeHead(MAJOR_TAG, blobTag);
    writeByteString(blob);
  } else if (kind === HUFFMAN) {
    writeHead(MAJOR_BYTES, hsize);
    if (pos + hsize > out.length) grow(pos + hsize);
    pos = huffman.emit(scratchSymbols, hcount, out, pos);
  } else writeText(value, n);
  return cost;
}

// ---------------------------------------------------------------------------------------------------

/** Largest subtree (elements + attributes + texts) worth a table entry; larger ones rarely recur whole. */
const SUBTREE_MAX_NODES = 16;

/** A known shape an element reuses, with how many attribute values differ from it. */
interface ShapeMatch {
  readonly index: number;
  readonly shape: Shape;
  readonly diffs: number;
}

/**
 * What one frame needs while it is built, shared by every encoder: encoding is synchronous and never
 * re-entered, and a gateway holds two encoders per session — per-instance maps made up most of an
 * idle session's memory (bench session: ~1.2 KB of 2.4 KB per SessionEncoder).
 */
/** Strings inserted by the frame being built (referenceable later in the same frame). */
const frameInserts = new Map<string, number>();
/** Shapes inserted by the frame being built. */
const frameShapes = new Map<string, Array<{ index: number; shape: Shape }>>();
/** Subtrees inserted by the frame being built. */
const frameTrees = new Map<string, number>();

/** Shared machinery of the stateless and session encoders. */
abstract class FrameEncoder {
  protected readonly dict: StaticDictionary;
  protected readonly limits: CodecLimits;
  protected readonly defaultNs: string;
  private readonly memo: LiteralMemo;
  /** Identity of the frame being built (see `frameCounter`). */
  protected frame = 0;
  // Fields, not getters the subclasses override: read for every element and string.
  /** The table frames are written against: the session's, or (stateless) the frame's own. */
  protected table: EncoderTable;
  /** Session mode: frames name their insert base and element shapes are remembered. */
  protected readonly sessionMode: boolean;
  /** Whether stanzas become templates and instances of them (SessionCodecOptions.templates). */
  protected readonly templating: boolean;
  /** Whether the base may be left out when nothing is pending (SessionCodecOptions.implicitBase). */
  protected readonly implicitBase: boolean;
  /** Depth of subtree inserts being written: subtrees inside them are not inserted again. */
  private insideSubtree = 0;
  private inserted: number[] = [];
  private nodes = 0;

  constructor(options: SessionCodecOptions, sessionMode: boolean) {
    this.dict = options.dictionary ?? DICTIONARY_V1;
    this.limits = resolveLimits(options.limits);
    this.defaultNs = options.defaultNs ?? JABBER_CLIENT;
    this.memo = memoFor(this.dict, options.literalCache !== false);
    this.table = new EncoderTable(this.limits, sessionMode ? (options.aliases ?? []) : []);
    this.sessionMode = sessionMode;
    this.templating = sessionMode && options.templates !== false;
    this.implicitBase = sessionMode && options.implicitBase === true;
  }

  /** Whether `lit` (not yet referenceable, `cost` bytes as a literal) should be inserted now. */
  protected abstract shouldInsert(lit: Lit, cost: number): boolean;
  /** Whether to write JID `lit` as parts (so that shared domains/locals become references). */
  protected abstract shouldSplitJid(lit: Lit, jid: JidParts): boolean;

  encode(stanza: XElement): EncodedFrame {
    this.frame = ++frameCounter;
    this.memo.sync();
    // Map.clear allocates a fresh backing store even when the map is empty: skip it then (GC time).
    if (frameInserts.size > 0) frameInserts.clear();
    if (frameShapes.size > 0) frameShapes.clear();
    if (frameTrees.size > 0) frameTrees.clear();
    this.insideSubtree = 0;
    this.inserted = [];
    this.nodes = 0;
    pos = 0;
    const base = this.table.nextIndex;
    // The base may be left out when the peer holds every entry assigned so far (nothing pending): it
    // then starts its inserts where its own table ends (FORMAT.md §3). Saves 1-3 bytes per frame.
    const implicitBase = this.implicitBase && this.table.pendingCount === 0;
    this.prepare(stanza);
    if (this.templating) this.#root(stanza);
    else this.#elementArray(stanza, this.defaultNs, 1);
    let bytes: Uint8Array;
    if (this.sessionMode && this.inserted.length > 0 && !implicitBase) {
      // The insert base goes first (FORMAT.md §6.1): write the body again after it.
      const end = pos;
      writeHead(0, base);
      writeRaw(out, end);
      bytes = takeFrame(end, pos);
    } else {
      bytes = takeFrame(0, pos);
    }
    pos = 0;
    if (bytes.length > this.limits.maxFrameBytes) {
      throw overLimit(bytes.length, `frame of ${bytes.length} bytes exceeds maxFrameBytes`);
    }
    return { bytes, inserted: this.inserted };
  }

  /** Hook before a frame is built (the stateless encoder counts repeats). */
  protected prepare(_stanza: XElement): void {}

  // Where writing an element gets its dictionary ids and Lits. The stateless encoder overrides these
  // with what its counting pass looked up; they live there, not here, so that a session encoder (a
  // tiny node's, or one per session on a gateway) carries none of that pass.

  /** The global qname id of `e`, whose head is written next. */
  protected qnameOf(e: XElement): number | undefined {
    return this.dict.qnameGlobal(e.ns, e.name);
  }

  /** The global id of attribute `a`, the `i`th of the element `qnameOf` was last asked about. */
  protected attributeOf(a: XAttr, _i: number): number | undefined {
    return this.dict.attributeGlobal(a.ns, a.name);
  }

  /**
   * The Lit already looked up for string `k` of the element `qnameOf` was last asked about (0 its
   * namespace, 1 its name; 2 + 3i, 3 + 3i, 4 + 3i the name, namespace and value of attribute i), if any.
   */
  protected plannedLit(_k: number): Lit | undefined {
    return undefined;
  }

  /** The Lit already looked up for the next text child (called for each one, empty ones too), if any. */
  protected plannedText(): Lit | undefined {
    return undefined;
  }

  /** What the encoder knows about `value` (memoised). */
  protected lit(value: string): Lit {
    return this.memo.get(value, this.frame);
  }

  /** The Lit of part `k` (0 local, 1 domain, 2 resource) of JID `lit`, whose text is `value`. */
  protected part(lit: Lit, k: 0 | 1 | 2, value: string): Lit {
    const held = lit.parts?.[k];
    if (held !== undefined && !held.dead) {
      held.used = this.frame;
      held.ref = true;
      return held;
    }
    const part = this.memo.get(value, this.frame);
    // Hold only memoised Lits: an uncached one stands for no entry, and the next lookup may find one.
    if (part.cached && lit.cached) {
      if (lit.parts === undefined) lit.parts = [undefined, undefined, undefined];
      lit.parts[k] = part;
    }
    return part;
  }

  /**
   * An element in session mode may be a reference to an identical earlier subtree, or become one
   * (FORMAT.md §6.4); otherwise it is written as an array.
   */
  #element(e: XElement, inheritedNs: string, depth: number): void {
    if (!this.sessionMode || depth < 2 || e.children.length === 0) {
      this.#elementArray(e, inheritedNs, depth);
      return;
    }
    const key = treeKey(e);
    const known = this.table.subtree(key) ?? frameTrees.get(key);
    if (known !== undefined) {
      const size = treeSize(e);
      this.nodes += size.nodes;
      writeInt(-1 - known);
      return;
    }
    if (this.insideSubtree > 0) {
      this.#elementArray(e, inheritedNs, depth);
      return;
    }
    const size = treeSize(e);
    if (size.nodes > SUBTREE_MAX_NODES || !this.table.canInsert(size.bytes)) {
      this.#elementArray(e, inheritedNs, depth);
      return;
    }
    // Pre-order numbering (FORMAT.md §6.1): the subtree is numbered before anything inside it.
    const index = this.table.insert(
      { kind: "subtree", element: e, nodes: size.nodes, bytes: size.bytes },
      size.bytes,
      key,
    );
    this.inserted.push(index);
    frameTrees.set(key, index);
    this.insideSubtree++;
    try {
      writeHead(MAJOR_TAG, TAG_SUBTREE);
      this.#elementArray(e, inheritedNs, depth);
    } finally {
      this.insideSubtree--;
    }
  }

  /**
   * The stanza as an instance of an acknowledged template — a reference and the values that differ
   * (FORMAT.md §6.6) — when one has the same structure and at most half its values differ; else as a new
   * template (a subtree insert of the whole stanza) when it is small and none of its structure is
   * waiting for an acknowledgement; else as an element.
   */
  #root(e: XElement): void {
    // Templates are at most TEMPLATE_MAX_NODES: a larger stanza is neither one nor an instance of one.
    if (e.children.length === 0 || nodesAbove(e, TEMPLATE_MAX_NODES)) {
      this.#elementArray(e, this.defaultNs, 1);
      return;
    }
    const t = templateOf(e);
    const slots = t.slots;
    let best: { index: number; template: Template } | undefined;
    let bestDiffs = slots.length;
    const known = this.table.templates(t.key);
    if (known !== undefined) {
      // The newest few: a structure whose values keep changing would otherwise grow a long list.
      for (let k = Math.max(0, known.length - TEMPLATE_CANDIDATES); k < known.length; k++) {
        const candidate = known[k]!;
        const values = candidate.template.slots;
        let diffs = 0;
        for (let i = 0; i < slots.length && diffs <= bestDiffs; i++) if (values[i] !== slots[i]) diffs++;
        // Ties go to the newer template: its numbers and times are nearer, so their deltas are smaller.
        if (diffs <= bestDiffs) {
          best = candidate;
          bestDiffs = diffs;
        }
      }
    }
    if (best !== undefined && bestDiffs * 2 <= slots.length) {
      this.nodes += t.nodes;
      if (this.nodes > this.limits.maxNodes) throw overLimit(0, "stanza has more nodes than maxNodes");
      if (bestDiffs === 0) {
        writeInt(-1 - best.index);
        return;
      }
      // [reference, slot, value, …]: pairs in the array itself, a byte less than a map inside it.
      writeHead(MAJOR_ARRAY, 1 + 2 * bestDiffs);
      writeInt(-1 - best.index);
      const values = best.template.slots;
      for (let i = 0; i < slots.length; i++) {
        if (values[i] === slots[i]) continue;
        writeInt(i);
        const { qid, aid } = slotContext(this.dict, t, i);
        this.#override(values[i]!, slots[i]!, qid, aid);
      }
      return;
    }
    const size = this.#templateRoom(e, t);
    if (size !== undefined) {
      const index = this.table.insert(
        { kind: "subtree", element: e, nodes: size.nodes, bytes: size.bytes, template: true },
        size.bytes,
        treeKey(e),
        t,
      );
      this.inserted.push(index);
      // Subtrees inside stay inserted as well: other stanzas reuse them.
      writeHead(MAJOR_TAG, TAG_SUBTREE);
      this.#elementArray(e, this.defaultNs, 1);
      return;
    }
    this.#elementArray(e, this.defaultNs, 1);
  }

  /**
   * The size of `e` if it may become a template now: the frame may insert, the table is under its share
   * for templates, none of this structure waits for its acknowledgement, and it fits. Cheap tests first:
   * most stanzas of a busy session are neither templates nor instances.
   */
  #templateRoom(e: XElement, t: Template): { nodes: number; bytes: number } | undefined {
    const share = this.limits.maxTableBytes * TEMPLATE_TABLE_SHARE;
    if (this.table.frozen || this.table.size >= share || this.table.templatePending(t.key, TEMPLATE_RECENT))
      return undefined;
    const size = treeSize(e);
    return size.bytes <= TEMPLATE_MAX_BYTES &&
      this.table.size + size.bytes <= share &&
      this.table.canInsert(size.bytes)
      ? size
      : undefined;
  }

  /**
   * An override of `base` by `value` (FORMAT.md §6.3, §6.6). Where `base` is a number or time, an int is
   * a delta: written when it is shorter than the value, which otherwise goes in a form that is not an
   * int (no dictionary id, no table reference).
   */
  #override(base: string, value: string, qid: number | undefined, aid: number | undefined): void {
    if (!isDeltaBase(base)) {
      this.string(this.lit(value), true, qid, aid);
      return;
    }
    const d = deltaOf(base, value);
    const mark = pos;
    // A delta's value is a number or time: never inserted (VOLATILE), so writing it has nothing to undo.
    this.string(this.lit(value), false, undefined, undefined, d === undefined, false);
    if (d !== undefined && pos - mark > headSize(d)) {
      pos = mark;
      writeInt(d);
    }
  }

  /** The element as an array, or as a bare shape reference when it is exactly a known shape (§6.3). */
  #elementArray(e: XElement, inheritedNs: string, depth: number): void {
    if (depth > this.limits.maxDepth) throw overLimit(0, "stanza deeper than maxDepth");
    if (e.name === "") throw new CodecError("UNENCODABLE", 0, "element with an empty name");
    const attrs = e.attrs;
    const children = e.children;
    this.nodes += 1 + attrs.length + children.length;
    if (this.nodes > this.limits.maxNodes) throw overLimit(0, "stanza has more nodes than maxNodes");
    for (let i = 1; i < attrs.length; i++) {
      const a = attrs[i]!;
      for (let j = 0; j < i; j++) {
        if (a.name === attrs[j]!.name && a.ns === attrs[j]!.ns) {
          throw new CodecError("UNENCODABLE", 0, `duplicate attribute '${a.name}'`);
        }
      }
    }
    const qid = this.qnameOf(e);
    // Array length up front: empty text children are not written.
    let written = 0;
    for (let i = 0; i < children.length; i++) if (children[i] !== "") written++;
    let newShape = false;
    if (this.sessionMode && attrs.length > 0) {
      const shape = this.#shape(e, qid);
      if (typeof shape === "object") {
        if (shape.diffs === 0 && children.length === 0) {
          writeInt(-1 - shape.index);
          return;
        }
        writeHead(MAJOR_ARRAY, 1 + (shape.diffs > 0 ? 1 : 0) + written);
        writeInt(-1 - shape.index);
        if (shape.diffs > 0) {
          const known = shape.shape;
          writeHead(MAJOR_MAP, shape.diffs);
          for (let i = 0; i < attrs.length; i++) {
            const value = attrs[i]!.value;
            if (known.attrs[i]!.value !== value) {
              writeInt(i);
              if (this.templating) this.#override(known.attrs[i]!.value, value, known.qid, known.aids[i]);
              else this.string(this.lit(value), true, known.qid, known.aids[i]);
            }
          }
        }
        this.#children(e, qid, depth);
        return;
      }
      newShape = shape === "inserted";
    }
    writeHead(MAJOR_ARRAY, 1 + (attrs.length > 0 ? 1 : 0) + written);
    if (newShape) writeHead(MAJOR_TAG, TAG_SHAPE);
    this.#elementName(e, qid, inheritedNs);
    if (attrs.length > 0) {
      // Keys are distinct (duplicates were rejected above), so the map has one entry per attribute.
      writeHead(MAJOR_MAP, attrs.length);
      for (let i = 0; i < attrs.length; i++) {
        const a = attrs[i]!;
        if (a.name === "") throw new CodecError("UNENCODABLE", 0, "attribute with an empty name");
        const aid = this.attributeOf(a, i);
        const at = 2 + 3 * i;
        if (aid !== undefined) writeInt(this.dict.attributeId(aid, qid));
        else if (a.ns === "") this.string(this.#slotLit(at, a.name), false, undefined, undefined);
        else {
          writeHead(MAJOR_ARRAY, 2);
          this.#namespace(a.ns, at + 1);
          this.string(this.#slotLit(at, a.name), false, undefined, undefined);
        }
        this.string(this.#slotLit(at + 2, a.value), true, qid, aid);
      }
    }
    this.#children(e, qid, depth);
  }

  #children(e: XElement, qid: number | undefined, depth: number): void {
    const children = e.children;
    for (let i = 0; i < children.length; i++) {
      const child = children[i]!;
      if (typeof child === "string") {
        const planned = this.plannedText();
        if (child !== "") this.string(planned ?? this.lit(child), true, qid, -1);
      } else {
        this.#element(child, e.ns, depth + 1);
      }
    }
  }

  #elementName(e: XElement, qid: number | undefined, inheritedNs: string): void {
    if (qid !== undefined) writeInt(this.dict.elementId(qid, inheritedNs));
    else if (e.ns === inheritedNs) this.string(this.#slotLit(1, e.name), false, undefined, undefined);
    else {
      writeHead(MAJOR_ARRAY, 2);
      this.#namespace(e.ns, 0);
      this.string(this.#slotLit(1, e.name), false, undefined, undefined);
    }
  }

  /** String `k` of the element being written (see `plannedLit`): the planned Lit, else a lookup. */
  #slotLit(k: number, value: string): Lit {
    return this.plannedLit(k) ?? this.memo.get(value, this.frame);
  }

  /**
   * Session mode (FORMAT.md §6.3): a known shape to reuse with the differing attribute values
   * overridden, or "inserted" when this element's head becomes a new shape (its index is taken now,
   * before the strings inside the head: pre-order numbering, §6.1), or undefined to write it plainly.
   */
  #shape(e: XElement, qid: number | undefined): ShapeMatch | "inserted" | undefined {
    const key = shapeKey(e.ns, e.name, e.attrs);
    let best: { index: number; shape: Shape } | undefined;
    let bestDiffs = Number.POSITIVE_INFINITY;
    for (const list of [this.table.shapes(key), frameShapes.get(key)]) {
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
      return { index: best.index, shape: best.shape, diffs: bestDiffs };
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
    const list = frameShapes.get(key) ?? [];
    list.push({ index, shape });
    frameShapes.set(key, list);
    return "inserted";
  }

  #namespace(ns: string, k: number): void {
    const id = this.dict.namespaceId(ns);
    if (id !== undefined) writeInt(id);
    else this.string(this.#slotLit(k, ns), false, undefined, undefined);
  }

  /** Reference to `value` if the peer can resolve one (acknowledged, or inserted earlier in this frame). */
  protected reference(value: string, _lit: Lit): number | undefined {
    const acked = this.table.lookup(value);
    return acked !== undefined ? acked : frameInserts.get(value);
  }

  /**
   * Writes a string in a Value position: with contextual value ids for element `qid` and attribute `aid`
   * (-1: text) when `statics`, else never as a dictionary value (names, namespaces, JID parts).
   */
  protected string(
    lit: Lit,
    statics: boolean,
    qid: number | undefined,
    aid: number | undefined,
    insertable = true,
    referable = true,
  ): void {
    const value = lit.value;
    const max = this.limits.maxStringBytes;
    if (value.length > max || lit.size > max) throw overLimit(0, "string longer than maxStringBytes");
    if (statics && lit.g >= 0) {
      writeInt(this.dict.valueIdOf(lit.g, qid, aid));
      return;
    }
    const ref = referable ? this.reference(value, lit) : undefined;
    if (ref !== undefined) {
      writeInt(-1 - ref);
      return;
    }
    const split = value.length > 3 ? jidOf(lit) : undefined;
    const jid = split && this.shouldSplitJid(lit, split) ? split : undefined;
    let cost: number;
    if (jid) cost = value.length + 2;
    else {
      if (lit.bytes === undefined) computeLiteral(lit, this.dict.huffman);
      cost = lit.cost;
    }
    const size = lit.size;
    const insert =
      insertable &&
      size <= this.limits.maxEntryBytes &&
      !isVolatile(lit) &&
      this.shouldInsert(lit, cost) &&
      this.table.canInsert(size);
    // Pre-order numbering (FORMAT.md §6.1): the outer insert is numbered before its parts.
    if (insert) {
      const index = this.table.insert(value, size);
      this.inserted.push(index);
      if (!frameInserts.has(value)) frameInserts.set(value, index);
      writeHead(MAJOR_TAG, TAG_INSERT);
    }
    if (jid) {
      writeHead(MAJOR_TAG, TAG_JID);
      writeHead(MAJOR_ARRAY, jid.resource === null ? 2 : 3);
      if (jid.local === null) writeByte(CBOR_NULL);
      else this.string(this.part(lit, 0, jid.local), false, undefined, undefined);
      this.string(this.part(lit, 1, jid.domain), false, undefined, undefined);
      // Resources rarely recur apart from their full JID, which is inserted whole.
      if (jid.resource !== null)
        this.string(this.part(lit, 2, jid.resource), false, undefined, undefined, !this.sessionMode);
    } else {
      const bytes = lit.bytes!;
      writeRaw(bytes, bytes.length);
    }
  }
}

/**
 * Stateless encoder: every frame stands alone. Strings repeated within one stanza are inserted into a
 * frame-local table on first use and referenced afterwards.
 */
export class StatelessEncoder extends FrameEncoder {
  /** Repeat counts of strings the memo does not hold (memoised ones count in their Lit). */
  private readonly repeats = new Map<string, number>();
  /**
   * What the counting pass (`countStrings`) looked up, in document order, so that writing does not look
   * it up again — the dictionary and memo lookups were each done twice per string and made ~25% of
   * encode time (cxmpp bench codec). Per element: its global qname id (-1: none) in `qids`; slots
   * [namespace, name], then [name, namespace, value] per attribute in `slots` (undefined where the
   * string is not written), then one slot per text child as the children come; per attribute its global
   * id (-1: none) in `aids`. Reused from frame to frame, grown on demand.
   */
  private qids: Int32Array = NO_INTS;
  private aids: Int32Array = NO_INTS;
  private readonly slots: (Lit | undefined)[] = [];
  private qidCount = 0;
  private aidCount = 0;
  private slotCount = 0;
  /** Writing's place in the plan; `slot` and `aidBase`: where the element being written starts. */
  private qidCursor = 0;
  private aidCursor = 0;
  private slotCursor = 0;
  private slot = 0;
  private aidBase = 0;

  constructor(options: CodecOptions = {}) {
    super(options, false);
  }

  protected override prepare(stanza: XElement): void {
    // A fresh table per frame: one small object, its maps made on first use. One table emptied per
    // frame saved five Maps a frame when they were made up front; a `reset` method is code that every
    // session table (a tiny node's too) would carry.
    this.table = new EncoderTable(this.limits);
    if (this.repeats.size > 0) this.repeats.clear();
    this.qidCount = this.aidCount = this.slotCount = 0;
    this.qidCursor = this.aidCursor = this.slotCursor = 0;
    this.#countStrings(stanza, this.defaultNs);
  }

  protected override qnameOf(e: XElement): number | undefined {
    const q = this.qids[this.qidCursor++]!;
    this.slot = this.slotCursor;
    this.slotCursor += 2 + 3 * e.attrs.length;
    this.aidBase = this.aidCursor;
    this.aidCursor += e.attrs.length;
    return q < 0 ? undefined : q;
  }

  protected override attributeOf(_a: XAttr, i: number): number | undefined {
    const g = this.aids[this.aidBase + i]!;
    return g < 0 ? undefined : g;
  }

  protected override plannedLit(k: number): Lit | undefined {
    return this.slots[this.slot + k];
  }

  protected override plannedText(): Lit | undefined {
    return this.slots[this.slotCursor++];
  }

  #seen(lit: Lit): Lit {
    if (!lit.cached) this.repeats.set(lit.value, (this.repeats.get(lit.value) ?? 0) + 1);
    else if (lit.countFrame === this.frame) lit.count++;
    else {
      lit.countFrame = this.frame;
      lit.count = 1;
    }
    return lit;
  }

  #countOf(lit: Lit): number {
    if (!lit.cached) return this.repeats.get(lit.value) ?? 0;
    return lit.countFrame === this.frame ? lit.count : 0;
  }

  #seenValue(s: string): Lit {
    const lit = this.lit(s);
    // A dictionary value is written as its id in every context: it is never a literal.
    if (lit.g >= 0) return lit;
    this.#seen(lit);
    const jid = s.length > 3 ? jidOf(lit) : undefined;
    if (jid) {
      this.#seen(this.part(lit, 1, jid.domain));
      if (jid.local !== null) this.#seen(this.part(lit, 0, jid.local));
      if (jid.resource !== null) this.#seen(this.part(lit, 2, jid.resource));
    }
    return lit;
  }

  /**
   * Counts the strings a frame will write, so that only repeated ones are inserted, and records what it
   * looked up for the writing pass (see `qids`).
   */
  #countStrings(e: XElement, inheritedNs: string): void {
    const dict = this.dict;
    const attrs = e.attrs;
    const qid = dict.qnameGlobal(e.ns, e.name);
    if (this.qidCount >= this.qids.length) this.qids = grownInt32(this.qids);
    this.qids[this.qidCount++] = qid === undefined ? -1 : qid;
    if (this.aidCount + attrs.length > this.aids.length) this.aids = grownInt32(this.aids, attrs.length);
    const slots = this.slots;
    const base = this.slotCount;
    const end = base + 2 + 3 * attrs.length;
    for (let k = base; k < end; k++) slots[k] = undefined;
    this.slotCount = end;
    if (qid === undefined) {
      if (e.ns !== inheritedNs && dict.namespaceId(e.ns) === undefined)
        slots[base] = this.#seen(this.lit(e.ns));
      slots[base + 1] = this.#seen(this.lit(e.name));
    }
    for (let i = 0; i < attrs.length; i++) {
      const a = attrs[i]!;
      const aid = dict.attributeGlobal(a.ns, a.name);
      this.aids[this.aidCount++] = aid === undefined ? -1 : aid;
      const at = base + 2 + 3 * i;
      if (aid === undefined) {
        slots[at] = this.#seen(this.lit(a.name));
        if (a.ns !== "" && dict.namespaceId(a.ns) === undefined) slots[at + 1] = this.#seen(this.lit(a.ns));
      }
      slots[at + 2] = this.#seenValue(a.value);
    }
    const children = e.children;
    for (let i = 0; i < children.length; i++) {
      const c = children[i]!;
      if (typeof c === "string") slots[this.slotCount++] = this.#seenValue(c);
      else this.#countStrings(c, e.ns);
    }
  }

  /**
   * Only strings seen twice can have been inserted by this frame, and the frame table holds nothing
   * else: a single occurrence skips the lookups.
   */
  protected override reference(value: string, lit: Lit): number | undefined {
    return this.#countOf(lit) < 2 ? undefined : super.reference(value, lit);
  }

  protected shouldInsert(lit: Lit, cost: number): boolean {
    return cost > 2 && this.#countOf(lit) >= 2;
  }

  /** When a part repeats in this frame (a single occurrence cannot be referenced: see `reference`). */
  protected shouldSplitJid(lit: Lit, jid: JidParts): boolean {
    return (
      this.#countOf(this.part(lit, 1, jid.domain)) >= 2 ||
      (jid.local !== null && this.#countOf(this.part(lit, 0, jid.local)) >= 2) ||
      (jid.resource !== null && this.#countOf(this.part(lit, 2, jid.resource)) >= 2)
    );
  }
}

/**
 * Session encoder: one per direction of a session. Inserts what is worth remembering; references an entry
 * only once `acknowledge` says the peer decoded the frame that inserted it.
 */
export class SessionEncoder extends FrameEncoder {
  constructor(options: SessionCodecOptions = {}) {
    super(options, true);
  }

  /** The peer has decoded a frame: its inserts may now be referenced. */
  acknowledge(inserted: Iterable<number>): void {
    this.table.acknowledge(inserted);
  }

  /**
   * A frame that references only acknowledged entries and inserts nothing, so the peer can decode it
   * whether or not it arrives, and in any order (NON telemetry, docs/PROTOCOL.md §3).
   */
  encodeUnsequenced(stanza: XElement): EncodedFrame {
    this.table.frozen = true;
    try {
      return this.encode(stanza);
    } finally {
      this.table.frozen = false;
    }
  }

  /**
   * The entries a frame just inserted (by index, from `EncodedFrame.inserted`): what a gateway saves
   * beside the frame so that `restore` can rebuild this encoder after a restart.
   */
  entries(indices: readonly number[]): Entry[] {
    return indices.map((index) => {
      const entry = this.table.pendingEntry(index);
      if (entry === undefined) throw new CodecError("UNKNOWN_REF", 0, `entry ${index} is not pending`);
      return entry;
    });
  }

  /**
   * Rebuilds the table from saved inserts, in index order, with whether the peer acknowledged each:
   * the encoder then writes exactly what the one that saved them would have written.
   */
  restore(
    saved: Iterable<{ readonly index: number; readonly entry: Entry; readonly acknowledged: boolean }>,
  ): void {
    for (const s of saved) this.table.restore(s.index, s.entry, s.acknowledged);
  }

  /** Inserts not yet acknowledged (in flight or lost). */
  get pendingInserts(): number {
    return this.table.pendingCount;
  }

  protected shouldInsert(_lit: Lit, cost: number): boolean {
    return cost > 2;
  }

  protected shouldSplitJid(_lit: Lit, _jid: JidParts): boolean {
    return true;
  }
}
