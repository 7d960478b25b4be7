/**
 * Stanzas from the XMPP network for the gateway's nodes, and what the gateway answers for them
 * (docs/PROTOCOL.md §6): disco#info and ping even while a node sleeps, presence subscriptions for the
 * peers allowed at provisioning, and the RFC 6120 §8.3 errors (service-unavailable for an unknown node,
 * not-authorized for a sender the node does not accept, resource-constraint for a full mailbox, and
 * recipient-unavailable for a sleeping node when the policy says so), and XEP-0323 readouts for a
 * sleeping node (gateway/iot: answered from the fields it last reported, or queued and accepted so).
 * Everything else goes to the node's mailbox.
 */
import { attr, el, type XElement } from "../../codec/index.js";
import { type Logger, silentLogger } from "../../src/core/index.js";
import { allows, type Device } from "../devices.js";
import { CONCENTRATORS } from "../iot/concentrator.js";
import type { IotLayer } from "../iot/iot-layer.js";
import type { GatewayService } from "../session/gateway-service.js";
import { DISCO_INFO, discoInfo, PING } from "../session/node-disco.js";
import { StanzaError } from "../xml/stanza-error.js";

const bare = (jid: string): string => jid.split("/")[0]!;

export class NetworkInbound {
  /** Stanzas refused, by condition (metrics, tests). */
  readonly refused = new Map<string, number>();
  private readonly logger: Logger;

  constructor(
    private readonly service: GatewayService,
    logger?: Logger,
    /** "bounce": a sleeping node's messages and iqs are refused with recipient-unavailable instead. */
    private readonly asleepPolicy: "queue" | "bounce" = "queue",
    /** Readouts for sleeping nodes and the pubsub service's answers; absent: neither is handled. */
    private readonly iot?: IotLayer,
  ) {
    this.logger = logger ?? silentLogger;
  }

  handle(stanza: XElement): void {
    const to = attr(stanza, "to");
    const from = attr(stanza, "from");
    if (to === undefined || from === undefined) return; // the server always addresses both (XEP-0114 §3)
    if (bare(to) === this.service.domain) {
      this.forGateway(stanza, to, from);
      return;
    }
    const device = this.service.devices.byJid(bare(to));
    if (stanza.name === "presence") {
      if (device && !device.revoked) this.presence(stanza, device, from);
      return;
    }
    const type = attr(stanza, "type");
    if (!device || device.revoked) {
      this.refuse(stanza, new StanzaError("service-unavailable"));
      return;
    }
    if (type !== "error" && type !== "result" && !allows(device, from)) {
      this.refuse(stanza, new StanzaError("not-authorized"));
      return;
    }
    if (stanza.name === "iq" && type === "get" && this.answer(stanza, device, to, from)) return;
    const asleep = this.service.asleep(device);
    // A readout for a sleeping node (XEP-0323): the gateway answers from the cache when it can.
    const readout = this.iot !== undefined && asleep && stanza.name === "iq" && type === "get";
    if (readout) {
      const jid = this.service.session(device.identity)?.jid ?? device.jid;
      const replies = this.iot!.readout(stanza, device.identity, jid);
      if (replies) {
        for (const r of replies) this.reply(r);
        return;
      }
    }
    if (this.asleepPolicy === "bounce" && type !== "error" && type !== "result" && asleep) {
      this.refuse(stanza, new StanzaError("recipient-unavailable"));
      return;
    }
    const outcome = this.service.deliverTo(device, stanza);
    if (outcome === "full") {
      this.refuse(stanza, new StanzaError("resource-constraint"));
      return;
    }
    const accepted = readout ? this.iot!.queued(stanza, device.identity) : undefined;
    // Accepted only once it is safely queued: if the store cannot take it, the sender hears so.
    this.service.committed().then(
      () => accepted && this.reply(accepted),
      () => {
        if (accepted) this.iot!.readouts.cancel(stanza, device.identity);
        this.refuse(stanza, new StanzaError("internal-server-error", "wait"));
      },
    );
  }

  /** disco#info and ping for a node, answered by the gateway whether or not the node is awake. */
  private answer(stanza: XElement, device: Device, to: string, from: string): boolean {
    const query = stanza.children.find((c): c is XElement => typeof c !== "string");
    if (!query) return false;
    const id = attr(stanza, "id") ?? "";
    if (query.ns === DISCO_INFO && query.name === "query") {
      this.reply(result(id, to, from, discoInfo(device.identity, attr(query, "node"))));
      return true;
    }
    if (query.ns === PING && query.name === "ping") {
      this.reply(result(id, to, from));
      return true;
    }
    return false;
  }

  /** RFC 6121 §3: allowed peers are pre-approved; everybody else is told no. Probes get the state. */
  private presence(stanza: XElement, device: Device, from: string): void {
    const type = attr(stanza, "type");
    const peer = bare(from);
    if (type === "subscribe") {
      const ok = allows(device, from);
      this.reply(
        el("jabber:client", "presence", {
          from: device.jid,
          to: peer,
          type: ok ? "subscribed" : "unsubscribed",
        }),
      );
      if (ok) this.reply(this.service.presenceNow(device, peer));
    } else if (type === "probe" && allows(device, from)) {
      this.reply(this.service.presenceNow(device, peer));
    }
    // Availability of peers is not forwarded: it would cost the node air time for nothing it uses.
  }

  /**
   * Stanzas to the gateway's own domain: disco#info, ping and the XEP-0326 concentrator requests
   * (gateway/iot/concentrator.ts); other requests are not served.
   */
  private forGateway(stanza: XElement, to: string, from: string): void {
    if (this.iot?.consume(stanza)) return; // the pubsub service's answers to the gateway's publishes
    // XEP-0326: a readout or control for one of the concentrator's nodes goes to that device.
    const passed = this.iot?.concentrator?.passThrough(stanza);
    if (passed) {
      if ("refused" in passed) this.refuse(stanza, new StanzaError(passed.refused));
      else this.handle(passed.stanza);
      return;
    }
    if (stanza.name !== "iq") return;
    const type = attr(stanza, "type");
    if (type !== "get" && type !== "set") return;
    const concentrator = this.iot?.concentratorAnswer(stanza);
    if (concentrator) {
      this.reply(concentrator);
      return;
    }
    const query = stanza.children.find((c): c is XElement => typeof c !== "string");
    const id = attr(stanza, "id") ?? "";
    if (type === "get" && query?.ns === DISCO_INFO) {
      this.reply(
        result(
          id,
          to,
          from,
          el(
            DISCO_INFO,
            "query",
            {},
            el(DISCO_INFO, "identity", { category: "component", type: "generic", name: "cxmpp gateway" }),
            el(DISCO_INFO, "feature", { var: DISCO_INFO }),
            el(DISCO_INFO, "feature", { var: PING }),
            ...(this.iot?.concentrator ? [el(DISCO_INFO, "feature", { var: CONCENTRATORS })] : []),
          ),
        ),
      );
    } else if (type === "get" && query?.ns === PING) this.reply(result(id, to, from));
    else this.refuse(stanza, new StanzaError("service-unavailable"));
  }

  private refuse(stanza: XElement, error: StanzaError): void {
    if (attr(stanza, "type") === "error") return; // never answer an error with one (RFC 6120 §8.3.1)
    this.refused.set(error.condition, (this.refused.get(error.condition) ?? 0) + 1);
    this.logger.log("info", "federation.refused_stanza", {
      condition: error.condition,
      from: attr(stanza, "from"),
      to: attr(stanza, "to"),
    });
    this.reply(error.reply(stanza));
  }

  private reply(stanza: XElement): void {
    this.service.route(stanza);
  }
}

function result(id: string, from: string, to: string, payload?: XElement): XElement {
  return el("jabber:client", "iq", { type: "result", id, from, to }, ...(payload ? [payload] : []));
}
