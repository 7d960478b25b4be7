/**
 * A strict cursor over the CBOR subset cxmpp frames use (RFC 8949): definite lengths only, integers up to
 * 2^53, no floats, no undefined. Every read checks the bytes are there before touching them, so a
 * truncated or hostile frame gives a `CodecError` with the offset, never an exception from elsewhere.
 */
import { CodecError } from "./errors.js";

export const MAJOR_UINT = 0;
export const MAJOR_NEGINT = 1;
export const MAJOR_BYTES = 2;
export const MAJOR_TEXT = 3;
export const MAJOR_ARRAY = 4;
export const MAJOR_MAP = 5;
export const MAJOR_TAG = 6;
export const MAJOR_SIMPLE = 7;

export const SIMPLE_FALSE = 20;
export const SIMPLE_TRUE = 21;
export const SIMPLE_NULL = 22;

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

export interface Head {
  readonly major: number;
  /** The argument: a length, count, integer, tag number or simple value. */
  readonly value: number;
  /** Offset of the initial byte. */
  readonly offset: number;
}

export class CborReader {
  pos = 0;

  constructor(readonly data: Uint8Array) {}

  get done(): boolean {
    return this.pos >= this.data.length;
  }

  /** The major type of the next item, without consuming it. */
  peekMajor(): number {
    if (this.pos >= this.data.length) throw new CodecError("TRUNCATED", this.pos, "item expected");
    return this.data[this.pos]! >>> 5;
  }

  head(): Head {
    const offset = this.pos;
    const data = this.data;
    if (offset >= data.length) throw new CodecError("TRUNCATED", offset, "item expected");
    const initial = data[offset]!;
    const major = initial >>> 5;
    const info = initial & 31;
    this.pos = offset + 1;
    if (info < 24) return { major, value: info, offset };
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
    return { major, value, offset };
  }

  /** The raw bytes of a byte or text string whose head was just read. */
  body(head: Head, maxBytes: number): Uint8Array {
    if (head.value > maxBytes)
      throw new CodecError("LIMIT", head.offset, `string of ${head.value} bytes exceeds the limit`);
    if (this.pos + head.value > this.data.length)
      throw new CodecError("TRUNCATED", head.offset, "string cut short");
    const bytes = this.data.subarray(this.pos, this.pos + head.value);
    this.pos += head.value;
    return bytes;
  }

  text(head: Head, maxBytes: number): string {
    const bytes = this.body(head, maxBytes);
    return decodeUtf8(bytes, head.offset);
  }
}

export function decodeUtf8(bytes: Uint8Array, offset: number): string {
  // ASCII fast path: most XMPP strings are ASCII and TextDecoder has a fixed cost per call.
  // (`apply` takes the typed array as an array-like; spreading it would go through its iterator.)
  if (bytes.length < 128) {
    let ascii = true;
    for (let i = 0; i < bytes.length; i++) {
      if (bytes[i]! > 0x7f) {
        ascii = false;
        break;
      }
    }
    if (ascii) return String.fromCharCode.apply(null, bytes as unknown as number[]);
  }
  try {
    return utf8.decode(bytes);
  } catch {
    throw new CodecError("BAD_UTF8", offset, "text is not UTF-8");
  }
}
