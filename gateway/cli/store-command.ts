/**
 * `cxmpp store backup|restore`: the operator's copy of the gateway's state (devices with their keys,
 * sessions, mailboxes, outbox). Backup runs beside a live gateway; restore only while it is stopped.
 * The data directory is found like every other command finds it (settings.ts).
 */
import { ConfigError } from "../config.js";
import { DataDirLockedError } from "../data-dir-lock.js";
import { backupStore, restoreStore, type StoreSummary } from "../store/backup.js";
import { StoreError } from "../store/database.js";
import { MIGRATIONS } from "../store/migrations.js";
import { settings } from "./settings.js";

export interface StoreCommandOptions {
  readonly config?: string;
  readonly dataDir?: string;
}

export interface StoreBackupOptions extends StoreCommandOptions {
  readonly out?: string;
}

export async function runStoreBackup(opts: StoreBackupOptions): Promise<number> {
  if (!opts.out) {
    process.stderr.write(
      "cxmpp store backup: --out FILE is required: the file to write the backup to " +
        "(for example --out /var/backups/cxmpp/cxmpp-$(date +%F).db)\n",
    );
    return 2;
  }
  try {
    const config = settings({ ...opts });
    const started = performance.now();
    const s = await backupStore(config.dataDir, opts.out);
    const ms = Math.round(performance.now() - started);
    process.stdout.write(
      `backup ${s.path}: ${s.bytes} bytes, ${contents(s)}; taken from ${config.dataDir} in ${ms} ms\n`,
    );
    return 0;
  } catch (error) {
    return failed("backup", error);
  }
}

export function runStoreRestore(file: string, opts: StoreCommandOptions): number {
  let dataDir: string | undefined;
  try {
    dataDir = settings({ ...opts }).dataDir;
    const r = restoreStore(dataDir, file);
    const lines = [
      `restored ${r.restored.path} into ${r.store}: ${r.restored.bytes} bytes, ${contents(r.restored)}`,
      r.setAside.length > 0
        ? `the store it replaced is kept as ${r.setAside.join(", ")}: delete it once the restored gateway runs well`
        : "there was no store in the data directory before",
    ];
    if (r.restored.schemaVersion < MIGRATIONS.length) {
      lines.push(
        `the gateway migrates it from schema version ${r.restored.schemaVersion} to ${MIGRATIONS.length} when it starts`,
      );
    }
    lines.push(
      "stanzas and devices that reached the store after the backup was taken are not in it",
      "next: start the gateway (`cxmpp gateway`, or `systemctl start cxmpp-gateway`); `cxmpp provision list` shows the devices",
    );
    process.stdout.write(`${lines.join("\n")}\n`);
    return 0;
  } catch (error) {
    if (error instanceof DataDirLockedError) {
      process.stderr.write(
        `cxmpp store restore: a gateway (pid ${error.pid}) is running on data directory ${error.dir}: ` +
          `stop the gateway (pid ${error.pid}) first (systemctl stop cxmpp-gateway, or Ctrl-C), then restore; ` +
          "nothing was changed\n",
      );
      return 2;
    }
    return failed(
      "restore",
      error,
      dataDir === undefined ? "" : "; the store in the data directory is unchanged",
    );
  }
}

function contents(s: StoreSummary): string {
  return [
    `schema version ${s.schemaVersion}`,
    plural(s.devices, "device"),
    plural(s.sessions, "session"),
    plural(s.mailbox, "mailbox stanza"),
    plural(s.outbox, "outbox stanza"),
  ].join(", ");
}

function plural(n: number, what: string): string {
  return `${n} ${what}${n === 1 ? "" : "s"}`;
}

/** Errors an operator can act on: one line and exit 2; anything else is a bug and keeps its stack. */
function failed(command: string, error: unknown, after = ""): number {
  if (error instanceof ConfigError || error instanceof StoreError) {
    process.stderr.write(`cxmpp store ${command}: ${error.message}${after}\n`);
    return 2;
  }
  throw error;
}
