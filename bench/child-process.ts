/**
 * Child processes that the benchmarks and the test kits start (Prosody, `cxmpp gateway`, `cxmpp node`),
 * and what starting them needs: none may outlive this process, none may read the caller's CXMPP_*
 * settings, and each needs a free port. One copy for gateway/cli and test/kit alike.
 */
import { type ChildProcess, fork } from "node:child_process";
import { createSocket } from "node:dgram";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

/** Children still running, SIGKILLed if this process exits without stopping them. */
const running = new Set<ChildProcess>();
let exitHook = false;

/**
 * SIGKILLs `child` when this process exits while it still runs: an 'exit' handler cannot wait, so a
 * graceful stop is the caller's job; this only keeps an orphan from holding its ports.
 */
export function killOnExit(child: ChildProcess): void {
  running.add(child);
  child.once("exit", () => running.delete(child));
  if (exitHook) return;
  exitHook = true;
  process.on("exit", () => {
    for (const c of running) c.kill("SIGKILL");
  });
}

export const PYTHON = "/usr/bin/python3";

/**
 * Python that exec's argv[1:] with SIGTERM as its parent-death signal (prctl(2) PR_SET_PDEATHSIG), and
 * exits at once if this process is gone already: if it dies without stopping its children (vitest kills
 * its workers; a crashed hook), the kernel stops them. The pid stays the child's.
 * Use: `spawn(PYTHON, ["-c", PDEATHSIG_EXEC, program, ...args])`.
 */
export const PDEATHSIG_EXEC = [
  "import ctypes, os, signal, sys",
  "ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG",
  `os.getppid() == ${process.pid} or sys.exit(1)`,
  "os.execvp(sys.argv[1], sys.argv[1:])",
].join("\n");

/** The environment without any CXMPP_* variable of the caller, plus `extra`. */
export function cleanEnv(extra: Readonly<Record<string, string>>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("CXMPP_")) env[k] = v;
  return { ...env, ...extra };
}

/** Ports freeUdpPort has handed out in this process: none is handed out twice. */
const handedOut = new Set<number>();

/**
 * A UDP port that was free a moment ago on `host`, and not one this process was given before: the
 * kernel may give the same ephemeral port to two binds in a row once the first socket is closed, and
 * a caller that asks twice (a plain and a DTLS listener) would then start a process on one port twice.
 */
export async function freeUdpPort(host = "127.0.0.1"): Promise<number> {
  for (;;) {
    const s = createSocket("udp4");
    await new Promise<void>((resolve) => s.bind(0, host, () => resolve()));
    const port = s.address().port;
    await new Promise<void>((resolve) => s.close(() => resolve()));
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    return port;
  }
}

/** What a benchmark's parent asks its forked child (bench session, bench dtls): mark a phase, report. */
export type ChildRequest = { readonly id: number; readonly type: "mark" | "report" };

/** A forked child's answer to the request with the same id; id 0 is the child's first message. */
export type ChildReply = Record<string, unknown> & { readonly id: number };

export interface BenchChild {
  readonly process: ChildProcess;
  /** The child's first message (id 0: its port, or its report). */
  readonly first: Promise<ChildReply>;
  call(type: ChildRequest["type"]): Promise<ChildReply>;
  stop(): Promise<void>;
}

/**
 * A benchmark module (`file`, its own import.meta.url as a path) forked with `args` and an IPC
 * channel: from the sources (tests, `npx tsx`) with tsx as the loader, compiled without; `what` names it
 * in the error every pending call gets when it ends. It does not outlive this process (killOnExit).
 */
export function forkBench(
  file: string,
  args: readonly string[],
  what: string,
  execArgv: readonly string[] = [],
): BenchChild {
  const loader = file.endsWith(".ts")
    ? ["--import", pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href]
    : [];
  const child = fork(file, args, {
    execArgv: [...loader, ...execArgv],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  killOnExit(child);
  const waiting = new Map<number, { resolve: (r: ChildReply) => void; reject: (e: Error) => void }>();
  let nextId = 1;
  const exited = new Promise<void>((done) => child.once("exit", () => done()));
  const failAll = (error: Error) => {
    for (const w of waiting.values()) w.reject(error);
    waiting.clear();
  };
  child.on("message", (m: ChildReply) => {
    const w = waiting.get(m.id);
    waiting.delete(m.id);
    w?.resolve(m);
  });
  child.once("error", (error) => failAll(error));
  child.once("exit", (code, signal) => failAll(new Error(`the ${what} process ended (${signal ?? code})`)));
  const first = new Promise<ChildReply>((resolve, reject) => waiting.set(0, { resolve, reject }));
  return {
    process: child,
    first,
    call(type) {
      const id = nextId++;
      return new Promise((resolve, reject) => {
        waiting.set(id, { resolve, reject });
        child.send({ id, type } satisfies ChildRequest);
      });
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      if (child.connected) child.disconnect();
      const timer = setTimeout(() => child.kill("SIGKILL"), 3_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
