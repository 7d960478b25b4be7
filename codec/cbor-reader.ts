/**
 * A strict cursor over the CBOR subset cxmpp frames use (RFC 8949): definite lengths only, integers up to
 * 2^53, no floats, no undefined. Every read checks the bytes are there before touching them, so a
 * truncated or hostile frame gives a `CodecError` with the offset, never an exception from elsewhere.
 */
import { CodecError, overLimit } from "./errors.js";
import { utf8DecodeRange } from "./utf8.js";
import { MAJOR_SIMPLE } from "./wire.js";

// Defined in wire.ts, which imports nothing, so that bundles inline them.
export {
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
} from "./wire.js";

export interface Head {
  readonly major: number;
  /** The argument: a length, count, integer, tag number or simple value. */
  readonly value: number;
  /** Offset of the initial byte. */
  readonly offset: number;
}

export class CborReader {
  pos = 0;
  // The head `next()` just read, as plain fields: the decoder reads one head per item, and an object
  // per head was the largest allocation in `cxmpp bench codec` decode (cxmpp bench codec, decode).
  /** Major type of the last head read by `next()`. */
  major = 0;
  /** Its argument: a length, count, integer, tag number or simple value. */
  arg = 0;
  /** Offset of its initial byte. */
  start = 0;

  /** Not readonly: the decoder reuses one reader for many frames (bench codec decode). */
  constructor(public data: Uint8Array) {}

  get done(): boolean {
    return this.pos >= this.data.length;
  }

  /** The major type of the next item, without consuming it. */
  peekMajor(): number {
    if (this.pos >= this.data.length) throw new CodecError("TRUNCATED", this.pos, "item expected");
    return this.data[this.pos]! >>> 5;
  }

  /** Reads the next head into `major`, `arg` and `start`. */
  next(): void {
    const offset = this.pos;
    const data = this.data;
    if (offset >= data.length) throw new CodecError("TRUNCATED", offset, "item expected");
    const initial = data[offset]!;
    this.major = initial >>> 5;
    this.start = offset;
    const info = initial & 31;
    if (info < 24) {
      // bench codec decode: the one-byte head (small ints, short strings, small arrays) is most items.
      this.arg = info;
      this.pos = offset + 1;
      return;
    }
    this.arg = this.#longArg(offset, initial >>> 5, info);
  }

  /** `next()`, returning the major type (a fresh read, where TypeScript narrowed `major` before). */
  nextMajor(): number {
    this.next();
    return this.major;
  }

  /** The argument of a head with following bytes; advances `pos` past them. */
  #longArg(offset: number, major: number, info: number): number {
    const data = this.data;
    this.pos = offset + 1;
    if (major === MAJOR_SIMPLE && info !== 24) {
      throw new CodecError("BAD_CBOR", offset, "floats and break are not used in cxmpp frames");
    }
    let size: number;
    if (info === 24) size = 1;
    else if (info === 25) size = 2;
    else if (info === 26) size = 4;
    else if (info === 27) size = 8;
    else
      throw new CodecError(
        "BAD_CBOR",
        offset,
        info === 31 ? "indefinite lengths are not used" : "reserved additional info",
      );
    if (this.pos + size > data.length) throw new CodecError("TRUNCATED", offset, "item head cut short");
    let value = 0;
    for (let i = 0; i < size; i++) value = value * 256 + data[this.pos + i]!;
    this.pos += size;
    if (!Number.isSafeInteger(value)) throw new CodecError("BAD_VALUE", offset, "integer beyond 2^53");
    if (major === MAJOR_SIMPLE && value < 32)
      throw new CodecError("BAD_CBOR", offset, "non-canonical simple value");
    return value;
  }

  /**
   * Skips the body of the byte or text string whose head `next()` just read; returns where it starts
   * (it ends at the new `pos`). No subarray: bench codec decode spent a view allocation per string.
   */
  skipBody(maxBytes: number): number {
    const length = this.arg;
    if (length > maxBytes) throw overLimit(this.start, `string of ${length} bytes exceeds the limit`);
    const from = this.pos;
    if (from + length > this.data.length) throw new CodecError("TRUNCATED", this.start, "string cut short");
    this.pos = from + length;
    return from;
  }

  /** The text string whose head `next()` just read. */
  nextText(maxBytes: number): string {
    const from = this.skipBody(maxBytes);
    return decodeUtf8Range(this.data, from, this.pos, this.start);
  }
}

/**
 * Plain arrays of each short length, reused to hand ASCII bytes to `String.fromCharCode.apply`: cheaper
 * than a typed-array view per string (bench codec decode; node 20: ~2× faster for 3-40 byte strings).
 * Each made on the first string of its length: all 128 up front held 8,128 slots, 64 KB of a tiny
 * node's QuickJS heap, for the few lengths a node decodes.
 */
const SHORT = 128;
const charArrays: (number[] | undefined)[] = [];

/** UTF-8 text of bytes[from, to); a `BAD_UTF8` error names `offset`. */
export function decodeUtf8Range(bytes: Uint8Array, from: number, to: number, offset: number): string {
  // ASCII fast path: most XMPP strings are short ASCII (see charArrays); the rest go to codec/utf8.ts.
  const n = to - from;
  if (n < SHORT) {
    let chars = charArrays[n];
    if (chars === undefined) {
      chars = new Array<number>(n).fill(0);
      charArrays[n] = chars;
    }
    let i = 0;
    for (; i < n; i++) {
      const b = bytes[from + i]!;
      if (b > 0x7f) break;
      chars[i] = b;
    }
    if (i === n) return String.fromCharCode.apply(null, chars);
  }
  try {
    return utf8DecodeRange(bytes, from, to);
  } catch {
    throw new CodecError("BAD_UTF8", offset, "text is not UTF-8");
  }
}
