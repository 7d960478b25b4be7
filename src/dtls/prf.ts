/**
 * Key derivation (RFC 5246 §5, §8.1, §6.3): the TLS 1.2 PRF with HMAC-SHA-256, the PSK premaster
 * secret (RFC 4279 §2), the extended master secret (RFC 7627 §4), the key block and Finished.
 */
import type { DtlsCrypto } from "./crypto.js";
import type { CipherSuite } from "./suites.js";
import { ascii, concatBytes } from "./wire.js";

/** P_SHA256(secret, seed) truncated to `length` bytes (RFC 5246 §5). */
export function prf(
  crypto: DtlsCrypto,
  secret: Uint8Array,
  label: string,
  seed: Uint8Array,
  length: number,
): Uint8Array {
  const labelSeed = concatBytes([ascii(label), seed]);
  const out = new Uint8Array(length);
  let a = labelSeed;
  let at = 0;
  while (at < length) {
    a = crypto.hmacSha256(secret, a);
    const block = crypto.hmacSha256(secret, concatBytes([a, labelSeed]));
    const n = Math.min(block.length, length - at);
    out.set(block.subarray(0, n), at);
    at += n;
  }
  return out;
}

/** The premaster secret of plain PSK: uint16 N, N zero bytes, uint16 N, the PSK (RFC 4279 §2). */
export function pskPremaster(psk: Uint8Array): Uint8Array {
  const n = psk.length;
  const out = new Uint8Array(4 + 2 * n);
  out[0] = n >>> 8;
  out[1] = n & 0xff;
  out[2 + n] = n >>> 8;
  out[3 + n] = n & 0xff;
  out.set(psk, 4 + n);
  return out;
}

export interface MasterSecretInput {
  readonly premaster: Uint8Array;
  readonly clientRandom: Uint8Array;
  readonly serverRandom: Uint8Array;
  /** Hash of the handshake through ClientKeyExchange, when extended master secret was negotiated. */
  readonly sessionHash?: Uint8Array;
}

export function masterSecret(crypto: DtlsCrypto, i: MasterSecretInput): Uint8Array {
  return i.sessionHash
    ? prf(crypto, i.premaster, "extended master secret", i.sessionHash, 48)
    : prf(crypto, i.premaster, "master secret", concatBytes([i.clientRandom, i.serverRandom]), 48);
}

export interface TrafficKeys {
  readonly clientKey: Uint8Array;
  readonly serverKey: Uint8Array;
  readonly clientIv: Uint8Array;
  readonly serverIv: Uint8Array;
}

/** The key block split for an AEAD suite: no MAC keys (RFC 5246 §6.3, RFC 5288 §3). */
export function trafficKeys(
  crypto: DtlsCrypto,
  suite: CipherSuite,
  master: Uint8Array,
  clientRandom: Uint8Array,
  serverRandom: Uint8Array,
): TrafficKeys {
  const k = suite.keyLength;
  const iv = suite.fixedIvLength;
  const block = prf(
    crypto,
    master,
    "key expansion",
    concatBytes([serverRandom, clientRandom]),
    2 * k + 2 * iv,
  );
  return {
    clientKey: block.slice(0, k),
    serverKey: block.slice(k, 2 * k),
    clientIv: block.slice(2 * k, 2 * k + iv),
    serverIv: block.slice(2 * k + iv, 2 * k + 2 * iv),
  };
}

/** Finished.verify_data: 12 bytes of PRF over the handshake hash (RFC 5246 §7.4.9). */
export function verifyData(
  crypto: DtlsCrypto,
  master: Uint8Array,
  sender: "client" | "server",
  handshakeHash: Uint8Array,
): Uint8Array {
  return prf(crypto, master, `${sender} finished`, handshakeHash, 12);
}
