/**
 * The tiny node's cryptography: what the host does natively (TinyHost.crypto), the pure-JavaScript
 * fallback (src/dtls/js-crypto.ts) for the rest. Only AES-128-CCM-8, the suite the node offers: no GCM
 * code is bundled.
 */
import type { DtlsCrypto } from "../dtls/crypto.js";
import { jsDtlsCryptoCcm } from "../dtls/js-crypto.js";
import type { TinyHost } from "./host.js";

export function tinyCrypto(host: TinyHost): DtlsCrypto {
  const js = jsDtlsCryptoCcm((n) => host.random(n));
  const native = host.crypto ?? {};
  const ccmSeal = native.aes128Ccm8Seal;
  const ccmOpen = native.aes128Ccm8Open;
  return {
    sha256: native.sha256 ?? js.sha256,
    hmacSha256: native.hmacSha256 ?? js.hmacSha256,
    randomBytes: (n) => host.random(n),
    seal: (alg, key, nonce, aad, plaintext) =>
      ccmSeal && alg === "aes-128-ccm-8"
        ? ccmSeal(key, nonce, aad, plaintext)
        : js.seal(alg, key, nonce, aad, plaintext),
    open: (alg, key, nonce, aad, sealed) =>
      ccmOpen && alg === "aes-128-ccm-8"
        ? ccmOpen(key, nonce, aad, sealed)
        : js.open(alg, key, nonce, aad, sealed),
  };
}
