/**
 * Reading and writing TLS presentation-language structures (RFC 5246 §4): big-endian integers of 1,
 * 2, 3 and 6 bytes and length-prefixed vectors. A read past the end throws a `DtlsError` (decode),
 * never an out-of-range access.
 */
import { decodeError } from "./errors.js";

export class Reader {
  private at: number;

  constructor(
    private readonly buf: Uint8Array,
    start = 0,
    private readonly end = buf.length,
  ) {
    this.at = start;
  }

  get offset(): number {
    return this.at;
  }

  get remaining(): number {
    return this.end - this.at;
  }

  #need(n: number, what: string): void {
    if (this.at + n > this.end) throw decodeError(`truncated ${what}`);
  }

  u8(what = "uint8"): number {
    this.#need(1, what);
    return this.buf[this.at++]!;
  }

  u16(what = "uint16"): number {
    this.#need(2, what);
    const v = (this.buf[this.at]! << 8) | this.buf[this.at + 1]!;
    this.at += 2;
    return v;
  }

  u24(what = "uint24"): number {
    this.#need(3, what);
    const v = (this.buf[this.at]! << 16) | (this.buf[this.at + 1]! << 8) | this.buf[this.at + 2]!;
    this.at += 3;
    return v;
  }

  /** A 48-bit sequence number; exact in a JavaScript number (below 2^53). */
  u48(what = "uint48"): number {
    const high = this.u16(what);
    this.#need(4, what);
    const b = this.buf;
    const low =
      ((b[this.at]! << 24) | (b[this.at + 1]! << 16) | (b[this.at + 2]! << 8) | b[this.at + 3]!) >>> 0;
    this.at += 4;
    return high * 2 ** 32 + low;
  }

  /** `n` bytes as a view into the input (no copy). */
  bytes(n: number, what = "bytes"): Uint8Array {
    this.#need(n, what);
    const v = this.buf.subarray(this.at, this.at + n);
    this.at += n;
    return v;
  }

  vec8(what = "vector"): Uint8Array {
    return this.bytes(this.u8(what), what);
  }

  vec16(what = "vector"): Uint8Array {
    return this.bytes(this.u16(what), what);
  }

  rest(): Uint8Array {
    return this.bytes(this.remaining);
  }

  /** Throws unless everything was read (a structure with trailing bytes is malformed). */
  done(what: string): void {
    if (this.at !== this.end) throw decodeError(`${this.end - this.at} trailing bytes after ${what}`);
  }
}

export class Writer {
  private buf: Uint8Array;
  private at = 0;

  constructor(capacity = 64) {
    this.buf = new Uint8Array(capacity);
  }

  #room(n: number): void {
    if (this.at + n <= this.buf.length) return;
    const bigger = new Uint8Array(Math.max(this.buf.length * 2, this.at + n));
    bigger.set(this.buf.subarray(0, this.at));
    this.buf = bigger;
  }

  get length(): number {
    return this.at;
  }

  u8(v: number): this {
    this.#room(1);
    this.buf[this.at++] = v & 0xff;
    return this;
  }

  u16(v: number): this {
    this.#room(2);
    this.buf[this.at++] = (v >>> 8) & 0xff;
    this.buf[this.at++] = v & 0xff;
    return this;
  }

  u24(v: number): this {
    this.#room(3);
    this.buf[this.at++] = (v >>> 16) & 0xff;
    this.buf[this.at++] = (v >>> 8) & 0xff;
    this.buf[this.at++] = v & 0xff;
    return this;
  }

  u48(v: number): this {
    this.u16(Math.floor(v / 2 ** 32));
    const low = v >>> 0;
    this.#room(4);
    this.buf[this.at++] = low >>> 24;
    this.buf[this.at++] = (low >>> 16) & 0xff;
    this.buf[this.at++] = (low >>> 8) & 0xff;
    this.buf[this.at++] = low & 0xff;
    return this;
  }

  bytes(b: Uint8Array): this {
    this.#room(b.length);
    this.buf.set(b, this.at);
    this.at += b.length;
    return this;
  }

  vec8(b: Uint8Array): this {
    return this.u8(b.length).bytes(b);
  }

  vec16(b: Uint8Array): this {
    return this.u16(b.length).bytes(b);
  }

  /** A copy of what was written. */
  finish(): Uint8Array {
    return this.buf.slice(0, this.at);
  }
}

export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** An ASCII string's bytes (PRF labels, RFC 5246 §5): no TextEncoder on embedded engines. */
export function ascii(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i) & 0x7f;
  return out;
}

/** Constant-time comparison of two byte strings of public length (Finished verify_data, cookies). */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}
