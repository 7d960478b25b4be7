/**
 * The gateway's store in its data directory (`cxmpp.db`): devices, sessions, mailboxes, outbox. Every
 * command opens it the same way, so `cxmpp provision` and a running `cxmpp gateway` share it.
 */
import { existsSync, renameSync } from "node:fs";
import { join } from "node:path";
import { MemoryDevices } from "../devices.js";
import { type Db, type Durability, openDatabase } from "./database.js";
import { SqliteDevices } from "./device-store.js";
import { SqliteJournal } from "./session-store.js";
import { type CommitScheduler, WriteBatch } from "./write-batch.js";

export { type Db, type Durability, migrate, openDatabase, StoreError, storeError } from "./database.js";
export { SqliteDevices } from "./device-store.js";
export { MIGRATIONS } from "./migrations.js";
export { type OutboxItem, packStanza, SqliteJournal } from "./session-store.js";
export { type CommitScheduler, WriteBatch } from "./write-batch.js";

export const STORE_FILE = "cxmpp.db";

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
  const db = openDatabase(path, options.durability ? { durability: options.durability } : {});
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

/** Releases before the store kept devices in devices.json: import it once, keep it renamed. */
function importLegacyDevices(dir: string, devices: SqliteDevices): void {
  const legacy = join(dir, "devices.json");
  if (!existsSync(legacy)) return;
  devices.importAll(MemoryDevices.fromFile(legacy).all());
  renameSync(legacy, `${legacy}.imported`);
}
