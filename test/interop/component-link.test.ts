/**
 * The component link (gateway/federation/component-link.ts) against real Prosody 0.12 servers (issue 16,
 * items 1 and 2): several servers in `xmpp_service` order with failover when the one in use dies, and
 * the XEP-0114 stream inside Direct TLS (`xmpps://`) with the server's certificate checked against a
 * test CA or a pinned fingerprint, and refused otherwise.
 *
 * Each Prosody runs on its own loopback address without s2s, so this file can run beside the others.
 */
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { xml } from "@xmpp/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { el, JABBER_CLIENT, type XElement } from "../../codec/index.js";
import { ComponentLink, type ComponentLinkOptions } from "../../gateway/federation/component-link.js";
import type { LogLevel } from "../../src/core/index.js";
import { startTcpProxy } from "../kit/federation-kit.js";
import { type Prosody, startProsody } from "../kit/prosody.js";
import { makeTestPki, type TestPki } from "../kit/test-ca.js";
import { until } from "../kit/wait.js";
import { connectUser, Inbox, type XmppUser } from "../kit/xmpp-user.js";

const COMPONENT = "iot.localhost";
const SECRET = "link-secret";
const PASSWORD = "pw-link";

const servers: Prosody[] = [];
const links: ComponentLink[] = [];
const users: XmppUser[] = [];
let pki: TestPki | undefined;

async function server(address: string, tls?: TestPki): Promise<Prosody> {
  const p = await startProsody({
    address,
    s2sPort: null,
    vhosts: ["localhost"],
    users: [{ username: "alice", host: "localhost", password: PASSWORD }],
    components: [{ domain: COMPONENT, secret: SECRET }],
    ...(tls ? { componentTls: { certificate: tls.server.cert, key: tls.server.key } } : {}),
  });
  servers.push(p);
  return p;
}

interface Logged {
  readonly level: LogLevel;
  readonly event: string;
  readonly fields: Record<string, unknown>;
}

/** A link with an inbox and its log, stopped after the file. */
function link(options: Omit<ComponentLinkOptions, "domain" | "secret" | "logger">) {
  const inbox = new Inbox<XElement>((s) => JSON.stringify(s));
  const log: Logged[] = [];
  let online = 0;
  let offline = 0;
  const l = new ComponentLink(
    {
      domain: COMPONENT,
      secret: SECRET,
      backoffMs: 100,
      maxBackoffMs: 400,
      ...options,
      logger: { log: (level, event, fields) => log.push({ level, event, fields: fields ?? {} }) },
    },
    {
      stanza: (s) => inbox.push(s),
      online: () => online++,
      offline: () => offline++,
    },
  );
  links.push(l);
  return {
    link: l,
    inbox,
    log,
    counts: () => ({ online, offline }),
  };
}

async function alice(p: Prosody): Promise<XmppUser> {
  const u = await connectUser({
    service: p.c2sService,
    domain: "localhost",
    username: "alice",
    password: PASSWORD,
    resource: "r",
  });
  users.push(u);
  return u;
}

/** alice on `p` messages the component; the link must hand that very message on. */
async function roundTrip(p: Prosody, l: ReturnType<typeof link>): Promise<void> {
  const user = await alice(p);
  const id = `m-${randomUUID().slice(0, 8)}`;
  await user.send(xml("message", { to: `sensor@${COMPONENT}`, id, type: "chat" }, xml("body", {}, id)));
  const got = await l.inbox.waitFor((s) => s.attrs.find((a) => a.name === "id")?.value === id, 5_000, id);
  expect(got.name).toBe("message");
  // And back: the component's stanza reaches alice on the same server.
  const back = `b-${randomUUID().slice(0, 8)}`;
  expect(
    l.link.send(
      el(JABBER_CLIENT, "message", { from: `sensor@${COMPONENT}`, to: "alice@localhost/r", id: back }),
    ),
  ).toBe(true);
  await user.waitFor((s) => s.attrs.id === back, 5_000);
  await user.stop();
}

beforeAll(async () => {
  pki = await makeTestPki({
    names: ["localhost"],
    ips: ["127.0.0.1", "127.0.0.21", "127.0.0.22", "127.0.0.23"],
  });
}, 30_000);

afterAll(async () => {
  for (const u of users) await u.stop().catch(() => {});
  for (const l of links) await l.stop();
  for (const p of servers) await p.stop();
  await pki?.cleanup();
});

describe("plain XEP-0114 beyond loopback", () => {
  it("is accepted with a warning naming the server (nothing is connected here)", () => {
    const off = link({ services: ["xmpp://192.0.2.10:5347", "xmpps://192.0.2.11:5223"] });
    const warned = off.log.filter((e) => e.event === "federation.plaintext");
    expect(warned.map((e) => e.fields.service)).toEqual(["xmpp://192.0.2.10:5347"]);
    expect(warned[0]?.level).toBe("warn");
    const local = link({ services: ["xmpp://127.0.0.1:5347", "xmpp://localhost:5347", "xmpp://[::1]:5347"] });
    expect(local.log.filter((e) => e.event === "federation.plaintext")).toEqual([]);
  });
});

describe("several XMPP servers", () => {
  it("starts on the first that answers, fails over when it dies, and the next one routes both ways", async () => {
    const p1 = await server("127.0.0.21");
    const p2 = await server("127.0.0.22");
    // A first entry where nothing listens: skipped at start.
    const dead = "xmpp://127.0.0.20:1";
    const l = link({ services: [dead, p1.componentService, p2.componentService] });
    await l.link.start();
    expect(l.link.online).toBe(true);
    expect(l.link.service).toBe(p1.componentService);
    expect(l.log.some((e) => e.event === "federation.unreachable" && e.fields.service === dead)).toBe(true);
    await roundTrip(p1, l);

    process.kill(p1.pid, "SIGKILL"); // no stream close: the TCP connection just ends
    await until(
      () => l.link.online && l.link.service === p2.componentService,
      10_000,
      () => "failover to p2",
    );
    expect(l.link.failovers).toBe(1);
    expect(l.counts()).toEqual({ online: 2, offline: 1 });
    await roundTrip(p2, l);
  }, 60_000);
});

describe("a server that goes silent without closing the connection", () => {
  it("is probed, given up on, and the link fails over to the next server", async () => {
    const p1 = await server("127.0.0.25");
    const p2 = await server("127.0.0.26");
    const proxy = await startTcpProxy({ host: p1.address, port: p1.componentPort });
    try {
      const via = `xmpp://127.0.0.1:${proxy.port}`;
      const l = link({ services: [via, p2.componentService], keepaliveMs: 300, keepaliveTimeoutMs: 300 });
      await l.link.start();
      expect(l.link.service).toBe(via);
      // Quiet but alive: probes come back, the link stays.
      await new Promise((r) => setTimeout(r, 1_000));
      expect(l.link.silences).toBe(0);
      expect(l.link.service).toBe(via);
      proxy.freeze();
      await until(
        () => l.link.online && l.link.service === p2.componentService,
        10_000,
        () => "failover to p2",
      );
      expect(l.link.silences).toBe(1);
      expect(l.log.some((e) => e.event === "federation.silent")).toBe(true);
      await roundTrip(p2, l);
    } finally {
      await proxy.close();
    }
  }, 30_000);
});

describe("Direct TLS (xmpps://)", () => {
  it("connects when the certificate chains to the configured CA, and the stream works", async () => {
    const p = await server("127.0.0.23", pki);
    const l = link({ services: [p.componentTlsService!], tls: { ca: readFileSync(pki!.ca.cert, "utf8") } });
    await l.link.start();
    expect(l.link.online).toBe(true);
    await roundTrip(p, l);
    await l.link.stop();
  }, 30_000);

  it("refuses a certificate from another CA, and fails over to a server it can trust", async () => {
    const p = servers.find((s) => s.componentTlsService)!;
    const wrongCa = readFileSync(pki!.wrongCa.cert, "utf8");
    const l = link({ services: [p.componentTlsService!], tls: { ca: wrongCa } });
    await l.link.start();
    expect(l.link.online).toBe(false);
    const refused = l.log.find((e) => e.event === "federation.unreachable");
    expect(String(refused?.fields.error)).toMatch(/failed verification|self.signed|unable to (get|verify)/i);
    await l.link.stop();
    expect(l.counts().online).toBe(0);
  }, 30_000);

  it("refuses a host name the certificate does not carry, even from the trusted CA", async () => {
    const elsewhere = await makeTestPki({ names: ["elsewhere.example"], ips: ["127.0.0.99"] });
    try {
      const p = await server("127.0.0.24", elsewhere);
      const l = link({
        services: [p.componentTlsService!],
        tls: { ca: readFileSync(elsewhere.ca.cert, "utf8") },
      });
      await l.link.start();
      expect(l.link.online).toBe(false);
      const refused = l.log.find((e) => e.event === "federation.unreachable");
      expect(String(refused?.fields.error)).toMatch(/ERR_TLS_CERT_ALTNAME_INVALID/);
      await l.link.stop();
    } finally {
      await elsewhere.cleanup();
    }
  }, 30_000);

  it("trusts a pinned certificate without any CA, and refuses any other pin", async () => {
    const p = servers.find((s) => s.componentTlsService)!;
    const good = link({ services: [p.componentTlsService!], tls: { pins: [pki!.server.fingerprintSha256] } });
    await good.link.start();
    expect(good.link.online).toBe(true);
    await roundTrip(p, good);
    await good.link.stop();

    const bad = link({ services: [p.componentTlsService!], tls: { pins: ["0".repeat(64)] } });
    await bad.link.start();
    expect(bad.link.online).toBe(false);
    const refused = bad.log.find((e) => e.event === "federation.unreachable");
    expect(String(refused?.fields.error)).toContain("matches no xmpp_tls_pin");
    await bad.link.stop();
  }, 30_000);
});
