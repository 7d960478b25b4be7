/**
 * The DTLS layer's cryptography from node:crypto (src/dtls DtlsCrypto): SHA-256, HMAC-SHA-256,
 * AES-128-CCM with an 8-byte tag (RFC 6655) and AES-128-GCM (RFC 5288), OpenSSL underneath.
 */
import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes } from "node:crypto";
import type { AeadAlgorithm, DtlsCrypto } from "../dtls/index.js";

const TAG: Readonly<Record<AeadAlgorithm, number>> = { "aes-128-ccm-8": 8, "aes-128-gcm": 16 };

function cipherName(alg: AeadAlgorithm): "aes-128-ccm" | "aes-128-gcm" {
  return alg === "aes-128-ccm-8" ? "aes-128-ccm" : "aes-128-gcm";
}

function view(b: Buffer): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

export const nodeDtlsCrypto: DtlsCrypto = {
  sha256: (data) => view(createHash("sha256").update(data).digest()),
  hmacSha256: (key, data) => view(createHmac("sha256", key).update(data).digest()),
  randomBytes: (n) => view(randomBytes(n)),
  seal(alg, key, nonce, aad, plaintext) {
    const tagLength = TAG[alg];
    // node's typings split CCM and GCM options; both take authTagLength.
    const cipher = createCipheriv(cipherName(alg) as "aes-128-ccm", key, nonce, { authTagLength: tagLength });
    cipher.setAAD(aad, { plaintextLength: plaintext.length });
    // An empty view of a zero-length ArrayBuffer reaches OpenSSL as a NULL pointer and CCM throws
    // "tag not set": a fresh empty Buffer does not (an empty DTLS record is legal).
    const body = cipher.update(plaintext.length > 0 ? plaintext : Buffer.alloc(0));
    cipher.final();
    return view(Buffer.concat([body, cipher.getAuthTag()]));
  },
  open(alg, key, nonce, aad, sealed) {
    const tagLength = TAG[alg];
    if (sealed.length < tagLength) return undefined;
    const ciphertext = sealed.subarray(0, sealed.length - tagLength);
    try {
      const decipher = createDecipheriv(cipherName(alg) as "aes-128-ccm", key, nonce, {
        authTagLength: tagLength,
      });
      decipher.setAuthTag(sealed.subarray(sealed.length - tagLength));
      decipher.setAAD(aad, { plaintextLength: ciphertext.length });
      const body = decipher.update(ciphertext.length > 0 ? ciphertext : Buffer.alloc(0));
      decipher.final(); // throws when the tag does not verify
      return view(body);
    } catch {
      return undefined;
    }
  },
};
