/**
 * The small CBOR subset of session messages (docs/PROTOCOL.md §3): unsigned integers, byte and text
 * strings, arrays, and maps with unsigned-integer keys, definite lengths only. Frames inside a message
 * are CBOR themselves and are carried as the remaining bytes, never parsed here.
 */

import { utf8Decode, utf8Encode } from "../bytes.js";
import { SessionFormatError } from "./errors.js";

export { SessionFormatError };

export type Value = number | Uint8Array | string | Value[] | Map<number, Value>;

function head(major: number, n: number, out: number[]): void {
  if (n < 24) out.push((major << 5) | n);
  else if (n < 0x100) out.push((major << 5) | 24, n);
  else if (n < 0x10000) out.push((major << 5) | 25, n >>> 8, n & 0xff);
  else if (n < 0x1_0000_0000)
    out.push((major << 5) | 26, n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
  else throw new RangeError("session integers stay below 2^32");
}

function write(v: Value, out: number[]): void {
  if (typeof v === "number") {
    if (!Number.isInteger(v) || v < 0) throw new RangeError("session integers are unsigned");
    head(0, v, out);
  } else if (typeof v === "string") {
    const b = utf8Encode(v);
    head(3, b.length, out);
    for (const x of b) out.push(x);
  } else if (v instanceof Uint8Array) {
    head(2, v.length, out);
    for (const x of v) out.push(x);
  } else if (Array.isArray(v)) {
    head(4, v.length, out);
    for (const x of v) write(x, out);
  } else {
    head(5, v.size, out);
    for (const [k, x] of v) {
      head(0, k, out);
      write(x, out);
    }
  }
}

/** Serialises values as a CBOR sequence, followed by `tail` (frames) verbatim. */
export function encodeSequence(values: readonly Value[], tail: readonly Uint8Array[] = []): Uint8Array {
  const out: number[] = [];
  for (const v of values) write(v, out);
  let size = out.length;
  for (const t of tail) size += t.length;
  const bytes = new Uint8Array(size);
  bytes.set(out, 0);
  let pos = out.length;
  for (const t of tail) {
    bytes.set(t, pos);
    pos += t.length;
  }
  return bytes;
}

/** A cursor over a session message; `rest()` returns the unread bytes (the frames). */
export class SessionReader {
  pos = 0;
  constructor(
    readonly data: Uint8Array,
    private readonly maxDepth = 4,
  ) {}

  get done(): boolean {
    return this.pos >= this.data.length;
  }

  read(depth = 0): Value {
    if (depth > this.maxDepth) throw new SessionFormatError("nesting too deep", this.pos);
    const start = this.pos;
    if (this.pos >= this.data.length) throw new SessionFormatError("item expected", start);
    const initial = this.data[this.pos++]!;
    const major = initial >>> 5;
    const info = initial & 31;
    let n: number;
    if (info < 24) n = info;
    else if (info <= 26) {
      const size = info === 24 ? 1 : info === 25 ? 2 : 4;
      if (this.pos + size > this.data.length) throw new SessionFormatError("head cut short", start);
      n = 0;
      for (let i = 0; i < size; i++) n = n * 256 + this.data[this.pos + i]!;
      this.pos += size;
    } else throw new SessionFormatError("unsupported CBOR head", start);
    switch (major) {
      case 0:
        return n;
      case 2:
      case 3: {
        if (this.pos + n > this.data.length) throw new SessionFormatError("string cut short", start);
        // A view: frames are read once, or copied where they are kept (the store binds a copy).
        const bytes = this.data.subarray(this.pos, this.pos + n);
        this.pos += n;
        if (major === 2) return bytes;
        try {
          return utf8Decode(bytes);
        } catch {
          throw new SessionFormatError("text is not UTF-8", start);
        }
      }
      case 4: {
        if (n > this.data.length - this.pos)
          throw new SessionFormatError("array longer than the message", start);
        const items: Value[] = [];
        for (let i = 0; i < n; i++) items.push(this.read(depth + 1));
        return items;
      }
      case 5: {
        if (n > this.data.length - this.pos)
          throw new SessionFormatError("map longer than the message", start);
        const map = new Map<number, Value>();
        for (let i = 0; i < n; i++) {
          const k = this.read(depth + 1);
          if (typeof k !== "number") throw new SessionFormatError("map keys are unsigned integers", start);
          if (map.has(k)) throw new SessionFormatError("duplicate map key", start);
          map.set(k, this.read(depth + 1));
        }
        return map;
      }
      default:
        throw new SessionFormatError(`CBOR major type ${major} is not used in session messages`, start);
    }
  }

  rest(): Uint8Array {
    const r = this.data.subarray(this.pos);
    this.pos = this.data.length;
    return r;
  }
}
