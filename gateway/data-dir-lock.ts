/**
 * One gateway per data directory. Two gateways on one store would both answer the same nodes from
 * their own copies of the sessions and codec tables, and each would overwrite what the other
 * acknowledged; SQLite's own locks only keep single transactions apart, not two programs.
 *
 * The lock is a `gateway.pid` file created exclusively (O_CREAT|O_EXCL, so exactly one process wins a
 * race) holding the owner's pid and the kernel's boot id. A gateway killed with -9, or a power cut,
 * leaves the file behind; the next gateway finds that no process has that pid any more, or that the
 * file is from an earlier boot (whose pids mean nothing now), and takes the lock over.
 */
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { join, resolve } from "node:path";

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

/**
 * Takes the data directory `dir` (created, mode 0700, if missing) for this process. Throws
 * DataDirLockedError when a live process holds it; the lock file of a dead one is taken over.
 */
export function lockDataDir(dir: string): DataDirLock {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const path = resolve(dir, LOCK_FILE);
  // Twice at most: once, and once more after removing a stale file; if another process wins that race,
  // it is the live holder the second attempt reports.
  for (let attempt = 0; ; attempt++) {
    let fd: number;
    try {
      fd = openSync(path, "wx", 0o600);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      const holder = readHolder(path);
      if (holder !== undefined && isLive(holder, path)) throw new DataDirLockedError(dir, holder.pid);
      if (attempt > 0) throw new DataDirLockedError(dir, holder?.pid ?? 0);
      // Stale, or unreadable (a crash between creating the file and writing it): take it over.
      rmSync(path, { force: true });
      continue;
    }
    try {
      writeSync(fd, `${process.pid}\n${BOOT_ID ?? ""}\n`);
    } finally {
      closeSync(fd);
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
}

/** The pid of the live process holding `dir`, or undefined when none does (no file, or a stale one). */
export function isDataDirLocked(dir: string): number | undefined {
  const path = resolve(dir, LOCK_FILE);
  const holder = readHolder(path);
  return holder !== undefined && isLive(holder, path) ? holder.pid : undefined;
}

function readHolder(path: string): Holder | undefined {
  const [first, second] = (readText(path) ?? "").split("\n");
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
