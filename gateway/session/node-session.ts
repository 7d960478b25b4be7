/**
 * One node's session at the gateway (docs/PROTOCOL.md §3, §4): the uplink sequence (`h`, exactly once
 * and in order), the downlink mailbox with its sequence and the node's acknowledgements, the codec
 * contexts of both directions, and when the node sleeps. Every change that must survive a restart goes
 * to the journal; the CoAP resource handlers drive it.
 */
import {
  CodecError,
  DICTIONARY_V1,
  SessionDecoder,
  SessionEncoder,
  type StaticDictionary,
  type XElement,
} from "../../codec/index.js";
import type { PeerAddress } from "../../src/core/index.js";
import type { Device } from "../devices.js";
import type { SavedSession, SessionHeader, SessionJournal } from "./journal.js";
import { DEFAULT_MAILBOX_LIMITS, Mailbox, type MailboxLimits, type MailItem } from "./mailbox.js";

/** What processing an uplink produced. */
export interface UplinkResult {
  /** Stanzas accepted in order, `from` stamped. */
  readonly accepted: readonly XElement[];
  /** The frame that could not be decoded (h + 1), if any. */
  readonly failed?: { readonly seq: number; readonly error: CodecError };
  /** A frame beyond h + 1 arrived: earlier ones are missing, the node will resend. */
  readonly gap: boolean;
}

/** A node counts as awake this long after its last exchange, then asleep until its wake time. */
export const AWAKE_WINDOW_MS = 5_000;

/**
 * NON readings may arrive out of order (no retransmission, paths that reorder): one older than the
 * newest by less than this is still taken once, as DTLS's anti-replay window does (RFC 6347 §4.1.2.6).
 */
export const TELEMETRY_WINDOW = 32;

export class NodeSession {
  /** Uplink frames processed (stored or bounced), like XEP-0198's h. */
  h = 0;
  /** Downlink frames the node acknowledged. */
  delivered = 0;
  readonly mailbox: Mailbox;
  /** Seconds the node said it sleeps between wake-ups (0: always on), and when it last spoke (ms). */
  wake = 0;
  lastSeen = 0;
  /** The highest telemetry number routed, and which of the TELEMETRY_WINDOW below it were (bit i: max − i). */
  telemetryMax = 0;
  private telemetrySeen = 0;
  private decoder: SessionDecoder;
  private encoder: SessionEncoder;
  private nextDseq = 1;

  constructor(
    readonly id: number,
    readonly device: Device,
    readonly jid: string,
    readonly domain: string,
    public peer: PeerAddress | undefined,
    public resume: Uint8Array,
    private readonly journal: SessionJournal,
    private readonly dictionary: StaticDictionary = DICTIONARY_V1,
    limits: MailboxLimits = DEFAULT_MAILBOX_LIMITS,
  ) {
    this.mailbox = new Mailbox(limits);
    this.decoder = new SessionDecoder({ dictionary, aliases: this.aliases });
    this.encoder = new SessionEncoder({ dictionary, aliases: this.aliases, implicitBase: true });
  }

  /** Codec aliases (FORMAT.md §6): the node's full JID, the gateway domain, its peers. */
  get aliases(): string[] {
    return [this.jid, this.domain, ...this.device.peers];
  }

  get identity(): string {
    return this.device.identity;
  }

  /** Asleep: the node said it sleeps, and has been quiet since its last exchange. */
  asleep(now: number): boolean {
    return this.wake > 0 && now - this.lastSeen > AWAKE_WINDOW_MS;
  }

  /** When the node said it would next wake (ms), if it sleeps. */
  get wakesAt(): number | undefined {
    return this.wake > 0 ? this.lastSeen + this.wake * 1000 : undefined;
  }

  header(): SessionHeader {
    return {
      identity: this.identity,
      id: this.id,
      resume: this.resume,
      peer: this.peer,
      h: this.h,
      delivered: this.delivered,
      nextDseq: this.nextDseq,
      wake: this.wake,
      lastSeen: this.lastSeen,
      telemetry: this.telemetryMax,
    };
  }

  save(): void {
    this.journal.saveHeader(this.header());
  }

  /**
   * Back to where the store says it was: counters, the uplink table replayed from the frames that built
   * it, the downlink table from its saved entries, the mailbox as it was.
   */
  restore(saved: SavedSession): void {
    this.h = saved.h;
    this.delivered = saved.delivered;
    // Never behind a frame already in flight (the header and the mailbox are written in one batch; this
    // only guards against a header saved before its frames took off).
    const flying = saved.mailbox.reduce((m, q) => Math.max(m, (q.seq ?? 0) + 1), 0);
    this.nextDseq = Math.max(saved.nextDseq, flying);
    this.wake = saved.wake;
    this.lastSeen = saved.lastSeen;
    this.telemetryMax = saved.telemetry;
    this.telemetrySeen = -1; // which numbers below the highest were routed is not stored: none is taken again
    for (const frame of saved.uplinkFrames) this.decoder.decode(frame);
    this.encoder.restore(saved.downlinkEntries);
    for (const item of saved.mailbox) this.mailbox.restore(item);
  }

  /**
   * A (re)connect: the node starts its codec tables afresh, so does the gateway; frames in flight are
   * renumbered from `delivered + 1` and encoded again.
   */
  resetCodec(): void {
    this.decoder = new SessionDecoder({ dictionary: this.dictionary, aliases: this.aliases });
    this.encoder = new SessionEncoder({
      dictionary: this.dictionary,
      aliases: this.aliases,
      implicitBase: true,
    });
    this.journal.resetCodec(this.identity);
    this.nextDseq = this.delivered + 1;
    for (const q of this.mailbox.flying) this.encodeFor(q);
  }

  /** Gives a mail item its sequence number and frame, and journals both with the inserted entries. */
  private encodeFor(q: MailItem): void {
    q.seq = this.nextDseq++;
    q.frame = this.encoder.encode(q.stanza);
    if (q.frame.inserted.length > 0) {
      const entries = this.encoder.entries(q.frame.inserted);
      this.journal.downlinkEntries(
        this.identity,
        q.frame.inserted.map((index, i) => ({ index, entry: entries[i]! })),
      );
    }
    this.journal.mailboxFly(q);
  }

  /** Downlink frames sent so far (numbered 1…sent): a node cannot acknowledge more. */
  get sent(): number {
    return this.nextDseq - 1;
  }

  /** The node's cumulative acknowledgement of downlink: frames up to `ack` are delivered. */
  acknowledge(ack: number): number {
    const done = this.mailbox.delivered(ack);
    if (done.length === 0) return 0;
    const indices: number[] = [];
    for (const q of done) {
      this.encoder.acknowledge(q.frame!.inserted);
      indices.push(...q.frame!.inserted);
      this.delivered = q.seq!;
    }
    if (indices.length > 0) this.journal.acknowledgeEntries(this.identity, indices);
    this.journal.mailboxRemove(done.map((q) => q.id));
    return done.length;
  }

  /** Sequenced frames starting at `seq`: each new one is decoded once, in order; repeats are skipped. */
  uplink(seq: number, frames: readonly Uint8Array[]): UplinkResult {
    const accepted: XElement[] = [];
    for (let i = 0; i < frames.length; i++) {
      const s = seq + i;
      if (s <= this.h) continue; // already processed: a retransmission
      if (s > this.h + 1) return { accepted, gap: true };
      let stanza: XElement;
      try {
        const decoded = this.decoder.decode(frames[i]!);
        stanza = decoded.stanza;
        if (decoded.inserted.length > 0) this.journal.uplinkFrame(this.identity, s, frames[i]!);
      } catch (error) {
        if (!(error instanceof CodecError)) throw error;
        return { accepted, failed: { seq: s, error }, gap: false };
      }
      this.h = s;
      accepted.push(this.stamp(stanza));
    }
    return { accepted, gap: false };
  }

  /**
   * Whether telemetry number `t` is new: higher than any routed, or within the window below the highest
   * and not routed yet. Marks it routed. A replay (same number, another message id, a later session,
   * after a restart) is refused, however long after.
   */
  freshTelemetry(t: number): boolean {
    if (t > this.telemetryMax) {
      const shift = t - this.telemetryMax;
      this.telemetrySeen = shift >= TELEMETRY_WINDOW ? 1 : (this.telemetrySeen << shift) | 1;
      this.telemetryMax = t;
      return true;
    }
    const back = this.telemetryMax - t;
    if (t === 0 || back >= TELEMETRY_WINDOW) return false;
    const bit = 1 << back;
    if (this.telemetrySeen & bit) return false;
    this.telemetrySeen |= bit;
    return true;
  }

  /** An unsequenced (telemetry) frame: it must insert nothing, so it cannot change the tables. */
  telemetry(frame: Uint8Array): XElement {
    const decoded = this.decoder.decode(frame);
    if (decoded.inserted.length > 0) {
      throw new CodecError("BAD_STRUCTURE", 0, "an unsequenced frame must not insert table entries");
    }
    return this.stamp(decoded.stanza);
  }

  /** `from` is the session's JID (docs/ARCHITECTURE.md: stamped by the gateway, never taken from the node). */
  private stamp(stanza: XElement): XElement {
    const attrs = stanza.attrs.filter((a) => !(a.ns === "" && a.name === "from"));
    return { ...stanza, attrs: [{ ns: "", name: "from", value: this.jid }, ...attrs] };
  }

  /**
   * The first undelivered frames, up to `maxBytes` of frames (at least one if any is waiting): what is
   * in flight, then queued stanzas in priority order, which take off now (sequence number, frame).
   * `firstSent`: bytes of the frames sent for the first time.
   */
  pending(maxBytes: number): { dseq: number; frames: Uint8Array[]; more: boolean; firstSent: number } {
    const frames: Uint8Array[] = [];
    let size = 0;
    let firstSent = 0;
    const flying = this.mailbox.flying;
    for (const q of flying) {
      const n = q.frame!.bytes.length;
      if (frames.length > 0 && size + n > maxBytes) break;
      frames.push(q.frame!.bytes);
      size += n + 2;
    }
    if (frames.length === flying.length) {
      for (let q = this.mailbox.next; q !== undefined; q = this.mailbox.next) {
        // Estimated by the stateless size: a session frame is never larger than that by much.
        if (frames.length > 0 && size + q.bytes > maxBytes) break;
        this.mailbox.fly(q);
        this.encodeFor(q);
        firstSent += q.frame!.bytes.length;
        frames.push(q.frame!.bytes);
        size += q.frame!.bytes.length + 2;
      }
    }
    const first = (flying[0] ?? this.mailbox.flying[0])?.seq ?? this.nextDseq;
    return { dseq: first, frames, more: frames.length < this.mailbox.length, firstSent };
  }
}
