/**
 * XEP-0323 readouts for sleeping nodes, answered by the gateway (docs/PROTOCOL.md §6):
 * - from the fields cache when it can (readout-decision.ts): the iq result `<accepted/>`, then one
 *   `<fields done='true'>` message from the node's JID with the cached values and their original
 *   timestamps;
 * - otherwise the request waits in the node's mailbox, and the requester hears `<accepted
 *   queued='true'/>` at once (once the request is stored). At the wake-up the node answers it as
 *   any readout: its iq result would be a second answer to the same iq (RFC 6120 §8.2.3 allows one),
 *   so it is consumed here and turned into `<started/>` (the readout begins now), or, for an error,
 *   into `<failure/>`; its `<fields>` and `<done>` messages pass.
 *
 * Queued readouts are remembered per device (at most maxPendingPerDevice, the oldest forgotten first)
 * for as long as a stanza waits in a mailbox (the mailbox TTL); a forgotten one lets the node's result
 * through, which slixmpp and other clients take as a late duplicate. Counts in `stats`.
 */
import { attr, type XElement } from "../../codec/index.js";
import { type Logger, silentLogger } from "../../src/core/index.js";
import {
  fieldsMessage,
  parseReadoutRequest,
  readoutAccepted,
  readoutFailure,
  readoutStarted,
  SENSORDATA,
} from "../../src/core/iot/sensordata.js";
import type { FieldsCache } from "./fields-cache.js";
import { decideReadout } from "./readout-decision.js";

export interface ReadoutDeskOptions {
  readonly cache: FieldsCache;
  /** How long a queued readout is remembered: the mailbox TTL. */
  readonly ttlMs: number;
  readonly maxPendingPerDevice?: number;
  readonly logger?: Logger;
}

export interface ReadoutStats {
  /** Readouts answered from the cache. */
  cached: number;
  /** Readouts queued for the node's wake-up. */
  queued: number;
  /** Node results of queued readouts turned into <started/> or <failure/>. */
  started: number;
  failed: number;
  /** Queued readouts forgotten: TTL over, or the device's table full. */
  forgotten: number;
}

interface Pending {
  readonly seqnr: string;
  readonly expires: number;
}

const key = (requester: string, id: string) => `${requester}\u0000${id}`;

export class ReadoutDesk {
  readonly stats: ReadoutStats = { cached: 0, queued: 0, started: 0, failed: 0, forgotten: 0 };
  /** Device identity → (requester, id) → the queued readout; least recent first. */
  private readonly pendings = new Map<string, Map<string, Pending>>();
  private readonly logger: Logger;

  constructor(private readonly o: ReadoutDeskOptions) {
    this.logger = o.logger ?? silentLogger;
  }

  /** Queued readouts remembered (a gauge). */
  get pending(): number {
    let n = 0;
    for (const m of this.pendings.values()) n += m.size;
    return n;
  }

  /**
   * A readout `iq` for a sleeping node: the replies to send when the cache answers it, else undefined
   * (the caller queues it and calls `queued`). Not a readout request: undefined.
   */
  answer(iq: XElement, identity: string, nodeJid: string, now: number): XElement[] | undefined {
    const request = parseReadoutRequest(iq);
    if (!request) return undefined;
    const decision = decideReadout(request, this.o.cache.fields(identity), now);
    if (decision.kind !== "cached") return undefined;
    this.stats.cached++;
    const requester = attr(iq, "from") ?? "";
    return [
      readoutAccepted(iq, request.seqnr),
      fieldsMessage({ from: nodeJid, to: requester }, request.seqnr, decision.fields, true),
    ];
  }

  /**
   * `iq` was put in the node's mailbox: remembered, and the `<accepted queued='true'/>` result to send
   * once it is stored (undefined when it is no readout).
   */
  queued(iq: XElement, identity: string, now: number): XElement | undefined {
    const request = parseReadoutRequest(iq);
    if (!request) return undefined;
    let m = this.pendings.get(identity);
    if (!m) {
      m = new Map();
      this.pendings.set(identity, m);
    }
    const k = key(attr(iq, "from") ?? "", attr(iq, "id") ?? "");
    m.delete(k);
    while (m.size >= (this.o.maxPendingPerDevice ?? 64)) {
      m.delete(m.keys().next().value!);
      this.stats.forgotten++;
    }
    m.set(k, { seqnr: request.seqnr, expires: now + this.o.ttlMs });
    this.stats.queued++;
    return readoutAccepted(iq, request.seqnr, true);
  }

  /** The queued `iq` could not be stored after all: forgotten (the requester gets an error instead). */
  cancel(iq: XElement, identity: string): void {
    this.pendings.get(identity)?.delete(key(attr(iq, "from") ?? "", attr(iq, "id") ?? ""));
  }

  /**
   * A stanza from the node (its iq results already re-addressed to the requester): the result of a
   * readout the gateway already accepted is consumed, and the `<started/>` or `<failure/>` to send instead
   * is returned; anything else: "pass", route it as it is.
   */
  fromNode(identity: string, nodeJid: string, stanza: XElement, now: number): XElement | "pass" {
    if (stanza.name !== "iq") return "pass";
    const type = attr(stanza, "type");
    if (type !== "result" && type !== "error") return "pass";
    const requester = attr(stanza, "to") ?? "";
    const m = this.pendings.get(identity);
    const k = key(requester, attr(stanza, "id") ?? "");
    const p = m?.get(k);
    if (!m || !p) return "pass";
    m.delete(k);
    if (m.size === 0) this.pendings.delete(identity);
    const to = { from: nodeJid, to: requester };
    if (type === "result") {
      this.stats.started++;
      return readoutStarted(to, p.seqnr);
    }
    this.stats.failed++;
    const reason = rejection(stanza) ?? "the node refused the readout";
    this.logger.log("info", "iot.readout_failed", { jid: nodeJid, requester, reason });
    return readoutFailure(to, p.seqnr, "", reason, new Date(now).toISOString());
  }

  /** Forgets queued readouts past the mailbox TTL (their request expired unanswered). */
  sweep(now: number): void {
    for (const [identity, m] of this.pendings) {
      for (const [k, p] of m)
        if (p.expires <= now) {
          m.delete(k);
          this.stats.forgotten++;
        }
      if (m.size === 0) this.pendings.delete(identity);
    }
  }
}

/** The text of a `<rejected><error>` in an iq error, if any. */
function rejection(iq: XElement): string | undefined {
  for (const c of iq.children) {
    if (typeof c === "string" || c.ns !== SENSORDATA || c.name !== "rejected") continue;
    for (const e of c.children)
      if (typeof e !== "string" && e.name === "error")
        return e.children.filter((t): t is string => typeof t === "string").join("");
  }
  return undefined;
}
