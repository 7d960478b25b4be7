/**
 * `cxmpp gateway`: the border-router program on UDP, until SIGTERM/SIGINT. Settings from the config
 * file, CXMPP_<KEY> and flags (gateway/cli/settings.ts); the gateway itself is assembled by the facade
 * (gateway/gateway.ts).
 */
import { ConfigError } from "../config.js";
import { DataDirLockedError } from "../data-dir-lock.js";
import { ComponentAuthError } from "../federation/errors.js";
import { type RunningGateway, startGateway } from "../gateway.js";
import { StoreError } from "../store/errors.js";
import { settings } from "./settings.js";

export interface GatewayCommandOptions {
  readonly config?: string;
  readonly listen?: string;
  readonly domain?: string;
  readonly dataDir?: string;
  readonly logLevel?: string;
  readonly metricsListen?: string;
}

const OPERATOR_ERRORS = [ConfigError, StoreError, DataDirLockedError, ComponentAuthError] as const;

export async function runGateway(opts: GatewayCommandOptions): Promise<number> {
  let running: RunningGateway;
  try {
    running = await startGateway(settings({ ...opts }));
  } catch (error) {
    if (!(error instanceof Error)) throw error;
    // What an operator can act on says so in its message; anything else is a bug: show where.
    const known =
      OPERATOR_ERRORS.some((type) => error instanceof type) || error.message.startsWith("cannot listen");
    process.stderr.write(`cxmpp gateway: ${known ? error.message : (error.stack ?? error.message)}\n`);
    return 2;
  }
  const on = [
    running.secureAddress ? `coaps://${running.secureAddress}` : undefined,
    running.config.listen ? `coap://${running.address}` : undefined,
  ].filter((a) => a !== undefined);
  process.stdout.write(`cxmpp gateway listening on ${on.join(" and ")} (Ctrl-C to stop)\n`);
  if (running.metricsAddress) process.stdout.write(`metrics on http://${running.metricsAddress}/metrics\n`);
  if (running.devices === 0) {
    process.stdout.write(
      "no devices yet: register one with `cxmpp provision add NAME --out NAME.cbor`, then `cxmpp node run --device NAME.cbor`\n",
    );
  }
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  await running.stop();
  process.stdout.write("cxmpp gateway stopped\n");
  return 0;
}
