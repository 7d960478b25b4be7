/**
 * `cxmpp gateway --check-config`: the settings `cxmpp gateway` would run with, resolved the same way
 * (settings.ts), printed as JSON with where each value came from, then exit 0; or the ConfigError and
 * exit 2. For ExecStartPre= and for operators asking "which value wins?". It opens no socket and does
 * not touch the store: run as root beside a stopped gateway, it must leave no root-owned file behind.
 */
import { CONFIG_KEYS, ConfigError, type ConfigKey, formatHostPort, type GatewayConfig } from "../config.js";
import { settings } from "./settings.js";

export const MASK = "********";

/** Keys whose values never appear in output, by name, so a secret key added later is masked too. */
const SECRET_KEY = /secret|password|passphrase|token|psk/;

export interface CheckedKey {
  readonly value: string | number | boolean | null;
  /** "default", "file /etc/cxmpp/cxmpp.json", "env CXMPP_LISTEN", "flag --listen". */
  readonly source: string;
}

export function runCheckConfig(opts: Record<string, unknown>): number {
  let config: GatewayConfig;
  try {
    config = settings(opts);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`cxmpp gateway --check-config: ${error.message}\n`);
    return 2;
  }
  // One key a line: as long as the help, and still one JSON document for `jq`.
  const lines = Object.entries(resolvedConfig(config)).map(
    ([k, v]) => `  ${JSON.stringify(k)}: ${JSON.stringify(v)}`,
  );
  process.stdout.write(`{\n${lines.join(",\n")}\n}\n`);
  process.stderr.write("cxmpp gateway --check-config: configuration ok\n");
  return 0;
}

/** Every config key with the value the gateway would use, as the config file writes it, and its source. */
export function resolvedConfig(config: GatewayConfig): Record<ConfigKey, CheckedKey> {
  const out = {} as Record<ConfigKey, CheckedKey>;
  for (const key of Object.keys(CONFIG_KEYS) as ConfigKey[]) {
    const field = key.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
    if (!Object.hasOwn(config, field)) throw new Error(`check-config: no setting ${field} for key ${key}`);
    const value = written((config as unknown as Record<string, unknown>)[field]);
    out[key] = {
      value: SECRET_KEY.test(key) && value !== "off" ? MASK : maskUrlPassword(value),
      source: config.sources[key],
    };
  }
  return out;
}

/** A value as the config file would spell it: HOST:PORT text, "off" for a switched-off feature. */
function written(value: unknown): string | number | boolean | null {
  if (value === undefined) return "off";
  if (typeof value === "string" || typeof value === "number" || typeof value === "boolean") return value;
  // A list as env and flags spell it (the file may use a JSON array instead).
  if (Array.isArray(value)) return value.map((v) => String(written(v))).join(",");
  if (typeof value === "object" && value !== null && "host" in value && "port" in value) {
    return formatHostPort(value as { host: string; port: number });
  }
  return JSON.stringify(value) ?? null;
}

/**
 * xmpp://user:password@host would print the password; a URL's password is a secret wherever it is,
 * also in a comma-separated list of URLs.
 */
function maskUrlPassword(value: string | number | boolean | null): string | number | boolean | null {
  if (typeof value !== "string") return value;
  if (value.includes(",")) return value.split(",").map(maskUrlPassword).join(",");
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) return value;
  try {
    const url = new URL(value);
    if (url.password === "") return value;
    url.password = MASK;
    return url.href;
  } catch {
    return value;
  }
}
