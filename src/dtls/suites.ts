/**
 * The cipher suites this DTLS layer speaks: both PSK with AES-128 in an AEAD mode, PRF SHA-256
 * (RFC 5246 §5), 4-byte implicit salt and 8-byte explicit nonce per record (RFC 5288 §3, RFC 6655 §3).
 * `TLS_PSK_WITH_AES_128_CCM_8` is CoAP's mandatory suite (RFC 7252 §9.1.3.1, RFC 7925 §4.2);
 * `TLS_PSK_WITH_AES_128_GCM_SHA256` is the one every common client offers.
 */
import type { AeadAlgorithm } from "./crypto.js";

export interface CipherSuite {
  readonly id: number;
  readonly name: string;
  readonly aead: AeadAlgorithm;
  readonly keyLength: number;
  /** The implicit part of the nonce, from the key block (client_write_IV / server_write_IV). */
  readonly fixedIvLength: number;
  /** The explicit part of the nonce, carried in every record. */
  readonly recordIvLength: number;
  readonly tagLength: number;
}

export const TLS_PSK_WITH_AES_128_CCM_8 = 0xc0a8;
export const TLS_PSK_WITH_AES_128_GCM_SHA256 = 0x00a8;

export const CIPHER_SUITES: ReadonlyMap<number, CipherSuite> = new Map([
  [
    TLS_PSK_WITH_AES_128_CCM_8,
    {
      id: TLS_PSK_WITH_AES_128_CCM_8,
      name: "TLS_PSK_WITH_AES_128_CCM_8",
      aead: "aes-128-ccm-8",
      keyLength: 16,
      fixedIvLength: 4,
      recordIvLength: 8,
      tagLength: 8,
    },
  ],
  [
    TLS_PSK_WITH_AES_128_GCM_SHA256,
    {
      id: TLS_PSK_WITH_AES_128_GCM_SHA256,
      name: "TLS_PSK_WITH_AES_128_GCM_SHA256",
      aead: "aes-128-gcm",
      keyLength: 16,
      fixedIvLength: 4,
      recordIvLength: 8,
      tagLength: 16,
    },
  ],
]);

/** Preference order: CoAP's mandatory suite first (its 8-byte tag is 8 bytes less on air). */
export const DEFAULT_SUITES: readonly number[] = [
  TLS_PSK_WITH_AES_128_CCM_8,
  TLS_PSK_WITH_AES_128_GCM_SHA256,
];

/** TLS_EMPTY_RENEGOTIATION_INFO_SCSV (RFC 5746 §3.3): a client that supports secure renegotiation. */
export const RENEGOTIATION_SCSV = 0x00ff;
