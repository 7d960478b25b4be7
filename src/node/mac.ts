/**
 * HMAC-SHA-256 (RFC 2104, FIPS 180-4) for the session layer's connect: the node's proof and the
 * gateway's stateless nonces (src/core Mac).
 *
 * In plain JavaScript rather than node:crypto, for speed: a connect computes three short HMACs, and
 * each createHmac fetches the digest from OpenSSL (a locked lookup), makes a native object that the
 * garbage collector must finalise and an external Buffer, 3-4.5 µs in all; here an HMAC under a key
 * whose two padded blocks were compressed once (`HmacSha256Key`) is two compressions, about 1 µs, with
 * nothing allocated. The output is the same function's (test/node/mac.test.ts checks it against
 * node:crypto); no branch or table index depends on the key or the data. The compression is
 * src/dtls/js-crypto.ts's (the tiny node's pure-JavaScript crypto); what is here is the HMAC's reuse of
 * its padded key blocks.
 */
import type { Mac } from "../core/interfaces.js";
import { sha256Block, sha256K } from "../dtls/js-crypto.js";

const BLOCK = 64;
/** The message schedule, shared: a compression never runs twice at once (no await inside). */
const W = new Int32Array(64);
/** The round constants, then the initial hash value (FIPS 180-4 §4.2.2, §5.3.3). */
const K = sha256K();
const IV = K.slice(64);

function compress(h: Int32Array, m: Uint8Array, at: number): void {
  sha256Block(h, m, at, W, K);
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
