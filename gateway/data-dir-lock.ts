/**
 * One gateway per data directory. Two gateways on one store would both answer the same nodes from
 * their own copies of the sessions and codec tables, and each would overwrite what the other
 * acknowledged; SQLite's own locks only keep single transactions apart, not two programs.
 *
 * The lock is a `gateway.pid` file holding the owner's pid and the kernel's boot id. It appears with its
 * content in one step (written under a private name, then hard-linked to `gateway.pid`, which fails if
 * the name exists), so exactly one process wins a race and nobody ever reads a half-written lock.
 * A gateway killed with -9, or a power cut, leaves the file behind; the next gateway finds that no
 * process has that pid any more, or that the file is from an earlier boot (whose pids mean nothing
 * now), and takes the lock over.
 */
import { closeSync, linkSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { dirname, join, resolve } from "node:path";

export const LOCK_FILE = "gateway.pid";

/** Another live process holds the data directory. */
export class DataDirLockedError extends Error {
  override readonly name = "DataDirLockedError";
  constructor(
    readonly dir: string,
    /** The holder's process id. */
    readonly pid: number,
  ) {
    super(
      `data directory ${dir} is in use by another cxmpp gateway (pid ${pid}, lock file ${join(dir, LOCK_FILE)}): ` +
        "stop that gateway first, or give this one another data_dir",
    );
  }
}

export interface DataDirLock {
  /** The lock file. */
  readonly path: string;
  /** Removes the lock file if it is still ours; safe to call more than once. */
  release(): void;
}

interface Holder {
  readonly pid: number;
  /** Linux's boot id when the file was written; undefined elsewhere. */
  readonly boot: string | undefined;
}

/**
 * Lock files this process holds. A file naming our own pid is ours only if it is in here; otherwise it
 * is a stale one that happens to carry the pid we were given this time (pids are reused after a reboot,
 * and a container's gateway is often pid 1 every time).
 */
const held = new Set<string>();

const BOOT_ID = readText("/proc/sys/kernel/random/boot_id")?.trim() || undefined;

/** How long to wait for another process that is taking over a stale lock at the same moment. */
const TAKEOVER_WAIT_MS = 2000;

/**
 * Takes the data directory `dir` (created, mode 0700, if missing) for this process. Throws
 * DataDirLockedError when a live process holds it; the lock file of a dead one is taken over.
 */
export function lockDataDir(dir: string): DataDirLock {
  // 0700 for the data directory only: missing parents get the usual mode (they may be shared).
  mkdirSync(dirname(resolve(dir)), { recursive: true });
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
  }
  const path = resolve(dir, LOCK_FILE);
  const deadline = Date.now() + TAKEOVER_WAIT_MS;
  for (;;) {
    if (createLockFile(path)) break;
    const holder = readHolder(path);
    if (holder !== undefined && isLive(holder, path)) throw new DataDirLockedError(dir, holder.pid);
    // Stale (its process is gone) or not a lock at all. Removing it and creating ours must not race
    // with another process doing the same (both would remove, one would remove the other's new lock,
    // both would win): takeovers go one at a time, through a second lock file.
    const takeover = `${path}.takeover`;
    if (createLockFile(takeover)) {
      try {
        // Only takeovers remove the file, one at a time, so if it is still there and stale it is safe to
        // remove. If it is gone, an earlier takeover removed it and may be creating its own lock just
        // now: leave the name alone, and let link(2) decide between us.
        const text = readText(path);
        const now = text === undefined ? undefined : parseHolder(text);
        if (text !== undefined && (now === undefined || !isLive(now, path))) rmSync(path, { force: true });
      } finally {
        rmSync(takeover, { force: true });
      }
      continue;
    }
    const other = readHolder(takeover);
    // A takeover whose process died in its few lines above: nobody else can finish it.
    if (other === undefined || !isLive(other, takeover)) rmSync(takeover, { force: true });
    else if (Date.now() > deadline) throw new DataDirLockedError(dir, other.pid);
    else sleep(10);
  }
  held.add(path);
  let released = false;
  return {
    path,
    release() {
      if (released) return;
      released = true;
      held.delete(path);
      // Never remove a lock another process has taken over since.
      if (readHolder(path)?.pid === process.pid) rmSync(path, { force: true });
    },
  };
}

/** The pid of the live process holding `dir`, or undefined when none does (no file, or a stale one). */
export function isDataDirLocked(dir: string): number | undefined {
  const path = resolve(dir, LOCK_FILE);
  const holder = readHolder(path);
  return holder !== undefined && isLive(holder, path) ? holder.pid : undefined;
}

/**
 * Creates `path` holding our pid and boot id, mode 0600, complete from the moment it exists: written
 * under a name of our own, then hard-linked (link(2) fails if the name exists). False if it exists.
 */
function createLockFile(path: string): boolean {
  const draft = `${path}.${process.pid}.new`;
  const fd = openSync(draft, "w", 0o600);
  try {
    writeSync(fd, `${process.pid}\n${BOOT_ID ?? ""}\n`);
  } finally {
    closeSync(fd);
  }
  try {
    linkSync(draft, path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw error;
  } finally {
    rmSync(draft, { force: true });
  }
}

function readHolder(path: string): Holder | undefined {
  return parseHolder(readText(path) ?? "");
}

function parseHolder(text: string): Holder | undefined {
  const [first, second] = text.split("\n");
  const pid = Number(first);
  if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
  return { pid, boot: second || undefined };
}

function isLive(holder: Holder, path: string): boolean {
  if (holder.boot !== undefined && BOOT_ID !== undefined && holder.boot !== BOOT_ID) return false;
  if (holder.pid === process.pid) return held.has(path);
  try {
    // Signal 0 only asks whether the process exists; EPERM: it does, under another user.
    process.kill(holder.pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

/** A short synchronous pause: the lock is taken before the gateway's event loop has anything to do. */
function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
