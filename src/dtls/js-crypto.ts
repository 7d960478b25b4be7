/**
 * The cryptography of `DtlsCrypto` and `Mac` in plain ECMAScript 2022, for hosts that have none of
 * their own (embedded engines such as QuickJS): SHA-256 (FIPS 180-4), HMAC-SHA-256 (RFC 2104), AES-128
 * encryption (FIPS 197), AES-CCM (RFC 3610, NIST SP 800-38C) and AES-GCM (NIST SP 800-38D). Only
 * Uint8Array, Math and BigInt (exact arithmetic for the SHA-256 constants, once) are used: no host API.
 * Randomness is never made here: `jsDtlsCrypto` takes it from the host.
 *
 * Size over speed: the constants and tables are computed on first use (nothing runs when the module
 * loads, so a bundler drops what is not imported), AES uses one 1 KB round table, GHASH multiplies bit
 * by bit. `jsDtlsCryptoCcm` leaves GCM out of a bundle: offer only TLS_PSK_WITH_AES_128_CCM_8 with it.
 * Not hardened against cache-timing attacks (table lookups); tags are compared in constant time.
 */
import type { Mac } from "../core/interfaces.js";
import type { AeadAlgorithm, DtlsCrypto } from "./crypto.js";

// ---------------------------------------------------------------------------------------------------
// SHA-256 and HMAC-SHA-256

let K: Int32Array | undefined; // 64 round constants, then the 8 initial hash words

/** The first 32 bits of the fractional part of p^(1/k), exactly (a float guess, corrected in BigInt). */
function rootBits(p: number, k: number): number {
  const bk = BigInt(k);
  const n = BigInt(p) << (32n * bk);
  let x = BigInt(Math.floor(p ** (1 / k) * 2 ** 32));
  while (x ** bk > n) x--;
  while ((x + 1n) ** bk <= n) x++;
  return Number(BigInt.asIntN(32, x));
}

function sha256Constants(): Int32Array {
  const k = new Int32Array(72);
  for (let p = 2, i = 0; i < 64; p++) {
    let d = 2;
    while (p % d) d++;
    if (d < p) continue;
    if (i < 8) k[64 + i] = rootBits(p, 2);
    k[i++] = rootBits(p, 3);
  }
  return k;
}

/** SHA-256 (FIPS 180-4). */
export function sha256(data: Uint8Array): Uint8Array {
  K ??= sha256Constants();
  const k = K;
  const n = data.length;
  const blocks = ((n + 72) >>> 6) << 6;
  const m = new Uint8Array(blocks);
  m.set(data);
  m[n] = 0x80;
  put32(m, blocks - 8, n / 0x20000000);
  put32(m, blocks - 4, n << 3);
  const h = k.slice(64);
  const w = new Int32Array(64);
  for (let at = 0; at < blocks; at += 64) {
    for (let t = 0; t < 64; t++) {
      if (t < 16) w[t] = get32(m, at + 4 * t);
      else {
        const a = w[t - 15]!;
        const b = w[t - 2]!;
        // Int32Array stores modulo 2^32: the sum needs no |0.
        w[t] =
          (ror(a, 7) ^ ror(a, 18) ^ (a >>> 3)) +
          w[t - 16]! +
          (ror(b, 17) ^ ror(b, 19) ^ (b >>> 10)) +
          w[t - 7]!;
      }
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
      const t1 = (hh + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) + ((e & f) ^ (~e & g)) + k[t]! + w[t]!) | 0;
      const t2 = ((ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) | 0;
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
  const out = new Uint8Array(32);
  for (let i = 0; i < 8; i++) put32(out, 4 * i, h[i]!);
  return out;
}

/** HMAC-SHA-256 (RFC 2104); keys longer than the 64-byte block are hashed first. */
export function hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array {
  const k = key.length > 64 ? sha256(key) : key;
  const inner = new Uint8Array(64 + data.length);
  const outer = new Uint8Array(96);
  for (let i = 0; i < 64; i++) {
    inner[i] = (k[i] ?? 0) ^ 0x36;
    outer[i] = (k[i] ?? 0) ^ 0x5c;
  }
  inner.set(data, 64);
  outer.set(sha256(inner), 64);
  return sha256(outer);
}

/** The session layer's `Mac` (connect proof) in plain JavaScript. */
export const jsMac: Mac = { hmacSha256 };

// ---------------------------------------------------------------------------------------------------
// AES-128 encryption

let S: Uint8Array | undefined; // the S-box
let T: Int32Array | undefined; // round table: column (2s, s, s, 3s) of MixColumns ∘ SubBytes

const xtime = (x: number): number => ((x << 1) ^ (x & 0x80 ? 0x11b : 0)) & 0xff;

function aesTables(): void {
  const s = new Uint8Array(256);
  const t = new Int32Array(256);
  // Walks the multiplicative group with generator 3: p runs over 3^i, q over its inverse 3^-i.
  let p = 1;
  let q = 1;
  do {
    p ^= xtime(p);
    q ^= q << 1;
    q ^= q << 2;
    q ^= q << 4;
    q &= 0xff;
    if (q & 0x80) q ^= 0x09;
    const r = q | (q << 8);
    s[p] = q ^ (r >> 7) ^ (r >> 6) ^ (r >> 5) ^ (r >> 4) ^ 0x63;
  } while (p !== 1);
  s[0] = 0x63;
  for (let i = 0; i < 256; i++) {
    const v = s[i]!;
    const v2 = xtime(v);
    t[i] = (v2 << 24) | (v << 16) | (v << 8) | (v2 ^ v);
  }
  S = s;
  T = t;
}

/** The AES-128 key schedule (FIPS 197 §5.2): 44 round-key words. */
export function aes128Key(key: Uint8Array): Int32Array {
  if (key.length !== 16) throw new RangeError("AES-128 needs a 16-byte key");
  if (!S) aesTables();
  const s = S!;
  const w = new Int32Array(44);
  for (let i = 0, rcon = 1; i < 44; i++) {
    if (i < 4) w[i] = get32(key, 4 * i);
    else {
      let x = w[i - 1]!;
      if (i % 4 === 0) {
        x =
          ((s[(x >>> 16) & 255]! << 24) | (s[(x >>> 8) & 255]! << 16) | (s[x & 255]! << 8) | s[x >>> 24]!) ^
          (rcon << 24);
        rcon = xtime(rcon);
      }
      w[i] = w[i - 4]! ^ x;
    }
  }
  return w;
}

/** Encrypts one 16-byte block at `input` into `out` (which may be the same array) with round keys `w`. */
export function aes128Encrypt(w: Int32Array, input: Uint8Array, out: Uint8Array = input): Uint8Array {
  const t = T!;
  const s = S!;
  let a = get32(input, 0) ^ w[0]!;
  let b = get32(input, 4) ^ w[1]!;
  let c = get32(input, 8) ^ w[2]!;
  let d = get32(input, 12) ^ w[3]!;
  for (let r = 4; r < 40; r += 4) {
    const a1 =
      t[a >>> 24]! ^ ror(t[(b >>> 16) & 255]!, 8) ^ ror(t[(c >>> 8) & 255]!, 16) ^ ror(t[d & 255]!, 24);
    const b1 =
      t[b >>> 24]! ^ ror(t[(c >>> 16) & 255]!, 8) ^ ror(t[(d >>> 8) & 255]!, 16) ^ ror(t[a & 255]!, 24);
    const c1 =
      t[c >>> 24]! ^ ror(t[(d >>> 16) & 255]!, 8) ^ ror(t[(a >>> 8) & 255]!, 16) ^ ror(t[b & 255]!, 24);
    d =
      t[d >>> 24]! ^
      ror(t[(a >>> 16) & 255]!, 8) ^
      ror(t[(b >>> 8) & 255]!, 16) ^
      ror(t[c & 255]!, 24) ^
      w[r + 3]!;
    a = a1 ^ w[r]!;
    b = b1 ^ w[r + 1]!;
    c = c1 ^ w[r + 2]!;
  }
  const a1 = lastRound(s, a, b, c, d, w[40]!);
  const b1 = lastRound(s, b, c, d, a, w[41]!);
  const c1 = lastRound(s, c, d, a, b, w[42]!);
  put32(out, 12, lastRound(s, d, a, b, c, w[43]!));
  put32(out, 0, a1);
  put32(out, 4, b1);
  put32(out, 8, c1);
  return out;
}

/** One column of the last round: SubBytes and ShiftRows (no MixColumns), then the round key. */
function lastRound(s: Uint8Array, p: number, q: number, r: number, u: number, k: number): number {
  return ((s[p >>> 24]! << 24) | (s[(q >>> 16) & 255]! << 16) | (s[(r >>> 8) & 255]! << 8) | s[u & 255]!) ^ k;
}

/** CTR mode: XORs `input` with E(counter), E(counter + 1), … into a new array; the counter is the
 * block's bytes from `from` to 15, big-endian (CCM: the last L bytes; GCM: the last 4). */
function ctr(w: Int32Array, counter: Uint8Array, from: number, input: Uint8Array): Uint8Array {
  const out = new Uint8Array(input.length);
  const ks = new Uint8Array(16);
  for (let at = 0; at < input.length; at += 16) {
    aes128Encrypt(w, counter, ks);
    for (let i = 0; i < 16 && at + i < input.length; i++) out[at + i] = input[at + i]! ^ ks[i]!;
    // ++ yields 256 where the byte wraps to 0: carry on.
    for (let i = 15; i >= from && ++counter[i]! === 256; i--);
  }
  return out;
}

/** Constant-time equality of two byte strings (their lengths are public). */
export function sameTag(a: Uint8Array, b: Uint8Array): boolean {
  let diff = a.length ^ b.length;
  for (let i = 0; i < a.length && i < b.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

// ---------------------------------------------------------------------------------------------------
// AES-CCM (RFC 3610, NIST SP 800-38C)

/** CBC-MAC step: absorbs `data` into the state `x`, zero-padded to whole blocks. */
function cbcMac(w: Int32Array, x: Uint8Array, data: Uint8Array): void {
  for (let at = 0; at < data.length; at += 16) {
    for (let i = 0; i < 16 && at + i < data.length; i++) x[i]! ^= data[at + i]!;
    aes128Encrypt(w, x);
  }
}

/** Checks the parameters and returns the CCM tag of `plaintext` (unencrypted) and the counter block A0. */
function ccmTag(
  w: Int32Array,
  nonce: Uint8Array,
  aad: Uint8Array,
  plaintext: Uint8Array,
  tagLength: number,
): { tag: Uint8Array; a0: Uint8Array } {
  const l = 15 - nonce.length;
  if (l < 2 || l > 8 || tagLength < 4 || tagLength > 16 || tagLength & 1)
    throw new RangeError("CCM needs a 7..13-byte nonce and an even 4..16-byte tag");
  if (plaintext.length >= 2 ** (8 * l) || aad.length >= 2 ** 32) throw new RangeError("CCM input too long");
  const x = new Uint8Array(16);
  x[0] = (aad.length ? 64 : 0) | (((tagLength - 2) / 2) << 3) | (l - 1);
  x.set(nonce, 1);
  for (let i = 15, n = plaintext.length; n > 0; i--, n = Math.floor(n / 256)) x[i] = n & 255;
  aes128Encrypt(w, x);
  if (aad.length) {
    const long = aad.length >= 0xff00;
    const header = new Uint8Array((long ? 6 : 2) + aad.length);
    if (long) {
      header[0] = 0xff;
      header[1] = 0xfe;
      put32(header, 2, aad.length);
    } else {
      header[0] = aad.length >>> 8;
      header[1] = aad.length & 255;
    }
    header.set(aad, header.length - aad.length);
    cbcMac(w, x, header);
  }
  cbcMac(w, x, plaintext);
  const a0 = new Uint8Array(16);
  a0[0] = l - 1;
  a0.set(nonce, 1);
  return { tag: x.subarray(0, tagLength), a0 };
}

/** AES-128-CCM encryption: `ciphertext || tag` (any nonce of 7..13 bytes, any even tag of 4..16). */
export function ccmSeal(
  key: Uint8Array,
  nonce: Uint8Array,
  aad: Uint8Array,
  plaintext: Uint8Array,
  tagLength = 8,
): Uint8Array {
  const w = aes128Key(key);
  const { tag, a0 } = ccmTag(w, nonce, aad, plaintext, tagLength);
  const body = ctr(w, a0, nonce.length + 1, concat(new Uint8Array(16), plaintext)); // block 0 is S0
  for (let i = 0; i < tagLength; i++) body[i]! ^= tag[i]!;
  return concat(body.subarray(16), body.subarray(0, tagLength));
}

/** AES-128-CCM decryption: the plaintext, or undefined when the tag does not verify (never throws). */
export function ccmOpen(
  key: Uint8Array,
  nonce: Uint8Array,
  aad: Uint8Array,
  sealed: Uint8Array,
  tagLength = 8,
): Uint8Array | undefined {
  try {
    const n = sealed.length - tagLength;
    if (n < 0) return undefined;
    const w = aes128Key(key);
    const a0 = new Uint8Array(16);
    a0[0] = 14 - nonce.length;
    a0.set(nonce, 1);
    const body = ctr(
      w,
      a0,
      nonce.length + 1,
      concat(sealed.subarray(n), new Uint8Array(16 - tagLength), sealed.subarray(0, n)),
    );
    const plaintext = body.subarray(16);
    const { tag } = ccmTag(w, nonce, aad, plaintext, tagLength);
    if (sameTag(tag, body.subarray(0, tagLength))) return plaintext;
    plaintext.fill(0);
  } catch {}
  return undefined;
}

// ---------------------------------------------------------------------------------------------------
// AES-GCM (NIST SP 800-38D), 96-bit IV only

/** GHASH: absorbs `data` (zero-padded to whole blocks) into the state `y` with the hash key `h`. */
function ghash(h: Int32Array, y: Int32Array, data: Uint8Array): void {
  const block = new Uint8Array(16);
  for (let at = 0; at < data.length; at += 16) {
    block.fill(0);
    block.set(data.subarray(at, at + 16));
    for (let i = 0; i < 4; i++) y[i]! ^= get32(block, 4 * i);
    // y ← y · h in GF(2^128), bit-reflected as the standard has it (Algorithm 1).
    let v0 = h[0]!;
    let v1 = h[1]!;
    let v2 = h[2]!;
    let v3 = h[3]!;
    let z0 = 0;
    let z1 = 0;
    let z2 = 0;
    let z3 = 0;
    for (let i = 0; i < 128; i++) {
      if ((y[i >>> 5]! >>> (31 - (i & 31))) & 1) {
        z0 ^= v0;
        z1 ^= v1;
        z2 ^= v2;
        z3 ^= v3;
      }
      const lsb = v3 & 1;
      v3 = (v3 >>> 1) | (v2 << 31);
      v2 = (v2 >>> 1) | (v1 << 31);
      v1 = (v1 >>> 1) | (v0 << 31);
      v0 = (v0 >>> 1) ^ (lsb ? 0xe1000000 : 0);
    }
    y.set([z0, z1, z2, z3]);
  }
}

/** The keystream-encrypted `input` (from counter 2) and the tag over `aad` and the ciphertext. */
function gcm(
  key: Uint8Array,
  iv: Uint8Array,
  aad: Uint8Array,
  input: Uint8Array,
  decrypt: boolean,
): { out: Uint8Array; tag: Uint8Array } {
  if (iv.length !== 12) throw new RangeError("GCM here takes a 12-byte IV only");
  const w = aes128Key(key);
  const hb = aes128Encrypt(w, new Uint8Array(16), new Uint8Array(16));
  const h = Int32Array.of(get32(hb, 0), get32(hb, 4), get32(hb, 8), get32(hb, 12));
  const j = new Uint8Array(16);
  j.set(iv);
  j[15] = 1;
  const body = ctr(w, j, 12, concat(new Uint8Array(16), input)); // block 0 is E(J0)
  const out = body.subarray(16);
  const y = new Int32Array(4);
  ghash(h, y, aad);
  ghash(h, y, decrypt ? input : out);
  const lengths = new Uint8Array(16);
  put32(lengths, 0, aad.length / 0x20000000);
  put32(lengths, 4, aad.length << 3);
  put32(lengths, 8, input.length / 0x20000000);
  put32(lengths, 12, input.length << 3);
  ghash(h, y, lengths);
  const tag = new Uint8Array(16);
  for (let i = 0; i < 16; i++) tag[i] = body[i]! ^ (y[i >>> 2]! >>> (24 - 8 * (i & 3)));
  return { out, tag };
}

/** AES-128-GCM encryption with a 12-byte IV: `ciphertext || 16-byte tag`. */
export function gcmSeal(key: Uint8Array, iv: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Uint8Array {
  const { out, tag } = gcm(key, iv, aad, plaintext, false);
  return concat(out, tag);
}

/** AES-128-GCM decryption: the plaintext, or undefined when the tag does not verify (never throws). */
export function gcmOpen(
  key: Uint8Array,
  iv: Uint8Array,
  aad: Uint8Array,
  sealed: Uint8Array,
): Uint8Array | undefined {
  try {
    const n = sealed.length - 16;
    if (n < 0) return undefined;
    const { out, tag } = gcm(key, iv, aad, sealed.subarray(0, n), true);
    if (sameTag(tag, sealed.subarray(n))) return out;
    out.fill(0);
  } catch {}
  return undefined;
}

// ---------------------------------------------------------------------------------------------------
// DtlsCrypto

/** One AEAD as `DtlsCrypto` uses it. */
export interface JsAead {
  seal(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Uint8Array;
  open(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array): Uint8Array | undefined;
}

/** AES-128-CCM-8 (RFC 6655): 12-byte nonce (L = 3), 8-byte tag. */
export const AES_128_CCM_8: JsAead = {
  seal: (key, nonce, aad, plaintext) => ccmSeal(key, nonce, aad, plaintext, 8),
  open: (key, nonce, aad, sealed) => ccmOpen(key, nonce, aad, sealed, 8),
};

/** AES-128-GCM (RFC 5288): 12-byte nonce, 16-byte tag. */
export const AES_128_GCM: JsAead = { seal: gcmSeal, open: gcmOpen };

/**
 * A `DtlsCrypto` from the given AEADs, with randomness from the host (`random(n)`: n cryptographically
 * random bytes; never Math.random). Sealing with an AEAD not given throws; opening returns undefined.
 */
export function jsDtlsCryptoWith(
  random: (n: number) => Uint8Array,
  aeads: Partial<Record<AeadAlgorithm, JsAead>>,
): DtlsCrypto {
  return {
    sha256,
    hmacSha256,
    randomBytes(n) {
      const bytes = random(n);
      if (bytes.length !== n)
        throw new Error(`the host's random source gave ${bytes.length} bytes, not ${n}`);
      return bytes;
    },
    seal(alg, key, nonce, aad, plaintext) {
      const aead = aeads[alg];
      if (!aead) throw new Error(`${alg} is not in this build`);
      return aead.seal(key, nonce, aad, plaintext);
    },
    open: (alg, key, nonce, aad, sealed) => aeads[alg]?.open(key, nonce, aad, sealed),
  };
}

/** The complete pure-JavaScript `DtlsCrypto`: both suites (CCM_8 and GCM). */
export function jsDtlsCrypto(random: (n: number) => Uint8Array): DtlsCrypto {
  return jsDtlsCryptoWith(random, { "aes-128-ccm-8": AES_128_CCM_8, "aes-128-gcm": AES_128_GCM });
}

/** The tiny-node `DtlsCrypto`: AES-128-CCM-8 only (GCM left out of the bundle; offer CCM_8 only). */
export function jsDtlsCryptoCcm(random: (n: number) => Uint8Array): DtlsCrypto {
  return jsDtlsCryptoWith(random, { "aes-128-ccm-8": AES_128_CCM_8 });
}

// ---------------------------------------------------------------------------------------------------
// Helpers

function ror(x: number, n: number): number {
  return (x >>> n) | (x << (32 - n));
}

function get32(b: Uint8Array, at: number): number {
  return (b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!;
}

function put32(b: Uint8Array, at: number, x: number): void {
  b[at] = x >>> 24;
  b[at + 1] = x >>> 16;
  b[at + 2] = x >>> 8;
  b[at + 3] = x;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
