/**
 * Independent DTLS 1.2 PSK peers on loopback, to test our DTLS layer (src/dtls) against software we
 * did not write (docs/INTEROP.md, "DTLS peers"):
 *
 * - `opensslServer` / `opensslClient`: `openssl s_server` / `s_client -dtls1_2` with a PSK (hex);
 * - `libcoapServer` / `libcoapClient`: libcoap 4.3.1's `coap-server-*` / `coap-client-*`, built on
 *   OpenSSL or GnuTLS (keys are text: libcoap takes the key's bytes as given);
 * - `nodeDtlsClientExchange`: node-dtls-client 1.1.1 (TypeScript, in this process), one datagram there
 *   and the first one back;
 * - `startCapture`: a capture on `lo` (dumpcap), decoded afterwards by tshark with the PSK or a key log.
 *
 * Every child runs with a parent-death signal (bench/child-process.ts) and is remembered until it
 * exits: `stopDtlsPeers()` (afterEach/afterAll) stops whatever is still running and removes the
 * temporary files, so no test leaves a process behind even when it fails half-way. All traffic stays
 * on 127.0.0.1; every server binds 127.0.0.1 only, on ports that were free a moment before.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { createSocket, type Socket } from "node:dgram";
import { readFileSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dtls } from "node-dtls-client";
import { cleanEnv, freeUdpPort, killOnExit, PDEATHSIG_EXEC, PYTHON } from "../../bench/child-process.js";

const HOST = "127.0.0.1";

/** The hex form of a text key, as `openssl -psk` and tshark's `dtls.psk` want it. */
export function pskHex(text: string): string {
  return Buffer.from(text, "utf8").toString("hex");
}

/** OpenSSL's names of the two suites that matter for CoAP (RFC 7925 §4.2: CCM_8 is mandatory). */
export const OPENSSL_CCM8 = "PSK-AES128-CCM8"; // TLS_PSK_WITH_AES_128_CCM_8, 0xC0A8
export const OPENSSL_GCM = "PSK-AES128-GCM-SHA256"; // TLS_PSK_WITH_AES_128_GCM_SHA256, 0x00A8

// ---------------------------------------------------------------------------------------------------
// Child processes

export interface PeerExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** A child process whose output is collected, and which `stopDtlsPeers()` will stop. */
class Peer {
  stdout = "";
  /** With `binary`: stdout as bytes (and `stdout` stays ""). */
  bytes = Buffer.alloc(0);
  stderr = "";
  /** stdout and stderr interleaved as they arrived. */
  all = "";
  exit: PeerExit | undefined;
  readonly exited: Promise<PeerExit>;
  private readonly waiters = new Set<() => void>();

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
    binary = false,
  ) {
    killOnExit(child);
    live.add(this);
    if (binary)
      child.stdout?.on("data", (d: Buffer) => {
        this.bytes = Buffer.concat([this.bytes, d]);
        this.poke();
      });
    else
      child.stdout?.setEncoding("utf8").on("data", (d: string) => {
        this.stdout += d;
        this.all += d;
        this.poke();
      });
    child.stderr?.setEncoding("utf8").on("data", (d: string) => {
      this.stderr += d;
      this.all += d;
      this.poke();
    });
    // EPIPE when the peer exits while we write: the exit is reported through `exited` anyway.
    child.stdin?.on("error", () => undefined);
    this.exited = new Promise((resolve) => {
      // "close", not "exit": by then stdout and stderr are read to the end.
      child.once("close", (code, signal) => {
        this.exit = { code, signal };
        live.delete(this);
        this.poke();
        resolve(this.exit);
      });
      child.once("error", (error) => {
        this.stderr += `spawn error: ${error.message}\n`;
        this.all += `spawn error: ${error.message}\n`;
      });
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get running(): boolean {
    return this.exit === undefined;
  }

  private poke(): void {
    for (const waiter of [...this.waiters]) waiter();
  }

  /**
   * Resolves with `check()`'s first defined value, re-checked on every chunk of output; rejects with
   * the output so far if the process exits first or `timeoutMs` passes.
   */
  until<T>(check: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const finish = () => {
        clearTimeout(timer);
        this.waiters.delete(test);
      };
      const test = () => {
        const value = check();
        if (value !== undefined) {
          finish();
          resolve(value);
        } else if (this.exit) {
          finish();
          reject(
            new Error(
              `${this.name} exited (${this.exit.code ?? this.exit.signal}) before ${what}\n${this.all}`,
            ),
          );
        }
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`${this.name}: no ${what} within ${timeoutMs} ms\n${tail(this.all)}`));
      }, timeoutMs);
      this.waiters.add(test);
      test();
    });
  }

  /** Resolves with the first match of `pattern` in `text()` (default: stdout and stderr). */
  waitFor(pattern: string | RegExp, timeoutMs: number, text: () => string = () => this.all): Promise<string> {
    return this.until(
      () => {
        const t = text();
        if (typeof pattern === "string") return t.includes(pattern) ? pattern : undefined;
        return pattern.exec(t)?.[0];
      },
      timeoutMs,
      `output ${String(pattern)}`,
    );
  }

  write(text: string | Uint8Array): void {
    if (!this.running || !this.child.stdin?.writable) throw new Error(`${this.name} is not running`);
    this.child.stdin.write(text);
  }

  /**
   * Closes stdin (s_client and s_server then send close_notify and exit) and waits `graceMs`; then
   * SIGTERM, and SIGKILL one second later.
   */
  async stop(graceMs = 1_000, signal: NodeJS.Signals = "SIGTERM"): Promise<PeerExit> {
    if (this.exit) return this.exit;
    const within = (ms: number) =>
      Promise.race([this.exited, new Promise<undefined>((r) => setTimeout(() => r(undefined), ms).unref())]);
    if (this.child.stdin && !this.child.stdin.destroyed) {
      this.child.stdin.end();
      if (await within(graceMs)) return this.exit!;
    }
    this.child.kill(signal);
    if (await within(1_000)) return this.exit!;
    this.child.kill("SIGKILL");
    return this.exited;
  }
}

const live = new Set<Peer>();
const cleanups = new Set<() => Promise<void>>();

/** Starts `command` with a parent-death signal: it cannot outlive this process. */
function launch(
  name: string,
  command: string,
  args: readonly string[],
  stdin = false,
  env: Readonly<Record<string, string>> = {},
  binary = false,
): Peer {
  const child = spawn(PYTHON, ["-c", PDEATHSIG_EXEC, command, ...args], {
    stdio: [stdin ? "pipe" : "ignore", "pipe", "pipe"],
    env: cleanEnv(env),
  });
  return new Peer(name, child, binary);
}

/**
 * Stops every peer still running (stdin closed, then SIGTERM, then SIGKILL) and removes the
 * temporary files of captures and libcoap runs. For afterEach/afterAll.
 */
export async function stopDtlsPeers(): Promise<void> {
  await Promise.all([...live].map((peer) => peer.stop(200)));
  const pending = [...cleanups];
  cleanups.clear();
  await Promise.all(pending.map((cleanup) => cleanup()));
}

async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `cxmpp-${prefix}-`));
  cleanups.add(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function tail(text: string, chars = 4_000): string {
  return text.length <= chars ? text : `…${text.slice(-chars)}`;
}

function assertLoopback(host: string): void {
  if (!/^127\.\d+\.\d+\.\d+$|^\[::1\]$|^::1$|^localhost$/.test(host))
    throw new Error(`DTLS test peers talk to loopback only, not ${host}`);
}

/** Whether `command` is on PATH (tshark is optional: see docs/INTEROP.md). */
export function commandAvailable(command: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${command}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------------
// openssl s_server

function readTrace(file: string | undefined): string {
  if (!file) return "";
  try {
    return readFileSync(file, "utf8");
  } catch {
    return ""; // not written yet
  }
}

export interface OpensslServerOptions {
  /** The key in hex (`pskHex("…")`). */
  readonly psk: string;
  /**
   * The identity s_server expects (-psk_identity). Another identity only makes it print
   * `PSK warning: client identity not what we expected` on stdout: the handshake goes on with the key.
   */
  readonly identity?: string;
  /**
   * An identity hint (-psk_hint): s_server then sends a ServerKeyExchange with it. Default none, so
   * no ServerKeyExchange (node-dtls-client 1.1.1 cannot parse one).
   */
  readonly hint?: string;
  /**
   * OpenSSL cipher list. Default `PSK:@SECLEVEL=0`: every suite with PSK authentication (plain,
   * DHE-, ECDHE-, RSA-PSK) in OpenSSL's order; a client that offers only plain PSK gets one of those.
   */
  readonly cipher?: string;
  /** Link MTU (-mtu): s_server fragments its handshake messages to fit. */
  readonly mtu?: number;
  /** -trace: every record sent and received, decoded (`trace()`). */
  readonly trace?: boolean;
  /** Writes the master secrets (NSS key log format) here, for tshark. */
  readonly keylogFile?: string;
  /** -no_ticket: no session_ticket extension and no NewSessionTicket. */
  readonly noTicket?: boolean;
  /** More s_server flags. */
  readonly args?: readonly string[];
  /** How long to wait for `ACCEPT`. Default 5 s. */
  readonly startTimeoutMs?: number;
}

export interface OpensslServer {
  readonly port: number;
  readonly pid: number;
  /**
   * s_server's stdout: per handshake `Shared ciphers:…`, `CIPHER is NAME` and `Secure Renegotiation IS
   * [NOT] supported`, then the application data it received, byte for byte; `DONE` when a connection
   * ends (then it listens again for the next client).
   */
  received(): string;
  /** stdout and stderr (errors) in arrival order. */
  output(): string;
  /** With `trace`: the records so far, decoded by OpenSSL (-trace -msgfile); "" without. */
  trace(): string;
  /** The ciphers of the handshakes completed so far (`CIPHER is …` lines). */
  ciphers(): string[];
  /**
   * Writes `text` to s_server's stdin: sent to the connected client as application data (one record
   * per read, so per call in practice). Before a client connects it waits in the pipe. Lines that are
   * s_server commands are refused here: `Q…`, `P…`, `S…`, and `q`, `r`, `R`, `k`, `K`, `c`, `B` alone.
   */
  send(text: string): void;
  /**
   * Asks for a renegotiation (s_server's `r` command: a HelloRequest to the client; s_client answers
   * with a full handshake inside epoch 1).
   */
  renegotiate(): void;
  /** Resolves once `pattern` appears in `received()` (or in `output()` with `all`). Default 5 s. */
  waitFor(pattern: string | RegExp, timeoutMs?: number, all?: boolean): Promise<string>;
  stop(): Promise<PeerExit>;
}

const SERVER_COMMAND = /^(?:[QPS]|[qrRkKcB]\r?\n?$)/;

/** Starts `openssl s_server -dtls1_2 -nocert` with a PSK on 127.0.0.1 and a free port. */
export async function opensslServer(options: OpensslServerOptions): Promise<OpensslServer> {
  // Not /dev/stderr: Node's stdio pipes are sockets, which cannot be opened through /proc.
  const traceFile = options.trace ? join(await tempDir("s_server"), "trace") : undefined;
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freeUdpPort(HOST);
    const args = [
      "s_server",
      "-dtls1_2",
      "-accept",
      `${HOST}:${port}`,
      "-nocert",
      "-psk",
      options.psk,
      "-cipher",
      options.cipher ?? "PSK:@SECLEVEL=0",
      ...(options.identity !== undefined ? ["-psk_identity", options.identity] : []),
      ...(options.hint !== undefined ? ["-psk_hint", options.hint] : []),
      ...(options.mtu !== undefined ? ["-mtu", String(options.mtu)] : []),
      ...(traceFile ? ["-trace", "-msgfile", traceFile] : []),
      ...(options.keylogFile ? ["-keylogfile", options.keylogFile] : []),
      ...(options.noTicket ? ["-no_ticket"] : []),
      ...(options.args ?? []),
    ];
    const peer = launch("openssl s_server", "openssl", args, true);
    try {
      await peer.waitFor("ACCEPT", options.startTimeoutMs ?? 5_000, () => peer.stdout);
    } catch (error) {
      lastError = error;
      await peer.stop(0);
      continue; // most likely the port was taken in the meantime
    }
    return {
      port,
      pid: peer.pid,
      received: () => peer.stdout,
      output: () => peer.all,
      trace: () => readTrace(traceFile),
      ciphers: () => [...peer.stdout.matchAll(/^CIPHER is (\S+)/gm)].map((m) => m[1]!),
      send(text) {
        if (SERVER_COMMAND.test(text))
          throw new Error(`s_server would take ${JSON.stringify(text)} as a command`);
        peer.write(text);
      },
      renegotiate: () => peer.write("r\n"),
      waitFor: (pattern, timeoutMs = 5_000, all = false) =>
        peer.waitFor(pattern, timeoutMs, () => (all ? peer.all : peer.stdout)),
      stop: () => peer.stop(),
    };
  }
  throw lastError;
}

// ---------------------------------------------------------------------------------------------------
// openssl s_client

export interface OpensslClientOptions {
  /** The server's UDP port on 127.0.0.1. */
  readonly port: number;
  /** The key in hex (`pskHex("…")`). */
  readonly psk: string;
  readonly identity: string;
  /**
   * OpenSSL cipher list. Default `PSK-AES128-CCM8`: s_client's default list offers no CCM suite, so
   * name the suites to offer (`PSK-AES128-GCM-SHA256`, or `PSK:@SECLEVEL=0` for all 20 plain-PSK ones).
   */
  readonly cipher?: string;
  /** Link MTU (-mtu): s_client fragments its handshake messages to fit. */
  readonly mtu?: number;
  /** -trace: every record sent and received, decoded (`trace()`). */
  readonly trace?: boolean;
  /** Writes the master secret (NSS key log format) here, for tshark. */
  readonly keylogFile?: string;
  /** -no_ticket: no session_ticket extension. */
  readonly noTicket?: boolean;
  /** SNI to send. s_client sends none for an IP literal, and none by default here. */
  readonly servername?: string;
  /** More s_client flags. */
  readonly args?: readonly string[];
  /**
   * How long the handshake may take before s_client is killed (OpenSSL retransmits for minutes).
   * Default 5 s.
   */
  readonly handshakeTimeoutMs?: number;
}

export interface HandshakeReport {
  /**
   * A summary with a cipher, no error on stderr and s_client still connected: a fatal alert (a server
   * refusing the key) also gives a summary naming the pending cipher, then s_client exits 1.
   */
  readonly ok: boolean;
  /** OpenSSL's name of the negotiated suite (`PSK-AES128-CCM8`), when `ok`. */
  readonly cipher?: string;
  /** `DTLSv1.2` */
  readonly protocol?: string;
  readonly extendedMasterSecret?: boolean;
  /** `Secure Renegotiation IS supported`: the server answered renegotiation_info or the SCSV. */
  readonly secureRenegotiation?: boolean;
  /** Why not `ok`: s_client's stderr, or a timeout. */
  readonly error?: string;
  /** From spawning s_client to its handshake summary (includes ~10-30 ms of process start). */
  readonly ms: number;
}

export interface OpensslClient {
  readonly pid: number;
  readonly handshake: HandshakeReport;
  /** What s_client printed after its handshake summary: the application data received, as is. */
  received(): string;
  /** stdout and stderr (errors) in arrival order. */
  output(): string;
  /** With `trace`: the records so far, decoded by OpenSSL (-trace -msgfile); "" without. */
  trace(): string;
  /**
   * Writes `text` to s_client's stdin: one application data record per call in practice. Text that
   * starts with `Q`, `R`, `k` or `K` is refused (s_client commands).
   */
  send(text: string): void;
  /**
   * Writes `data` to s_client's stdin as is: one application data record with exactly these bytes
   * (a CoAP message, say). Refused when the first byte is a command letter (`Q`, `R`, `k`, `K`).
   */
  sendBytes(data: Uint8Array): void;
  /**
   * Asks for a renegotiation (s_client's `R` command: a ClientHello in epoch 1 with
   * renegotiation_info). s_server refuses it (OpenSSL 3.0's default), and the connection ends.
   */
  renegotiate(): void;
  /** Resolves once `pattern` appears in `received()`. Default 5 s. */
  waitFor(pattern: string | RegExp, timeoutMs?: number): Promise<string>;
  /** Closes stdin: s_client sends close_notify and exits (killed if it does not). */
  stop(): Promise<PeerExit>;
  readonly exited: Promise<PeerExit>;
}

/** The end of s_client's handshake summary (`SSL-Session:` block and its closing `---`). */
function summaryEnd(stdout: string): number | undefined {
  const session = stdout.indexOf("SSL-Session:");
  if (session < 0) return undefined;
  const end = stdout.indexOf("\n---\n", session);
  return end < 0 ? undefined : end + 5;
}

/**
 * Runs `openssl s_client -dtls1_2` against 127.0.0.1:port and resolves once the handshake is over,
 * whether it succeeded or not (`handshake.ok`); the client stays connected until `stop()`.
 */
export async function opensslClient(options: OpensslClientOptions): Promise<OpensslClient> {
  const traceFile = options.trace ? join(await tempDir("s_client"), "trace") : undefined;
  const args = [
    "s_client",
    "-dtls1_2",
    "-connect",
    `${HOST}:${options.port}`,
    "-psk",
    options.psk,
    "-psk_identity",
    options.identity,
    "-cipher",
    options.cipher ?? OPENSSL_CCM8,
    ...(options.servername !== undefined ? ["-servername", options.servername] : ["-noservername"]),
    ...(options.mtu !== undefined ? ["-mtu", String(options.mtu)] : []),
    ...(traceFile ? ["-trace", "-msgfile", traceFile] : []),
    ...(options.keylogFile ? ["-keylogfile", options.keylogFile] : []),
    ...(options.noTicket ? ["-no_ticket"] : []),
    ...(options.args ?? []),
  ];
  const started = performance.now();
  const peer = launch("openssl s_client", "openssl", args, true);
  const timeoutMs = options.handshakeTimeoutMs ?? 5_000;
  let handshake: HandshakeReport;
  try {
    const end = await peer.until(() => summaryEnd(peer.stdout), timeoutMs, "handshake summary");
    const summary = peer.stdout.slice(0, end);
    const ms = performance.now() - started;
    const cipher = /Cipher is (\S+)/.exec(summary)?.[1];
    const protocol = /Protocol\s*: (\S+)/.exec(summary)?.[1];
    // A handshake ended by a fatal alert (our decrypt_error for a wrong key) also prints a summary with
    // the pending cipher, after the error on stderr, and s_client exits; a good one stays connected.
    // The two pipes are read in no set order: give the error and the exit a moment to show.
    await Promise.race([peer.exited, new Promise((r) => setTimeout(r, 100))]);
    const refused = !peer.running || /:error:|SSL alert number/.test(peer.stderr);
    const ok = cipher !== undefined && cipher !== "(NONE)" && !refused;
    handshake = {
      ok,
      ms,
      ...(ok ? { cipher } : { error: tail(peer.stderr) }),
      ...(protocol ? { protocol } : {}),
      extendedMasterSecret: /Extended master secret: yes/.test(summary),
      secureRenegotiation: /Secure Renegotiation IS supported/.test(summary),
    };
  } catch {
    const timedOut = peer.running;
    if (timedOut) await peer.stop(0);
    handshake = {
      ok: false,
      ms: performance.now() - started,
      error: timedOut ? `no handshake within ${timeoutMs} ms\n${tail(peer.all)}` : tail(peer.all),
    };
  }
  const received = () => peer.stdout.slice(summaryEnd(peer.stdout) ?? peer.stdout.length);
  return {
    pid: peer.pid,
    handshake,
    received,
    output: () => peer.all,
    trace: () => readTrace(traceFile),
    send(text) {
      if (/^[QRkK]/.test(text)) throw new Error(`s_client would take ${JSON.stringify(text)} as a command`);
      peer.write(text);
    },
    sendBytes(data) {
      if ([0x51, 0x52, 0x6b, 0x4b].includes(data[0] ?? 0))
        throw new Error("s_client would take the first byte as a command");
      peer.write(Buffer.from(data));
    },
    renegotiate: () => peer.write("R\n"),
    waitFor: (pattern, ms = 5_000) => peer.waitFor(pattern, ms, received),
    stop: () => peer.stop(),
    exited: peer.exited,
  };
}

// ---------------------------------------------------------------------------------------------------
// libcoap

export type LibcoapFlavour = "openssl" | "gnutls";

/**
 * What `coap-server-*` serves without configuration (libcoap 4.3.1):
 * - `/`: 2.05, a text banner ("This is a test server made with libcoap …", 150 bytes);
 * - `/time`: 2.05, the server's clock as text (`Dec 07 04:52:39`), observable;
 * - `/example_data`: GET gives 1,500 bytes (Block2 in 1,024-byte blocks), PUT replaces it (2.04),
 *   observable; the contents are shared by every client of that server;
 * - `/async?N`: answers after N seconds (separate response);
 * - `/.well-known/core`: the list of the above.
 */
export const LIBCOAP_SERVER_BANNER = "This is a test server made with libcoap";

export interface LibcoapServerOptions {
  readonly flavour: LibcoapFlavour;
  /** The key as text (libcoap 4.3.1 uses the bytes as given; it has no hex form). */
  readonly pskText: string;
  /**
   * Accept only this identity: the key is bound to it (`-i` file) and every other identity gets a
   * random key, so its handshake fails at the Finished. Default: any identity, the same key.
   */
  readonly identity?: string;
  /** Identity hint (-h). Default libcoap's `CoAP`; `""` sends none (no ServerKeyExchange). */
  readonly hint?: string;
  /** Log level -v (default 3; 6 logs every PDU, 7-9 the TLS library's state too). */
  readonly verbose?: number;
  /** More coap-server flags (e.g. `-e` to echo PUT payloads, `-d 10` for dynamic resources). */
  readonly args?: readonly string[];
  /** How long to wait for the server to answer a CoAP ping. Default 5 s. */
  readonly startTimeoutMs?: number;
}

export interface LibcoapServer {
  /** The DTLS (coaps) port on 127.0.0.1. */
  readonly port: number;
  /** The plain CoAP port (`port - 1`), which libcoap serves as well. */
  readonly coapPort: number;
  readonly pid: number;
  /** `coaps://127.0.0.1:PORT` */
  readonly url: string;
  /** stdout and stderr in arrival order (the -v log). */
  output(): string;
  stop(): Promise<PeerExit>;
}

/** A port p with UDP and TCP p and p+1 all free a moment ago (libcoap takes p for coap, p+1 for coaps). */
async function freePortPair(): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const port = await freeUdpPort(HOST);
    if (port >= 65_535) continue;
    const holders: Array<() => Promise<void>> = [];
    try {
      for (const p of [port, port + 1]) {
        const udp = createSocket("udp4");
        await new Promise<void>((resolve, reject) => {
          udp.once("error", reject);
          udp.bind(p, HOST, () => resolve());
        });
        holders.push(() => new Promise<void>((r) => udp.close(() => r())));
        const tcp = createServer();
        await new Promise<void>((resolve, reject) => {
          tcp.once("error", reject);
          tcp.listen(p, HOST, () => resolve());
        });
        holders.push(() => new Promise<void>((r) => tcp.close(() => r())));
      }
      return port;
    } catch {
      // taken: try another
    } finally {
      await Promise.all(holders.map((release) => release()));
    }
  }
  throw new Error("no free port pair for libcoap");
}

/** A CoAP ping (CON, Empty) to 127.0.0.1:port; resolves true when the RST comes back. */
async function coapPing(socket: Socket, port: number, waitMs: number): Promise<boolean> {
  const mid = Math.floor(Math.random() * 0x10000);
  return new Promise<boolean>((resolve) => {
    const onMessage = (m: Buffer) => {
      if (m.length >= 4 && (m[0]! & 0x30) === 0x30 && ((m[2]! << 8) | m[3]!) === mid) done(true);
    };
    const timer = setTimeout(() => done(false), waitMs);
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.off("message", onMessage);
      resolve(ok);
    };
    socket.on("message", onMessage);
    socket.send(Uint8Array.from([0x40, 0x00, mid >> 8, mid & 0xff]), port, HOST);
  });
}

/**
 * Starts `coap-server-openssl|gnutls -A 127.0.0.1 -p P -k KEY`: plain CoAP on P, DTLS on P+1 (`port`),
 * and resolves once it answers a CoAP ping on P.
 */
export async function libcoapServer(options: LibcoapServerOptions): Promise<LibcoapServer> {
  const args: string[] = [];
  if (options.identity !== undefined) {
    const dir = await tempDir("libcoap-server");
    const ids = join(dir, "identities");
    // hint_to_match,identity_to_match,key (an empty hint matches any)
    await writeFile(ids, `,${options.identity},${options.pskText}\n`);
    args.push("-i", ids, "-k", `not-${options.pskText}-${Math.random().toString(36).slice(2)}`);
  } else {
    args.push("-k", options.pskText);
  }
  if (options.hint !== undefined) args.push("-h", options.hint);
  if (options.verbose !== undefined) args.push("-v", String(options.verbose));
  args.push(...(options.args ?? []));
  const command = `coap-server-${options.flavour}`;
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const coapPort = await freePortPair();
    const peer = launch(command, command, ["-A", HOST, "-p", String(coapPort), ...args]);
    const probe = createSocket("udp4");
    try {
      await new Promise<void>((r) => probe.bind(0, HOST, () => r()));
      const until = Date.now() + (options.startTimeoutMs ?? 5_000);
      let ready = false;
      while (!ready && peer.running && Date.now() < until) ready = await coapPing(probe, coapPort, 100);
      if (!ready) throw new Error(`${command} did not answer a CoAP ping on ${coapPort}\n${tail(peer.all)}`);
    } catch (error) {
      lastError = error;
      await peer.stop(0);
      continue;
    } finally {
      probe.close();
    }
    const port = coapPort + 1;
    return {
      port,
      coapPort,
      pid: peer.pid,
      url: `coaps://${HOST}:${port}`,
      output: () => peer.all,
      stop: () => peer.stop(0),
    };
  }
  throw lastError;
}

export interface LibcoapClientOptions {
  readonly flavour: LibcoapFlavour;
  /** `coaps://127.0.0.1:PORT/path` (loopback only). */
  readonly url: string;
  readonly identity: string;
  /** The key as text. */
  readonly pskText: string;
  /** Default get. */
  readonly method?: "get" | "post" | "put" | "delete" | "fetch";
  /** Request payload: text (-e) or bytes (written to a file, -f). */
  readonly payload?: string | Uint8Array;
  /** -B: give up after this many seconds. Default 5. */
  readonly timeoutS?: number;
  /** Log level -v. Default 6, which logs every PDU (`code` is read from it); 9 adds the TLS library's log. */
  readonly verbose?: number;
  /** More coap-client flags (`-b 64` for Block2 size, `-N` for NON, …). */
  readonly args?: readonly string[];
  /**
   * GnuTLS flavour only: the session's secrets in NSS key log format (GnuTLS honours SSLKEYLOGFILE;
   * OpenSSL 3.0 does not), for tshark.
   */
  readonly keylogFile?: string;
  /**
   * GnuTLS flavour only: offer no ChaCha20-Poly1305 (a GnuTLS system priority file with
   * `tls-disabled-cipher`). libcoap peers otherwise agree on ECDHE-PSK-CHACHA20-POLY1305, which
   * tshark 4.0 cannot decrypt even with the key log; coap-server-openssl then picks
   * PSK-AES256-GCM-SHA384, which the PSK alone decrypts.
   */
  readonly noChacha?: boolean;
}

export interface LibcoapClientResult {
  /** coap-client's exit status: 0 even when it gave up waiting; check `code`. */
  readonly exitCode: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  /** The code of the last response PDU logged (`2.05`), or undefined when none arrived. */
  readonly code: string | undefined;
  /** The response payload as written by -o (after Block2 reassembly). */
  readonly payload: Buffer;
  /** Wall time from spawn to exit. */
  readonly ms: number;
}

/**
 * Runs `coap-client-openssl|gnutls -k KEY -u ID` once, without blocking the event loop (a server of
 * ours in this process keeps answering), and resolves when it exits.
 */
export async function libcoapClient(options: LibcoapClientOptions): Promise<LibcoapClientResult> {
  const url = new URL(options.url);
  assertLoopback(url.hostname);
  const dir = await tempDir("libcoap-client");
  const out = join(dir, "response");
  const args = [
    "-B",
    String(options.timeoutS ?? 5),
    "-v",
    String(options.verbose ?? 6),
    "-m",
    options.method ?? "get",
    "-k",
    options.pskText,
    "-u",
    options.identity,
    "-o",
    out,
  ];
  if (typeof options.payload === "string") args.push("-e", options.payload);
  else if (options.payload) {
    const input = join(dir, "request");
    await writeFile(input, options.payload);
    args.push("-f", input);
  }
  args.push(...(options.args ?? []), options.url);
  const env: Record<string, string> = {};
  if ((options.keylogFile || options.noChacha) && options.flavour !== "gnutls")
    throw new Error("keylogFile and noChacha work with the gnutls flavour only");
  if (options.keylogFile) env.SSLKEYLOGFILE = options.keylogFile;
  if (options.noChacha) {
    const config = join(dir, "gnutls-priority.cfg");
    await writeFile(config, "[overrides]\ntls-disabled-cipher = CHACHA20-POLY1305\n");
    env.GNUTLS_SYSTEM_PRIORITY_FILE = config;
  }
  const command = `coap-client-${options.flavour}`;
  const started = performance.now();
  const peer = launch(command, command, args, false, env);
  const killer = setTimeout(() => void peer.stop(0), ((options.timeoutS ?? 5) + 10) * 1_000);
  const exit = await peer.exited;
  clearTimeout(killer);
  const ms = performance.now() - started;
  const codes = [...peer.all.matchAll(/^v:1 t:\S+ c:([2-5]\.\d\d) /gm)];
  const payload = await readFile(out).catch(() => Buffer.alloc(0));
  return {
    exitCode: exit.code,
    signal: exit.signal,
    stdout: peer.stdout,
    stderr: peer.stderr,
    code: codes.at(-1)?.[1],
    payload,
    ms,
  };
}

// ---------------------------------------------------------------------------------------------------
// node-dtls-client

/** The suite names node-dtls-client knows (`TLS_PSK_WITH_AES_128_CCM_8`, …). */
export type NodeDtlsCipher = NonNullable<dtls.Options["ciphers"]>[number];

/** What node-dtls-client 1.1.1 offers unless told: CBC first, so always pass `ciphers`. */
export const NODE_DTLS_AEAD: readonly NodeDtlsCipher[] = [
  "TLS_PSK_WITH_AES_128_GCM_SHA256",
  "TLS_PSK_WITH_AES_128_CCM_8",
];

/*
 * node-dtls-client throws from inside its UDP 'message' and 'listening' handlers (an unparsable
 * handshake message such as a ServerKeyExchange with an identity hint: "unsupported message type 12"),
 * which would be an uncaught exception in the test process. Both handlers are wrapped once so that such
 * an exception ends the connection with an 'error' event instead.
 */
interface NodeDtlsInternals {
  udp_onMessage(...args: unknown[]): void;
  udp_onListening(...args: unknown[]): void;
  killConnection(error: Error): void;
}
let nodeDtlsPatched = false;
function patchNodeDtls(): void {
  if (nodeDtlsPatched) return;
  nodeDtlsPatched = true;
  const proto = dtls.Socket.prototype as unknown as NodeDtlsInternals;
  for (const name of ["udp_onMessage", "udp_onListening"] as const) {
    const original = proto[name];
    proto[name] = function (this: NodeDtlsInternals, ...args: unknown[]) {
      try {
        original.apply(this, args);
      } catch (error) {
        const e = error instanceof Error ? error : new Error(String(error));
        this.killConnection(new Error(`node-dtls-client threw in ${name}: ${e.message}`));
      }
    };
  }
}

export interface NodeDtlsExchangeOptions {
  /** The server's UDP port on 127.0.0.1. */
  readonly port: number;
  readonly identity: string;
  /** The key as text: node-dtls-client takes ASCII keys only. */
  readonly pskText: string;
  /** Suites to offer, in order. Default `NODE_DTLS_AEAD` (GCM, then CCM_8). */
  readonly ciphers?: readonly NodeDtlsCipher[];
  /** The one datagram to send once connected. */
  readonly send: Uint8Array;
  /**
   * node-dtls-client's own timeout (connection, then handshake; it never retransmits), and then
   * again the wait for the first datagram back. Default 3 s.
   */
  readonly timeoutMs?: number;
  /** Called once the handshake is done (e.g. to make a server answer). */
  readonly onConnected?: () => void;
}

/**
 * node-dtls-client handshakes with 127.0.0.1:port, sends `send` as one application data record and
 * resolves with the first application datagram that comes back; rejects with a clear error (a fatal
 * alert, a timeout, a message it cannot parse). The socket is closed (close_notify) either way.
 * node-dtls-client's UDP socket binds 0.0.0.0 on a random port (it has no option for the address);
 * it sends only to 127.0.0.1.
 */
export function nodeDtlsClientExchange(options: NodeDtlsExchangeOptions): Promise<Buffer> {
  patchNodeDtls();
  const timeoutMs = options.timeoutMs ?? 3_000;
  return new Promise<Buffer>((resolve, reject) => {
    let settled = false;
    let replyTimer: NodeJS.Timeout | undefined;
    let connected = false;
    const socket = dtls.createSocket({
      type: "udp4",
      address: HOST,
      port: options.port,
      psk: { [options.identity]: options.pskText },
      timeout: timeoutMs,
      ciphers: [...(options.ciphers ?? NODE_DTLS_AEAD)],
    });
    const settle = (error: Error | undefined, reply?: Buffer) => {
      if (settled) return;
      settled = true;
      clearTimeout(replyTimer);
      if (connected) {
        try {
          socket.close();
        } catch {
          // already closed by an alert or an error
        }
      }
      if (error) reject(error);
      else resolve(reply!);
    };
    socket.on("connected", () => {
      connected = true;
      try {
        socket.send(Buffer.from(options.send));
        options.onConnected?.();
      } catch (error) {
        settle(new Error(`node-dtls-client could not send: ${String(error)}`));
        return;
      }
      replyTimer = setTimeout(
        () => settle(new Error(`node-dtls-client: connected, but no datagram back within ${timeoutMs} ms`)),
        timeoutMs,
      );
    });
    socket.on("message", (message: Buffer) => settle(undefined, message));
    socket.on("error", (error: Error) =>
      settle(new Error(`node-dtls-client ${connected ? "after" : "during"} the handshake: ${error.message}`)),
    );
    socket.on("close", () =>
      settle(
        new Error(`node-dtls-client: connection closed ${connected ? "before a reply" : "in handshake"}`),
      ),
    );
  });
}

// ---------------------------------------------------------------------------------------------------
// tshark

export interface CaptureOptions {
  /** UDP ports to capture on lo (and to decode as DTLS, with CoAP inside). */
  readonly ports: readonly number[];
  /** How long to wait until the capture sees packets. Default 10 s (dumpcap needs ~0.3 s). */
  readonly startTimeoutMs?: number;
}

export interface DecodeOptions {
  /** The key in hex: tshark decrypts plain-PSK suites with it (not (EC)DHE-PSK). */
  readonly pskHex?: string;
  /**
   * An NSS key log (s_client/s_server -keylogfile, GnuTLS's SSLKEYLOGFILE): decrypts (EC)DHE-PSK
   * too, but not ChaCha20-Poly1305 (tshark 4.0's DTLS cannot).
   */
  readonly keylogFile?: string;
  /** `-V`: every field of every packet, instead of one summary line per packet. */
  readonly verbose?: boolean;
  /** `-T fields -e …`: one line per packet, the fields separated by `|`, repeated values by `,`. */
  readonly fields?: readonly string[];
  /** An extra display filter, and-ed with the capture's ports. */
  readonly filter?: string;
  /** Decode the DTLS payload on the ports as CoAP. Default true; false shows it as raw data. */
  readonly coap?: boolean;
  /** More tshark flags. */
  readonly args?: readonly string[];
}

export interface Capture {
  /** The pcapng file, written by `stop()` (removed by `stopDtlsPeers()`). */
  readonly file: string;
  /** Stops once every datagram sent before the call has been captured, and writes `file`. */
  stop(): Promise<void>;
  /** Runs tshark over the file (after `stop()`) and returns what it printed. */
  decode(options?: DecodeOptions): Promise<string>;
}

/** Fields that summarise a DTLS handshake per datagram (for `decode({ fields })`). */
export const DTLS_FIELDS = [
  "frame.number",
  "udp.srcport",
  "udp.dstport",
  "dtls.record.content_type",
  "dtls.record.version",
  "dtls.record.epoch",
  "dtls.record.sequence_number",
  "dtls.handshake.type",
  "dtls.handshake.message_seq",
  "dtls.handshake.fragment_offset",
  "dtls.handshake.fragment_length",
  "dtls.handshake.version",
  "dtls.handshake.session_id_length",
  "dtls.handshake.cookie_length",
  "dtls.handshake.ciphersuite",
  "dtls.handshake.extension.type",
  "dtls.alert_message.desc",
] as const;

/**
 * Captures UDP on `lo` for `ports` with dumpcap (from the tshark package), streaming pcapng into this
 * process. The capture is live once a marker datagram (random bytes, to a port where nothing listens,
 * so the kernel drops it) has come through; `stop()` sends a second marker and waits for it, so
 * nothing is lost at either end (tshark 4.0 has no immediate mode: a plain SIGINT loses the packets
 * still in the kernel's ring buffer, and "Capturing on" comes before the capture sees packets).
 */
export async function startCapture(options: CaptureOptions): Promise<Capture> {
  for (const p of options.ports) if (!Number.isInteger(p) || p <= 0) throw new Error(`bad port ${p}`);
  const dir = await tempDir("capture");
  const file = join(dir, "capture.pcapng");
  const markerPort = await freeUdpPort(HOST);
  const filter = `udp and (${[...options.ports, markerPort].map((p) => `port ${p}`).join(" or ")})`;
  const peer = launch("dumpcap", "dumpcap", ["-i", "lo", "-f", filter, "-w", "-", "-q"], false, {}, true);
  const socket = createSocket("udp4");
  await new Promise<void>((r) => socket.bind(0, HOST, () => r()));
  socket.on("error", () => undefined);
  /** Sends `marker` every `everyMs` until dumpcap has written it. */
  const through = async (what: string, timeoutMs: number, everyMs: number): Promise<void> => {
    const marker = Buffer.from(`cxmpp-capture-marker-${Math.random().toString(36).slice(2)}`);
    const send = () => socket.send(marker, markerPort, HOST);
    const pinger = setInterval(send, everyMs);
    send();
    try {
      await peer.until(() => (peer.bytes.includes(marker) ? true : undefined), timeoutMs, what);
    } finally {
      clearInterval(pinger);
    }
  };
  try {
    await through("capture start", options.startTimeoutMs ?? 10_000, 20);
  } catch (error) {
    socket.close();
    await peer.stop(0, "SIGINT");
    throw error;
  }
  const dtlsPorts = options.ports;
  let stopped = false;
  return {
    file,
    async stop() {
      if (stopped) return;
      stopped = true;
      try {
        if (peer.running) await through("end marker", 10_000, 100);
      } finally {
        socket.close();
        await peer.stop(0, "SIGINT");
        await writeFile(file, peer.bytes);
      }
    },
    async decode(decode: DecodeOptions = {}) {
      if (!stopped) throw new Error("stop() the capture before decoding it");
      const args = ["-r", file, "-n"];
      for (const p of dtlsPorts) {
        args.push("-d", `udp.port==${p},dtls`);
        if (decode.coap ?? true) args.push("-d", `dtls.port==${p},coap`);
      }
      if (decode.pskHex) args.push("-o", `dtls.psk:${decode.pskHex}`);
      if (decode.keylogFile) args.push("-o", `tls.keylog_file:${decode.keylogFile}`);
      const ports = dtlsPorts.map((p) => `udp.port==${p}`).join(" || ");
      args.push("-Y", decode.filter ? `(${ports}) && (${decode.filter})` : ports);
      if (decode.verbose) args.push("-V");
      if (decode.fields) {
        args.push("-T", "fields", "-E", "separator=|", "-E", "occurrence=a", "-E", "aggregator=,");
        for (const f of decode.fields) args.push("-e", f);
      }
      args.push(...(decode.args ?? []));
      const reader = launch("tshark -r", "tshark", args);
      const exit = await reader.exited;
      if (exit.code !== 0) throw new Error(`tshark ${args.join(" ")} exited ${exit.code}\n${reader.stderr}`);
      return reader.stdout;
    },
  };
}
