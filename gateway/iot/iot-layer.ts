/**
 * XMPP's IoT vocabulary at the gateway (issue 12), assembled: the last fields each device reported
 * (fields-cache.ts), readouts answered for sleeping nodes (readout-desk.ts) and readings published
 * into XEP-0060 (pubsub-publisher.ts, when `pubsub_service` is set).
 *
 * Two ways in: `tap`, which sees every stanza a node sends (GatewayServiceOptions.tap), and the
 * federation's NetworkInbound, which asks `readout`/`queued` for a readout to a sleeping node and
 * gives stanzas to the gateway's domain to `consume`.
 */
import type { XElement } from "../../codec/index.js";
import type { Clock, Logger } from "../../src/core/index.js";
import { elements, parseFields, SENSORDATA } from "../../src/core/iot/sensordata.js";
import type { NodeSession } from "../session/node-session.js";
import { Concentrator, type ConcentratorDevices } from "./concentrator.js";
import { DEFAULT_FIELDS_CACHE_LIMITS, FieldsCache, type FieldsCacheLimits } from "./fields-cache.js";
import { PubsubPublisher } from "./pubsub-publisher.js";
import { ReadoutDesk } from "./readout-desk.js";

export interface IotLayerOptions {
  /** The gateway's component domain (the pubsub publisher). */
  readonly domain: string;
  readonly clock: Clock;
  /** Queued readouts are remembered as long as a stanza waits in a mailbox. */
  readonly mailboxTtlMs: number;
  /** The pubsub service's JID; undefined: readings are not published. */
  readonly pubsubService?: string | undefined;
  readonly cacheLimits?: FieldsCacheLimits;
  /** The provisioned devices, for the XEP-0326 concentrator; undefined: no concentrator. */
  readonly devices?: ConcentratorDevices;
  readonly logger?: Logger;
}

export class IotLayer {
  readonly cache: FieldsCache;
  readonly readouts: ReadoutDesk;
  readonly pubsub: PubsubPublisher | undefined;
  readonly concentrator: Concentrator | undefined;
  private router: ((stanza: XElement) => void) | undefined;

  constructor(private readonly o: IotLayerOptions) {
    this.cache = new FieldsCache(o.cacheLimits ?? DEFAULT_FIELDS_CACHE_LIMITS);
    this.concentrator = o.devices ? new Concentrator(o.devices, o.domain) : undefined;
    this.readouts = new ReadoutDesk({ cache: this.cache, ttlMs: o.mailboxTtlMs, logger: o.logger });
    this.pubsub =
      o.pubsubService === undefined
        ? undefined
        : new PubsubPublisher({
            service: o.pubsubService,
            domain: o.domain,
            route: (s) => this.route(s),
            logger: o.logger,
          });
  }

  /** Where its stanzas go: the gateway's routing (the service exists only after this layer). */
  routeWith(route: (stanza: XElement) => void): void {
    this.router = route;
  }

  private route(stanza: XElement): void {
    if (!this.router) throw new Error("IotLayer: routeWith() not called");
    this.router(stanza);
  }

  /** GatewayServiceOptions.tap: every stanza a node sends; false when consumed here. */
  readonly tap = (session: NodeSession, stanza: XElement): boolean => {
    if (stanza.name === "message") {
      const results = parseFields(stanza);
      if (results.length > 0) {
        this.cache.record(
          session.identity,
          results.flatMap((r) => r.fields),
        );
        if (this.pubsub)
          for (const fields of elements(stanza, SENSORDATA, "fields"))
            this.pubsub.publish(session.device.jid, fields);
      }
      return true;
    }
    const instead = this.readouts.fromNode(session.identity, session.jid, stanza, this.o.clock.now());
    if (instead === "pass") return true;
    this.route(instead);
    return false;
  };

  /** A readout for a sleeping node: the replies when the cache answers it, else undefined (queue it). */
  readout(iq: XElement, identity: string, nodeJid: string): XElement[] | undefined {
    return this.readouts.answer(iq, identity, nodeJid, this.o.clock.now());
  }

  /** A readout put in a sleeping node's mailbox: the `<accepted queued/>` to send once stored. */
  queued(iq: XElement, identity: string): XElement | undefined {
    return this.readouts.queued(iq, identity, this.o.clock.now());
  }

  /** A stanza to the gateway's own domain that belongs here (a pubsub answer): true when consumed. */
  consume(stanza: XElement): boolean {
    return this.pubsub?.consume(stanza) ?? false;
  }

  /** The answer to a XEP-0326 request to the gateway's domain, if it is one (concentrator.ts). */
  concentratorAnswer(iq: XElement): XElement | undefined {
    return this.concentrator?.answer(iq);
  }

  /** Cumulative counts, as metrics take them (gateway/metrics.ts IotCounters). */
  counters(): {
    fieldsEvicted: number;
    fieldsTooLarge: number;
    fieldsStale: number;
    readoutsCached: number;
    readoutsQueued: number;
    readoutsForgotten: number;
    pubsubPublished: number;
    pubsubOk: number;
    pubsubErrors: number;
  } {
    const c = this.cache.stats;
    const r = this.readouts.stats;
    const p = this.pubsub?.stats;
    return {
      fieldsEvicted: c.evicted,
      fieldsTooLarge: c.tooLarge,
      fieldsStale: c.stale,
      readoutsCached: r.cached,
      readoutsQueued: r.queued,
      readoutsForgotten: r.forgotten,
      pubsubPublished: p?.published ?? 0,
      pubsubOk: p?.ok ?? 0,
      pubsubErrors: p?.errors ?? 0,
    };
  }

  /** Time passes (the gateway's tick): queued readouts expire, departed devices leave the cache. */
  sweep(now: number, provisioned: (identity: string) => boolean): void {
    this.readouts.sweep(now);
    this.cache.sweep(provisioned);
  }
}
