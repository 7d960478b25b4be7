/**
 * POST /c, the connect (docs/PROTOCOL.md §3.2): the dictionary check, the Echo challenge (RFC 9175
 * §2.4) and the node's proof of its device key (HMAC-SHA-256 over the nonce and the request), then the
 * session it gets (new, resumed, or restarted). Unknown identity, revoked device and wrong key get one
 * and the same answer. It does not handle uplink or downlink.
 */
import { timingSafeEqual } from "node:crypto";
import type { StaticDictionary } from "../../codec/index.js";
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
  uintOption,
} from "../../src/core/index.js";
import type { DeviceDirectory } from "../devices.js";
import type { PresenceBroadcaster } from "./presence.js";
import { respond } from "./respond.js";
import type { SessionRegistry } from "./session-registry.js";
import type { GatewayStats } from "./stats.js";

export interface ConnectOptions {
  readonly devices: DeviceDirectory;
  readonly dictionary: StaticDictionary;
  readonly mac: Mac;
  readonly random: Random;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly stats: GatewayStats;
  /** How long a challenge's nonce may be answered. */
  readonly nonceLifetimeMs: number;
}

export class ConnectHandler {
  private readonly nonces = new Map<PeerAddress, { nonce: Uint8Array; expires: number }>();

  constructor(
    private readonly registry: SessionRegistry,
    private readonly presence: PresenceBroadcaster,
    private readonly o: ConnectOptions,
  ) {}

  handle(request: ServerRequest): Response {
    const c = protocol.decodeConnectRequest(request.payload);
    if (c.dictionary !== this.o.dictionary.id) {
      this.o.stats.refusedConnects++;
      return respond(Code.NOT_ACCEPTABLE, `dictionary ${this.o.dictionary.id} required, not ${c.dictionary}`);
    }
    const echo = findOption(request, OptionNumber.ECHO);
    const issued = this.nonces.get(request.peer);
    if (
      !echo ||
      !c.proof ||
      !issued ||
      issued.expires < this.o.clock.now() ||
      !equalBytes(echo.value, issued.nonce)
    ) {
      // Challenge with a fresh nonce in the Echo option (RFC 9175 §2.4): the proof must cover it.
      const nonce = randomBytes(this.o.random, protocol.NONCE_BYTES);
      this.nonces.set(request.peer, { nonce, expires: this.o.clock.now() + this.o.nonceLifetimeMs });
      return {
        code: Code.UNAUTHORIZED,
        options: [{ number: OptionNumber.ECHO, value: nonce }],
        payload: new Uint8Array(0),
      };
    }
    this.nonces.delete(request.peer); // single use
    const device = this.o.devices.find(c.identity);
    const expected = device
      ? this.o.mac
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
      this.o.stats.refusedConnects++;
      this.o.logger.log("warn", "gateway.connect_refused", { peer: request.peer, identity: c.identity });
      // One answer for unknown, revoked and wrong key: nothing to learn about which identities exist.
      return respond(Code.FORBIDDEN, "identity or proof not accepted");
    }
    // What the node says it received is delivered, before establish renumbers the rest.
    const known = this.registry.get(device.identity);
    if (known && c.ack !== undefined) known.acknowledge(c.ack);
    const session = this.registry.establish(device, request.peer, c.resume);
    session.wake = c.wake ?? 0;
    session.lastSeen = this.o.clock.now();
    session.save();
    this.o.stats.connects++;
    this.presence.show(session);
    this.o.logger.log("info", "gateway.connected", { jid: session.jid, peer: request.peer, h: session.h });
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
}
