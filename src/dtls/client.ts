/**
 * A DTLS 1.2 PSK client (RFC 6347, RFC 4279) as a `DatagramTransport` to one server: what a node puts
 * under its CoAP endpoint. Its cryptography comes from the host (`DtlsCrypto`), like its clock and
 * socket, so the same client runs on an embedded engine.
 *
 * It handshakes on `connect()` or on the first datagram sent (queued meanwhile), retransmits its
 * flights with backoff (§4.2.4), and handshakes again when the server shows it lost the session (a
 * fatal alert at epoch 0 after a gateway restart) or when the session was closed.
 */

import type { Clock, DatagramTransport, Logger, PeerAddress, Scheduler } from "../core/interfaces.js";
import { silentLogger } from "../core/interfaces.js";
import {
  Connection,
  DEFAULT_MTU,
  DEFAULT_RETRANSMIT,
  type RetransmitParameters,
  type Timers,
} from "./connection.js";
import {
  ALERT_CLOSE_NOTIFY,
  ALERT_DECODE_ERROR,
  ALERT_DECRYPT_ERROR,
  ALERT_HANDSHAKE_FAILURE,
  ALERT_ILLEGAL_PARAMETER,
  ALERT_INSUFFICIENT_SECURITY,
  ALERT_INTERNAL_ERROR,
  ALERT_LEVEL_FATAL,
  ALERT_LEVEL_WARNING,
  ALERT_PROTOCOL_VERSION,
  ALERT_UNEXPECTED_MESSAGE,
  EXTENSION_EXTENDED_MASTER_SECRET,
  HANDSHAKE_CLIENT_HELLO,
  HANDSHAKE_CLIENT_KEY_EXCHANGE,
  HANDSHAKE_FINISHED,
  HANDSHAKE_HELLO_VERIFY_REQUEST,
  HANDSHAKE_SERVER_HELLO,
  HANDSHAKE_SERVER_HELLO_DONE,
  HANDSHAKE_SERVER_KEY_EXCHANGE,
} from "./constants.js";
import type { DtlsCrypto } from "./crypto.js";
import { alertName, DtlsError } from "./errors.js";
import type { HandshakeMessage } from "./handshake.js";
import {
  EMPTY_RENEGOTIATION_INFO,
  EXTENDED_MASTER_SECRET,
  encodeClientHello,
  encodePskClientKeyExchange,
  hasExtension,
  parseHelloVerifyRequest,
  parsePskServerKeyExchange,
  parseServerHello,
} from "./messages.js";
import { masterSecret, pskPremaster, trafficKeys, verifyData } from "./prf.js";
import { DTLS_1_2, parseRecords } from "./record.js";
import { CIPHER_SUITES, type CipherSuite, DEFAULT_SUITES } from "./suites.js";
import { ascii, sameBytes } from "./wire.js";

export interface DtlsClientOptions {
  /** The server's address on the lower transport; also the peer the layer above sends to. */
  readonly server: PeerAddress;
  /** PSK identity (printable ASCII: the device identity from provisioning). */
  readonly identity: string;
  readonly psk: Uint8Array;
  readonly crypto: DtlsCrypto;
  readonly clock: Clock;
  readonly scheduler: Scheduler;
  readonly logger?: Logger;
  /** Offered cipher suites, in preference order. Default CCM_8, then GCM. */
  readonly suites?: readonly number[];
  readonly retransmit?: Partial<RetransmitParameters>;
  /** A handshake that has not finished after this long fails with a timeout. Default 60 s. */
  readonly handshakeTimeoutMs?: number;
  readonly mtu?: number;
  /** Datagrams held while a handshake runs; older ones are dropped beyond this. Default 16. */
  readonly maxQueued?: number;
}

export interface DtlsClientStats {
  handshakes: number;
  handshakeFailures: number;
  retransmissions: number;
  recordsIn: number;
  recordsOut: number;
  badRecords: number;
  bytesOut: number;
  bytesIn: number;
}

type Phase = "idle" | "hello" | "keys" | "finished" | "established" | "closed";

/** The alerts a server can send in answer to a ClientHello. */
const HELLO_REFUSALS: ReadonlySet<number> = new Set([
  ALERT_HANDSHAKE_FAILURE,
  ALERT_PROTOCOL_VERSION,
  ALERT_ILLEGAL_PARAMETER,
  ALERT_DECODE_ERROR,
  ALERT_INSUFFICIENT_SECURITY,
  ALERT_INTERNAL_ERROR,
]);

export class DtlsClient implements DatagramTransport {
  readonly stats: DtlsClientStats = {
    handshakes: 0,
    handshakeFailures: 0,
    retransmissions: 0,
    recordsIn: 0,
    recordsOut: 0,
    badRecords: 0,
    bytesOut: 0,
    bytesIn: 0,
  };
  /** The suite of the current session (undefined before one is established). */
  suite: CipherSuite | undefined;
  /** Whether the server agreed to the extended master secret (RFC 7627). */
  extendedMasterSecret = false;

  /**
   * Deadlines straight on the scheduler: a client has two at most (its flight's retransmission, the
   * handshake's timeout), and the tiny node's scheduler is its own TimerQueue already, so the DTLS
   * bundle (src/tiny/js-dtls.ts) carries no second one.
   */
  private readonly timers: Timers;
  private readonly logger: Logger;
  private readonly suites: readonly number[];
  private handler: (data: Uint8Array, peer: PeerAddress) => void = () => {};
  private phase: Phase = "idle";
  private conn: Connection | undefined;
  private clientRandom: Uint8Array = new Uint8Array(0);
  private serverRandom: Uint8Array = new Uint8Array(0);
  private ems = false;
  private master: Uint8Array | undefined;
  private queue: Uint8Array[] = [];
  private waiting: { resolve: () => void; reject: (e: Error) => void }[] = [];
  private deadline: { cancel(): void } | undefined;

  constructor(
    private readonly lower: DatagramTransport,
    private readonly options: DtlsClientOptions,
  ) {
    this.timers = { after: (delayMs, task) => options.scheduler.schedule(delayMs, task) };
    this.logger = options.logger ?? silentLogger;
    this.suites = (options.suites ?? DEFAULT_SUITES).filter((s) => CIPHER_SUITES.has(s));
    lower.onReceive((data, peer) => {
      if (peer === options.server) this.#receive(data);
    });
  }

  get established(): boolean {
    return this.phase === "established";
  }

  /** Bytes DTLS adds to each datagram of the current session (13 header + nonce + tag). */
  get overhead(): number {
    return this.conn?.overhead ?? 0;
  }

  /** Handshakes now unless a session exists; resolves once established. */
  connect(): Promise<void> {
    if (this.phase === "established") return Promise.resolve();
    if (this.phase === "closed")
      return Promise.reject(new DtlsError("closed", ALERT_CLOSE_NOTIFY, "client closed"));
    const promise = new Promise<void>((resolve, reject) => this.waiting.push({ resolve, reject }));
    if (this.phase === "idle") this.#startHandshake();
    return promise;
  }

  // ---- DatagramTransport ----

  /** `peer` defaults to the server, the one peer a client has (the tiny node sends so: TinyDtlsSession). */
  send(data: Uint8Array, peer: PeerAddress = this.options.server): void {
    if (peer !== this.options.server || this.phase === "closed") return;
    if (this.phase === "established" && this.conn) {
      this.stats.recordsOut++;
      this.conn.sendData(data);
      return;
    }
    this.queue.push(data);
    if (this.queue.length > (this.options.maxQueued ?? 16)) this.queue.shift();
    if (this.phase === "idle") this.connect().catch(() => {}); // the failure is logged; the layer above retries
  }

  onReceive(handler: (data: Uint8Array, peer: PeerAddress) => void): void {
    this.handler = handler;
  }

  /** Tells the server (close_notify) and closes the transport below. */
  close(): void {
    if (this.phase === "closed") return;
    if (this.phase === "established") this.conn?.sendAlert(ALERT_CLOSE_NOTIFY, ALERT_LEVEL_WARNING);
    this.#finish(new DtlsError("closed", ALERT_CLOSE_NOTIFY, "client closed"));
    this.phase = "closed";
    this.conn?.close(); // its retransmission deadline (the handshake's went in #finish)
    this.lower.close();
  }

  // ---- the handshake ----

  #startHandshake(): void {
    this.conn?.close();
    this.phase = "hello";
    this.stats.handshakes++;
    this.master = undefined;
    this.suite = undefined;
    this.extendedMasterSecret = false;
    this.clientRandom = this.options.crypto.randomBytes(32);
    this.conn = new Connection(
      {
        crypto: this.options.crypto,
        clock: this.options.clock,
        timers: this.timers,
        retransmit: { ...DEFAULT_RETRANSMIT, ...this.options.retransmit },
        mtu: this.options.mtu ?? DEFAULT_MTU,
        transmit: (d) => {
          this.stats.bytesOut += d.length;
          this.lower.send(d, this.options.server);
        },
      },
      0,
    );
    this.deadline?.cancel();
    this.deadline = this.timers.after(this.options.handshakeTimeoutMs ?? 60_000, () => {
      this.#fail(new DtlsError("timeout", ALERT_HANDSHAKE_FAILURE, "handshake timed out"));
    });
    this.#sendHello(new Uint8Array(0));
  }

  #sendHello(cookie: Uint8Array): void {
    const conn = this.conn!;
    const body = encodeClientHello({
      version: DTLS_1_2,
      random: this.clientRandom,
      sessionId: new Uint8Array(0),
      cookie,
      suites: this.suites,
      compressions: Uint8Array.of(0),
      extensions: [EXTENDED_MASTER_SECRET, EMPTY_RENEGOTIATION_INFO],
    });
    // Only the hello that gets the ServerHello counts for Finished (§4.2.6): start over on a cookie.
    conn.resetTranscript();
    conn.sendFlight(conn.handshakeRecords(HANDSHAKE_CLIENT_HELLO, body, 0), true);
  }

  #receive(datagram: Uint8Array): void {
    if (this.phase === "closed") return;
    this.stats.bytesIn += datagram.length;
    for (const record of parseRecords(datagram)) {
      this.stats.recordsIn++;
      const conn = this.conn;
      if (!conn) return;
      const r = conn.receive(record);
      if (!r) {
        this.stats.badRecords++;
        continue;
      }
      try {
        switch (r.kind) {
          case "handshake":
            if (r.retransmission && this.phase !== "established") conn.retransmitOnRequest();
            for (const m of r.messages) {
              this.#handshakeMessage(m, r.epoch);
              // What came with a HelloVerifyRequest predates the hello it made us send: stale.
              if (m.type === HANDSHAKE_HELLO_VERIFY_REQUEST) break;
            }
            break;
          case "ccs":
            break;
          case "alert":
            this.#alert(r.level, r.description, r.epoch);
            break;
          case "data":
            if (this.phase === "established") this.handler(r.data, this.options.server);
            break;
        }
      } catch (error) {
        const e =
          error instanceof DtlsError
            ? error
            : new DtlsError("protocol", ALERT_INTERNAL_ERROR, (error as Error).message);
        if (e.kind !== "alert" && r.kind !== "alert") conn.sendAlert(e.alert); // never answer an alert
        this.#fail(e);
        return;
      }
    }
  }

  #alert(level: number, description: number, epoch: number): void {
    // No handshake running (it failed, or the session was just lost): a late alert fails nothing.
    if (this.phase === "idle") return;
    // While we say hello, a plaintext alert that cannot answer a ClientHello (unexpected_message,
    // decrypt_error, ...) is the late answer to a record of an earlier session or attempt (a server
    // that lost our session; the Finished of a handshake we gave up): it must not end this one.
    if (this.phase === "hello" && epoch === 0 && !HELLO_REFUSALS.has(description)) return;
    const name = alertName(description);
    if (this.phase === "established") {
      // An epoch-0 alert is unauthenticated: the server lost our session (a restart) or someone
      // forged it. Either way the cure is the same: a new handshake, never a silent dead session.
      if (epoch === 0 || description === ALERT_CLOSE_NOTIFY || level === ALERT_LEVEL_FATAL) {
        this.logger.log("info", "dtls.session_lost", { server: this.options.server, alert: name });
        this.phase = "idle";
        if (this.queue.length > 0) this.connect().catch(() => {});
      }
      return;
    }
    if (level === ALERT_LEVEL_FATAL || description === ALERT_CLOSE_NOTIFY)
      throw new DtlsError(
        description === ALERT_DECRYPT_ERROR ? "auth" : "alert",
        description,
        `server sent ${name}`,
      );
  }

  #handshakeMessage(m: HandshakeMessage, epoch: number): void {
    const conn = this.conn!;
    switch (this.phase) {
      case "hello":
        if (m.type === HANDSHAKE_HELLO_VERIFY_REQUEST) {
          const hvr = parseHelloVerifyRequest(m.body);
          // Nothing received before our new hello can answer it: a flight of an abandoned earlier
          // attempt, still retransmitted by the server, must not pass for this one's ServerHello.
          conn.reassembler.restart(m.seq + 1);
          this.#sendHello(hvr.cookie.slice());
          return;
        }
        if (m.type === HANDSHAKE_SERVER_HELLO) {
          conn.flightAnswered();
          const sh = parseServerHello(m.body);
          if (sh.version !== DTLS_1_2)
            throw new DtlsError("protocol", ALERT_PROTOCOL_VERSION, "server is not DTLS 1.2");
          const suite = CIPHER_SUITES.get(sh.suite);
          if (!suite || !this.suites.includes(sh.suite) || sh.compression !== 0)
            throw new DtlsError("protocol", ALERT_ILLEGAL_PARAMETER, `server chose suite ${sh.suite}`);
          this.suite = suite;
          this.serverRandom = sh.random.slice();
          this.ems = hasExtension(sh.extensions, EXTENSION_EXTENDED_MASTER_SECRET);
          conn.record(m);
          this.phase = "keys";
          return;
        }
        break;
      case "keys":
        if (m.type === HANDSHAKE_SERVER_KEY_EXCHANGE) {
          parsePskServerKeyExchange(m.body); // an identity hint: read, then ignored
          conn.record(m);
          return;
        }
        if (m.type === HANDSHAKE_SERVER_HELLO_DONE) {
          conn.record(m);
          this.#sendKeys();
          return;
        }
        break;
      case "finished":
        if (m.type === HANDSHAKE_FINISHED && epoch === 1) {
          const expected = verifyData(this.options.crypto, this.master!, "server", conn.transcriptHash());
          if (!sameBytes(expected, m.body))
            throw new DtlsError("auth", ALERT_DECRYPT_ERROR, "server Finished did not verify");
          conn.forgetFlight();
          this.#becomeEstablished();
          return;
        }
        break;
      default:
        return; // established: a retransmitted server flight needs nothing from us
    }
    throw new DtlsError(
      "protocol",
      ALERT_UNEXPECTED_MESSAGE,
      `unexpected handshake message ${m.type} in ${this.phase}`,
    );
  }

  #sendKeys(): void {
    const conn = this.conn!;
    const crypto = this.options.crypto;
    const suite = this.suite!;
    const cke = conn.handshakeRecords(
      HANDSHAKE_CLIENT_KEY_EXCHANGE,
      encodePskClientKeyExchange(ascii(this.options.identity)),
      0,
    );
    this.master = masterSecret(crypto, {
      premaster: pskPremaster(this.options.psk),
      clientRandom: this.clientRandom,
      serverRandom: this.serverRandom,
      sessionHash: this.ems ? conn.transcriptHash() : undefined,
    });
    this.extendedMasterSecret = this.ems;
    const keys = trafficKeys(crypto, suite, this.master, this.clientRandom, this.serverRandom);
    conn.protect(
      suite,
      { key: keys.clientKey, iv: keys.clientIv },
      { key: keys.serverKey, iv: keys.serverIv },
    );
    const finished = verifyData(crypto, this.master, "client", conn.transcriptHash());
    const fin = conn.handshakeRecords(HANDSHAKE_FINISHED, finished, 1);
    conn.writeEpoch = 1;
    this.phase = "finished";
    conn.sendFlight([...cke, Connection.changeCipherSpec(), ...fin], true);
  }

  #becomeEstablished(): void {
    this.phase = "established";
    this.deadline?.cancel();
    this.deadline = undefined;
    this.stats.retransmissions += this.conn?.retransmissions ?? 0;
    this.logger.log("debug", "dtls.established", { server: this.options.server, suite: this.suite?.name });
    const queued = this.queue;
    this.queue = [];
    for (const d of queued) this.send(d, this.options.server);
    const waiting = this.waiting;
    this.waiting = [];
    for (const w of waiting) w.resolve();
  }

  #fail(error: DtlsError): void {
    this.stats.handshakeFailures++;
    this.stats.retransmissions += this.conn?.retransmissions ?? 0;
    this.logger.log("warn", "dtls.handshake_failed", { server: this.options.server, error: error.message });
    this.conn?.close();
    this.phase = "idle";
    this.queue = [];
    this.#finish(error);
  }

  #finish(error: DtlsError): void {
    this.deadline?.cancel();
    this.deadline = undefined;
    const waiting = this.waiting;
    this.waiting = [];
    for (const w of waiting) w.reject(error);
  }
}
