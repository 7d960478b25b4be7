/** The `cxmpp` command line as a user meets it: real processes, real output, exit codes. */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { StatelessEncoder } from "../../codec/index.js";
import { parseXml } from "../../gateway/xml/stanza-xml.js";

const ROOT = join(import.meta.dirname, "..", "..");
const CLI = join(ROOT, "bin", "cxmpp.js");
const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8" });

describe("cxmpp decode", () => {
  const xml = "<message xmlns='jabber:client' to='juliet@example.com' type='chat'><body>Hi!</body></message>";
  const frame = new StatelessEncoder().encode(parseXml(xml)).bytes;
  const hex = Buffer.from(frame).toString("hex");

  it("shows a hex frame as CBOR diagnostic notation and as XML", () => {
    const r = run("decode", hex);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(`frame: ${frame.length} bytes`);
    expect(r.stdout).toMatch(/cbor: {2}\[1, \{/);
    expect(r.stdout).toContain(`xml:   ${xml}`);
  });

  it("reads binary and hex files", () => {
    const dir = mkdtempSync(join(tmpdir(), "cxmpp-decode-"));
    writeFileSync(join(dir, "f.bin"), frame);
    writeFileSync(join(dir, "f.hex"), `${hex}\n`);
    for (const f of ["f.bin", "f.hex"]) expect(run("decode", join(dir, f)).stdout).toContain(xml);
  });

  it("reports a broken frame with its CodecError and exit 1, bad arguments with exit 2", () => {
    const cut = run("decode", hex.slice(0, hex.length - 4));
    expect(cut.status).toBe(1);
    expect(cut.stderr).toMatch(/TRUNCATED at byte \d+/);
    const bad = run("decode", "not-hex-nor-file");
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain("neither hex nor a file");
  });

  it("explains a session frame that needs earlier frames", () => {
    const r = run("decode", "8121");
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("UNKNOWN_REF");
    expect(r.stderr).toContain("session frame");
  });
});

describe("cxmpp --help", () => {
  it("lists the commands and exits 0, an unknown command exits non-zero", () => {
    const help = run("--help");
    expect(help.status).toBe(0);
    expect(help.stdout).toContain("decode");
    expect(help.stdout).toContain("bench");
    expect(run("bench", "codec", "--help").stdout).toContain("--emit");
    expect(run("no-such-command").status).not.toBe(0);
  });
});

describe("README", () => {
  it("its code example runs and round-trips exactly", () => {
    const readme = readFileSync(join(ROOT, "README.md"), "utf8");
    const code = /```ts\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(code).toBeDefined();
    const dir = mkdtempSync(join(tmpdir(), "cxmpp-readme-"));
    const file = join(dir, "example.ts");
    writeFileSync(file, code!.replace("./codec/index.js", join(ROOT, "codec", "index.ts")));
    const out = execFileSync(process.execPath, ["--import", "tsx", file], { cwd: ROOT, encoding: "utf8" });
    expect(out).toMatch(/^\d+ bytes; exact$/m);
  });
});

describe("cxmpp gateway and provision: broken configuration", () => {
  const dir = mkdtempSync(join(tmpdir(), "cxmpp-badconfig-"));
  const at = (env: Record<string, string>, ...args: string[]) =>
    spawnSync(process.execPath, [CLI, ...args], {
      encoding: "utf8",
      cwd: dir,
      env: { ...process.env, CXMPP_DATA_DIR: join(dir, "data"), CXMPP_LISTEN: "127.0.0.1:0", ...env },
      timeout: 30_000,
    });

  it("a bad env value, an unknown file key, a missing secret: exit 2 and the key named, before listening", () => {
    const env = at({ CXMPP_MAILBOX_TTL_S: "abc" }, "gateway");
    expect(env.status).toBe(2);
    expect(env.stderr).toContain(
      'mailbox_ttl_s (env CXMPP_MAILBOX_TTL_S): expected an integer ≥ 1, got "abc"',
    );
    expect(env.stdout).not.toContain("listening");
    writeFileSync(join(dir, "typo.json"), JSON.stringify({ mailbox_tll_s: 5 }));
    const file = at({}, "gateway", "--config", "typo.json");
    expect(file.status).toBe(2);
    expect(file.stderr).toMatch(
      /mailbox_tll_s \(file .*typo\.json\): unknown key; did you mean "mailbox_ttl_s"\?/,
    );
    const secret = at({ CXMPP_XMPP_SERVICE: "xmpp://127.0.0.1:1" }, "gateway");
    expect(secret.status).toBe(2);
    expect(secret.stderr).toContain("xmpp_secret");
    // provision reads the same settings the same way
    const provision = at({ CXMPP_DOMAIN: "not a domain" }, "provision", "add", "x1");
    expect(provision.status).toBe(2);
    expect(provision.stderr).toContain("domain (env CXMPP_DOMAIN)");
  });
});
