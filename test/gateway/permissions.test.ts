/**
 * The data directory holds every device's key (issue 10): it is created mode 0700, and every file the
 * gateway and the commands create in it is 0600 (the database, its -wal and -shm, the lock file, the
 * marker), as is a backup, whatever the umask; a store an older release left readable by others is
 * tightened when it is opened. The commands run compiled (bin/cxmpp.js → dist/): `npm run build` first.
 */
import { chmodSync, existsSync, mkdtempSync, readdirSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cleanEnv } from "../../bench/child-process.js";
import {
  CLI,
  freeUdpPort,
  killAllGateways,
  type Run,
  runToEnd,
  startGatewayProcess,
} from "../kit/gateway-process.js";

afterAll(() => killAllGateways());

/** `cxmpp …` under `umask` (a shell sets it, then execs node), without the caller's CXMPP_* settings. */
function cxmpp(cwd: string, umask: string, args: readonly string[]): Promise<Run> {
  const quoted = [process.execPath, CLI, ...args].map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(" ");
  return runToEnd("/bin/sh", ["-c", `umask ${umask} && exec ${quoted}`], {
    cwd,
    env: cleanEnv({ CXMPP_DTLS_LISTEN: "off" }),
  });
}

const mode = (path: string) => statSync(path).mode & 0o777;

/** Every entry of `dir` with its mode, e.g. {"cxmpp.db": 0o600, …}. */
const modes = (dir: string) => Object.fromEntries(readdirSync(dir).map((f) => [f, mode(join(dir, f))]));

/** Runs `fn` with this process's umask set to `mask` (children started meanwhile inherit it). */
async function underUmask<T>(mask: number, fn: () => Promise<T>): Promise<T> {
  const before = process.umask(mask);
  try {
    return await fn();
  } finally {
    process.umask(before);
  }
}

describe("the data directory is private: 0700, and 0600 for every file in it", () => {
  it.each(["022", "000"])(
    "umask %s: provision creates the directory 0700 and its files 0600; a gateway's -wal, -shm and lock too; backups 0600",
    async (umask) => {
      const dir = mkdtempSync(join(tmpdir(), "cxmpp-permissions-"));
      const data = join(dir, "state", "data");
      const add = await cxmpp(dir, umask, ["provision", "add", "sensor1", "--data-dir", data]);
      expect(add.stderr).toBe("");
      expect(add.status).toBe(0);
      expect(mode(data)).toBe(0o700);
      expect(mode(join(dir, "state"))).toBe(umask === "000" ? 0o777 : 0o755); // a parent: left to the umask
      expect(modes(data)).toEqual({ "cxmpp.db": 0o600, "cxmpp.store": 0o600 });

      // The gateway holds the store open: its -wal and -shm exist while it runs, beside its lock file.
      const gw = await underUmask(Number.parseInt(umask, 8), async () =>
        startGatewayProcess({ dataDir: data, port: await freeUdpPort(), env: { CXMPP_DTLS_LISTEN: "off" } }),
      );
      try {
        // A device added while it runs goes through the -wal (a second connection).
        expect((await cxmpp(dir, umask, ["provision", "add", "sensor2", "--data-dir", data])).status).toBe(0);
        const running = modes(data);
        expect(Object.keys(running).sort()).toEqual([
          "cxmpp.db",
          "cxmpp.db-shm",
          "cxmpp.db-wal",
          "cxmpp.store",
          "gateway.pid",
        ]);
        for (const [file, m] of Object.entries(running)) expect(m, file).toBe(0o600);
        expect(mode(data)).toBe(0o700);

        const backup = join(dir, "backup.db");
        const taken = await cxmpp(dir, umask, ["store", "backup", "--out", backup, "--data-dir", data]);
        expect(taken.status).toBe(0);
        expect(mode(backup)).toBe(0o600);
        expect(readdirSync(dir).sort()).toEqual(["backup.db", "state"]); // no -wal or partial beside it
      } finally {
        expect((await gw.stop()).code).toBe(0);
      }
      for (const [file, m] of Object.entries(modes(data))) expect(m, file).toBe(0o600);
      expect(existsSync(join(data, "gateway.pid"))).toBe(false);
    },
    60_000,
  );

  it("a store an older release left readable by others is tightened to 0600 at open, with a line saying so", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cxmpp-permissions-old-"));
    const data = join(dir, "data");
    expect((await cxmpp(dir, "022", ["provision", "add", "sensor1", "--data-dir", data])).status).toBe(0);
    chmodSync(join(data, "cxmpp.db"), 0o644); // as releases before issue 10 created it
    const list = await cxmpp(dir, "022", ["provision", "list", "--data-dir", data]);
    expect(list.status).toBe(0);
    expect(list.stdout).toContain("sensor1");
    expect(list.stderr).toBe(
      `cxmpp: ${join(data, "cxmpp.db")} was readable by other users (mode 0644); it holds device keys: mode set to 0600\n`,
    );
    expect(modes(data)).toEqual({ "cxmpp.db": 0o600, "cxmpp.store": 0o600 });
    // Once tightened, nothing more is said.
    expect((await cxmpp(dir, "022", ["provision", "list", "--data-dir", data])).stderr).toBe("");
  });
});
