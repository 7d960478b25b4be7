/**
 * Alerts (RFC 5246 §7.2, RFC 6347 §4.1.2.7) and the one error type of the DTLS layer. A `DtlsError`
 * names the alert it maps to, so a handshake that fails locally tells its peer why in the same words.
 */
import {
  ALERT_ACCESS_DENIED,
  ALERT_BAD_RECORD_MAC,
  ALERT_CLOSE_NOTIFY,
  ALERT_DECODE_ERROR,
  ALERT_DECRYPT_ERROR,
  ALERT_HANDSHAKE_FAILURE,
  ALERT_ILLEGAL_PARAMETER,
  ALERT_INSUFFICIENT_SECURITY,
  ALERT_INTERNAL_ERROR,
  ALERT_LEVEL_FATAL,
  ALERT_LEVEL_WARNING,
  ALERT_PROTOCOL_VERSION,
  ALERT_RECORD_OVERFLOW,
  ALERT_UNEXPECTED_MESSAGE,
  ALERT_UNKNOWN_PSK_IDENTITY,
} from "./constants.js";

/** AlertDescription values this layer sends or understands (RFC 5246 §7.2, RFC 4279 §6). */
export const Alert = Object.freeze({
  CLOSE_NOTIFY: ALERT_CLOSE_NOTIFY,
  UNEXPECTED_MESSAGE: ALERT_UNEXPECTED_MESSAGE,
  BAD_RECORD_MAC: ALERT_BAD_RECORD_MAC,
  RECORD_OVERFLOW: ALERT_RECORD_OVERFLOW,
  HANDSHAKE_FAILURE: ALERT_HANDSHAKE_FAILURE,
  ILLEGAL_PARAMETER: ALERT_ILLEGAL_PARAMETER,
  /** Sent to the session of a revoked device. */
  ACCESS_DENIED: ALERT_ACCESS_DENIED,
  DECODE_ERROR: ALERT_DECODE_ERROR,
  DECRYPT_ERROR: ALERT_DECRYPT_ERROR,
  PROTOCOL_VERSION: ALERT_PROTOCOL_VERSION,
  INSUFFICIENT_SECURITY: ALERT_INSUFFICIENT_SECURITY,
  INTERNAL_ERROR: ALERT_INTERNAL_ERROR,
  UNKNOWN_PSK_IDENTITY: ALERT_UNKNOWN_PSK_IDENTITY,
});

// Pure: a bundle that uses only the constants (a tiny node's) leaves the object out.
export const AlertLevel = /* @__PURE__ */ Object.freeze({
  WARNING: ALERT_LEVEL_WARNING,
  FATAL: ALERT_LEVEL_FATAL,
});

const NAMES: Readonly<Record<number, string>> = Object.fromEntries(
  Object.entries(Alert).map(([name, value]) => [value, name.toLowerCase()]),
);

export function alertName(description: number): string {
  return NAMES[description] ?? `alert_${description}`;
}

export type DtlsErrorKind =
  /** The peer sent something this layer cannot read (a DTLS decode_error). */
  | "decode"
  /** The peer broke the protocol (wrong message, wrong version, no common cipher suite). */
  | "protocol"
  /** Keys did not match: wrong PSK, unknown or revoked identity (one kind for all: no oracle). */
  | "auth"
  /** The peer sent a fatal alert. */
  | "alert"
  /** The handshake did not finish in time (retransmissions exhausted). */
  | "timeout"
  /** The connection was closed locally. */
  | "closed";

export class DtlsError extends Error {
  override readonly name = "DtlsError";
  constructor(
    readonly kind: DtlsErrorKind,
    /** The alert this error sends (or received, for kind "alert"). */
    readonly alert: number,
    message: string,
  ) {
    super(message);
  }
}

export function decodeError(message: string): DtlsError {
  return new DtlsError("decode", ALERT_DECODE_ERROR, message);
}
