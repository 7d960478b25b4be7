/**
 * The gateway's durable store (docs/PROTOCOL.md §4.1): migrations; a gateway restarted from its store
 * continues every session without a new connect, both codec tables intact; a full disk and a read-only
 * data directory give a clear error, never a lost acknowledged stanza.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { deserialize, serialize } from "node:v8";
import { describe, expect, it } from "vitest";
import { el, type XElement } from "../../codec/index.js";
import { attachGateway, type GatewayService } from "../../gateway/index.js";
import { MIGRATIONS, openDatabase, openStore, type Store, StoreError } from "../../gateway/store/index.js";
import { packEntry } from "../../gateway/store/session-store.js";
import { NodeClient } from "../../src/core/index.js";
import { createUdpEndpoint, nodeMac, systemClock, type UdpEndpoint } from "../../src/node/index.js";
import { scratch } from "../kit/scratch.js";
import { key } from "../kit/session-harness.js";
import { bodyOf } from "../kit/stanzas.js";
import { until } from "../kit/wait.js";

const DOMAIN = "iot.localhost";
const CLI = join(import.meta.dirname, "..", "..", "bin", "cxmpp.js");
const { root, cleanups } = scratch("cxmpp-store-");

const msg = (to: string, body: string): XElement =>
  el("jabber:client", "message", { to, type: "chat" }, el("jabber:client", "body", {}, body));
/** A reading that repeats strings, so later frames reference table entries made by earlier ones. */
const reading = (to: string, n: number): XElement =>
  el(
    "jabber:client",
    "message",
    { to, type: "chat" },
    el("jabber:client", "body", {}, `r${n}`),
    el(
      "urn:xmpp:iot:sensordata",
      "fields",
      { seqnr: String(n), done: "true" },
      el(
        "urn:xmpp:iot:sensordata",
        "node",
        { nodeId: "boiler-room-7" },
        el(
          "urn:xmpp:iot:sensordata",
          "timestamp",
          { value: "2026-11-27T08:00:00Z" },
          el("urn:xmpp:iot:sensordata", "numeric", {
            name: "temperature",
            momentary: "true",
            value: `${20 + (n % 7)}.5`,
            unit: "°C",
          }),
        ),
      ),
    ),
  );

interface Running {
  udp: UdpEndpoint;
  store: Store;
  service: GatewayService;
  outbound: XElement[];
  stop(): Promise<void>;
}

async function gateway(dir: string, port: number, setup?: (store: Store) => void): Promise<Running> {
  const store = openStore(dir);
  setup?.(store);
  const udp = await createUdpEndpoint({ host: "127.0.0.1", port, transmission: { ackTimeoutMs: 50 } });
  const outbound: XElement[] = [];
  const service = attachGateway(udp.endpoint, {
    store,
    domain: DOMAIN,
    clock: systemClock,
    outbound: (s) => outbound.push(s),
  });
  return {
    udp,
    store,
    service,
    outbound,
    async stop() {
      await udp.close();
      store.close();
    },
  };
}

async function node(
  identity: string,
  n: number,
  gatewayAddress: string,
): Promise<{ client: NodeClient; udp: UdpEndpoint; inbox: string[] }> {
  const udp = await createUdpEndpoint({
    host: "127.0.0.1",
    transmission: { ackTimeoutMs: 50, maxRetransmit: 4 },
  });
  cleanups.push(() => udp.close());
  const client = new NodeClient({
    endpoint: udp.endpoint,
    gateway: gatewayAddress as never,
    identity,
    key: key(n),
    mac: nodeMac,
    retryDelayMs: 100,
  });
  cleanups.push(() => client.close());
  const inbox: string[] = [];
  client.onStanza((s) => inbox.push(bodyOf(s) ?? s.name));
  return { client, udp, inbox };
}

const addDevices = (store: Store) => {
  store.devices.add({ identity: "sensor1", key: key(1), jid: `sensor1@${DOMAIN}`, peers: [] });
  store.devices.add({ identity: "actuator1", key: key(2), jid: `actuator1@${DOMAIN}`, peers: [] });
};

describe("store: schema", () => {
  it("migrates a new store to the latest version once, and refuses a store from a newer release", () => {
    const path = join(root, "schema", "cxmpp.db");
    const db = openDatabase(path);
    expect(db.pragma("user_version", { simple: true })).toBe(MIGRATIONS.length);
    expect(db.pragma("journal_mode", { simple: true })).toBe("wal");
    db.pragma(`user_version = ${MIGRATIONS.length + 1}`);
    db.close();
    expect(() => openDatabase(path)).toThrow(/newer than this cxmpp knows.*upgrade/);
  });

  it("a file that is not a database is a StoreError that says so", () => {
    const dir = join(root, "garbage");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "cxmpp.db"), "this is not sqlite".repeat(100));
    let error: unknown;
    try {
      openStore(dir);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(StoreError);
    expect((error as StoreError).message).toMatch(/not a cxmpp database/);
  });
});

describe("store: a restarted gateway", () => {
  it("continues every session without a new connect: uplink and downlink tables, mailbox and h intact", async () => {
    const dir = join(root, "restart");
    let gw = await gateway(dir, 0, addDevices);
    const port = Number(gw.udp.transport.address.split(":")[1]);
    const address = gw.udp.transport.address;
    const sensor = await node("sensor1", 1, address);
    const actuator = await node("actuator1", 2, address);
    await sensor.client.connect();
    await actuator.client.connect();
    // Before: 30 readings to the actuator (it polls), 10 out of the domain.
    for (let i = 0; i < 30; i++) await sensor.client.send(reading(`actuator1@${DOMAIN}`, i));
    for (let i = 0; i < 10; i++) await sensor.client.send(msg("alice@a.localhost", `out${i}`));
    await actuator.client.poll();
    await until(() => actuator.inbox.length === 30);
    // Five more wait in the mailbox, unsent, across the restart.
    for (let i = 30; i < 35; i++) await sensor.client.send(reading(`actuator1@${DOMAIN}`, i));
    const connectsBefore = gw.service.stats.connects;
    expect(connectsBefore).toBe(2);
    await gw.stop();

    gw = await gateway(dir, port);
    expect(gw.service.sessions.map((s) => s.identity).sort()).toEqual(["actuator1", "sensor1"]);
    expect(gw.service.session("sensor1")!.h).toBe(45);
    expect(gw.service.session("actuator1")!.mailbox.queued.length).toBe(5); // and the last frames in flight, unacknowledged
    // The nodes simply go on: their frames reference entries made before the restart.
    for (let i = 35; i < 60; i++) await sensor.client.send(reading(`actuator1@${DOMAIN}`, i));
    await actuator.client.poll();
    await until(() => actuator.inbox.length === 60);
    expect(actuator.inbox).toEqual(Array.from({ length: 60 }, (_, i) => `r${i}`));
    expect(gw.service.stats.connects).toBe(0); // no new connect
    expect(gw.service.stats.badFrames).toBe(0); // the restored uplink table decoded everything
    expect(gw.store.journal.outboxDepth).toBe(10);
    expect(gw.store.journal.outbox(0, 100).map((o) => bodyOf(o.stanza))).toEqual(
      Array.from({ length: 10 }, (_, i) => `out${i}`),
    );
    await gw.stop();
  });
});

/** Root-only mounts: a tiny tmpfs is a real full disk, a read-only bind mount a real read-only directory. */
function mount(...args: string[]): void {
  execFileSync("mount", args, { stdio: "pipe" });
}

describe("store: a full disk and a read-only data directory", () => {
  it("a full disk answers 5.03 and loses nothing acknowledged; with space again everything arrives once", async () => {
    const dir = join(root, "full");
    mkdirSync(dir, { recursive: true });
    mount("-t", "tmpfs", "-o", "size=8m", "tmpfs", dir);
    cleanups.push(() => void spawnSync("umount", ["-l", dir]));
    const gw = await gateway(dir, 0, addDevices);
    const sensor = await node("sensor1", 1, gw.udp.transport.address);
    await sensor.client.connect();
    // Fill the disk beside the store, leaving it almost no room.
    spawnSync("sh", ["-c", `dd if=/dev/zero of=${dir}/filler bs=4k count=4000 2>/dev/null; true`]);
    const acked: number[] = [];
    const sends = Array.from({ length: 200 }, (_, i) =>
      sensor.client.send(msg("alice@a.localhost", `m${i}-${"x".repeat(200)}`)).then(() => acked.push(i)),
    );
    await until(() => gw.service.stats.storeFailures > 0, 20_000);
    const ackedWhileFull = acked.length;
    expect(ackedWhileFull).toBeLessThan(200);
    // Every acknowledged stanza is in the store.
    expect(gw.store.journal.outbox(0, 1000).length).toBeGreaterThanOrEqual(ackedWhileFull);
    rmSync(join(dir, "filler"));
    await Promise.all(sends);
    const bodies = gw.store.journal.outbox(0, 1000).map((o) => bodyOf(o.stanza)!.split("-")[0]);
    expect(bodies).toEqual(Array.from({ length: 200 }, (_, i) => `m${i}`)); // once each, in order
    await gw.stop();
  });

  it("a read-only data directory: the gateway exits 2 naming the cause; openStore throws StoreError", async () => {
    const dir = join(root, "ro");
    const s = openStore(dir);
    s.close();
    mount("--bind", dir, dir);
    cleanups.push(() => void spawnSync("umount", ["-l", dir]));
    mount("-o", "remount,ro,bind", dir);
    expect(() => openStore(dir)).toThrow(StoreError);
    const r = spawnSync(process.execPath, [CLI, "gateway", "--data-dir", dir, "--listen", "127.0.0.1:0"], {
      encoding: "utf8",
      timeout: 20_000,
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/read-only|readonly/i);
  });
});

describe("store: migrations keep data", () => {
  it("a version-1 store is migrated to the latest with its outbox kept, and outbox ids are never reused", async () => {
    const { default: Database } = await import("better-sqlite3");
    const path = join(root, "v1", "cxmpp.db");
    mkdirSync(join(root, "v1"), { recursive: true });
    const old = new Database(path);
    old.exec(MIGRATIONS[0]!);
    old.pragma("user_version = 1");
    old.prepare("INSERT INTO outbox (stanza, queued_at) VALUES (?, ?)").run(Buffer.from([0x80]), 1);
    old.prepare("INSERT INTO outbox (stanza, queued_at) VALUES (?, ?)").run(Buffer.from([0x80]), 2);
    old.close();
    const db = openDatabase(path);
    expect(db.pragma("user_version", { simple: true })).toBe(MIGRATIONS.length);
    expect(db.prepare("SELECT id, queued_at FROM outbox ORDER BY id").all()).toEqual([
      { id: 1, queued_at: 1 },
      { id: 2, queued_at: 2 },
    ]);
    db.prepare("DELETE FROM outbox").run();
    const next = db
      .prepare("INSERT INTO outbox (stanza, queued_at) VALUES (?, ?)")
      .run(Buffer.from([0x80]), 3);
    expect(Number(next.lastInsertRowid)).toBe(3); // not 1 again
    db.close();
  });
});

describe("packEntry: table entries as V8 structured clones", () => {
  it("writes Latin-1 strings exactly as v8.serialize does, and everything else through it", () => {
    for (const n of [0, 1, 127, 128, 16_383, 16_384, 300_000]) {
      const text = "é".repeat(n);
      expect(packEntry(text).equals(serialize(text))).toBe(true);
    }
    const entries = [
      "€ two-byte",
      "a😀",
      { kind: "shape", ns: "urn:x", name: "y", qid: 3, attrs: [], aids: [] },
    ];
    for (const e of entries) expect(deserialize(packEntry(e as never))).toEqual(e);
  });
});

describe("SqliteJournal outbox: the rows the pump sends, kept as added", () => {
  const msg = (body: string) =>
    el("jabber:client", "message", { to: "a@b.example" }, el("jabber:client", "body", {}, body));
  const bodies = (items: { stanza: XElement }[]) => items.map((i) => bodyOf(i.stanza));

  it("serves added rows in order, forgets confirmed ones, and after a rolled-back batch reads the table", () => {
    const store = openStore(":memory:", { schedule: () => {} });
    const j = store.journal;
    const a = j.outboxAdd(msg("a"), 1);
    const b = j.outboxAdd(msg("b"), 2);
    j.outboxAdd(msg("c"), 3);
    store.batch.flush();
    expect(bodies(j.outbox(0, 2))).toEqual(["a", "b"]);
    expect(j.outbox(a, 10).map((i) => i.queuedAt)).toEqual([2, 3]);
    j.outboxRemoveUpTo(b);
    expect(bodies(j.outbox(0, 10))).toEqual(["c"]);
    store.batch.flush();
    // A batch that fails takes its rows with it; rows confirmed stay confirmed (deleted by the next).
    j.outboxAdd(msg("d"), 4);
    expect(bodies(j.outbox(0, 10))).toEqual(["c", "d"]);
    expect(() =>
      j.run(() => {
        throw new Error("disk full");
      }),
    ).toThrow();
    store.batch.flush();
    const rows = () => store.db.prepare("SELECT count(*) FROM outbox").pluck().get();
    expect(rows()).toBe(3); // a and b came back with the rollback
    expect(bodies(j.outbox(0, 10))).toEqual(["c"]);
    j.outboxRemoveUpTo(b + 1);
    expect(j.outbox(0, 10)).toEqual([]);
    const e = j.outboxAdd(msg("e"), 5);
    expect(rows()).toBe(1); // deleted in e's transaction
    expect(bodies(j.outbox(0, 10))).toEqual(["e"]);
    expect(bodies(j.outbox(b + 1, 10))).toEqual(["e"]);
    expect(j.outbox(e, 10)).toEqual([]);
    store.close();
  });
});

describe("SqliteJournal outbox: confirmed rows", () => {
  const msg = (body: string) =>
    el("jabber:client", "message", { to: "a@b.example" }, el("jabber:client", "body", {}, body));
  const rows = (store: Store) => store.db.prepare("SELECT count(*) FROM outbox").pluck().get() as number;

  it("are deleted with the next transaction (or at close), never counted or sent again meanwhile", () => {
    const dir = mkdtempSync(join(tmpdir(), "cxmpp-confirm-"));
    let store = openStore(dir, { schedule: () => {} });
    const ids = [1, 2, 3].map((i) => store.journal.outboxAdd(msg(`m${i}`), i));
    store.batch.flush();
    store.journal.outboxRemoveUpTo(ids[1]!);
    expect(store.batch.pending).toBe(false); // no transaction of its own
    expect(store.journal.outboxDepth).toBe(1);
    expect(store.journal.outbox(0, 10).map((o) => o.id)).toEqual([ids[2]]);
    expect(rows(store)).toBe(3);
    store.journal.saveHeader({
      identity: "n",
      id: 1,
      resume: new Uint8Array(8),
      peer: undefined,
      h: 0,
      delivered: 0,
      nextDseq: 1,
      wake: 0,
      lastSeen: 0,
      telemetry: 0,
    });
    store.batch.flush();
    expect(rows(store)).toBe(1);
    store.journal.outboxRemoveUpTo(ids[2]!);
    store.close();
    store = openStore(dir);
    expect(rows(store)).toBe(0);
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });
});

describe("store: a push outside a request", () => {
  it("a stanza from the network pushed to an observing node saves the session's next sequence number in the same commit", async () => {
    const { GatewayService } = await import("../../gateway/session/gateway-service.js");
    const { nodeMac: mac, cryptoRandom, wallClock } = await import("../../src/node/index.js");
    const dir = join(root, "push");
    const store = openStore(dir);
    addDevices(store);
    // A session whose node is connected (as after a restart): observed, so stanzas are pushed at once.
    store.journal.saveHeader({
      identity: "actuator1",
      id: 1,
      resume: new Uint8Array(8),
      peer: "127.0.0.1:40000",
      h: 0,
      delivered: 0,
      nextDseq: 1,
      wake: 0,
      lastSeen: wallClock.now(),
      telemetry: 0,
    });
    store.batch.flush();
    const pushed: string[] = [];
    const service = new GatewayService({
      devices: store.devices,
      journal: store.journal,
      domain: DOMAIN,
      mac,
      random: cryptoRandom,
      clock: wallClock,
      push: (path) => pushed.push(path) && 1,
      observed: () => true,
    });
    const device = store.devices.find("actuator1")!;
    service.deliverTo(device, {
      ...msg(`actuator1@${DOMAIN}`, "from the network"),
      attrs: [
        { ns: "", name: "from", value: "alice@a.localhost/x" },
        { ns: "", name: "to", value: `actuator1@${DOMAIN}` },
      ],
    });
    await service.committed();
    expect(pushed).toEqual(["d/1"]);
    const row = store.db.prepare("SELECT next_dseq FROM sessions WHERE identity = 'actuator1'").get() as {
      next_dseq: number;
    };
    const flying = store.db.prepare("SELECT seq FROM mailbox WHERE identity = 'actuator1'").all() as {
      seq: number;
    }[];
    expect(flying).toEqual([{ seq: 1 }]);
    expect(row.next_dseq).toBe(2); // was 1 before the fix: a restart would have given seq 1 twice
    store.close();
  });
});
