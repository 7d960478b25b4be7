/**
 * Alerts (RFC 5246 §7.2, RFC 6347 §4.1.2.7) and the one error type of the DTLS layer. A `DtlsError`
 * names the alert it maps to, so a handshake that fails locally tells its peer why in the same words.
 */

/** AlertDescription values this layer sends or understands (RFC 5246 §7.2, RFC 4279 §6). */
export const Alert = Object.freeze({
  CLOSE_NOTIFY: 0,
  UNEXPECTED_MESSAGE: 10,
  BAD_RECORD_MAC: 20,
  RECORD_OVERFLOW: 22,
  HANDSHAKE_FAILURE: 40,
  ILLEGAL_PARAMETER: 47,
  /** Sent to the session of a revoked device. */
  ACCESS_DENIED: 49,
  DECODE_ERROR: 50,
  DECRYPT_ERROR: 51,
  PROTOCOL_VERSION: 70,
  INSUFFICIENT_SECURITY: 71,
  INTERNAL_ERROR: 80,
  UNKNOWN_PSK_IDENTITY: 115,
});

export const AlertLevel = Object.freeze({ WARNING: 1, FATAL: 2 });

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
  return new DtlsError("decode", Alert.DECODE_ERROR, message);
}
