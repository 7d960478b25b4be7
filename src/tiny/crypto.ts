/**
 * The tiny node's cryptography, all of it from the host (TinyHost.crypto): its own, or the
 * pure-JavaScript `jsCrypto` (js-crypto.ts), which is not in the node's bundle: a host with hardware
 * AES and SHA-256 does not carry it. The node itself needs only `hmacSha256` (the connect proof); a
 * DTLS client in JavaScript says what it needs (TinyDtls.needs: jsDtls all four), and the node checks
 * that too, so that the DTLS bundle carries no check of its own.
 */
import type { TinyCrypto } from "./host.js";

/** `crypto`'s functions `needed`; throws a TypeError naming those it lacks. */
export function requireCrypto<K extends keyof TinyCrypto>(
  crypto: TinyCrypto | undefined,
  needed: readonly K[],
): Required<Pick<TinyCrypto, K>> {
  const c = crypto ?? {};
  const missing = needed.filter((k) => typeof c[k] !== "function");
  if (missing.length > 0)
    throw new TypeError(
      `host.crypto has no ${missing.join(", ")}: give the host's own, or jsCrypto (cxmpp-crypto.mjs)`,
    );
  return c as Required<Pick<TinyCrypto, K>>;
}
