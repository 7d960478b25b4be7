/**
 * The CoAP stack's errors: one base (`CoapError`) that a caller can catch for "the CoAP layer failed",
 * one base for the timeouts (`CoapTimeoutError`: nothing came back in time), and one type per failure a
 * caller must tell apart. Parse and block-wise failures extend the same base (message.ts, blockwise.ts).
 */

export class CoapError extends Error {
  override readonly name: string = "CoapError";
}

/** Nothing came back in time: the peer may be asleep, gone, or behind a lossy link. */
export class CoapTimeoutError extends CoapError {
  override readonly name: string = "CoapTimeoutError";
}

/** A CON message was retransmitted MAX_RETRANSMIT times without an ACK (RFC 7252 §4.2). */
export class RetransmitsExceeded extends CoapTimeoutError {
  override readonly name: string = "RetransmitsExceeded";
}

/** No response arrived for a request in time (empty ACK or NON, then nothing). */
export class ResponseTimeout extends CoapTimeoutError {
  override readonly name: string = "ResponseTimeout";
}

/** The peer answered with RST: it does not know the exchange (RFC 7252 §4.2, §4.3). */
export class ResetByPeer extends CoapError {
  override readonly name: string = "ResetByPeer";
}

/** The endpoint was closed while the exchange was open. */
export class EndpointClosed extends CoapError {
  override readonly name: string = "EndpointClosed";
}
