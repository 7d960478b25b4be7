/**
 * The gateway's cxmpp resources on its CoAP endpoint (docs/PROTOCOL.md §3, §4): connect with proof of
 * the device key, uplink (exactly once, in order, `from` stamped), downlink piggybacked on responses or
 * pushed, mailboxes for sleeping nodes, node presence, local routing between the gateway's nodes, and
 * /.well-known/core. Stanzas for other domains go to the durable outbox and to `outbound`.
 *
 * Acked means stored: every change a request makes goes to the journal, and its response leaves only
 * once the journal has committed it (group commit, gateway/store/write-batch.ts).
 */
import { timingSafeEqual } from "node:crypto";
import {
  attr,
  CodecError,
  DICTIONARY_V1,
  el,
  StatelessEncoder,
  type StaticDictionary,
  type XElement,
} from "../../codec/index.js";
import {
  type Clock,
  Code,
  ContentFormat,
  equalBytes,
  findOption,
  type Logger,
  type Mac,
  OptionNumber,
  type PeerAddress,
  protocol,
  type Random,
  type Response,
  randomBytes,
  type ServerRequest,
  SessionFormatError,
  silentLogger,
  uintOption,
  uriPath,
} from "../../src/core/index.js";
import type { Device, DeviceDirectory } from "../devices.js";
import { withDelay, xep0082 } from "../xml/stamps.js";
import { xmlByteLength } from "../xml/stanza-xml.js";
import { IqTracker } from "./iq-tracker.js";
import { memoryJournal, type SessionJournal } from "./journal.js";
import { classify, DEFAULT_MAILBOX_LIMITS, type MailboxLimits } from "./mailbox.js";
import { capsElement } from "./node-disco.js";
import { NodeSession } from "./node-session.js";

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
  /** JID resource of every node session. Default "cxmpp". */
  readonly resource?: string;
  /** Largest downlink payload in one response. Default 512 bytes. */
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
  /** Durable state (gateway/store); default: kept in memory only. */
  readonly journal?: SessionJournal;
  readonly mailbox?: MailboxLimits;
  /** A session not heard of for this long ends (its node shows unavailable). Default 7 days. */
  readonly sessionExpiryMs?: number;
}

/** Where a node stands, as its presence shows it (RFC 6121 §4.7.2.1 `show`). */
export type NodeState = "available" | "xa" | "unavailable";

export interface GatewayStats {
  connects: number;
  refusedConnects: number;
  stanzasIn: number;
  stanzasOut: number;
  telemetryIn: number;
  duplicateFrames: number;
  badFrames: number;
  bytesIn: number;
  /** Downlink frame bytes, counted when a frame is first sent (not its resends). */
  bytesOut: number;
  /** The same stanzas as XML would have been (for "bytes saved by the codec"). */
  xmlBytesIn: number;
  /** Stanzas queued for nodes, as XML. */
  xmlBytesOut: number;
  /** Frames that referenced a table entry the gateway does not hold. */
  tableMisses: number;
  mailboxFull: number;
  mailboxExpired: number;
  mailboxCoalesced: number;
  presenceSent: number;
  storeFailures: number;
  /** iq results that answered nothing the recipient had asked (dropped). */
  unsolicited: number;
}

const NONCE_LIFETIME_MS = 60_000;
const STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";
const encoder = new TextEncoder();

export class GatewayService {
  readonly stats: GatewayStats = {
    connects: 0,
    refusedConnects: 0,
    stanzasIn: 0,
    stanzasOut: 0,
    telemetryIn: 0,
    duplicateFrames: 0,
    badFrames: 0,
    bytesIn: 0,
    bytesOut: 0,
    xmlBytesIn: 0,
    xmlBytesOut: 0,
    tableMisses: 0,
    mailboxFull: 0,
    mailboxExpired: 0,
    mailboxCoalesced: 0,
    presenceSent: 0,
    storeFailures: 0,
    unsolicited: 0,
  };
  private readonly byPeer = new Map<PeerAddress, NodeSession>();
  private readonly byIdentity = new Map<string, NodeSession>();
  private readonly nonces = new Map<PeerAddress, { nonce: Uint8Array; expires: number }>();
  private nextId: number;
  private readonly logger: Logger;
  private readonly dictionary: StaticDictionary;
  private readonly journal: SessionJournal;
  private readonly packer = new StatelessEncoder();
  /** iq requests in flight to and from nodes: results are never spoofable (iq-tracker.ts). */
  readonly iqs: IqTracker;
  /** The presence each node was last shown with. */
  private readonly shown = new Map<string, NodeState>();

  constructor(private readonly options: GatewayServiceOptions) {
    this.logger = options.logger ?? silentLogger;
    this.dictionary = options.dictionary ?? DICTIONARY_V1;
    this.journal = options.journal ?? memoryJournal();
    this.iqs = new IqTracker(() => options.clock.now());
    this.nextId = this.journal.nextSessionId();
    this.reload();
  }

  /**
   * (Re)builds every session from the journal: at start, and after a write batch failed (the store is
   * the truth; what the failed batch changed in memory is thrown away, and its requests got 5.03).
   */
  reload(): void {
    this.touched.clear();
    this.byPeer.clear();
    this.byIdentity.clear();
    for (const saved of this.journal.load()) {
      const device = this.options.devices.find(saved.identity);
      if (!device) continue; // removed from the registry: its state stays in the store, unused
      const session = this.createSession(device, saved.id, saved.resume);
      session.restore(saved);
      if (saved.peer !== undefined && !device.revoked) {
        session.peer = saved.peer as PeerAddress;
        this.byPeer.set(session.peer, session);
      }
      if (saved.id >= this.nextId) this.nextId = saved.id + 1;
    }
  }

  private createSession(device: Device, id: number, resume: Uint8Array): NodeSession {
    const session = new NodeSession(
      id,
      device,
      `${device.jid}/${this.options.resource ?? "cxmpp"}`,
      this.options.domain,
      undefined,
      resume,
      this.journal,
      this.dictionary,
      this.options.mailbox ?? DEFAULT_MAILBOX_LIMITS,
    );
    this.byIdentity.set(device.identity, session);
    return session;
  }

  get sessions(): readonly NodeSession[] {
    return [...this.byIdentity.values()];
  }

  session(identity: string): NodeSession | undefined {
    return this.byIdentity.get(identity);
  }

  /**
   * The CoAP request handler of the gateway endpoint. A request that wrote something is answered once
   * the write is durable; if the store fails, with 5.03 (the node retries, nothing is lost).
   */
  readonly handle = (request: ServerRequest): Response | Promise<Response> => {
    let response: Response;
    try {
      response = this.dispatch(request);
      this.saveTouched();
    } catch (error) {
      if (!(error instanceof Error) || error.name !== "StoreError") throw error;
      response = this.storeFailed(error);
    }
    if (!this.journal.pending) return response;
    return this.journal.committed().then(
      () => response,
      (error: Error) => this.storeFailed(error),
    );
  };

  /** Sessions whose header changed while handling the current request or tick. */
  private readonly touched = new Set<NodeSession>();

  private touch(session: NodeSession): void {
    this.touched.add(session);
  }

  /** Writes the headers of the sessions that changed, once per request however often they changed. */
  private saveTouched(): void {
    for (const session of this.touched) session.save();
    this.touched.clear();
  }

  private storeFailed(error: Error): Response {
    this.touched.clear();
    this.stats.storeFailures++;
    this.logger.log("error", "gateway.store_failed", { error: error.message });
    return {
      code: Code.SERVICE_UNAVAILABLE,
      options: [uintOption(OptionNumber.MAX_AGE, 5)],
      payload: encoder.encode("store unavailable"),
    };
  }

  private dispatch(request: ServerRequest): Response {
    const path = uriPath(request);
    try {
      if (path === protocol.Paths.CORE && request.code === Code.GET) return this.core();
      if (path === protocol.Paths.CONNECT && request.code === Code.POST) return this.connect(request);
      if (path === protocol.Paths.UPLINK && request.code === Code.POST) return this.uplink(request);
      if (path.startsWith(`${protocol.Paths.DOWNLINK}/`) && request.code === Code.GET)
        return this.downlink(request, path);
      if (([protocol.Paths.CORE, protocol.Paths.CONNECT, protocol.Paths.UPLINK] as string[]).includes(path)) {
        return respond(Code.METHOD_NOT_ALLOWED, `${path} does not take this method`);
      }
      return respond(Code.NOT_FOUND, `no resource /${path}`);
    } catch (error) {
      if (error instanceof SessionFormatError) {
        this.logger.log("warn", "gateway.bad_request", { peer: request.peer, path, reason: error.message });
        return respond(Code.BAD_REQUEST, error.message);
      }
      throw error;
    }
  }

  private core(): Response {
    return {
      code: Code.CONTENT,
      options: [uintOption(OptionNumber.CONTENT_FORMAT, ContentFormat.LINK_FORMAT)],
      payload: encoder.encode(protocol.linkFormat(this.dictionary.id)),
    };
  }

  private connect(request: ServerRequest): Response {
    const c = protocol.decodeConnectRequest(request.payload);
    if (c.dictionary !== this.dictionary.id) {
      this.stats.refusedConnects++;
      return respond(Code.NOT_ACCEPTABLE, `dictionary ${this.dictionary.id} required, not ${c.dictionary}`);
    }
    const echo = findOption(request, OptionNumber.ECHO);
    const issued = this.nonces.get(request.peer);
    if (
      !echo ||
      !c.proof ||
      !issued ||
      issued.expires < this.options.clock.now() ||
      !equalBytes(echo.value, issued.nonce)
    ) {
      // Challenge with a fresh nonce in the Echo option (RFC 9175 §2.4): the proof must cover it.
      const nonce = randomBytes(this.options.random, protocol.NONCE_BYTES);
      this.nonces.set(request.peer, { nonce, expires: this.options.clock.now() + NONCE_LIFETIME_MS });
      return {
        code: Code.UNAUTHORIZED,
        options: [{ number: OptionNumber.ECHO, value: nonce }],
        payload: new Uint8Array(0),
      };
    }
    this.nonces.delete(request.peer); // single use
    const device = this.options.devices.find(c.identity);
    const expected = device
      ? this.options.mac
          .hmacSha256(device.key, protocol.proofInput(issued.nonce, c))
          .subarray(0, protocol.PROOF_BYTES)
      : undefined;
    if (
      !device ||
      device.revoked ||
      !expected ||
      c.proof.length !== expected.length ||
      !timingSafeEqual(c.proof, expected)
    ) {
      this.stats.refusedConnects++;
      this.logger.log("warn", "gateway.connect_refused", { peer: request.peer, identity: c.identity });
      // One answer for unknown, revoked and wrong key: nothing to learn about which identities exist.
      return respond(Code.FORBIDDEN, "identity or proof not accepted");
    }
    // What the node says it received is delivered, before establish renumbers the rest.
    const known = this.byIdentity.get(device.identity);
    if (known && c.ack !== undefined) known.acknowledge(c.ack);
    const session = this.establish(device, request.peer, c.resume);
    session.wake = c.wake ?? 0;
    session.lastSeen = this.options.clock.now();
    session.save();
    this.stats.connects++;
    this.showPresence(session);
    this.logger.log("info", "gateway.connected", { jid: session.jid, peer: request.peer, h: session.h });
    return {
      code: Code.CREATED,
      options: [uintOption(OptionNumber.CONTENT_FORMAT, ContentFormat.CXMPP_SESSION)],
      payload: protocol.encodeConnectResponse({
        session: session.id,
        resume: session.resume,
        h: session.h,
        jid: session.jid,
        aliases: session.aliases,
        delivered: session.delivered,
      }),
    };
  }

  /** A new session, or the device's existing one (resumed when the token matches, else restarted). */
  private establish(device: Device, peer: PeerAddress, resume: Uint8Array | undefined): NodeSession {
    let session = this.byIdentity.get(device.identity);
    const resumed =
      session !== undefined &&
      resume !== undefined &&
      session.peer !== undefined &&
      equalBytes(resume, session.resume);
    if (session?.peer) this.byPeer.delete(session.peer);
    if (!session) {
      session = this.newSession(device);
    } else if (!resumed && session.peer !== undefined) {
      // A connect without the resume token starts the uplink sequence again; the mailbox is kept.
      session.h = 0;
    }
    session.peer = peer;
    session.resume = this.token();
    session.resetCodec();
    this.byPeer.set(peer, session);
    return session;
  }

  private newSession(device: Device): NodeSession {
    const session = this.createSession(device, this.nextId++, this.token());
    session.save();
    return session;
  }

  private token(): Uint8Array {
    return randomBytes(this.options.random, 8);
  }

  private uplink(request: ServerRequest): Response {
    const session = this.byPeer.get(request.peer);
    if (!session) return respond(Code.UNAUTHORIZED, "no session: connect first");
    const current = this.options.devices.find(session.device.identity);
    if (!current || current.revoked) {
      // Revoked (or removed) while connected: refused at once, and the session ends.
      this.byPeer.delete(request.peer);
      if (session.peer === request.peer) session.peer = undefined;
      this.logger.log("warn", "gateway.revoked", { jid: session.jid });
      return respond(Code.FORBIDDEN, "device revoked");
    }
    this.stats.bytesIn += request.payload.length;
    const u = protocol.decodeUplink(request.payload);
    // Any uplink is a wake-up (docs/PROTOCOL.md §4.2): nothing else to say, nothing to lose.
    session.lastSeen = this.options.clock.now();
    if (u.wake !== undefined) session.wake = u.wake;
    session.acknowledge(u.ack);
    this.touch(session);
    this.showPresence(session);
    if (u.seq === 0) {
      for (const frame of u.frames) {
        try {
          const stanza = session.telemetry(frame);
          this.stats.telemetryIn++;
          this.stats.xmlBytesIn += xmlSize(stanza);
          this.fromNode(session, stanza);
        } catch (error) {
          if (!(error instanceof CodecError)) throw error;
          this.stats.badFrames++;
          if (error.code === "UNKNOWN_REF") this.stats.tableMisses++;
          this.logger.log("warn", "gateway.bad_telemetry", { jid: session.jid, error: error.message });
        }
      }
      return this.downlinkResponse(session, true);
    }
    const before = session.h;
    const result = session.uplink(u.seq, u.frames);
    if (session.h !== before) this.touch(session);
    this.stats.duplicateFrames += Math.max(0, Math.min(before, u.seq + u.frames.length - 1) - u.seq + 1);
    for (const stanza of result.accepted) {
      this.stats.stanzasIn++;
      this.stats.xmlBytesIn += xmlSize(stanza);
      this.fromNode(session, stanza);
    }
    if (result.failed) {
      this.stats.badFrames++;
      if (result.failed.error.code === "UNKNOWN_REF") this.stats.tableMisses++;
      this.logger.log("warn", "gateway.bad_frame", {
        jid: session.jid,
        seq: result.failed.seq,
        error: result.failed.error.message,
      });
      return {
        code: Code.BAD_REQUEST,
        options: [],
        payload: protocol.encodeDownlink({ h: session.h, dseq: session.delivered + 1, frames: [] }),
      };
    }
    const complete = session.h >= u.seq + u.frames.length - 1;
    return this.downlinkResponse(session, complete);
  }

  /**
   * GET /d/<session>, observed by always-on nodes (RFC 7641): the waiting downlink now, and a
   * notification whenever more arrives. The node acknowledges with its next uplink (`ack`).
   */
  private downlink(request: ServerRequest, path: string): Response {
    const session = this.byPeer.get(request.peer);
    if (!session || path !== `${protocol.Paths.DOWNLINK}/${session.id}`) {
      return respond(Code.UNAUTHORIZED, "no such session at this address");
    }
    return this.representation(session, Code.CONTENT);
  }

  /** The waiting downlink as a response: `[h, dseq, more?]` and up to maxDownlinkBytes of frames. */
  private representation(session: NodeSession, code: number): Response & { readonly frames: number } {
    const pending = session.pending(this.options.maxDownlinkBytes ?? 512);
    const payload = protocol.encodeDownlink({
      h: session.h,
      dseq: pending.dseq,
      more: pending.more,
      frames: pending.frames,
    });
    this.stats.bytesOut += pending.firstSent;
    if (pending.firstSent > 0) this.touch(session); // its next downlink sequence number moved
    return {
      code,
      options: [uintOption(OptionNumber.CONTENT_FORMAT, ContentFormat.CXMPP_SESSION)],
      payload,
      frames: pending.frames.length,
    };
  }

  /** 2.04 with the waiting downlink; empty when everything was stored and nothing waits. */
  private downlinkResponse(session: NodeSession, complete: boolean): Response {
    if (complete && session.mailbox.length === 0)
      return { code: Code.CHANGED, options: [], payload: new Uint8Array(0) };
    const response = this.representation(session, Code.CHANGED);
    this.stats.stanzasOut += response.frames;
    return response;
  }

  /**
   * A stanza a node sent (its `from` stamped): an iq result must answer a request the node was actually
   * sent (it then leaves with the requester's id and address); requests are remembered for their results.
   */
  private fromNode(session: NodeSession, stanza: XElement): void {
    if (stanza.name === "iq") {
      const type = attr(stanza, "type");
      const id = attr(stanza, "id") ?? "";
      if (type === "result" || type === "error") {
        const asked = this.iqs.resultFromNode(session.identity, id);
        if (!asked) {
          this.stats.unsolicited++;
          this.logger.log("warn", "gateway.iq_unsolicited", { jid: session.jid, id });
          return;
        }
        stanza = withAttrs(stanza, { id: asked.id, to: asked.requester });
      } else {
        const to = attr(stanza, "to");
        if (to !== undefined) this.iqs.requestFromNode(session.identity, id, to);
      }
    }
    this.route(stanza);
  }

  /** Delivers a stanza from the network to a provisioned device (its session made if it has none). */
  deliverTo(device: Device, stanza: XElement): "queued" | "coalesced" | "full" | "refused" {
    const target = this.byIdentity.get(device.identity) ?? this.newSession(device);
    return this.deliver(target, stanza);
  }

  /** The presence a device shows now, for one peer (answers to probes and subscriptions). */
  presenceNow(device: Device, to: string): XElement {
    const session = this.byIdentity.get(device.identity);
    if (!session) {
      return el("jabber:client", "presence", {
        from: `${device.jid}/${this.options.resource ?? "cxmpp"}`,
        to,
        type: "unavailable",
      });
    }
    return presenceOf(session, this.state(session), to, this.options.domain);
  }

  /** Resolves when everything written so far is durable. */
  committed(): Promise<void> {
    return this.journal.committed();
  }

  /** Whether a device's node sleeps now (asleep, or no session at all). */
  asleep(device: Device): boolean {
    const session = this.byIdentity.get(device.identity);
    return session === undefined || this.state(session) !== "available";
  }

  get devices(): DeviceDirectory {
    return this.options.devices;
  }

  get domain(): string {
    return this.options.domain;
  }

  /** Shows every node's presence again (the federation link came back: the server forgot it). */
  reannounce(): void {
    this.shown.clear();
    for (const session of this.byIdentity.values()) this.showPresence(session);
    this.saveTouched();
  }

  /**
   * Routes a stanza from a node: to another node of this gateway (its mailbox), to the outbox for other
   * domains, or back as an error for a local JID nobody owns (RFC 6120 §8.3.3.19 service-unavailable)
   * or a full mailbox (§8.3.3.18 resource-constraint).
   */
  route(stanza: XElement): void {
    const to = attr(stanza, "to");
    if (to === undefined) return; // addressed to the node's own account: nothing to do yet
    const bare = to.split("/")[0]!;
    const domain = bare.includes("@") ? bare.slice(bare.indexOf("@") + 1) : bare;
    if (domain !== this.options.domain) {
      this.journal.outboxAdd(stanza, this.options.clock.now());
      this.options.outbound?.(stanza);
      return;
    }
    const device = this.options.devices.byJid(bare);
    const target = device ? (this.byIdentity.get(device.identity) ?? this.newSession(device)) : undefined;
    if (!target) {
      this.bounce(stanza, "cancel", "service-unavailable");
      return;
    }
    if (this.deliver(target, stanza) === "full") this.bounce(stanza, "wait", "resource-constraint");
  }

  /**
   * Puts a stanza in a node's mailbox (coalescing what only matters fresh) and pushes it to an awake
   * observer. A stanza held for a sleeping node carries a XEP-0203 <delay/> with the time it came.
   */
  deliver(target: NodeSession, stanza: XElement): "queued" | "coalesced" | "full" | "refused" {
    const now = this.options.clock.now();
    if (stanza.name === "iq") {
      const type = attr(stanza, "type");
      const id = attr(stanza, "id") ?? "";
      const from = attr(stanza, "from") ?? "";
      if (type === "result" || type === "error") {
        if (!this.iqs.resultToNode(target.identity, id, from)) {
          this.stats.unsolicited++;
          this.logger.log("warn", "gateway.iq_unsolicited", { to: target.jid, from, id });
          return "refused";
        }
      } else stanza = withAttrs(stanza, { id: this.iqs.requestToNode(target.identity, id, from) });
    }
    const held = target.peer === undefined || target.asleep(now);
    // Classified as it came: the <delay/> added below is not part of what it means.
    const { priority, coalesce } = classify(stanza);
    const s = held ? withDelay(stanza, this.options.domain, now) : stanza;
    const packed = this.packer.encode(s).bytes;
    const ttl = (this.options.mailbox ?? DEFAULT_MAILBOX_LIMITS).ttlMs;
    const item = { stanza: s, priority, coalesce, bytes: packed.length, queuedAt: now, expiresAt: now + ttl };
    const admission = target.mailbox.admit(item);
    if (admission.kind === "full") {
      this.stats.mailboxFull++;
      this.logger.log("warn", "gateway.mailbox_full", { jid: target.jid, depth: target.mailbox.length });
      return "full";
    }
    if (admission.kind === "coalesced") {
      target.mailbox.remove(admission.replaced.id);
      this.journal.mailboxRemove([admission.replaced.id]);
      this.stats.mailboxCoalesced++;
    }
    target.mailbox.add({ ...item, id: this.journal.mailboxAdd(target.identity, item, packed) });
    this.stats.xmlBytesOut += xmlSize(s);
    if (target.peer !== undefined && !held && this.options.push) {
      if (this.options.observed?.(`${protocol.Paths.DOWNLINK}/${target.id}`)) this.pushLater(target);
    }
    return admission.kind;
  }

  /**
   * Notifies an observing node of its downlink once what it carries is durable: a frame pushed before
   * its commit could be lost with the batch after the node had taken it (docs/PROTOCOL.md §4.1).
   */
  private pushLater(target: NodeSession): void {
    const path = `${protocol.Paths.DOWNLINK}/${target.id}`;
    const response = this.representation(target, Code.CONTENT);
    // Frames that took off moved the session's next sequence number: saved in the same batch, also
    // when this runs outside a request (a stanza from the XMPP network).
    this.saveTouched();
    const push = this.options.push!;
    if (!this.journal.pending) push(path, response);
    else
      this.journal.committed().then(
        () => push(path, response),
        () => {},
      );
  }

  /** An error reply to the sender of `stanza`, if it is one of this gateway's nodes. */
  private bounce(stanza: XElement, type: string, condition: string): void {
    const from = attr(stanza, "from");
    if (from === undefined || attr(stanza, "type") === "error") return; // never answer an error with one
    const sender = this.sessionOf(from);
    if (sender) this.deliver(sender, errorReply(stanza, type, condition));
  }

  /** The session whose full JID is `full`, through the device directory (no scan of all sessions). */
  private sessionOf(full: string): NodeSession | undefined {
    const device = this.options.devices.byJid(full.split("/")[0]!);
    const session = device ? this.byIdentity.get(device.identity) : undefined;
    return session?.jid === full ? session : undefined;
  }

  /** What a node's presence shows now (docs/PROTOCOL.md §4.3). */
  state(session: NodeSession, now = this.options.clock.now()): NodeState {
    if (session.peer === undefined) return "unavailable";
    return session.asleep(now) ? "xa" : "available";
  }

  /** Shows a node's presence to its allowed peers when it changed (RFC 6121 §4.2 broadcast). */
  private showPresence(session: NodeSession, now = this.options.clock.now()): void {
    const state = this.state(session, now);
    if (this.shown.get(session.identity) === state) return;
    this.shown.set(session.identity, state);
    this.logger.log("info", "gateway.presence", { jid: session.jid, state, wakesAt: session.wakesAt });
    for (const peer of session.device.peers) {
      this.stats.presenceSent++;
      this.route(presenceOf(session, state, peer, this.options.domain));
    }
  }

  /**
   * Time passes (called every second or so): mailbox items past their TTL go, nodes that went quiet are
   * shown asleep, sessions not heard of for the expiry time end.
   */
  tick(now = this.options.clock.now()): void {
    const expiry = this.options.sessionExpiryMs ?? 7 * 86_400_000;
    for (const session of this.byIdentity.values()) {
      const expired = session.mailbox.expire(now);
      if (expired.length > 0) {
        this.stats.mailboxExpired += expired.length;
        this.journal.mailboxRemove(expired.map((q) => q.id));
        this.logger.log("info", "gateway.mailbox_expired", { jid: session.jid, count: expired.length });
      }
      const overdue = Math.max(expiry, 2 * session.wake * 1000);
      if (session.peer !== undefined && now - session.lastSeen > overdue) {
        this.byPeer.delete(session.peer);
        session.peer = undefined;
        session.save();
        this.logger.log("info", "gateway.session_expired", { jid: session.jid });
      }
      this.showPresence(session, now);
    }
    this.saveTouched();
  }

  /** Nodes awake and asleep now (metrics). */
  census(now = this.options.clock.now()): { awake: number; asleep: number; mailbox: number } {
    let awake = 0;
    let asleep = 0;
    let mailbox = 0;
    for (const s of this.byIdentity.values()) {
      mailbox += s.mailbox.length;
      const state = this.state(s, now);
      if (state === "available") awake++;
      else if (state === "xa") asleep++;
    }
    return { awake, asleep, mailbox };
  }
}

/** A stanza's size as XML, for the bytes-saved figures (counted, not serialised). */
function xmlSize(stanza: XElement): number {
  return xmlByteLength(stanza, "jabber:client"); // as inside a client stream
}
const SLEEP = "urn:cxmpp:sleep:0";
const IDLE = "urn:xmpp:idle:1";

/** The stanza with some top-level attributes set (replaced or added). */
function withAttrs(stanza: XElement, values: Record<string, string>): XElement {
  const attrs = stanza.attrs.filter((a) => !(a.ns === "" && a.name in values));
  for (const [name, value] of Object.entries(values)) attrs.push({ ns: "", name, value });
  return { ...stanza, attrs };
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

/** An RFC 6120 §8.3 error reply: addresses swapped, the original payload kept, an <error/> added. */
export function errorReply(stanza: XElement, type: string, condition: string): XElement {
  const attrs = stanza.attrs.filter((a) => !(a.ns === "" && ["to", "from", "type"].includes(a.name)));
  const to = attr(stanza, "from");
  const from = attr(stanza, "to");
  return {
    ...stanza,
    attrs: [
      ...(to ? [{ ns: "", name: "to", value: to }] : []),
      ...(from ? [{ ns: "", name: "from", value: from }] : []),
      { ns: "", name: "type", value: "error" },
      ...attrs,
    ],
    children: [...stanza.children, el(stanza.ns, "error", { type }, el(STANZAS, condition))],
  };
}

function respond(code: number, message: string): Response {
  return { code, options: [], payload: encoder.encode(message) };
}
