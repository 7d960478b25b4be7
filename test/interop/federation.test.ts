/**
 * Federation end to end: `cxmpp gateway` as a child process, linked as the XEP-0114 component
 * `iot.localhost` of a real Prosody 0.12 (vhost a.localhost with alice and bob), nodes on real UDP
 * (`cxmpp node run` / `node send` children, and an in-process NodeClient for load), and independent
 * XMPP clients: xmpp.js (alice), slixmpp (bob) and, over real s2s with dialback, carol on a second
 * Prosody (c.localhost).
 *
 * The gateway reaches Prosody's component port through a TCP proxy in this process, so that one test
 * can cut the link (twice, under load) and check that nothing is lost: stanzas wait in the durable
 * outbox and go out in order when the link is back; a resent stanza keeps its origin-id (XEP-0359).
 *
 * s2s: both Prosody instances listen on 5269 (dialback connects to the default port, see
 * test/kit/prosody.ts), but on 127.0.0.3 and 127.0.0.4 — not the 127.0.0.1/127.0.0.2 pair of
 * test/interop/prosody-kit.test.ts — so the two files can run at the same time without a port clash.
 */
import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Element, xml } from "@xmpp/xml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { el } from "../../codec/index.js";
import {
  attr,
  type CliProcess,
  child,
  cleanEnv,
  connectInProcessNode,
  failureLogs,
  freeUdpPort,
  killAllChildren,
  parseStanzaLine,
  runCli,
  startCli,
  startTcpProxy,
  type TcpProxy,
  textOf,
  until,
  waitIndex,
} from "../kit/federation-kit.js";
import { type Prosody, startProsody } from "../kit/prosody.js";
import { type SlixPeer, startSlixmpp } from "../kit/slixmpp.js";
import { connectUser, type XmppUser } from "../kit/xmpp-user.js";

const A_ADDRESS = "127.0.0.3";
const C_ADDRESS = "127.0.0.4";
const DOMAIN = "iot.localhost";
const SECRET = "federation-secret";
const PASSWORD = "pw-fed";
const RESOURCE = "cxmpp";
const CLIENT = "jabber:client";
/**
 * The sleepy node's wake interval. It counts as awake for 5 s after each exchange, so it shows `xa`
 * for the last WAKE_S - 5 s of each cycle (less up to 1 s: the gateway checks once a second); 8 leaves
 * 2-3 s, enough for a message sent on seeing `xa` to reach the gateway before the node wakes (with 6
 * the window is 0-1 s and the message raced the wake-up: delivered at once, without <delay/>).
 */
const WAKE_S = 8;
/** Small, so that a mailbox fills up quickly in the resource-constraint check. */
const MAILBOX_MAX = 20;

const NS = {
  version: "jabber:iq:version",
  discoInfo: "http://jabber.org/protocol/disco#info",
  ping: "urn:xmpp:ping",
  caps: "http://jabber.org/protocol/caps",
  idle: "urn:xmpp:idle:1",
  sleep: "urn:cxmpp:sleep:0",
  delay: "urn:xmpp:delay",
  sid: "urn:xmpp:sid:0",
  stanzas: "urn:ietf:params:xml:ns:xmpp-stanzas",
} as const;

const bare = (name: string) => `${name}@${DOMAIN}`;
const full = (name: string) => `${bare(name)}/${RESOURCE}`;
const nonce = (what: string) => `${what}-${randomUUID().slice(0, 8)}`;

let dir = "";
let dataDir = "";
let gatewayPort = 0;
let a: Prosody | undefined;
let c: Prosody | undefined;
let proxy: TcpProxy | undefined;
let gateway: CliProcess | undefined;
let wrongGateway: CliProcess | undefined;
let alice: XmppUser | undefined;
let bob: SlixPeer | undefined;
let carol: XmppUser | undefined;
let sensor1: CliProcess | undefined;
let sleepy: CliProcess | undefined;
const device = (name: string) => join(dir, `${name}.json`);
const nodeEnv = () => cleanEnv({});
const started = Date.now();
const timings: Record<string, number> = {};

function stamp(what: string, since: number): void {
  timings[what] = Date.now() - since;
}

/** One line `node run` printed that contains `text`, parsed. */
async function printed(node: CliProcess, text: string, timeoutMs = 10_000) {
  await node.waitUntil(
    () => node.lines().some((l) => l.includes(text)),
    timeoutMs,
    `a stanza with "${text}"`,
  );
  const line = node.lines().find((l) => l.includes(text))!;
  return { line, stanza: parseStanzaLine(line) };
}

const isMessageWithBody =
  (body: string) =>
  (s: Element): boolean =>
    s.is("message") && s.getChildText("body") === body;

const isIqReply =
  (id: string) =>
  (s: Element): boolean =>
    s.is("iq") && s.attrs.id === id && (s.attrs.type === "result" || s.attrs.type === "error");

/**
 * Whether an XEP-0082 date-time is wall-clock UTC near now (within 10 minutes): XEP-0203 `stamp`,
 * XEP-0319 `since` and the wake-up time are instants, not a process's monotonic clock.
 */
function nearNow(stamp: string | undefined): boolean {
  const ms = stamp === undefined ? Number.NaN : Date.parse(stamp);
  return Math.abs(ms - Date.now()) < 10 * 60_000;
}

/** The defined condition of an error stanza (RFC 6120 §8.3.3). */
function errorCondition(s: Element): string | undefined {
  const error = s.getChild("error");
  const condition = error?.children.find(
    (c): c is Element => typeof c !== "string" && c.name !== "text" && c.attrs.xmlns === NS.stanzas,
  );
  return condition?.name;
}

/** An iq get; `to` undefined: to the user's own account (RFC 6120 §10.3.3), e.g. the roster. */
async function iq(user: XmppUser, to: string | undefined, payload: Element): Promise<Element> {
  const id = nonce("iq");
  await user.send(xml("iq", { type: "get", to, id }, payload));
  return user.waitFor(isIqReply(id), 10_000);
}

async function send(name: string, to: string, body: string): Promise<void> {
  const r = await runCli(["node", "send", "--device", device(name), "--to", to, "--body", body], nodeEnv());
  expect(r.code, `node send ${name} → ${to}: ${r.stderr}`).toBe(0);
}

beforeAll(async () => {
  const t0 = Date.now();
  dir = await mkdtemp(join(tmpdir(), "cxmpp-federation-"));
  dataDir = join(dir, "data");
  gatewayPort = await freeUdpPort();
  const provisionEnv = cleanEnv({ CXMPP_DATA_DIR: dataDir, CXMPP_XMPP_DOMAIN: DOMAIN });
  const provision = async (name: string, allow: string[]) => {
    // DTLS-only devices, as a new gateway makes them: the nodes below speak coaps.
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

  const servers = Promise.allSettled([
    startProsody({
      address: A_ADDRESS,
      vhosts: ["a.localhost"],
      users: ["alice", "bob"].map((username) => ({ username, host: "a.localhost", password: PASSWORD })),
      components: [{ domain: DOMAIN, secret: SECRET }],
      hostsLines: [`${C_ADDRESS} c.localhost`],
    }),
    startProsody({
      address: C_ADDRESS,
      vhosts: ["c.localhost"],
      users: [{ username: "carol", host: "c.localhost", password: PASSWORD }],
      hostsLines: [`${A_ADDRESS} a.localhost ${DOMAIN}`],
    }),
  ]);
  void servers.then(() => stamp("prosody x2", t0));
  // The first device creates the store while the servers start.
  await provision("sensor1", ["alice@a.localhost", "bob@a.localhost", "carol@c.localhost"]);
  const [sa, sc] = await servers;
  if (sa?.status === "fulfilled") a = sa.value;
  if (sc?.status === "fulfilled") c = sc.value;
  for (const s of [sa, sc]) if (s?.status === "rejected") throw s.reason;
  stamp("servers+first device", t0);

  const prosodyA = a!;
  proxy = await startTcpProxy({ host: prosodyA.address, port: prosodyA.componentPort });
  const t1 = Date.now();
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
    ],
    cleanEnv({
      CXMPP_XMPP_SERVICE: `xmpp://127.0.0.1:${proxy.port}`,
      CXMPP_XMPP_DOMAIN: DOMAIN,
      CXMPP_XMPP_SECRET: SECRET,
      CXMPP_MAILBOX_MAX_STANZAS: String(MAILBOX_MAX),
    }),
    dir,
  );
  gateway = gw;
  // Test 7's gateway starts now too (it only has to fail): a wrong secret, straight to Prosody.
  const wrongPort = await freeUdpPort();
  wrongGateway = startCli(
    [
      "gateway",
      "--data-dir",
      join(dir, "wrong-data"),
      "--listen",
      `127.0.0.1:${wrongPort}`,
      "--dtls-listen",
      "off",
    ],
    cleanEnv({
      CXMPP_XMPP_SERVICE: prosodyA.componentService,
      CXMPP_XMPP_DOMAIN: DOMAIN,
      CXMPP_XMPP_SECRET: `${SECRET}-wrong`,
    }),
    dir,
  );
  const users = Promise.all([
    connectUser({
      service: prosodyA.c2sService,
      domain: "a.localhost",
      username: "alice",
      password: PASSWORD,
    }),
    startSlixmpp({
      host: prosodyA.address,
      port: prosodyA.c2sPort,
      jid: "bob@a.localhost/slix",
      password: PASSWORD,
    }),
    connectUser({ service: c!.c2sService, domain: "c.localhost", username: "carol", password: PASSWORD }),
  ]);
  // The other devices while the gateway starts: it sees what `provision` commits while it runs
  // (its device cache follows PRAGMA data_version, gateway/store/device-store.ts).
  await provision("guarded", ["alice@a.localhost"]);
  await provision("sleepy1", ["alice@a.localhost"]);
  await provision("loader", ["alice@a.localhost"]);
  const show = await runCli(["provision", "show", "sensor1", "--json"], provisionEnv, dir);
  const shown = JSON.parse(show.stdout) as { jid: string; key_hex: string; identity: string };
  if (shown.jid !== bare("sensor1") || !/^[0-9a-f]{32}$/.test(shown.key_hex))
    throw new Error(`provision show sensor1: unexpected ${show.stdout}`);
  stamp("provisioning", t0);

  await gw.waitUntil(() => gw.stdout().includes("cxmpp gateway listening on "), 30_000, "listening");
  const t2 = Date.now();
  const run = startCli(["node", "run", "--device", device("sensor1"), "--poll", "0.2"], nodeEnv(), dir);
  sensor1 = run;
  await gw.waitUntil(() => gw.log("federation.online").length > 0, 15_000, "federation.online");
  stamp("gateway online", t1);
  [alice, bob, carol] = await users;
  await run.waitUntil(() => run.stderr().includes(`connected as ${full("sensor1")}`), 20_000, "connected as");
  stamp("node run connected", t2);
  stamp("beforeAll", t0);
});

const logs = failureLogs("federation");

afterAll(async () => {
  await logs.save(
    {
      "gateway.stdout": gateway?.stdout() ?? "",
      "gateway.stderr": gateway?.stderr() ?? "",
      "wrong-gateway.stderr": wrongGateway?.stderr() ?? "",
      "sensor1.stdout": sensor1?.stdout() ?? "",
      "sensor1.stderr": sensor1?.stderr() ?? "",
      "sleepy1.stdout": sleepy?.stdout() ?? "",
      "sleepy1.stderr": sleepy?.stderr() ?? "",
      "prosody-a.log": a?.log() ?? "",
      "prosody-c.log": c?.log() ?? "",
      "alice.received": alice?.received.map((s) => s.toString()).join("\n") ?? "",
      "bob.received": bob?.received.map((s) => s.xml).join("\n") ?? "",
    },
    !alice,
  );
  await Promise.allSettled([sensor1?.stop(), alice?.stop(), bob?.stop(), carol?.stop()]);
  await Promise.allSettled([gateway?.stop(), wrongGateway?.stop(2_000)]);
  await killAllChildren();
  await proxy?.close();
  await Promise.allSettled([a?.stop(), c?.stop()]);
  if (dir) await rm(dir, { recursive: true, force: true });
  timings.total = Date.now() - started;
  console.log(`federation timings (ms): ${JSON.stringify(timings)}`);
});

describe("cxmpp gateway federated with Prosody as an XEP-0114 component", () => {
  it("1. alice (xmpp.js) → node: printed by node run from alice's full JID; node send → alice from the node's full JID", async () => {
    const t = Date.now();
    const user = alice!;
    const down = nonce("alice-to-sensor1");
    await user.send(xml("message", { to: full("sensor1"), type: "chat" }, xml("body", {}, down)));
    const { stanza } = await printed(sensor1!, down);
    expect(stanza.name).toBe("message");
    expect(attr(stanza, "from")).toBe(user.jid);
    expect(textOf(child(stanza, "body"))).toBe(down);

    const up = nonce("sensor1-to-alice");
    await send("sensor1", "alice@a.localhost", up);
    const got = await user.waitFor(isMessageWithBody(up), 10_000);
    expect(got.attrs.from).toBe(full("sensor1"));
    expect(got.getChild("origin-id", NS.sid)?.attrs.id).toBeTruthy();
    stamp("test1", t);
  }, 30_000);

  it("2. bob (slixmpp) ↔ node, both directions", async () => {
    const t = Date.now();
    const peer = bob!;
    const down = nonce("bob-to-sensor1");
    peer.send({ op: "message", to: bare("sensor1"), body: down });
    const { stanza } = await printed(sensor1!, down);
    expect(attr(stanza, "from")).toBe(peer.jid);

    const up = nonce("sensor1-to-bob");
    await send("sensor1", "bob@a.localhost", up);
    const got = await peer.waitFor((s) => s.kind === "message" && s.body === up, 10_000);
    expect(got.from).toBe(full("sensor1"));
    expect(got.xml).toContain(NS.sid);
    stamp("test2", t);
  }, 30_000);

  it("3. version answered by the node; disco#info and ping answered by the gateway, also for a node that is not running", async () => {
    const t = Date.now();
    const user = alice!;
    const version = await iq(user, full("sensor1"), xml("query", { xmlns: NS.version }));
    expect(version.attrs.type, version.toString()).toBe("result");
    expect(version.attrs.from).toBe(full("sensor1"));
    const query = version.getChild("query", NS.version);
    expect(query?.getChildText("name")).toBe("cxmpp-node");
    expect(query?.getChildText("version")).toBeTruthy();

    const checkDisco = (reply: Element) => {
      expect(reply.attrs.type, reply.toString()).toBe("result");
      const info = reply.getChild("query", NS.discoInfo);
      expect(info, reply.toString()).toBeDefined();
      expect(info!.getChildren("identity").length).toBeGreaterThan(0);
      const features = info!.getChildren("feature").map((f) => f.attrs.var);
      expect(features).toContain(NS.discoInfo);
      expect(features).toContain(NS.ping);
    };
    // The running node (full JID), then one that has never run (bare and full JID).
    checkDisco(await iq(user, full("sensor1"), xml("query", { xmlns: NS.discoInfo })));
    checkDisco(await iq(user, bare("guarded"), xml("query", { xmlns: NS.discoInfo })));
    checkDisco(await iq(user, full("guarded"), xml("query", { xmlns: NS.discoInfo })));
    for (const to of [full("sensor1"), bare("guarded"), full("guarded")]) {
      const pong = await iq(user, to, xml("ping", { xmlns: NS.ping }));
      expect(pong.attrs.type, `ping ${to}: ${pong.toString()}`).toBe("result");
      expect(pong.attrs.from).toBe(to);
    }
    stamp("test3", t);
  }, 30_000);

  it("4. presence of a sleepy node: subscribed, available, xa while asleep (idle, wake, caps), available at the next wake-up; a message waits in the mailbox", async () => {
    const t = Date.now();
    const user = alice!;
    const node = startCli(
      ["node", "run", "--device", device("sleepy1"), "--wake", String(WAKE_S), "--poll", String(WAKE_S)],
      nodeEnv(),
      dir,
    );
    sleepy = node;
    try {
      await node.waitUntil(
        () => node.stderr().includes(`connected as ${full("sleepy1")}`),
        20_000,
        "connected as",
      );
      // RFC 6121 §2.1.6: the server delivers subscription states (the `subscribed` below) only to
      // "interested" resources, those that asked for the roster; a real client does so at login.
      const roster = await iq(user, undefined, xml("query", { xmlns: "jabber:iq:roster" }));
      expect(roster.attrs.type).toBe("result");
      const from = user.received.length;
      await user.send(xml("presence", { to: bare("sleepy1"), type: "subscribe" }));
      const list = user.received;
      const show = (s: Element) => s.toString();
      const ofSleepy = (s: Element) => s.is("presence") && (s.attrs.from ?? "").startsWith(bare("sleepy1"));
      const subscribed = await waitIndex(list, (s) => ofSleepy(s) && s.attrs.type === "subscribed", {
        from,
        what: "subscribed",
        show,
      });
      const isAvailable = (s: Element) => ofSleepy(s) && s.attrs.type === undefined && !s.getChild("show");
      const available = await waitIndex(list, isAvailable, { from: subscribed, what: "available", show });
      const p1 = list[available]!;
      expect(p1.attrs.from).toBe(full("sleepy1"));
      const caps = p1.getChild("c", NS.caps);
      expect(caps?.attrs.hash, p1.toString()).toBe("sha-1");
      expect(caps?.attrs.node).toBeTruthy();
      expect(caps?.attrs.ver).toBeTruthy();

      const xa = await waitIndex(
        list,
        (s) => ofSleepy(s) && s.attrs.type === undefined && s.getChildText("show") === "xa",
        { from: available + 1, timeoutMs: 10_000, what: "xa", show },
      );
      const p2 = list[xa]!;
      expect(p2.getChildText("status"), p2.toString()).toBeTruthy();
      expect(p2.getChild("idle", NS.idle)?.attrs.since, p2.toString()).toBeTruthy();
      expect(p2.getChild("wake", NS.sleep)?.attrs.at, p2.toString()).toBeTruthy();
      expect(p2.getChild("c", NS.caps)?.attrs.ver).toBe(caps?.attrs.ver);
      const since = p2.getChild("idle", NS.idle)?.attrs.since;
      const wakeAt = p2.getChild("wake", NS.sleep)?.attrs.at;
      expect.soft(nearNow(since), `idle since=${since} is wall-clock time`).toBe(true);
      expect.soft(nearNow(wakeAt), `wake at=${wakeAt} is wall-clock time`).toBe(true);

      // While it sleeps, a message waits in its mailbox and arrives at the wake-up with a delay (XEP-0203).
      const body = nonce("to-sleepy");
      await user.send(xml("message", { to: full("sleepy1"), type: "chat" }, xml("body", {}, body)));
      const again = await waitIndex(list, isAvailable, {
        from: xa + 1,
        timeoutMs: 10_000,
        what: "available after xa",
        show,
      });
      expect(again).toBeGreaterThan(xa);
      const { stanza } = await printed(node, body, 10_000);
      expect(attr(stanza, "from")).toBe(user.jid);
      const delay = child(stanza, "delay", NS.delay);
      expect(delay, "the mailbox stanza carries <delay/>").toBeDefined();
      expect(attr(delay!, "stamp")).toBeTruthy();
      expect
        .soft(nearNow(attr(delay!, "stamp")), `delay stamp=${attr(delay!, "stamp")} is wall-clock time`)
        .toBe(true);
    } finally {
      await node.stop();
    }
    stamp("test4", t);
  }, 40_000);

  it("5. s2s: carol on a second Prosody ↔ node over real server-to-server federation", async () => {
    const t = Date.now();
    const user = carol!;
    const down = nonce("carol-to-sensor1");
    await user.send(xml("message", { to: full("sensor1"), type: "chat" }, xml("body", {}, down)));
    const { stanza } = await printed(sensor1!, down, 20_000);
    expect(attr(stanza, "from")).toBe(user.jid);

    const up = nonce("sensor1-to-carol");
    await send("sensor1", "carol@c.localhost", up);
    const got = await user.waitFor(isMessageWithBody(up), 15_000);
    expect(got.attrs.from).toBe(full("sensor1"));
    expect(a!.log()).toMatch(/s2s connection c\.localhost->(a\.localhost|iot\.localhost) complete/);
    stamp("test5", t);
  }, 45_000);

  it("6. link cut twice under load: every message arrives, in order; duplicates only with their origin-id", async () => {
    const t = Date.now();
    const user = alice!;
    const link = proxy!;
    const gw = gateway!;
    const N = 300;
    const run = randomUUID().slice(0, 8);
    const bodyOf = (i: number) => `load-${run}-${i}`;
    const pattern = new RegExp(`^load-${run}-(\\d+)$`);
    const mine = () =>
      user.received.filter((s) => s.is("message") && pattern.test(s.getChildText("body") ?? ""));
    const distinct = () => new Set(mine().map((s) => s.getChildText("body"))).size;

    const node = await connectInProcessNode(device("loader"));
    const onlineBefore = gw.log("federation.online").length;
    try {
      // The cuts run beside the load: the first after 50 messages; the second as soon as the backlog
      // of the first outage starts to flow again (stanzas then are in flight on the new link).
      let sent = 0;
      const cuts: number[] = [];
      const controller = (async () => {
        await until(
          () => sent >= 50,
          20_000,
          () => "50 sent",
        );
        cuts.push(distinct());
        await link.cut(1_500);
        const base = distinct();
        await until(
          () => distinct() >= base + 5,
          20_000,
          () => `delivery after cut 1 (${distinct()})`,
        );
        cuts.push(distinct());
        await link.cut(1_500);
      })();
      const acks: Promise<void>[] = [];
      for (let i = 0; i < N; i++) {
        // The first one claims another sender: the gateway must stamp the node's own full JID.
        const attrs: Record<string, string> = { to: "alice@a.localhost", type: "chat" };
        if (i === 0) attrs.from = "mallory@a.localhost/forged";
        acks.push(node.client.send(el(CLIENT, "message", attrs, el(CLIENT, "body", {}, bodyOf(i)))));
        sent = i + 1;
        await new Promise((r) => setTimeout(r, 15));
      }
      await Promise.all(acks); // stored durably by the gateway
      const loadDone = Date.now() - t;
      await controller;
      await until(
        () => distinct() === N,
        30_000,
        () => `all ${N} at alice (have ${distinct()})`,
      );
      await new Promise((r) => setTimeout(r, 500)); // late duplicates, if any

      const got = mine();
      const indices = got.map((s) => Number(pattern.exec(s.getChildText("body")!)![1]));
      // In order: the first arrival of each message comes after the first arrival of every earlier one.
      const firsts: number[] = [];
      const seen = new Set<number>();
      for (const i of indices)
        if (!seen.has(i)) {
          seen.add(i);
          firsts.push(i);
        }
      expect(firsts).toEqual([...Array(N).keys()]);
      // Duplicates: same body again; each must carry the origin-id of the original.
      const originOf = new Map<number, string>();
      let duplicates = 0;
      for (const [k, s] of got.entries()) {
        const i = indices[k]!;
        const origin = s.getChild("origin-id", NS.sid)?.attrs.id;
        expect(origin, `message ${i} has an origin-id`).toBeTruthy();
        expect(s.attrs.from).toBe(full("loader"));
        const first = originOf.get(i);
        if (first === undefined) originOf.set(i, origin!);
        else {
          duplicates++;
          expect(origin, `duplicate of message ${i}`).toBe(first);
        }
      }
      expect(new Set(originOf.values()).size, "distinct messages have distinct origin-ids").toBe(N);
      const stamps = got.flatMap((s) => s.getChild("delay", NS.delay)?.attrs.stamp ?? []);
      const delayed = stamps.length;
      const wrongStamps = stamps.filter((st) => !nearNow(st));
      expect.soft(wrongStamps.slice(0, 3), "delay stamps are wall-clock time").toEqual([]);
      const reconnects = gw.log("federation.online").length - onlineBefore;
      expect(reconnects, "the gateway came back after each cut").toBeGreaterThanOrEqual(2);
      expect(delayed, "stanzas that waited in the outbox carry <delay/>").toBeGreaterThan(0);
      timings.test6_load_ms = loadDone;
      console.log(
        `link-cut: ${N} messages, ${got.length} received, ${duplicates} duplicates (same origin-id), ` +
          `${delayed} with <delay/>, cuts at ${cuts.join(" and ")} delivered, ${reconnects} reconnects, ` +
          `proxy accepted ${link.accepted} connections`,
      );
      timings.test6_duplicates = duplicates;
    } finally {
      await node.close();
    }
    stamp("test6", t);
  }, 60_000);

  it("7. a wrong component secret: the gateway exits non-zero and says not-authorized", async () => {
    const t = Date.now();
    const gw = wrongGateway!;
    let timer: NodeJS.Timeout | undefined;
    const code = await Promise.race([
      gw.exited,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`still running after 20 s\nstdout: ${gw.stdout()}\nstderr: ${gw.stderr()}`)),
          20_000,
        );
      }),
    ]).finally(() => clearTimeout(timer));
    expect(code, gw.stderr()).not.toBe(0);
    expect(gw.stderr()).toContain("not-authorized");
    stamp("test7", t);
  }, 30_000);

  it("8. errors: unknown node → service-unavailable; sender not allowed → not-authorized; mailbox full → resource-constraint", async () => {
    const t = Date.now();
    const user = alice!;
    const body = nonce("to-nobody");
    await user.send(xml("message", { to: bare("nobody"), type: "chat", id: body }, xml("body", {}, body)));
    const bounced = await user.waitFor(
      (s) => s.is("message") && s.attrs.type === "error" && s.attrs.id === body,
    );
    expect(bounced.attrs.from).toBe(bare("nobody"));
    expect(errorCondition(bounced), bounced.toString()).toBe("service-unavailable");
    const iqError = await iq(user, full("nobody"), xml("query", { xmlns: NS.discoInfo }));
    expect(iqError.attrs.type).toBe("error");
    expect(errorCondition(iqError), iqError.toString()).toBe("service-unavailable");

    const peer = bob!;
    const id = nonce("bob-to-guarded");
    peer.send({ op: "message", to: bare("guarded"), body: id, id });
    const refused = await peer.waitFor((s) => s.kind === "message" && s.type === "error" && s.id === id);
    expect(refused.from).toBe(bare("guarded"));
    expect(refused.xml).toMatch(/<not-authorized\b/);

    // guarded never runs: its mailbox holds MAILBOX_MAX stanzas, the next one is refused.
    const ids: string[] = [];
    for (let i = 0; i <= MAILBOX_MAX + 2; i++) {
      const mid = nonce(`fill-${i}`);
      ids.push(mid);
      await user.send(xml("message", { to: bare("guarded"), type: "chat", id: mid }, xml("body", {}, mid)));
    }
    const full1 = await user.waitFor(
      (s) => s.is("message") && s.attrs.type === "error" && ids.includes(s.attrs.id ?? ""),
      10_000,
    );
    expect(errorCondition(full1), full1.toString()).toBe("resource-constraint");
    expect(full1.attrs.id, "the first refused is the one after the limit").toBe(ids[MAILBOX_MAX]);
    stamp("test8", t);
  }, 30_000);
});
