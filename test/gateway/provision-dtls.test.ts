/**
 * Provisioning for DTLS (issue 10): binary keys and text keys (`--psk`), DTLS-only devices (the default
 * when `dtls_listen` is on), the device file's gateway URI (coaps:// or coap://, a bare HOST:PORT of an
 * older file read as coap), and the `dtls_only` flag through the store, its migration and the devices
 * JSON file. The commands run compiled (bin/cxmpp.js → dist/): `npm run build` first.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { cleanEnv } from "../../bench/child-process.js";
import { encodeDeviceFile, parseGatewayUri, readDeviceFile } from "../../gateway/data-dir.js";
import { DeviceConfigError, MemoryDevices, parseDevice } from "../../gateway/devices.js";
import { MIGRATIONS, openDatabase, openStore } from "../../gateway/store/index.js";
import { CLI } from "../kit/gateway-process.js";

interface Run {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** `cxmpp …` in `cwd` without the caller's CXMPP_* settings (the data directory is `cwd/data`). */
function cxmpp(cwd: string, args: readonly string[], env: Record<string, string> = {}): Run {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    cwd,
    encoding: "utf8",
    env: cleanEnv({ CXMPP_DATA_DIR: join(cwd, "data"), ...env }),
    timeout: 30_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const fresh = () => mkdtempSync(join(tmpdir(), "cxmpp-provision-dtls-"));
const json = (r: Run) => JSON.parse(r.stdout) as Record<string, unknown>;
const OFF = { CXMPP_DTLS_LISTEN: "off" };

describe("provision add: DTLS-only by default when DTLS is configured", () => {
  it("with the defaults (dtls_listen on): DTLS-only, the device file says coaps://127.0.0.1:5684", () => {
    const dir = fresh();
    const add = cxmpp(dir, ["provision", "add", "sensor1", "--out", "sensor1.json"]);
    expect(add.stderr).toBe("");
    expect(add.status).toBe(0);
    expect(add.stdout).toContain("DTLS only");
    const file = JSON.parse(readFileSync(join(dir, "sensor1.json"), "utf8")) as Record<string, unknown>;
    expect(file.gateway).toBe("coaps://127.0.0.1:5684");
    expect(readDeviceFile(join(dir, "sensor1.json")).gateway).toBe("coaps://127.0.0.1:5684");

    const show = json(cxmpp(dir, ["provision", "show", "sensor1", "--json"]));
    expect(show).toMatchObject({
      identity: "sensor1",
      jid: "sensor1@iot.localhost",
      dtls_only: true,
      key_hex: file.key_hex,
      gateway: "coaps://127.0.0.1:5684",
    });
    expect(show.key_hex).toMatch(/^[0-9a-f]{32}$/); // 16 random bytes

    // dtls_listen follows listen's host; --listen is no provision flag, so through the environment.
    cxmpp(dir, ["provision", "add", "sensor2", "--out", "sensor2.cbor"], { CXMPP_LISTEN: "127.0.0.9:5683" });
    expect(readDeviceFile(join(dir, "sensor2.cbor")).gateway).toBe("coaps://127.0.0.9:5684");
  });

  it("with dtls_listen off: plain, coap:// the listen address; --no-dtls-only and --dtls-only override", () => {
    const dir = fresh();
    expect(cxmpp(dir, ["provision", "add", "plain1", "--out", "plain1.json"], OFF).status).toBe(0);
    expect(readDeviceFile(join(dir, "plain1.json")).gateway).toBe("coap://127.0.0.1:5683");
    expect(json(cxmpp(dir, ["provision", "show", "plain1", "--json"], OFF))).toMatchObject({
      dtls_only: false,
      gateway: "coap://127.0.0.1:5683",
    });

    // DTLS on, but this device may use plain CoAP: its file points at plain CoAP.
    const mixed = cxmpp(dir, ["provision", "add", "mixed1", "--no-dtls-only", "--out", "mixed1.json"]);
    expect(mixed.status).toBe(0);
    expect(mixed.stdout).not.toContain("DTLS only");
    expect(readDeviceFile(join(dir, "mixed1.json")).gateway).toBe("coap://127.0.0.1:5683");

    // DTLS-only asked for while DTLS is off: refused (exit 2, nothing registered) unless --gateway says where.
    const nowhere = cxmpp(dir, ["provision", "add", "strict1", "--dtls-only"], OFF);
    expect(nowhere.status).toBe(2);
    expect(nowhere.stderr).toContain(
      "the device is DTLS-only but DTLS is off (dtls_listen from env CXMPP_DTLS_LISTEN)",
    );
    expect(cxmpp(dir, ["provision", "show", "strict1"], OFF).status).toBe(1);
    const given = cxmpp(
      dir,
      [
        "provision",
        "add",
        "strict1",
        "--dtls-only",
        "--gateway",
        "gw.example:15684",
        "--out",
        "strict1.json",
      ],
      OFF,
    );
    expect(given.status).toBe(0);
    expect(readDeviceFile(join(dir, "strict1.json")).gateway).toBe("coaps://gw.example:15684");
    // …and `show` of that device, with DTLS still off and no --gateway: no address reaches it.
    expect(json(cxmpp(dir, ["provision", "show", "strict1", "--json"], OFF)).gateway).toBeNull();

    const list = JSON.parse(cxmpp(dir, ["provision", "list", "--json"]).stdout) as Record<string, unknown>[];
    expect(Object.fromEntries(list.map((d) => [d.identity, d.dtls_only]))).toEqual({
      plain1: false,
      mixed1: false,
      strict1: true,
    });
    const text = cxmpp(dir, ["provision", "list"]).stdout.trim().split("\n");
    expect(text).toContain("strict1\tstrict1@iot.localhost\tactive\tdtls-only");
    expect(text).toContain("plain1\tplain1@iot.localhost\tactive\tcoap-or-dtls");
  });

  it("--gateway: a bare HOST:PORT takes the device's scheme; a coap:// one for a DTLS-only device is refused", () => {
    const dir = fresh();
    const add = (name: string, ...args: string[]) =>
      cxmpp(dir, ["provision", "add", name, "--out", `${name}.cbor`, ...args]);
    expect(add("a1", "--gateway", "[fd00::1]:5684").status).toBe(0);
    expect(readDeviceFile(join(dir, "a1.cbor")).gateway).toBe("coaps://[fd00::1]:5684");
    expect(add("a2", "--gateway", "coaps://[fd00::1]").status).toBe(0);
    expect(readDeviceFile(join(dir, "a2.cbor")).gateway).toBe("coaps://[fd00::1]:5684");
    expect(add("a3", "--gateway", "10.0.0.1:5683", "--no-dtls-only").status).toBe(0);
    expect(readDeviceFile(join(dir, "a3.cbor")).gateway).toBe("coap://10.0.0.1:5683");
    // A device that may use either can still be pointed at coaps.
    expect(add("a4", "--gateway", "coaps://10.0.0.1:5684", "--no-dtls-only").status).toBe(0);
    expect(readDeviceFile(join(dir, "a4.cbor")).gateway).toBe("coaps://10.0.0.1:5684");

    const plain = add("a5", "--gateway", "coap://10.0.0.1:5683");
    expect(plain.status).toBe(2);
    expect(plain.stderr).toContain("the device is DTLS-only, which the gateway refuses over plain coap://");
    for (const bad of ["http://10.0.0.1:80", "10.0.0.1", "coaps://10.0.0.1:0", "coaps://10.0.0.1:5684/x"]) {
      const r = add("a6", "--gateway", bad);
      expect(r.status, bad).toBe(2);
      expect(r.stderr, bad).toContain(`gateway address ${JSON.stringify(bad)}`);
    }
    expect(cxmpp(dir, ["provision", "show", "a6"]).status).toBe(1); // nothing registered
  });
});

describe("provision set: an existing device moves to DTLS (or back to a trusted plain link)", () => {
  it("--dtls-only flips the stored flag and --out writes the coaps:// device file; --no-dtls-only undoes it", () => {
    const dir = fresh();
    expect(cxmpp(dir, ["provision", "add", "old1", "--no-dtls-only", "--out", "old1.json"]).status).toBe(0);
    expect(JSON.parse(readFileSync(join(dir, "old1.json"), "utf8")).gateway).toBe("coap://127.0.0.1:5683");
    const key = json(cxmpp(dir, ["provision", "show", "old1", "--json"])).key_hex;

    const set = cxmpp(dir, ["provision", "set", "old1", "--dtls-only", "--out", "old1.json"]);
    expect(set.stderr).toBe("");
    expect(set.status).toBe(0);
    expect(set.stdout).toContain("DTLS only");
    const file = JSON.parse(readFileSync(join(dir, "old1.json"), "utf8")) as Record<string, unknown>;
    expect(file).toMatchObject({ gateway: "coaps://127.0.0.1:5684", identity: "old1", key_hex: key });
    expect(json(cxmpp(dir, ["provision", "show", "old1", "--json"]))).toMatchObject({ dtls_only: true });

    const back = cxmpp(dir, ["provision", "set", "old1", "--no-dtls-only"]);
    expect(back.status).toBe(0);
    expect(back.stdout).toContain("coap://127.0.0.1:5683");
    expect(json(cxmpp(dir, ["provision", "show", "old1", "--json"]))).toMatchObject({ dtls_only: false });
  });

  it("says what is wrong: nothing to change (exit 2), no such device (exit 1)", () => {
    const dir = fresh();
    expect(cxmpp(dir, ["provision", "add", "dev1"]).status).toBe(0);
    const none = cxmpp(dir, ["provision", "set", "dev1"]);
    expect(none.status).toBe(2);
    expect(none.stderr).toContain("--dtls-only or --no-dtls-only");
    const missing = cxmpp(dir, ["provision", "set", "nobody", "--dtls-only"]);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toContain("no device named 'nobody'");
  });
});

describe("provision add --allow", () => {
  it("takes bare JIDs, also a domain alone (a pubsub service); refuses a full JID or nonsense, exit 2", () => {
    const dir = fresh();
    const ok = cxmpp(dir, [
      "provision",
      "add",
      "s1",
      "--allow",
      "alice@example.org",
      "--allow",
      "pubsub.example.org",
    ]);
    expect(ok.stderr).toBe("");
    expect(ok.status).toBe(0);
    expect(json(cxmpp(dir, ["provision", "show", "s1", "--json"])).peers).toEqual([
      "alice@example.org",
      "pubsub.example.org",
    ]);
    for (const bad of ["alice@example.org/phone", "a@b@c", "two words"]) {
      const r = cxmpp(dir, ["provision", "add", `x${bad.length}`, "--allow", bad]);
      expect(r.status).toBe(2);
      expect(r.stderr).toContain("is not a bare JID (name@domain, or a domain)");
    }
  });
});

describe("provision add --psk: a text key for peers that take only ASCII keys", () => {
  it("uses the text's bytes as the key, in the store, the device file (CBOR and JSON) and show", () => {
    const dir = fresh();
    const psk = "secretPSK-0123456789 ~!";
    const hex = Buffer.from(psk, "utf8").toString("hex");
    expect(cxmpp(dir, ["provision", "add", "ascii1", "--psk", psk, "--out", "ascii1.cbor"]).status).toBe(0);
    expect(readDeviceFile(join(dir, "ascii1.cbor")).key_hex).toBe(hex);
    const show = json(cxmpp(dir, ["provision", "show", "ascii1", "--json"]));
    expect(show).toMatchObject({ identity: "ascii1", key_hex: hex, dtls_only: true });
    const store = openStore(join(dir, "data"));
    try {
      expect(Buffer.from(store.devices.find("ascii1")!.key).toString("utf8")).toBe(psk);
    } finally {
      store.close();
    }
    // 16 and 64 bytes are the bounds.
    expect(cxmpp(dir, ["provision", "add", "ascii2", "--psk", "x".repeat(16)]).status).toBe(0);
    expect(cxmpp(dir, ["provision", "add", "ascii3", "--psk", "y".repeat(64)]).status).toBe(0);
  });

  it("refuses too short, too long, non-ASCII and control characters with exit 2, never echoing the key", () => {
    const dir = fresh();
    for (const [psk, why] of [
      ["short-key-15byt", "it has 15 bytes"],
      ["z".repeat(65), "it has 65 bytes"],
      ["ééééééééééééééééé", "not printable ASCII"],
      ["tab\there-and-more-text", "not printable ASCII"],
    ] as const) {
      const r = cxmpp(dir, ["provision", "add", "bad1", "--psk", psk]);
      expect(r.status, psk).toBe(2);
      expect(r.stderr, psk).toContain("--psk must be 16 to 64 printable ASCII characters");
      expect(r.stderr, psk).toContain(why);
      expect(r.stderr + r.stdout, psk).not.toContain(psk);
    }
    expect(cxmpp(dir, ["provision", "show", "bad1"]).status).toBe(1); // nothing registered
  });
});

describe("parseGatewayUri", () => {
  it("reads coaps://, coap:// and a bare HOST:PORT (plain CoAP, as files before DTLS wrote it)", () => {
    expect(parseGatewayUri("coaps://127.0.0.1:5684")).toEqual({
      scheme: "coaps",
      host: "127.0.0.1",
      port: 5684,
    });
    expect(parseGatewayUri("coap://gw.example:1")).toEqual({ scheme: "coap", host: "gw.example", port: 1 });
    expect(parseGatewayUri("COAPS://[fd00::1]:5684/")).toEqual({
      scheme: "coaps",
      host: "fd00::1",
      port: 5684,
    });
    expect(parseGatewayUri("127.0.0.1:5683")).toEqual({ scheme: "coap", host: "127.0.0.1", port: 5683 });
    expect(parseGatewayUri("[::1]:5683")).toEqual({ scheme: "coap", host: "::1", port: 5683 });
    // The port of a URI may be left out: the scheme's default (RFC 7252 §6.1, §6.2).
    expect(parseGatewayUri("coaps://[::1]")).toEqual({ scheme: "coaps", host: "::1", port: 5684 });
    expect(parseGatewayUri("coap://h")).toEqual({ scheme: "coap", host: "h", port: 5683 });
  });

  it("refuses anything else with a DeviceConfigError that says what is accepted", () => {
    for (const bad of [
      "",
      "h",
      "::1:5683",
      "coap://::1:5683",
      "h:0",
      "h:65536",
      "coaps://h:1/path",
      "coaps://user@h:1",
      "coap+tcp://h:1",
      "http://h:1",
    ]) {
      expect(() => parseGatewayUri(bad), bad).toThrow(DeviceConfigError);
    }
    expect(() => parseGatewayUri("http://h:1")).toThrow(
      "the scheme must be coap:// or coaps://, not http://",
    );
    expect(() => parseGatewayUri("h")).toThrow(
      'gateway address "h": expected coaps://HOST:PORT, coap://HOST:PORT or HOST:PORT',
    );
  });

  it("device files written before DTLS (a bare HOST:PORT) are still read, CBOR and JSON", () => {
    const dir = fresh();
    const old = {
      gateway: "127.0.0.1:5683",
      identity: "old1",
      key_hex: "00112233445566778899aabbccddeeff",
      jid: "old1@iot.localhost",
      dictionary: "v1",
    };
    writeFileSync(join(dir, "old1.json"), JSON.stringify(old));
    writeFileSync(join(dir, "old1.cbor"), encodeDeviceFile(old));
    for (const f of ["old1.json", "old1.cbor"]) {
      const d = readDeviceFile(join(dir, f));
      expect(d).toEqual(old);
      expect(parseGatewayUri(d.gateway)).toEqual({ scheme: "coap", host: "127.0.0.1", port: 5683 });
    }
    writeFileSync(join(dir, "bad.json"), JSON.stringify({ ...old, gateway: "ftp://h:1" }));
    expect(() => readDeviceFile(join(dir, "bad.json"))).toThrow(/bad\.json\.gateway: .*not ftp:\/\//);
  });
});

describe("dtls_only in the store and the devices file", () => {
  const device = { identity: "d1", key: new Uint8Array(16).fill(7), jid: "d1@x.example", peers: [] };

  it("is stored, read back after reopening, and seen by another connection", () => {
    const data = join(fresh(), "data");
    const a = openStore(data);
    a.devices.add({ ...device, dtlsOnly: true });
    a.devices.add({ ...device, identity: "d2", jid: "d2@x.example" });
    const b = openStore(data);
    try {
      expect(b.devices.find("d1")?.dtlsOnly).toBe(true);
      expect(b.devices.find("d2")?.dtlsOnly).toBeUndefined();
      b.devices.add({ ...device, identity: "d3", jid: "d3@x.example", dtlsOnly: true });
      expect(a.devices.find("d3")?.dtlsOnly).toBe(true); // the running gateway's connection sees it
    } finally {
      a.close();
      b.close();
    }
  });

  it("a store of the release before (schema 3) gains the column; its devices keep plain CoAP", () => {
    const path = join(fresh(), "old.db");
    const old = new Database(path);
    for (const m of MIGRATIONS.slice(0, 3)) old.exec(m);
    old.pragma("user_version = 3");
    old
      .prepare(
        "INSERT INTO devices (identity, jid, key, peers, revoked, created_at) VALUES (?, ?, ?, ?, 0, 0)",
      )
      .run("old1", "old1@x.example", Buffer.alloc(16, 1), "[]");
    old.close();
    const db = openDatabase(path);
    try {
      expect(db.pragma("user_version", { simple: true })).toBe(MIGRATIONS.length);
      expect(db.prepare("SELECT dtls_only FROM devices WHERE identity = 'old1'").pluck().get()).toBe(0);
    } finally {
      db.close();
    }
  });

  it('the devices JSON file accepts "dtls_only": true and refuses a value that is not a boolean', () => {
    const entry = { identity: "d1", key_hex: "07".repeat(16), jid: "d1@x.example" };
    expect(parseDevice({ ...entry, dtls_only: true }, "e").dtlsOnly).toBe(true);
    expect(parseDevice({ ...entry, dtls_only: false }, "e").dtlsOnly).toBeUndefined();
    expect(parseDevice(entry, "e").dtlsOnly).toBeUndefined();
    expect(() => parseDevice({ ...entry, dtls_only: "yes" }, "devices.json[0]")).toThrow(
      "devices.json[0].dtls_only: expected true or false",
    );
    const path = join(fresh(), "devices.json");
    writeFileSync(path, JSON.stringify([{ ...entry, dtls_only: true }]));
    expect(MemoryDevices.fromFile(path).find("d1")?.dtlsOnly).toBe(true);
  });
});
