/**
 * The gateway's configuration: one JSON file, CXMPP_* environment variables and command-line flags,
 * merged key by key (flags > env > file > defaults) and validated with one small check per key.
 *
 * Operators meet this code mostly through its errors, so every error is a ConfigError that names the
 * key, where the bad value came from and what was expected, in one line. The checks are a few lines of
 * code rather than a schema library: every command loads this module, and a border router's gateway
 * idles within 60 MB (a schema library took about 3.5 MB of it).
 */
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { BlockList, isIP } from "node:net";
import { resolve } from "node:path";
import { GATEWAY_DEFAULTS as D } from "./defaults.js";

/** A parsed `HOST:PORT`; IPv6 hosts are kept without their brackets. */
export interface HostPort {
  readonly host: string;
  readonly port: number;
}

export type LogLevel = "debug" | "info" | "warn" | "error";
export type Durability = "full" | "normal";

/** `HOST:PORT` or `[IPV6]:PORT`, port 0..65535 (0 = pick a free port); undefined when malformed. */
export function parseHostPort(text: string): HostPort | undefined {
  const m = /^(?:\[([^\]\s]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(text);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  // Brackets are for IPv6 only; an unbracketed host with colons would be ambiguous, so the regex refuses it.
  if (m[1] !== undefined && isIP(m[1]) !== 6) return undefined;
  return { host: (m[1] ?? m[2])!, port };
}

/** The inverse of parseHostPort: brackets IPv6 hosts again. */
export function formatHostPort(address: HostPort): string {
  return isIP(address.host) === 6 ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet("127.0.0.0", 8, "ipv4");
LOOPBACK.addAddress("::1", "ipv6");

/**
 * True for a loopback host: 127.0.0.0/8, ::1 (any spelling, also ::ffff:127.x.y.z) and the name
 * `localhost` (RFC 6761 §6.3). A wildcard (0.0.0.0, ::) is not: it listens on every interface.
 */
export function isLoopback(host: string): boolean {
  if (host.toLowerCase() === "localhost") return true;
  const family = isIP(host);
  return family !== 0 && LOOPBACK.check(host, family === 4 ? "ipv4" : "ipv6");
}

// --- one schema per key ---------------------------------------------------------------------------

/** Values that switch an optional key off: "off", or "" (from env, "" counts as unset instead). */
const isOff = (s: string) => s === "" || s === "off";

/** A check: the value it accepts, converted, or undefined when it refuses (then the key's error says why). */
type Check<T> = (value: unknown) => { readonly ok: true; readonly value: T } | undefined;
type Checked<C> = C extends Check<infer T> ? T : never;

const accept = <T>(value: T) => ({ ok: true as const, value });
const text =
  (test: (s: string) => boolean = () => true): Check<string> =>
  (v) =>
    typeof v === "string" && test(v) ? accept(v) : undefined;
const convert =
  <A, B>(check: Check<A>, to: (a: A) => B): Check<B> =>
  (v) => {
    const r = check(v);
    return r && accept(to(r.value));
  };
const oneOf =
  <const T extends string>(...values: T[]): Check<T> =>
  (v) =>
    values.includes(v as T) ? accept(v as T) : undefined;
/** An optional key: "off" (or "") switches it off, anything else must pass `inner`. */
const optional =
  <T>(inner: Check<T>): Check<T | undefined> =>
  (v) =>
    typeof v === "string" && isOff(v) ? accept(undefined) : inner(v);
const bool: Check<boolean> = (v) => (typeof v === "boolean" ? accept(v) : undefined);
const int =
  (min: number, max = Number.MAX_SAFE_INTEGER): Check<number> =>
  (v) =>
    Number.isSafeInteger(v) && (v as number) >= min && (v as number) <= max ? accept(v as number) : undefined;

const hostPort = convert(
  text((s) => parseHostPort(s) !== undefined),
  (s) => parseHostPort(s)!,
);
const domainName = text((s) => /^[^\s@/:[\]]{1,1023}$/.test(s));
const nonEmpty = text((s) => s.length > 0);
/**
 * One XMPP server's component address: `xmpp://HOST[:PORT]` (XEP-0114's plain TCP) or `xmpps://HOST:PORT`
 * (the same stream inside Direct TLS, RFC 7590 §3.1 style: TLS from the first byte).
 */
export function isXmppServiceUrl(s: string): boolean {
  try {
    const url = new URL(s);
    if (url.hostname === "") return false;
    if (url.protocol === "xmpp:") return true;
    // No well-known port for a component stream inside TLS: say which one the server listens on.
    return url.protocol === "xmpps:" && url.port !== "";
  } catch {
    return false;
  }
}

/**
 * The XMPP servers the component link may use, in order of preference: one URL, several separated by
 * commas (how environment variables and flags spell a list), or a JSON array of URLs in the file.
 */
const xmppServices: Check<readonly string[]> = (v) => {
  const list = typeof v === "string" ? v.split(",").map((s) => s.trim()) : v;
  if (!Array.isArray(list) || list.length === 0 || list.length > 16) return undefined;
  if (!list.every((s): s is string => typeof s === "string" && isXmppServiceUrl(s))) return undefined;
  if (new Set(list).size !== list.length) return undefined;
  return accept(Object.freeze([...list]));
};

/** A comma-separated list of SHA-256 certificate fingerprints: 64 hex digits each, colons allowed. */
const fingerprints: Check<readonly string[]> = (v) => {
  if (typeof v !== "string") return undefined;
  const list = v.split(",").map((s) => s.trim().replaceAll(":", "").toLowerCase());
  if (list.length === 0 || !list.every((s) => /^[0-9a-f]{64}$/.test(s))) return undefined;
  return accept(Object.freeze(list));
};

interface KeySpec<S extends Check<unknown>> {
  readonly schema: S;
  /** The value used when no source sets the key; it goes through the schema like any other. */
  readonly fallback: unknown;
  readonly description: string;
  /** The default as the help shows it. */
  readonly shown: string;
  /** What a valid value looks like, for error messages: "expected …". */
  readonly expected: string;
  /** Environment and flag strings are read as integers first. */
  readonly integer?: boolean;
  /** Environment and flag strings "true" and "false" are read as booleans. */
  readonly boolean?: boolean;
  /**
   * The default worked out from the keys before this one (already checked), used instead of `fallback`
   * when no source sets the key; it goes through the schema too.
   */
  readonly derive?: (earlier: Readonly<Record<string, unknown>>) => unknown;
}

const spec = <S extends Check<unknown>>(s: KeySpec<S>) => s;
const intSpec = (min: number, max: number | undefined, fallback: number, description: string) =>
  spec({
    schema: int(min, max),
    fallback,
    description,
    shown: String(fallback),
    expected: max === undefined ? `an integer ≥ ${min}` : `an integer from ${min} to ${max}`,
    integer: true,
  });

const SPECS = {
  listen: spec({
    schema: optional(hostPort),
    fallback: D.listen,
    description:
      'plain CoAP (no DTLS) address for the nodes, HOST:PORT or [IPV6]:PORT; "off" disables it. Other than ' +
      "on loopback it needs allow_plain_coap",
    shown: D.listen,
    expected: 'HOST:PORT (port 0-65535, [::1]:PORT for IPv6) or "off"',
  }),
  dtls_listen: spec({
    schema: optional(hostPort),
    fallback: `${parseHostPort(D.listen)!.host}:${D.dtlsPort}`,
    derive: (earlier) => {
      const listen = earlier.listen as HostPort | undefined;
      return formatHostPort({ host: listen?.host ?? parseHostPort(D.listen)!.host, port: D.dtlsPort });
    },
    description:
      'CoAP over DTLS 1.2 with pre-shared keys (coaps) for the nodes, HOST:PORT; "off" disables it',
    shown: `the host of listen, port ${D.dtlsPort}`,
    expected: 'HOST:PORT (port 0-65535, [::1]:PORT for IPv6) or "off"',
  }),
  allow_plain_coap: spec({
    schema: bool,
    fallback: D.allowPlainCoap,
    description:
      "let listen (plain CoAP: no authentication of datagrams, no encryption) be an address other than " +
      "loopback; only for a trusted link",
    shown: String(D.allowPlainCoap),
    expected: "true or false",
    boolean: true,
  }),
  domain: spec({
    schema: domainName,
    fallback: D.domain,
    description: "XMPP domain of the nodes: each node is name@domain",
    shown: D.domain,
    expected: "a domain name (no spaces, '@', '/' or ':')",
  }),
  data_dir: spec({
    schema: nonEmpty,
    fallback: D.dataDir,
    description: "state directory (devices, sessions, mailboxes); relative to the working directory",
    shown: D.dataDir,
    expected: "a directory path",
  }),
  log_level: spec({
    schema: oneOf("debug", "info", "warn", "error"),
    fallback: D.logLevel,
    description: "debug | info | warn | error",
    shown: D.logLevel,
    expected: "one of debug, info, warn, error",
  }),
  metrics_listen: spec({
    schema: optional(hostPort),
    fallback: "off",
    description: 'Prometheus /metrics address, HOST:PORT; "off" disables it',
    shown: "off",
    expected: 'HOST:PORT or "off"',
  }),
  xmpp_service: spec({
    schema: optional(xmppServices),
    fallback: "off",
    description:
      "the XMPP servers' component (XEP-0114) addresses, xmpp://HOST:PORT or xmpps://HOST:PORT (Direct " +
      "TLS), in order of preference: the link fails over to the next when one is down. Several: a JSON " +
      "array in the file, comma-separated in env and flags; unset: local mode",
    shown: "unset",
    expected: 'xmpp://HOST:PORT or xmpps://HOST:PORT URLs (up to 16, no repeats) or "off"',
  }),
  xmpp_tls_ca: spec({
    schema: optional(nonEmpty),
    fallback: "off",
    description:
      "PEM file of the CA certificates that xmpps:// servers' certificates must chain to (their host " +
      "name must match too); off: the system's CAs",
    shown: "off (the system's CAs)",
    expected: 'a PEM file path or "off"',
  }),
  xmpp_tls_pin: spec({
    schema: optional(fingerprints),
    fallback: "off",
    description:
      "SHA-256 fingerprints of the xmpps:// servers' certificates (hex, colons allowed, comma-separated): " +
      "a server must present one of them, and then no CA is needed (self-signed certificates)",
    shown: "off",
    expected: 'SHA-256 fingerprints (64 hex digits each), comma-separated, or "off"',
  }),
  xmpp_domain: spec({
    schema: optional(domainName),
    fallback: "off",
    description: "component domain on the XMPP server",
    shown: "the value of domain",
    expected: "a domain name (no spaces, '@', '/' or ':')",
  }),
  xmpp_secret: spec({
    schema: optional(nonEmpty),
    fallback: "off",
    description: "component secret shared with the XMPP server; required when xmpp_service is set",
    shown: "unset",
    expected: "a string",
  }),
  pubsub_service: spec({
    schema: optional(text((s) => /^(?:[^\s@/:]{1,1023}@)?[^\s@/:[\]]{1,1023}$/.test(s))),
    fallback: "off",
    description:
      "XEP-0060 publish-subscribe service (a JID, e.g. pubsub.example.org) that every node's XEP-0323 " +
      "readings are published to, one pubsub node per device named by its bare JID; the service must " +
      "let the component domain create nodes (Prosody: autocreate_on_publish, the domain in admins)",
    shown: "off",
    expected: 'a bare JID (pubsub.example.org) or "off"',
  }),
  resource: spec({
    schema: text((s) => /^\S{1,1023}$/.test(s)),
    fallback: D.resource,
    description: "resource of the nodes' full JIDs (name@domain/resource)",
    shown: D.resource,
    expected: "a non-empty string without spaces",
  }),
  max_downlink_bytes: intSpec(
    16,
    1024,
    D.maxDownlinkBytes,
    "largest frame sent to a node in one CoAP message",
  ),
  mailbox_max_stanzas: intSpec(
    1,
    undefined,
    D.mailboxMaxStanzas,
    "stanzas kept in a sleeping node's mailbox",
  ),
  mailbox_max_bytes: intSpec(64, undefined, D.mailboxMaxBytes, "bytes kept in a sleeping node's mailbox"),
  mailbox_ttl_s: intSpec(
    1,
    undefined,
    D.mailboxTtlS,
    "seconds a stanza waits in a mailbox before it is dropped",
  ),
  cores: spec({
    schema: int(1, 2),
    fallback: D.cores,
    description:
      "threads for the node listeners: 1, or 2 to give the UDP sockets a thread of their own (the gateway " +
      "itself stays one thread; docs/DEPLOY.md §10)",
    shown: String(D.cores),
    expected: "1 or 2",
    integer: true,
  }),
  durability: spec({
    schema: oneOf("full", "normal"),
    fallback: D.durability,
    description: "SQLite synchronous mode: full survives power loss, normal survives process crashes",
    shown: D.durability,
    expected: "full or normal",
  }),
  session_expiry_s: intSpec(
    60,
    undefined,
    D.sessionExpiryS,
    "seconds a silent node's session is kept for resumption",
  ),
  asleep_policy: spec({
    schema: oneOf("queue", "bounce"),
    fallback: D.asleepPolicy,
    description:
      "a message or iq from the network for a sleeping node: queue it, or bounce recipient-unavailable",
    shown: D.asleepPolicy,
    expected: "queue or bounce",
  }),
  dtls_max_handshakes: intSpec(
    1,
    undefined,
    D.dtlsMaxHandshakes,
    "DTLS handshakes in progress at once; more are refused until one ends",
  ),
  dtls_max_sessions: intSpec(
    1,
    undefined,
    D.dtlsMaxSessions,
    "DTLS sessions kept at once; beyond it the longest idle one is dropped",
  ),
  dtls_session_idle_s: intSpec(
    1,
    undefined,
    D.dtlsSessionIdleS,
    "seconds a silent DTLS session is kept; after it the node handshakes again",
  ),
} as const;

export type ConfigKey = keyof typeof SPECS;
type Values = { -readonly [K in ConfigKey]: Checked<(typeof SPECS)[K]["schema"]> };

export interface ConfigKeyInfo {
  readonly description: string;
  /** The default, as text. */
  readonly default: string;
  /** The environment variable that sets the key. */
  readonly env: string;
  /** The command-line flag name this key would have (`--data-dir`); the CLI decides which exist. */
  readonly flag: string;
}

const envName = (key: string) => `CXMPP_${key.toUpperCase()}`;
const flagName = (key: string) => `--${key.replaceAll("_", "-")}`;

/** Every key, in help order, with its one-line description and default. */
export const CONFIG_KEYS: Readonly<Record<ConfigKey, ConfigKeyInfo>> = Object.freeze(
  Object.fromEntries(
    Object.entries(SPECS).map(([key, s]) => [
      key,
      Object.freeze({ description: s.description, default: s.shown, env: envName(key), flag: flagName(key) }),
    ]),
  ) as Record<ConfigKey, ConfigKeyInfo>,
);

const KEYS = Object.keys(SPECS) as ConfigKey[];

// --- the result ----------------------------------------------------------------------------------

export interface GatewayConfig {
  /** Plain CoAP (UDP); undefined: "off" (then dtlsListen is set). */
  readonly listen: HostPort | undefined;
  /** CoAP over DTLS (coaps); undefined: "off" (then listen is set). */
  readonly dtlsListen: HostPort | undefined;
  /**
   * The operator allowed plain CoAP on an address other than loopback. loadConfig has already refused
   * a `listen` that needs it and lacks it.
   */
  readonly allowPlainCoap: boolean;
  readonly domain: string;
  /** Absolute. */
  readonly dataDir: string;
  readonly logLevel: LogLevel;
  /** Undefined: no metrics endpoint. */
  readonly metricsListen: HostPort | undefined;
  /**
   * The XMPP servers' component addresses in order of preference; undefined: local mode (no
   * federation). When set, xmppSecret is set too.
   */
  readonly xmppService: readonly string[] | undefined;
  /** Absolute path of the PEM CA file for xmpps:// servers; undefined: the system's CAs. */
  readonly xmppTlsCa: string | undefined;
  /** Pinned SHA-256 certificate fingerprints (lowercase hex) for xmpps:// servers. */
  readonly xmppTlsPin: readonly string[] | undefined;
  readonly xmppDomain: string;
  readonly xmppSecret: string | undefined;
  /** The XEP-0060 service node readings are published to; undefined: "off". */
  readonly pubsubService: string | undefined;
  readonly resource: string;
  readonly maxDownlinkBytes: number;
  readonly mailboxMaxStanzas: number;
  readonly mailboxMaxBytes: number;
  readonly mailboxTtlS: number;
  readonly durability: Durability;
  /** 1, or 2: the UDP sockets on a socket thread (gateway/cluster/udp-thread.ts). */
  readonly cores: 1 | 2;
  readonly sessionExpiryS: number;
  /** What happens to a stanza from the network for a sleeping node (RFC 6120 §8.3.3.13). */
  readonly asleepPolicy: "queue" | "bounce";
  /** DTLS handshakes in progress at once (after the cookie exchange). */
  readonly dtlsMaxHandshakes: number;
  /** Established DTLS sessions kept at once. */
  readonly dtlsMaxSessions: number;
  /** Seconds a silent DTLS session is kept. */
  readonly dtlsSessionIdleS: number;
  /** Where each value came from ("default", "file /etc/cxmpp.json", "env CXMPP_LISTEN", "flag --listen"). */
  readonly sources: Readonly<Record<ConfigKey, string>>;
}

export class ConfigError extends Error {
  override readonly name = "ConfigError";
  /** The offending key (possibly an unknown one); undefined when the whole file is at fault. */
  readonly key: string | undefined;
  /** "file /path", "env CXMPP_X", "flag --x" or "default". */
  readonly source: string;

  constructor(key: string | undefined, source: string, detail: string) {
    super(`config: ${key === undefined ? source : `${key} (${source})`}: ${detail}`);
    this.key = key;
    this.source = source;
  }
}

export interface LoadConfigOptions {
  /** The JSON config file; relative to cwd. */
  readonly file?: string;
  /** Defaults to process.env. */
  readonly env?: NodeJS.ProcessEnv;
  /** Command-line values by config key; undefined entries are ignored (flags not given). */
  readonly flags?: Partial<Record<ConfigKey, string | number>>;
  /** Defaults to process.cwd(). */
  readonly cwd?: string;
}

interface Candidate {
  readonly value: unknown;
  /** As the operator wrote it, for error messages (env "-5" shows as "-5", not -5). */
  readonly written: unknown;
  readonly source: string;
}

/** Reads, merges and validates the configuration; throws ConfigError on anything wrong. */
export function loadConfig(options: LoadConfigOptions = {}): GatewayConfig {
  const cwd = options.cwd ?? process.cwd();
  const env = options.env ?? process.env;
  const layers: Array<Partial<Record<ConfigKey, Candidate>>> = [
    flagLayer(options.flags ?? {}),
    envLayer(env),
    options.file === undefined ? {} : fileLayer(resolve(cwd, options.file)),
  ];

  const values = {} as Record<ConfigKey, unknown>;
  const sources = {} as Record<ConfigKey, string>;
  for (const key of KEYS) {
    const s: KeySpec<Check<unknown>> = SPECS[key];
    const fallback = s.derive ? s.derive(values) : s.fallback;
    const chosen = layers.map((l) => l[key]).find((c) => c !== undefined) ?? {
      value: fallback,
      written: fallback,
      source: "default",
    };
    const parsed = s.schema(chosen.value);
    if (!parsed) {
      throw new ConfigError(key, chosen.source, `expected ${s.expected}, got ${shown(key, chosen.written)}`);
    }
    values[key] = parsed.value;
    sources[key] = chosen.source;
  }
  const v = values as Values;

  // Federation is on exactly when xmpp_service is set; without the secret the XMPP server would
  // refuse the component handshake much later and less clearly, so refuse to start instead.
  if (v.xmpp_service !== undefined && v.xmpp_secret === undefined) {
    throw new ConfigError(
      "xmpp_secret",
      sources.xmpp_secret,
      `required when xmpp_service is set (xmpp_service from ${sources.xmpp_service}); ` +
        `set "xmpp_secret" in the config file or ${envName("xmpp_secret")}`,
    );
  }

  checkListeners(v, sources);
  if (v.xmpp_tls_ca !== undefined) checkCaFile(resolve(cwd, v.xmpp_tls_ca), sources.xmpp_tls_ca);

  return Object.freeze({
    listen: v.listen && Object.freeze(v.listen),
    dtlsListen: v.dtls_listen && Object.freeze(v.dtls_listen),
    allowPlainCoap: v.allow_plain_coap,
    domain: v.domain,
    dataDir: resolve(cwd, v.data_dir),
    logLevel: v.log_level,
    metricsListen: v.metrics_listen && Object.freeze(v.metrics_listen),
    xmppService: v.xmpp_service,
    xmppTlsCa: v.xmpp_tls_ca === undefined ? undefined : resolve(cwd, v.xmpp_tls_ca),
    xmppTlsPin: v.xmpp_tls_pin,
    xmppDomain: v.xmpp_domain ?? v.domain,
    xmppSecret: v.xmpp_secret,
    pubsubService: v.pubsub_service,
    resource: v.resource,
    maxDownlinkBytes: v.max_downlink_bytes,
    mailboxMaxStanzas: v.mailbox_max_stanzas,
    mailboxMaxBytes: v.mailbox_max_bytes,
    mailboxTtlS: v.mailbox_ttl_s,
    durability: v.durability,
    cores: v.cores as 1 | 2,
    sessionExpiryS: v.session_expiry_s,
    asleepPolicy: v.asleep_policy,
    dtlsMaxHandshakes: v.dtls_max_handshakes,
    dtlsMaxSessions: v.dtls_max_sessions,
    dtlsSessionIdleS: v.dtls_session_idle_s,
    sources: Object.freeze(sources),
  });
}

/** A CA file that cannot be read or holds no certificate fails now, not at the first TLS connect. */
function checkCaFile(path: string, source: string): void {
  let pem: string;
  try {
    pem = readFileSync(path, "utf8");
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    throw new ConfigError(
      "xmpp_tls_ca",
      source,
      `cannot read ${path}: ${e.code === "ENOENT" ? "no such file" : e.message}`,
    );
  }
  try {
    new X509Certificate(pem);
  } catch (error) {
    throw new ConfigError(
      "xmpp_tls_ca",
      source,
      `${path} holds no PEM certificate (${(error as Error).message})`,
    );
  }
}

/**
 * Secure by default: plain CoAP authenticates no datagram and encrypts nothing, so it listens on
 * loopback unless the operator says the link is trusted; and the nodes need at least one listener.
 */
function checkListeners(v: Values, sources: Record<ConfigKey, string>): void {
  if (v.listen === undefined && v.dtls_listen === undefined) {
    throw new ConfigError(
      "listen",
      sources.listen,
      `plain CoAP is "off" and so is dtls_listen (${sources.dtls_listen}): the nodes would have nothing to ` +
        `connect to; set "dtls_listen" to HOST:PORT (default: port ${D.dtlsPort}) or "listen" to HOST:PORT`,
    );
  }
  if (v.listen !== undefined && !v.allow_plain_coap && !isLoopback(v.listen.host)) {
    const at = formatHostPort(v.listen);
    throw new ConfigError(
      "listen",
      sources.listen,
      `${at} is not a loopback address, and plain CoAP there would let anyone on that network forge and ` +
        `read the nodes' traffic. Either set "allow_plain_coap": true (or ${envName("allow_plain_coap")}=true) ` +
        `if that link is trusted, or listen on loopback (127.0.0.1:${v.listen.port}), or set "listen": "off" ` +
        'and let the nodes use DTLS ("dtls_listen")',
    );
  }
}

function flagLayer(flags: Partial<Record<string, string | number>>): Partial<Record<ConfigKey, Candidate>> {
  const layer: Partial<Record<ConfigKey, Candidate>> = {};
  for (const [key, value] of Object.entries(flags)) {
    if (value === undefined) continue;
    // The CLI wiring passes these; an unknown one is a wiring slip, reported like a typo in the file.
    if (!isKey(key)) throw unknownKey(key, `flag ${flagName(key)}`);
    layer[key] = { value: fromText(key, value), written: value, source: `flag ${flagName(key)}` };
  }
  return layer;
}

/**
 * Only known keys are read: other CXMPP_* variables belong to other commands. An empty variable counts
 * as unset, the way shells and compose files leave one blank; use "off" to switch a feature off.
 */
function envLayer(env: NodeJS.ProcessEnv): Partial<Record<ConfigKey, Candidate>> {
  const layer: Partial<Record<ConfigKey, Candidate>> = {};
  for (const key of KEYS) {
    const name = envName(key);
    const value = Object.hasOwn(env, name) ? env[name] : undefined;
    if (value === undefined || value === "") continue;
    layer[key] = { value: fromText(key, value), written: value, source: `env ${name}` };
  }
  return layer;
}

function fileLayer(path: string): Partial<Record<ConfigKey, Candidate>> {
  const source = `file ${path}`;
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    const why = e.code === "ENOENT" ? "no such file" : e.code === "EISDIR" ? "it is a directory" : e.message;
    throw new ConfigError(undefined, source, `cannot read it: ${why}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text.replace(/^\uFEFF/, ""));
  } catch (error) {
    throw new ConfigError(
      undefined,
      source,
      `invalid JSON${jsonErrorDetail(text, (error as Error).message)}`,
    );
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new ConfigError(
      undefined,
      source,
      `expected one JSON object ({"listen": "…", …}), got ${kind(raw)}`,
    );
  }
  const layer: Partial<Record<ConfigKey, Candidate>> = {};
  for (const [key, value] of Object.entries(raw)) {
    if (!isKey(key)) throw unknownKey(key, source);
    layer[key] = { value, written: value, source };
  }
  return layer;
}

/** Strings from env and flags are typed only by their key: integer keys parse them, strictly. */
function fromText(key: ConfigKey, value: string | number): unknown {
  const s = SPECS[key] as KeySpec<Check<unknown>>;
  if (s.integer === true && typeof value === "string" && /^-?\d+$/.test(value)) return Number(value);
  if (s.boolean === true && (value === "true" || value === "false")) return value === "true";
  return value;
}

function isKey(key: string): key is ConfigKey {
  return Object.hasOwn(SPECS, key);
}

function unknownKey(key: string, source: string): ConfigError {
  const near = closestKey(key);
  const hint = near ? `did you mean "${near}"?` : `valid keys: ${KEYS.join(", ")}`;
  return new ConfigError(key, source, `unknown key; ${hint}`);
}

/** The valid key a typo most likely meant: same key in another case style, else a small edit away. */
function closestKey(key: string): ConfigKey | undefined {
  const normal = key
    .replace(/([a-z0-9])([A-Z])/g, "$1_$2")
    .toLowerCase()
    .replaceAll("-", "_")
    .replace(/^(cxmpp_|--)/, "");
  if (isKey(normal)) return normal;
  let best: ConfigKey | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const k of KEYS) {
    const d = editDistance(normal, k);
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  return bestDistance <= Math.max(2, Math.floor(normal.length / 3)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      next[j] = Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + cost);
    }
    row = next;
  }
  return row[b.length]!;
}

/** A value as the error shows it: JSON, shortened; the secret never. */
function shown(key: ConfigKey, value: unknown): string {
  if (key === "xmpp_secret") return kind(value);
  const json = JSON.stringify(value) ?? String(value);
  return json.length > 60 ? `${json.slice(0, 57)}...` : json;
}

function kind(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value === "object" ? "an object" : `a ${typeof value}`;
}

/** V8 says "at position N" (Node 20) or "(line L column C)" (newer); operators count lines. */
function jsonErrorDetail(text: string, message: string): string {
  const lineCol = /\(line (\d+) column (\d+)\)/.exec(message);
  const position = /at position (\d+)/.exec(message);
  let where = "";
  if (lineCol) where = ` at line ${lineCol[1]}, column ${lineCol[2]}`;
  else if (position) where = ` at ${lineColumn(text, Number(position[1]))}`;
  else if (/end of JSON input/.test(message)) where = ` at ${lineColumn(text, text.length)}`;
  const what = message
    .replace(/,? ".*" is not valid JSON$/s, "")
    .replace(/ in JSON at position \d+.*$/s, "")
    .replace(/ \(line \d+ column \d+\)$/, "");
  return `${where}: ${what}`;
}

function lineColumn(text: string, offset: number): string {
  const before = text.slice(0, offset).split("\n");
  return `line ${before.length}, column ${before.at(-1)!.length + 1}`;
}

// --- help ----------------------------------------------------------------------------------------

/** The block `cxmpp gateway --help` prints after its options, wrapped to 100 columns. */
export function describeConfig(): string {
  const indent = Math.max(...KEYS.map((k) => k.length)) + 4;
  const lines = [
    "Configuration: --config FILE names a JSON file holding one object with the keys below.",
    "Each key can also be set by the environment variable CXMPP_<KEY> (CXMPP_DATA_DIR=/var/lib/cxmpp);",
    'the value "off" switches listen, dtls_listen, metrics_listen and xmpp_service off.',
    "Precedence: command-line flags > environment > file > defaults.",
    "",
  ];
  for (const key of KEYS) {
    const info = CONFIG_KEYS[key];
    const words = `${info.description} (default: ${info.default})`.split(" ");
    let line = `  ${key}`.padEnd(indent);
    for (const word of words) {
      if (line.trim().length > key.length && line.length + 1 + word.length > 100) {
        lines.push(line.trimEnd());
        line = "".padEnd(indent);
      }
      line += line.endsWith(" ") ? word : ` ${word}`;
    }
    lines.push(line);
  }
  return lines.join("\n");
}
