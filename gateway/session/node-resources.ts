/**
 * The gateway's CoAP resources for nodes (docs/PROTOCOL.md §3, §4): `/.well-known/core`, POST /c
 * (connect.ts), POST /u (uplink: exactly once, in order, any uplink a wake-up), GET /d/<session>
 * (downlink, observed by always-on nodes), and the downlink representation piggybacked on responses
 * or pushed. Acked means stored: a request that wrote something is answered once the journal has
 * committed it (gateway/store/write-batch.ts); if the store fails, with 5.03 and Max-Age.
 */
import { CodecError, type StaticDictionary } from "../../codec/index.js";
import {
  type Clock,
  Code,
  ContentFormat,
  type Logger,
  NO_ANSWER,
  OptionNumber,
  type PeerAddress,
  protocol,
  type Response,
  type ServerRequest,
  SessionFormatError,
  uintOption,
  uriPath,
} from "../../src/core/index.js";
import type { DeviceDirectory } from "../devices.js";
import { StoreError } from "../store/errors.js";
import { type ConnectHandler, isDtlsPeer } from "./connect.js";
import type { SessionJournal } from "./journal.js";
import type { NodeSession } from "./node-session.js";
import type { PresenceBroadcaster } from "./presence.js";
import { respond } from "./respond.js";
import type { StanzaRouter } from "./router.js";
import type { SessionRegistry } from "./session-registry.js";
import type { GatewayStats } from "./stats.js";

export interface NodeResourcesOptions {
  readonly devices: DeviceDirectory;
  readonly journal: SessionJournal;
  readonly dictionary: StaticDictionary;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly stats: GatewayStats;
  /** Largest downlink payload in one response. */
  readonly maxDownlinkBytes: number;
  /** Pushes a representation to the observers of a path (the endpoint's Observe notify). */
  readonly push?: ((path: string, response: Response) => number) | undefined;
  /** The PSK identity of the DTLS session behind a `coaps://` peer, if it is still up. */
  readonly dtlsIdentity?: ((peer: PeerAddress) => string | undefined) | undefined;
}

/** Seconds a node waits before retrying after 5.03 (RFC 7252 §5.9.3.4). */
const STORE_RETRY_S = 5;
/**
 * How long the message id of a node's newest routed uplink orders its NON readings (docs/PROTOCOL.md
 * §3.3): NON_LIFETIME (RFC 7252 §4.8.2), the longest a datagram is taken to live in the network; older,
 * the 16-bit id could have wrapped.
 */
const ORDER_FENCE_MS = 145_000;
const encoder = new TextEncoder();
/** The answer to most uplinks, one frozen object (a response and its empty payload each were garbage). */
const CHANGED: Response = Object.freeze({ code: Code.CHANGED, options: [], payload: new Uint8Array(0) });

/** The message id of a node's newest routed uplink, and when it was routed (updated in place). */
interface OrderFence {
  mid: number;
  at: number;
}

export class NodeResources {
  private readonly fences = new WeakMap<NodeSession, OrderFence>();

  constructor(
    private readonly registry: SessionRegistry,
    private readonly connect: ConnectHandler,
    private readonly router: StanzaRouter,
    private readonly presence: PresenceBroadcaster,
    private readonly o: NodeResourcesOptions,
  ) {}

  /** The CoAP request handler of the gateway endpoint. */
  readonly handle = (request: ServerRequest): Response | Promise<Response> => {
    let response: Response;
    try {
      response = this.dispatch(request);
      this.registry.saveTouched();
    } catch (error) {
      if (!(error instanceof StoreError)) throw error;
      response = this.storeFailed(error);
    }
    if (!this.o.journal.pending) return response;
    return this.o.journal.answered().then(
      () => response,
      (error: Error) => this.storeFailed(error),
    );
  };

  /**
   * Notifies an observing node of its downlink once what it carries is durable: a frame pushed before
   * its commit could be lost with the batch after the node had taken it (docs/PROTOCOL.md §4.1).
   */
  pushLater(target: NodeSession): void {
    const push = this.o.push;
    if (!push) return;
    const path = downlinkPath(target);
    const response = this.representation(target, Code.CONTENT);
    // Frames that took off moved the session's next sequence number: saved in the same batch, also
    // when this runs outside a request (a stanza from the XMPP network).
    this.registry.saveTouched();
    if (!this.o.journal.pending) push(path, response);
    else
      this.o.journal.committed().then(
        () => push(path, response),
        () => {},
      );
  }

  private storeFailed(error: Error): Response {
    this.registry.discardTouched();
    this.o.stats.storeFailures++;
    this.o.logger.log("error", "gateway.store_failed", { error: error.message });
    return {
      code: Code.SERVICE_UNAVAILABLE,
      options: [uintOption(OptionNumber.MAX_AGE, STORE_RETRY_S)],
      payload: encoder.encode("store unavailable"),
    };
  }

  private dispatch(request: ServerRequest): Response {
    const path = uriPath(request);
    try {
      if (path === protocol.Paths.CORE && request.code === Code.GET) return this.core();
      if (path === protocol.Paths.CONNECT && request.code === Code.POST) {
        const response = this.connect.handle(request);
        // A connect may follow a reboot, which starts the node's message ids afresh.
        const session = response.code === Code.CREATED ? this.registry.at(request.peer) : undefined;
        if (session) this.fences.delete(session);
        return response;
      }
      // The uplink answers at /u and, for format 2 nodes, at the root (no Uri-Path: 2 bytes a datagram).
      if (
        (path === protocol.Paths.UPLINK || path === protocol.Paths.UPLINK_ROOT) &&
        request.code === Code.POST
      )
        return this.uplink(request);
      if (path.startsWith(`${protocol.Paths.DOWNLINK}/`) && request.code === Code.GET)
        return this.downlink(request, path);
      const known = [
        protocol.Paths.CORE,
        protocol.Paths.CONNECT,
        protocol.Paths.UPLINK,
        protocol.Paths.UPLINK_ROOT,
      ];
      if ((known as string[]).includes(path)) {
        return respond(Code.METHOD_NOT_ALLOWED, `${path} does not take this method`);
      }
      // Echo at most 16 characters of what the peer sent: an answer is no amplifier of attacker data.
      return respond(Code.NOT_FOUND, `no resource /${path.length > 16 ? `${path.slice(0, 16)}…` : path}`);
    } catch (error) {
      if (error instanceof SessionFormatError) {
        this.o.logger.log("warn", "gateway.bad_request", { peer: request.peer, path, reason: error.message });
        return respond(Code.BAD_REQUEST, error.message);
      }
      throw error;
    }
  }

  /** RFC 6690 link format: the resources and the dictionary version. */
  private core(): Response {
    return {
      code: Code.CONTENT,
      options: [uintOption(OptionNumber.CONTENT_FORMAT, ContentFormat.LINK_FORMAT)],
      payload: encoder.encode(protocol.linkFormat(this.o.dictionary.id)),
    };
  }

  /**
   * The session bound to a peer. Behind a `coaps://` peer it must be the device of the DTLS session
   * there now: if the address has since handshaken as another identity, the binding is void.
   */
  private sessionAt(peer: PeerAddress): NodeSession | undefined {
    const session = this.registry.at(peer);
    if (!session || !isDtlsPeer(peer)) return session;
    if (this.o.dtlsIdentity?.(peer) === session.device.identity) return session;
    this.registry.detach(session, peer);
    return undefined;
  }

  private uplink(request: ServerRequest): Response {
    const session = this.sessionAt(request.peer);
    if (!session) return respond(Code.UNAUTHORIZED, "no session: connect first");
    const current = this.o.devices.find(session.device.identity);
    if (!current || current.revoked) {
      // Revoked (or removed) while connected: refused at once, and the session ends.
      this.registry.detach(session, request.peer);
      this.o.logger.log("warn", "gateway.revoked", { jid: session.jid });
      return respond(Code.FORBIDDEN, "device revoked");
    }
    const stats = this.o.stats;
    stats.bytesIn += request.payload.length;
    const u = protocol.decodeUplink(request.payload);
    if (u.ack > session.sent) {
      // Acknowledging frames never sent would empty the mailbox of stanzas never delivered: refused.
      stats.badAcks++;
      this.o.logger.log("warn", "gateway.bad_ack", { jid: session.jid, ack: u.ack, sent: session.sent });
      return respond(Code.UNPROCESSABLE_ENTITY, `ack ${u.ack} beyond the ${session.sent} frames sent`);
    }
    // Any uplink is a wake-up (docs/PROTOCOL.md §4.2): nothing else to say, nothing to lose.
    session.lastSeen = this.o.clock.now();
    if (u.wake !== undefined) session.wake = u.wake;
    session.acknowledge(u.ack);
    this.registry.touch(session);
    this.presence.show(session);
    if (u.seq === 0) {
      const answer = this.telemetry(session, u.t!, u.frames, request.messageId);
      // A NON reading is never answered with 2.xx, No-Response or not (docs/PROTOCOL.md §3.3): format 2
      // nodes leave the option out, and the answer could only be lost traffic. Errors still go back.
      return request.confirmable || answer.code >= Code.BAD_REQUEST ? answer : NO_ANSWER;
    }
    const before = session.h;
    const result = session.uplink(u.seq, u.frames);
    if (session.h !== before) this.registry.touch(session);
    if (result.gap) stats.gaps++; // never counted as received: the response's h tells the node where to resume
    stats.duplicateFrames += Math.max(0, Math.min(before, u.seq + u.frames.length - 1) - u.seq + 1);
    if (result.accepted.length > 0) this.routed(session, request.messageId);
    for (const stanza of result.accepted) {
      stats.stanzasIn++;
      stats.xmlBytesIn += this.router.xmlIn.size(stanza);
      this.router.fromNode(session, stanza);
    }
    if (result.failed) {
      stats.badFrames++;
      if (result.failed.error.code === "UNKNOWN_REF") stats.tableMisses++;
      this.o.logger.log("warn", "gateway.bad_frame", {
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

  /** Records the message id of an uplink that routed something: readings sent before it come too late. */
  private routed(session: NodeSession, mid: number): void {
    const fence = this.fences.get(session);
    const now = this.o.clock.now();
    if (!fence) this.fences.set(session, { mid, at: now });
    else if (now - fence.at > ORDER_FENCE_MS || !isBefore(mid, fence.mid)) {
      fence.mid = mid;
      fence.at = now;
    }
  }

  /** Whether a reading with message id `mid` was sent before an uplink already routed (a live fence). */
  private late(session: NodeSession, mid: number): boolean {
    const fence = this.fences.get(session);
    return fence !== undefined && this.o.clock.now() - fence.at <= ORDER_FENCE_MS && isBefore(mid, fence.mid);
  }

  /**
   * NON readings (docs/PROTOCOL.md §3.3): routed once per telemetry number, whatever the message id,
   * the session or the time; a replay is dropped and counted without an answer (answering forged
   * replays would make the gateway a reflector). A reading that comes after a newer one was routed (a
   * lower telemetry number, or a lower message id than a routed CON uplink's) is dropped and counted
   * the same way: routed, it would overwrite the newer value. A frame that does not decode is answered
   * 4.00, which No-Response = 2 does not suppress.
   */
  private telemetry(session: NodeSession, t: number, frames: readonly Uint8Array[], mid: number): Response {
    const stats = this.o.stats;
    const behind = t <= session.telemetryMax;
    if (!session.freshTelemetry(t)) {
      stats.replayedTelemetry++;
      this.o.logger.log("warn", "gateway.telemetry_replayed", {
        jid: session.jid,
        t,
        max: session.telemetryMax,
      });
      return this.downlinkResponse(session, true);
    }
    if (behind || this.late(session, mid)) {
      stats.outOfOrderTelemetry++;
      this.o.logger.log("info", "gateway.telemetry_out_of_order", { jid: session.jid, t, mid });
      return this.downlinkResponse(session, true);
    }
    if (frames.length > 0) this.routed(session, mid);
    let failed: CodecError | undefined;
    for (const frame of frames) {
      try {
        const stanza = session.telemetry(frame);
        stats.telemetryIn++;
        stats.xmlBytesIn += this.router.xmlIn.size(stanza);
        this.router.fromNode(session, stanza);
      } catch (error) {
        if (!(error instanceof CodecError)) throw error;
        failed ??= error;
        stats.badFrames++;
        if (error.code === "UNKNOWN_REF") stats.tableMisses++;
        this.o.logger.log("warn", "gateway.bad_telemetry", { jid: session.jid, t, error: error.message });
      }
    }
    if (failed) return respond(Code.BAD_REQUEST, `telemetry ${t}: ${failed.code} at byte ${failed.offset}`);
    return this.downlinkResponse(session, true);
  }

  /**
   * GET /d/<session>, observed by always-on nodes (RFC 7641): the waiting downlink now, and a
   * notification whenever more arrives. The node acknowledges with its next uplink (`ack`).
   */
  private downlink(request: ServerRequest, path: string): Response {
    const session = this.sessionAt(request.peer);
    if (!session || path !== downlinkPath(session)) {
      return respond(Code.UNAUTHORIZED, "no such session at this address");
    }
    return this.representation(session, Code.CONTENT);
  }

  /** The waiting downlink as a response: `[h, dseq, more?]` and up to maxDownlinkBytes of frames. */
  private representation(session: NodeSession, code: number): Response & { readonly frames: number } {
    const pending = session.pending(this.o.maxDownlinkBytes);
    const payload = protocol.encodeDownlink({
      h: session.h,
      dseq: pending.dseq,
      more: pending.more,
      frames: pending.frames,
    });
    this.o.stats.bytesOut += pending.firstSent;
    if (pending.firstSent > 0) this.registry.touch(session); // its next downlink sequence number moved
    return {
      code,
      options: [uintOption(OptionNumber.CONTENT_FORMAT, ContentFormat.CXMPP_SESSION)],
      payload,
      frames: pending.frames.length,
    };
  }

  /** 2.04 with the waiting downlink; empty when everything was stored and nothing waits. */
  private downlinkResponse(session: NodeSession, complete: boolean): Response {
    if (complete && session.waiting === 0) return CHANGED;
    const response = this.representation(session, Code.CHANGED);
    this.o.stats.stanzasOut += response.frames;
    return response;
  }
}

/** Whether 16-bit message id `a` was allocated before `b` (serial number arithmetic, RFC 1982). */
function isBefore(a: number, b: number): boolean {
  const d = (b - a) & 0xffff;
  return d !== 0 && d < 0x8000;
}

/** The downlink resource of a session: /d/<id> (docs/PROTOCOL.md §4.1). */
export function downlinkPath(session: NodeSession): string {
  return `${protocol.Paths.DOWNLINK}/${session.id}`;
}
