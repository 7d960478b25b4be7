/**
 * The gateway's facade: what the command line, the benchmarks, the examples and the test kits use to
 * run a gateway, instead of wiring its parts by hand, and the errors an operator or a caller meets.
 */
export {
  ConfigError,
  type ConfigKey,
  describeConfig,
  formatHostPort,
  type GatewayConfig,
  loadConfig,
  parseHostPort,
} from "./config.js";
export { DataDirLockedError, isDataDirLocked, lockDataDir } from "./data-dir-lock.js";
export { GATEWAY_DEFAULTS } from "./defaults.js";
export { DeviceConfigError, MemoryDevices } from "./devices.js";
export { ComponentAuthError } from "./federation/errors.js";
export {
  type AttachOptions,
  attachGateway,
  type RunningGateway,
  type StartHooks,
  startGateway,
} from "./gateway.js";
export type { HealthReport } from "./metrics.js";
export { GatewayService, type GatewayServiceOptions, type NodeState } from "./session/gateway-service.js";
export { StoreError } from "./store/errors.js";
export { packageVersion, versionLine } from "./version.js";
export {
  STANZA_ERROR_CONDITIONS,
  StanzaError,
  type StanzaErrorCondition,
  type StanzaErrorType,
} from "./xml/stanza-error.js";
export { XmlError } from "./xml/stanza-xml.js";
