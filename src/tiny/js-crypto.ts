/**
 * The pure-JavaScript cryptography for a host without its own (docs/TINY-NODE.md): SHA-256,
 * HMAC-SHA-256 and AES-128-CCM-8 of src/dtls/js-crypto.ts (checked against FIPS 180-4, RFC 4231,
 * FIPS 197 and RFC 3610 vectors) as a `TinyHost.crypto`. Not part of the node's API module, so not in
 * its bundle: `npm run build:node` bundles it apart as dist/tiny/cxmpp-crypto.mjs, which a host loads
 * only if it lacks crypto (`host.crypto = jsCrypto`, or `{ ...jsCrypto, ...own }` to fill gaps); a
 * device program that needs it imports it and is bundled with it.
 */
import { AES_128_CCM_8, hmacSha256, sha256 } from "../dtls/js-crypto.js";
import type { TinyCrypto } from "./host.js";

export const jsCrypto: TinyCrypto = Object.freeze({
  sha256,
  hmacSha256,
  aes128Ccm8Seal: AES_128_CCM_8.seal,
  aes128Ccm8Open: AES_128_CCM_8.open,
});
