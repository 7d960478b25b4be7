/**
 * The command line over real UDP, as an operator and a node builder use it: provision two devices,
 * start `cxmpp gateway`, run one node, send to it from the other, see the stanza printed; then revoke.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { freeUdpPort } from "../../bench/child-process.js";
import { until } from "../kit/wait.js";

const ROOT = join(import.meta.dirname, "..", "..");
const CLI = join(ROOT, "bin", "cxmpp.js");
const dir = mkdtempSync(join(tmpdir(), "cxmpp-cli-udp-"));
// Plain CoAP only: devices that may use it, and no DTLS listener (none holds the coaps port 5684).
const env = { ...process.env, CXMPP_DATA_DIR: join(dir, "data"), CXMPP_DTLS_LISTEN: "off" };
const children: ChildProcess[] = [];

const run = (...args: string[]) =>
  spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", env, cwd: dir });

function start(...args: string[]): { child: ChildProcess; out: () => string; err: () => string } {
  const child = spawn(process.execPath, [CLI, ...args], { env, cwd: dir });
  children.push(child);
  let out = "";
  let err = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (err += d));
  return { child, out: () => out, err: () => err };
}

afterAll(() => {
  for (const c of children) c.kill("SIGKILL");
});

describe("cxmpp gateway and nodes over real UDP", () => {
  it("provision, gateway, node run, node send: the stanza arrives with `from` stamped", async () => {
    const port = await freeUdpPort();
    const gateway = `127.0.0.1:${port}`;
    expect(run("provision", "add", "sensor1", "--gateway", gateway, "--out", "sensor1.json").status).toBe(0);
    expect(run("provision", "add", "actuator1", "--gateway", gateway, "--out", "actuator1.json").status).toBe(
      0,
    );
    const show = JSON.parse(run("provision", "show", "sensor1", "--json").stdout) as Record<string, unknown>;
    expect(show.jid).toBe("sensor1@iot.localhost");
    expect(show.key_hex).toMatch(/^[0-9a-f]{32}$/);
    expect(JSON.parse(readFileSync(join(dir, "sensor1.json"), "utf8")).key_hex).toBe(show.key_hex);

    const gw = start("gateway", "--listen", gateway);
    await until(() => gw.out().includes("listening"), 20_000);
    const actuator = start("node", "run", "--device", "actuator1.json", "--poll", "0.2");
    await until(() => actuator.err().includes("connected as actuator1@iot.localhost"), 20_000);

    const sent = run(
      "node",
      "send",
      "--device",
      "sensor1.json",
      "--to",
      "actuator1@iot.localhost",
      "--body",
      "switch on",
    );
    expect(sent.stderr).toBe("");
    expect(sent.status).toBe(0);
    await until(() => actuator.out().includes("switch on"), 10_000);
    expect(actuator.out().trim()).toBe(
      "<message xmlns='jabber:client' from='sensor1@iot.localhost/cxmpp' to='actuator1@iot.localhost' type='chat'><body>switch on</body></message>",
    );

    // Revoked: refused at once, without restarting the gateway.
    expect(run("provision", "revoke", "sensor1").status).toBe(0);
    const refused = run(
      "node",
      "send",
      "--device",
      "sensor1.json",
      "--to",
      "actuator1@iot.localhost",
      "--body",
      "x",
      "--timeout",
      "5",
    );
    expect(refused.status).toBe(1);
    expect(refused.stderr).toContain("4.03");

    gw.child.kill("SIGTERM");
    await until(() => gw.out().includes("stopped"), 10_000);
  }, 90_000);

  it("a wrong key is refused with a clear message and exit 1; a broken device file with exit 1", async () => {
    const file = JSON.parse(readFileSync(join(dir, "actuator1.json"), "utf8")) as Record<string, string>;
    writeFileSync(join(dir, "bad-key.json"), JSON.stringify({ ...file, key_hex: "00".repeat(16) }));
    const port = await freeUdpPort();
    writeFileSync(
      join(dir, "bad-key.json"),
      JSON.stringify({ ...file, key_hex: "00".repeat(16), gateway: `127.0.0.1:${port}` }),
    );
    const gw = start("gateway", "--listen", `127.0.0.1:${port}`);
    await until(() => gw.out().includes("listening"), 20_000);
    const r = run(
      "node",
      "send",
      "--device",
      "bad-key.json",
      "--to",
      "x@iot.localhost",
      "--body",
      "x",
      "--timeout",
      "5",
    );
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/connect refused: 4\.03/);
    writeFileSync(join(dir, "broken.json"), "{ not json");
    const b = run("node", "send", "--device", "broken.json", "--to", "x@iot.localhost", "--body", "x");
    expect(b.status).toBe(1);
    expect(b.stderr).toContain("cannot read device file");
    gw.child.kill("SIGTERM");
  }, 60_000);
});
