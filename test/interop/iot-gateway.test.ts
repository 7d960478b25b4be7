/**
 * XMPP's IoT vocabulary through the gateway, end to end (issue 12, the gateway side): a real `cxmpp
 * gateway` process linked as the XEP-0114 component `iot.localhost` of a real Prosody 0.12 that also
 * runs a XEP-0060 service (`pubsub.localhost`: autocreate_on_publish, the gateway's domain an admin of
 * it), nodes in this process on real UDP (DTLS), and slixmpp (bob) as the independent client with its
 * xep_0060, xep_0323 and xep_0325 plugins; eve (xmpp.js) is a peer the devices do not allow.
 *
 * Prosody on 127.0.0.42 without s2s, so that this file runs beside the other interop tests.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { xml } from "@xmpp/xml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { attr, type XElement } from "../../codec/index.js";
import { controlResponse } from "../../src/core/iot/control.js";
import {
  fieldsMessage,
  parseReadoutRequest,
  readoutAccepted,
  type SensorField,
} from "../../src/core/iot/sensordata.js";
import {
  type CliProcess,
  cleanEnv,
  connectInProcessNode,
  failureLogs,
  freeUdpPort,
  type InProcessNode,
  killAllChildren,
  runCli,
  sleep,
  startCli,
  until,
} from "../kit/federation-kit.js";
import { freePort, type Prosody, startProsody } from "../kit/prosody.js";
import { type SlixEvent, type SlixPeer, startSlixmpp } from "../kit/slixmpp.js";
import { connectUser, type XmppUser } from "../kit/xmpp-user.js";

const ADDRESS = "127.0.0.42";
const DOMAIN = "iot.localhost";
const PUBSUB = "pubsub.localhost";
const SECRET = "iot-secret";
const PASSWORD = "pw-iot";
const BOB = "bob@a.localhost";

let dir = "";
let prosody: Prosody | undefined;
let gateway: CliProcess | undefined;
let bob: SlixPeer | undefined;
let eve: XmppUser | undefined;
let metricsPort = 0;
const nodes: InProcessNode[] = [];
const device = (name: string) => join(dir, `${name}.json`);

/** One numeric reading (XEP-0323 §3.4) with the instant it was taken. */
const reading = (name: string, value: string, timestamp: string, unit = "°C"): SensorField => ({
  type: "numeric",
  name,
  value,
  unit,
  timestamp,
  nodeId: "",
  flags: ["momentary"],
});

/** A cxmpp_* counter from the gateway's /metrics. */
async function metric(name: string): Promise<number> {
  const text = await (await fetch(`http://${ADDRESS}:${metricsPort}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  return line === undefined ? 0 : Number(line.split(" ")[1]);
}

const PUBLISHED_OK = 'cxmpp_iot_pubsub_publishes_total{result="ok"}';

/** Waits until the pubsub service has confirmed `n` publishes (the node then exists). */
async function publishedOk(n: number): Promise<void> {
  const end = Date.now() + 10_000;
  while ((await metric(PUBLISHED_OK)) < n) {
    if (Date.now() > end) throw new Error(`no ${n} publishes confirmed within 10 s\n${gateway?.stdout()}`);
    await sleep(50);
  }
}

const isReadout =
  (result: string, from?: string) =>
  (e: SlixEvent): boolean =>
    e.event === "readout" && e.result === result && (from === undefined || String(e.from).startsWith(from));

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cxmpp-iot-gateway-"));
  const dataDir = join(dir, "data");
  const gatewayPort = await freeUdpPort();
  metricsPort = await freePort(ADDRESS);
  const provisionEnv = cleanEnv({ CXMPP_DATA_DIR: dataDir, CXMPP_XMPP_DOMAIN: DOMAIN });
  const provision = async (name: string) => {
    const args = ["provision", "add", name, "--gateway", `coaps://127.0.0.1:${gatewayPort}`];
    const r = await runCli([...args, "--out", device(name), "--allow", BOB], provisionEnv, dir);
    if (r.code !== 0) throw new Error(`provision add ${name} failed (${r.code}): ${r.stderr}`);
  };
  const server = startProsody({
    address: ADDRESS,
    s2sPort: null,
    vhosts: ["a.localhost"],
    users: ["bob", "eve"].map((username) => ({ username, host: "a.localhost", password: PASSWORD })),
    components: [{ domain: DOMAIN, secret: SECRET }],
    // Lines after a Component line belong to it: only admins (and the service) may create nodes, and
    // the gateway publishes from its component domain, so that domain is the service's admin.
    extraConfig: [
      `Component "${PUBSUB}" "pubsub"`,
      "autocreate_on_publish = true",
      `admins = { "${DOMAIN}" }`,
    ],
  });
  await provision("awake1");
  await provision("sleepy1");
  prosody = await server;
  const p = prosody;
  gateway = startCli(
    ["gateway", "--data-dir", dataDir, "--dtls-listen", `127.0.0.1:${gatewayPort}`, "--listen", "off"],
    cleanEnv({
      CXMPP_XMPP_SERVICE: p.componentService,
      CXMPP_XMPP_DOMAIN: DOMAIN,
      CXMPP_XMPP_SECRET: SECRET,
      CXMPP_PUBSUB_SERVICE: PUBSUB,
      CXMPP_METRICS_LISTEN: `${ADDRESS}:${metricsPort}`,
      CXMPP_LOG_LEVEL: "info",
    }),
    dir,
  );
  const users = Promise.all([
    startSlixmpp({ host: p.address, port: p.c2sPort, jid: `${BOB}/slix`, password: PASSWORD }),
    connectUser({ service: p.c2sService, domain: "a.localhost", username: "eve", password: PASSWORD }),
  ]);
  const gw = gateway;
  await gw.waitUntil(() => gw.log("federation.online").length > 0, 30_000, "federation.online");
  [bob, eve] = await users;
}, 60_000);

const logs = failureLogs("iot-gateway");

afterAll(async () => {
  await logs.save(
    {
      "gateway.stdout": gateway?.stdout() ?? "",
      "gateway.stderr": gateway?.stderr() ?? "",
      "prosody.log": prosody?.log() ?? "",
      "bob.received": bob?.received.map((s) => s.xml).join("\n") ?? "",
      "bob.events": bob?.events.map((e) => JSON.stringify(e)).join("\n") ?? "",
    },
    !bob,
  );
  for (const n of nodes) await n.close().catch(() => {});
  await Promise.allSettled([bob?.stop(), eve?.stop()]);
  await gateway?.stop();
  await killAllChildren();
  await prosody?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("the gateway speaks XMPP's IoT vocabulary for its nodes", () => {
  it("publishes an awake node's CON and NON readings to its pubsub node; slixmpp receives them", async () => {
    const node = await connectInProcessNode(device("awake1"));
    nodes.push(node);
    const base = await metric(PUBLISHED_OK);
    // The first reading goes reliably (CON, node-client.ts primes its tables); it creates the pubsub node.
    node.client.sendTelemetry(
      fieldsMessage({ to: BOB }, "", [reading("temp", "20.0", "2026-12-07T10:00:00Z")]),
    );
    await publishedOk(base + 1);
    bob!.send({ op: "pubsub_subscribe", service: PUBSUB, node: `awake1@${DOMAIN}` });
    await bob!.waitForEvent((e) => e.event === "subscribed" && e.node === `awake1@${DOMAIN}`, 10_000);

    // NON, and addressed to nobody: a reading only for the cache and the subscribers.
    node.client.sendTelemetry(fieldsMessage({}, "", [reading("temp", "21.5", "2026-12-07T10:01:00Z")]));
    const non = await bob!.waitForEvent(
      (e) => e.event === "pubsub_item" && String(e.payload).includes("21.5"),
      10_000,
    );
    expect(non.node).toBe(`awake1@${DOMAIN}`);
    expect(non.from).toBe(PUBSUB);
    expect(String(non.payload)).toMatch(/<(\w+:)?fields /);
    expect(String(non.payload)).toContain("2026-12-07T10:01:00Z");

    // CON (a stanza the gateway acknowledges).
    await node.client.send(fieldsMessage({ to: BOB }, "", [reading("temp", "22.5", "2026-12-07T10:02:00Z")]));
    const con = await bob!.waitForEvent(
      (e) => e.event === "pubsub_item" && String(e.payload).includes("22.5"),
      10_000,
    );
    expect(con.node).toBe(`awake1@${DOMAIN}`);
    expect(await metric('cxmpp_iot_pubsub_publishes_total{result="error"}')).toBe(0);
  }, 30_000);

  it("a sleeping node: its readings published; readouts answered from the cache (original timestamps) or queued; control waits for the wake-up", async () => {
    const node = await connectInProcessNode(device("sleepy1"), 60);
    nodes.push(node);
    const got: XElement[] = [];
    let polled = false;
    const beforePoll: XElement[] = [];
    node.client.onStanza((s) => {
      got.push(s);
      if (!polled) beforePoll.push(s);
      const type = attr(s, "type");
      if (s.name !== "iq" || (type !== "get" && type !== "set")) return;
      const request = parseReadoutRequest(s);
      if (request) {
        // The node's own answer, as any XEP-0323 device gives it: accepted, then the fields.
        void node.client.send(readoutAccepted(s, request.seqnr));
        void node.client.send(
          fieldsMessage({ to: attr(s, "from")! }, request.seqnr, [
            reading("co2", "415", "2026-12-07T11:00:00Z", "ppm"),
          ]),
        );
      } else void node.client.send(controlResponse(s));
    });
    const base = await metric(PUBLISHED_OK);
    await node.client.send(
      fieldsMessage({ to: BOB }, "", [
        reading("temp", "17.5", "2026-12-07T08:00:00Z"),
        reading("hum", "40", "2026-12-07T08:00:00Z", "%"),
      ]),
    );
    await publishedOk(base + 1);
    bob!.send({ op: "pubsub_subscribe", service: PUBSUB, node: `sleepy1@${DOMAIN}` });
    await bob!.waitForEvent((e) => e.event === "subscribed" && e.node === `sleepy1@${DOMAIN}`, 10_000);
    await node.client.send(
      fieldsMessage({ to: BOB }, "", [reading("temp", "18.25", "2026-12-07T08:30:00Z")]),
    );
    const item = await bob!.waitForEvent(
      (e) => e.event === "pubsub_item" && String(e.payload).includes("18.25"),
      10_000,
    );
    expect(item.node).toBe(`sleepy1@${DOMAIN}`);

    // Asleep 5 s after its last exchange (gateway/session/node-session.ts AWAKE_WINDOW_MS).
    await sleep(6_500);

    // Cached: accepted, then the fields with the timestamps they were reported with, then done.
    const sleepyJid = `sleepy1@${DOMAIN}`;
    bob!.send({ op: "readout", to: sleepyJid, fields: ["temp", "hum"] });
    await bob!.waitForEvent(isReadout("accepted", sleepyJid), 10_000);
    const f1 = await bob!.waitForEvent(isReadout("fields", sleepyJid), 10_000);
    const f2 = await bob!.waitForEvent(isReadout("fields", sleepyJid), 5_000);
    await bob!.waitForEvent(isReadout("done", sleepyJid), 5_000);
    const byName = new Map(
      [f1, f2].flatMap((e) =>
        (e.fields as { name: string; value: string; unit: string }[]).map((f) => [
          f.name,
          { ...f, at: e.timestamp },
        ]),
      ),
    );
    expect(byName.get("temp")).toMatchObject({ value: "18.25", unit: "°C", at: "2026-12-07T08:30:00Z" });
    expect(byName.get("hum")).toMatchObject({ value: "40", unit: "%", at: "2026-12-07T08:00:00Z" });
    expect(String(f1.from)).toBe(`${sleepyJid}/cxmpp`);

    // Not in the cache: queued for the wake-up.
    bob!.send({ op: "readout", to: sleepyJid, fields: ["co2"] });
    await bob!.waitForEvent(isReadout("queued", sleepyJid), 10_000);

    // A peer the device does not allow: not-authorized, as for any stanza.
    await eve!.send(
      xml(
        "iq",
        { type: "get", to: sleepyJid, id: "eve-1" },
        xml("req", { xmlns: "urn:xmpp:iot:sensordata", seqnr: "1" }),
      ),
    );
    const refused = await eve!.waitFor((s) => s.is("iq") && s.attrs.id === "eve-1", 10_000);
    expect(refused.attrs.type).toBe("error");
    expect(refused.getChild("error")?.getChild("not-authorized")).toBeDefined();

    // Control (XEP-0325 iq set) while asleep: waits in the mailbox.
    bob!.send({ op: "control", to: `${sleepyJid}/cxmpp`, values: [["setpoint", "double", "21.5"]] });
    await sleep(1_000);
    expect(beforePoll.filter((s) => s.name === "iq")).toEqual([]);
    expect(bob!.events.some((e) => e.event === "control")).toBe(false);

    // The wake-up: the queued readout and the control set arrive now, and are answered by the node.
    const acceptedBefore = bob!.events.filter(isReadout("accepted")).length;
    polled = true;
    await node.client.poll();
    await until(
      () => got.filter((s) => s.name === "iq").length >= 2,
      10_000,
      () => "the queued iqs at the node",
    );
    await bob!.waitForEvent(isReadout("started", sleepyJid), 10_000);
    const fresh = await bob!.waitForEvent(isReadout("fields", sleepyJid), 10_000);
    expect(fresh.fields).toEqual([{ name: "co2", type: "numeric", value: "415", unit: "ppm" }]);
    expect(fresh.timestamp).toBe("2026-12-07T11:00:00Z");
    await bob!.waitForEvent(isReadout("done", sleepyJid), 5_000);
    const control = await bob!.waitForEvent((e) => e.event === "control", 10_000);
    expect(control.result).toBe("OK");
    // The node's own iq result was consumed: no second answer to the readout.
    await sleep(500);
    expect(bob!.events.filter(isReadout("accepted")).length).toBe(acceptedBefore);
    expect(await metric('cxmpp_iot_readouts_total{answer="cached"}')).toBe(1);
    expect(await metric('cxmpp_iot_readouts_total{answer="queued"}')).toBe(1);
    expect(await metric("cxmpp_iot_fields_cached")).toBeGreaterThanOrEqual(4);
  }, 45_000);

  it("the devices' pubsub nodes are browsable with disco#items on the service (named by their bare JIDs)", async () => {
    await eve!.send(
      xml(
        "iq",
        { type: "get", to: PUBSUB, id: "eve-items" },
        xml("query", { xmlns: "http://jabber.org/protocol/disco#items" }),
      ),
    );
    const items = await eve!.waitFor((s) => s.is("iq") && s.attrs.id === "eve-items", 10_000);
    expect(items.attrs.type).toBe("result");
    const names = items
      .getChild("query")!
      .getChildren("item")
      .map((i) => i.attrs.node as string)
      .sort();
    expect(names).toEqual([`awake1@${DOMAIN}`, `sleepy1@${DOMAIN}`]);
  });

  it("the gateway as a XEP-0326 concentrator on its domain: bob sees the devices that allow him, eve none", async () => {
    const ns = "urn:xmpp:iot:concentrators";
    bob!.send({
      op: "iq_get",
      to: DOMAIN,
      id: "bob-roots",
      xml: `<getRootNodes xmlns='${ns}' sourceId='cxmpp'/>`,
    });
    const roots = await bob!.waitFor((s) => s.kind === "iq" && s.id === "bob-roots", 10_000);
    expect(roots.type).toBe("result");
    expect(roots.xml).toContain("getRootNodesResponse");
    expect([...roots.xml.matchAll(/nodeId="([^"]+)"/g)].map((m) => m[1]).sort()).toEqual([
      "awake1",
      "sleepy1",
    ]);
    await eve!.send(
      xml(
        "iq",
        { type: "get", to: DOMAIN, id: "eve-roots" },
        xml("getRootNodes", { xmlns: ns, sourceId: "cxmpp" }),
      ),
    );
    const none = await eve!.waitFor((s) => s.is("iq") && s.attrs.id === "eve-roots", 10_000);
    expect(none.attrs.type).toBe("result");
    expect(none.getChild("getRootNodesResponse")?.attrs.result).toBe("OK");
    expect(none.getChild("getRootNodesResponse")?.getChildren("node")).toEqual([]);
  });

  it("the concentrator passes a readout for one of its nodes to that device, within the device's access rule", async () => {
    // Through the concentrator's JID, naming the node: answered for sleepy1 (from the cache while it
    // sleeps, or by the node at its wake-up), from sleepy1's own JID.
    const sleepyJid = `sleepy1@${DOMAIN}`;
    bob!.send({ op: "readout", to: DOMAIN, nodes: ["sleepy1"], fields: ["temp"] });
    // Asleep, the gateway answers (cached or queued); awake (it talked < 5 s ago), the request waits in
    // its mailbox like any other: the node's next poll takes it either way, and the node answers.
    await sleep(500);
    await nodes[1]!.client.poll(); // sleepy1, connected by the sleeping-node test
    await bob!.waitForEvent(
      (e) => e.event === "readout" && ["accepted", "queued"].includes(String(e.result)),
      10_000,
    );
    const fields = await bob!.waitForEvent(isReadout("fields", sleepyJid), 15_000);
    expect((fields.fields as unknown[]).length).toBeGreaterThan(0);

    // A node bob may not see (none by that name) and several nodes at once are refused as errors.
    bob!.send({
      op: "iq_get",
      to: DOMAIN,
      id: "bob-nobody",
      xml: `<req xmlns='urn:xmpp:iot:sensordata' seqnr='91'><node nodeId='nobody'/></req>`,
    });
    const nobody = await bob!.waitFor((s) => s.kind === "iq" && s.id === "bob-nobody", 10_000);
    expect(nobody.type).toBe("error");
    expect(nobody.xml).toContain("item-not-found");
    bob!.send({
      op: "iq_get",
      to: DOMAIN,
      id: "bob-two",
      xml: `<req xmlns='urn:xmpp:iot:sensordata' seqnr='92'><node nodeId='sleepy1'/><node nodeId='awake1'/></req>`,
    });
    const two = await bob!.waitFor((s) => s.kind === "iq" && s.id === "bob-two", 10_000);
    expect(two.xml).toContain("feature-not-implemented");

    // eve may not see sleepy1: the same answer as for a node that does not exist.
    await eve!.send(
      xml(
        "iq",
        { type: "get", to: DOMAIN, id: "eve-readout" },
        xml("req", { xmlns: "urn:xmpp:iot:sensordata", seqnr: "93" }, xml("node", { nodeId: "sleepy1" })),
      ),
    );
    const refused = await eve!.waitFor((s) => s.is("iq") && s.attrs.id === "eve-readout", 10_000);
    expect(refused.attrs.type).toBe("error");
    expect(refused.getChild("error")?.getChild("item-not-found")).toBeTruthy();
  }, 40_000);
});
