/**
 * A DTLS 1.2 PSK server (RFC 6347, RFC 4279, profile RFC 7925) as a `DatagramTransport`: beneath it a
 * datagram socket, above it the CoAP message layer, which never knows DTLS is there.
 *
 * - ClientHellos without a valid cookie get a HelloVerifyRequest and leave no state (§4.2.1): the
 *   cookie is an HMAC over the client's address and hello under a secret that rotates.
 * - A hello with a valid cookie starts a handshake, within limits (in progress overall and per host).
 * - Established sessions are one per peer address; their records pass the replay window; idle ones
 *   are swept, and the oldest goes when the table is full.
 * - Peers above this transport are labelled `coaps://HOST:PORT`, so nothing received in plain can
 *   ever carry the address of a DTLS session (docs/PROTOCOL.md §8).
 */
import type {
  Cancellable,
  Clock,
  DatagramTransport,
  Logger,
  PeerAddress,
  Scheduler,
} from "../core/interfaces.js";
import { silentLogger } from "../core/interfaces.js";
import { TimerQueue } from "../core/timer-queue.js";
import { Connection, DEFAULT_MTU, DEFAULT_RETRANSMIT, type RetransmitParameters } from "./connection.js";
import type { DtlsCrypto } from "./crypto.js";
import { Alert, AlertLevel, alertName } from "./errors.js";
import { type HandshakeMessage, HandshakeType, parseFragments } from "./handshake.js";
import {
  type ClientHello,
  EMPTY_RENEGOTIATION_INFO,
  EXTENDED_MASTER_SECRET,
  type Extension,
  ExtensionType,
  encodeHelloVerifyRequest,
  encodeServerHello,
  hasExtension,
  offersDtls12,
  parseClientHello,
  parsePskClientKeyExchange,
} from "./messages.js";
import { masterSecret, pskPremaster, trafficKeys, verifyData } from "./prf.js";
import { ContentType, DTLS_1_0, DTLS_1_2, type DtlsRecord, encodeRecord, parseRecords } from "./record.js";
import { CIPHER_SUITES, type CipherSuite, DEFAULT_SUITES, RENEGOTIATION_SCSV } from "./suites.js";
import { ascii, sameBytes, Writer } from "./wire.js";

export interface DtlsServerLimits {
  /** Handshakes in progress (after a valid cookie) at once. */
  readonly maxHandshakes: number;
  /** Handshakes in progress from one IP address. */
  readonly maxHandshakesPerHost: number;
  /** A handshake not finished this long after it started is dropped. */
  readonly handshakeTimeoutMs: number;
  /** Established sessions; when full, the least recently active one is closed. */
  readonly maxSessions: number;
  /** A session with no record from its peer for this long is closed. */
  readonly sessionIdleMs: number;
  /** How long a cookie is accepted (the cookie secret rotates every half of this). */
  readonly cookieLifetimeMs: number;
  /** Alerts a second sent to addresses with no session (a restarted gateway telling nodes so). */
  readonly unknownPeerAlertsPerSecond: number;
}

export const DEFAULT_DTLS_SERVER_LIMITS: DtlsServerLimits = Object.freeze({
  maxHandshakes: 1024,
  maxHandshakesPerHost: 256,
  handshakeTimeoutMs: 60_000,
  maxSessions: 100_000,
  sessionIdleMs: 86_400_000,
  cookieLifetimeMs: 60_000,
  unknownPeerAlertsPerSecond: 50,
});

export interface DtlsServerOptions {
  /** The key of a PSK identity; undefined for an unknown or revoked one (refused like a wrong key). */
  readonly psk: (identity: string) => Uint8Array | undefined;
  /**
   * Whether an established session's identity may still speak, asked for every application record:
   * false closes the session at once with access_denied (its device was revoked). Default: always.
   */
  readonly authorize?: (identity: string) => boolean;
  readonly crypto: DtlsCrypto;
  readonly clock: Clock;
  readonly scheduler: Scheduler;
  readonly logger?: Logger;
  /** Cipher suites in preference order. Default: CCM_8, then GCM. */
  readonly suites?: readonly number[];
  readonly limits?: Partial<DtlsServerLimits>;
  readonly retransmit?: Partial<RetransmitParameters>;
  readonly mtu?: number;
}

export interface DtlsServerStats {
  helloVerifyRequests: number;
  handshakesStarted: number;
  handshakesCompleted: number;
  handshakesFailed: number;
  handshakesRefused: number;
  handshakesTimedOut: number;
  sessionsEvicted: number;
  sessionsExpired: number;
  recordsIn: number;
  recordsOut: number;
  /** Records dropped: they did not authenticate, were replays, or came for no session. */
  badRecords: number;
  replayedRecords: number;
  alertsSent: number;
  alertsReceived: number;
}

export interface DtlsSessionEvent {
  readonly peer: PeerAddress;
  readonly identity: string;
}

/** The label a DTLS peer has above this transport. */
export const DTLS_PEER_PREFIX = "coaps://";

export function dtlsPeer(lower: PeerAddress): PeerAddress {
  return `${DTLS_PEER_PREFIX}${lower}` as PeerAddress;
}

/** The PSK identity as text: printable ASCII as is, anything else as `hex:…` (never matches a device name). */
export function identityText(identity: Uint8Array): string {
  let text = "";
  for (const b of identity) {
    if (b < 0x20 || b > 0x7e)
      return `hex:${[...identity].map((x) => x.toString(16).padStart(2, "0")).join("")}`;
    text += String.fromCharCode(b);
  }
  return text;
}

function hostOf(peer: string): string {
  const colon = peer.lastIndexOf(":");
  return colon < 0 ? peer : peer.slice(0, colon);
}

/**
 * A Connection with what only the server side does with one (so a client's bundle, a tiny node's, leaves
 * it out).
 */
class ServerConnection extends Connection {
  /**
   * Our next epoch-0 record takes this sequence number. A server answering a hello with a cookie
   * continues from that hello's record number (as OpenSSL and mbedTLS do): its HelloVerifyRequest
   * took the first hello's number (§4.2.1), and a ServerHello numbered 0 again is dropped as a replay
   * by clients that check epoch 0 (OpenSSL, node-dtls-client).
   */
  continueEpoch0From(seq: number): void {
    this.writeSeq[0] = Math.max(this.writeSeq[0]!, seq);
  }

  get canRead(): boolean {
    return this.readProtection !== undefined;
  }
}

/** Handshake state of one peer on the server side, around its Connection. */
class ServerAssociation {
  readonly conn: ServerConnection;
  readonly started: number;
  clientRandom: Uint8Array = new Uint8Array(0);
  serverRandom: Uint8Array = new Uint8Array(0);
  suite: CipherSuite | undefined;
  ems = false;
  identity = "";
  known = false;
  master: Uint8Array | undefined;
  established = false;
  /** Last time this session was moved to the back of the sessions map (LRU order). */
  touched = 0;

  constructor(
    readonly lower: PeerAddress,
    conn: ServerConnection,
    now: number,
  ) {
    this.conn = conn;
    this.started = now;
  }
}

export class DtlsServer implements DatagramTransport {
  readonly stats: DtlsServerStats = {
    helloVerifyRequests: 0,
    handshakesStarted: 0,
    handshakesCompleted: 0,
    handshakesFailed: 0,
    handshakesRefused: 0,
    handshakesTimedOut: 0,
    sessionsEvicted: 0,
    sessionsExpired: 0,
    recordsIn: 0,
    recordsOut: 0,
    badRecords: 0,
    replayedRecords: 0,
    alertsSent: 0,
    alertsReceived: 0,
  };
  /** Called when a session is established and when it ends (the gateway unbinds its node). */
  onEstablished: (event: DtlsSessionEvent) => void = () => {};
  onClosed: (event: DtlsSessionEvent & { reason: string }) => void = () => {};

  private readonly limits: DtlsServerLimits;
  private readonly suites: readonly number[];
  private readonly logger: Logger;
  private readonly timers: TimerQueue;
  private readonly retransmit: RetransmitParameters;
  private readonly mtu: number;
  private handler: (data: Uint8Array, peer: PeerAddress) => void = () => {};
  private readonly handshakes = new Map<string, ServerAssociation>();
  private readonly handshakesPerHost = new Map<string, number>();
  /** Established sessions by lower peer address, least recently active first. */
  private readonly sessions = new Map<string, ServerAssociation>();
  private cookieSecrets: [Uint8Array, Uint8Array];
  /** When cookieSecrets[0] was made; cookieSecrets[1] was made at previousSecretAt. */
  private cookieRotated: number;
  private previousSecretAt: number;
  private readonly decoyKey: Uint8Array;
  private alertBudget = 0;
  // The budget fills at the first alert whatever the clock reads (performance.now() starts near 0).
  private alertBudgetAt = Number.NEGATIVE_INFINITY;
  private sweeper: Cancellable | undefined;
  private closed = false;

  constructor(
    private readonly lower: DatagramTransport,
    private readonly options: DtlsServerOptions,
  ) {
    this.limits = { ...DEFAULT_DTLS_SERVER_LIMITS, ...options.limits };
    this.suites = (options.suites ?? DEFAULT_SUITES).filter((s) => CIPHER_SUITES.has(s));
    this.logger = options.logger ?? silentLogger;
    this.timers = new TimerQueue(options.clock, options.scheduler);
    this.retransmit = { ...DEFAULT_RETRANSMIT, ...options.retransmit };
    this.mtu = options.mtu ?? DEFAULT_MTU;
    const c = options.crypto;
    this.cookieSecrets = [c.randomBytes(32), c.randomBytes(32)];
    this.cookieRotated = options.clock.now();
    this.previousSecretAt = this.cookieRotated;
    this.decoyKey = c.randomBytes(16);
    lower.onReceive((data, peer) => this.receive(data, peer));
    this.scheduleSweep();
  }

  // ---- DatagramTransport (the side the CoAP layer sees) ----

  send(data: Uint8Array, peer: PeerAddress): void {
    const session = peer.startsWith(DTLS_PEER_PREFIX)
      ? this.sessions.get(peer.slice(DTLS_PEER_PREFIX.length))
      : undefined;
    if (!session) return; // no session (closed, evicted): the datagram is lost, as on any link
    session.conn.sendData(data);
  }

  onReceive(handler: (data: Uint8Array, peer: PeerAddress) => void): void {
    this.handler = handler;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.sweeper?.cancel();
    for (const s of this.sessions.values()) {
      this.sendAlert(s, Alert.CLOSE_NOTIFY, AlertLevel.WARNING);
      s.conn.close();
    }
    for (const h of this.handshakes.values()) h.conn.close();
    this.sessions.clear();
    this.handshakes.clear();
    this.handshakesPerHost.clear();
    this.timers.clear();
    this.lower.close();
  }

  // ---- what the gateway asks ----

  /** The PSK identity of the session behind an upper-side peer label, if there is one now. */
  identityOf(peer: PeerAddress): string | undefined {
    if (!peer.startsWith(DTLS_PEER_PREFIX)) return undefined;
    return this.sessions.get(peer.slice(DTLS_PEER_PREFIX.length))?.identity;
  }

  /** Closes every session of an identity (its device was revoked), telling each peer with an alert. */
  closeIdentity(identity: string, reason = "revoked"): number {
    let n = 0;
    for (const s of [...this.sessions.values()]) {
      if (s.identity !== identity) continue;
      this.sendAlert(s, reason === "revoked" ? Alert.ACCESS_DENIED : Alert.CLOSE_NOTIFY);
      this.endSession(s, reason);
      n++;
    }
    return n;
  }

  /** Sizes of the tables a peer can grow (metrics). */
  tables(): { handshakes: number; sessions: number } {
    return { handshakes: this.handshakes.size, sessions: this.sessions.size };
  }

  // ---- receiving ----

  private receive(datagram: Uint8Array, lower: PeerAddress): void {
    if (this.closed) return;
    const records = parseRecords(datagram);
    if (records.length === 0) {
      this.stats.badRecords++;
      return;
    }
    for (const record of records) {
      this.stats.recordsIn++;
      try {
        this.receiveRecord(record, lower);
      } catch (error) {
        // A record that breaks an invariant is dropped; the server goes on.
        this.stats.badRecords++;
        this.logger.log("debug", "dtls.record_dropped", { peer: lower, error: (error as Error).message });
      }
    }
  }

  private receiveRecord(record: DtlsRecord, lower: PeerAddress): void {
    if (record.epoch === 0 && record.type === ContentType.HANDSHAKE && this.clientHello(record, lower))
      return;
    const pending = this.handshakes.get(lower);
    const session = this.sessions.get(lower);
    if (record.epoch === 0) {
      // Plaintext: a handshake in progress, or an established session whose last flight the peer
      // is still retransmitting. An unauthenticated alert never ends an established session.
      const target = pending ?? session;
      const r = target?.conn.receive(record);
      if (target && r) this.handle(target, r);
      else this.stats.badRecords++;
      return;
    }
    // Epoch 1: the handshake's Finished, or an established session's traffic. With a new handshake
    // from the address of an old session (a rebooted client, §4.2.8), the record may be either's.
    if (pending?.conn.canRead) {
      const r = pending.conn.receive(record);
      if (r) {
        this.handle(pending, r);
        return;
      }
      if (!session || !this.deliverTo(session, record)) {
        // Keys did not match during the handshake: a wrong PSK (or unknown identity, same answer).
        this.fail(pending, Alert.DECRYPT_ERROR, "finished did not authenticate");
      }
      return;
    }
    if (session) {
      if (!this.deliverTo(session, record)) this.stats.badRecords++;
      return;
    }
    this.stats.badRecords++;
    // A handshake without keys yet: its Finished came before the ClientKeyExchange (reordered, or that
    // was lost). Dropped silently (RFC 6347 §4.1); the client's retransmission brings both again.
    if (!pending) this.alertUnknownPeer(record, lower);
  }

  private deliverTo(session: ServerAssociation, record: DtlsRecord): boolean {
    const r = session.conn.receive(record);
    if (!r) return false;
    this.handle(session, r);
    return true;
  }

  private handle(a: ServerAssociation, r: NonNullable<ReturnType<Connection["receive"]>>): void {
    switch (r.kind) {
      case "handshake":
        if (r.retransmission) a.conn.retransmitOnRequest();
        for (const m of r.messages) {
          if (!this.handshakes.has(a.lower) || this.handshakes.get(a.lower) !== a) break;
          this.handshakeMessage(a, m, r.epoch);
        }
        return;
      case "ccs":
        return; // the epoch is switched by the records themselves; Finished must come in epoch 1
      case "alert":
        this.stats.alertsReceived++;
        if (r.epoch === 0 && a.established) return; // forged as easily as sent: ignored
        if (r.description === Alert.CLOSE_NOTIFY || r.level === AlertLevel.FATAL) {
          this.logger.log("debug", "dtls.alert_received", { peer: a.lower, alert: alertName(r.description) });
          if (a.established) this.endSession(a, `peer sent ${alertName(r.description)}`);
          else this.dropHandshake(a, `peer sent ${alertName(r.description)}`, "failed");
        }
        return;
      case "data":
        if (!a.established) return;
        if (this.options.authorize && !this.options.authorize(a.identity)) {
          this.closeIdentity(a.identity);
          return;
        }
        a.conn.forgetFlight(); // the client has our Finished: no more retransmissions of it
        this.touch(a);
        this.handler(r.data, dtlsPeer(a.lower));
        return;
    }
  }

  // ---- the handshake ----

  /** Handles an epoch-0 ClientHello; false when the record is not one (it goes the usual way). */
  private clientHello(record: DtlsRecord, lower: PeerAddress): boolean {
    let fragments: ReturnType<typeof parseFragments>;
    try {
      fragments = parseFragments(record.fragment);
    } catch {
      return false;
    }
    const f = fragments[0];
    if (fragments.length !== 1 || !f || f.type !== HandshakeType.CLIENT_HELLO) return false;
    // A ClientHello must come whole to be answered statelessly (RFC 6347 §4.2.1 allows no less).
    if (f.offset !== 0 || f.data.length !== f.length) {
      this.stats.badRecords++;
      return true;
    }
    let hello: ClientHello;
    try {
      hello = parseClientHello(f.data);
    } catch {
      this.stats.badRecords++;
      return true;
    }
    const pending = this.handshakes.get(lower);
    if (pending && sameBytes(pending.clientRandom, hello.random)) {
      pending.conn.retransmitOnRequest(); // our ServerHello flight was lost
      return true;
    }
    if (!offersDtls12(hello.version)) {
      this.statelessAlert(record, lower, Alert.PROTOCOL_VERSION);
      return true;
    }
    if (hello.cookie.length === 0 || !this.validCookie(hello.cookie, lower, hello)) {
      // The peer started over: retransmissions of the old flight on our timer could reach it after
      // this HelloVerifyRequest and pass for the answer to its new hello (same message_seq). The
      // flight is kept: a retransmitted hello of that handshake still gets it again.
      pending?.conn.flightAnswered();
      this.helloVerify(record, f.seq, lower, hello);
      return true;
    }
    if (pending) this.dropHandshake(pending, "client started over", "failed");
    const host = hostOf(lower);
    if (
      this.handshakes.size >= this.limits.maxHandshakes ||
      (this.handshakesPerHost.get(host) ?? 0) >= this.limits.maxHandshakesPerHost
    ) {
      this.stats.handshakesRefused++;
      return true;
    }
    this.startHandshake(
      lower,
      hello,
      { type: HandshakeType.CLIENT_HELLO, seq: f.seq, body: f.data },
      record.seq,
    );
    return true;
  }

  private startHandshake(
    lower: PeerAddress,
    hello: ClientHello,
    message: HandshakeMessage,
    recordSeq: number,
  ): void {
    const now = this.options.clock.now();
    const conn = new ServerConnection(
      {
        crypto: this.options.crypto,
        clock: this.options.clock,
        timers: this.timers,
        retransmit: this.retransmit,
        mtu: this.mtu,
        transmit: (d) => this.transmit(d, lower),
        onReplay: () => this.stats.replayedRecords++,
      },
      message.seq + 1,
    );
    const a = new ServerAssociation(lower, conn, now);
    a.clientRandom = hello.random.slice();
    const suite = this.suites.map((id) => CIPHER_SUITES.get(id)!).find((s) => hello.suites.includes(s.id));
    if (!suite || !hello.compressions.includes(0)) {
      this.statelessAlert(undefined, lower, Alert.HANDSHAKE_FAILURE);
      this.stats.handshakesFailed++;
      this.logger.log("info", "dtls.no_common_suite", { peer: lower, offered: hello.suites.length });
      return;
    }
    a.suite = suite;
    a.ems = hasExtension(hello.extensions, ExtensionType.EXTENDED_MASTER_SECRET);
    a.serverRandom = this.options.crypto.randomBytes(32);
    this.handshakes.set(lower, a);
    const host = hostOf(lower);
    this.handshakesPerHost.set(host, (this.handshakesPerHost.get(host) ?? 0) + 1);
    this.stats.handshakesStarted++;

    conn.record(message);
    conn.sendSeq = message.seq; // the server's first message takes the hello's message_seq (§4.2.2)
    conn.continueEpoch0From(recordSeq); // not the HelloVerifyRequest's record number again
    const extensions: Extension[] = [];
    if (
      hasExtension(hello.extensions, ExtensionType.RENEGOTIATION_INFO) ||
      hello.suites.includes(RENEGOTIATION_SCSV)
    )
      extensions.push(EMPTY_RENEGOTIATION_INFO);
    if (a.ems) extensions.push(EXTENDED_MASTER_SECRET);
    const serverHello = encodeServerHello({
      version: DTLS_1_2,
      random: a.serverRandom,
      sessionId: new Uint8Array(0), // no resumption: every node keeps its one session
      suite: suite.id,
      compression: 0,
      extensions,
    });
    // No ServerKeyExchange: we send no PSK identity hint (RFC 4279 §2 lets it be omitted).
    conn.sendFlight(
      [
        ...conn.handshakeRecords(HandshakeType.SERVER_HELLO, serverHello, 0),
        ...conn.handshakeRecords(HandshakeType.SERVER_HELLO_DONE, new Uint8Array(0), 0),
      ],
      true,
    );
  }

  private handshakeMessage(a: ServerAssociation, m: HandshakeMessage, epoch: number): void {
    if (m.type === HandshakeType.CLIENT_KEY_EXCHANGE && !a.master) {
      let identity: Uint8Array;
      try {
        identity = parsePskClientKeyExchange(m.body);
      } catch {
        this.fail(a, Alert.DECODE_ERROR, "bad ClientKeyExchange");
        return;
      }
      a.conn.flightAnswered();
      a.identity = identityText(identity);
      const key = this.options.psk(a.identity);
      a.known = key !== undefined;
      // Unknown and revoked identities go on with a key nobody has: they fail at Finished, exactly
      // like a wrong key, so the answer says nothing about which identities exist.
      const psk = key ?? this.decoyKey;
      a.conn.record(m);
      const crypto = this.options.crypto;
      a.master = masterSecret(crypto, {
        premaster: pskPremaster(psk),
        clientRandom: a.clientRandom,
        serverRandom: a.serverRandom,
        sessionHash: a.ems ? a.conn.transcriptHash() : undefined,
      });
      const keys = trafficKeys(crypto, a.suite!, a.master, a.clientRandom, a.serverRandom);
      a.conn.protect(
        a.suite!,
        { key: keys.serverKey, iv: keys.serverIv },
        { key: keys.clientKey, iv: keys.clientIv },
      );
      return;
    }
    if (m.type === HandshakeType.FINISHED && a.master && epoch === 1) {
      const expected = verifyData(this.options.crypto, a.master, "client", a.conn.transcriptHash());
      if (!a.known || !sameBytes(expected, m.body)) {
        this.fail(a, Alert.DECRYPT_ERROR, a.known ? "finished did not verify" : "unknown identity");
        return;
      }
      a.conn.record(m);
      const mine = verifyData(this.options.crypto, a.master, "server", a.conn.transcriptHash());
      a.conn.writeEpoch = 1;
      // The last flight is resent only when the client resends its own (§4.2.4).
      a.conn.sendFlight(
        [Connection.changeCipherSpec(), ...a.conn.handshakeRecords(HandshakeType.FINISHED, mine, 1)],
        false,
      );
      this.establish(a);
      return;
    }
    this.fail(a, Alert.UNEXPECTED_MESSAGE, `unexpected handshake message ${m.type}`);
  }

  private establish(a: ServerAssociation): void {
    this.removeHandshake(a);
    const old = this.sessions.get(a.lower);
    if (old) this.endSession(old, "replaced by a new handshake");
    if (this.sessions.size >= this.limits.maxSessions) {
      const oldest = this.sessions.values().next().value;
      if (oldest) {
        this.stats.sessionsEvicted++;
        this.sendAlert(oldest, Alert.CLOSE_NOTIFY, AlertLevel.WARNING);
        this.endSession(oldest, "session table full");
      }
    }
    a.established = true;
    a.touched = this.options.clock.now();
    this.sessions.set(a.lower, a);
    this.stats.handshakesCompleted++;
    this.logger.log("debug", "dtls.established", {
      peer: a.lower,
      identity: a.identity,
      suite: a.suite?.name,
    });
    this.onEstablished({ peer: dtlsPeer(a.lower), identity: a.identity });
  }

  private fail(a: ServerAssociation, alert: number, reason: string): void {
    this.sendAlert(a, alert);
    this.dropHandshake(a, reason, "failed");
    this.logger.log("info", "dtls.handshake_failed", {
      peer: a.lower,
      identity: a.identity || undefined,
      reason,
    });
  }

  private dropHandshake(a: ServerAssociation, reason: string, as: "failed" | "timedOut"): void {
    if (this.handshakes.get(a.lower) !== a) return;
    this.removeHandshake(a);
    if (as === "failed") this.stats.handshakesFailed++;
    else this.stats.handshakesTimedOut++;
    this.logger.log("debug", "dtls.handshake_dropped", { peer: a.lower, reason });
  }

  private removeHandshake(a: ServerAssociation): void {
    if (this.handshakes.get(a.lower) !== a) return;
    this.handshakes.delete(a.lower);
    a.conn.cancelTimer();
    const host = hostOf(a.lower);
    const n = (this.handshakesPerHost.get(host) ?? 1) - 1;
    if (n <= 0) this.handshakesPerHost.delete(host);
    else this.handshakesPerHost.set(host, n);
  }

  private endSession(s: ServerAssociation, reason: string): void {
    if (this.sessions.get(s.lower) !== s) return;
    this.sessions.delete(s.lower);
    s.conn.close();
    this.logger.log("debug", "dtls.session_closed", { peer: s.lower, identity: s.identity, reason });
    this.onClosed({ peer: dtlsPeer(s.lower), identity: s.identity, reason });
  }

  /** Moves an active session to the back of the LRU order (at most once a second per session). */
  private touch(s: ServerAssociation): void {
    const now = this.options.clock.now();
    if (now - s.touched < 1000) return;
    s.touched = now;
    this.sessions.delete(s.lower);
    this.sessions.set(s.lower, s);
  }

  // ---- cookies (RFC 6347 §4.2.1) ----

  private cookie(secret: Uint8Array, lower: PeerAddress, hello: ClientHello): Uint8Array {
    const w = new Writer(96).bytes(ascii(lower)).u16(hello.version).bytes(hello.random).vec8(hello.sessionId);
    for (const s of hello.suites) w.u16(s);
    w.vec8(hello.compressions);
    return this.options.crypto.hmacSha256(secret, w.finish()).subarray(0, 16);
  }

  private rotateCookieSecret(): void {
    const now = this.options.clock.now();
    if (now - this.cookieRotated < this.limits.cookieLifetimeMs / 2) return;
    this.previousSecretAt = this.cookieRotated;
    this.cookieRotated = now;
    this.cookieSecrets = [this.options.crypto.randomBytes(32), this.cookieSecrets[0]];
  }

  private validCookie(cookie: Uint8Array, lower: PeerAddress, hello: ClientHello): boolean {
    this.rotateCookieSecret();
    const [current, previous] = this.cookieSecrets;
    if (sameBytes(cookie, this.cookie(current, lower, hello))) return true;
    // Rotation is lazy (at the next hello), so after a quiet spell the previous secret can be old: its
    // cookies were issued no earlier than it was made, and are refused once that is a lifetime ago.
    if (this.options.clock.now() - this.previousSecretAt >= this.limits.cookieLifetimeMs) return false;
    return sameBytes(cookie, this.cookie(previous, lower, hello));
  }

  private helloVerify(record: DtlsRecord, messageSeq: number, lower: PeerAddress, hello: ClientHello): void {
    this.rotateCookieSecret();
    const body = encodeHelloVerifyRequest(this.cookie(this.cookieSecrets[0], lower, hello));
    const handshake = new Writer(12 + body.length)
      .u8(HandshakeType.HELLO_VERIFY_REQUEST)
      .u24(body.length)
      .u16(messageSeq)
      .u24(0)
      .u24(body.length)
      .bytes(body)
      .finish();
    // The record copies the hello's sequence number (§4.2.1) and says DTLS 1.0, as clients expect.
    this.stats.helloVerifyRequests++;
    this.transmit(encodeRecord(ContentType.HANDSHAKE, DTLS_1_0, 0, record.seq, handshake), lower);
  }

  // ---- alerts ----

  private sendAlert(a: ServerAssociation, description: number, level: number = AlertLevel.FATAL): void {
    this.stats.alertsSent++;
    a.conn.sendAlert(description, level);
  }

  /** An epoch-0 alert with no state behind it (no common suite, wrong version). */
  private statelessAlert(record: DtlsRecord | undefined, lower: PeerAddress, description: number): void {
    this.stats.alertsSent++;
    this.transmit(
      encodeRecord(
        ContentType.ALERT,
        DTLS_1_2,
        0,
        record?.seq ?? 0,
        Uint8Array.of(AlertLevel.FATAL, description),
      ),
      lower,
    );
  }

  /**
   * Protected records from an address with no session: most likely a node whose session this server
   * forgot (a restart). A fatal alert tells it to handshake again instead of retransmitting into
   * silence; the budget keeps forged floods from turning this into a reflector.
   */
  private alertUnknownPeer(record: DtlsRecord, lower: PeerAddress): void {
    const now = this.options.clock.now();
    if (now - this.alertBudgetAt >= 1000) {
      this.alertBudgetAt = now;
      this.alertBudget = this.limits.unknownPeerAlertsPerSecond;
    }
    if (this.alertBudget <= 0) return;
    this.alertBudget--;
    this.statelessAlert(record, lower, Alert.UNEXPECTED_MESSAGE);
  }

  private transmit(datagram: Uint8Array, lower: PeerAddress): void {
    this.stats.recordsOut++;
    this.lower.send(datagram, lower);
  }

  // ---- sweeping ----

  private scheduleSweep(): void {
    if (this.closed) return;
    this.sweeper = this.timers.after(5000, () => {
      this.sweep();
      this.scheduleSweep();
    });
  }

  /** Drops handshakes past their time and sessions idle too long (every 5 s; tests call it directly). */
  sweep(now = this.options.clock.now()): void {
    for (const h of [...this.handshakes.values()]) {
      if (now - h.started >= this.limits.handshakeTimeoutMs) this.dropHandshake(h, "timed out", "timedOut");
    }
    for (const s of [...this.sessions.values()]) {
      if (now - s.conn.lastReceived < this.limits.sessionIdleMs) continue;
      this.stats.sessionsExpired++;
      this.endSession(s, "idle");
    }
  }
}
