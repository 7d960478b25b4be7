/**
 * What the gateway says about a node when asked (XEP-0030 disco#info), also while the node sleeps, and
 * the XEP-0115 entity capabilities hash that lets peers cache it.
 */
import { createHash } from "node:crypto";
import { el, type XElement } from "../../codec/index.js";

export const DISCO_INFO = "http://jabber.org/protocol/disco#info";
export const CAPS = "http://jabber.org/protocol/caps";
export const PING = "urn:xmpp:ping";
/** XEP-0115 §4: the node attribute names the software. */
export const CAPS_NODE = "https://cxmpp.dev/node";

/** XEP-0030 §3.1: a constrained node answers as an automated client. */
const IDENTITY = { category: "client", type: "bot" } as const;

/** Features every node has through its gateway (sorted as XEP-0115 §5.1 wants them). */
export const NODE_FEATURES: readonly string[] = [
  CAPS,
  DISCO_INFO,
  "jabber:iq:version",
  "urn:xmpp:delay",
  "urn:xmpp:idle:1",
  PING,
  "urn:xmpp:sid:0",
].sort();

/** XEP-0115 §5.1 verification string: identities then features, each followed by '<'; SHA-1, base64. */
export function capsVer(name: string): string {
  let s = `${IDENTITY.category}/${IDENTITY.type}//${name}<`;
  for (const f of NODE_FEATURES) s += `${f}<`;
  return createHash("sha1").update(s, "utf8").digest("base64");
}

/** The disco#info result payload for a node (XEP-0030 §3.1), echoing the queried caps node if any. */
export function discoInfo(name: string, node?: string): XElement {
  return el(
    DISCO_INFO,
    "query",
    node ? { node } : {},
    el(DISCO_INFO, "identity", { category: IDENTITY.category, type: IDENTITY.type, name }),
    ...NODE_FEATURES.map((f) => el(DISCO_INFO, "feature", { var: f })),
  );
}

/** The <c/> element a node's presence carries (XEP-0115 §4). */
export function capsElement(name: string): XElement {
  return el(CAPS, "c", { hash: "sha-1", node: CAPS_NODE, ver: capsVer(name) });
}
