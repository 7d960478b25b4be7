/**
 * One gateway per data directory: the gateway.pid lock against live processes, dead ones, files from an
 * earlier boot, garbage, and processes racing for it.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { DataDirLockedError, isDataDirLocked, LOCK_FILE, lockDataDir } from "../../gateway/data-dir-lock.js";

const ROOT = join(import.meta.dirname, "..", "..");
const LOCK_MODULE = join(ROOT, "gateway", "data-dir-lock.ts");
const fresh = () => mkdtempSync(join(tmpdir(), "cxmpp-lock-"));
const bootId = readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();

const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) c.kill("SIGKILL");
});

/** A process that is alive until killed (the holder of a lock file we write for it). */
function liveProcess(): ChildProcess {
  const child = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], { stdio: "ignore" });
  children.push(child);
  return child;
}

/** A pid that belonged to a process which has exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], {
    encoding: "utf8",
  });
  return Number(r.stdout);
}

describe("lockDataDir", () => {
  it("creates gateway.pid (0600) with our pid, refuses a second lock, and removes it on release", () => {
    const dir = join(fresh(), "data");
    const lock = lockDataDir(dir);
    expect(lock.path).toBe(join(dir, LOCK_FILE));
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(lock.path).mode & 0o777).toBe(0o600);
    expect(readFileSync(lock.path, "utf8")).toBe(`${process.pid}\n${bootId}\n`);
    expect(isDataDirLocked(dir)).toBe(process.pid);

    // Two gateways in one process (embedders, tests) are as wrong as in two.
    expect(() => lockDataDir(dir)).toThrow(DataDirLockedError);
    lock.release();
    expect(existsSync(lock.path)).toBe(false);
    expect(isDataDirLocked(dir)).toBeUndefined();
    lock.release(); // twice is harmless
    lockDataDir(dir).release();
  });

  it("refuses a directory a live process holds, naming its pid", async () => {
    const dir = fresh();
    const holder = liveProcess();
    writeFileSync(join(dir, LOCK_FILE), `${holder.pid}\n${bootId}\n`);
    expect(isDataDirLocked(dir)).toBe(holder.pid);
    let error: unknown;
    try {
      lockDataDir(dir);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(DataDirLockedError);
    expect((error as DataDirLockedError).pid).toBe(holder.pid);
    expect((error as Error).message).toContain(`in use by another cxmpp gateway (pid ${holder.pid}`);
    expect((error as Error).message).toContain("stop that gateway first");
    // The holder's file is left alone.
    expect(readFileSync(join(dir, LOCK_FILE), "utf8")).toBe(`${holder.pid}\n${bootId}\n`);

    holder.kill("SIGKILL");
    await new Promise((resolve) => holder.once("exit", resolve));
    expect(isDataDirLocked(dir)).toBeUndefined();
    const lock = lockDataDir(dir);
    expect(readFileSync(lock.path, "utf8")).toBe(`${process.pid}\n${bootId}\n`);
    lock.release();
  });

  it("takes over a stale file: a dead pid, an earlier boot, our own pid from a former life, garbage", () => {
    const holder = liveProcess();
    const stale = {
      "dead pid": `${deadPid()}\n${bootId}\n`,
      "dead pid, file without boot id": `${deadPid()}\n`,
      "live pid but written before the last reboot": `${holder.pid}\n00000000-0000-0000-0000-000000000000\n`,
      "our own pid, not locked by us": `${process.pid}\n${bootId}\n`,
      "empty (crash between create and write)": "",
      garbage: "not a pid\n",
    };
    for (const [what, content] of Object.entries(stale)) {
      const dir = fresh();
      writeFileSync(join(dir, LOCK_FILE), content);
      expect(isDataDirLocked(dir), what).toBeUndefined();
      const lock = lockDataDir(dir);
      expect(readFileSync(lock.path, "utf8"), what).toBe(`${process.pid}\n${bootId}\n`);
      expect(isDataDirLocked(dir), what).toBe(process.pid);
      lock.release();
    }
  });

  it("release leaves a lock that another process took over alone", () => {
    const dir = fresh();
    const lock = lockDataDir(dir);
    const other = liveProcess();
    writeFileSync(lock.path, `${other.pid}\n${bootId}\n`);
    lock.release();
    expect(isDataDirLocked(dir)).toBe(other.pid);
  });

  it("of 6 processes racing for a directory, exactly one wins and the others name it: 60 rounds, every other one over a stale gateway.pid", async () => {
    // Long-lived racers, so that a round costs a few milliseconds, not a process start: each line on
    // stdin is a directory and the instant to lock it; each keeps what it won until the end.
    const script = `
      import { createInterface } from "node:readline";
      import { lockDataDir } from ${JSON.stringify(LOCK_MODULE)};
      process.stdout.write("ready\\n");
      createInterface({ input: process.stdin }).on("line", (line) => {
        const [at, dir] = JSON.parse(line);
        while (Date.now() < at); // all six start at once and compete for the CPUs: preempted mid-lock
        try {
          lockDataDir(dir);
          process.stdout.write("won " + process.pid + "\\n");
        } catch (e) {
          process.stdout.write("lost " + e.pid + "\\n");
        }
      });
    `;
    const racers = Array.from({ length: 6 }, () => {
      const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
        cwd: ROOT,
        stdio: ["pipe", "pipe", "inherit"],
      });
      children.push(child);
      let lines: string[] = [];
      let rest = "";
      child.stdout!.setEncoding("utf8").on("data", (d: string) => {
        const parts = (rest + d).split("\n");
        rest = parts.pop()!;
        lines = [...lines, ...parts];
      });
      return { child, lines: () => lines };
    });
    const until = async (what: () => boolean) => {
      const end = Date.now() + 20_000;
      while (!what()) {
        if (Date.now() > end)
          throw new Error(`racers: ${racers.map((r) => r.lines().join(",")).join(" | ")}`);
        await new Promise((r) => setTimeout(r, 5));
      }
    };
    await until(() => racers.every((r) => r.lines()[0] === "ready"));
    const stalePid = deadPid();
    try {
      for (let round = 1; round <= 60; round++) {
        const dir = fresh();
        if (round % 2 === 0) writeFileSync(join(dir, LOCK_FILE), `${stalePid}\n${bootId}\n`);
        const at = Date.now() + 30;
        for (const r of racers) r.child.stdin!.write(`${JSON.stringify([at, dir])}\n`);
        await until(() => racers.every((r) => r.lines().length > round));
        const results = racers.map((r) => r.lines()[round]!);
        const winners = results.filter((r) => r.startsWith("won"));
        expect(winners, `round ${round}: ${results.join(", ")}`).toHaveLength(1);
        const winner = winners[0]!.slice(4);
        expect(
          results.filter((r) => r === `lost ${winner}`),
          `round ${round}`,
        ).toHaveLength(5);
        expect(String(isDataDirLocked(dir))).toBe(winner);
        expect(readdirSync(dir), `round ${round}`).toEqual([LOCK_FILE]); // no draft or takeover file left
      }
    } finally {
      for (const r of racers) r.child.stdin!.end();
    }
  }, 60_000);
});
