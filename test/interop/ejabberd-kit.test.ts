/**
 * Self-test of the ejabberd 23.01 cluster kit (test/kit/ejabberd.ts, bench/ejabberd-process.ts) with
 * real processes: two nodes form a cluster on loopback; users on different nodes talk; an XEP-0114
 * component (`@xmpp/component` 0.13.1, as the gateway uses it) on node 1 is reached by a user of node 2;
 * node 1 is SIGKILLed and the component moves to node 2 with the same domain; node 1 restarts and is a
 * member again; the Direct TLS component listener presents the test PKI's certificate and refuses a
 * client that trusts another CA; after stop() no process the kit started remains.
 *
 * The steps run in order and share the cluster: each `it` depends on the ones before it.
 */
import { createHash, randomUUID } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { type TLSSocket, connect as tlsConnect } from "node:tls";
import { type Component, component } from "@xmpp/component";
import { type Element, xml } from "@xmpp/xml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type EjabberdCluster, startEjabberdCluster } from "../kit/ejabberd.js";
import { makeTestPki, type TestPki } from "../kit/test-ca.js";
import { connectUser, Inbox, type XmppUser } from "../kit/xmpp-user.js";

const VHOST = "localhost";
const DOMAIN = "a.localhost";
const SECRET = "a-secret";
/** Served only for the TLS step, so that its handshake does not add a route for DOMAIN. */
const TLS_DOMAIN = "t.localhost";
const TLS_SECRET = "t-secret";
const SENSOR = `sensor@${DOMAIN}/cxmpp`;
const PASSWORD = "pw-test";

let pki: TestPki | undefined;
let cluster: EjabberdCluster | undefined;
const users: XmppUser[] = [];
const components: Component[] = [];

const nonce = (who: string): string => `${who}-${randomUUID()}`;
const isMessageWithBody =
  (body: string) =>
  (s: Element): boolean =>
    s.is("message") && s.getChildText("body") === body;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** An echoing component: every message body comes back to its sender as `echo: BODY`. */
async function echoComponent(service: string): Promise<{ link: Component; inbox: Inbox<Element> }> {
  const link = component({ service, domain: DOMAIN, password: SECRET });
  components.push(link);
  const inbox = new Inbox<Element>((s) => s.toString());
  link.on("error", () => undefined); // a killed node shows up here; the steps check delivery instead
  link.on("stanza", (stanza) => {
    inbox.push(stanza);
    const body = stanza.is("message") ? stanza.getChildText("body") : null;
    if (body === null || stanza.attrs.type === "error") return;
    void link
      .send(
        xml("message", { from: stanza.attrs.to, to: stanza.attrs.from }, xml("body", {}, `echo: ${body}`)),
      )
      .catch(() => undefined);
  });
  try {
    await link.start();
  } catch (error) {
    link.reconnect.stop();
    throw error;
  }
  return { link, inbox };
}

const login = async (service: string, username: string): Promise<XmppUser> => {
  const user = await connectUser({ service, domain: VHOST, username, password: PASSWORD });
  users.push(user);
  return user;
};

beforeAll(async () => {
  pki = await makeTestPki({ names: [VHOST, DOMAIN, TLS_DOMAIN], ips: ["127.0.0.1"] });
  const t = performance.now();
  cluster = await startEjabberdCluster({
    components: [
      { domain: DOMAIN, secret: SECRET },
      { domain: TLS_DOMAIN, secret: TLS_SECRET },
    ],
    users: ["alice", "bob"].map((username) => ({ username, host: VHOST, password: PASSWORD })),
    pki: pki.server,
  });
  const { launchMs, joinMs, registerMs } = cluster.timings;
  console.log(
    `ejabberd cluster up in ${(performance.now() - t).toFixed(0)} ms (2 nodes launched in parallel ${launchMs.toFixed(0)} ms, ` +
      `join ${joinMs.toFixed(0)} ms, register 2 users ${registerMs.toFixed(0)} ms)`,
  );
});

afterAll(async () => {
  for (const c of components) c.reconnect.stop();
  for (const u of users) u.client.reconnect.stop();
  await Promise.allSettled([...users.map((u) => u.stop()), ...components.map((c) => c.stop())]);
  await cluster?.stop();
  await pki?.cleanup();
});

describe("ejabberd 23.01 cluster kit", () => {
  let alice: XmppUser; // on node 1
  let bob: XmppUser; // on node 2
  let first: { link: Component; inbox: Inbox<Element> }; // component on node 1

  it("starts two nodes that form one cluster, every listener on 127.0.0.1", async () => {
    const c = cluster!;
    const [n1, n2] = c.nodes;
    expect(c.nodes).toHaveLength(2);
    expect(n1!.name).not.toBe(n2!.name);
    for (const n of c.nodes) {
      expect(n.address).toBe("127.0.0.1");
      expect(n.running).toBe(true);
      expect(alive(n.pid)).toBe(true);
      expect(n.c2sService).toBe(`xmpp://127.0.0.1:${n.c2sPort}`);
      expect(n.componentService).toBe(`xmpp://127.0.0.1:${n.servicePort}`);
      expect(n.serviceTlsPort).toBeTypeOf("number");
      expect(new Set([n.c2sPort, n.servicePort, n.serviceTlsPort]).size).toBe(3);
      // Each node sees both as running mnesia members.
      expect((await c.listCluster(n)).sort()).toEqual([n1!.name, n2!.name].sort());
    }
    expect(alive(c.epmd.pid)).toBe(true);
  });

  it("a user on node 1 and a user on node 2 exchange messages", async () => {
    const [n1, n2] = cluster!.nodes;
    [alice, bob] = await Promise.all([login(n1!.c2sService, "alice"), login(n2!.c2sService, "bob")]);
    const toBob = nonce("to-bob");
    await alice.send(xml("message", { to: bob.jid, type: "chat" }, xml("body", {}, toBob)));
    const got = await bob.waitFor(isMessageWithBody(toBob));
    expect(got.attrs.from).toBe(alice.jid);
    const toAlice = nonce("to-alice");
    await bob.send(xml("message", { to: `alice@${VHOST}`, type: "chat" }, xml("body", {}, toAlice)));
    expect((await alice.waitFor(isMessageWithBody(toAlice))).attrs.from).toBe(bob.jid);
  });

  it("a component on node 1 gets a node-2 user's message and its reply returns (routes are cluster-wide)", async () => {
    first = await echoComponent(cluster!.nodes[0]!.componentService);
    const body = nonce("bob-to-component");
    await bob.send(xml("message", { to: SENSOR, type: "chat" }, xml("body", {}, body)));
    const got = await first.inbox.waitFor(isMessageWithBody(body));
    expect(got.attrs.from).toBe(bob.jid);
    expect(got.attrs.to).toBe(SENSOR);
    const reply = await bob.waitFor(isMessageWithBody(`echo: ${body}`));
    expect(reply.attrs.from).toBe(SENSOR);
  });

  it("after SIGKILL of node 1 the component connects to node 2 with the same domain and is reached again", async () => {
    const [n1, n2] = cluster!.nodes;
    const oldPid = n1!.pid;
    first.link.reconnect.stop(); // its node is about to die: no retries against a dead port
    alice.client.reconnect.stop();
    const t0 = performance.now();
    await n1!.kill();
    expect(alive(oldPid)).toBe(false);
    expect(n1!.running).toBe(false);
    expect(n1!.pid).toBe(-1);

    // Connect to node 2 for the same domain right away; retry on refusal (a stale route would refuse).
    let second: { link: Component; inbox: Inbox<Element> } | undefined;
    let refusals = 0;
    while (!second) {
      try {
        second = await echoComponent(n2!.componentService);
      } catch (error) {
        refusals++;
        if (performance.now() - t0 > 15_000) throw error;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    const acceptedMs = performance.now() - t0;

    // Every message must reach the new connection: a route left to the dead node would swallow some.
    const bodies = Array.from({ length: 10 }, (_, i) => nonce(`failover-${i}`));
    for (const body of bodies)
      await bob.send(xml("message", { to: SENSOR, type: "chat" }, xml("body", {}, body)));
    for (const body of bodies) {
      const got = await second.inbox.waitFor(isMessageWithBody(body), 5_000);
      expect(got.attrs.from).toBe(bob.jid);
      await bob.waitFor(isMessageWithBody(`echo: ${body}`));
    }
    const deliveredMs = performance.now() - t0;
    console.log(
      `failover: node 2 accepted ${DOMAIN} ${acceptedMs.toFixed(0)} ms after SIGKILL of node 1 ` +
        `(${refusals} refusals); 10/10 messages echoed ${deliveredMs.toFixed(0)} ms after the kill`,
    );
    expect(await cluster!.listCluster(n2)).toEqual([n2!.name]);
  });

  it("restart() brings node 1 back as a cluster member, and a user on it reaches the component on node 2", async () => {
    const c = cluster!;
    const [n1, n2] = c.nodes;
    const t = performance.now();
    const { rejoined } = await n1!.restart();
    // It comes back from its own mnesia schema (which lists node 2), without join_cluster.
    expect(rejoined).toBe("schema");
    console.log(
      `restart of node 1 (same spool, member again, listeners accept): ${(performance.now() - t).toFixed(0)} ms`,
    );
    expect(n1!.running).toBe(true);
    expect(alive(n1!.pid)).toBe(true);
    expect((await c.listCluster(n1)).sort()).toEqual([n1!.name, n2!.name].sort());
    expect((await c.listCluster(n2)).sort()).toEqual([n1!.name, n2!.name].sort());

    const again = await login(n1!.c2sService, "alice");
    const body = nonce("alice-after-restart");
    await again.send(xml("message", { to: SENSOR, type: "chat" }, xml("body", {}, body)));
    const reply = await again.waitFor(isMessageWithBody(`echo: ${body}`));
    expect(reply.attrs.from).toBe(SENSOR);
  });

  it("the TLS service listener completes the XEP-0114 handshake with the test CA, and refuses another CA", async () => {
    const p = pki!;
    for (const node of cluster!.nodes) {
      const port = node.serviceTlsPort!;
      const socket = await openTls(port, p.ca.certPem);
      try {
        const der = socket.getPeerX509Certificate()?.raw;
        expect(der && createHash("sha256").update(der).digest("hex")).toBe(p.server.fingerprintSha256);
        expect(await componentHandshake(socket, TLS_DOMAIN, TLS_SECRET)).toBe("<handshake/>");
      } finally {
        socket.destroy();
      }
      // A secret that is wrong fails the handshake: the success above is not a server that accepts anything.
      const wrongSecret = await openTls(port, p.ca.certPem);
      try {
        expect(await componentHandshake(wrongSecret, TLS_DOMAIN, "wrong")).toMatch(/not-authorized/);
      } finally {
        wrongSecret.destroy();
      }
      const refused = await openTls(port, p.wrongCa.certPem).then(
        (s) => {
          s.destroy();
          return undefined;
        },
        (error: NodeJS.ErrnoException) => error,
      );
      expect(refused, "a client trusting only the other CA completed TLS").toBeDefined();
      expect(refused?.code).toMatch(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT/);
    }
  });

  it("stop() leaves no beam.smp, no epmd and no directory behind", async () => {
    const c = cluster!;
    const pids = c.pids();
    expect(pids).toHaveLength(3); // two VMs and the cluster's epmd
    expect(pids).toContain(c.epmd.pid);
    for (const pid of pids) expect(alive(pid)).toBe(true);
    const dirs = c.nodes.map((n) => n.dir);
    for (const c2 of components) c2.reconnect.stop();
    for (const u of users) u.client.reconnect.stop();
    await Promise.allSettled([...users.map((u) => u.stop()), ...components.map((x) => x.stop())]);
    await c.stop();
    for (const pid of pids) expect(alive(pid), `pid ${pid} still runs`).toBe(false);
    expect(c.pids()).toEqual([]);
    for (const dir of dirs) expect(existsSync(dir)).toBe(false);
    // Nor any other process with a node name on its command line (the VMs, ejabberdctl's control nodes).
    const names = c.nodes.map((n) => n.name.split("@")[0]!);
    const left = readdirSync("/proc")
      .filter((d) => /^\d+$/.test(d))
      .map((d) => {
        try {
          return readFileSync(`/proc/${d}/cmdline`, "utf8").replaceAll("\0", " ");
        } catch {
          return ""; // gone meanwhile
        }
      })
      .filter((cmd) => names.some((n) => cmd.includes(n)));
    expect(left).toEqual([]);
    await c.stop(); // idempotent
  });
});

/** TLS to 127.0.0.1:port trusting only `ca`; the name checked is the component domain. */
function openTls(port: number, ca: string): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: "127.0.0.1", port, ca, servername: TLS_DOMAIN });
    socket.once("secureConnect", () => resolve(socket));
    socket.once("error", reject);
  });
}

/**
 * XEP-0114 §3 by hand: the stream header, the server's stream id, `<handshake>` with the lowercase hex
 * SHA-1 of id + secret. Resolves with the server's answer (`<handshake/>` or a stream error).
 */
function componentHandshake(socket: TLSSocket, domain: string, secret: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let data = "";
    let sent = false;
    const timer = setTimeout(() => reject(new Error(`no handshake answer; got: ${data}`)), 5_000);
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      data += chunk;
      const id = /<stream:stream[^>]*\sid=['"]([^'"]+)['"]/.exec(data)?.[1];
      if (id && !sent) {
        sent = true;
        const digest = createHash("sha1")
          .update(id + secret)
          .digest("hex");
        socket.write(`<handshake>${digest}</handshake>`);
      }
      const answer = /<handshake\s*\/>|<handshake><\/handshake>|<stream:error>.*?<\/stream:error>/s.exec(
        data,
      );
      if (sent && answer) {
        clearTimeout(timer);
        resolve(answer[0]);
      }
    });
    socket.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.write(
      `<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' ` +
        `xmlns:stream='http://etherx.jabber.org/streams' to='${domain}'>`,
    );
  });
}
