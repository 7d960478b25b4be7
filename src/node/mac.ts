/**
 * HMAC-SHA-256 (RFC 2104, FIPS 180-4) for the session layer's connect: the node's proof and the
 * gateway's stateless nonces (src/core Mac).
 *
 * In plain JavaScript rather than node:crypto, for speed: a connect computes three short HMACs, and
 * each createHmac fetches the digest from OpenSSL (a locked lookup), makes a native object that the
 * garbage collector must finalise and an external Buffer, 3-4.5 µs in all; here an HMAC under a key
 * whose two padded blocks were compressed once (`HmacSha256Key`) is two compressions, about 1 µs, with
 * nothing allocated. The output is the same function's (test/node/mac.test.ts checks it against
 * node:crypto); no branch or table index depends on the key or the data. src/dtls/js-crypto.ts has a
 * SHA-256 too, written for bundle size (constants derived at first use), not for this.
 */
import type { Mac } from "../core/interfaces.js";

/** SHA-256's round constants (FIPS 180-4 §4.2.2). */
const K = Int32Array.from([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
  0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
  0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
  0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
  0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
  0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
  0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
  0xc67178f2,
]);
/** The initial hash value (FIPS 180-4 §5.3.3). */
const IV = Int32Array.from([
  0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
]);
const BLOCK = 64;
/** The message schedule, shared: compress never runs twice at once (no await inside). */
const W = new Int32Array(64);

/** One SHA-256 compression of the 64-byte block at `m[at]` into the state `h`. */
function compress(h: Int32Array, m: Uint8Array, at: number): void {
  for (let t = 0; t < 16; t++) {
    const p = at + 4 * t;
    W[t] = (m[p]! << 24) | (m[p + 1]! << 16) | (m[p + 2]! << 8) | m[p + 3]!;
  }
  for (let t = 16; t < 64; t++) {
    const a = W[t - 15]!;
    const b = W[t - 2]!;
    // Int32Array stores modulo 2^32: the sum needs no |0.
    W[t] =
      (((a >>> 7) | (a << 25)) ^ ((a >>> 18) | (a << 14)) ^ (a >>> 3)) +
      W[t - 16]! +
      (((b >>> 17) | (b << 15)) ^ ((b >>> 19) | (b << 13)) ^ (b >>> 10)) +
      W[t - 7]!;
  }
  let a = h[0]!;
  let b = h[1]!;
  let c = h[2]!;
  let d = h[3]!;
  let e = h[4]!;
  let f = h[5]!;
  let g = h[6]!;
  let hh = h[7]!;
  for (let t = 0; t < 64; t++) {
    const s1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
    const t1 = (hh + s1 + ((e & f) ^ (~e & g)) + K[t]! + W[t]!) | 0;
    const s0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
    const t2 = (s0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
    hh = g;
    g = f;
    f = e;
    e = (d + t1) | 0;
    d = c;
    c = b;
    b = a;
    a = (t1 + t2) | 0;
  }
  h[0]! += a;
  h[1]! += b;
  h[2]! += c;
  h[3]! += d;
  h[4]! += e;
  h[5]! += f;
  h[6]! += g;
  h[7]! += hh;
}

/** The last block(s) of a message: its tail, 0x80, zeros, and its length in bits (`total` bytes). */
const tail = new Uint8Array(2 * BLOCK);

/** Hashes `data` into `h`, which holds the state after `prefix` bytes already compressed. */
function absorb(h: Int32Array, data: Uint8Array, prefix: number): void {
  const n = data.length;
  let at = 0;
  for (; at + BLOCK <= n; at += BLOCK) compress(h, data, at);
  const rest = n - at;
  const blocks = rest + 9 > BLOCK ? 2 * BLOCK : BLOCK;
  tail.fill(0, 0, blocks);
  for (let i = 0; i < rest; i++) tail[i] = data[at + i]!;
  tail[rest] = 0x80;
  const bits = (prefix + n) * 8;
  tail[blocks - 5] = bits / 2 ** 32;
  tail[blocks - 4] = bits >>> 24;
  tail[blocks - 3] = bits >>> 16;
  tail[blocks - 2] = bits >>> 8;
  tail[blocks - 1] = bits;
  compress(h, tail, 0);
  if (blocks > BLOCK) compress(h, tail, BLOCK);
}

/** The first `out.length` (≤ 32) bytes of the digest in state `h`, big-endian words. */
function digestInto(h: Int32Array, out: Uint8Array): Uint8Array {
  for (let i = 0; i < out.length; i++) out[i] = h[i >> 2]! >>> (24 - 8 * (i & 3));
  return out;
}

/** SHA-256 of `data` (keys longer than a block are hashed first, RFC 2104 §2). */
function sha256(data: Uint8Array): Uint8Array {
  const h = IV.slice();
  absorb(h, data, 0);
  return digestInto(h, new Uint8Array(32));
}

/**
 * HMAC-SHA-256 under one key: the inner and outer padded keys are compressed once, so each MAC costs
 * the message's blocks and one outer block.
 */
export class HmacSha256Key {
  private readonly inner = new Int32Array(8);
  private readonly outer = new Int32Array(8);
  private readonly h = new Int32Array(8);
  private readonly digest = new Uint8Array(32);

  constructor(key: Uint8Array) {
    this.rekey(key);
  }

  /** Signs under `key` from now on (nodeMac's one-off HMACs reuse one object). */
  rekey(key: Uint8Array): this {
    const k = key.length > BLOCK ? sha256(key) : key;
    const pad = tail; // scratch: absorb fills it again before reading it
    this.inner.set(IV);
    this.outer.set(IV);
    for (let i = 0; i < BLOCK; i++) pad[i] = (k[i] ?? 0) ^ 0x36;
    compress(this.inner, pad, 0);
    for (let i = 0; i < BLOCK; i++) pad[i] = (k[i] ?? 0) ^ 0x5c;
    compress(this.outer, pad, 0);
    return this;
  }

  /** The MAC of `data`, its first `out.length` (≤ 32) bytes written to `out`. */
  sign(data: Uint8Array, out: Uint8Array = new Uint8Array(32)): Uint8Array {
    const h = this.h;
    h.set(this.inner);
    absorb(h, data, BLOCK);
    digestInto(h, this.digest);
    h.set(this.outer);
    absorb(h, this.digest, BLOCK);
    return digestInto(h, out);
  }
}

/** The one key object nodeMac re-keys for each HMAC: no state outlives a call. */
const oneOff = new HmacSha256Key(new Uint8Array(0));

export const nodeMac: Mac = {
  hmacSha256: (key, data) => oneOff.rekey(key).sign(data),
};
