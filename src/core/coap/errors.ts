/** Session-layer errors of the CoAP stack, one type per failure a caller must tell apart. */

/** A CON message was retransmitted MAX_RETRANSMIT times without an ACK (RFC 7252 §4.2). */
export class RetransmitsExceeded extends Error {
  override readonly name = "RetransmitsExceeded";
}

/** The peer answered with RST: it does not know the exchange (RFC 7252 §4.2, §4.3). */
export class ResetByPeer extends Error {
  override readonly name = "ResetByPeer";
}

/** No response arrived for a request in time (empty ACK or NON, then nothing). */
export class ResponseTimeout extends Error {
  override readonly name = "ResponseTimeout";
}

/** The endpoint was closed while the exchange was open. */
export class EndpointClosed extends Error {
  override readonly name = "EndpointClosed";
}
