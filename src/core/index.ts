/** The portable core: CoAP stack and cxmpp session layer. No Node.js APIs. */

export { equalBytes, randomBytes, toHex } from "./bytes.js";
export { BlockwiseError } from "./coap/blockwise.js";
export { CoapClientEndpoint } from "./coap/client-endpoint.js";
export { CoapEndpoint, type EndpointOptions, maxTransmitWait } from "./coap/endpoint.js";
export {
  CoapError,
  CoapTimeoutError,
  EndpointClosed,
  ResetByPeer,
  ResponseTimeout,
  RetransmitsExceeded,
} from "./coap/errors.js";
export type { Request, RequestHandler, Response, ServerRequest } from "./coap/exchange-layer.js";
export { NO_ANSWER } from "./coap/exchange-layer.js";
export { type CoapLimits, type CoapTables, DEFAULT_COAP_LIMITS } from "./coap/limits.js";
export {
  CoapFormatError,
  type CoapMessage,
  type CoapOption,
  findOption,
  optionUint,
  parseMessage,
  pathOptions,
  serializeMessage,
  stringOption,
  uintOption,
  uriPath,
  uriQueries,
} from "./coap/message.js";
export {
  Code,
  ContentFormat,
  codeString,
  DEFAULT_TRANSMISSION,
  MessageType,
  OptionNumber,
  type TransmissionParameters,
} from "./coap/registry.js";
export {
  type Cancellable,
  type Clock,
  type DatagramTransport,
  type Logger,
  type LogLevel,
  type Mac,
  type PeerAddress,
  peerAddress,
  type Random,
  type Scheduler,
  silentLogger,
} from "./interfaces.js";
export { seededRandom } from "./seeded-random.js";
export { encodeSequence, SessionReader, type Value } from "./session/cbor.js";
export { SessionError, type SessionErrorKind, SessionFormatError } from "./session/errors.js";
export { connectOptions, NodeClient, type NodeClientOptions } from "./session/node-client.js";
export * as protocol from "./session/protocol.js";
export { TimerQueue } from "./timer-queue.js";
