/**
 * A real Prosody (0.12, Debian package) run as a child process: for interop tests (test/kit/prosody.ts
 * re-exports this module) and for `cxmpp bench federation`, which is why it lives under gateway/
 * (imports go test → gateway, never back). A temporary directory with its own config, data and hosts
 * file, run in the foreground (`prosody -F`) on a loopback address, stopped and removed afterwards.
 * The recipe is the verified one in docs/INTEROP.md.
 *
 * Ports: c2s and the XEP-0114 component listener default to free ports (probed by listening on port 0)
 * so that test files running in parallel do not collide. s2s is the exception: server dialback
 * (XEP-0220) connects to the peer domain's address on the default port 5269 (RFC 6120 §3.2.2 fallback
 * when there is no SRV record, and our DNS is local), so both instances of an s2s test listen on 5269
 * at different loopback addresses (127.0.0.1 and 127.0.0.2). Consequently at most one test file may use
 * s2s, and a test file (or benchmark) that does not need s2s should pass `s2sPort: null` so it never
 * holds 5269.
 *
 * DNS never leaves the machine: Prosody's libunbound reads our hosts file, forwards to a port on
 * 127.0.0.1 where nothing listens, and answers `localhost.` names statically.
 */
import { execFile, spawn } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createConnection, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { killOnExit, PDEATHSIG_EXEC, PYTHON } from "./child-process.js";

const execFileAsync = promisify(execFile);

/** The port s2s must use for dialback between two instances (see the file comment). */
export const S2S_PORT = 5269;

export interface ProsodyUser {
  readonly username: string;
  readonly host: string;
  readonly password: string;
}

export interface ProsodyComponent {
  /** The component's domain (`Component "iot.localhost"`). */
  readonly domain: string;
  /** The XEP-0114 §3 handshake secret (`component_secret`). */
  readonly secret: string;
}

export interface ProsodyOptions {
  /** Loopback address every listener binds to. Default 127.0.0.1. */
  address: string;
  /** c2s port. Default: a free port. */
  c2sPort: number;
  /** s2s port, or null for no s2s listener. Default 5269 (see the file comment). */
  s2sPort: number | null;
  /** XEP-0114 component port. Default: a free port. */
  componentPort: number;
  /** VirtualHost names. Default ["localhost"]. */
  vhosts: readonly string[];
  /** Accounts created with `prosodyctl register` before start. Default none. */
  users: readonly ProsodyUser[];
  /** External components. Default none. */
  components: readonly ProsodyComponent[];
  /**
   * Extra lines for the hosts file, e.g. `127.0.0.2 c.localhost` so that this instance finds a second
   * one for s2s. A line for this instance's own vhosts and components is always written.
   */
  hostsLines: readonly string[];
  /** Lua lines appended to the global section (before the hosts). Default none. */
  extraConfig: readonly string[];
  /** How long to wait for the c2s port to accept. Default 10 s. */
  startTimeoutMs: number;
  /**
   * A Direct TLS port that also takes component streams (mod_net_multiplex's `ssl_ports`: Prosody picks
   * the service by the stream's namespace after the TLS handshake), with this certificate and key (PEM
   * files). Default none.
   */
  componentTls: { readonly certificate: string; readonly key: string } | null;
}

export interface Prosody {
  readonly address: string;
  readonly c2sPort: number;
  readonly s2sPort: number | null;
  readonly componentPort: number;
  readonly dir: string;
  /** The process id, for diagnostics. */
  readonly pid: number;
  /** `xmpp://address:c2sPort`, the service URI for @xmpp/client. */
  readonly c2sService: string;
  /** `xmpp://address:componentPort`, the service URI for @xmpp/component. */
  readonly componentService: string;
  /** `xmpps://address:port` of the Direct TLS port for components, when componentTls was given. */
  readonly componentTlsService: string | undefined;
  /** Everything Prosody wrote to stdout and stderr so far (its console log at level info). */
  log(): string;
  /** Stops Prosody (SIGTERM, SIGKILL after `timeoutMs`), waits for it to exit, removes the directory. */
  stop(timeoutMs?: number): Promise<void>;
}

/** Listens on port 0 at `address` and returns the port the kernel chose. */
export async function freePort(address = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen({ host: address, port: 0, exclusive: true }, () => {
      const bound = server.address();
      const port = typeof bound === "object" && bound ? bound.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error(`no port bound on ${address}`))));
    });
  });
}

/** One TCP connect attempt; true when the port accepted. */
export function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host, port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

const lua = (value: string): string => JSON.stringify(value); // a JSON string is a valid Lua string literal

function config(dir: string, o: ProsodyOptions, tlsPort: number): string {
  const lines = [
    "-- Written by gateway/cli/prosody-process.ts",
    "run_as_root = true -- tests run as root; without it Prosody refuses to start",
    `pidfile = ${lua(join(dir, "prosody.pid"))}`,
    `data_path = ${lua(join(dir, "data"))}`,
    'log = { { levels = { min = "info" }, to = "console" } }',
    `interfaces = { ${lua(o.address)} }`,
    `local_interfaces = { ${lua(o.address)} }`,
    `c2s_ports = { ${o.c2sPort} }`,
    "c2s_direct_tls_ports = { }",
    "legacy_ssl_ports = { }",
    `s2s_ports = { ${o.s2sPort ?? ""} }`,
    `component_ports = { ${o.componentPort} }`,
    `component_interfaces = { ${lua(o.address)} }`,
    "http_ports = { }",
    "https_ports = { }",
    "use_ipv6 = false",
    // No certificates, hence no `tls` module: xmpp.js would otherwise try STARTTLS and fail.
    "c2s_require_encryption = false",
    "s2s_require_encryption = false",
    "s2s_secure_auth = false",
    "allow_unencrypted_plain_auth = true",
    'authentication = "internal_hashed"',
    'storage = "internal"',
    `unbound = { resolvconf = false; hoststxt = ${lua(join(dir, "hosts"))}; forward = "127.0.0.1@5399";`,
    '            options = { ["local-zone:"] = "localhost. static" } }',
    // No `smacks`: xmpp.js 0.14 raises a spurious stream error on stop with it (docs/INTEROP.md).
    `modules_enabled = { "disco"; "roster"; "saslauth"; "dialback"; "ping"; "time"; "version"; "posix"${o.componentTls ? '; "net_multiplex"' : ""} }`,
    ...(o.componentTls
      ? [
          // c2s_direct_tls_ports would take the stream as c2s; the multiplexer dispatches on the namespace.
          `ssl_ports = { ${tlsPort} }`,
          `ssl = { certificate = ${lua(o.componentTls.certificate)}; key = ${lua(o.componentTls.key)} }`,
        ]
      : []),
    ...o.extraConfig,
  ];
  for (const vhost of o.vhosts) lines.push(`VirtualHost ${lua(vhost)}`);
  for (const c of o.components)
    lines.push(`Component ${lua(c.domain)}`, `  component_secret = ${lua(c.secret)}`);
  return `${lines.join("\n")}\n`;
}

export async function startProsody(options: Readonly<Partial<ProsodyOptions>> = {}): Promise<Prosody> {
  const address = options.address ?? "127.0.0.1";
  const o: ProsodyOptions = {
    address,
    c2sPort: options.c2sPort ?? (await freePort(address)),
    s2sPort: options.s2sPort === undefined ? S2S_PORT : options.s2sPort,
    componentPort: options.componentPort ?? (await freePort(address)),
    vhosts: options.vhosts ?? ["localhost"],
    users: options.users ?? [],
    components: options.components ?? [],
    hostsLines: options.hostsLines ?? [],
    extraConfig: options.extraConfig ?? [],
    startTimeoutMs: options.startTimeoutMs ?? 10_000,
    componentTls: options.componentTls ?? null,
  };
  const tlsPort = o.componentTls ? await freePort(address) : 0;
  const dir = await mkdtemp(join(tmpdir(), "cxmpp-prosody-"));
  const cfg = join(dir, "prosody.cfg.lua");
  const own = [...o.vhosts, ...o.components.map((c) => c.domain)];
  await mkdir(join(dir, "data"));
  await mkdir(join(dir, "certs")); // empty: only so that certmanager does not log an error at start
  await writeFile(cfg, config(dir, o, tlsPort));
  await writeFile(join(dir, "hosts"), [`${address} ${own.join(" ")}`, ...o.hostsLines, ""].join("\n"));

  try {
    // prosodyctl writes the accounts straight into the data directory; the server need not run yet.
    for (const u of o.users)
      await execFileAsync("prosodyctl", ["--config", cfg, "register", u.username, u.host, u.password], {
        timeout: 10_000,
      });
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw new Error(`prosodyctl register failed: ${String(error)}`);
  }

  let output = "";
  // Through a tiny exec wrapper that sets PR_SET_PDEATHSIG (prctl(2)): if the test worker dies without
  // stop() (vitest kills its workers; a crashed hook), the kernel sends Prosody SIGTERM, instead of
  // leaving an orphan that holds port 5269 and breaks every later s2s run. The pid stays Prosody's.
  const child = spawn(PYTHON, ["-c", PDEATHSIG_EXEC, "prosody", "-F", "--config", cfg], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  killOnExit(child);
  const exited = new Promise<number | null>((resolve) => {
    child.once("exit", (code, signal) => {
      resolve(code ?? (signal ? -1 : null));
    });
  });
  let hasExited = false;
  void exited.then(() => {
    hasExited = true;
  });
  child.stdout.setEncoding("utf8").on("data", (s: string) => {
    output += s;
  });
  child.stderr.setEncoding("utf8").on("data", (s: string) => {
    output += s;
  });

  const stop = async (timeoutMs = 5_000): Promise<void> => {
    if (!hasExited) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
      await exited;
      clearTimeout(timer);
    }
    await rm(dir, { recursive: true, force: true });
  };

  // Ready when every listener accepts (the kernel accepts as soon as Prosody listens, so each is checked).
  const until = Date.now() + o.startTimeoutMs;
  // Prosody loads mod_component, and so listens on the component port, only when a Component is defined.
  const ports = [
    o.c2sPort,
    ...(o.components.length > 0 ? [o.componentPort] : []),
    ...(o.componentTls ? [tlsPort] : []),
    ...(o.s2sPort === null ? [] : [o.s2sPort]),
  ];
  for (const port of ports)
    while (!(await accepts(address, port))) {
      if (hasExited || Date.now() > until) {
        await stop();
        const why = hasExited ? "exited" : `did not accept within ${o.startTimeoutMs} ms`;
        throw new Error(`Prosody on ${address}:${port} ${why}:\n${output}`);
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  // A port already taken (another s2s test on 5269, or a lost race for a probed port) does not stop
  // Prosody; it only logs, and the other holder accepts our probe. Prosody activates c2s after s2s and
  // the component listener, so once the c2s line is in the log a failure line before it is there too.
  while (!output.includes("Activated service 'c2s'")) {
    if (hasExited || Date.now() > until) {
      await stop();
      throw new Error(`Prosody on ${address} never logged its c2s listener:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  if (/Failed to open server port/i.test(output)) {
    await stop();
    throw new Error(`Prosody on ${address} could not open a port:\n${output}`);
  }

  return {
    address,
    c2sPort: o.c2sPort,
    s2sPort: o.s2sPort,
    componentPort: o.componentPort,
    dir,
    pid: child.pid ?? -1,
    c2sService: `xmpp://${address}:${o.c2sPort}`,
    componentService: `xmpp://${address}:${o.componentPort}`,
    componentTlsService: o.componentTls ? `xmpps://${address}:${tlsPort}` : undefined,
    log: () => output,
    stop,
  };
}
