/**
 * What a host gives the tiny node (docs/TINY-NODE.md): the few side effects the portable client needs,
 * as plain functions an embedded runtime can implement in its own glue. Nothing else is assumed: no
 * timers API, no sockets, no crypto, no TextEncoder.
 */
import type { LogLevel } from "../core/interfaces.js";

export interface TinyHost {
  /** Puts one datagram on the wire to the gateway. Never throws for network conditions. */
  send(datagram: Uint8Array): void;
  /** Milliseconds on a monotonic clock. */
  now(): number;
  /**
   * Arms the host's one timer: `fire` runs once, `delayMs` from now. A new call replaces the pending
   * one; the node keeps its own queue of deadlines on top of it.
   */
  setTimer(delayMs: number, fire: () => void): void;
  /** Disarms the timer (nothing is due). */
  clearTimer(): void;
  /** `n` cryptographically random bytes (keys, nonces, tokens): the host's hardware RNG. */
  random(n: number): Uint8Array;
  /**
   * The node's cryptography: the host's own (a hardware AES engine, mbedTLS), or the pure-JavaScript
   * `jsCrypto` (js-crypto.ts, bundled apart as cxmpp-crypto.mjs) where it has none. Every node needs
   * `hmacSha256` (the connect proof); a coaps node all four.
   */
  readonly crypto?: TinyCrypto;
  /** Optional log sink. */
  log?(level: LogLevel, event: string, fields?: Readonly<Record<string, unknown>>): void;
}

/** Cryptography for the tiny node: AES-128-CCM-8 only, the one suite it offers. */
export interface TinyCrypto {
  readonly sha256?: (data: Uint8Array) => Uint8Array;
  readonly hmacSha256?: (key: Uint8Array, data: Uint8Array) => Uint8Array;
  /** AES-128-CCM with an 8-byte tag, 12-byte nonce: ciphertext ‖ tag. */
  readonly aes128Ccm8Seal?: (
    key: Uint8Array,
    nonce: Uint8Array,
    aad: Uint8Array,
    plaintext: Uint8Array,
  ) => Uint8Array;
  /** Undefined when the tag does not verify. */
  readonly aes128Ccm8Open?: (
    key: Uint8Array,
    nonce: Uint8Array,
    aad: Uint8Array,
    sealed: Uint8Array,
  ) => Uint8Array | undefined;
}
