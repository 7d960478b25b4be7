/**
 * Static canonical Huffman coding for string literals (the "static character model" of FORMAT.md §5).
 * Symbols 0-255 are bytes of the UTF-8 text, 256 is EOS. As in HPACK (RFC 7541 §5.2) the EOS code is the
 * all-ones longest code, never sent: a literal is padded to a byte boundary with 1 bits, so a decoder
 * rejects padding longer than 7 bits or not all ones, and rejects EOS itself.
 */
import { CodecError } from "./errors.js";

export const EOS = 256;

/** Code lengths for `freq` (length 257), limited to `maxLength` bits by flattening rare frequencies. */
export function huffmanCodeLengths(freq: readonly number[], maxLength: number): number[] {
  let weights = freq.map((f) => Math.max(f, 1e-9));
  for (;;) {
    const lengths = plainLengths(weights);
    if (Math.max(...lengths) <= maxLength) return lengths;
    // Flatten: raise every weight towards the mean so the tree gets shallower, then retry.
    const floor = Math.max(...weights) / 2 ** (maxLength - 2);
    weights = weights.map((w) => Math.max(w, floor) * (1 + 1e-12));
  }
}

function plainLengths(weights: readonly number[]): number[] {
  interface Node {
    w: number;
    symbols: number[];
  }
  let nodes: Node[] = weights.map((w, s) => ({ w, symbols: [s] }));
  const lengths = new Array<number>(weights.length).fill(0);
  while (nodes.length > 1) {
    // Ties broken by the larger symbol first so that EOS (256) sinks deepest; deterministic either way.
    nodes.sort((a, b) => a.w - b.w || Math.max(...b.symbols) - Math.max(...a.symbols));
    const a = nodes[0]!;
    const b = nodes[1]!;
    for (const s of a.symbols) lengths[s]! += 1;
    for (const s of b.symbols) lengths[s]! += 1;
    nodes = [{ w: a.w + b.w, symbols: [...a.symbols, ...b.symbols] }, ...nodes.slice(2)];
  }
  return lengths;
}

/** A canonical code (DEFLATE's assignment, RFC 1951 §3.2.2) built from code lengths. */
export class HuffmanCode {
  private readonly codes: Uint32Array;
  private readonly lengths: Uint8Array;
  /** For decoding: symbols sorted by (length, symbol); count and first code per length. */
  private readonly sorted: Uint16Array;
  private readonly countPerLength: Uint16Array;
  private readonly maxLength: number;

  constructor(lengths: readonly number[]) {
    const n = lengths.length;
    this.lengths = Uint8Array.from(lengths);
    this.codes = new Uint32Array(n);
    this.maxLength = Math.max(...lengths);
    this.countPerLength = new Uint16Array(this.maxLength + 1);
    for (const l of lengths) this.countPerLength[l]! += 1;
    this.countPerLength[0] = 0;
    const next = new Uint32Array(this.maxLength + 2);
    let code = 0;
    for (let len = 1; len <= this.maxLength; len++) {
      code = (code + this.countPerLength[len - 1]!) << 1;
      next[len] = code;
    }
    const order: number[] = [];
    for (let len = 1; len <= this.maxLength; len++)
      for (let s = 0; s < n; s++) if (lengths[s] === len) order.push(s);
    this.sorted = Uint16Array.from(order);
    for (let s = 0; s < n; s++) {
      const len = lengths[s]!;
      if (len > 0) this.codes[s] = next[len]!++;
    }
  }

  /** Encoded size in bytes of `bytes` (without the CBOR header). */
  sizeOf(bytes: Uint8Array): number {
    let bits = 0;
    for (let i = 0; i < bytes.length; i++) bits += this.lengths[bytes[i]!]!;
    return (bits + 7) >>> 3;
  }

  encode(bytes: Uint8Array): Uint8Array {
    const out = new Uint8Array(this.sizeOf(bytes));
    let acc = 0;
    let nbits = 0;
    let o = 0;
    for (let i = 0; i < bytes.length; i++) {
      const s = bytes[i]!;
      const len = this.lengths[s]!;
      const code = this.codes[s]!;
      // Emit MSB first, at most 8 bits at a time so `acc` stays below 2^31.
      for (let shift = len; shift > 0; ) {
        const take = Math.min(shift, 8);
        shift -= take;
        acc = (acc << take) | ((code >>> shift) & ((1 << take) - 1));
        nbits += take;
        while (nbits >= 8) {
          nbits -= 8;
          out[o++] = (acc >>> nbits) & 0xff;
        }
        acc &= (1 << nbits) - 1;
      }
    }
    if (nbits > 0) out[o++] = ((acc << (8 - nbits)) | ((1 << (8 - nbits)) - 1)) & 0xff;
    return out;
  }

  /** Decodes a literal; `offset` is where it starts in the frame, for errors. */
  decode(data: Uint8Array, offset: number, maxBytes: number): Uint8Array {
    const out: number[] = [];
    let code = 0; // bits of the current code so far
    let first = 0; // first code of the current length
    let index = 0; // index into `sorted` of the first symbol of the current length
    let len = 0;
    let allOnes = true;
    for (let i = 0; i < data.length; i++) {
      const byte = data[i]!;
      for (let bit = 7; bit >= 0; bit--) {
        const b = (byte >>> bit) & 1;
        code = (code << 1) | b;
        allOnes &&= b === 1;
        len++;
        const count = this.countPerLength[len] ?? 0;
        if (code - first < count) {
          const symbol = this.sorted[index + code - first]!;
          if (symbol === EOS) throw new CodecError("BAD_HUFFMAN", offset + i, "EOS symbol inside a literal");
          if (out.length >= maxBytes)
            throw new CodecError("LIMIT", offset + i, "string longer than maxStringBytes");
          out.push(symbol);
          code = 0;
          first = 0;
          index = 0;
          len = 0;
          allOnes = true;
        } else {
          if (len >= this.maxLength) throw new CodecError("BAD_HUFFMAN", offset + i, "invalid code");
          index += count;
          first = (first + count) << 1;
        }
      }
    }
    if (len > 7 || !allOnes) throw new CodecError("BAD_HUFFMAN", offset + data.length, "bad padding");
    return Uint8Array.from(out);
  }
}
