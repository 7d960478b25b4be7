/**
 * DTLS 1.2 with pre-shared keys (RFC 6347, RFC 4279; the RFC 7925 profile) as a `DatagramTransport`
 * layer: the CoAP core runs over it exactly as over plain UDP and never imports it
 * (docs/ARCHITECTURE.md). Portable like the core: cryptography comes from the host (`DtlsCrypto`).
 */
export { DtlsClient, type DtlsClientOptions, type DtlsClientStats } from "./client.js";
export { DEFAULT_MTU, DEFAULT_RETRANSMIT, type RetransmitParameters } from "./connection.js";
export type { AeadAlgorithm, DtlsCrypto } from "./crypto.js";
export { Alert, AlertLevel, alertName, DtlsError, type DtlsErrorKind } from "./errors.js";
export { jsDtlsCrypto, jsDtlsCryptoCcm, jsMac } from "./js-crypto.js";
export {
  ContentType,
  DTLS_1_0,
  DTLS_1_2,
  parseRecords,
  RECORD_HEADER_BYTES,
  ReplayWindow,
} from "./record.js";
export {
  DEFAULT_DTLS_SERVER_LIMITS,
  DTLS_PEER_PREFIX,
  DtlsServer,
  type DtlsServerLimits,
  type DtlsServerOptions,
  type DtlsServerStats,
  type DtlsSessionEvent,
  dtlsPeer,
  identityText,
} from "./server.js";
export {
  CIPHER_SUITES,
  type CipherSuite,
  DEFAULT_SUITES,
  TLS_PSK_WITH_AES_128_CCM_8,
  TLS_PSK_WITH_AES_128_GCM_SHA256,
} from "./suites.js";
