/**
 * The tiny-node side of a cxmpp session (docs/PROTOCOL.md §3): connect with proof of the device key,
 * send stanzas reliably (CON, exactly once, in order) or as telemetry (NON), receive the gateway's
 * downlink piggybacked on responses or pushed, and resume after losing the session. Portable: it sees
 * only a CoapClientEndpoint (a CoapEndpoint will do), a clock and a MAC; the same code runs on Node.js
 * and on an embedded engine.
 *
 * Reliability is end to end: a stanza counts as sent when the gateway's `h` covers its sequence
 * number (the gateway answers only once the frame is stored), like XEP-0198. CoAP retransmission
 * covers single losses; a failed exchange is retried by the pump with the same sequence numbers and
 * the same frame bytes, and the gateway drops what it already stored.
 *
 * Stanzas and readings leave in the order they were asked for (docs/PROTOCOL.md §3.3): a NON reading
 * asked for while earlier stanzas still wait for the gateway's `h` is held in the outbox behind them
 * and sent, as NON, once they are stored; a stanza asked for after a held reading waits for it.
 */

import {
  DICTIONARY_V1,
  type EncodedFrame,
  SessionDecoder,
  SessionEncoder,
  type StaticDictionary,
  type XElement,
} from "../../../codec/index.js";
import { utf8Decode } from "../bytes.js";
import type { CoapClientEndpoint } from "../coap/client-endpoint.js";
import { type CoapMessage, type CoapOption, findOption, pathOptions, uintOption } from "../coap/message.js";
import {
  CF_CXMPP_SESSION,
  CODE_BAD_REQUEST,
  CODE_CHANGED,
  CODE_CREATED,
  CODE_POST,
  CODE_UNAUTHORIZED,
  codeString,
  OPT_CONTENT_FORMAT,
  OPT_ECHO,
  OPT_NO_RESPONSE,
} from "../coap/registry.js";
import { type Logger, type Mac, type PeerAddress, silentLogger } from "../interfaces.js";
import { SessionError } from "./errors.js";
import {
  type ConnectResponse,
  type Downlink,
  decodeConnectResponse,
  decodeDownlink,
  encodeConnectRequest,
  encodeUplink,
  PATH_CONNECT,
  PATH_DOWNLINK,
  PATH_UPLINK,
  PATH_UPLINK_ROOT,
  PROOF_BYTES,
  proofInput,
  SESSION_FORMAT,
} from "./protocol.js";

export { SessionError } from "./errors.js";

export interface NodeClientOptions {
  readonly endpoint: CoapClientEndpoint;
  readonly gateway: PeerAddress;
  readonly identity: string;
  readonly key: Uint8Array;
  readonly mac: Mac;
  readonly dictionary?: StaticDictionary;
  readonly logger?: Logger;
  /** Seconds the node sleeps between wake-ups; absent: always on. Sent with every uplink. */
  readonly wake?: number;
  /** Largest uplink payload (frames are batched up to it). Default 256 bytes. */
  readonly maxPayload?: number;
  /** Delay before the pump retries after a failed exchange. Default 1 s, doubling to 60 s. */
  readonly retryDelayMs?: number;
  /**
   * An observing node registers again after this long without a notification (RFC 7641 §3.3.1): the
   * gateway drops an observer whose CON notification went unacknowledged (§4.5), which a node on a
   * lossy link cannot see. The gateway replaces the earlier registration, so it costs one GET. Default
   * 120 s.
   */
  readonly observeRefreshMs?: number;
  /**
   * NON readings held behind unacknowledged stanzas (see sendTelemetry) at most; one more drops the
   * oldest held reading (counted in droppedReadings): a sensor's latest value matters most. Default 16.
   */
  readonly maxHeldReadings?: number;
}

interface Outgoing {
  readonly kind: "stanza";
  readonly stanza: XElement;
  frame: EncodedFrame;
  seq: number;
  readonly done: () => void;
  readonly failed: (error: Error) => void;
}

/**
 * The options of a connect request (docs/PROTOCOL.md §3.2): Uri-Path `c`, the session Content-Format,
 * and the gateway's Echo (RFC 9175) when answering its 4.01 challenge.
 */
export function connectOptions(echo?: Uint8Array): CoapOption[] {
  const options = [...pathOptions(PATH_CONNECT), uintOption(OPT_CONTENT_FORMAT, CF_CXMPP_SESSION)];
  if (echo) options.push({ number: OPT_ECHO, value: echo });
  return options;
}

/** A NON reading held until every stanza before it is acknowledged; encoded when it leaves. */
interface HeldReading {
  readonly kind: "reading";
  readonly stanza: XElement;
}

type Queued = Outgoing | HeldReading;

export class NodeClient {
  private session: ConnectResponse | undefined;
  private encoder: SessionEncoder | undefined;
  private decoder: SessionDecoder | undefined;
  /** Stanzas waiting for the gateway's `h`, and NON readings held behind them, in the order asked. */
  private readonly outbox: Queued[] = [];
  /** Stanzas in the outbox (the rest are held readings). */
  private pending = 0;
  private held = 0;
  private dropped = 0;
  private nextSeq = 1;
  private h = 0;
  /** Downlink frames received in order. */
  private received = 0;
  private pumping = false;
  private retryMs: number;
  private retryTimer: { cancel(): void } | undefined;
  private handler: (stanza: XElement) => void = () => {};
  private readonly logger: Logger;
  private readonly dictionary: StaticDictionary;
  private closed = false;
  /** Whether a reading went reliably in this session (see sendTelemetry). */
  private telemetryPrimed = false;
  /** The next telemetry number (the gateway says where to start at each connect). */
  private telemetryNext = 1;
  /** The frame format agreed at the last connect (docs/PROTOCOL.md §3.2): 1 until a gateway says more. */
  private format = 1;
  /** Errors the gateway answered to NON readings (a frame it could not decode), newest last. */
  private readonly telemetryErrorHandlers: ((error: SessionError) => void)[] = [];
  private telemetryListener: { cancel(): void } | undefined;

  constructor(private readonly options: NodeClientOptions) {
    this.logger = options.logger ?? silentLogger;
    this.dictionary = options.dictionary ?? DICTIONARY_V1;
    this.retryMs = options.retryDelayMs ?? 1000;
  }

  /** The node's full JID, once connected. */
  get jid(): string | undefined {
    return this.session?.jid;
  }

  get connected(): boolean {
    return this.session !== undefined;
  }

  /** Stanzas waiting for the gateway's acknowledgement. */
  get unacknowledged(): number {
    return this.pending;
  }

  /** NON readings held behind unacknowledged stanzas (at most maxHeldReadings). */
  get heldReadings(): number {
    return this.held;
  }

  /** Held NON readings dropped, oldest first, because maxHeldReadings newer ones were held. */
  get droppedReadings(): number {
    return this.dropped;
  }

  onStanza(handler: (stanza: XElement) => void): void {
    this.handler = handler;
  }

  /**
   * Connects (or resumes, with the resume token of an earlier session): proves possession of the
   * device key with an HMAC over the gateway's nonce (carried in the Echo option, RFC 9175 §2).
   */
  async connect(): Promise<ConnectResponse> {
    const request = {
      identity: this.options.identity,
      dictionary: this.dictionary.id,
      ...(this.session ? { resume: this.session.resume, ack: this.received } : {}),
      ...(this.options.wake !== undefined ? { wake: this.options.wake } : {}),
      format: SESSION_FORMAT,
    };
    let echo: Uint8Array | undefined;
    for (let attempt = 0; attempt < 2; attempt++) {
      const proof = echo
        ? this.options.mac.hmacSha256(this.options.key, proofInput(echo, request)).subarray(0, PROOF_BYTES)
        : undefined;
      const response = await this.options.endpoint.request(this.options.gateway, {
        code: CODE_POST,
        options: connectOptions(echo),
        payload: encodeConnectRequest({ ...request, ...(proof ? { proof } : {}) }),
      });
      if (response.code === CODE_CREATED || response.code === CODE_CHANGED) {
        return this.established(decodeConnectResponse(response.payload));
      }
      const challenge = findOption(response, OPT_ECHO);
      if (response.code === CODE_UNAUTHORIZED && challenge && !echo) {
        echo = challenge.value;
        continue;
      }
      throw new SessionError(
        "connect-refused",
        `connect refused: ${codeString(response.code)} ${text(response)}`,
      );
    }
    throw new SessionError("connect-refused", "connect refused: the gateway did not accept the proof");
  }

  /**
   * Every connect starts the codec tables afresh in both directions (docs/PROTOCOL.md §3.2): after a
   * reboot the node has lost them, and the gateway cannot tell. Stanzas the gateway already stored
   * (h) are done; the rest are renumbered from h + 1 and encoded again with the new tables.
   */
  private established(s: ConnectResponse): ConnectResponse {
    const resumed = this.session !== undefined && this.session.session === s.session;
    this.session = s;
    // Format 2 (templates, the root uplink, compact readings) only with a gateway that said it reads it.
    this.format = Math.min(s.format ?? 1, SESSION_FORMAT);
    this.encoder = new SessionEncoder({
      dictionary: this.dictionary,
      aliases: s.aliases,
      implicitBase: true,
      templates: this.format >= 2,
    });
    // No literal memo for the downlink: a node decodes a stanza now and then, and the memo (1,024 slots,
    // ~68 KB of a tiny node's heap) was most of its heap's growth after connect.
    this.decoder = new SessionDecoder({
      dictionary: this.dictionary,
      aliases: s.aliases,
      literalCache: false,
    });
    this.received = s.delivered;
    this.telemetryNext = Math.max(this.telemetryNext, s.telemetry);
    if (resumed) this.acknowledgeUpTo(s.h);
    this.h = s.h;
    this.nextSeq = s.h + 1;
    for (const o of this.outbox) {
      if (o.kind !== "stanza") continue;
      o.seq = this.nextSeq++;
      o.frame = this.encoder.encode(o.stanza);
    }
    this.logger.log("info", "session.connected", { jid: s.jid, session: s.session, h: s.h, resumed });
    this.kick();
    return s;
  }

  /**
   * Sends a stanza reliably: resolves once the gateway has stored it (its `h` covers the frame).
   * The node's own JID is stamped by the gateway; leave `from` out.
   */
  send(stanza: XElement): Promise<void> {
    if (!this.session || !this.encoder)
      return Promise.reject(new SessionError("not-connected", "not connected"));
    const encoder = this.encoder;
    return new Promise((done, failed) => {
      const frame = encoder.encode(stanza);
      this.outbox.push({ kind: "stanza", stanza, frame, seq: this.nextSeq++, done, failed });
      this.pending++;
      this.kick();
    });
  }

  /**
   * Sends a stanza as telemetry: one NON message, no retransmission, no acknowledgement; the frame
   * inserts nothing into the codec tables, so losing it costs nothing later (FORMAT.md §6.5).
   *
   * Readings keep their order with the stanzas around them (docs/PROTOCOL.md §3.3): while stanzas sent
   * before it wait for the gateway's acknowledgement (a CON retransmitted after a loss would otherwise
   * be routed after the readings that followed it), the reading is held and goes, as NON, once they are
   * stored. At most maxHeldReadings are held; beyond, the oldest held one is dropped and counted.
   */
  sendTelemetry(stanza: XElement): void {
    if (!this.session || !this.encoder) throw new SessionError("not-connected", "not connected");
    if (!this.telemetryPrimed) {
      // The first reading goes reliably: its inserts, once acknowledged, are what later unsequenced
      // frames reference. A session of NON frames alone would never build a table (FORMAT.md §6.5).
      this.telemetryPrimed = true;
      this.send(stanza).catch(() => {
        this.telemetryPrimed = false;
      });
      return;
    }
    if (this.outbox.length > 0) {
      this.hold(stanza);
      return;
    }
    this.sendReading(stanza);
  }

  /** Queues a reading behind the outbox; the oldest held reading makes room when the cap is reached. */
  private hold(stanza: XElement): void {
    if (this.held >= (this.options.maxHeldReadings ?? 16)) {
      const oldest = this.outbox.findIndex((q) => q.kind === "reading");
      this.outbox.splice(oldest, 1);
      this.held--;
      this.dropped++;
      this.logger.log("warn", "session.reading_dropped", { held: this.held, dropped: this.dropped });
    }
    this.outbox.push({ kind: "reading", stanza });
    this.held++;
  }

  /** Sends the readings at the head of the outbox: every stanza before them is acknowledged. */
  private releaseReadings(): void {
    if (!this.session || this.closed) return;
    while (this.outbox[0]?.kind === "reading") {
      const r = this.outbox.shift()!;
      this.held--;
      this.sendReading(r.stanza);
    }
  }

  /** One NON reading, encoded now (against the tables of this connection). */
  private sendReading(stanza: XElement): void {
    if (!this.encoder) return;
    const frame = this.encoder.encodeUnsequenced(stanza);
    // Readings go with the empty token and No-Response for 2.xx: the only answer can be an error.
    this.telemetryListener ??= this.options.endpoint.exchanges.listen(
      this.options.gateway,
      new Uint8Array(0),
      (r) => {
        const error = new SessionError(
          "frame-rejected",
          `telemetry refused: ${codeString(r.code)} ${text(r)}`,
        );
        for (const h of this.telemetryErrorHandlers) h(error);
      },
    );
    const t = this.telemetryNext++;
    // Fire and forget, with no token, since no response is awaited. Format 2: at the root, `t` and the
    // frame alone, and no No-Response option: a format 2 gateway never answers a NON reading with 2.xx
    // (docs/PROTOCOL.md §3.3), so the option's 3 bytes say nothing. Format 1: /u, the header array and
    // No-Response for 2.xx (RFC 7967).
    const compact = this.format >= 2;
    this.options.endpoint.messages.sendNonConfirmable(
      {
        code: CODE_POST,
        token: new Uint8Array(0),
        options: compact ? [] : [...pathOptions(PATH_UPLINK), uintOption(OPT_NO_RESPONSE, 2)],
        payload: compact
          ? encodeUplink({ seq: 0, t, ack: 0, compact, frames: [frame.bytes] })
          : encodeUplink({
              seq: 0,
              t,
              ack: this.received,
              ...(this.options.wake !== undefined ? { wake: this.options.wake } : {}),
              frames: [frame.bytes],
            }),
      },
      this.options.gateway,
    );
  }

  /** Called when the gateway answers a NON reading with an error (its frame did not decode). */
  onTelemetryError(handler: (error: SessionError) => void): void {
    this.telemetryErrorHandlers.push(handler);
  }

  /**
   * For an always-on node: observe the session's downlink resource (RFC 7641), so stanzas arrive as
   * soon as the gateway has them; each push is acknowledged with an empty uplink.
   */
  async observeDownlink(): Promise<{ cancel(): Promise<void> }> {
    if (!this.session) throw new SessionError("not-connected", "not connected");
    const path = `${PATH_DOWNLINK}/${this.session.session}`;
    const refreshMs = this.options.observeRefreshMs ?? 120_000;
    const timers = this.options.endpoint.timers;
    let refresh: { cancel(): void } | undefined;
    let cancelled = false;
    const arm = () => {
      refresh?.cancel();
      refresh = timers.after(refreshMs, () => {
        // Quiet for a whole period: register again (the old token is forgotten, not deregistered:
        // the gateway replaced it with the new registration of this address for this path).
        if (cancelled || this.closed) return;
        register().then(
          (next) => {
            observation.cancel({ passive: true }).catch(() => {});
            observation = next;
          },
          () => arm(), // not answered: try again after another period
        );
      });
    };
    const register = async () => {
      const o = await this.options.endpoint.observe(this.options.gateway, path, (notification) => {
        arm();
        const before = this.received;
        this.handleDownlink(notification);
        if (this.received > before) this.poll().catch(() => {}); // the acknowledgement; a loss is retried later
      });
      arm();
      this.handleDownlink(o.response);
      return o;
    };
    let observation = await register();
    return {
      cancel: () => {
        cancelled = true;
        refresh?.cancel();
        return observation.cancel();
      },
    };
  }

  /** Asks for downlink now (a wake-up with nothing to send). */
  async poll(): Promise<void> {
    if (!this.session) throw new SessionError("not-connected", "not connected");
    await this.exchange([]);
  }

  close(): void {
    this.closed = true;
    this.retryTimer?.cancel();
    this.telemetryListener?.cancel();
    this.held = 0;
    this.pending = 0;
    for (const o of this.outbox.splice(0))
      if (o.kind === "stanza") o.failed(new SessionError("closed", "client closed"));
  }

  private kick(): void {
    if (this.pumping || this.closed || !this.session) return;
    this.releaseReadings();
    if (this.outbox.length === 0) return;
    this.pumping = true;
    void this.pump();
  }

  private async pump(): Promise<void> {
    try {
      for (;;) {
        this.releaseReadings();
        if (this.closed || this.outbox.length === 0) break;
        // The stanzas at the head, up to the first held reading (it goes once they are stored).
        const batch: Outgoing[] = [];
        let size = 8;
        for (const o of this.outbox) {
          if (o.kind !== "stanza") break;
          if (batch.length > 0 && size + o.frame.bytes.length + 3 > (this.options.maxPayload ?? 256)) break;
          batch.push(o);
          size += o.frame.bytes.length + 3;
        }
        await this.exchange(batch);
        this.retryMs = this.options.retryDelayMs ?? 1000;
      }
    } catch (error) {
      this.logger.log("warn", "session.uplink_failed", { error: String(error), retryMs: this.retryMs });
      const delay = this.retryMs;
      this.retryMs = Math.min(this.retryMs * 2, 60_000);
      this.retryTimer = this.options.endpoint.timers.after(delay, () => {
        this.retryTimer = undefined;
        this.pumping = false;
        this.kick();
      });
      return;
    }
    this.pumping = false;
  }

  /** One POST /u carrying `batch` (possibly empty: a poll); processes the response. */
  private async exchange(batch: readonly Outgoing[]): Promise<void> {
    const first = batch[0];
    const payload = encodeUplink({
      seq: first ? first.seq : this.nextSeq,
      ack: this.received,
      ...(this.options.wake !== undefined ? { wake: this.options.wake } : {}),
      frames: batch.map((o) => o.frame.bytes),
    });
    const response = await this.options.endpoint.request(this.options.gateway, {
      code: CODE_POST,
      options: pathOptions(this.format >= 2 ? PATH_UPLINK_ROOT : PATH_UPLINK),
      payload,
    });
    if (response.code === CODE_UNAUTHORIZED) {
      // The gateway does not know this session (it restarted without it, or the session expired).
      await this.connect();
      return;
    }
    if (response.code === CODE_BAD_REQUEST && response.payload.length > 0) {
      // The gateway could not decode frame h + 1: it stored up to h. Give that stanza up (it would fail
      // again) and renumber the rest; the gateway rolled its tables back, so their frames stay valid.
      const { h } = decodeDownlink(response.payload);
      this.acknowledgeUpTo(h);
      const at = this.outbox.findIndex((q) => q.kind === "stanza");
      const bad = at < 0 ? undefined : this.outbox.splice(at, 1)[0];
      if (bad?.kind === "stanza") {
        this.pending--;
        bad.failed(new SessionError("frame-rejected", `the gateway could not decode frame ${h + 1}`));
        for (const o of this.outbox) if (o.kind === "stanza") o.seq--;
        this.nextSeq--;
      }
      return;
    }
    if (response.code !== CODE_CHANGED) {
      throw new SessionError(
        "uplink-refused",
        `uplink refused: ${codeString(response.code)} ${text(response)}`,
      );
    }
    if (response.payload.length === 0) {
      const last = batch[batch.length - 1];
      if (last) this.acknowledgeUpTo(last.seq);
      return;
    }
    const down = this.handleDownlink(response);
    if (down?.more) await this.exchange([]); // drain the mailbox in the following exchanges
  }

  private acknowledgeUpTo(h: number): void {
    if (h > this.h) this.h = h;
    for (;;) {
      const o = this.outbox[0];
      if (o?.kind !== "stanza" || o.seq > this.h) break;
      this.outbox.shift();
      this.pending--;
      this.encoder?.acknowledge(o.frame.inserted);
      o.done();
      // Readings held behind it go now: before any later stanza, whose uplink follows them.
      this.releaseReadings();
    }
  }

  /** Downlink frames in order; a duplicate (seq already received) is skipped, never decoded twice. */
  private deliver(dseq: number, frames: readonly Uint8Array[]): void {
    frames.forEach((bytes, i) => {
      const seq = dseq + i;
      if (seq !== this.received + 1) return;
      const { stanza } = this.decoder!.decode(bytes);
      this.received = seq;
      try {
        this.handler(stanza);
      } catch (error) {
        this.logger.log("error", "session.handler_failed", { error: String(error) });
      }
    });
  }

  /** Downlink in a response or a push (Observe notification): acknowledgements, then stanzas. */
  handleDownlink(message: CoapMessage): Downlink | undefined {
    if (message.payload.length === 0) return undefined;
    const down = decodeDownlink(message.payload);
    this.acknowledgeUpTo(down.h);
    this.deliver(down.dseq, down.frames);
    return down;
  }
}

/** A diagnostic payload's text, ill-formed bytes as U+FFFD. */
function text(m: CoapMessage): string {
  return utf8Decode(m.payload, false);
}
