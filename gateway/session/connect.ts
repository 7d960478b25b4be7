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
import { DTLS_PEER_PREFIX } from "../../src/dtls/index.js";
import { HmacSha256Key } from "../../src/node/mac.js";
import type { Device, DeviceDirectory } from "../devices.js";
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
  /** Most nonces remembered as used (only proven connects add one); the oldest go first. */
  readonly maxUsedNonces: number;
  /** The PSK identity of the DTLS session behind a `coaps://` peer, if it is still up. */
  readonly dtlsIdentity?: ((peer: PeerAddress) => string | undefined) | undefined;
}

/** Peers of the DTLS endpoint are labelled `coaps://HOST:PORT` (src/dtls server.ts): never plain ones. */
export function isDtlsPeer(peer: PeerAddress): boolean {
  return peer.startsWith(DTLS_PEER_PREFIX);
}

/**
 * Nonces are stateless (no table an unauthenticated peer can grow): 4 bytes of issue time (seconds),
 * 4 random bytes (two challenges in one second differ), and 4 bytes of HMAC over both and the peer's
 * address under a key this process drew at start. The gateway recomputes the MAC to know that it
 * issued the nonce, to this address, recently. Only a connect that proves a device key marks its nonce
 * used (single use: a replayed connect is challenged again); that table is bounded by the proven
 * connects of one nonce lifetime.
 */
const NONCE_TIME_BYTES = 4;
const NONCE_RANDOM_BYTES = 4;
const NONCE_SIGNED_BYTES = NONCE_TIME_BYTES + NONCE_RANDOM_BYTES;
/** What every challenge and every 2.01 carry alike, made once (the serializer only reads them). */
const NO_PAYLOAD = new Uint8Array(0);
const SESSION_FORMAT_OPTION = uintOption(OptionNumber.CONTENT_FORMAT, ContentFormat.CXMPP_SESSION);

export class ConnectHandler {
  /** The nonces' MAC key, its padded blocks compressed once (three nonce MACs per connect use it). */
  private readonly nonceKey: HmacSha256Key;
  /**
   * Nonces of proven connects (as Latin-1 strings: one flat 12-character string per entry, where hex
   * built a chain of 24 joined pieces) and when they stop being valid anyway, oldest first.
   */
  private readonly used = new Map<string, number>();
  /**
   * Walks `used` from its oldest entry, kept across evictions: a Map iterator stays valid while the
   * map changes, and a fresh `keys().next()` would step over every entry deleted at the front since
   * the table was last rehashed (at the cap, thousands per connect: 4-8 µs each time).
   */
  private oldest: IterableIterator<string> | undefined;
  /** The nonce MAC's input: the signed bytes, then the peer's address (reused: one connect at a time). */
  private macInput = new Uint8Array(64);
  /** The nonce MAC (its first NONCE_BYTES − NONCE_SIGNED_BYTES bytes), reused likewise. */
  private readonly macOut = new Uint8Array(protocol.NONCE_BYTES - NONCE_SIGNED_BYTES);
  /** A key no device has: unknown identities cost the same HMAC as a wrong key (no timing oracle). */
  private readonly decoyKey: Uint8Array;

  constructor(
    private readonly registry: SessionRegistry,
    private readonly presence: PresenceBroadcaster,
    private readonly o: ConnectOptions,
  ) {
    this.nonceKey = new HmacSha256Key(randomBytes(o.random, 32));
    this.decoyKey = randomBytes(o.random, 16);
  }

  /** Nonces remembered as used (metrics). */
  get usedNonces(): number {
    return this.used.size;
  }

  handle(request: ServerRequest): Response {
    const c = protocol.decodeConnectRequest(request.payload);
    if (c.dictionary !== this.o.dictionary.id) {
      this.o.stats.refusedConnects++;
      return respond(Code.NOT_ACCEPTABLE, `dictionary ${this.o.dictionary.id} required`);
    }
    if (isDtlsPeer(request.peer)) return this.secureConnect(request, c);
    const echo = findOption(request, OptionNumber.ECHO);
    if (!echo || !c.proof || !this.validNonce(echo.value, request.peer)) {
      // Challenge with a fresh nonce in the Echo option (RFC 9175 §2.4): the proof must cover it.
      return {
        code: Code.UNAUTHORIZED,
        options: [{ number: OptionNumber.ECHO, value: this.nonce(request.peer, this.o.clock.now()) }],
        payload: NO_PAYLOAD,
      };
    }
    const device = this.o.devices.find(c.identity);
    // The same work whether the identity exists or not: an HMAC and a constant-time comparison.
    const expected = this.o.mac
      .hmacSha256(device?.key ?? this.decoyKey, protocol.proofInput(echo.value, c))
      .subarray(0, protocol.PROOF_BYTES);
    const proven = c.proof.length === expected.length && timingSafeEqual(c.proof, expected);
    if (!device || device.revoked || !proven) return this.refuse(request, c.identity);
    this.markUsed(echo.value);
    if (device.dtlsOnly) {
      // The node proved its key, so saying why is no oracle: it must come back over coaps.
      this.o.stats.refusedConnects++;
      this.o.logger.log("warn", "gateway.plain_connect_refused", {
        peer: request.peer,
        identity: c.identity,
      });
      return respond(Code.FORBIDDEN, "this device connects over DTLS only (coaps)");
    }
    return this.accept(device, request, c);
  }

  /**
   * A connect inside a DTLS session (docs/PROTOCOL.md §8): the handshake proved the key, so no
   * challenge; the session may only act as the device of its PSK identity.
   */
  private secureConnect(request: ServerRequest, c: protocol.ConnectRequest): Response {
    const identity = this.o.dtlsIdentity?.(request.peer);
    if (identity === undefined) return respond(Code.UNAUTHORIZED, "no DTLS session");
    const device = this.o.devices.find(identity);
    if (c.identity !== identity || !device || device.revoked) return this.refuse(request, c.identity);
    return this.accept(device, request, c);
  }

  private refuse(request: ServerRequest, identity: string): Response {
    this.o.stats.refusedConnects++;
    this.o.logger.log("warn", "gateway.connect_refused", { peer: request.peer, identity });
    // One answer for unknown, revoked and wrong key: nothing to learn about which identities exist.
    return respond(Code.FORBIDDEN, "identity or proof not accepted");
  }

  private accept(device: Device, request: ServerRequest, c: protocol.ConnectRequest): Response {
    // What the node says it received is delivered, before establish renumbers the rest; an ack beyond
    // what was sent is not applied (it would drop stanzas the node never got).
    const known = this.registry.get(device.identity);
    if (known && c.ack !== undefined) {
      if (c.ack <= known.sent) known.acknowledge(c.ack);
      else this.o.stats.badAcks++;
    }
    // The frame format both read (docs/PROTOCOL.md §3.2): a node that says nothing reads format 1.
    const format = Math.min(c.format ?? 1, protocol.SESSION_FORMAT);
    const session = this.registry.establish(device, request.peer, format);
    session.wake = c.wake ?? 0;
    session.lastSeen = this.o.clock.now();
    session.save();
    this.o.stats.connects++;
    this.presence.show(session);
    this.o.logger.log("info", "gateway.connected", { jid: session.jid, peer: request.peer, h: session.h });
    return {
      code: Code.CREATED,
      options: [SESSION_FORMAT_OPTION],
      payload: protocol.encodeConnectResponse({
        session: session.id,
        resume: session.resume,
        h: session.h,
        jid: session.jid,
        aliases: session.aliases,
        delivered: session.delivered,
        telemetry: session.telemetryMax + 1,
        ...(c.format !== undefined ? { format } : {}),
      }),
    };
  }

  /** Forgets used nonces past their lifetime (they would be refused as too old anyway). */
  sweep(now = this.o.clock.now()): void {
    for (const [nonce, expires] of this.used) {
      if (expires > now) break; // oldest first: the rest are younger
      this.used.delete(nonce);
    }
  }

  private nonce(peer: PeerAddress, now: number): Uint8Array {
    const nonce = new Uint8Array(protocol.NONCE_BYTES);
    const seconds = Math.floor(now / 1000) >>> 0;
    const r = this.o.random.uint32();
    for (let i = 0; i < NONCE_TIME_BYTES; i++) nonce[i] = seconds >>> (24 - 8 * i);
    // Low byte first, as randomBytes(random, 4) lays out one draw.
    for (let i = 0; i < NONCE_RANDOM_BYTES; i++) nonce[NONCE_TIME_BYTES + i] = r >>> (8 * i);
    nonce.set(this.nonceMac(nonce, peer), NONCE_SIGNED_BYTES);
    return nonce;
  }

  /** The MAC of the nonce's signed bytes (its first NONCE_SIGNED_BYTES) and the peer's address. */
  private nonceMac(nonce: Uint8Array, peer: PeerAddress): Uint8Array {
    const length = NONCE_SIGNED_BYTES + peer.length;
    if (length > this.macInput.length) this.macInput = new Uint8Array(length);
    const input = this.macInput;
    for (let i = 0; i < NONCE_SIGNED_BYTES; i++) input[i] = nonce[i]!;
    for (let i = 0; i < peer.length; i++) input[NONCE_SIGNED_BYTES + i] = peer.charCodeAt(i) & 0xff;
    return this.nonceKey.sign(input.subarray(0, length), this.macOut);
  }

  /** Issued by this process, to this address, within the lifetime, and not used by a proven connect. */
  private validNonce(nonce: Uint8Array, peer: PeerAddress): boolean {
    if (nonce.length !== protocol.NONCE_BYTES) return false;
    const mac = this.nonceMac(nonce, peer);
    if (!timingSafeEqual(nonce.subarray(NONCE_SIGNED_BYTES), mac)) return false;
    const issued = issuedAt(nonce);
    const now = this.o.clock.now();
    // Issued at most one lifetime ago (and not in the future: the clock of this process made it).
    if (now - issued >= this.o.nonceLifetimeMs || issued > now) return false;
    return !this.used.has(nonceKey(nonce));
  }

  private markUsed(nonce: Uint8Array): void {
    this.used.set(nonceKey(nonce), issuedAt(nonce) + this.o.nonceLifetimeMs + 1000);
    while (this.used.size > this.o.maxUsedNonces) {
      let next = this.oldest?.next();
      if (next === undefined || next.done) {
        this.oldest = this.used.keys();
        next = this.oldest.next();
      }
      this.used.delete(next.value as string);
      this.o.stats.usedNoncesEvicted++;
    }
  }
}

/** A nonce as a map key: its bytes as Latin-1 characters. */
function nonceKey(n: Uint8Array): string {
  // protocol.NONCE_BYTES (12; validNonce checked the length) arguments, not a spread: no array per key.
  return String.fromCharCode(
    n[0]!,
    n[1]!,
    n[2]!,
    n[3]!,
    n[4]!,
    n[5]!,
    n[6]!,
    n[7]!,
    n[8]!,
    n[9]!,
    n[10]!,
    n[11]!,
  );
}

/** When a nonce was issued (ms; whole seconds). */
function issuedAt(n: Uint8Array): number {
  return (((n[0]! << 24) | (n[1]! << 16) | (n[2]! << 8) | n[3]!) >>> 0) * 1000;
}
