/**
 * Operating the gateway as an operator does, with real parts: `cxmpp store backup` of a running
 * `cxmpp gateway` child over real UDP, `cxmpp store restore` into a replaced data directory, the gateway
 * started again delivering what was queued at backup time; and `cxmpp gateway --check-config`.
 * Everything runs compiled (bin/cxmpp.js → dist/): `npm run build` first.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { createSocket } from "node:dgram";
import {
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, describe, expect, it } from "vitest";
import { cleanEnv } from "../../bench/child-process.js";
import { CONFIG_KEYS } from "../../gateway/config.js";
import { backupStore } from "../../gateway/store/backup.js";
import { openStore } from "../../gateway/store/index.js";
import {
  CLI,
  freeUdpPort,
  killAllGateways,
  type Run,
  runToEnd,
  startGatewayProcess,
} from "../kit/gateway-process.js";
import { until } from "../kit/wait.js";

const ROOT = join(import.meta.dirname, "..", "..");
const children: ChildProcess[] = [];
/** These gateways speak plain CoAP only: no DTLS listener (none holds port 5684), devices not DTLS-only. */
const PLAIN = { CXMPP_DTLS_LISTEN: "off" } as const;

afterAll(async () => {
  for (const c of children) c.kill("SIGKILL");
  await killAllGateways();
});

/** `cxmpp …` to completion, without blocking the event loop, and without the caller's CXMPP_* settings. */
function cxmpp(cwd: string, args: readonly string[], env: Record<string, string> = {}): Promise<Run> {
  return runToEnd(process.execPath, [CLI, ...args], { cwd, env: cleanEnv(env) });
}

/** A long-running `cxmpp …` whose output is read as it comes. */
function start(
  cwd: string,
  args: readonly string[],
): { child: ChildProcess; out: () => string; err: () => string } {
  const child = spawn(process.execPath, [CLI, ...args], { cwd, env: cleanEnv({}) });
  children.push(child);
  let out = "";
  let err = "";
  child.stdout!.setEncoding("utf8").on("data", (d: string) => (out += d));
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (err += d));
  return { child, out: () => out, err: () => err };
}

const sha = (file: string) => createHash("sha256").update(readFileSync(file)).digest("hex");
const mode = (file: string) => statSync(file).mode & 0o777;

/** The database files in a data directory: the store, its companions, anything set aside or half-copied. */
const storeFiles = (data: string) =>
  readdirSync(data)
    .filter((f) => f.startsWith("cxmpp.db"))
    .sort();

/** The devices in a store file, read directly (not through the code under test). */
function devicesIn(file: string): string[] {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return (db.prepare("SELECT identity FROM devices ORDER BY identity").all() as { identity: string }[]).map(
      (r) => r.identity,
    );
  } finally {
    db.close();
  }
}

describe("cxmpp store backup and restore, around a real gateway", () => {
  it("a backup taken while the gateway runs brings back the devices and a queued stanza into a replaced data directory", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cxmpp-ops-"));
    const data = join(dir, "data");
    const port = await freeUdpPort();
    const gateway = `127.0.0.1:${port}`;
    const provision = (name: string) =>
      cxmpp(
        dir,
        ["provision", "add", name, "--gateway", gateway, "--out", `${name}.json`, "--data-dir", data],
        PLAIN,
      );
    expect((await provision("sensor1")).status).toBe(0);
    expect((await provision("actuator1")).status).toBe(0);

    const gw = await startGatewayProcess({ dataDir: data, port, env: PLAIN });
    // actuator1 has never connected: the message waits in its mailbox.
    const send = (body: string) =>
      cxmpp(dir, [
        "node",
        "send",
        "--device",
        "sensor1.json",
        "--to",
        "actuator1@iot.localhost",
        "--body",
        body,
      ]);
    const before = await send("queued before the backup");
    expect(before.stderr).toBe("");
    expect(before.status).toBe(0);

    const backup = join(dir, "backups", "cxmpp-backup.db");
    const noDir = await cxmpp(dir, ["store", "backup", "--out", backup, "--data-dir", data]);
    expect(noDir.status).toBe(2);
    expect(noDir.stderr).toContain(
      `cannot write the backup ${backup}: the directory ${join(dir, "backups")} does not exist`,
    );
    mkdirSync(join(dir, "backups"));

    const taken = await cxmpp(dir, ["store", "backup", "--out", backup, "--data-dir", data]);
    expect(taken.stderr).toBe("");
    expect(taken.status).toBe(0);
    expect(taken.stdout).toMatch(
      new RegExp(
        `^backup ${backup}: (\\d+) bytes, schema version \\d+, 2 devices, \\d+ sessions?, 1 mailbox stanza, 0 outbox stanzas; taken from ${data} in \\d+ ms\\n$`,
      ),
    );
    expect(Number(/: (\d+) bytes/.exec(taken.stdout)![1])).toBe(statSync(backup).size);
    expect(mode(backup)).toBe(0o600); // it holds the device keys
    expect(readdirSync(join(dir, "backups"))).toEqual(["cxmpp-backup.db"]); // no partial file, no -wal
    expect(gw.child.exitCode).toBeNull(); // the gateway ran on through it

    // After the backup: a second message and a third device, which the restore must not bring back.
    expect((await send("sent after the backup")).status).toBe(0);
    expect((await provision("late1")).status).toBe(0);
    expect((await gw.stop()).code).toBe(0);

    // The data directory is lost; a new gateway was set up there with another device.
    rmSync(data, { recursive: true });
    expect((await provision("stranger")).status).toBe(0);
    const store = join(data, "cxmpp.db");
    const current = sha(store);

    // Files that are not a store this gateway can run are refused, and the current store is untouched.
    writeFileSync(join(dir, "notes.txt"), "this is not a database\n".repeat(200));
    writeFileSync(join(dir, "half.db"), readFileSync(backup).subarray(0, 8192));
    writeFileSync(join(dir, "empty.db"), "");
    for (const [file, why] of [
      ["notes.txt", `${join(dir, "notes.txt")} is not a cxmpp store: not an SQLite database`],
      ["half.db", "the database file is damaged"],
      ["empty.db", `${join(dir, "empty.db")} is not a cxmpp store: schema version 0`],
      ["missing.db", `cannot read ${join(dir, "missing.db")}: no such file`],
    ] as const) {
      const refused = await cxmpp(dir, ["store", "restore", file, "--data-dir", data]);
      expect(refused.status, file).toBe(2);
      expect(refused.stderr, file).toContain(why);
      expect(refused.stderr, file).toContain("the store in the data directory is unchanged");
      expect(sha(store), file).toBe(current);
      expect(storeFiles(data), file).toEqual(["cxmpp.db"]); // nothing set aside, no copy left behind
    }

    const restored = await cxmpp(dir, ["store", "restore", backup, "--data-dir", data]);
    expect(restored.stderr).toBe("");
    expect(restored.status).toBe(0);
    expect(restored.stdout).toContain(`restored ${backup} into ${store}: `);
    expect(restored.stdout).toContain("2 devices");
    expect(restored.stdout).toContain("1 mailbox stanza");
    expect(restored.stdout).toContain("next: start the gateway");
    const aside = readdirSync(data).filter((f) => f.startsWith("cxmpp.db.before-restore-"));
    expect(aside).toHaveLength(1);
    expect(aside[0]).toMatch(/^cxmpp\.db\.before-restore-\d{8}T\d{6}Z$/);
    expect(restored.stdout).toContain(`the store it replaced is kept as ${join(data, aside[0]!)}`);
    expect(devicesIn(join(data, aside[0]!))).toEqual(["stranger"]); // set aside, not deleted
    expect(sha(store)).toBe(sha(backup));
    expect(mode(store)).toBe(0o600);
    expect(existsSync(join(data, "gateway.pid"))).toBe(false);

    const list = await cxmpp(dir, ["provision", "list", "--data-dir", data]);
    expect(
      list.stdout
        .split("\n")
        .filter(Boolean)
        .map((l) => l.split("\t")[0])
        .sort(),
    ).toEqual(["actuator1", "sensor1"]);

    // The restored gateway delivers what was queued when the backup was taken, and nothing later.
    const again = await startGatewayProcess({ dataDir: data, port, env: PLAIN });
    const actuator = start(dir, ["node", "run", "--device", "actuator1.json", "--poll", "0.2"]);
    await until(
      () => actuator.out().includes("queued before the backup"),
      20_000,
      () => `the queued stanza\nnode: ${actuator.out()}${actuator.err()}\ngateway: ${again.stderr()}`,
    );
    expect(actuator.out()).toMatch(
      /<message xmlns='jabber:client' from='sensor1@iot\.localhost\/cxmpp' to='actuator1@iot\.localhost' type='chat'>.*<body>queued before the backup<\/body>/,
    );
    await new Promise((r) => setTimeout(r, 1000));
    expect(actuator.out()).not.toContain("sent after the backup");
    actuator.child.kill("SIGTERM");
    expect((await again.stop()).code).toBe(0);
  }, 120_000);

  it("restore is refused while a process holds the data directory, naming its pid; nothing changes", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cxmpp-ops-held-"));
    const data = join(dir, "data");
    expect((await cxmpp(dir, ["provision", "add", "sensor1", "--data-dir", data])).status).toBe(0);
    const backup = join(dir, "b.db");
    expect((await cxmpp(dir, ["store", "backup", "--out", backup, "--data-dir", data])).status).toBe(0);
    expect((await cxmpp(dir, ["provision", "add", "sensor2", "--data-dir", data])).status).toBe(0);
    const current = sha(join(data, "cxmpp.db"));

    // A stand-in for the gateway: a process holding the lock the gateway takes at start-up.
    const holder = spawn(
      process.execPath,
      [
        "--import",
        "tsx",
        "--input-type=module",
        "-e",
        `import { lockDataDir } from ${JSON.stringify(join(ROOT, "gateway", "data-dir-lock.ts"))};
         lockDataDir(${JSON.stringify(data)}); process.stdout.write("held\\n"); setInterval(() => {}, 1000);`,
      ],
      { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] },
    );
    children.push(holder);
    let held = "";
    holder.stdout!.setEncoding("utf8").on("data", (d: string) => (held += d));
    await until(() => held.includes("held"), 20_000);

    const refused = await cxmpp(dir, ["store", "restore", backup, "--data-dir", data]);
    expect(refused.status).toBe(2);
    expect(refused.stderr).toContain(`stop the gateway (pid ${holder.pid}) first`);
    expect(refused.stderr).toContain("nothing was changed");
    expect(sha(join(data, "cxmpp.db"))).toBe(current);
    expect(storeFiles(data)).toEqual(["cxmpp.db"]);
    expect(readdirSync(data)).toContain("gateway.pid");
    holder.kill("SIGKILL");
    await new Promise((r) => holder.once("exit", r));

    // The holder is gone (its gateway.pid stale): restore goes ahead.
    const done = await cxmpp(dir, ["store", "restore", backup, "--data-dir", data]);
    expect(done.stderr).toBe("");
    expect(done.status).toBe(0);
    expect(devicesIn(join(data, "cxmpp.db"))).toEqual(["sensor1"]);
  }, 60_000);

  it.skipIf(process.getuid?.() !== 0)(
    "run as root, restore gives the restored store to the data directory's owner (the service's user)",
    async () => {
      const dir = mkdtempSync(join(tmpdir(), "cxmpp-ops-owner-"));
      const data = join(dir, "data");
      expect((await cxmpp(dir, ["provision", "add", "sensor1", "--data-dir", data])).status).toBe(0);
      const backup = join(dir, "b.db");
      expect((await cxmpp(dir, ["store", "backup", "--out", backup, "--data-dir", data])).status).toBe(0);
      chownSync(data, 65534, 65534);
      expect((await cxmpp(dir, ["store", "restore", backup, "--data-dir", data])).status).toBe(0);
      const restored = statSync(join(data, "cxmpp.db"));
      expect([restored.uid, restored.gid, restored.mode & 0o777]).toEqual([65534, 65534, 0o600]);
    },
  );

  it("restore is refused while a real cxmpp gateway runs on the data directory", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cxmpp-ops-running-"));
    const data = join(dir, "data");
    expect((await cxmpp(dir, ["provision", "add", "sensor1", "--data-dir", data])).status).toBe(0);
    const gw = await startGatewayProcess({ dataDir: data, port: await freeUdpPort(), env: PLAIN });
    try {
      const backup = join(dir, "b.db");
      expect((await cxmpp(dir, ["store", "backup", "--out", backup, "--data-dir", data])).status).toBe(0);
      const current = sha(join(data, "cxmpp.db"));
      const refused = await cxmpp(dir, ["store", "restore", backup, "--data-dir", data]);
      expect(refused.status).toBe(2);
      expect(refused.stderr).toContain(`stop the gateway (pid ${gw.pid}) first`);
      expect(sha(join(data, "cxmpp.db"))).toBe(current);
    } finally {
      await gw.stop();
    }
  }, 60_000);

  it("backup refuses, with exit 2 and the reason: no --out, no store in the data directory, the live store as --out", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cxmpp-ops-backup-"));
    const noOut = await cxmpp(dir, ["store", "backup", "--data-dir", "data"]);
    expect(noOut.status).toBe(2);
    expect(noOut.stderr).toContain("--out FILE is required");

    const empty = await cxmpp(dir, ["store", "backup", "--out", "b.db"], {
      CXMPP_DATA_DIR: join(dir, "nothing"),
    });
    expect(empty.status).toBe(2);
    expect(empty.stderr).toContain(`no store in data directory ${join(dir, "nothing")} (no cxmpp.db there)`);
    expect(existsSync(join(dir, "nothing"))).toBe(false); // looked, created nothing
    expect(existsSync(join(dir, "b.db"))).toBe(false);

    expect((await cxmpp(dir, ["provision", "add", "sensor1", "--data-dir", "data"])).status).toBe(0);
    const live = await cxmpp(dir, ["store", "backup", "--out", "data/cxmpp.db", "--data-dir", "data"]);
    expect(live.status).toBe(2);
    expect(live.stderr).toContain("is the live store itself");
    expect(devicesIn(join(dir, "data", "cxmpp.db"))).toEqual(["sensor1"]);

    const help = await cxmpp(dir, ["store", "--help"]);
    expect(help.stdout).toContain("backup");
    expect(help.stdout).toContain("restore");
    expect((await cxmpp(dir, ["store", "restore", "--help"])).stdout).toContain("before-restore");
  }, 60_000);
});

describe("backupStore against a writer that never stops", () => {
  it("every copy is the store as of one commit, while another process commits all the time", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cxmpp-ops-busy-"));
    const data = join(dir, "data");
    openStore(data).close();
    // Another process commits 10 outbox rows per transaction as fast as it can (the gateway's group
    // commit writes the same way, from its own connection): a torn copy would hold a count not divisible by 10.
    const writer = spawn(
      process.execPath,
      [
        "--input-type=module",
        "-e",
        `import Database from ${JSON.stringify(join(ROOT, "node_modules", "better-sqlite3", "lib", "index.js"))};
         const db = new Database(${JSON.stringify(join(data, "cxmpp.db"))});
         db.pragma("journal_mode = WAL"); db.pragma("synchronous = NORMAL"); db.pragma("busy_timeout = 5000");
         const add = db.prepare("INSERT INTO outbox (stanza, queued_at) VALUES (?, ?)");
         const ten = db.transaction(() => { for (let i = 0; i < 10; i++) add.run(Buffer.alloc(300, i), Date.now()); });
         ten(); process.stdout.write("writing\\n");
         const end = Date.now() + 20000;
         while (Date.now() < end) ten();`,
      ],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    children.push(writer);
    let out = "";
    writer.stdout!.setEncoding("utf8").on("data", (d: string) => (out += d));
    await until(() => out.includes("writing"), 10_000);
    const counts: number[] = [];
    try {
      for (let i = 0; i < 5; i++) {
        const copy = await backupStore(data, join(dir, `copy-${i}.db`));
        expect(copy.outbox % 10, `copy ${i}: ${copy.outbox} rows`).toBe(0);
        counts.push(copy.outbox);
      }
    } finally {
      writer.kill("SIGKILL");
    }
    expect(writer.exitCode).toBeNull(); // it was still writing at the last copy
    for (let i = 1; i < counts.length; i++) expect(counts[i]).toBeGreaterThan(counts[i - 1]!);
  }, 60_000);
});

describe("cxmpp gateway --check-config", () => {
  const SECRET = "hunter2-component-secret";

  it("prints every key resolved as the gateway would, with its source, the secret masked; opens no socket and no store", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cxmpp-check-"));
    // The addresses it names are taken: a gateway would fail to listen, the check must not try.
    const udp = createSocket("udp4");
    await new Promise<void>((r) => udp.bind(0, "127.0.0.1", () => r()));
    const tcp = createServer();
    await new Promise<void>((r) => tcp.listen(0, "127.0.0.1", () => r()));
    const udpPort = udp.address().port;
    const tcpPort = (tcp.address() as { port: number }).port;
    try {
      writeFileSync(
        join(dir, "cxmpp.json"),
        JSON.stringify({
          listen: `127.0.0.1:${udpPort}`,
          domain: "iot.example.org",
          data_dir: "./state",
          metrics_listen: `127.0.0.1:${tcpPort}`,
          xmpp_service: "xmpp://127.0.0.1:5347",
          xmpp_secret: SECRET,
        }),
      );
      const r = await cxmpp(
        dir,
        ["gateway", "--check-config", "--config", "cxmpp.json", "--log-level", "debug"],
        {
          CXMPP_MAILBOX_TTL_S: "600",
        },
      );
      expect(r.stderr).toBe("cxmpp gateway --check-config: configuration ok\n");
      expect(r.status).toBe(0);
      expect(r.stdout).not.toContain(SECRET);
      const shown = JSON.parse(r.stdout) as Record<string, { value: unknown; source: string }>;
      expect(Object.keys(shown)).toEqual(Object.keys(CONFIG_KEYS));
      const file = `file ${join(dir, "cxmpp.json")}`;
      expect(shown.listen).toEqual({ value: `127.0.0.1:${udpPort}`, source: file });
      expect(shown.data_dir).toEqual({ value: join(dir, "state"), source: file });
      expect(shown.log_level).toEqual({ value: "debug", source: "flag --log-level" });
      expect(shown.mailbox_ttl_s).toEqual({ value: 600, source: "env CXMPP_MAILBOX_TTL_S" });
      expect(shown.xmpp_domain).toEqual({ value: "iot.example.org", source: "default" });
      expect(shown.xmpp_secret).toEqual({ value: "********", source: file });
      expect(shown.durability).toEqual({ value: "full", source: "default" });
      expect(shown.dtls_listen).toEqual({ value: "127.0.0.1:5684", source: "default" }); // listen's host
      expect(shown.allow_plain_coap).toEqual({ value: false, source: "default" });
      expect(existsSync(join(dir, "state"))).toBe(false);

      // From the environment, and inside a URL, a secret is masked as well.
      const env = await cxmpp(dir, ["gateway", "--check-config"], {
        CXMPP_XMPP_SERVICE: `xmpp://iot:${SECRET}@127.0.0.1:5347,xmpps://iot:${SECRET}@127.0.0.2:5223`,
        CXMPP_XMPP_SECRET: SECRET,
      });
      expect(env.status).toBe(0);
      expect(env.stdout + env.stderr).not.toContain(SECRET);
      const viaEnv = JSON.parse(env.stdout) as Record<string, { value: unknown; source: string }>;
      expect(viaEnv.xmpp_secret).toEqual({ value: "********", source: "env CXMPP_XMPP_SECRET" });
      expect(viaEnv.xmpp_service!.value).toBe(
        "xmpp://iot:********@127.0.0.1:5347,xmpps://iot:********@127.0.0.2:5223",
      );
    } finally {
      udp.close();
      tcp.close();
    }
  });

  it("a bad value or an unknown key: the ConfigError naming the key, exit 2, nothing on stdout", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cxmpp-check-bad-"));
    const bad = await cxmpp(dir, ["gateway", "--check-config", "--listen", "nowhere"]);
    expect(bad.status).toBe(2);
    expect(bad.stdout).toBe("");
    expect(bad.stderr).toContain(
      "cxmpp gateway --check-config: config: listen (flag --listen): expected HOST:PORT",
    );
    writeFileSync(join(dir, "cxmpp.json"), JSON.stringify({ xmpp_secret: SECRET, mailbox_tll_s: 5 }));
    const typo = await cxmpp(dir, ["gateway", "--check-config"]);
    expect(typo.status).toBe(2);
    expect(typo.stderr).toMatch(
      /mailbox_tll_s \(file .*cxmpp\.json\): unknown key; did you mean "mailbox_ttl_s"\?/,
    );
    expect(typo.stdout + typo.stderr).not.toContain(SECRET);
    const missing = await cxmpp(dir, ["gateway", "--check-config", "--config", "nope.json"]);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toContain("cannot read it: no such file");
  });
});
