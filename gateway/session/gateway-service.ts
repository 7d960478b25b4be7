/**
 * The gateway's cxmpp resources on its CoAP endpoint (docs/PROTOCOL.md §3): connect with proof of the
 * device key, uplink (exactly once, in order, `from` stamped), downlink piggybacked on responses, local
 * routing between the gateway's nodes, and /.well-known/core. Stanzas for other domains go to
 * `outbound` (the XMPP component link, in the federation issue).
 */
import { timingSafeEqual } from "node:crypto";
import {
  attr,
  CodecError,
  DICTIONARY_V1,
  el,
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
import { NodeSession } from "./node-session.js";

export interface GatewayServiceOptions {
  readonly devices: DeviceDirectory;
  /** The gateway's XMPP domain: nodes are `name@domain/resource`. */
  readonly domain: string;
  readonly mac: Mac;
  readonly random: Random;
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
}

export interface GatewayStats {
  connects: number;
  refusedConnects: number;
  stanzasIn: number;
  stanzasOut: number;
  telemetryIn: number;
  duplicateFrames: number;
  badFrames: number;
  bytesIn: number;
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
  };
  private readonly byPeer = new Map<PeerAddress, NodeSession>();
  private readonly byIdentity = new Map<string, NodeSession>();
  private readonly nonces = new Map<PeerAddress, { nonce: Uint8Array; expires: number }>();
  private nextId = 1;
  private readonly logger: Logger;
  private readonly dictionary: StaticDictionary;

  constructor(private readonly options: GatewayServiceOptions) {
    this.logger = options.logger ?? silentLogger;
    this.dictionary = options.dictionary ?? DICTIONARY_V1;
  }

  get sessions(): readonly NodeSession[] {
    return [...this.byIdentity.values()];
  }

  session(identity: string): NodeSession | undefined {
    return this.byIdentity.get(identity);
  }

  /** The CoAP request handler of the gateway endpoint. */
  readonly handle = (request: ServerRequest): Response => {
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
  };

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
    const session = this.establish(device, request.peer, c.resume);
    session.wake = c.wake ?? 0;
    session.lastSeen = this.options.clock.now();
    this.stats.connects++;
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
    const jid = `${device.jid}/${this.options.resource ?? "cxmpp"}`;
    const session = new NodeSession(
      this.nextId++,
      device,
      jid,
      this.options.domain,
      undefined,
      this.token(),
      this.dictionary,
    );
    this.byIdentity.set(device.identity, session);
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
    session.lastSeen = this.options.clock.now();
    if (u.wake !== undefined) session.wake = u.wake;
    session.acknowledge(u.ack);
    if (u.seq === 0) {
      for (const frame of u.frames) {
        try {
          const stanza = session.telemetry(frame);
          this.stats.telemetryIn++;
          this.route(stanza);
        } catch (error) {
          if (!(error instanceof CodecError)) throw error;
          this.stats.badFrames++;
          this.logger.log("warn", "gateway.bad_telemetry", { jid: session.jid, error: error.message });
        }
      }
      return this.downlinkResponse(session, true);
    }
    const before = session.h;
    const result = session.uplink(u.seq, u.frames);
    this.stats.duplicateFrames += Math.max(0, Math.min(before, u.seq + u.frames.length - 1) - u.seq + 1);
    for (const stanza of result.accepted) {
      this.stats.stanzasIn++;
      this.route(stanza);
    }
    if (result.failed) {
      this.stats.badFrames++;
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
    return {
      code,
      options: [uintOption(OptionNumber.CONTENT_FORMAT, ContentFormat.CXMPP_SESSION)],
      payload: protocol.encodeDownlink({
        h: session.h,
        dseq: pending.dseq,
        more: pending.more,
        frames: pending.frames,
      }),
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
   * Routes a stanza from a node: to another node of this gateway (its mailbox), to `outbound` for other
   * domains, or back as an error for a local JID nobody owns (RFC 6120 §8.3.3.19 service-unavailable).
   */
  route(stanza: XElement): void {
    const to = attr(stanza, "to");
    if (to === undefined) return; // addressed to the node's own account: nothing to do yet
    const bare = to.split("/")[0]!;
    const domain = bare.includes("@") ? bare.slice(bare.indexOf("@") + 1) : bare;
    if (domain !== this.options.domain) {
      this.options.outbound?.(stanza);
      return;
    }
    const device = this.options.devices.byJid(bare);
    const target = device ? (this.byIdentity.get(device.identity) ?? this.newSession(device)) : undefined;
    if (target) {
      target.enqueue(stanza);
      if (target.peer !== undefined)
        this.options.push?.(
          `${protocol.Paths.DOWNLINK}/${target.id}`,
          this.representation(target, Code.CONTENT),
        );
      return;
    }
    const from = attr(stanza, "from");
    if (from === undefined || attr(stanza, "type") === "error") return; // never answer an error with one
    this.sessionOf(from)?.enqueue(errorReply(stanza, "cancel", "service-unavailable"));
  }

  /** The session whose full JID is `full`, through the device directory (no scan of all sessions). */
  private sessionOf(full: string): NodeSession | undefined {
    const device = this.options.devices.byJid(full.split("/")[0]!);
    const session = device ? this.byIdentity.get(device.identity) : undefined;
    return session?.jid === full ? session : undefined;
  }
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
