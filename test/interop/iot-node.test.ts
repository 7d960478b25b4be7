/**
 * XMPP's IoT vocabulary end to end, node side (issue 12): `cxmpp node run --state` answering slixmpp's
 * xep_0323 readouts and xep_0325 control from its state file, awake and sleepy; `node report` (a
 * XEP-0323 fields message), `node publish` (XEP-0060 into Prosody's pubsub service) and `node send
 * --xml` (any stanza; an iq waits for its reply). Everything real: a `cxmpp gateway` process linked to
 * Prosody 0.12 as the XEP-0114 component iot.localhost, slixmpp as bob, the nodes as `cxmpp node`
 * processes over DTLS.
 *
 * Prosody listens on 127.0.0.41 only, without s2s, so this file runs beside the other interop files.
 * Its pubsub service lets only pub1 create nodes (`admins`, scoped to the component), so pub2's
 * publish to a new node is refused.
 */
import { readFileSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseXml } from "../../gateway/xml/stanza-xml.js";
import { parseFields } from "../../src/core/iot/sensordata.js";
import {
  attr,
  type CliProcess,
  child,
  cleanEnv,
  failureLogs,
  freeUdpPort,
  killAllChildren,
  runCli,
  sleep,
  startCli,
  until,
} from "../kit/federation-kit.js";
import { freePort, type Prosody, startProsody } from "../kit/prosody.js";
import { type SlixEvent, type SlixPeer, startSlixmpp } from "../kit/slixmpp.js";

const ADDRESS = "127.0.0.41";
const DOMAIN = "iot.localhost";
const PUBSUB = "pubsub.localhost";
const SECRET = "iot-node-secret";
const PASSWORD = "pw-iot";
const BOB = "bob@a.localhost";
const WAKE_S = 3;
/**
 * The gateway counts a node awake for 5 s after each exchange (AWAKE_WINDOW_MS), so a node waking every
 * 3 s never looks asleep to it; one waking every 8 s is asleep (xa) for the last 3 s of each cycle, and
 * a readout then is the gateway's to queue.
 */
const SLEEPY2_WAKE_S = 8;

const full = (name: string) => `${name}@${DOMAIN}/cxmpp`;

let dir = "";
let prosody: Prosody | undefined;
let gateway: CliProcess | undefined;
let bob: SlixPeer | undefined;
let sensor1: CliProcess | undefined;
let sleepy1: CliProcess | undefined;
let sleepy2: CliProcess | undefined;
/** When sleepy2 said it was connected: its wake-ups (polls) follow every SLEEPY2_WAKE_S from here. */
let sleepy2Connected = 0;
const device = (name: string) => join(dir, `${name}.json`);
const stateFile = (name: string) => join(dir, `${name}.state.json`);
const nodeEnv = () => cleanEnv({});
const started = Date.now();
const timings: Record<string, number> = {};
let metricsUrl = "";

type Bytes = { up: number; down: number; xmlUp: number; xmlDown: number };
/** Bytes each flow cost on the node link (the gateway's cxmpp frame counters), for the record. */
const bytes: Record<string, Bytes> = {};

async function onAir(): Promise<Bytes> {
  const text = await (await fetch(metricsUrl)).text();
  const value = (name: string, direction: string) =>
    Number(new RegExp(`^${name}\\{direction="${direction}"\\} (\\S+)$`, "m").exec(text)?.[1] ?? Number.NaN);
  return {
    up: value("cxmpp_bytes_on_air_total", "uplink"),
    down: value("cxmpp_bytes_on_air_total", "downlink"),
    xmlUp: value("cxmpp_bytes_as_xml_total", "uplink"),
    xmlDown: value("cxmpp_bytes_as_xml_total", "downlink"),
  };
}

/**
 * Runs `flow` and records the node-link bytes it cost (other traffic is idle polls: no frames). The
 * gateway brings these counters up to date once per tick (1 s), hence the waits around the flow.
 */
async function measured<T>(name: string, flow: () => Promise<T>): Promise<T> {
  await sleep(1_100);
  const before = await onAir();
  const out = await flow();
  await sleep(1_100);
  const after = await onAir();
  bytes[name] = {
    up: after.up - before.up,
    down: after.down - before.down,
    xmlUp: after.xmlUp - before.xmlUp,
    xmlDown: after.xmlDown - before.xmlDown,
  };
  return out;
}

const SENSOR1_STATE = {
  fields: {
    temperature: { value: "21.5", unit: "°C", type: "numeric" },
    relay: { value: "false", type: "boolean", writable: true },
  },
};
const SLEEPY2_STATE = { fields: { pressure: { value: "1013.2", unit: "hPa" }, open: { value: true } } };
const SLEEPY1_STATE = {
  fields: {
    temperature: { value: "7.25", unit: "°C" },
    humidity: { value: 61, unit: "%" },
  },
};

async function readState(name: string): Promise<{ fields: Record<string, { value: string }> }> {
  return JSON.parse(await readFile(stateFile(name), "utf8"));
}

/** The readout events from `from`, in arrival order (taken or not). */
const readoutsFrom = (from: string) =>
  bob!.events.filter((e) => e.event === "readout" && e.from === from).map((e) => e.result);

const isReadout = (from: string, result: string) => (e: SlixEvent) =>
  e.event === "readout" && e.from === from && e.result === result;

type EventField = { name: string; type: string; value: string; unit: string | null };

beforeAll(async () => {
  const t0 = Date.now();
  dir = await mkdtemp(join(tmpdir(), "cxmpp-iot-node-"));
  const dataDir = join(dir, "data");
  const gatewayPort = await freeUdpPort();
  const provisionEnv = cleanEnv({ CXMPP_DATA_DIR: dataDir, CXMPP_XMPP_DOMAIN: DOMAIN });
  const provision = async (name: string, allow: string[]) => {
    const args = [
      "provision",
      "add",
      name,
      "--gateway",
      `coaps://127.0.0.1:${gatewayPort}`,
      "--out",
      device(name),
    ];
    for (const jid of allow) args.push("--allow", jid);
    const r = await runCli(args, provisionEnv, dir);
    if (r.code !== 0) throw new Error(`provision add ${name} failed (${r.code}): ${r.stderr}`);
  };
  const server = startProsody({
    address: ADDRESS,
    s2sPort: null,
    vhosts: ["a.localhost"],
    users: [{ username: "bob", host: "a.localhost", password: PASSWORD }],
    components: [{ domain: DOMAIN, secret: SECRET }],
    extraConfig: [
      `Component "${PUBSUB}" "pubsub"`,
      "autocreate_on_publish = true",
      `admins = { "pub1@${DOMAIN}" }`,
    ],
  });
  // The first device creates the store while Prosody starts; the others follow.
  await provision("sensor1", [BOB]);
  prosody = await server;
  timings.prosody = Date.now() - t0;
  const metricsPort = await freePort(ADDRESS);
  metricsUrl = `http://${ADDRESS}:${metricsPort}/metrics`;
  await writeFile(stateFile("sensor1"), JSON.stringify(SENSOR1_STATE));
  await writeFile(stateFile("sleepy1"), JSON.stringify(SLEEPY1_STATE));
  await writeFile(stateFile("sleepy2"), JSON.stringify(SLEEPY2_STATE));

  const gw = startCli(
    [
      "gateway",
      "--data-dir",
      dataDir,
      "--dtls-listen",
      `127.0.0.1:${gatewayPort}`,
      "--listen",
      "off",
      "--log-level",
      "info",
      "--metrics-listen",
      `${ADDRESS}:${metricsPort}`,
    ],
    cleanEnv({
      CXMPP_XMPP_SERVICE: prosody.componentService,
      CXMPP_XMPP_DOMAIN: DOMAIN,
      CXMPP_XMPP_SECRET: SECRET,
    }),
    dir,
  );
  gateway = gw;
  const peer = startSlixmpp({
    host: prosody.address,
    port: prosody.c2sPort,
    jid: `${BOB}/slix`,
    password: PASSWORD,
  });
  // pub1 and pub2 allow nobody in particular: the pubsub service's answers come from a domain JID,
  // which an allow list (bare user JIDs) cannot name; results and errors pass anyway.
  await provision("sleepy1", [BOB]);
  await provision("sleepy2", [BOB]);
  await provision("pub1", []);
  await provision("pub2", []);
  await gw.waitUntil(() => gw.log("federation.online").length > 0, 30_000, "federation.online");
  timings.gateway = Date.now() - t0;
  sensor1 = startCli(
    ["node", "run", "--device", device("sensor1"), "--poll", "0.2", "--state", stateFile("sensor1")],
    nodeEnv(),
    dir,
  );
  sleepy1 = startCli(
    ["node", "run", "--device", device("sleepy1"), "--wake", String(WAKE_S), "--state", stateFile("sleepy1")],
    nodeEnv(),
    dir,
  );
  sleepy2 = startCli(
    [
      "node",
      "run",
      "--device",
      device("sleepy2"),
      "--wake",
      String(SLEEPY2_WAKE_S),
      "--state",
      stateFile("sleepy2"),
    ],
    nodeEnv(),
    dir,
  );
  bob = await peer;
  for (const [name, node] of [
    ["sensor1", sensor1],
    ["sleepy1", sleepy1],
    ["sleepy2", sleepy2],
  ] as const) {
    await node.waitUntil(() => node.stderr().includes(`connected as ${full(name)}`), 20_000, "connected as");
    if (name === "sleepy2") sleepy2Connected = Date.now();
  }
  timings.beforeAll = Date.now() - t0;
});

const logs = failureLogs("iot-node");

afterAll(async () => {
  await logs.save(
    {
      "gateway.stdout": gateway?.stdout() ?? "",
      "gateway.stderr": gateway?.stderr() ?? "",
      "sensor1.stdout": sensor1?.stdout() ?? "",
      "sensor1.stderr": sensor1?.stderr() ?? "",
      "sleepy1.stdout": sleepy1?.stdout() ?? "",
      "sleepy1.stderr": sleepy1?.stderr() ?? "",
      "sleepy2.stdout": sleepy2?.stdout() ?? "",
      "sleepy2.stderr": sleepy2?.stderr() ?? "",
      "prosody.log": prosody?.log() ?? "",
      "bob.received": bob?.received.map((s) => s.xml).join("\n") ?? "",
      "bob.events": bob?.events.map((e) => JSON.stringify(e)).join("\n") ?? "",
      "bob.errors": bob?.errors.join("\n") ?? "",
    },
    !bob,
  );
  await Promise.allSettled([sensor1?.stop(), sleepy1?.stop(), sleepy2?.stop(), bob?.stop()]);
  await gateway?.stop();
  await killAllChildren();
  await prosody?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
  timings.total = Date.now() - started;
  console.log(`iot-node timings (ms): ${JSON.stringify(timings)}`);
  console.log(`iot-node bytes on the node link (cxmpp frames; as XML): ${JSON.stringify(bytes)}`);
});

describe("cxmpp node run --state: XEP-0323 readout and XEP-0325 control with slixmpp", () => {
  it("readout: accepted, then the state's fields with their units, done", async () => {
    const from = full("sensor1");
    const fields = await measured("readout (2 fields)", async () => {
      bob!.send({ op: "readout", to: from });
      await bob!.waitForEvent(isReadout(from, "accepted"), 10_000);
      const got = await bob!.waitForEvent(isReadout(from, "fields"), 10_000);
      await bob!.waitForEvent(isReadout(from, "done"), 10_000);
      return got;
    });
    expect(readoutsFrom(from)).toEqual(["accepted", "fields", "done"]);
    expect(fields.fields as EventField[]).toEqual([
      { name: "temperature", type: "numeric", value: "21.5", unit: "°C" },
      { name: "relay", type: "boolean", value: "false", unit: null },
    ]);
    expect(Math.abs(Date.parse(String(fields.timestamp)) - Date.now())).toBeLessThan(60_000);
    expect(sensor1!.stderr()).toMatch(
      /readout \d+ from bob@a\.localhost\/slix: temperature=21\.5 relay=false/,
    );

    // By name: only what is asked for.
    bob!.send({ op: "readout", to: from, fields: ["relay"] });
    const relayOnly = await bob!.waitForEvent(isReadout(from, "fields"), 10_000);
    expect((relayOnly.fields as EventField[]).map((f) => f.name)).toEqual(["relay"]);
    await bob!.waitForEvent(isReadout(from, "done"), 10_000);

    // Unknown fields only: rejected, with the reason.
    bob!.send({ op: "readout", to: from, fields: ["pressure"] });
    const rejected = await bob!.waitForEvent(isReadout(from, "rejected"), 10_000);
    expect(String(rejected.error)).toContain("pressure");
  }, 30_000);

  it("control: an iq set changes the writable relay on disk (OK), a message too, a read-only or unknown field is NotFound", async () => {
    const to = full("sensor1");
    const ok = await measured("control iq", async () => {
      bob!.send({ op: "control", to, values: [["relay", "boolean", "true"]] });
      return bob!.waitForEvent((e) => e.event === "control" && e.from === to, 10_000);
    });
    expect(ok.result).toBe("OK");
    expect((await readState("sensor1")).fields.relay?.value).toBe("true");

    bob!.send({ op: "control_message", to, values: [["relay", "boolean", "false"]] });
    await until(
      () => JSON.parse(readFileSync(stateFile("sensor1"), "utf8")).fields.relay?.value === "false",
      10_000,
      () => "relay=false in the state file",
    );
    expect(sensor1!.stderr()).toContain("control from bob@a.localhost/slix: relay=false");

    bob!.send({ op: "control", to, values: [["temperature", "double", "30"]] });
    const readOnly = await bob!.waitForEvent((e) => e.event === "control" && e.from === to, 10_000);
    // slixmpp reads no error text here: _handle_set_response looks for an un-namespaced <error>.
    expect(readOnly.result).toBe("NotFound");
    bob!.send({ op: "control", to, values: [["valve", "boolean", "true"]] });
    const unknown = await bob!.waitForEvent((e) => e.event === "control" && e.from === to, 10_000);
    expect(unknown.result).toBe("NotFound");
    const state = await readState("sensor1");
    expect(state.fields.temperature?.value).toBe("21.5");
    expect(state.fields.valve).toBeUndefined();
  }, 30_000);

  it("a sleepy node (--wake 3) answers a readout at its wake-up, from its state file", async () => {
    const from = full("sleepy1");
    const node = sleepy1!;
    const t = Date.now();
    bob!.send({ op: "readout", to: from });
    const fields = await bob!.waitForEvent(isReadout(from, "fields"), (WAKE_S + 10) * 1000);
    await bob!.waitForEvent(isReadout(from, "done"), 5_000);
    timings.sleepyReadout = Date.now() - t;
    expect(fields.fields as EventField[]).toEqual([
      { name: "temperature", type: "numeric", value: "7.25", unit: "°C" },
      { name: "humidity", type: "numeric", value: "61", unit: "%" },
    ]);
    // Accepted by the node itself, or first queued by the gateway and then started at the wake-up.
    const results = readoutsFrom(from);
    timings.sleepyPath = results.length; // 3: answered by the node alone, 4: queued by the gateway first
    expect([
      ["accepted", "fields", "done"],
      ["queued", "started", "fields", "done"],
    ]).toContainEqual(results);
    // The node got the request by polling at a wake-up and answered it then.
    expect(node.lines().some((l) => l.includes("urn:xmpp:iot:sensordata") && l.includes("<req"))).toBe(true);
    expect(node.stderr()).toMatch(/readout \d+ from bob@a\.localhost\/slix: temperature=7\.25 humidity=61/);
  }, 30_000);
  it("a node asleep for the gateway (--wake 8): the readout waits in its mailbox, the node answers at its wake-up", async () => {
    const from = full("sleepy2");
    const node = sleepy2!;
    // 6 s into a cycle: 1 s after the gateway's awake window closed, 2 s before the next wake-up.
    const cycle = SLEEPY2_WAKE_S * 1000;
    const since = Date.now() - sleepy2Connected;
    await sleep((6_000 - (since % cycle) + cycle) % cycle);
    const t = Date.now();
    bob!.send({ op: "readout", to: from });
    const fields = await bob!.waitForEvent(isReadout(from, "fields"), cycle + 10_000);
    const latency = Date.now() - t;
    await bob!.waitForEvent(isReadout(from, "done"), 5_000);
    timings.asleepReadout = latency;
    expect(fields.fields as EventField[]).toEqual([
      { name: "pressure", type: "numeric", value: "1013.2", unit: "hPa" },
      { name: "open", type: "boolean", value: "true", unit: null },
    ]);
    // Not answered at once: the fields came with the wake-up, 2 s later (less than a whole cycle).
    expect(latency).toBeGreaterThan(1_000);
    expect(latency).toBeLessThan(cycle);
    // The gateway said queued at once and turned the node's own result into <started/> (or, without
    // the gateway's readout desk, the node's accepted comes at the wake-up).
    const results = readoutsFrom(from);
    timings.asleepPath = results.length;
    expect([
      ["queued", "started", "fields", "done"],
      ["accepted", "fields", "done"],
    ]).toContainEqual(results);
    expect(node.stderr()).toMatch(/readout \d+ from bob@a\.localhost\/slix: pressure=1013\.2 open=true/);
  }, 40_000);
});

describe("cxmpp node report | publish | send --xml", () => {
  it("node report: bob receives one XEP-0323 fields message with typed values", async () => {
    const r = await measured("report (4 fields)", () =>
      runCli(
        [
          "node",
          "report",
          "--device",
          device("pub1"),
          "--to",
          BOB,
          "temperature=19.5°C",
          "count=3",
          "door=true",
          "mode=eco",
        ],
        nodeEnv(),
      ),
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^acknowledged: <message/);
    const got = await bob!.waitFor(
      (s) => s.kind === "message" && s.from === full("pub1") && s.xml.includes("urn:xmpp:iot:sensordata"),
      10_000,
    );
    expect(got.from).toBe(full("pub1"));
    const [result] = parseFields(parseXml(got.xml));
    expect(result?.done).toBe(true);
    expect(result?.fields.map((f) => [f.type, f.name, f.value, f.unit, f.flags])).toEqual([
      ["numeric", "temperature", "19.5", "°C", ["momentary"]],
      ["numeric", "count", "3", undefined, ["momentary"]],
      ["boolean", "door", "true", undefined, ["momentary"]],
      ["string", "mode", "eco", undefined, ["momentary"]],
    ]);
    expect(Math.abs(Date.parse(result!.fields[0]!.timestamp) - Date.now())).toBeLessThan(60_000);
  }, 30_000);

  it("node publish: the item id; a subscriber gets the item; a publish that may not create the node fails with forbidden", async () => {
    const node = "sensors/pub1";
    const publish = (who: string, payload: string, extra: string[] = []) =>
      runCli(
        [
          "node",
          "publish",
          "--device",
          device(who),
          "--service",
          PUBSUB,
          "--node",
          node,
          "--payload",
          payload,
          ...extra,
        ],
        nodeEnv(),
      );
    // The first publish creates the node (pub1 is an admin of the service, autocreate_on_publish).
    const first = await publish("pub1", "<reading xmlns='urn:example:reading' temperature='19.5'/>");
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout.trim()).toMatch(/^\S+$/);

    bob!.send({ op: "pubsub_subscribe", service: PUBSUB, node });
    await bob!.waitForEvent((e) => e.event === "subscribed" && e.node === node, 10_000);
    const second = await measured("publish (iq + result)", () =>
      publish("pub1", "<reading xmlns='urn:example:reading' temperature='20.25'/>", ["--item-id", "second"]),
    );
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout.trim()).toBe("second");
    const item = await bob!.waitForEvent((e) => e.event === "pubsub_item" && e.id === "second", 10_000);
    expect(item.node).toBe(node);
    expect(item.from).toBe(PUBSUB);
    expect(String(item.payload)).toContain("urn:example:reading");
    expect(String(item.payload)).toContain("20.25");

    // pub2 is no admin: it may not create a node.
    const refused = await runCli(
      [
        "node",
        "publish",
        "--device",
        device("pub2"),
        "--service",
        PUBSUB,
        "--node",
        "sensors/pub2",
        "--payload",
        "<r xmlns='urn:example:reading'/>",
      ],
      nodeEnv(),
    );
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/cxmpp node publish: forbidden/);

    const badPayload = await publish("pub1", "<reading");
    expect(badPayload.code).toBe(2);
  }, 40_000);

  it("node send --xml: an iq prints its result (exit 0) or its error (exit 1); bad XML exits 2", async () => {
    const send = (xml: string) =>
      runCli(["node", "send", "--device", device("pub1"), "--xml", xml], nodeEnv());
    const disco = await send(
      `<iq type='get' to='${PUBSUB}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`,
    );
    expect(disco.code, disco.stderr).toBe(0);
    const reply = parseXml(disco.stdout.trim());
    expect(reply.name).toBe("iq");
    expect(attr(reply, "type")).toBe("result");
    expect(attr(reply, "from")).toBe(PUBSUB);
    const query = child(reply, "query", "http://jabber.org/protocol/disco#info")!;
    const identity = child(query, "identity")!;
    expect(attr(identity, "category")).toBe("pubsub");

    // XEP-0199 to the server (Prosody's mod_ping on its virtual host).
    const ping = await send(`<iq type='get' to='a.localhost' id='ping-1'><ping xmlns='urn:xmpp:ping'/></iq>`);
    expect(ping.code, ping.stderr).toBe(0);
    expect(attr(parseXml(ping.stdout.trim()), "id")).toBe("ping-1");

    // The gateway's own JID answers its nodes as it answers the network (ping, disco#info).
    const own = await send(`<iq type='get' to='${DOMAIN}' id='ping-2'><ping xmlns='urn:xmpp:ping'/></iq>`);
    expect(own.code, own.stderr).toBe(0);
    const pong = parseXml(own.stdout.trim());
    expect([attr(pong, "type"), attr(pong, "id"), attr(pong, "from")]).toEqual(["result", "ping-2", DOMAIN]);

    const refused = await send(`<iq type='get' to='${DOMAIN}'><query xmlns='jabber:iq:version'/></iq>`);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("service-unavailable");
    expect(attr(parseXml(refused.stdout.trim()), "type")).toBe("error");

    const message = await send(`<message to='${BOB}' type='chat'><body>raw hello</body></message>`);
    expect(message.code, message.stderr).toBe(0);
    await bob!.waitFor((s) => s.kind === "message" && s.body === "raw hello", 10_000);

    const bad = await send("<iq type='get'><query></iq>");
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("malformed XML");
    const notStanza = await send("<foo/>");
    expect(notStanza.code).toBe(2);
  }, 40_000);
});
