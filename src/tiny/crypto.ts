/**
 * The tiny node's cryptography, all of it from the host (TinyHost.crypto): its own, or the
 * pure-JavaScript `jsCrypto` (js-crypto.ts), which is not in the node's bundle: a host with hardware
 * AES and SHA-256 does not carry it. Only AES-128-CCM-8, the suite the node offers.
 */
import type { DtlsCrypto } from "../dtls/crypto.js";
import type { TinyCrypto, TinyHost } from "./host.js";

/** Throws a TypeError naming what the host lacks: `hmacSha256` always, all four for coaps. */
export function tinyCrypto(host: TinyHost, secure: boolean): DtlsCrypto {
  const c: TinyCrypto = host.crypto ?? {};
  const needed = secure
    ? (["hmacSha256", "sha256", "aes128Ccm8Seal", "aes128Ccm8Open"] as const)
    : (["hmacSha256"] as const);
  const missing = needed.filter((k) => typeof c[k] !== "function");
  if (missing.length > 0)
    throw new TypeError(
      `host.crypto has no ${missing.join(", ")}: give the host's own, or jsCrypto (cxmpp-crypto.mjs)`,
    );
  // Checked above (a plain coap node uses only hmacSha256).
  const { sha256, hmacSha256, aes128Ccm8Seal: seal, aes128Ccm8Open: open } = c as Required<TinyCrypto>;
  return {
    sha256,
    hmacSha256,
    randomBytes: (n) => host.random(n),
    seal: (_alg, key, nonce, aad, plaintext) => seal(key, nonce, aad, plaintext),
    open: (_alg, key, nonce, aad, sealed) => open(key, nonce, aad, sealed),
  };
}
