/**
 * deploy/cxmpp-gateway.service: systemd's own checker reads it as systemd would (unknown keys, bad
 * values, a missing binary), and its exposure score is kept low; the keys the deployment relies on
 * are checked on every machine, with or without systemd.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = join(import.meta.dirname, "..");
const UNIT = join(ROOT, "deploy", "cxmpp-gateway.service");
const text = readFileSync(UNIT, "utf8");
const ANALYZE = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"].find((p) => existsSync(p));
/** Where `npm install -g` puts the command on Debian (npm's global prefix /usr/local). */
const INSTALLED = "/usr/local/bin/cxmpp";

/** section → key → every value it is given, in order (systemd keys may repeat). */
function parseUnit(source: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const raw of source.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const section = /^\[(.+)\]$/.exec(line);
    if (section) {
      current = new Map();
      sections.set(section[1]!, current);
      continue;
    }
    const eq = line.indexOf("=");
    if (!current || eq < 0) throw new Error(`not a unit file line: ${raw}`);
    const key = line.slice(0, eq).trim();
    current.set(key, [...(current.get(key) ?? []), line.slice(eq + 1).trim()]);
  }
  return sections;
}

/**
 * The unit as it would be installed, with the command at a path that exists here (the checkout's
 * bin/cxmpp.js): `verify` checks that every Exec line names an executable file.
 */
function installable(): string {
  expect(text).toContain(INSTALLED);
  const dir = mkdtempSync(join(tmpdir(), "cxmpp-unit-"));
  const file = join(dir, "cxmpp-gateway.service");
  writeFileSync(file, text.replaceAll(INSTALLED, join(ROOT, "bin", "cxmpp.js")));
  return file;
}

describe("deploy/cxmpp-gateway.service", () => {
  it.skipIf(ANALYZE === undefined)(
    "systemd-analyze verify accepts it: exit 0 and not one warning about the unit",
    () => {
      const file = installable();
      const r = spawnSync(ANALYZE!, ["verify", file], { encoding: "utf8", timeout: 60_000 });
      const output = `${r.stdout}${r.stderr}`;
      expect(r.status, output).toBe(0);
      // verify exits 0 on unknown keys and bad values too, only warning: any line about the unit fails.
      const aboutUnit = output.split("\n").filter((l) => l.includes("cxmpp-gateway"));
      expect(aboutUnit).toEqual([]);

      // The check is real: a misspelt key in the same file is reported.
      const broken = file.replace(/\.service$/, "-broken.service");
      writeFileSync(broken, readFileSync(file, "utf8").replace("UMask=0077", "UMsk=0077"));
      const bad = spawnSync(ANALYZE!, ["verify", broken], { encoding: "utf8", timeout: 60_000 });
      expect(`${bad.stdout}${bad.stderr}`).toContain("Unknown key 'UMsk'");
    },
  );

  it.skipIf(ANALYZE === undefined)(
    "systemd-analyze security --offline rates its exposure at most 2.0 (OK)",
    () => {
      const r = spawnSync(ANALYZE!, ["security", "--offline=yes", "--no-pager", installable()], {
        encoding: "utf8",
        timeout: 60_000,
      });
      const score = /Overall exposure level for \S+: (\d+\.\d+)/.exec(r.stdout)?.[1];
      expect(score, `${r.stdout}${r.stderr}`).toBeDefined();
      expect(Number(score)).toBeLessThanOrEqual(2.0);
    },
  );

  it.skipIf(ANALYZE === undefined)(
    "the backup service and timer in docs/DEPLOY.md pass systemd-analyze verify without warnings",
    () => {
      const doc = readFileSync(join(ROOT, "docs", "DEPLOY.md"), "utf8");
      const dir = mkdtempSync(join(tmpdir(), "cxmpp-units-"));
      const files: string[] = [];
      for (const [, block] of doc.matchAll(/```ini\n([\s\S]*?)```/g)) {
        const name = /^# \/etc\/systemd\/system\/(\S+)$/m.exec(block!)?.[1];
        expect(name, block).toBeDefined();
        files.push(join(dir, name!));
        writeFileSync(files.at(-1)!, block!.replaceAll(INSTALLED, join(ROOT, "bin", "cxmpp.js")));
      }
      expect(files.map((f) => f.slice(dir.length + 1))).toEqual([
        "cxmpp-backup.service",
        "cxmpp-backup.timer",
      ]);
      const r = spawnSync(ANALYZE!, ["verify", ...files], { encoding: "utf8", timeout: 60_000 });
      const output = `${r.stdout}${r.stderr}`;
      expect(r.status, output).toBe(0);
      expect(output.split("\n").filter((l) => l.includes("cxmpp-backup"))).toEqual([]);
    },
  );

  it("has the keys the deployment relies on (structural check, runs with or without systemd)", () => {
    const unit = parseUnit(text);
    expect([...unit.keys()]).toEqual(["Unit", "Service", "Install"]);
    const service = unit.get("Service")!;
    const one = (key: string) => {
      const values = service.get(key);
      expect(values, key).toHaveLength(1);
      return values![0];
    };

    // Who it runs as, where its state and settings are.
    expect(service.has("DynamicUser") ? one("DynamicUser") : one("User")).toMatch(/^(yes|cxmpp)$/);
    expect(one("StateDirectory")).toBe("cxmpp");
    expect(one("StateDirectoryMode")).toBe("0700");
    expect(service.get("Environment")).toEqual([
      "CXMPP_CONFIG=/etc/cxmpp/cxmpp.json",
      "CXMPP_DATA_DIR=/var/lib/cxmpp",
    ]);
    expect(one("UMask")).toBe("0077");

    // The command is the package's, and the configuration is checked before every start.
    const bin = Object.keys(JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).bin as object);
    expect(bin).toEqual(["cxmpp"]);
    expect(one("ExecStart")).toBe(`${INSTALLED} gateway`);
    expect(one("ExecStartPre")).toBe(`${INSTALLED} gateway --check-config`);
    expect(one("Restart")).toBe("on-failure");
    expect(one("RestartPreventExitStatus")).toBe("2");
    expect(one("TimeoutStopSec")).toMatch(/^\d+s?$/);
    expect(Number(one("LimitNOFILE"))).toBeGreaterThanOrEqual(1024);

    // Hardening.
    for (const [key, value] of [
      ["ProtectSystem", "strict"],
      ["ProtectHome", "yes"],
      ["PrivateTmp", "yes"],
      ["PrivateDevices", "yes"],
      ["NoNewPrivileges", "yes"],
      ["RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"],
      ["CapabilityBoundingSet", ""],
      ["SystemCallFilter", "@system-service"],
    ] as const)
      expect(one(key), key).toBe(value);
    // V8's JIT needs writable and executable pages: node aborts under MemoryDenyWriteExecute=yes.
    expect(service.has("MemoryDenyWriteExecute")).toBe(false);

    expect(unit.get("Install")!.get("WantedBy")).toEqual(["multi-user.target"]);
  });
});
