/**
 * The real-peer kit against a real Prosody 0.12: an XEP-0114 component (`@xmpp/component` 0.13.1, the
 * library the gateway uses for its link) serves `iot.localhost`, and independent clients reach it:
 * xmpp.js 0.14 (`@xmpp/client`), slixmpp (Python) and, over real server-to-server federation with
 * dialback (XEP-0220), a user of a second Prosody on 127.0.0.2.
 *
 * The component echoes every message body back to the sender, so each round trip proves both routing
 * directions: client → server → component (the server stamps the sender's full JID, RFC 6120 §8.1.2.1)
 * and component → server → client (XEP-0114 §3: the component's stanzas carry from and to).
 *
 * This is the only test file that uses s2s: both servers must listen on 5269 (see test/kit/prosody.ts),
 * so no other test file may run s2s concurrently with it.
 */
import { randomUUID } from "node:crypto";
import { type Component, component } from "@xmpp/component";
import type { XmppError } from "@xmpp/connection";
import { type Element, xml } from "@xmpp/xml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Prosody, startProsody } from "../kit/prosody.js";
import { type SlixPeer, startSlixmpp } from "../kit/slixmpp.js";
import { connectUser, Inbox, type XmppUser } from "../kit/xmpp-user.js";

const COMPONENT = "iot.localhost";
const SECRET = "iot-secret";
const SENSOR = `sensor1@${COMPONENT}/cxmpp`;
const PASSWORD = "pw-test";

let a: Prosody | undefined;
let c: Prosody | undefined;
let iot: Component | undefined;
const iotInbox = new Inbox<Element>((s) => s.toString());
const iotErrors: XmppError[] = [];
let alice: XmppUser | undefined;
let bob: SlixPeer | undefined;
let carol: XmppUser | undefined;

/** A chat message with a fresh body, so that no other step's stanza can satisfy a wait. */
const nonce = (who: string): string => `${who}-${randomUUID()}`;

const isMessageWithBody =
  (body: string) =>
  (s: Element): boolean =>
    s.is("message") && s.getChildText("body") === body;

beforeAll(async () => {
  const users = ["alice", "bob"].map((username) => ({ username, host: "a.localhost", password: PASSWORD }));
  // Both servers at once (~0.2 s each); each finds the other through its hosts file for s2s. Settled,
  // not all: if one fails, the other is still assigned and afterAll stops it.
  const started = await Promise.allSettled([
    startProsody({
      vhosts: ["a.localhost"],
      users,
      components: [{ domain: COMPONENT, secret: SECRET }],
      hostsLines: ["127.0.0.2 c.localhost"],
    }),
    startProsody({
      address: "127.0.0.2",
      vhosts: ["c.localhost"],
      users: [{ username: "carol", host: "c.localhost", password: PASSWORD }],
      hostsLines: [`127.0.0.1 a.localhost ${COMPONENT}`],
    }),
  ]);
  const [startedA, startedC] = started;
  if (startedA?.status === "fulfilled") a = startedA.value;
  if (startedC?.status === "fulfilled") c = startedC.value;
  for (const s of started) if (s.status === "rejected") throw s.reason;
  const prosodyA = a!;
  const prosodyC = c!;

  const link = component({ service: prosodyA.componentService, domain: COMPONENT, password: SECRET });
  iot = link;
  link.on("error", (error) => iotErrors.push(error));
  link.on("stanza", (stanza) => {
    iotInbox.push(stanza);
    const body = stanza.is("message") ? stanza.getChildText("body") : null;
    if (body === null || stanza.attrs.type === "error") return;
    // The reply swaps from and to; XEP-0114 §3 requires both on every stanza the component sends.
    void link.send(
      xml(
        "message",
        { from: stanza.attrs.to, to: stanza.attrs.from, type: "chat" },
        xml("body", {}, `echo: ${body}`),
      ),
    );
  });
  await link.start();

  [alice, bob, carol] = await Promise.all([
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
    connectUser({
      service: prosodyC.c2sService,
      domain: "c.localhost",
      username: "carol",
      password: PASSWORD,
    }),
  ]);
});

afterAll(async () => {
  // Clients first so that the servers stop without open sessions; each step runs even if one fails.
  if (iot) iot.reconnect.stop();
  await Promise.allSettled([alice?.stop(), bob?.stop(), carol?.stop(), iot?.stop()]);
  await Promise.allSettled([a?.stop(), c?.stop()]);
});

describe("Prosody + XEP-0114 component + independent clients", () => {
  it("an xmpp.js user's message reaches the component from its full JID, and the reply comes back", async () => {
    const user = alice!;
    expect(user.jid).toMatch(/^alice@a\.localhost\/.+$/);
    const body = nonce("alice");
    await user.send(xml("message", { to: SENSOR, type: "chat" }, xml("body", {}, body)));

    const got = await iotInbox.waitFor(isMessageWithBody(body));
    expect(got.attrs.from).toBe(user.jid);
    expect(got.attrs.to).toBe(SENSOR);

    const reply = await user.waitFor(isMessageWithBody(`echo: ${body}`));
    expect(reply.attrs.from).toBe(SENSOR);
    expect(reply.attrs.to).toBe(user.jid);
    expect(iotErrors).toEqual([]);
  });

  it("a slixmpp user's message reaches the component from its full JID, and the reply comes back", async () => {
    const peer = bob!;
    expect(peer.jid).toBe("bob@a.localhost/slix");
    const body = nonce("bob");
    peer.send({ op: "message", to: SENSOR, body });

    const got = await iotInbox.waitFor(isMessageWithBody(body));
    expect(got.attrs.from).toBe(peer.jid);
    expect(got.attrs.to).toBe(SENSOR);

    const reply = await peer.waitFor((s) => s.kind === "message" && s.body === `echo: ${body}`);
    expect(reply.from).toBe(SENSOR);
    expect(reply.type).toBe("chat");
    // The raw XML is what slixmpp parsed off the wire, not a re-rendering of our JSON fields.
    expect(reply.xml).toContain(`<body>echo: ${body}</body>`);
    expect(peer.errors).toEqual([]);
  });

  it("a wrong component secret is refused with the stream error not-authorized (XEP-0114 §3)", async () => {
    const wrong = component({ service: a!.componentService, domain: COMPONENT, password: `${SECRET}-wrong` });
    const errors: XmppError[] = [];
    wrong.on("error", (error) => errors.push(error));
    try {
      const refused = await wrong.start().then(
        () => undefined,
        (error: unknown) => error as XmppError,
      );
      expect(refused, "start() resolved: the server accepted a wrong secret").toBeDefined();
      expect(refused?.name).toBe("StreamError");
      expect(refused?.condition).toBe("not-authorized");
      // Seen on the `error` event as well, which is where a long-running component learns of it.
      expect(errors.map((e) => e.condition)).toContain("not-authorized");
    } finally {
      // 0.13.1 retries the same wrong secret every second until told to stop.
      wrong.reconnect.stop();
      await wrong.stop().catch(() => undefined);
    }

    // The refused handshake did not disturb the authenticated component.
    expect(iot!.status).toBe("online");
    const body = nonce("after-refusal");
    await alice!.send(xml("message", { to: SENSOR, type: "chat" }, xml("body", {}, body)));
    await alice!.waitFor(isMessageWithBody(`echo: ${body}`));
  });

  it("a user of a second Prosody reaches the component over real s2s with dialback, and the reply returns", async () => {
    const user = carol!;
    expect(user.jid).toMatch(/^carol@c\.localhost\/.+$/);
    const body = nonce("carol");
    await user.send(xml("message", { to: SENSOR, type: "chat" }, xml("body", {}, body)));

    // The first stanza sets up s2s both ways (c → a, then dialback a → c to verify): allow for that.
    const got = await iotInbox.waitFor(isMessageWithBody(body), 10_000);
    expect(got.attrs.from).toBe(user.jid);

    const reply = await user.waitFor(isMessageWithBody(`echo: ${body}`), 10_000);
    expect(reply.attrs.from).toBe(SENSOR);
    // It really went through federation: server a logged an authenticated s2s session with c.localhost.
    expect(a!.log()).toMatch(/Incoming s2s connection c\.localhost->iot\.localhost complete/);
  });
});
