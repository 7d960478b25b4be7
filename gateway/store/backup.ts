/**
 * Backup and restore of the gateway's store (`cxmpp store backup|restore`).
 *
 * Backup is online: a second connection copies the live database with SQLite's online backup API, all
 * pages in one step, so inside one read transaction. In WAL mode a reader never blocks the writer: the
 * gateway keeps committing while the copy is taken, and the copy is the store as of one commit. (A `cp`
 * of cxmpp.db and its -wal while the gateway writes can catch half a checkpoint.)
 *
 * Restore is offline: the gateway must be stopped, since it holds the sessions in memory and would
 * write them back over the restored ones. The store it replaces is moved aside, never deleted.
 *
 * Both check what they produce or accept the way the gateway would read it: SQLite's integrity check,
 * a schema version this build knows (migrations.ts), the tables of a cxmpp store.
 */
import {
  closeSync,
  existsSync,
  fchownSync,
  fsyncSync,
  openSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from "node:fs";
import { dirname, join, resolve } from "node:path";
import Database from "better-sqlite3";
import { DataDirLockedError, isDataDirLocked, lockDataDir } from "../data-dir-lock.js";
import { type Db, StoreError, storeError } from "./database.js";
import { STORE_FILE } from "./index.js";
import { MIGRATIONS } from "./migrations.js";

/** What a store file holds, as `cxmpp store` reports it. */
export interface StoreSummary {
  readonly path: string;
  readonly bytes: number;
  /** `PRAGMA user_version`: the migrations applied. */
  readonly schemaVersion: number;
  readonly devices: number;
  readonly sessions: number;
  /** Stanzas waiting in nodes' mailboxes. */
  readonly mailbox: number;
  /** Stanzas waiting for the XMPP server. */
  readonly outbox: number;
}

export interface RestoreResult {
  /** The data directory's store, now holding the backup. */
  readonly store: string;
  /** The backup that was restored (path: the file given). */
  readonly restored: StoreSummary;
  /** Where the files of the replaced store went (the database, its -wal and -shm); empty if none. */
  readonly setAside: readonly string[];
}

const TABLES = ["devices", "sessions", "mailbox", "outbox"] as const;
/** SQLite's own companions of a database file: they belong to it and move with it. */
const COMPANIONS = ["", "-wal", "-shm", "-journal"] as const;
/** Pages per backup step: all of them, so the copy is one read transaction (one consistent snapshot). */
const ALL_PAGES = 0x7fffffff;

/**
 * Opens `path` read-only and checks it is a cxmpp store this build can run: SQLite's integrity check
 * passes, the schema version is one this build's migrations reach, the tables are there. Throws a
 * StoreError saying what is wrong, naming the file `shown` (the one the operator gave, when `path` is a
 * copy of it).
 */
export function inspectStoreFile(path: string, shown = path): StoreSummary {
  const bytes = regularFileSize(path);
  let db: Db | undefined;
  try {
    db = new Database(path, { readonly: true, fileMustExist: true });
    const problems = (db.pragma("integrity_check") as { integrity_check: string }[]).map(
      (r) => r.integrity_check,
    );
    if (problems.length !== 1 || problems[0] !== "ok") {
      throw new StoreError(
        `${shown} is damaged: PRAGMA integrity_check reports ${problems.slice(0, 3).join("; ")}` +
          (problems.length > 3 ? ` (and ${problems.length - 3} more)` : ""),
        "SQLITE_CORRUPT",
      );
    }
    const version = db.pragma("user_version", { simple: true }) as number;
    if (version === 0) throw notAStore(shown, "schema version 0 (an empty or foreign SQLite database)");
    if (version > MIGRATIONS.length) {
      throw new StoreError(
        `${shown} has schema version ${version}, newer than this cxmpp knows (${MIGRATIONS.length}): ` +
          "use the cxmpp release that wrote it, or upgrade cxmpp",
      );
    }
    const tables = new Set(
      (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]).map(
        (r) => r.name,
      ),
    );
    const missing = TABLES.filter((t) => !tables.has(t));
    if (missing.length > 0) throw notAStore(shown, `no ${missing.join(", ")} table`);
    const count = (table: (typeof TABLES)[number]) =>
      (db!.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n;
    return {
      path,
      bytes,
      schemaVersion: version,
      devices: count("devices"),
      sessions: count("sessions"),
      mailbox: count("mailbox"),
      outbox: count("outbox"),
    };
  } catch (error) {
    if (error instanceof StoreError) throw error;
    const code = (error as { code?: string }).code;
    if (code === "SQLITE_NOTADB") throw notAStore(shown, "not an SQLite database", code);
    throw storeError(shown, "checking", error);
  } finally {
    db?.close();
  }
}

/**
 * Copies the store of data directory `dataDir` to `out` (mode 0600: it holds the device keys) while a
 * gateway may be running on it, checks the copy and returns what it holds. The copy is written beside
 * `out` and renamed into place once checked: `out` is never left half written.
 */
export async function backupStore(dataDir: string, out: string): Promise<StoreSummary> {
  const source = join(dataDir, STORE_FILE);
  const target = resolve(out);
  if (!existsSync(source)) {
    throw new StoreError(
      `no store in data directory ${dataDir} (no ${STORE_FILE} there): name the gateway's data directory ` +
        "with --data-dir, CXMPP_DATA_DIR or data_dir in the config file (--config)",
    );
  }
  if (COMPANIONS.some((suffix) => target === source + suffix)) {
    throw new StoreError(`--out ${target} is the live store itself: write the backup to another file`);
  }
  const partial = `${target}.partial-${process.pid}`;
  closeSync(createPrivate(partial, "the backup", target));
  let live: Db | undefined;
  try {
    // Read-write, like the gateway's own connection: a read-only one could not remove the -wal and
    // -shm it creates when no gateway runs, and they would stay behind owned by whoever ran the backup.
    live = new Database(source, { fileMustExist: true });
    live.pragma("busy_timeout = 5000");
    await live.backup(partial, { progress: () => ALL_PAGES });
    live.close();
    live = undefined;
    selfContained(partial);
    const summary = inspectStoreFile(partial);
    syncFile(partial);
    renameSync(partial, target);
    syncDirectory(dirname(target));
    return { ...summary, path: target };
  } catch (error) {
    for (const suffix of COMPANIONS) rmSync(partial + suffix, { force: true });
    if (error instanceof StoreError) throw error;
    throw storeError(source, `backing up to ${target}`, error);
  } finally {
    live?.close();
  }
}

/**
 * Replaces the store of data directory `dataDir` with the backup `file`, offline: refused (with a
 * DataDirLockedError) while a gateway holds the directory, and refused (StoreError) when the file is not
 * a cxmpp store this build can run, before anything is changed. The replaced store is renamed to
 * `cxmpp.db.before-restore-<UTC time>` with its -wal and -shm.
 */
export function restoreStore(dataDir: string, file: string, now = new Date()): RestoreResult {
  const source = resolve(file);
  const store = join(dataDir, STORE_FILE);
  if (COMPANIONS.some((suffix) => source === store + suffix)) {
    throw new StoreError(`${source} is the data directory's own store: name a backup file`);
  }
  regularFileSize(source);
  const holder = isDataDirLocked(dataDir);
  if (holder !== undefined) throw new DataDirLockedError(dataDir, holder);
  // Held while the files are swapped, so no gateway starts on a half-restored directory.
  const lock = lockOrExplain(dataDir);
  const incoming = join(dataDir, `${STORE_FILE}.restoring-${process.pid}`);
  const moved: Array<readonly [from: string, to: string]> = [];
  try {
    copyPrivate(source, incoming, dataDir);
    let restored: StoreSummary;
    try {
      restored = { ...inspectStoreFile(incoming, source), path: source };
    } finally {
      // A read-only look at a WAL-mode file leaves an empty -wal and -shm behind.
      for (const suffix of COMPANIONS.slice(1)) rmSync(incoming + suffix, { force: true });
    }
    const aside = asideName(store, now);
    for (const suffix of COMPANIONS) {
      if (!existsSync(store + suffix)) continue;
      renameSync(store + suffix, aside + suffix);
      moved.push([store + suffix, aside + suffix]);
    }
    renameSync(incoming, store);
    syncDirectory(dataDir);
    return { store, restored, setAside: moved.map(([, to]) => to) };
  } catch (error) {
    rmSync(incoming, { force: true });
    // Put the replaced store back as it was: a failed restore changes nothing.
    for (const [from, to] of moved.reverse()) {
      try {
        renameSync(to, from);
      } catch {
        // It stays under its before-restore name: not where the gateway looks, but not lost.
      }
    }
    if (error instanceof StoreError) throw error;
    throw storeError(store, `restoring ${source}`, error);
  } finally {
    lock.release();
  }
}

function lockOrExplain(dataDir: string): ReturnType<typeof lockDataDir> {
  try {
    return lockDataDir(dataDir);
  } catch (error) {
    if (error instanceof DataDirLockedError) throw error;
    const e = error as NodeJS.ErrnoException;
    throw new StoreError(`cannot use data directory ${dataDir}: ${e.message}`, e.code);
  }
}

function notAStore(path: string, why: string, code?: string): StoreError {
  return new StoreError(`${path} is not a cxmpp store: ${why}`, code);
}

function regularFileSize(path: string): number {
  let stats: ReturnType<typeof statSync>;
  try {
    stats = statSync(path);
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    throw new StoreError(`cannot read ${path}: ${e.code === "ENOENT" ? "no such file" : e.message}`, e.code);
  }
  if (!stats.isFile()) throw new StoreError(`${path} is not a regular file: name a store backup file`);
  return stats.size;
}

/** Creates `path` exclusively with mode 0600 and returns its descriptor; errors say which file and why. */
function createPrivate(path: string, what: string, shown = path): number {
  try {
    return openSync(path, "wx", 0o600);
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    const why =
      e.code === "ENOENT"
        ? `the directory ${dirname(shown)} does not exist`
        : e.code === "EACCES" || e.code === "EPERM" || e.code === "EROFS"
          ? `no permission to write in ${dirname(shown)} (${e.code})`
          : e.code === "ENOSPC"
            ? "the disk is full (ENOSPC)"
            : e.message;
    throw new StoreError(`cannot write ${what} ${shown}: ${why}`, e.code);
  }
}

/**
 * A backup copies the pages of a WAL-mode store, header included, so the copy would be in WAL mode too
 * and grow -wal and -shm files whenever it is opened. Rollback-journal mode makes it one file that
 * stands alone; the gateway switches it back to WAL when it opens the restored store.
 */
function selfContained(path: string): void {
  const db = new Database(path, { fileMustExist: true });
  try {
    db.pragma("journal_mode = DELETE");
  } finally {
    db.close();
  }
}

/**
 * Copies `source` to the new file `target` (mode 0600) and flushes it to disk. Run as root for a data
 * directory owned by the service's user, the file is given to that user, or the gateway could not open it.
 */
function copyPrivate(source: string, target: string, dataDir: string): void {
  const fd = createPrivate(target, "the restored store", target);
  try {
    const owner = statSync(dataDir);
    if (process.getuid?.() === 0 && owner.uid !== 0) fchownSync(fd, owner.uid, owner.gid);
    const input = openSync(source, "r");
    try {
      const buffer = Buffer.allocUnsafe(1 << 20);
      for (;;) {
        const n = readSync(input, buffer, 0, buffer.length, null);
        if (n === 0) break;
        for (let done = 0; done < n; ) done += writeSync(fd, buffer, done, n - done);
      }
    } finally {
      closeSync(input);
    }
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** `cxmpp.db.before-restore-20250101T120000Z`, with a counter if a restore in the same second took it. */
function asideName(store: string, now: Date): string {
  const stamp = now
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d+Z$/, "Z");
  const base = `${store}.before-restore-${stamp}`;
  for (let n = 1; ; n++) {
    const name = n === 1 ? base : `${base}-${n}`;
    if (COMPANIONS.every((suffix) => !existsSync(name + suffix))) return name;
  }
}

function syncFile(path: string): void {
  const fd = openSync(path, "r+");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** A rename is durable once the directory holding it is flushed. */
function syncDirectory(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
