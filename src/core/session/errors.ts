/**
 * The session layer's errors (docs/PROTOCOL.md §3, §4): one class with a `kind` that says which failure
 * it is, so a caller switches on the kind instead of parsing messages. CoAP failures underneath stay
 * CoapError (coap/errors.ts); a session message that does not parse is a SessionFormatError.
 */

export type SessionErrorKind =
  /** The gateway refused the connect (unknown identity, wrong key, revoked, other dictionary). */
  | "connect-refused"
  /** An operation that needs a session ran before connect or after close. */
  | "not-connected"
  /** The client was closed with stanzas still waiting: they were not delivered. */
  | "closed"
  /** The gateway could not decode one frame: that stanza was given up, the rest go on. */
  | "frame-rejected"
  /** The gateway answered an uplink with an error code. */
  | "uplink-refused"
  /** A session message that does not parse (cbor.ts). */
  | "format";

export class SessionError extends Error {
  override readonly name: string = "SessionError";
  constructor(
    readonly kind: SessionErrorKind,
    message: string,
  ) {
    super(message);
  }
}

/** A session message (connect, uplink, downlink) that is not well-formed, with the byte where it broke. */
export class SessionFormatError extends SessionError {
  override readonly name: string = "SessionFormatError";
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super("format", `${message} at byte ${offset}`);
  }
}
