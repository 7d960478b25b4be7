/**
 * CoAP numbers in one place (registries as data, with the spec section cited).
 * RFC 7252 §12 (types, codes, options, content formats), RFC 7641 (Observe), RFC 7959 (Block1/2,
 * Size1/2), RFC 9175 (Request-Tag, Echo).
 */

/** Message types, RFC 7252 §3. */
export const MessageType = Object.freeze({ CON: 0, NON: 1, ACK: 2, RST: 3 });
export type MessageType = (typeof MessageType)[keyof typeof MessageType];
export const MESSAGE_TYPE_NAMES = ["CON", "NON", "ACK", "RST"] as const;

/** A code is class.detail packed as class << 5 | detail (RFC 7252 §3). */
export const code = (cls: number, detail: number): number => (cls << 5) | detail;
export const codeClass = (c: number): number => c >>> 5;
export const codeString = (c: number): string => `${c >>> 5}.${String(c & 31).padStart(2, "0")}`;

/** RFC 7252 §12.1.1 methods and §12.1.2 response codes (plus RFC 7959 §2.9 4.08, 4.13). */
export const Code = Object.freeze({
  EMPTY: code(0, 0),
  GET: code(0, 1),
  POST: code(0, 2),
  PUT: code(0, 3),
  DELETE: code(0, 4),
  FETCH: code(0, 5),
  CREATED: code(2, 1),
  DELETED: code(2, 2),
  VALID: code(2, 3),
  CHANGED: code(2, 4),
  CONTENT: code(2, 5),
  CONTINUE: code(2, 31),
  BAD_REQUEST: code(4, 0),
  UNAUTHORIZED: code(4, 1),
  BAD_OPTION: code(4, 2),
  FORBIDDEN: code(4, 3),
  NOT_FOUND: code(4, 4),
  METHOD_NOT_ALLOWED: code(4, 5),
  NOT_ACCEPTABLE: code(4, 6),
  REQUEST_ENTITY_INCOMPLETE: code(4, 8),
  CONFLICT: code(4, 9),
  PRECONDITION_FAILED: code(4, 12),
  REQUEST_ENTITY_TOO_LARGE: code(4, 13),
  // RFC 8132 §3.2: the request is well-formed but cannot be processed (an ack beyond what was sent).
  UNPROCESSABLE_ENTITY: code(4, 22),
  UNSUPPORTED_CONTENT_FORMAT: code(4, 15),
  TOO_MANY_REQUESTS: code(4, 29),
  INTERNAL_SERVER_ERROR: code(5, 0),
  NOT_IMPLEMENTED: code(5, 1),
  SERVICE_UNAVAILABLE: code(5, 3),
});

/** Option numbers, RFC 7252 §12.2 and the RFCs named. */
export const OptionNumber = Object.freeze({
  IF_MATCH: 1,
  URI_HOST: 3,
  ETAG: 4,
  IF_NONE_MATCH: 5,
  OBSERVE: 6, // RFC 7641 §2
  URI_PORT: 7,
  LOCATION_PATH: 8,
  URI_PATH: 11,
  CONTENT_FORMAT: 12,
  MAX_AGE: 14,
  URI_QUERY: 15,
  ACCEPT: 17,
  LOCATION_QUERY: 20,
  BLOCK2: 23, // RFC 7959 §2.1
  BLOCK1: 27,
  SIZE2: 28,
  PROXY_URI: 35,
  PROXY_SCHEME: 39,
  SIZE1: 60,
  ECHO: 252, // RFC 9175 §2
  NO_RESPONSE: 258, // RFC 7967
  REQUEST_TAG: 292, // RFC 9175 §3
});

/** Critical options have an odd number (RFC 7252 §5.4.6); an unknown critical one is rejected with 4.02. */
export const isCritical = (option: number): boolean => (option & 1) === 1;

/** Options this stack understands (an unrecognised critical option in a request gets 4.02). */
export const KNOWN_OPTIONS: ReadonlySet<number> = new Set(Object.values(OptionNumber));

/** Content-Format ids, RFC 7252 §12.3 and IANA. */
export const ContentFormat = Object.freeze({
  TEXT_PLAIN: 0,
  LINK_FORMAT: 40,
  OCTET_STREAM: 42,
  JSON: 50,
  CBOR: 60,
  /** cxmpp frames (docs/FORMAT.md) — from the experimental range (RFC 7252 §12.3: 65000-65535). */
  CXMPP_FRAME: 65_100,
  /** cxmpp session messages in CBOR (docs/PROTOCOL.md). */
  CXMPP_SESSION: 65_101,
});

/** Transmission parameters, RFC 7252 §4.8; every endpoint may override them (no process-global state). */
export interface TransmissionParameters {
  readonly ackTimeoutMs: number;
  readonly ackRandomFactor: number;
  readonly maxRetransmit: number;
  /** Outstanding CON exchanges per peer (RFC 7252 §4.7). */
  readonly nstart: number;
  /** How long a received message id is remembered for deduplication (EXCHANGE_LIFETIME, §4.8.2). */
  readonly exchangeLifetimeMs: number;
  /** How long a NON message id is remembered (NON_LIFETIME, §4.8.2). */
  readonly nonLifetimeMs: number;
}

export const DEFAULT_TRANSMISSION: TransmissionParameters = Object.freeze({
  ackTimeoutMs: 2_000,
  ackRandomFactor: 1.5,
  maxRetransmit: 4,
  nstart: 1,
  exchangeLifetimeMs: 247_000,
  nonLifetimeMs: 145_000,
});
