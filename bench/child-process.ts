/**
 * Child processes that the benchmarks and the test kits start (Prosody, `cxmpp gateway`, `cxmpp node`),
 * and what starting them needs: none may outlive this process, none may read the caller's CXMPP_*
 * settings, and each needs a free port. One copy for gateway/cli and test/kit alike.
 */
import type { ChildProcess } from "node:child_process";
import { createSocket } from "node:dgram";

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

/** A UDP port that was free a moment ago on `host`. */
export async function freeUdpPort(host = "127.0.0.1"): Promise<number> {
  const s = createSocket("udp4");
  await new Promise<void>((resolve) => s.bind(0, host, () => resolve()));
  const port = s.address().port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}
