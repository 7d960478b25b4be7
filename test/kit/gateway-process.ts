/**
 * `cxmpp gateway` as a child process (bin/cxmpp.js running the compiled dist/, which `npm test` builds first), for tests that need a real
 * process boundary: start it on a fixed UDP port and data directory, read its JSON-lines log, SIGKILL it
 * (a crash: no shutdown code runs) or SIGTERM it (a clean stop), and start it again on the same port.
 * Every child is remembered so `killAllGateways()` in afterAll leaves none behind.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";

export const CLI = join(import.meta.dirname, "..", "..", "bin", "cxmpp.js");

const children = new Set<ChildProcess>();

export interface GatewayExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** One line of the gateway's structured log (stderr), parsed. */
export interface LogRecord {
  readonly event: string;
  readonly level: string;
  readonly [field: string]: unknown;
}

export interface GatewayProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly address: string;
  stdout(): string;
  stderr(): string;
  /** The structured log lines (stderr) so far, optionally only those of one event. */
  log(event?: string): LogRecord[];
  /** Resolves when the process has exited (its port is free again, its output read to the end). */
  readonly exited: Promise<GatewayExit>;
  /** kill -9: the process gets no chance to commit, flush or close anything. */
  crash(): Promise<GatewayExit>;
  /** SIGTERM: the gateway commits what is pending, closes the store and exits. */
  stop(timeoutMs?: number): Promise<GatewayExit>;
}

export interface GatewayProcessOptions {
  readonly dataDir: string;
  readonly port: number;
  readonly host?: string;
  readonly logLevel?: "debug" | "info" | "warn" | "error";
  /** coaps address (`--dtls-listen`); default "off" unless `env` sets CXMPP_DTLS_LISTEN. */
  readonly dtlsListen?: string;
  /** More `cxmpp gateway` flags. */
  readonly args?: readonly string[];
  /** Extra environment (e.g. CXMPP_MAILBOX_MAX_STANZAS). */
  readonly env?: Readonly<Record<string, string>>;
  /** How long to wait for "listening" (default 30 s: a loaded machine can be slow). */
  readonly startTimeoutMs?: number;
}

/** A UDP port that was free a moment ago (one helper for benchmarks and tests). */
export { freeUdpPort } from "../../bench/child-process.js";

/** Starts `cxmpp gateway` and resolves once it prints "listening" (rejects with its output if it exits). */
export async function startGatewayProcess(options: GatewayProcessOptions): Promise<GatewayProcess> {
  const host = options.host ?? "127.0.0.1";
  const address = `${host}:${options.port}`;
  const child = spawn(
    process.execPath,
    [
      CLI,
      "gateway",
      "--data-dir",
      options.dataDir,
      "--listen",
      address,
      // DTLS off unless asked for (dtlsListen, or CXMPP_DTLS_LISTEN in env): no test holds port 5684.
      ...(options.dtlsListen !== undefined || options.env?.CXMPP_DTLS_LISTEN === undefined
        ? ["--dtls-listen", options.dtlsListen ?? "off"]
        : []),
      "--log-level",
      options.logLevel ?? "warn",
      ...(options.args ?? []),
    ],
    { env: { ...process.env, ...options.env }, stdio: ["ignore", "pipe", "pipe"] },
  );
  children.add(child);
  let out = "";
  let err = "";
  child.stdout!.setEncoding("utf8").on("data", (d: string) => (out += d));
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (err += d));
  const exited = new Promise<GatewayExit>((resolve) => {
    // "close", not "exit": by then stdout and stderr are read to the end.
    child.once("close", (code, signal) => {
      children.delete(child);
      resolve({ code, signal });
    });
  });

  const timeoutMs = options.startTimeoutMs ?? 30_000;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      child.kill("SIGKILL");
      reject(new Error(`gateway did not listen within ${timeoutMs} ms\nstdout: ${out}\nstderr: ${err}`));
    }, timeoutMs);
    const onData = () => {
      if (out.includes("listening")) {
        cleanup();
        resolve();
      }
    };
    const onExit = (code: number | null, signal: string | null) => {
      cleanup();
      reject(
        new Error(`gateway exited (${code ?? signal}) before listening\nstdout: ${out}\nstderr: ${err}`),
      );
    };
    const cleanup = () => {
      clearTimeout(timer);
      child.stdout!.off("data", onData);
      child.off("exit", onExit);
    };
    child.stdout!.on("data", onData);
    child.once("exit", onExit);
    onData();
  });

  const log = (event?: string): LogRecord[] =>
    err
      .split("\n")
      .filter((line) => line.startsWith("{"))
      .flatMap((line) => {
        try {
          return [JSON.parse(line) as LogRecord];
        } catch {
          return []; // a line cut short by SIGKILL
        }
      })
      .filter((r) => event === undefined || r.event === event);

  return {
    child,
    pid: child.pid!,
    address,
    stdout: () => out,
    stderr: () => err,
    log,
    exited,
    crash() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      return exited;
    },
    async stop(stopTimeoutMs = 10_000) {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`gateway did not exit within ${stopTimeoutMs} ms of SIGTERM\n${err}`)),
          stopTimeoutMs,
        );
      });
      try {
        return await Promise.race([exited, late]);
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/** SIGKILLs every gateway child still running (afterAll) and waits for them to exit. */
export async function killAllGateways(): Promise<void> {
  const running = [...children];
  await Promise.all(
    running.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once("exit", () => resolve());
          child.kill("SIGKILL");
        }),
    ),
  );
}

/** How a command run to completion ended, and what it printed. */
export interface Run {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** `command args…` to completion (e.g. `cxmpp …`: process.execPath, [CLI, …]) without blocking the event loop. */
export function runToEnd(
  command: string,
  args: readonly string[],
  options: { readonly cwd?: string; readonly env?: NodeJS.ProcessEnv },
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.once("error", reject);
    child.once("close", (status) => resolve({ status, stdout, stderr }));
  });
}
