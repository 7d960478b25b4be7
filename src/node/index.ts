/** Node.js adapters for the portable core (docs/ARCHITECTURE.md: src/node). */

export { nodeDtlsCrypto } from "./dtls-crypto.js";
export {
  createDtlsClientEndpoint,
  createDtlsServerEndpoint,
  createUdpEndpoint,
  type UdpEndpoint,
  type UdpEndpointOptions,
} from "./endpoint.js";
export { nodeMac } from "./mac.js";
export {
  type ConsoleLoggerOptions,
  consoleLogger,
  cryptoRandom,
  systemClock,
  type TimerSchedulerOptions,
  timerScheduler,
  wallClock,
  within,
} from "./runtime.js";
export { type NodeTinyHost, nodeTinyHost } from "./tiny-host.js";
export { parsePeerAddress, UdpTransport, type UdpTransportOptions } from "./udp-transport.js";
