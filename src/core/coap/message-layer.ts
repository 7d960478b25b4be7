/**
 * The message layer (RFC 7252 §4): message ids, reliable transmission of CON messages with exponential
 * back-off, NSTART per peer, acknowledgement and reset, and deduplication of received messages.
 * It knows nothing of tokens, requests or resources (aiocoap's MessageManager has the same cut).
 *
 * Deduplication (§4.5) keeps, per (peer, message id), the reply that was sent, so a retransmitted CON
 * gets the same ACK again instead of being processed twice; entries expire after EXCHANGE_LIFETIME
 * (NON_LIFETIME for NON). Only the reply bytes are kept, not the request. The table is capped
 * (CoapLimits.maxDedupEntries, maxDedupBytes): when full, the oldest pair is forgotten first and counted
 * in `stats.dedupEvicted`. What that loses: a retransmission of a forgotten message, arriving later
 * than the table's span, is processed again (cxmpp's session sequence numbers keep uplink exactly once).
 */
import type { DatagramTransport, Logger, PeerAddress, Random } from "../interfaces.js";
import type { TimerQueue } from "../timer-queue.js";
import { EndpointClosed, ResetByPeer, RetransmitsExceeded } from "./errors.js";
import { type CoapLimits, DEFAULT_COAP_LIMITS } from "./limits.js";
import { CoapFormatError, type CoapMessage, parseMessage, serializeMessage } from "./message.js";
import { ACK, CODE_EMPTY, CON, codeClass, NON, RST, type TransmissionParameters } from "./registry.js";

/** What the layer above receives for every new (non-duplicate) CON or NON message. */
export interface Incoming {
  readonly message: CoapMessage;
  readonly peer: PeerAddress;
  /**
   * For a CON: send the ACK, optionally carrying a piggybacked response (code, options, payload;
   * token and message id are filled in). Must be called once; later calls are ignored.
   */
  readonly acknowledge: (response?: Pick<CoapMessage, "code" | "options" | "payload">) => void;
  /** For a CON or NON the layer above does not want: answer with RST (RFC 7252 §4.2, §4.3). */
  readonly reset: () => void;
}

export interface MessageLayerStats {
  sent: number;
  received: number;
  retransmissions: number;
  duplicates: number;
  malformed: number;
  /** Deduplication entries forgotten before their lifetime because the table was full. */
  dedupEvicted: number;
}

interface Outstanding {
  readonly peer: PeerAddress;
  readonly messageId: number;
  readonly bytes: Uint8Array;
  readonly resolve: (ack: CoapMessage) => void;
  readonly reject: (error: Error) => void;
  attempts: number;
  timeoutMs: number;
  timer?: { cancel(): void };
}

interface Seen {
  /** The reply sent for this message (ACK or RST), resent on duplicates; undefined while processing. */
  reply: Uint8Array | undefined;
  readonly expires: number;
}

export class MessageLayer {
  readonly stats: MessageLayerStats = {
    sent: 0,
    received: 0,
    retransmissions: 0,
    duplicates: 0,
    malformed: 0,
    dedupEvicted: 0,
  };
  private nextId: number;
  private readonly outstanding = new Map<string, Outstanding>(); // key: peer + mid
  private readonly inFlight = new Map<PeerAddress, number>();
  private readonly queued = new Map<PeerAddress, Array<() => void>>();
  /** In insertion order, which is age order: the first entry is the oldest (evicted first). */
  private readonly seen = new Map<string, Seen>();
  /** Bytes of the replies held in `seen`. */
  private seenBytes = 0;
  /**
   * Walks `seen` from its oldest entry, kept across evictions: a Map iterator stays valid while the map
   * changes, and a fresh `entries().next()` steps over every entry deleted at the front since the last
   * rehash (at the cap, thousands per request: 4-8 µs each time).
   */
  private oldest: IterableIterator<[string, Seen]> | undefined;
  private sweep: { cancel(): void } | undefined;
  private handler: (incoming: Incoming) => void = (i) => i.reset();
  private resetHandler: (peer: PeerAddress, messageId: number) => void = () => {};
  private closed = false;

  constructor(
    private readonly transport: DatagramTransport,
    private readonly timers: TimerQueue,
    private readonly clock: { now(): number },
    private readonly random: Random,
    private readonly params: TransmissionParameters,
    private readonly logger: Logger,
    private readonly limits: Pick<CoapLimits, "maxDedupEntries" | "maxDedupBytes"> = DEFAULT_COAP_LIMITS,
  ) {
    this.nextId = random.uint32() & 0xffff; // RFC 7252 §4.4: start at a random id
    transport.onReceive((data, peer) => this.receive(data, peer));
  }

  /** The layer above: receives every new CON/NON message. */
  onIncoming(handler: (incoming: Incoming) => void): void {
    this.handler = handler;
  }

  /** Called when a peer resets a NON we sent (e.g. an Observe notification it no longer wants). */
  onReset(handler: (peer: PeerAddress, messageId: number) => void): void {
    this.resetHandler = handler;
  }

  allocateId(): number {
    const id = this.nextId;
    this.nextId = (this.nextId + 1) & 0xffff;
    return id;
  }

  /**
   * Sends a CON reliably; resolves with the ACK (which may carry a piggybacked response), rejects with
   * RetransmitsExceeded or ResetByPeer. Waits for NSTART before sending.
   */
  sendConfirmable(message: Omit<CoapMessage, "type" | "messageId">, peer: PeerAddress): Promise<CoapMessage> {
    return new Promise((resolve, reject) => {
      if (this.closed) return reject(new EndpointClosed("endpoint closed"));
      const start = () => {
        const messageId = this.allocateId();
        const bytes = serializeMessage({ ...message, type: CON, messageId });
        const factor = 1 + (this.random.uint32() / 4_294_967_296) * (this.params.ackRandomFactor - 1);
        const o: Outstanding = {
          peer,
          messageId,
          bytes,
          resolve,
          reject,
          attempts: 0,
          timeoutMs: this.params.ackTimeoutMs * factor,
        };
        this.outstanding.set(key(peer, messageId), o);
        this.inFlight.set(peer, (this.inFlight.get(peer) ?? 0) + 1);
        this.transmit(o);
      };
      if ((this.inFlight.get(peer) ?? 0) < this.params.nstart) start();
      else {
        const queue = this.queued.get(peer) ?? [];
        queue.push(start);
        this.queued.set(peer, queue);
      }
    });
  }

  /** Sends a NON (fire and forget); returns its message id. */
  sendNonConfirmable(message: Omit<CoapMessage, "type" | "messageId">, peer: PeerAddress): number {
    const messageId = this.allocateId();
    this.send(serializeMessage({ ...message, type: NON, messageId }), peer);
    return messageId;
  }

  /** CON exchanges awaiting an ACK, and CONs waiting for NSTART. */
  get pending(): number {
    let queued = 0;
    for (const q of this.queued.values()) queued += q.length;
    return this.outstanding.size + queued;
  }

  close(): void {
    this.closed = true;
    for (const o of this.outstanding.values()) {
      o.timer?.cancel();
      o.reject(new EndpointClosed("endpoint closed"));
    }
    this.outstanding.clear();
    this.queued.clear();
    this.sweep?.cancel();
    this.seen.clear();
    this.seenBytes = 0;
    this.transport.close();
  }

  private transmit(o: Outstanding): void {
    this.send(o.bytes, o.peer);
    o.timer = this.timers.after(o.timeoutMs, () => {
      if (o.attempts >= this.params.maxRetransmit) {
        this.finish(o);
        o.reject(new RetransmitsExceeded(`no ACK from ${o.peer} after ${o.attempts + 1} transmissions`));
        return;
      }
      o.attempts++;
      o.timeoutMs *= 2; // exponential back-off, RFC 7252 §4.2
      this.stats.retransmissions++;
      this.logger.log("debug", "coap.retransmit", { peer: o.peer, mid: o.messageId, attempt: o.attempts });
      this.transmit(o);
    });
  }

  private finish(o: Outstanding): void {
    o.timer?.cancel();
    this.outstanding.delete(key(o.peer, o.messageId));
    const left = (this.inFlight.get(o.peer) ?? 1) - 1;
    if (left > 0) this.inFlight.set(o.peer, left);
    else this.inFlight.delete(o.peer);
    const queue = this.queued.get(o.peer);
    const next = queue?.shift();
    if (queue && queue.length === 0) this.queued.delete(o.peer);
    next?.();
  }

  private send(bytes: Uint8Array, peer: PeerAddress): void {
    if (this.closed) return;
    this.stats.sent++;
    this.transport.send(bytes, peer);
  }

  private receive(data: Uint8Array, peer: PeerAddress): void {
    if (this.closed) return;
    let message: CoapMessage;
    try {
      message = parseMessage(data);
    } catch (error) {
      if (!(error instanceof CoapFormatError)) throw error;
      this.stats.malformed++;
      this.logger.log("warn", "coap.malformed", { peer, reason: error.message, bytes: data.length });
      // A malformed CON is rejected with RST (RFC 7252 §4.2); anything else is silently ignored (§4.3).
      if (error.type === CON && error.messageId !== undefined) this.sendReset(peer, error.messageId);
      return;
    }
    this.stats.received++;
    switch (message.type) {
      case ACK:
      case RST:
        this.matchReply(message, peer);
        break;
      default:
        this.incoming(message, peer);
    }
  }

  private matchReply(message: CoapMessage, peer: PeerAddress): void {
    const o = this.outstanding.get(key(peer, message.messageId));
    if (!o) {
      if (message.type === RST) this.resetHandler(peer, message.messageId);
      return; // a late or duplicate ACK: nothing waits for it any more
    }
    this.finish(o);
    if (message.type === RST) o.reject(new ResetByPeer(`${peer} reset message ${message.messageId}`));
    else o.resolve(message);
  }

  private incoming(message: CoapMessage, peer: PeerAddress): void {
    const k = key(peer, message.messageId);
    const previous = this.seen.get(k);
    if (previous && previous.expires > this.clock.now()) {
      this.stats.duplicates++;
      if (message.type === CON && previous.reply) this.send(previous.reply, peer);
      return;
    }
    if (message.code === CODE_EMPTY) {
      // An Empty CON is a "CoAP ping" (RFC 7252 §4.3): answer with RST. An Empty NON is ignored.
      if (message.type === CON) this.sendReset(peer, message.messageId);
      return;
    }
    const lifetime = message.type === CON ? this.params.exchangeLifetimeMs : this.params.nonLifetimeMs;
    const entry: Seen = { reply: undefined, expires: this.clock.now() + lifetime };
    if (previous) this.forget(k, previous); // expired: the new entry goes to the young end
    this.seen.set(k, entry);
    this.trim();
    this.armSweep();
    let answered = false;
    const acknowledge = (response?: Pick<CoapMessage, "code" | "options" | "payload">) => {
      if (answered || message.type !== CON) return;
      answered = true;
      const ack = serializeMessage({
        type: ACK,
        code: response?.code ?? CODE_EMPTY,
        messageId: message.messageId,
        token: response ? message.token : new Uint8Array(0),
        options: response?.options ?? [],
        payload: response?.payload ?? new Uint8Array(0),
      });
      this.keepReply(k, entry, ack);
      this.send(ack, peer);
    };
    const reset = () => {
      if (answered) return;
      answered = true;
      this.keepReply(k, entry, this.sendReset(peer, message.messageId));
    };
    this.handler({ message, peer, acknowledge, reset });
  }

  private sendReset(peer: PeerAddress, messageId: number): Uint8Array {
    const rst = serializeMessage({
      type: RST,
      code: CODE_EMPTY,
      messageId,
      token: new Uint8Array(0),
      options: [],
      payload: new Uint8Array(0),
    });
    this.send(rst, peer);
    return rst;
  }

  /** Keeps the reply for duplicates, unless the entry was evicted while the request was processed. */
  private keepReply(k: string, entry: Seen, reply: Uint8Array): void {
    if (this.seen.get(k) !== entry) return;
    entry.reply = reply;
    this.seenBytes += reply.length;
    this.trim();
  }

  private forget(k: string, entry: Seen): void {
    this.seen.delete(k);
    this.seenBytes -= entry.reply?.length ?? 0;
  }

  /** Forgets the oldest entries while the table is over either cap. */
  private trim(): void {
    while (this.seen.size > this.limits.maxDedupEntries || this.seenBytes > this.limits.maxDedupBytes) {
      let oldest = this.oldest?.next();
      if (oldest === undefined || oldest.done) {
        this.oldest = this.seen.entries();
        oldest = this.oldest.next();
        if (oldest.done) return;
      }
      this.forget(oldest.value[0], oldest.value[1]);
      this.stats.dedupEvicted++;
    }
  }

  /** Expired dedup entries are dropped by one periodic sweep, not a timer each. */
  private armSweep(): void {
    if (this.sweep) return;
    const period = Math.max(1_000, Math.min(this.params.nonLifetimeMs, this.params.exchangeLifetimeMs) / 4);
    this.sweep = this.timers.after(period, () => {
      this.sweep = undefined;
      const now = this.clock.now();
      for (const [k, v] of this.seen) if (v.expires <= now) this.forget(k, v);
      if (this.seen.size > 0) this.armSweep();
    });
  }

  /** Received messages remembered for deduplication. */
  get remembered(): number {
    return this.seen.size;
  }

  /** Bytes of the replies kept for deduplication. */
  get rememberedBytes(): number {
    return this.seenBytes;
  }
}

const key = (peer: PeerAddress, messageId: number): string => `${peer}#${messageId}`;

/** True for a request code (class 0, not Empty). */
export const isRequest = (code: number): boolean => codeClass(code) === 0 && code !== CODE_EMPTY;
