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
  type XAttr,
  type XElement,
} from "../../codec/index.js";
import type { PeerAddress } from "../../src/core/index.js";
import type { Device } from "../devices.js";
import type { DeadlineItem } from "./deadlines.js";
import type { SavedSession, SessionHeader, SessionJournal } from "./journal.js";
import {
  DEFAULT_MAILBOX_LIMITS,
  Mailbox,
  type MailboxLimits,
  type MailboxWatcher,
  type MailItem,
} from "./mailbox.js";
import type { NodeState } from "./presence.js";

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

/**
 * What every session of one gateway shares, held once instead of in each session: a gateway with a
 * million sessions pays for one pointer per session, not five.
 */
export interface SessionContext {
  readonly journal: SessionJournal;
  readonly dictionary: StaticDictionary;
  readonly domain: string;
  /** JID resource of every node session. */
  readonly resource: string;
  readonly limits: MailboxLimits;
  /**
   * Something the tick looks at changed (peer, wake, last exchange, a queued stanza): the registry
   * looks at the session at its next tick, as the scan of every session used to.
   */
  changed(session: NodeSession): void;
  /** Stanzas waiting in all mailboxes changed by `delta` (metrics). */
  mailboxCount(delta: number): void;
}

/** A context for a session on its own (no registry): tests and tools. */
export function standaloneContext(
  journal: SessionJournal,
  domain: string,
  resource: string,
  dictionary: StaticDictionary = DICTIONARY_V1,
  limits: MailboxLimits = DEFAULT_MAILBOX_LIMITS,
): SessionContext {
  return { journal, dictionary, domain, resource, limits, changed: () => {}, mailboxCount: () => {} };
}

/**
 * Memory: an idle session is the gateway's main cost at scale (docs/PROTOCOL.md §7), so a session holds
 * only counters and pointers until it is used. The codec contexts and the mailbox are made at first
 * use (an idle session never decodes or queues anything; a codec pair is about 1 KB), the resume
 * token is kept as an 8-character string (a Uint8Array with its buffer is about 220 bytes), the full
 * JID is derived from the device, and what the gateway shares is behind one context pointer.
 */
export class NodeSession implements MailboxWatcher, DeadlineItem {
  /** Uplink frames processed (stored or bounced), like XEP-0198's h. */
  h = 0;
  /** Downlink frames the node acknowledged. */
  delivered = 0;
  /** The highest telemetry number routed, and which of the TELEMETRY_WINDOW below it were (bit i: max − i). */
  telemetryMax = 0;
  /** Position in the registry's deadline heap (deadlines.ts); -1: none. */
  deadlineSlot = -1;
  /** The presence last shown for this node (presence.ts); undefined: never shown. */
  shown: NodeState | undefined = undefined;
  /** Waiting in the registry's list of sessions to look at at the next tick. */
  recheck = false;
  private telemetrySeen = 0;
  private nodeWake = 0;
  private seenAt = 0;
  private at: PeerAddress | undefined;
  private resumeBits: string;
  private decoderState: SessionDecoder | undefined = undefined;
  private encoderState: SessionEncoder | undefined = undefined;
  private box: Mailbox | undefined = undefined;
  private nextDseq = 1;

  constructor(
    readonly id: number,
    readonly device: Device,
    peer: PeerAddress | undefined,
    resume: Uint8Array,
    private readonly ctx: SessionContext,
  ) {
    this.at = peer;
    this.resumeBits = String.fromCharCode(...resume);
  }

  /** The node's full JID, `name@domain/resource`. */
  get jid(): string {
    return `${this.device.jid}/${this.ctx.resource}`;
  }

  /** The gateway's domain. */
  get domain(): string {
    return this.ctx.domain;
  }

  /** Where the node last connected from; undefined: it must connect again. */
  get peer(): PeerAddress | undefined {
    return this.at;
  }

  set peer(peer: PeerAddress | undefined) {
    if (peer === this.at) return;
    this.at = peer;
    this.ctx.changed(this);
  }

  /** Seconds the node said it sleeps between wake-ups (0: always on). */
  get wake(): number {
    return this.nodeWake;
  }

  set wake(seconds: number) {
    if (seconds === this.nodeWake) return;
    this.nodeWake = seconds;
    this.ctx.changed(this);
  }

  /** When the node last spoke (ms). */
  get lastSeen(): number {
    return this.seenAt;
  }

  set lastSeen(at: number) {
    this.seenAt = at;
    this.ctx.changed(this);
  }

  /** The resume token of the current connection (docs/PROTOCOL.md §3.3). */
  get resume(): Uint8Array {
    const bytes = new Uint8Array(this.resumeBits.length);
    for (let i = 0; i < bytes.length; i++) bytes[i] = this.resumeBits.charCodeAt(i);
    return bytes;
  }

  set resume(token: Uint8Array) {
    this.resumeBits = String.fromCharCode(...token);
  }

  /** The downlink mailbox, made at its first use. */
  get mailbox(): Mailbox {
    this.box ??= new Mailbox(this.ctx.limits, this);
    return this.box;
  }

  /** Stanzas waiting for the node, without making a mailbox for an idle session. */
  get waiting(): number {
    return this.box?.length ?? 0;
  }

  /** When a queued stanza's time is up next (Infinity: none queued). */
  get mailboxExpiry(): number {
    return this.box?.nextExpiry ?? Number.POSITIVE_INFINITY;
  }

  /** MailboxWatcher: a queued stanza may expire before anything else this session waits for. */
  mailboxAdded(): void {
    this.ctx.changed(this);
  }

  /** MailboxWatcher: the gateway's count of waiting stanzas. */
  mailboxCount(delta: number): void {
    this.ctx.mailboxCount(delta);
  }

  /**
   * Whether the downlink may use format 2's templates (docs/FORMAT.md §6.6): the node said at its last
   * connect that it reads them. Not stored: a session restored after a restart writes format 1, which
   * every node reads, until the node connects again.
   */
  private templates = false;

  private get decoder(): SessionDecoder {
    this.decoderState ??= new SessionDecoder({ dictionary: this.ctx.dictionary, aliases: this.aliases });
    return this.decoderState;
  }

  private get encoder(): SessionEncoder {
    this.encoderState ??= new SessionEncoder({
      dictionary: this.ctx.dictionary,
      aliases: this.aliases,
      implicitBase: true,
      templates: this.templates,
    });
    return this.encoderState;
  }

  private get journal(): SessionJournal {
    return this.ctx.journal;
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
      // From Buffer's pool: saved with every uplink, where a Uint8Array of its own was an ArrayBuffer each.
      resume: Buffer.from(this.resumeBits, "latin1"),
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
    if (saved.downlinkEntries.length > 0) this.encoder.restore(saved.downlinkEntries);
    for (const item of saved.mailbox) this.mailbox.restore(item);
  }

  /**
   * A (re)connect: the node starts its codec tables afresh, so does the gateway; frames in flight are
   * renumbered from `delivered + 1` and encoded again.
   */
  resetCodec(format = 1): void {
    this.templates = format >= 2;
    // Made again at first use: an idle node that only connects never needs them.
    this.decoderState = undefined;
    this.encoderState = undefined;
    this.journal.resetCodec(this.identity);
    this.nextDseq = this.delivered + 1;
    if (this.box) for (const q of this.box.flying) this.encodeFor(q);
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
    if (!this.box) return 0;
    const done = this.box.delivered(ack);
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
    // One array built in one pass (a filter and a spread made two, and a closure, per stanza).
    const attrs: XAttr[] = [{ ns: "", name: "from", value: this.jid }];
    for (const a of stanza.attrs) if (a.ns !== "" || a.name !== "from") attrs.push(a);
    return { ...stanza, attrs };
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
