/**
 * A real ejabberd 23.01 cluster (Debian package) on loopback, for interop tests (test/kit/ejabberd.ts
 * re-exports this module) and benchmarks, which is why it lives under bench/ (imports go test → bench,
 * never back). Every node gets its own temporary directory (config, mnesia spool, logs), its own free
 * ports and a unique Erlang node name; everything binds 127.0.0.1. The recipe and what was measured are
 * in docs/INTEROP.md ("ejabberd cluster as a test server").
 *
 * How a node runs. `ejabberdctl foreground` runs the VM as a grandchild (bash → su → sh → beam.smp), so
 * a parent-death signal on the process we spawn would not reach the VM, and killing "the node" would
 * kill a wrapper. So the kit runs the command line `ejabberdctl foreground` builds (read from
 * /usr/sbin/ejabberdctl) itself, as the user `ejabberd`, through the PR_SET_PDEATHSIG exec wrapper: the
 * pid we hold is the beam.smp pid (erl and erlexec exec), `kill()` SIGKILLs the real VM, and if this
 * process dies the kernel sends the VM SIGTERM. Control commands (`register`, `join_cluster`,
 * `list_cluster`) do go through `ejabberdctl --ctl-config FILE`, run as the user `ejabberd` directly
 * (no su); FILE is ours, so /etc/ejabberd/ejabberdctl.cfg (which sets EJABBERD_CONFIG_PATH) is never read.
 *
 * Erlang distribution: each cluster runs its own epmd (a child of ours, on a free port of 127.0.0.1,
 * `ERL_EPMD_PORT`), and the nodes start with `-start_epmd false`, so the machine's epmd on 4369 is
 * neither started nor used and parallel clusters cannot see each other. Each node's distribution port
 * is pinned to a free port (`inet_dist_listen_min/max`) on 127.0.0.1 (`inet_dist_use_interface`), and
 * a random cookie per cluster is passed with `-setcookie` (no ~/.erlang.cookie is read or written).
 *
 * Nothing may leave the machine: no s2s listener (another test owns 5269) and `s2s_access: none`, no
 * http listener, `acme: {auto: false}`.
 *
 * Requires root (to run as the `ejabberd` user, which owns every directory ejabberd writes).
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmod, chown, copyFile, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cleanEnv, killOnExit, PDEATHSIG_EXEC, PYTHON } from "./child-process.js";
import { accepts, freePort } from "./prosody-process.js";

export { freePort };

const EJABBERDCTL = "/usr/sbin/ejabberdctl";
const ERL = "/usr/bin/erl";
const EPMD = "/usr/bin/epmd";
/** Where Debian puts the ejabberd application (ejabberdctl's ERL_LIBS). */
const ERL_LIBS = "/usr/lib/x86_64-linux-gnu";
/** Debian's inetrc: `localhost` is 127.0.0.1 from the file, before any resolver. */
const ERL_INETRC = "/etc/ejabberd/inetrc";

export interface EjabberdUser {
  readonly username: string;
  readonly host: string;
  readonly password: string;
}

export interface EjabberdComponent {
  /** The component's domain, a key of the `ejabberd_service` listener's `hosts:` map. */
  readonly domain: string;
  /** The XEP-0114 §3 handshake secret (that host's `password`). */
  readonly secret: string;
}

/** What the kit needs of a test PKI (test/kit/test-ca.ts `TestPki.server` fits). */
export interface EjabberdPki {
  /** PEM with the server certificate (and chain) followed by its private key, as `certfiles` wants. */
  readonly combined: string;
}

export interface EjabberdClusterOptions {
  /** Number of nodes. Default 2. */
  nodes: number;
  /** Virtual hosts (`hosts:`). Default ["localhost"]. */
  vhosts: readonly string[];
  /** XEP-0114 components, served by every node's `ejabberd_service` listener(s). Default none. */
  components: readonly EjabberdComponent[];
  /** Accounts registered once the cluster is formed. Default none. */
  users: readonly EjabberdUser[];
  /**
   * With a PKI every node also has an `ejabberd_service` listener with `tls: true` (Direct TLS, the
   * XEP-0114 stream inside TLS) using this certificate (`serviceTlsPort`). c2s stays without TLS.
   */
  pki: EjabberdPki | null;
  /** ejabberd `loglevel`. Default "warning". */
  loglevel: "none" | "emergency" | "alert" | "critical" | "error" | "warning" | "notice" | "info" | "debug";
  /** How long a node may take to start (listeners accepting, member of the cluster). Default 30 s. */
  startTimeoutMs: number;
}

export interface EjabberdNode {
  /** Erlang node name, e.g. `cx1_3f9a0c@localhost`; unique per cluster. */
  readonly name: string;
  readonly address: string;
  readonly c2sPort: number;
  /** Plain `ejabberd_service` (XEP-0114) listener. */
  readonly servicePort: number;
  /** `ejabberd_service` listener with `tls: true`, when the cluster has a PKI. */
  readonly serviceTlsPort: number | undefined;
  /** The node's directory (config, `spool/` = mnesia, `log/`). */
  readonly dir: string;
  /** The beam.smp pid of the current run (changes on restart); -1 while stopped. */
  readonly pid: number;
  /** `xmpp://127.0.0.1:c2sPort`, the service URI for @xmpp/client. */
  readonly c2sService: string;
  /** `xmpp://127.0.0.1:servicePort`, the service URI for @xmpp/component. */
  readonly componentService: string;
  /** True while the VM of the current run has not exited. */
  readonly running: boolean;
  /** The VM's stdout and stderr of every run so far (ejabberd's console log at `loglevel`). */
  log(): string;
  /** SIGKILLs the Erlang VM (the beam.smp process itself) and waits until it is gone. */
  kill(): Promise<void>;
  /**
   * Starts the node again on the same spool directory (and ports) after `kill()` or `stop()`; resolves
   * once its listeners accept and it is a cluster member again. A node rejoins from its mnesia schema by
   * itself (seen every time); only if it is no member after 5 s does the kit run `join_cluster`, and
   * `rejoined` says which happened ("schema" or "join_cluster").
   */
  restart(): Promise<{ readonly rejoined: "schema" | "join_cluster" }>;
  /** Stops the VM (SIGTERM: init:stop, SIGKILL after `timeoutMs`); the directory stays until cluster stop. */
  stop(timeoutMs?: number): Promise<void>;
}

export interface EjabberdCluster {
  readonly nodes: readonly EjabberdNode[];
  /** The Erlang cookie shared by the nodes. */
  readonly cookie: string;
  /** The cluster's own epmd: its port on 127.0.0.1 and pid. */
  readonly epmd: { readonly port: number; readonly pid: number };
  /** How long the start took: all VMs up with listeners (in parallel), the joins, the registrations. */
  readonly timings: { readonly launchMs: number; readonly joinMs: number; readonly registerMs: number };
  /** Every pid the kit started that may still run (beam.smp of each node, epmd). */
  pids(): number[];
  /** `ejabberdctl register` on a running node (accounts are cluster-wide). */
  registerUser(username: string, host: string, password: string): Promise<void>;
  /** `ejabberdctl list_cluster` (mnesia's running db nodes) as seen from `via` (default: a running node). */
  listCluster(via?: EjabberdNode): Promise<string[]>;
  /** Stops every node and epmd, removes every directory; idempotent, also after `kill()`. */
  stop(): Promise<void>;
}

interface Account {
  readonly uid: number;
  readonly gid: number;
}

function execFileText(
  file: string,
  args: readonly string[],
  options: { uid: number; gid: number; env: NodeJS.ProcessEnv; cwd: string; timeout: number },
): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(file, [...args], { ...options, encoding: "utf8" }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === "number" ? error.code : -1) : 0;
      resolve({ code, out: `${stdout}${stderr}`.trim() });
    });
  });
}

async function ejabberdAccount(): Promise<Account> {
  const id = (flag: string) =>
    new Promise<number>((resolve, reject) =>
      execFile("id", [flag, "ejabberd"], (error, out) =>
        error ? reject(new Error("no user `ejabberd`: apt-get install -y ejabberd")) : resolve(Number(out)),
      ),
    );
  return { uid: await id("-u"), gid: await id("-g") };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const json = (v: unknown): string => JSON.stringify(v); // JSON flow values are valid YAML

interface NodePorts {
  c2s: number;
  service: number;
  serviceTls: number | undefined;
}

async function freshPorts(tls: boolean): Promise<NodePorts> {
  return { c2s: await freePort(), service: await freePort(), serviceTls: tls ? await freePort() : undefined };
}

function yamlConfig(o: EjabberdClusterOptions, ports: NodePorts, certfile: string | undefined): string {
  const serviceHosts = Object.fromEntries(o.components.map((c) => [c.domain, { password: c.secret }]));
  // `global_routes: true` (ejabberd's default) routes EVERY domain of the listener's `hosts` map to each
  // component that connects: a.localhost's connection would receive b.localhost's stanzas. With false, a
  // connection serves only the domain it named in its stream header (docs/DEPLOY.md, many gateways).
  const service = { module: "ejabberd_service", hosts: serviceHosts, global_routes: false };
  const listen: unknown[] = [
    // No `starttls`: no STARTTLS offered, so xmpp.js does not try it; PLAIN is offered without TLS.
    { port: ports.c2s, ip: "127.0.0.1", module: "ejabberd_c2s", starttls_required: false },
    { port: ports.service, ip: "127.0.0.1", ...service },
  ];
  if (ports.serviceTls !== undefined)
    listen.push({
      port: ports.serviceTls,
      ip: "127.0.0.1",
      ...service,
      tls: true,
      certfile,
    });
  const lines = [
    "# Written by bench/ejabberd-process.ts",
    `loglevel: ${o.loglevel}`,
    "log_rotate_count: 0",
    `hosts: ${json(o.vhosts)}`,
    ...(certfile ? [`certfiles: ${json([certfile])}`] : []),
    "acme: {auto: false}",
    "auth_method: internal",
    // PLAIN logins compare the stored password directly (no PBKDF2 per login as with `scram`).
    "auth_password_format: plain",
    "s2s_access: none",
    "shaper: {}",
    `listen: ${json(listen)}`,
    // No mod_stream_mgmt (xmpp.js 0.14 raises a spurious stream error on stop with it), no mod_offline.
    "modules: {mod_disco: {}, mod_ping: {}, mod_roster: {}}",
  ];
  return `${lines.join("\n")}\n`;
}

/** Starts an epmd of our own on 127.0.0.1:port, in the foreground, as our child. */
async function startEpmd(port: number, timeoutMs: number): Promise<ChildProcess> {
  const child = spawn(PYTHON, ["-c", PDEATHSIG_EXEC, EPMD, "-port", String(port), "-address", "127.0.0.1"], {
    stdio: ["ignore", "ignore", "pipe"],
    env: cleanEnv({ ERL_EPMD_ADDRESS: "127.0.0.1" }),
  });
  killOnExit(child);
  let err = "";
  child.stderr?.setEncoding("utf8").on("data", (s: string) => {
    err += s;
  });
  const until = Date.now() + timeoutMs;
  while (!(await accepts("127.0.0.1", port))) {
    if (child.exitCode !== null || child.signalCode !== null || Date.now() > until) {
      child.kill("SIGKILL");
      throw new Error(`epmd on 127.0.0.1:${port} did not start: ${err}`);
    }
    await sleep(10);
  }
  return child;
}

async function waitExit(child: ChildProcess, timeoutMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  await exited;
  clearTimeout(timer);
}

/**
 * Starts `options.nodes` ejabberd nodes (default 2) on loopback and joins them into one cluster (every
 * node joins the first); registers `options.users`. On failure everything started so far is stopped.
 */
export async function startEjabberdCluster(
  options: Readonly<Partial<EjabberdClusterOptions>> = {},
): Promise<EjabberdCluster> {
  if (process.getuid?.() !== 0)
    throw new Error("the ejabberd kit must run as root (it runs ejabberd as the user `ejabberd`)");
  const o: EjabberdClusterOptions = {
    nodes: options.nodes ?? 2,
    vhosts: options.vhosts ?? ["localhost"],
    components: options.components ?? [],
    users: options.users ?? [],
    pki: options.pki ?? null,
    loglevel: options.loglevel ?? "warning",
    startTimeoutMs: options.startTimeoutMs ?? 30_000,
  };
  const account = await ejabberdAccount();
  const cookie = randomBytes(16).toString("hex");
  const tag = randomBytes(3).toString("hex");
  const root = await mkdtemp(join(tmpdir(), "cxmpp-ejabberd-"));
  await chmod(root, 0o755); // the ejabberd user must reach its node directories
  const epmdPort = await freePort();
  const nodes: NodeImpl[] = [];
  let epmd: ChildProcess | undefined;
  let stopped = false;
  const timings = { launchMs: 0, joinMs: 0, registerMs: 0 };

  const ctlEnv = (n: NodeImpl) =>
    cleanEnv({ HOME: n.dir, ERL_EPMD_PORT: String(epmdPort), ERL_EPMD_ADDRESS: "127.0.0.1" });
  /** `ejabberdctl --ctl-config N/ejabberdctl.cfg ARGS` as the ejabberd user, against node `n`. */
  const ctl = (n: NodeImpl, args: readonly string[], timeout = 20_000) =>
    execFileText(EJABBERDCTL, ["--ctl-config", join(n.dir, "ejabberdctl.cfg"), ...args], {
      ...account,
      env: ctlEnv(n),
      cwd: n.dir,
      timeout,
    });

  const listCluster = async (via?: EjabberdNode): Promise<string[]> => {
    const n = (via as NodeImpl | undefined) ?? nodes.find((x) => x.running);
    if (!n) throw new Error("no ejabberd node is running");
    const r = await ctl(n, ["list_cluster"]);
    if (r.code !== 0) throw new Error(`list_cluster on ${n.name} failed (${r.code}): ${r.out}`);
    // An atom is printed quoted when it needs to be ('cx-1@localhost'); our names do not, but be lenient.
    return r.out
      .split("\n")
      .map((l) => l.trim().replace(/^'(.*)'$/, "$1"))
      .filter((l) => l.includes("@"));
  };

  class NodeImpl implements EjabberdNode {
    readonly address = "127.0.0.1";
    child: ChildProcess | undefined;
    output = "";

    constructor(
      readonly index: number,
      readonly name: string,
      readonly dir: string,
      public ports: NodePorts,
      /** Writes the node's ejabberd.yml for `ports`. */
      private readonly configure: (ports: NodePorts) => Promise<void>,
    ) {}
    get c2sService() {
      return `xmpp://127.0.0.1:${this.ports.c2s}`;
    }
    get componentService() {
      return `xmpp://127.0.0.1:${this.ports.service}`;
    }
    get c2sPort() {
      return this.ports.c2s;
    }
    get servicePort() {
      return this.ports.service;
    }
    get serviceTlsPort() {
      return this.ports.serviceTls;
    }
    get running() {
      return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
    }
    get pid() {
      return this.running ? (this.child?.pid ?? -1) : -1;
    }
    log() {
      return this.output;
    }

    /** Spawns the VM (the command line of `ejabberdctl foreground`) and waits for its listeners. */
    async launch(): Promise<void> {
      const distPort = await freePort();
      const spool = join(this.dir, "spool");
      const args = [
        "-sname",
        this.name,
        "+K",
        "true",
        "+P",
        "250000",
        "-setcookie",
        cookie,
        "-start_epmd",
        "false",
        "-kernel",
        "inet_dist_use_interface",
        "{127,0,0,1}",
        "-kernel",
        "inet_dist_listen_min",
        String(distPort),
        "-kernel",
        "inet_dist_listen_max",
        String(distPort),
        "-mnesia",
        "dir",
        json(spool),
        "-s",
        "ejabberd",
        "-noinput",
      ];
      const env = cleanEnv({
        HOME: this.dir,
        EJABBERD_CONFIG_PATH: join(this.dir, "ejabberd.yml"),
        EJABBERD_LOG_PATH: join(this.dir, "log", "ejabberd.log"),
        ERL_EPMD_PORT: String(epmdPort),
        ERL_EPMD_ADDRESS: "127.0.0.1",
        ERL_CRASH_DUMP: join(this.dir, "log", "erl_crash.dump"),
        ERL_CRASH_DUMP_BYTES: "0",
        ERL_INETRC,
        ERL_LIBS,
        ERL_MAX_PORTS: "32000",
        ERL_MAX_ETS_TABLES: "1400",
        SCRIPT_DIR: "/usr/sbin",
      });
      const child = spawn(PYTHON, ["-c", PDEATHSIG_EXEC, ERL, ...args], {
        ...account,
        cwd: spool,
        env,
        stdio: ["ignore", "pipe", "pipe"],
      });
      killOnExit(child);
      this.child = child;
      const append = (s: string) => {
        this.output += s;
      };
      child.stdout?.setEncoding("utf8").on("data", append);
      child.stderr?.setEncoding("utf8").on("data", append);
      await this.waitListeners();
    }

    async waitListeners(): Promise<void> {
      const until = Date.now() + o.startTimeoutMs;
      const ports = [this.ports.c2s, this.ports.service, this.ports.serviceTls].filter(
        (p): p is number => p !== undefined,
      );
      for (const port of ports)
        while (!(await accepts(this.address, port))) {
          if (!this.running || Date.now() > until) {
            const why = this.running ? `did not accept within ${o.startTimeoutMs} ms` : "exited";
            throw new Error(`ejabberd ${this.name} on port ${port} ${why}:\n${this.output}`);
          }
          await sleep(25);
        }
      // A port another process took meanwhile accepts our probe too; ejabberd logs that it could not bind.
      if (/eaddrinuse|Failed to open socket/i.test(this.output))
        throw new Error(`ejabberd ${this.name} could not open a port:\n${this.output}`);
    }

    /** Until `list_cluster` on this node shows every running node; join_cluster if it does not rejoin. */
    async waitMember(): Promise<"schema" | "join_cluster"> {
      const expected = nodes.filter((n) => n.running).map((n) => n.name);
      const until = Date.now() + o.startTimeoutMs;
      const joinAfter = Date.now() + 5_000;
      let joined = false;
      for (;;) {
        const members = await listCluster(this).catch(() => [] as string[]);
        if (expected.every((e) => members.includes(e))) return joined ? "join_cluster" : "schema";
        const peer = nodes.find((n) => n !== this && n.running);
        if (!joined && peer && Date.now() > joinAfter) {
          joined = true;
          await this.join(peer);
          continue;
        }
        if (!this.running || Date.now() > until)
          throw new Error(`ejabberd ${this.name} is no cluster member (sees ${members.join(", ")})`);
        await sleep(100);
      }
    }

    async join(peer: NodeImpl): Promise<void> {
      const r = await ctl(this, ["join_cluster", peer.name], 60_000);
      if (r.code !== 0 || /error/i.test(r.out))
        throw new Error(`join_cluster ${peer.name} on ${this.name} failed (${r.code}): ${r.out}`);
      // join_cluster restarts ejabberd on the joining node: its listeners close and open again.
      await this.waitListeners();
    }

    async kill(): Promise<void> {
      const child = this.child;
      if (!child || !this.running) return;
      child.kill("SIGKILL");
      await waitExit(child, 5_000);
    }

    /**
     * The first launch. freePort finds a port that is free now, and another process (a parallel test)
     * may bind it before ejabberd does: then the VM logs eaddrinuse and exits, and the node gets fresh
     * ports and another try, up to three. A restart keeps its ports: clients know them by then.
     */
    async launchFirst(): Promise<void> {
      for (let attempt = 1; ; attempt++) {
        try {
          await this.launch();
          return;
        } catch (error) {
          if (attempt >= 3 || !/eaddrinuse/i.test(this.output)) throw error;
          await this.kill();
          this.output = "";
          this.ports = await freshPorts(this.ports.serviceTls !== undefined);
          await this.configure(this.ports);
        }
      }
    }

    async stop(timeoutMs = 10_000): Promise<void> {
      const child = this.child;
      if (!child || !this.running) return;
      child.kill("SIGTERM"); // the VM's SIGTERM handler runs init:stop()
      await waitExit(child, timeoutMs);
    }

    async restart(): Promise<{ rejoined: "schema" | "join_cluster" }> {
      if (stopped) throw new Error("the cluster is stopped");
      await this.stop();
      await this.launch();
      return { rejoined: await this.waitMember() };
    }
  }

  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await Promise.all(nodes.map((n) => n.stop()));
    if (epmd) {
      epmd.kill("SIGTERM");
      await waitExit(epmd, 3_000);
    }
    await rm(root, { recursive: true, force: true });
  };

  try {
    epmd = await startEpmd(epmdPort, 5_000);
    for (let i = 0; i < o.nodes; i++) {
      const dir = join(root, `node${i + 1}`);
      await mkdir(join(dir, "spool"), { recursive: true });
      await mkdir(join(dir, "log"), { recursive: true });
      let certfile: string | undefined;
      if (o.pki) {
        certfile = join(dir, "server.pem");
        await copyFile(o.pki.combined, certfile);
      }
      const ports = await freshPorts(o.pki !== null);
      const name = `cx${i + 1}_${tag}@localhost`;
      const configure = (p: NodePorts) => writeFile(join(dir, "ejabberd.yml"), yamlConfig(o, p, certfile));
      await configure(ports);
      // For the control commands; read by ejabberdctl (bash `.`), never by the node we spawn.
      await writeFile(
        join(dir, "ejabberdctl.cfg"),
        [
          `ERLANG_NODE=${name}`,
          `EJABBERD_CONFIG_PATH=${join(dir, "ejabberd.yml")}`,
          `SPOOL_DIR=${join(dir, "spool")}`,
          `LOGS_DIR=${join(dir, "log")}`,
          `ERL_OPTIONS="-setcookie ${cookie} -start_epmd false -kernel inet_dist_use_interface {127,0,0,1}"`,
          `export ERL_EPMD_PORT=${epmdPort}`,
          "ERL_EPMD_ADDRESS=127.0.0.1",
          "EJABBERD_BYPASS_WARNINGS=true",
          "",
        ].join("\n"),
      );
      for (const p of [dir, join(dir, "spool"), join(dir, "log"), ...(certfile ? [certfile] : [])])
        await chown(p, account.uid, account.gid);
      nodes.push(new NodeImpl(i, name, dir, ports, configure));
    }
    // All nodes start at once (~2.5 s each); then every other node joins the first.
    let t = performance.now();
    await Promise.all(nodes.map((n) => n.launchFirst()));
    timings.launchMs = performance.now() - t;
    t = performance.now();
    for (const n of nodes.slice(1)) await n.join(nodes[0]!);
    await Promise.all(nodes.map((n) => n.waitMember()));
    timings.joinMs = performance.now() - t;
    t = performance.now();
    await Promise.all(o.users.map((u) => register(u.username, u.host, u.password)));
    timings.registerMs = performance.now() - t;
  } catch (error) {
    await stop();
    throw error;
  }

  async function register(username: string, host: string, password: string): Promise<void> {
    const n = nodes.find((x) => x.running);
    if (!n) throw new Error("no ejabberd node is running");
    const r = await ctl(n, ["register", username, host, password]);
    if (r.code !== 0) throw new Error(`register ${username}@${host} failed (${r.code}): ${r.out}`);
  }

  return {
    nodes,
    cookie,
    timings,
    epmd: { port: epmdPort, pid: epmd.pid ?? -1 },
    pids: () => [
      ...nodes.filter((n) => n.running).map((n) => n.pid),
      ...(epmd && epmd.exitCode === null && epmd.signalCode === null ? [epmd.pid ?? -1] : []),
    ],
    registerUser: register,
    listCluster,
    stop,
  };
}
