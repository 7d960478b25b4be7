/**
 * One node's session at the gateway (docs/PROTOCOL.md §3): the uplink sequence (`h`, exactly once and
 * in order), the downlink mailbox with its sequence and the node's acknowledgements, and the codec
 * contexts of both directions. No I/O: the CoAP resource handlers drive it.
 */
import {
  CodecError,
  DICTIONARY_V1,
  type EncodedFrame,
  SessionDecoder,
  SessionEncoder,
  type StaticDictionary,
  type XElement,
} from "../../codec/index.js";
import type { PeerAddress } from "../../src/core/index.js";
import type { Device } from "../devices.js";

export interface Queued {
  readonly stanza: XElement;
  seq: number;
  frame: EncodedFrame;
}

/** What processing an uplink produced. */
export interface UplinkResult {
  /** Stanzas accepted in order, `from` stamped. */
  readonly accepted: readonly XElement[];
  /** The frame that could not be decoded (h + 1), if any. */
  readonly failed?: { readonly seq: number; readonly error: CodecError };
  /** A frame beyond h + 1 arrived: earlier ones are missing, the node will resend. */
  readonly gap: boolean;
}

export class NodeSession {
  /** Uplink frames processed (stored or bounced), like XEP-0198's h. */
  h = 0;
  /** Downlink frames the node acknowledged. */
  delivered = 0;
  /** Downlink not yet acknowledged, in sequence order. */
  readonly mailbox: Queued[] = [];
  /** Seconds the node said it sleeps between wake-ups (0: always on), and when it last spoke. */
  wake = 0;
  lastSeen = 0;
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
    private readonly dictionary: StaticDictionary = DICTIONARY_V1,
  ) {
    this.decoder = new SessionDecoder({ dictionary, aliases: this.aliases });
    this.encoder = new SessionEncoder({ dictionary, aliases: this.aliases, implicitBase: true });
  }

  /** Codec aliases (FORMAT.md §6): the node's full JID, the gateway domain, its peers. */
  get aliases(): string[] {
    return [this.jid, this.domain, ...this.device.peers];
  }

  /**
   * A (re)connect: the node starts its codec tables afresh, so does the gateway; undelivered downlink
   * is renumbered from `delivered + 1` and encoded again.
   */
  resetCodec(): void {
    this.decoder = new SessionDecoder({ dictionary: this.dictionary, aliases: this.aliases });
    this.encoder = new SessionEncoder({
      dictionary: this.dictionary,
      aliases: this.aliases,
      implicitBase: true,
    });
    this.nextDseq = this.delivered + 1;
    for (const q of this.mailbox) {
      q.seq = this.nextDseq++;
      q.frame = this.encoder.encode(q.stanza);
    }
  }

  /** The node's cumulative acknowledgement of downlink: frames up to `ack` are delivered. */
  acknowledge(ack: number): void {
    while (this.mailbox.length > 0 && this.mailbox[0]!.seq <= ack) {
      const q = this.mailbox.shift()!;
      this.encoder.acknowledge(q.frame.inserted);
      this.delivered = q.seq;
    }
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
        stanza = this.decoder.decode(frames[i]!).stanza;
      } catch (error) {
        if (!(error instanceof CodecError)) throw error;
        return { accepted, failed: { seq: s, error }, gap: false };
      }
      this.h = s;
      accepted.push(this.stamp(stanza));
    }
    return { accepted, gap: false };
  }

  /** An unsequenced (telemetry) frame: it must insert nothing, so it cannot change the tables. */
  telemetry(frame: Uint8Array): XElement {
    const decoded = this.decoder.decode(frame);
    if (decoded.inserted.length > 0) {
      throw new CodecError("BAD_STRUCTURE", 0, "an unsequenced frame must not insert table entries");
    }
    return this.stamp(decoded.stanza);
  }

  /** `from` is the session's JID (BRIEF.md: stamped by the gateway, never taken from the node). */
  private stamp(stanza: XElement): XElement {
    const attrs = stanza.attrs.filter((a) => !(a.ns === "" && a.name === "from"));
    return { ...stanza, attrs: [{ ns: "", name: "from", value: this.jid }, ...attrs] };
  }

  /** Queues a stanza for the node; it is encoded now, in order, and resent until acknowledged. */
  enqueue(stanza: XElement): Queued {
    const q: Queued = { stanza, seq: this.nextDseq++, frame: this.encoder.encode(stanza) };
    this.mailbox.push(q);
    return q;
  }

  /** The first undelivered frames, up to `maxBytes` of frames (at least one if any is waiting). */
  pending(maxBytes: number): { dseq: number; frames: Uint8Array[]; more: boolean } {
    const frames: Uint8Array[] = [];
    let size = 0;
    for (const q of this.mailbox) {
      if (frames.length > 0 && size + q.frame.bytes.length > maxBytes) break;
      frames.push(q.frame.bytes);
      size += q.frame.bytes.length + 2;
    }
    return { dseq: this.mailbox[0]?.seq ?? this.nextDseq, frames, more: frames.length < this.mailbox.length };
  }
}
