/**
 * A store that notices damage (docs/PROTOCOL.md §7): SQLite's quick_check at open refuses a damaged
 * file, and a data directory that held a store refuses to start on a missing or empty database file,
 * instead of quietly creating an empty store that forgets every device. `cxmpp gateway` exits 2 with
 * the next step (restore from a backup). The cost of the check on a 100,000-device store is printed.
 */
import { spawnSync } from "node:child_process";
import { closeSync, mkdtempSync, openSync, rmSync, truncateSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import Database from "better-sqlite3";
import { afterAll, describe, expect, it } from "vitest";
import { StoreError } from "../../gateway/index.js";
import { openStore, STORE_FILE } from "../../gateway/store/index.js";
import { key } from "../kit/session-harness.js";

const CLI = join(import.meta.dirname, "..", "..", "bin", "cxmpp.js");
const root = mkdtempSync(join(tmpdir(), "cxmpp-damage-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function storeWithDevices(dir: string, n: number): void {
  const store = openStore(dir);
  store.devices.importAll(
    Array.from({ length: n }, (_, i) => ({
      identity: `node${i}`,
      key: key(i),
      jid: `node${i}@iot.localhost`,
      peers: [],
    })),
  );
  store.close();
}

function gatewayExit(dir: string): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, "gateway", "--data-dir", dir, "--listen", "127.0.0.1:0"], {
    encoding: "utf8",
    timeout: 30_000,
    env: { ...process.env, CXMPP_CONFIG: "" },
  });
  return { status: r.status, stderr: r.stderr };
}

describe("a store that notices damage", () => {
  it("refuses a database file truncated to 0 bytes where a store existed, naming the next step", () => {
    const dir = join(root, "truncated");
    storeWithDevices(dir, 3);
    truncateSync(join(dir, STORE_FILE), 0);
    expect(() => openStore(dir)).toThrow(StoreError);
    const r = gatewayExit(dir);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/is empty \(0 bytes\).*held a store.*cxmpp store restore/);
  });

  it("refuses a missing database file where a store existed", () => {
    const dir = join(root, "missing");
    storeWithDevices(dir, 3);
    for (const suffix of ["", "-wal", "-shm"]) rmSync(join(dir, STORE_FILE + suffix), { force: true });
    const r = gatewayExit(dir);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/is missing.*held a store.*cxmpp store restore/);
  });

  it("refuses a store whose index pages are damaged (quick_check), and keeps the file as it was", () => {
    const dir = join(root, "corrupt-index");
    storeWithDevices(dir, 2000);
    const path = join(dir, STORE_FILE);
    const db = new Database(path);
    db.pragma("wal_checkpoint(TRUNCATE)");
    const pageSize = db.pragma("page_size", { simple: true }) as number;
    const { rootpage } = db
      .prepare("SELECT rootpage FROM sqlite_master WHERE type = 'index' AND tbl_name = 'devices' LIMIT 1")
      .get() as { rootpage: number };
    db.close();
    // Garbage over the index's root page, past its header: a b-tree page that no longer parses.
    const fd = openSync(path, "r+");
    writeSync(fd, Buffer.alloc(pageSize - 16, 0xa5), 0, pageSize - 16, (rootpage - 1) * pageSize + 8);
    closeSync(fd);
    let error: unknown;
    try {
      openStore(dir).close();
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(StoreError);
    expect((error as StoreError).message).toMatch(
      /is damaged \(SQLite quick_check: .+\).*cxmpp store restore/,
    );
    const r = gatewayExit(dir);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/damaged/);
  });

  it("starts afresh on a new data directory, and on one whose marker was removed on purpose", () => {
    const dir = join(root, "fresh");
    const store = openStore(dir);
    expect(store.devices.size).toBe(0);
    store.close();
    rmSync(join(dir, STORE_FILE));
    rmSync(join(dir, "cxmpp.store"));
    openStore(dir).close();
  });

  it("measures quick_check on a 100,000-device store (printed; the budget is the start-up time)", () => {
    const dir = join(root, "big");
    storeWithDevices(dir, 100_000);
    const db = new Database(join(dir, STORE_FILE));
    const t0 = performance.now();
    const rows = db.pragma("quick_check") as { quick_check: string }[];
    const ms = performance.now() - t0;
    const bytes =
      (db.pragma("page_count", { simple: true }) as number) *
      (db.pragma("page_size", { simple: true }) as number);
    db.close();
    expect(rows).toEqual([{ quick_check: "ok" }]);
    console.log(
      `quick_check on 100,000 devices: ${ms.toFixed(0)} ms for ${(bytes / 1048576).toFixed(1)} MiB`,
    );
  });
});
