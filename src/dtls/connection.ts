/**
 * One DTLS association's record layer and flight machinery, shared by the server and the client
 * (RFC 6347 §4.1, §4.2.4): epochs and per-epoch sequence numbers, the protection of epoch 1, the
 * replay window, packing a flight's records into datagrams that fit the MTU, and retransmitting the
 * last flight with exponential backoff until the peer answers. The handshake logic lives in
 * server.ts and client.ts; this class does not know which side it is.
 */

import type { Cancellable, Clock } from "../core/interfaces.js";
import {
  ALERT_LEVEL_FATAL,
  CONTENT_ALERT,
  CONTENT_APPLICATION_DATA,
  CONTENT_CHANGE_CIPHER_SPEC,
  CONTENT_HANDSHAKE,
  HANDSHAKE_CLIENT_HELLO,
  HANDSHAKE_FINISHED,
} from "./constants.js";
import type { DtlsCrypto } from "./crypto.js";
import { decodeError } from "./errors.js";
import {
  encodeHandshake,
  fragmentHandshake,
  HANDSHAKE_HEADER_BYTES,
  type HandshakeMessage,
  parseFragments,
  Reassembler,
} from "./handshake.js";
import {
  DTLS_1_2,
  type DtlsRecord,
  MAX_SEQUENCE,
  RECORD_HEADER_BYTES,
  RecordProtection,
  ReplayWindow,
  writeRecord,
} from "./record.js";
import type { CipherSuite } from "./suites.js";
import { concatBytes, Writer } from "./wire.js";

export interface RetransmitParameters {
  /** First retransmission timeout (RFC 6347 §4.2.4.1 suggests 1 s). */
  readonly initialMs: number;
  /** The timeout doubles up to this. RFC 6347 allows up to 60 s; a short cap completes handshakes on very lossy links. */
  readonly maxMs: number;
}

export const DEFAULT_RETRANSMIT: RetransmitParameters = { initialMs: 1000, maxMs: 4000 };

export { DEFAULT_MTU } from "./constants.js";

/**
 * Where a connection arms its retransmission deadline: the server's TimerQueue, or a client's scheduler
 * (the tiny node's own queue), so that a client bundled apart does not carry a queue of its own.
 */
export interface Timers {
  after(delayMs: number, task: () => void): Cancellable;
}

export interface ConnectionContext {
  readonly crypto: DtlsCrypto;
  readonly clock: Clock;
  readonly timers: Timers;
  readonly retransmit: RetransmitParameters;
  readonly mtu: number;
  /** Puts one datagram on the wire to this association's peer. */
  readonly transmit: (datagram: Uint8Array) => void;
  /** Told of each record the replay window refused (stats). */
  readonly onReplay?: () => void;
}

/** One record of a flight, kept as plaintext: a retransmission seals it again with a new sequence number. */
interface FlightRecord {
  readonly type: number;
  readonly epoch: number;
  readonly data: Uint8Array;
}

export type Received =
  | {
      readonly kind: "handshake";
      readonly messages: HandshakeMessage[];
      readonly retransmission: boolean;
      readonly epoch: number;
    }
  | { readonly kind: "ccs" }
  | { readonly kind: "alert"; readonly level: number; readonly description: number; readonly epoch: number }
  | { readonly kind: "data"; readonly data: Uint8Array };

export class Connection {
  /** Next record sequence number of each epoch (a retransmitted epoch-0 record still needs one). */
  protected readonly writeSeq = [0, 0];
  private writeProtection: RecordProtection | undefined;
  protected readProtection: RecordProtection | undefined;
  private readonly replay = new ReplayWindow();
  /** The epoch application data and alerts are sent in: 1 once our ChangeCipherSpec is out. */
  writeEpoch = 0;
  /** The flight to retransmit, while the peer has not answered it. */
  private flight: FlightRecord[] = [];
  private timer: Cancellable | undefined;
  private timeoutMs: number;
  private lastRetransmit = Number.NEGATIVE_INFINITY;
  /** message_seq of our next handshake message. */
  sendSeq = 0;
  readonly reassembler: Reassembler;
  /** The handshake messages so far, as the Finished hash covers them (§4.2.6). */
  private transcript: Uint8Array[] = [];
  /** When the last authenticated record came (a session's idleness). */
  lastReceived: number;
  /** Flights retransmitted on our timer or because the peer retransmitted. */
  retransmissions = 0;

  constructor(
    private readonly ctx: ConnectionContext,
    firstReceiveSeq: number,
  ) {
    this.timeoutMs = ctx.retransmit.initialMs;
    this.reassembler = new Reassembler(firstReceiveSeq);
    this.lastReceived = ctx.clock.now();
  }

  /** Installs epoch-1 keys (after the key exchange). */
  protect(
    suite: CipherSuite,
    write: { key: Uint8Array; iv: Uint8Array },
    read: { key: Uint8Array; iv: Uint8Array },
  ): void {
    this.writeProtection = new RecordProtection(this.ctx.crypto, suite, write.key, write.iv);
    this.readProtection = new RecordProtection(this.ctx.crypto, suite, read.key, read.iv);
  }

  /** Bytes DTLS adds to one application datagram: header, explicit nonce, tag. */
  get overhead(): number {
    return RECORD_HEADER_BYTES + (this.writeProtection?.overhead ?? 0);
  }

  // ---- transcript ----

  record(message: HandshakeMessage): void {
    this.transcript.push(encodeHandshake(message));
  }

  resetTranscript(): void {
    this.transcript = [];
  }

  transcriptHash(): Uint8Array {
    return this.ctx.crypto.sha256(concatBytes(this.transcript));
  }

  // ---- receiving ----

  /**
   * Reads one record of this association: undefined when it is dropped (does not authenticate, a
   * replay, an epoch we cannot read). Handshake fragments go through the reassembler.
   */
  receive(record: DtlsRecord): Received | undefined {
    let plaintext: Uint8Array;
    if (record.epoch === 0) {
      plaintext = record.fragment;
    } else if (record.epoch === 1 && this.readProtection) {
      if (!this.replay.fresh(record.seq)) {
        this.ctx.onReplay?.();
        return undefined;
      }
      const opened = this.readProtection.open(record);
      if (!opened) return undefined;
      this.replay.mark(record.seq);
      // Only an authenticated record shows the peer is there: anyone can send plaintext in its name.
      this.lastReceived = this.ctx.clock.now();
      plaintext = opened;
    } else return undefined;
    switch (record.type) {
      case CONTENT_HANDSHAKE: {
        try {
          // Finished is only ever protected (§4.2.6): a plaintext one is forged or broken.
          const fragments = parseFragments(plaintext).filter(
            (f) => record.epoch === 1 || f.type !== HANDSHAKE_FINISHED,
          );
          const result = this.reassembler.add(fragments);
          return { kind: "handshake", ...result, epoch: record.epoch };
        } catch {
          return undefined; // malformed or oversized: dropped like any invalid record (§4.1.2.7)
        }
      }
      case CONTENT_CHANGE_CIPHER_SPEC:
        return plaintext.length === 1 && plaintext[0] === 1 ? { kind: "ccs" } : undefined;
      case CONTENT_ALERT:
        return plaintext.length === 2
          ? { kind: "alert", level: plaintext[0]!, description: plaintext[1]!, epoch: record.epoch }
          : undefined;
      case CONTENT_APPLICATION_DATA:
        return record.epoch === 1 ? { kind: "data", data: plaintext } : undefined;
      default:
        return undefined;
    }
  }

  // ---- sending ----

  /** A handshake message of ours: numbered, recorded in the transcript, returned as flight records. */
  handshakeRecords(type: number, body: Uint8Array, epoch: number): FlightRecord[] {
    const message = { type, seq: this.sendSeq++, body };
    this.record(message);
    const room = this.ctx.mtu - RECORD_HEADER_BYTES - HANDSHAKE_HEADER_BYTES - (epoch === 1 ? 24 : 0);
    // A ClientHello goes whole, whatever the MTU: a server answers only a whole one statelessly (ours,
    // OpenSSL's DTLSv1_listen and mbedTLS drop a fragmented ClientHello).
    const max = type === HANDSHAKE_CLIENT_HELLO ? body.length : Math.max(16, room);
    return fragmentHandshake(message, max).map((data) => ({
      type: CONTENT_HANDSHAKE,
      epoch,
      data,
    }));
  }

  static changeCipherSpec(): FlightRecord {
    return { type: CONTENT_CHANGE_CIPHER_SPEC, epoch: 0, data: Uint8Array.of(1) };
  }

  /**
   * Sends a flight and keeps it for retransmission. `timed` arms the retransmission timer (every
   * flight but the last of the handshake, which is resent only when the peer resends its own, §4.2.4).
   */
  sendFlight(records: FlightRecord[], timed: boolean, onGiveUp?: () => void): void {
    this.cancelTimer();
    this.flight = records;
    this.timeoutMs = this.ctx.retransmit.initialMs;
    this.#transmitFlight();
    if (timed) this.#arm(onGiveUp);
  }

  /** The peer answered our flight: stop retransmitting it (it may still be resent on request). */
  flightAnswered(): void {
    this.cancelTimer();
  }

  /** Forgets the last flight entirely (the peer has shown it has it). */
  forgetFlight(): void {
    this.cancelTimer();
    this.flight = [];
  }

  /** The peer retransmitted: send ours again, at most once per half initial timeout (no storms). */
  retransmitOnRequest(): void {
    if (this.flight.length === 0) return;
    const now = this.ctx.clock.now();
    if (now - this.lastRetransmit < this.ctx.retransmit.initialMs / 2) return;
    this.lastRetransmit = now;
    this.retransmissions++;
    this.#transmitFlight();
  }

  #arm(onGiveUp?: () => void): void {
    this.timer = this.ctx.timers.after(this.timeoutMs, () => {
      this.timer = undefined;
      this.timeoutMs = Math.min(this.timeoutMs * 2, this.ctx.retransmit.maxMs);
      this.retransmissions++;
      this.lastRetransmit = this.ctx.clock.now();
      this.#transmitFlight();
      this.#arm(onGiveUp);
    });
  }

  cancelTimer(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }

  /** Seals and packs the flight into as few datagrams as the MTU allows. */
  #transmitFlight(): void {
    let w = new Writer(256);
    for (const r of this.flight) {
      const sealed = this.#seal(r.type, r.epoch, r.data);
      if (w.length > 0 && w.length + RECORD_HEADER_BYTES + sealed.fragment.length > this.ctx.mtu) {
        this.ctx.transmit(w.finish());
        w = new Writer(256);
      }
      writeRecord(w, r.type, DTLS_1_2, r.epoch, sealed.seq, sealed.fragment);
    }
    if (w.length > 0) this.ctx.transmit(w.finish());
  }

  #seal(type: number, epoch: number, data: Uint8Array): { seq: number; fragment: Uint8Array } {
    const seq = this.writeSeq[epoch]!;
    if (seq >= MAX_SEQUENCE) throw decodeError("sequence numbers exhausted");
    this.writeSeq[epoch] = seq + 1;
    if (epoch === 0) return { seq, fragment: data };
    if (!this.writeProtection) throw decodeError("no keys for epoch 1");
    return { seq, fragment: this.writeProtection.seal(type, DTLS_1_2, epoch, seq, data) };
  }

  /** One record in the current write epoch, in its own datagram (application data, alerts). */
  encode(type: number, data: Uint8Array): Uint8Array {
    const sealed = this.#seal(type, this.writeEpoch, data);
    const w = new Writer(RECORD_HEADER_BYTES + sealed.fragment.length);
    writeRecord(w, type, DTLS_1_2, this.writeEpoch, sealed.seq, sealed.fragment);
    return w.finish();
  }

  sendData(data: Uint8Array): void {
    this.ctx.transmit(this.encode(CONTENT_APPLICATION_DATA, data));
  }

  sendAlert(description: number, level: number = ALERT_LEVEL_FATAL): void {
    this.ctx.transmit(this.encode(CONTENT_ALERT, Uint8Array.of(level, description)));
  }

  close(): void {
    this.forgetFlight();
  }
}
