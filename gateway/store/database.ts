/**
 * The gateway's embedded store: one SQLite file (better-sqlite3) in the data directory, in WAL mode,
 * migrated on open. Errors a operator can act on (read-only directory, full disk, a newer schema, a
 * file that is not a database) become a StoreError that says so.
 *
 * The store holds every device's key, so it is private to its owner: the data directory is created
 * mode 0700 and the database file 0600 before SQLite opens it (SQLite gives its -wal, -shm and -journal
 * files the mode of the database file), whatever the umask; a file an older release left readable by
 * others is tightened at open.
 */
import { chmodSync, closeSync, mkdirSync, openSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import Database from "better-sqlite3";
import { StoreError } from "./errors.js";
import { MIGRATIONS } from "./migrations.js";

export type Db = Database.Database;
export type Durability = "full" | "normal";

export { StoreError };

const HINTS: Record<string, string> = {
  SQLITE_FULL: "the disk is full",
  SQLITE_READONLY: "the data directory or the database file is read-only",
  SQLITE_READONLY_DIRECTORY: "the data directory is read-only",
  SQLITE_CANTOPEN: "the file cannot be opened (missing directory or no permission)",
  SQLITE_IOERR: "an I/O error (disk failing, or full)",
  SQLITE_NOTADB: "the file is not a cxmpp database",
  SQLITE_CORRUPT: "the database file is damaged",
  SQLITE_BUSY: "another process holds the database locked",
};

/** A StoreError that names the store, what was being done, and (when known) the likely cause. */
export function storeError(path: string, doing: string, error: unknown): StoreError {
  if (error instanceof StoreError) return error;
  const code = (error as { code?: string }).code;
  const hint = code ? (HINTS[code] ?? HINTS[code.replace(/_[A-Z]+$/, "")]) : undefined;
  const cause = (error as Error).message ?? String(error);
  return new StoreError(`store ${path}: ${doing} failed: ${hint ? `${hint} (${cause})` : cause}`, code);
}

export interface OpenOptions {
  /** SQLite `synchronous`: "full" survives power loss, "normal" survives a process crash (WAL). */
  readonly durability?: Durability;
  readonly readonly?: boolean;
  /**
   * "quick" (default): `PRAGMA quick_check` at open, so a damaged file (a corrupted page or index) is
   * refused before the gateway serves from it; about 0.1 s per 100,000 devices (measured in the
   * hardening test). "off" skips it (tests of one layer).
   */
  readonly integrity?: "quick" | "off";
}

/** SQLite's quick_check (btree structure, every page, but not index contents against tables). */
function checkIntegrity(db: Db, path: string): void {
  const rows = db.pragma("quick_check(5)") as { quick_check: string }[];
  const problems = rows.map((r) => r.quick_check.replace(/\s+/g, " ").trim()).filter((r) => r !== "ok");
  if (problems.length === 0) return;
  throw new StoreError(
    `store ${path} is damaged (SQLite quick_check: ${problems.join("; ")}): stop here and restore the data ` +
      "directory from a backup with `cxmpp store restore FILE` (docs/DEPLOY.md); the damaged file is kept as it is",
    "SQLITE_CORRUPT",
  );
}

/** Mode of the data directory and of every file in it: the owner's only. */
export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;

/**
 * Creates directory `dir` with mode 0700 if it is missing (its missing parents get the usual mode). An
 * existing directory is left as it is: it may be one the operator made, with a mode chosen on purpose.
 */
export function makePrivateDir(dir: string): void {
  const parent = dirname(dir);
  if (parent !== dir) mkdirSync(parent, { recursive: true });
  try {
    mkdirSync(dir, { mode: PRIVATE_DIR_MODE });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
  }
}

/**
 * Makes the store file `path` private before SQLite opens it: created empty with mode 0600 when missing
 * (SQLite takes an empty file for a new database), tightened to 0600 with its -wal and -shm when an
 * older release left them readable by others (one line on stderr says so).
 */
function privateStoreFile(path: string): void {
  try {
    closeSync(openSync(path, "wx", PRIVATE_FILE_MODE));
    return;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
  }
  for (const file of [path, `${path}-wal`, `${path}-shm`, `${path}-journal`]) {
    let mode: number;
    try {
      mode = statSync(file).mode & 0o777;
    } catch {
      continue; // no such companion
    }
    if ((mode & 0o077) === 0) continue;
    try {
      chmodSync(file, mode & 0o700);
      process.stderr.write(
        `cxmpp: ${file} was readable by other users (mode 0${mode.toString(8)}); it holds device keys: ` +
          `mode set to 0${(mode & 0o700).toString(8)}\n`,
      );
    } catch (error) {
      process.stderr.write(
        `cxmpp: ${file} is readable by other users (mode 0${mode.toString(8)}) and holds device keys, but ` +
          `its mode cannot be changed (${(error as NodeJS.ErrnoException).code}): chmod 600 it\n`,
      );
    }
  }
}

/** Opens (creating it and its directory if needed) and migrates the store at `path` (":memory:" for tests). */
export function openDatabase(path: string, options: OpenOptions = {}): Db {
  let db: Db | undefined;
  try {
    if (path !== ":memory:" && !options.readonly) {
      makePrivateDir(dirname(path));
      probeWritable(dirname(path));
      privateStoreFile(path);
    }
    db = new Database(path, {
      readonly: options.readonly === true,
      fileMustExist: options.readonly === true,
    });
    if (path !== ":memory:" && !options.readonly) db.pragma("journal_mode = WAL");
    db.pragma(`synchronous = ${options.durability === "normal" ? "NORMAL" : "FULL"}`);
    db.pragma("busy_timeout = 5000");
    if (path !== ":memory:" && options.integrity !== "off") checkIntegrity(db, path);
    if (!options.readonly) {
      migrate(db);
      // SQLite falls back to read-only when it cannot write; say so now, not at the first stanza.
      db.exec("BEGIN IMMEDIATE");
      db.exec("ROLLBACK");
    } else checkVersion(db);
    return db;
  } catch (error) {
    db?.close();
    throw storeError(path, "opening", error);
  }
}

/** SQLite needs to create its -wal and -shm files beside the database: the directory must be writable. */
function probeWritable(dir: string): void {
  const probe = join(dir, `.cxmpp-write-test-${process.pid}`);
  try {
    writeFileSync(probe, "", { mode: PRIVATE_FILE_MODE });
    rmSync(probe);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? "";
    const why =
      code === "EROFS" || code === "EACCES" || code === "EPERM"
        ? `the data directory ${dir} is read-only (${code})`
        : code === "ENOSPC"
          ? `the disk holding ${dir} is full (ENOSPC)`
          : `cannot write in ${dir} (${(error as Error).message})`;
    throw new StoreError(why, code);
  }
}

function checkVersion(db: Db): number {
  const version = db.pragma("user_version", { simple: true }) as number;
  if (version > MIGRATIONS.length) {
    throw new StoreError(
      `the store has schema version ${version}, newer than this cxmpp knows (${MIGRATIONS.length}): upgrade cxmpp`,
    );
  }
  return version;
}

/** Runs the migrations not yet applied, each in its own transaction with the version bump. */
export function migrate(db: Db): { from: number; to: number } {
  const from = checkVersion(db);
  for (let v = from; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v]!);
      db.pragma(`user_version = ${v + 1}`);
    }).immediate();
  }
  return { from, to: MIGRATIONS.length };
}
