/**
 * The presence the gateway shows for its nodes (docs/PROTOCOL.md §4.3): available while awake, `xa`
 * with the wake time while asleep (RFC 6121 §4.7.2.1, XEP-0319), unavailable without a session;
 * broadcast to each node's allowed peers when it changes (RFC 6121 §4.2), and answered on request.
 * It does not decide when a node sleeps (NodeSession) or how stanzas travel (router.ts).
 */
import { el, type XElement } from "../../codec/index.js";
import type { Clock, Logger } from "../../src/core/index.js";
import type { Device } from "../devices.js";
import { xep0082 } from "../xml/stamps.js";
import { capsElement } from "./node-disco.js";
import type { NodeSession } from "./node-session.js";
import type { SessionRegistry } from "./session-registry.js";
import type { GatewayStats } from "./stats.js";

/** Where a node stands, as its presence shows it (RFC 6121 §4.7.2.1 `show`). */
export type NodeState = "available" | "xa" | "unavailable";

export interface PresenceOptions {
  readonly domain: string;
  readonly resource: string;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly stats: GatewayStats;
  /** Sends a presence stanza on its way (the router). */
  readonly route: (stanza: XElement) => void;
}

const SLEEP = "urn:cxmpp:sleep:0";
const IDLE = "urn:xmpp:idle:1";

export class PresenceBroadcaster {
  // What each node was last shown with is kept on its session (NodeSession.shown) through the registry,
  // which counts the states for metrics: no map keyed by identity beside the sessions.
  constructor(
    private readonly registry: SessionRegistry,
    private readonly o: PresenceOptions,
  ) {}

  /** What a node's presence shows now. */
  state(session: NodeSession, now = this.o.clock.now()): NodeState {
    if (session.peer === undefined) return "unavailable";
    return session.asleep(now) ? "xa" : "available";
  }

  /** Shows a node's presence to its allowed peers when it changed (RFC 6121 §4.2 broadcast). */
  show(session: NodeSession, now = this.o.clock.now()): void {
    const state = this.state(session, now);
    if (session.shown === state) return;
    this.registry.setShown(session, state);
    this.o.logger.log("info", "gateway.presence", { jid: session.jid, state, wakesAt: session.wakesAt });
    for (const peer of session.device.peers) {
      this.o.stats.presenceSent++;
      this.o.route(presenceOf(session, state, peer, this.o.domain));
    }
  }

  /** The presence a device shows now, for one peer (answers to probes and subscriptions). */
  now(device: Device, to: string): XElement {
    const session = this.registry.get(device.identity);
    if (!session) {
      return el("jabber:client", "presence", {
        from: `${device.jid}/${this.o.resource}`,
        to,
        type: "unavailable",
      });
    }
    return presenceOf(session, this.state(session), to, this.o.domain);
  }

  /** Shows every node's presence again (the federation link came back: the server forgot it). */
  reannounce(): void {
    for (const session of this.registry.all) {
      this.registry.setShown(session, undefined);
      this.show(session);
    }
  }
}

/**
 * A node's presence for one peer: available; `xa` while asleep (RFC 6121 §4.7.2.1) with the last time
 * it spoke (XEP-0319 idle) and when it will wake (status text and <wake/> for machines); unavailable.
 */
export function presenceOf(session: NodeSession, state: NodeState, to: string, domain: string): XElement {
  const base = { from: session.jid, to };
  if (state === "unavailable") return el("jabber:client", "presence", { ...base, type: "unavailable" });
  const caps = capsElement(session.device.identity);
  if (state === "available") return el("jabber:client", "presence", base, caps);
  const wakesAt = session.wakesAt ?? session.lastSeen;
  return el(
    "jabber:client",
    "presence",
    base,
    el("jabber:client", "show", {}, "xa"),
    el("jabber:client", "status", {}, `asleep until ${xep0082(wakesAt)}`),
    el(IDLE, "idle", { since: xep0082(session.lastSeen) }),
    el(SLEEP, "wake", { at: xep0082(wakesAt), from: domain }),
    caps,
  );
}
