/**
 * The gateway's store in its data directory (`cxmpp.db`): devices, sessions, mailboxes, outbox. Every
 * command opens it the same way, so `cxmpp provision` and a running `cxmpp gateway` share it.
 */
import { existsSync, renameSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { MemoryDevices } from "../devices.js";
import { type Db, type Durability, openDatabase } from "./database.js";
import { SqliteDevices } from "./device-store.js";
import { StoreError } from "./errors.js";
import { SqliteJournal } from "./session-store.js";
import { type CommitScheduler, WriteBatch } from "./write-batch.js";

export { type Db, type Durability, migrate, openDatabase, StoreError, storeError } from "./database.js";
export { SqliteDevices } from "./device-store.js";
export { MIGRATIONS } from "./migrations.js";
export { type OutboxItem, packStanza, SqliteJournal } from "./session-store.js";
export { type CommitScheduler, WriteBatch } from "./write-batch.js";

export const STORE_FILE = "cxmpp.db";
/**
 * Written beside a new store and never removed: once a data directory has held a store, a missing or
 * empty database file there is damage (a wrong mount, a truncated copy), not a first start. Without
 * this, SQLite would quietly create an empty store and every provisioned node would be refused.
 */
export const STORE_MARKER = "cxmpp.store";

export interface Store {
  readonly path: string;
  readonly db: Db;
  readonly devices: SqliteDevices;
  readonly journal: SqliteJournal;
  readonly batch: WriteBatch;
  /** Commits what is pending and closes the database. */
  close(): void;
}

export interface StoreOptions {
  readonly durability?: Durability;
  /** When a write batch commits (default: after the current event-loop turn). */
  readonly schedule?: CommitScheduler;
}

/** Opens the store of data directory `dir` (or ":memory:"). */
export function openStore(dir: string, options: StoreOptions = {}): Store {
  const path = dir === ":memory:" ? dir : join(dir, STORE_FILE);
  if (dir !== ":memory:") checkNotLost(dir, path);
  const db = openDatabase(path, options.durability ? { durability: options.durability } : {});
  if (dir !== ":memory:") markStore(dir);
  const batch = new WriteBatch(db, path, options.schedule);
  const devices = new SqliteDevices(db);
  if (dir !== ":memory:") importLegacyDevices(dir, devices);
  const journal = new SqliteJournal(db, batch);
  return {
    path,
    db,
    devices,
    journal,
    batch,
    close() {
      try {
        journal.flushConfirmed();
      } catch {
        // A failed batch: its rows are sent once more after the restart, nothing is lost.
      }
      batch.flush();
      db.close();
    },
  };
}

/** A data directory that held a store must still hold one: refuse a missing or empty database file. */
function checkNotLost(dir: string, path: string): void {
  if (!existsSync(join(dir, STORE_MARKER))) return; // a new data directory (or one from before the marker)
  let size: number;
  try {
    size = statSync(path).size;
  } catch {
    size = -1;
  }
  if (size > 0) return;
  throw new StoreError(
    `store ${path} is ${size < 0 ? "missing" : "empty (0 bytes)"}, but ${dir} held a store (${STORE_MARKER}): ` +
      "refusing to start with an empty one, which would forget every device, session and mailbox. Restore the " +
      "data directory from a backup with `cxmpp store restore FILE` (docs/DEPLOY.md), or, to really start " +
      `afresh, remove ${join(dir, STORE_MARKER)} too`,
  );
}

function markStore(dir: string): void {
  const marker = join(dir, STORE_MARKER);
  if (existsSync(marker)) return;
  writeFileSync(marker, `cxmpp store created ${new Date().toISOString()}\n`, { mode: 0o600 });
}

/** Releases before the store kept devices in devices.json: import it once, keep it renamed. */
function importLegacyDevices(dir: string, devices: SqliteDevices): void {
  const legacy = join(dir, "devices.json");
  if (!existsSync(legacy)) return;
  devices.importAll(MemoryDevices.fromFile(legacy).all());
  renameSync(legacy, `${legacy}.imported`);
}
