/**
 * The cryptography the DTLS layer needs, passed in by the host like the clock and the transport
 * (docs/ARCHITECTURE.md): Node.js gives node:crypto (src/node/dtls-crypto.ts); an embedded engine
 * gives its own, or takes the pure-JavaScript fallback (js-crypto.ts) for what it lacks.
 */
import type { Mac } from "../core/interfaces.js";

/** The AEAD algorithms of the two cipher suites (suites.ts). */
export type AeadAlgorithm = "aes-128-ccm-8" | "aes-128-gcm";

export interface DtlsCrypto extends Mac {
  sha256(data: Uint8Array): Uint8Array;
  /** Encrypts and authenticates: returns ciphertext followed by the tag. */
  seal(
    alg: AeadAlgorithm,
    key: Uint8Array,
    nonce: Uint8Array,
    aad: Uint8Array,
    plaintext: Uint8Array,
  ): Uint8Array;
  /** Checks and decrypts `ciphertext || tag`; undefined when authentication fails (never throws). */
  open(
    alg: AeadAlgorithm,
    key: Uint8Array,
    nonce: Uint8Array,
    aad: Uint8Array,
    sealed: Uint8Array,
  ): Uint8Array | undefined;
  /** Cryptographically random bytes (client/server randoms, cookie secrets). */
  randomBytes(n: number): Uint8Array;
}
