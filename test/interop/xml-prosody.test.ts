/**
 * The component link's XML parser against a real Prosody 0.12 (issue 14, item 1): a user sends, as raw
 * XML on its c2s stream, a message whose body holds a CDATA section followed by text, astral and
 * non-ASCII characters, and an extension element whose attribute value holds a literal newline; the
 * gateway's ComponentLink (in this process, XEP-0114 to Prosody) must hand on exactly the infoset XML
 * gives that stanza: the body text complete, the attribute value normalised (XML 1.0 §3.3.3).
 *
 * One Prosody on its own loopback address without s2s, so this file can run beside the other interop
 * files.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { JABBER_CLIENT, type XElement } from "../../codec/index.js";
import { ComponentLink } from "../../gateway/federation/component-link.js";
import { type Prosody, startProsody } from "../kit/prosody.js";
import { connectUser, Inbox, type XmppUser } from "../kit/xmpp-user.js";

const ADDRESS = "127.0.0.9";
const COMPONENT = "iot.localhost";
const SECRET = "xml-secret";
const PASSWORD = "pw-xml";

let prosody: Prosody | undefined;
let link: ComponentLink | undefined;
let alice: XmppUser | undefined;
const inbox = new Inbox<XElement>((s) => JSON.stringify(s));

beforeAll(async () => {
  prosody = await startProsody({
    address: ADDRESS,
    s2sPort: null,
    vhosts: ["a.localhost"],
    users: [{ username: "alice", host: "a.localhost", password: PASSWORD }],
    components: [{ domain: COMPONENT, secret: SECRET }],
  });
  link = new ComponentLink(
    { services: [prosody.componentService], domain: COMPONENT, secret: SECRET },
    { stanza: (s) => inbox.push(s), online: () => {}, offline: () => {} },
  );
  await link.start();
  expect(link.online).toBe(true);
  alice = await connectUser({
    service: prosody.c2sService,
    domain: "a.localhost",
    username: "alice",
    password: PASSWORD,
    resource: "r",
  });
}, 30_000);

afterAll(async () => {
  await alice?.stop();
  await link?.stop();
  await prosody?.stop();
});

describe("a stanza from a real Prosody through the component link", () => {
  it("CDATA followed by text, astral characters and a literal newline in an attribute arrive exact", async () => {
    const id = `x-${randomUUID().slice(0, 8)}`;
    const raw =
      `<message to='sensor1@${COMPONENT}/cxmpp' id='${id}' type='chat'>` +
      "<body><![CDATA[<b>bold</b> & co]]> and after 😀 é</body>" +
      "<x xmlns='urn:example:xml' note='line one\nline two' tab='a\tb' keep='c&#10;d'/>" +
      "</message>";
    // raw text on the c2s stream, as written (xmpp.js's send would serialise an element of its own)
    await (alice!.client as unknown as { write(text: string): Promise<void> }).write(raw);
    const got = await inbox.waitFor((s) => s.attrs.some((a) => a.name === "id" && a.value === id), 10_000);
    expect(got.ns).toBe(JABBER_CLIENT);
    // Prosody keeps attributes in a Lua table: their order on the wire is its own (XML gives it no
    // meaning), so attributes are compared by name here.
    const x = got.children[1] as XElement;
    const byName = (e: XElement) => [...e.attrs].sort((p, q) => (p.name < q.name ? -1 : 1));
    expect(got.children[0]).toEqual({
      kind: "element",
      ns: JABBER_CLIENT,
      name: "body",
      attrs: [],
      children: ["<b>bold</b> & co and after 😀 é"],
    });
    expect(x.ns).toBe("urn:example:xml");
    expect(x.name).toBe("x");
    expect(x.children).toEqual([]);
    expect(byName(x)).toEqual([
      // `c&#10;d` is a line feed in the value Prosody parsed, but Prosody 0.12 writes attribute values
      // with only & < > ' " escaped: the line feed goes out literally, and XML 1.0 §3.3.3 makes a
      // literal line feed a space. What the component receives is therefore "c d", exactly.
      { ns: "", name: "keep", value: "c d" },
      { ns: "", name: "note", value: "line one line two" },
      { ns: "", name: "tab", value: "a b" },
    ]);
    expect(got.children).toHaveLength(2);
  }, 20_000);
});
