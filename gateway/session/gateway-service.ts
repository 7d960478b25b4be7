/**
 * The gateway's session layer, assembled (docs/PROTOCOL.md §3, §4): one object that owns the parts and
 * gives the rest of the gateway (federation, metrics, the facade in gateway/gateway.ts) one surface.
 *
 * ```
 *   CoAP endpoint ──handle──▶ NodeResources ──▶ ConnectHandler (connect and proof)
 *                                  │        ──▶ SessionRegistry (sessions by identity and peer, expiry)
 *                                  ▼
 *   federation ──deliverTo──▶ StanzaRouter (mailboxes, outbox, errors) ◀── PresenceBroadcaster
 * ```
 *
 * Acked means stored: every change a request makes goes to the journal, and its response leaves only
 * once the journal has committed it (group commit, gateway/store/write-batch.ts).
 */
import { DICTIONARY_V1, type StaticDictionary, type XElement } from "../../codec/index.js";
import {
  type Clock,
  type Logger,
  type Mac,
  type PeerAddress,
  type Random,
  type Response,
  type ServerRequest,
  silentLogger,
} from "../../src/core/index.js";
import { GATEWAY_DEFAULTS } from "../defaults.js";
import type { Device, DeviceDirectory } from "../devices.js";
import { ConnectHandler } from "./connect.js";
import { IqTracker } from "./iq-tracker.js";
import { memoryJournal, type SessionJournal } from "./journal.js";
import { DEFAULT_MAILBOX_LIMITS, type MailboxLimits } from "./mailbox.js";
import { downlinkPath, NodeResources } from "./node-resources.js";
import type { NodeSession } from "./node-session.js";
import { type NodeState, PresenceBroadcaster } from "./presence.js";
import { type Delivery, StanzaRouter } from "./router.js";
import { SessionRegistry } from "./session-registry.js";
import { emptyStats, type GatewayStats } from "./stats.js";

export type { NodeState } from "./presence.js";
export { presenceOf } from "./presence.js";
export type { GatewayStats } from "./stats.js";

export interface GatewayServiceOptions {
  readonly devices: DeviceDirectory;
  /** The gateway's XMPP domain: nodes are `name@domain/resource`. */
  readonly domain: string;
  readonly mac: Mac;
  readonly random: Random;
  /** Wall-clock time (src/node wallClock): instants are stored and written into stanzas. */
  readonly clock: Clock;
  readonly logger?: Logger;
  readonly dictionary?: StaticDictionary;
  /** JID resource of every node session. Default GATEWAY_DEFAULTS.resource. */
  readonly resource?: string;
  /** Largest downlink payload in one response. Default GATEWAY_DEFAULTS.maxDownlinkBytes. */
  readonly maxDownlinkBytes?: number;
  /** Stanzas addressed outside this gateway. */
  readonly outbound?: (stanza: XElement) => void;
  /** Pushes a representation to the observers of a path (the endpoint's Observe notify). */
  readonly push?: (path: string, response: Response) => number;
  /**
   * Whether a node observes a path: only then is its downlink pushed (building a push marks frames as
   * sent, which a node that does not observe would never receive). Default: nobody observes.
   */
  readonly observed?: (path: string) => boolean;
  /**
   * Sees every stanza a node sent as it leaves, after the iq checks (an iq result already carries the
   * requester's id and address); false: consumed, not routed. The IoT layer (gateway/iot) hooks in here.
   */
  readonly tap?: (session: NodeSession, stanza: XElement) => boolean;
  /** A node's stanza to the gateway's own domain (router.ts `toGateway`); false: refused as today. */
  readonly toGateway?: (stanza: XElement) => boolean;
  /** Durable state (gateway/store); default: kept in memory only. */
  readonly journal?: SessionJournal;
  readonly mailbox?: MailboxLimits;
  /** A session not heard of for this long ends (its node shows unavailable). Default 7 days. */
  readonly sessionExpiryMs?: number;
  /**
   * The PSK identity of the DTLS session behind a `coaps://` peer (the coaps endpoint's DtlsServer):
   * such a peer acts only as that device, and needs no connect proof (docs/PROTOCOL.md §8).
   */
  readonly dtlsIdentity?: (peer: PeerAddress) => string | undefined;
}

export class GatewayService {
  readonly stats: GatewayStats = emptyStats();
  /** iq requests in flight to and from nodes: results are never spoofable (iq-tracker.ts). */
  readonly iqs: IqTracker;
  private readonly journal: SessionJournal;
  private readonly registry: SessionRegistry;
  private readonly presence: PresenceBroadcaster;
  private readonly router: StanzaRouter;
  private readonly resources: NodeResources;
  private readonly connect: ConnectHandler;

  constructor(private readonly options: GatewayServiceOptions) {
    const logger = options.logger ?? silentLogger;
    const dictionary = options.dictionary ?? DICTIONARY_V1;
    const mailbox = options.mailbox ?? DEFAULT_MAILBOX_LIMITS;
    const { clock, devices, domain } = options;
    const resource = options.resource ?? GATEWAY_DEFAULTS.resource;
    const stats = this.stats;
    this.journal = options.journal ?? memoryJournal();
    const journal = this.journal;
    this.iqs = new IqTracker(() => clock.now());
    this.registry = new SessionRegistry({
      devices,
      journal,
      dictionary,
      domain,
      resource,
      mailbox,
      random: options.random,
      logger,
      stats,
      sessionExpiryMs: options.sessionExpiryMs ?? GATEWAY_DEFAULTS.sessionExpiryS * 1000,
    });
    this.router = new StanzaRouter(this.registry, this.iqs, {
      devices,
      journal,
      domain,
      mailbox,
      clock,
      logger,
      stats,
      outbound: options.outbound,
      observing: (s) => options.push !== undefined && (options.observed?.(downlinkPath(s)) ?? false),
      pushDownlink: (s) => this.resources.pushLater(s),
      tap: options.tap,
      toGateway: options.toGateway,
    });
    this.presence = new PresenceBroadcaster(this.registry, {
      domain,
      resource,
      clock,
      logger,
      stats,
      route: (stanza) => this.router.route(stanza),
    });
    const connect = new ConnectHandler(this.registry, this.presence, {
      devices,
      dictionary,
      mac: options.mac,
      random: options.random,
      clock,
      logger,
      stats,
      nonceLifetimeMs: GATEWAY_DEFAULTS.nonceLifetimeMs,
      maxUsedNonces: GATEWAY_DEFAULTS.maxUsedNonces,
      dtlsIdentity: options.dtlsIdentity,
    });
    this.connect = connect;
    this.resources = new NodeResources(this.registry, connect, this.router, this.presence, {
      devices,
      journal,
      dictionary,
      clock,
      logger,
      stats,
      maxDownlinkBytes: options.maxDownlinkBytes ?? GATEWAY_DEFAULTS.maxDownlinkBytes,
      push: options.push,
      dtlsIdentity: options.dtlsIdentity,
    });
    this.reload();
  }

  /** The CoAP request handler of the gateway endpoint (node-resources.ts). */
  get handle(): (request: ServerRequest) => Response | Promise<Response> {
    return this.resources.handle;
  }

  /**
   * (Re)builds every session from the journal: at start, and after a write batch failed (the store is
   * the truth; what the failed batch changed in memory is thrown away, and its requests got 5.03).
   */
  reload(): void {
    this.registry.reload();
  }

  get sessions(): readonly NodeSession[] {
    return [...this.registry.all];
  }

  /** How many sessions there are, without listing them (health, metrics). */
  get sessionCount(): number {
    return this.registry.size;
  }

  session(identity: string): NodeSession | undefined {
    return this.registry.get(identity);
  }

  /** Whether a node with a session connected from `peer` (it proved its device key there). */
  hasSession(peer: PeerAddress): boolean {
    return this.registry.at(peer) !== undefined;
  }

  get devices(): DeviceDirectory {
    return this.options.devices;
  }

  get domain(): string {
    return this.options.domain;
  }

  /** Delivers a stanza from the network to a provisioned device (its session made if it has none). */
  deliverTo(device: Device, stanza: XElement): Delivery {
    return this.router.deliverTo(device, stanza);
  }

  /** Puts a stanza in a node's mailbox (router.ts). */
  deliver(target: NodeSession, stanza: XElement): Delivery {
    return this.router.deliver(target, stanza);
  }

  /** Routes a stanza: another node's mailbox, the outbox, or an error back (router.ts). */
  route(stanza: XElement): void {
    this.router.route(stanza);
  }

  /** The presence a device shows now, for one peer (answers to probes and subscriptions). */
  presenceNow(device: Device, to: string): XElement {
    return this.presence.now(device, to);
  }

  /** Shows every node's presence again (the federation link came back: the server forgot it). */
  reannounce(): void {
    this.presence.reannounce();
    this.registry.saveTouched();
  }

  /** What a node's presence shows now (docs/PROTOCOL.md §4.3). */
  state(session: NodeSession, now = this.options.clock.now()): NodeState {
    return this.presence.state(session, now);
  }

  /** Whether a device's node sleeps now (asleep, or no session at all). */
  asleep(device: Device): boolean {
    const session = this.registry.get(device.identity);
    return session === undefined || this.presence.state(session) !== "available";
  }

  /** Resolves when everything written so far is durable. */
  committed(): Promise<void> {
    return this.journal.committed();
  }

  /**
   * Time passes (called every second or so): mailbox items past their TTL go, nodes that went quiet are
   * shown asleep, sessions not heard of for the expiry time end. Its cost is the sessions that changed
   * or reached a deadline, not all sessions (session-registry.ts sweep).
   */
  tick(now = this.options.clock.now()): void {
    this.registry.sweep(now, (session) => this.presence.show(session, now));
    this.connect.sweep(now);
  }

  /** Connect nonces remembered as used (the only connect state; metrics). */
  get usedNonces(): number {
    return this.connect.usedNonces;
  }

  /**
   * Nodes awake and asleep now, and stanzas waiting (metrics): kept as counts, corrected for the few
   * sessions the next tick would look at, so a scrape costs nothing per session.
   */
  census(now = this.options.clock.now()): { awake: number; asleep: number; mailbox: number } {
    const counts = this.registry.census(now, (s, t) => this.presence.state(s, t));
    return { awake: counts.available, asleep: counts.xa, mailbox: this.registry.mailboxDepth };
  }

  /** Sessions the next tick will look at, and sessions waiting for a deadline (metrics). */
  get scheduled(): { recheck: number; deadlines: number } {
    return this.registry.scheduled;
  }
}
