/**
 * A node's downlink mailbox (docs/PROTOCOL.md §4): stanzas wait here until the node acknowledges them.
 * A stanza is *queued* until it is first sent, then *in flight* with a downlink sequence number and a
 * fixed frame. Only queued stanzas are reordered by priority, coalesced ("latest value wins") or
 * expired: once a frame has been sent the node may have decoded it, so it is resent as it is.
 */

import { attr, type EncodedFrame, type XElement } from "../../codec/index.js";
import { GATEWAY_DEFAULTS } from "../defaults.js";

export interface MailItem {
  /** The store's id for it (rowid), or a counter in memory. */
  readonly id: number;
  readonly stanza: XElement;
  /** Higher goes first among queued stanzas. */
  readonly priority: number;
  /** Stanzas with the same key replace each other while queued (state that only matters fresh). */
  readonly coalesce: string | undefined;
  /** Size counted against the mailbox limit (the stanza as a stateless frame). */
  readonly bytes: number;
  readonly queuedAt: number;
  readonly expiresAt: number;
  seq?: number;
  frame?: EncodedFrame;
}

export interface MailboxLimits {
  readonly maxStanzas: number;
  readonly maxBytes: number;
  readonly ttlMs: number;
}

export const DEFAULT_MAILBOX_LIMITS: MailboxLimits = Object.freeze({
  maxStanzas: GATEWAY_DEFAULTS.mailboxMaxStanzas,
  maxBytes: GATEWAY_DEFAULTS.mailboxMaxBytes,
  ttlMs: GATEWAY_DEFAULTS.mailboxTtlS * 1000,
});

export const Priority = Object.freeze({ PRESENCE: 0, MESSAGE: 1, IQ: 2 });

const CHAT_STATES = "http://jabber.org/protocol/chatstates";
const IOT_CONTROL = "urn:xmpp:iot:control";

/**
 * How a stanza waits: iq first (someone is waiting for the answer, RFC 6120 §8.2.3), then messages,
 * then presence. Presence (RFC 6121 §4: only the latest matters), a message that is only a chat state
 * (XEP-0085), and a XEP-0325 control message without a reply (the latest set value wins) coalesce per
 * sender.
 */
export function classify(stanza: XElement): { priority: number; coalesce: string | undefined } {
  const from = attr(stanza, "from") ?? "";
  if (stanza.name === "iq") return { priority: Priority.IQ, coalesce: undefined };
  if (stanza.name === "presence") {
    // Only availability coalesces; subscription requests and errors must each arrive (RFC 6121 §3).
    const type = attr(stanza, "type");
    const availability = type === undefined || type === "unavailable";
    return { priority: Priority.PRESENCE, coalesce: availability ? `presence ${from}` : undefined };
  }
  const payload = stanza.children.filter((c): c is XElement => typeof c !== "string");
  if (payload.length > 0 && payload.every((c) => c.ns === CHAT_STATES)) {
    return { priority: Priority.PRESENCE, coalesce: `chatstate ${from}` };
  }
  const set = payload.find((c) => c.ns === IOT_CONTROL && c.name === "set");
  if (set && payload.length === 1) {
    const fields = set.children
      .filter((c): c is XElement => typeof c !== "string")
      .map((c) => `${c.name}=${attr(c, "name") ?? ""}`)
      .sort()
      .join(",");
    return { priority: Priority.MESSAGE, coalesce: `control ${from} ${fields}` };
  }
  return { priority: Priority.MESSAGE, coalesce: undefined };
}

/**
 * Who hears of a mailbox's changes: its session (a new queued item may expire before anything else it
 * waits for, so the session's deadline moves) and the gateway's running count of waiting stanzas
 * (metrics read the count instead of visiting every mailbox).
 */
export interface MailboxWatcher {
  /** A queued item was added (or restored). */
  mailboxAdded(item: MailItem): void;
  /** Items were added (+) or removed (−). */
  mailboxCount(delta: number): void;
}

export type Admission =
  | { readonly kind: "queued" }
  | { readonly kind: "coalesced"; readonly replaced: MailItem }
  | { readonly kind: "full" };

export class Mailbox {
  /** In flight (ascending seq), then queued (priority, then arrival). */
  private readonly items: MailItem[] = [];
  private inFlight = 0;
  private bytes = 0;

  constructor(
    private readonly limits: MailboxLimits = DEFAULT_MAILBOX_LIMITS,
    private readonly watcher?: MailboxWatcher,
  ) {}

  get length(): number {
    return this.items.length;
  }

  get size(): number {
    return this.bytes;
  }

  get flying(): readonly MailItem[] {
    return this.items.slice(0, this.inFlight);
  }

  get queued(): readonly MailItem[] {
    return this.items.slice(this.inFlight);
  }

  /** Whether `item` may join: a queued stanza with its coalescing key is replaced; else the limits. */
  admit(item: Omit<MailItem, "id">): Admission {
    const i =
      item.coalesce === undefined
        ? -1
        : this.items.findIndex((q, k) => k >= this.inFlight && q.coalesce === item.coalesce);
    const replaced = i >= 0 ? this.items[i] : undefined;
    const count = this.items.length + (replaced ? 0 : 1);
    const bytes = this.bytes - (replaced?.bytes ?? 0) + item.bytes;
    if (count > this.limits.maxStanzas || bytes > this.limits.maxBytes) return { kind: "full" };
    return replaced ? { kind: "coalesced", replaced } : { kind: "queued" };
  }

  /** Adds a queued item in its place (after anything of its priority or higher that came first). */
  add(item: MailItem): void {
    let i = this.items.length;
    while (i > this.inFlight && this.items[i - 1]!.priority < item.priority) i--;
    this.items.splice(i, 0, item);
    this.bytes += item.bytes;
    this.watcher?.mailboxCount(1);
    this.watcher?.mailboxAdded(item);
  }

  /** Restores an item read from the store: in flight ones in seq order, then queued ones. */
  restore(item: MailItem): void {
    if (item.seq !== undefined) {
      this.items.splice(this.inFlight++, 0, item);
      this.bytes += item.bytes;
      this.watcher?.mailboxCount(1);
    } else this.add(item);
  }

  remove(id: number): MailItem | undefined {
    const i = this.items.findIndex((q) => q.id === id);
    if (i < 0) return undefined;
    const [item] = this.items.splice(i, 1);
    if (i < this.inFlight) this.inFlight--;
    this.bytes -= item!.bytes;
    this.watcher?.mailboxCount(-1);
    return item;
  }

  /** When the first queued item's time is up (Infinity when nothing is queued). */
  get nextExpiry(): number {
    let at = Number.POSITIVE_INFINITY;
    for (let k = this.inFlight; k < this.items.length; k++) at = Math.min(at, this.items[k]!.expiresAt);
    return at;
  }

  /** Removes queued items whose time is up. */
  expire(now: number): MailItem[] {
    const gone = this.items.filter((q, k) => k >= this.inFlight && q.expiresAt <= now);
    for (const q of gone) this.remove(q.id);
    return gone;
  }

  /** In flight items acknowledged up to `ack`, removed in order. */
  delivered(ack: number): MailItem[] {
    let n = 0;
    while (n < this.inFlight && this.items[n]!.seq! <= ack) n++;
    const done = this.items.splice(0, n);
    this.inFlight -= n;
    for (const q of done) this.bytes -= q.bytes;
    if (n > 0) this.watcher?.mailboxCount(-n);
    return done;
  }

  /** The next queued item becomes in flight (the caller has given it seq and frame). */
  fly(item: MailItem): void {
    const i = this.items.indexOf(item);
    if (i !== this.inFlight) throw new Error("only the first queued item can take off");
    this.inFlight++;
  }

  /** The first queued item, if any. */
  get next(): MailItem | undefined {
    return this.items[this.inFlight];
  }
}
