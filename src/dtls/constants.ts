/**
 * The DTLS layer's protocol numbers as plain constants, in a module that imports nothing and does
 * nothing when it loads: esbuild inlines such constants into a bundle (a tiny node's), where a property
 * of a frozen object (`HandshakeType.FINISHED`) or a constant of a module with imports stays a lookup.
 * Code inside the layer uses these; the frozen objects that name them for the API are built from them.
 */

/** ContentType (RFC 5246 §6.2.1). */
export const CONTENT_CHANGE_CIPHER_SPEC = 20;
export const CONTENT_ALERT = 21;
export const CONTENT_HANDSHAKE = 22;
export const CONTENT_APPLICATION_DATA = 23;

/** HandshakeType (RFC 5246 §7.4, RFC 6347 §4.3.2). */
export const HANDSHAKE_HELLO_REQUEST = 0;
export const HANDSHAKE_CLIENT_HELLO = 1;
export const HANDSHAKE_SERVER_HELLO = 2;
export const HANDSHAKE_HELLO_VERIFY_REQUEST = 3;
export const HANDSHAKE_SERVER_KEY_EXCHANGE = 12;
export const HANDSHAKE_SERVER_HELLO_DONE = 14;
export const HANDSHAKE_CLIENT_KEY_EXCHANGE = 16;
export const HANDSHAKE_FINISHED = 20;

/** AlertDescription values this layer sends or understands (RFC 5246 §7.2, RFC 4279 §6). */
export const ALERT_CLOSE_NOTIFY = 0;
export const ALERT_UNEXPECTED_MESSAGE = 10;
export const ALERT_BAD_RECORD_MAC = 20;
export const ALERT_RECORD_OVERFLOW = 22;
export const ALERT_HANDSHAKE_FAILURE = 40;
export const ALERT_ILLEGAL_PARAMETER = 47;
/** Sent to the session of a revoked device. */
export const ALERT_ACCESS_DENIED = 49;
export const ALERT_DECODE_ERROR = 50;
export const ALERT_DECRYPT_ERROR = 51;
export const ALERT_PROTOCOL_VERSION = 70;
export const ALERT_INSUFFICIENT_SECURITY = 71;
export const ALERT_INTERNAL_ERROR = 80;
export const ALERT_UNKNOWN_PSK_IDENTITY = 115;

/** AlertLevel (RFC 5246 §7.2). */
export const ALERT_LEVEL_WARNING = 1;
export const ALERT_LEVEL_FATAL = 2;

/** ExtensionType values this layer understands. */
export const EXTENSION_SERVER_NAME = 0;
/** RFC 7627: extended master secret. */
export const EXTENSION_EXTENDED_MASTER_SECRET = 0x0017;
/** RFC 5746: renegotiation_info (we never renegotiate; echoing it tells clients so, §3.6). */
export const EXTENSION_RENEGOTIATION_INFO = 0xff01;

/** DTLS 1.2 on the wire (RFC 6347 §4.1: 1's complement of 1.2). */
export const DTLS_1_2 = 0xfefd;
/** DTLS 1.0: the record version of a first ClientHello and of HelloVerifyRequest (§4.2.1). */
export const DTLS_1_0 = 0xfeff;

export const RECORD_HEADER_BYTES = 13;
/** Largest plaintext fragment (RFC 5246 §6.2.1); a longer record is discarded. */
export const MAX_PLAINTEXT = 16_384;
/** Sequence numbers are 48 bits (§4.1), 2^48 − 1 at most; a connection must renegotiate before wrapping. */
export const MAX_SEQUENCE = 281_474_976_710_655;

export const HANDSHAKE_HEADER_BYTES = 12;

/** A datagram that fits any IPv6 link (1280) after IP and UDP headers, as RFC 7925 §11 suggests. */
export const DEFAULT_MTU = 1200;
