/**
 * Every device's readings into XEP-0060 publish-subscribe (config `pubsub_service`): each `<fields>`
 * element a node sends (CON or NON, to anyone or to nobody) is published as one item at the service,
 * on the pubsub node named after the device: its bare JID (`sensor1@iot.example.org`), which
 * `disco#items` on the service lists once the node exists.
 *
 * The publish iq (§7.1.1) goes from the gateway's component domain through the durable outbox, in the
 * same write batch as the reading it carries: a publish survives a link cut and a restart. Its item id
 * is the iq id, so that a publish the outbox sends again after a cut replaces its item rather than
 * adding a second one. The node is not created beforehand: the service creates it on the first
 * publish (Prosody: `autocreate_on_publish`, the gateway's domain an admin of the service).
 *
 * The service's results and errors come back to the gateway's domain: `consume` takes them (errors
 * logged and counted), never bounced. Ids awaiting an answer: at most maxInFlight, oldest forgotten.
 */
import { randomBytes } from "node:crypto";
import { attr, type XElement } from "../../codec/index.js";
import { type Logger, silentLogger } from "../../src/core/index.js";
import { publishIq } from "../../src/core/iot/pubsub.js";

export interface PubsubStats {
  /** Publish iqs put in the outbox. */
  published: number;
  /** Results (item published) and errors from the service. */
  ok: number;
  errors: number;
  /** Publishes forgotten unanswered (maxInFlight). */
  forgotten: number;
}

export interface PubsubPublisherOptions {
  /** The pubsub service's JID (`pubsub.example.org`). */
  readonly service: string;
  /** The gateway's component domain: the publisher. */
  readonly domain: string;
  /** Hands a stanza to the gateway's routing (the durable outbox). */
  readonly route: (stanza: XElement) => void;
  readonly logger?: Logger;
  readonly maxInFlight?: number;
}

/** The pubsub node of a device's readings: its bare JID. */
export function pubsubNodeOf(deviceJid: string): string {
  return deviceJid.split("/")[0]!;
}

export class PubsubPublisher {
  readonly stats: PubsubStats = { published: 0, ok: 0, errors: 0, forgotten: 0 };
  /** iq id → pubsub node, awaiting the service's answer. */
  private readonly inFlight = new Map<string, string>();
  /** Ids of this run: a restart must not reuse an id the outbox may still resend. */
  private readonly prefix = `cxmpp-pub-${randomBytes(4).toString("hex")}-`;
  private next = 1;
  private readonly logger: Logger;

  constructor(private readonly o: PubsubPublisherOptions) {
    this.logger = o.logger ?? silentLogger;
  }

  /** Publishes one `<fields>` element of a device. */
  publish(deviceJid: string, fields: XElement): void {
    const id = `${this.prefix}${(this.next++).toString(36)}`;
    const node = pubsubNodeOf(deviceJid);
    while (this.inFlight.size >= (this.o.maxInFlight ?? 1024)) {
      this.inFlight.delete(this.inFlight.keys().next().value!);
      this.stats.forgotten++;
    }
    this.inFlight.set(id, node);
    this.stats.published++;
    this.o.route(publishIq({ to: this.o.service, from: this.o.domain, id }, node, fields, id));
  }

  /** A stanza to the gateway's domain: true when it answers one of our publishes (consumed). */
  consume(stanza: XElement): boolean {
    if (stanza.name !== "iq") return false;
    const type = attr(stanza, "type");
    const id = attr(stanza, "id") ?? "";
    if ((type !== "result" && type !== "error") || !id.startsWith("cxmpp-pub-")) return false;
    if ((attr(stanza, "from") ?? "").split("/")[0] !== this.o.service) return false;
    // An answer to an earlier run's publish (resent from the outbox after a restart) is ours too.
    const node = this.inFlight.get(id);
    this.inFlight.delete(id);
    if (type === "result") {
      this.stats.ok++;
      return true;
    }
    this.stats.errors++;
    this.logger.log("warn", "iot.pubsub_error", {
      service: this.o.service,
      node,
      id,
      condition: errorCondition(stanza),
    });
    return true;
  }
}

/** The defined condition of an error stanza (RFC 6120 §8.3.3), e.g. "forbidden". */
function errorCondition(stanza: XElement): string | undefined {
  const error = stanza.children.find((c): c is XElement => typeof c !== "string" && c.name === "error");
  const condition = error?.children.find(
    (c): c is XElement => typeof c !== "string" && c.ns === "urn:ietf:params:xml:ns:xmpp-stanzas",
  );
  return condition?.name;
}
