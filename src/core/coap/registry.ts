/**
 * CoAP numbers in one place (registries as data, with the spec section cited).
 * RFC 7252 §12 (types, codes, options, content formats), RFC 7641 (Observe), RFC 7959 (Block1/2,
 * Size1/2), RFC 9175 (Request-Tag, Echo).
 */

// Each number is also a constant of its own (CON, CODE_POST, OPT_BLOCK2, …), which the core uses: a
// bundler inlines those as literals, where `Code.POST` stays a property read of a kept object (the tiny
// node's bundle, tools/build-node.ts). The objects stay the registries' API, made of the constants.

/** Message types, RFC 7252 §3. */
export const CON = 0;
export const NON = 1;
export const ACK = 2;
export const RST = 3;
export const MessageType = /* @__PURE__ */ Object.freeze({ CON, NON, ACK, RST });
export type MessageType = (typeof MessageType)[keyof typeof MessageType];
export const MESSAGE_TYPE_NAMES = ["CON", "NON", "ACK", "RST"] as const;

/** A code is class.detail packed as class << 5 | detail (RFC 7252 §3). */
export const code = (cls: number, detail: number): number => (cls << 5) | detail;
export const codeClass = (c: number): number => c >>> 5;
export const codeString = (c: number): string => `${c >>> 5}.${String(c & 31).padStart(2, "0")}`;

/** RFC 7252 §12.1.1 methods and §12.1.2 response codes (plus RFC 7959 §2.9 4.08, 4.13). */
export const CODE_EMPTY: number = 0; // 0.00
export const CODE_GET: number = 1; // 0.01
export const CODE_POST: number = 2; // 0.02
export const CODE_PUT: number = 3; // 0.03
export const CODE_DELETE: number = 4; // 0.04
export const CODE_FETCH: number = 5; // 0.05
export const CODE_CREATED: number = 65; // 2.01
export const CODE_DELETED: number = 66; // 2.02
export const CODE_VALID: number = 67; // 2.03
export const CODE_CHANGED: number = 68; // 2.04
export const CODE_CONTENT: number = 69; // 2.05
export const CODE_CONTINUE: number = 95; // 2.31
export const CODE_BAD_REQUEST: number = 128; // 4.00
export const CODE_UNAUTHORIZED: number = 129; // 4.01
export const CODE_BAD_OPTION: number = 130; // 4.02
export const CODE_FORBIDDEN: number = 131; // 4.03
export const CODE_NOT_FOUND: number = 132; // 4.04
export const CODE_METHOD_NOT_ALLOWED: number = 133; // 4.05
export const CODE_NOT_ACCEPTABLE: number = 134; // 4.06
export const CODE_REQUEST_ENTITY_INCOMPLETE: number = 136; // 4.08
export const CODE_CONFLICT: number = 137; // 4.09
export const CODE_PRECONDITION_FAILED: number = 140; // 4.12
export const CODE_REQUEST_ENTITY_TOO_LARGE: number = 141; // 4.13
export const CODE_UNPROCESSABLE_ENTITY: number = 150; // 4.22
export const CODE_UNSUPPORTED_CONTENT_FORMAT: number = 143; // 4.15
export const CODE_TOO_MANY_REQUESTS: number = 157; // 4.29
export const CODE_INTERNAL_SERVER_ERROR: number = 160; // 5.00
export const CODE_NOT_IMPLEMENTED: number = 161; // 5.01
export const CODE_SERVICE_UNAVAILABLE: number = 163; // 5.03
export const Code = /* @__PURE__ */ Object.freeze({
  EMPTY: CODE_EMPTY,
  GET: CODE_GET,
  POST: CODE_POST,
  PUT: CODE_PUT,
  DELETE: CODE_DELETE,
  FETCH: CODE_FETCH,
  CREATED: CODE_CREATED,
  DELETED: CODE_DELETED,
  VALID: CODE_VALID,
  CHANGED: CODE_CHANGED,
  CONTENT: CODE_CONTENT,
  CONTINUE: CODE_CONTINUE,
  BAD_REQUEST: CODE_BAD_REQUEST,
  UNAUTHORIZED: CODE_UNAUTHORIZED,
  BAD_OPTION: CODE_BAD_OPTION,
  FORBIDDEN: CODE_FORBIDDEN,
  NOT_FOUND: CODE_NOT_FOUND,
  METHOD_NOT_ALLOWED: CODE_METHOD_NOT_ALLOWED,
  NOT_ACCEPTABLE: CODE_NOT_ACCEPTABLE,
  REQUEST_ENTITY_INCOMPLETE: CODE_REQUEST_ENTITY_INCOMPLETE,
  CONFLICT: CODE_CONFLICT,
  PRECONDITION_FAILED: CODE_PRECONDITION_FAILED,
  REQUEST_ENTITY_TOO_LARGE: CODE_REQUEST_ENTITY_TOO_LARGE,
  // RFC 8132 §3.2: the request is well-formed but cannot be processed (an ack beyond what was sent).
  UNPROCESSABLE_ENTITY: CODE_UNPROCESSABLE_ENTITY,
  UNSUPPORTED_CONTENT_FORMAT: CODE_UNSUPPORTED_CONTENT_FORMAT,
  TOO_MANY_REQUESTS: CODE_TOO_MANY_REQUESTS,
  INTERNAL_SERVER_ERROR: CODE_INTERNAL_SERVER_ERROR,
  NOT_IMPLEMENTED: CODE_NOT_IMPLEMENTED,
  SERVICE_UNAVAILABLE: CODE_SERVICE_UNAVAILABLE,
});

/** Option numbers, RFC 7252 §12.2 and the RFCs named. */
export const OPT_IF_MATCH = 1;
export const OPT_URI_HOST = 3;
export const OPT_ETAG = 4;
export const OPT_IF_NONE_MATCH = 5;
export const OPT_OBSERVE = 6; // RFC 7641 §2
export const OPT_URI_PORT = 7;
export const OPT_LOCATION_PATH = 8;
export const OPT_URI_PATH = 11;
export const OPT_CONTENT_FORMAT = 12;
export const OPT_MAX_AGE = 14;
export const OPT_URI_QUERY = 15;
export const OPT_ACCEPT = 17;
export const OPT_LOCATION_QUERY = 20;
export const OPT_BLOCK2 = 23; // RFC 7959 §2.1
export const OPT_BLOCK1 = 27;
export const OPT_SIZE2 = 28;
export const OPT_PROXY_URI = 35;
export const OPT_PROXY_SCHEME = 39;
export const OPT_SIZE1 = 60;
export const OPT_ECHO = 252; // RFC 9175 §2
export const OPT_NO_RESPONSE = 258; // RFC 7967
export const OPT_REQUEST_TAG = 292; // RFC 9175 §3
export const OptionNumber = /* @__PURE__ */ Object.freeze({
  IF_MATCH: OPT_IF_MATCH,
  URI_HOST: OPT_URI_HOST,
  ETAG: OPT_ETAG,
  IF_NONE_MATCH: OPT_IF_NONE_MATCH,
  OBSERVE: OPT_OBSERVE,
  URI_PORT: OPT_URI_PORT,
  LOCATION_PATH: OPT_LOCATION_PATH,
  URI_PATH: OPT_URI_PATH,
  CONTENT_FORMAT: OPT_CONTENT_FORMAT,
  MAX_AGE: OPT_MAX_AGE,
  URI_QUERY: OPT_URI_QUERY,
  ACCEPT: OPT_ACCEPT,
  LOCATION_QUERY: OPT_LOCATION_QUERY,
  BLOCK2: OPT_BLOCK2,
  BLOCK1: OPT_BLOCK1,
  SIZE2: OPT_SIZE2,
  PROXY_URI: OPT_PROXY_URI,
  PROXY_SCHEME: OPT_PROXY_SCHEME,
  SIZE1: OPT_SIZE1,
  ECHO: OPT_ECHO,
  NO_RESPONSE: OPT_NO_RESPONSE,
  REQUEST_TAG: OPT_REQUEST_TAG,
});

/** Critical options have an odd number (RFC 7252 §5.4.6); an unknown critical one is rejected with 4.02. */
export const isCritical = (option: number): boolean => (option & 1) === 1;

/**
 * Options this stack understands (an unrecognised critical option in a request gets 4.02): every
 * OptionNumber, listed by constant so that a bundle needs not the object (test/core/coap-message.test.ts
 * checks the two agree).
 */
export const KNOWN_OPTIONS: ReadonlySet<number> = new Set([
  OPT_IF_MATCH,
  OPT_URI_HOST,
  OPT_ETAG,
  OPT_IF_NONE_MATCH,
  OPT_OBSERVE,
  OPT_URI_PORT,
  OPT_LOCATION_PATH,
  OPT_URI_PATH,
  OPT_CONTENT_FORMAT,
  OPT_MAX_AGE,
  OPT_URI_QUERY,
  OPT_ACCEPT,
  OPT_LOCATION_QUERY,
  OPT_BLOCK2,
  OPT_BLOCK1,
  OPT_SIZE2,
  OPT_PROXY_URI,
  OPT_PROXY_SCHEME,
  OPT_SIZE1,
  OPT_ECHO,
  OPT_NO_RESPONSE,
  OPT_REQUEST_TAG,
]);

/** Content-Format ids, RFC 7252 §12.3 and IANA. */
export const CF_TEXT_PLAIN = 0;
export const CF_LINK_FORMAT = 40;
export const CF_OCTET_STREAM = 42;
export const CF_JSON = 50;
export const CF_CBOR = 60;
export const CF_CXMPP_FRAME = 65_100;
export const CF_CXMPP_SESSION = 65_101;
export const ContentFormat = /* @__PURE__ */ Object.freeze({
  TEXT_PLAIN: CF_TEXT_PLAIN,
  LINK_FORMAT: CF_LINK_FORMAT,
  OCTET_STREAM: CF_OCTET_STREAM,
  JSON: CF_JSON,
  CBOR: CF_CBOR,
  /** cxmpp frames (docs/FORMAT.md) — from the experimental range (RFC 7252 §12.3: 65000-65535). */
  CXMPP_FRAME: CF_CXMPP_FRAME,
  /** cxmpp session messages in CBOR (docs/PROTOCOL.md). */
  CXMPP_SESSION: CF_CXMPP_SESSION,
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
