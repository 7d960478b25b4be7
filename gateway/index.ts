/**
 * The gateway's facade: what the command line, the benchmarks, the examples and the test kits use to
 * run a gateway, instead of wiring its parts by hand.
 */
export { type RunningGateway, startGateway } from "./cli/gateway-command.js";
