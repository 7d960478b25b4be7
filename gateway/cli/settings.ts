/**
 * How every command finds its settings (docs/ARCHITECTURE.md, "operable"): `--config FILE`, else CXMPP_CONFIG, else
 * ./cxmpp.json when it exists; environment variables CXMPP_<KEY> over the file; flags over both. So
 * `cxmpp provision` run beside `cxmpp gateway` finds the same data directory and domain.
 */
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { type ConfigKey, type GatewayConfig, loadConfig } from "../config.js";

export const DEFAULT_CONFIG_FILE = "cxmpp.json";

/** Commander's camelCase options that are config keys (the rest are ignored here). */
const FLAG_KEYS: Record<string, ConfigKey> = {
  listen: "listen",
  dtlsListen: "dtls_listen",
  domain: "domain",
  dataDir: "data_dir",
  logLevel: "log_level",
  metricsListen: "metrics_listen",
  durability: "durability",
  cores: "cores",
};

export function configFile(
  flag: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): string | undefined {
  const chosen = flag ?? (env.CXMPP_CONFIG || undefined);
  if (chosen !== undefined) return resolve(chosen);
  return existsSync(DEFAULT_CONFIG_FILE) ? resolve(DEFAULT_CONFIG_FILE) : undefined;
}

/** The settings for a command, from its options (`config` and the flags above). Throws ConfigError. */
export function settings(opts: Record<string, unknown>, env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  const flags: Partial<Record<ConfigKey, string | number>> = {};
  for (const [name, key] of Object.entries(FLAG_KEYS)) {
    const v = opts[name];
    if (typeof v === "string" || typeof v === "number") flags[key] = v;
  }
  const file = configFile(typeof opts.config === "string" ? opts.config : undefined, env);
  return loadConfig({ ...(file ? { file } : {}), env, flags });
}
