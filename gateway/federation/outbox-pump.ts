/**
 * Sends the durable outbox over the component link, in order, and removes stanzas only once the server
 * has routed them. XEP-0114 has no acknowledgements, so the pump asks for one: after each window of
 * stanzas it sends a *barrier*, a message from the component's domain to itself. The server handles a
 * stream's stanzas in order, so when the barrier comes back every stanza before it has been routed.
 *
 * A link that dies with windows unconfirmed sends them again after reconnecting: nothing is lost; a
 * stanza the server had routed just before the cut may arrive twice, with the same XEP-0359 origin-id
 * so that the receiver can tell (docs/PROTOCOL.md §6.2).
 *
 * A barrier proves less in a cluster: it comes back from the node the link is on, while a stanza for a
 * user on another node may still be on its way there (ejabberd hands it to the other node's session
 * process as an Erlang message, asynchronously). If the link's node dies then, that stanza dies with it.
 * So confirmed stanzas *settle* for a while (default 1 s) before they leave the outbox, and a cut in that
 * time sends them again too.
 */
import { el, type XElement } from "../../codec/index.js";
import { type Clock, type Logger, silentLogger } from "../../src/core/index.js";
import type { OutboxItem } from "../store/index.js";
import { withDelay } from "../xml/stamps.js";

export const BARRIER_NS = "urn:cxmpp:barrier:0";
const SID = "urn:xmpp:sid:0";

export interface OutboxSource {
  outbox(after: number, limit: number): OutboxItem[];
  outboxRemoveUpTo(id: number): void;
}

export interface OutboxLink {
  readonly online: boolean;
  send(stanza: XElement): boolean;
  /** Runs `fn`, whose sends may leave together (component-link.ts: the socket corked). */
  corked?(fn: () => void): void;
}

export interface OutboxPumpOptions {
  readonly domain: string;
  readonly clock: Clock;
  readonly logger?: Logger;
  /** Stanzas between barriers. Default 16: at most windows × window stanzas can be sent twice after a cut. */
  readonly window?: number;
  /** Windows awaiting their barrier at once. Default 4. */
  readonly windows?: number;
  /** A stanza that waited longer than this gets a XEP-0203 <delay/>. Default 1 s. */
  readonly delayAfterMs?: number;
  /**
   * How long confirmed stanzas stay in the outbox, sent again after a cut, before they are removed.
   * Default 1 s: far beyond the time a clustered server needs to hand a routed stanza to another node.
   */
  readonly settleMs?: number;
}

/** Confirmations this close together settle as one: the list stays ≤ settleMs / 16 + 1 entries. */
const SETTLE_GRAIN_MS = 16;

export class OutboxPump {
  /** Highest outbox id written to the current link. */
  private sentUpTo = 0;
  private readonly awaiting: { n: number; upTo: number }[] = [];
  private nextBarrier = 1;
  private scheduled = false;
  /** Confirmed up to `upTo` at `at`, oldest first, not yet removed from the outbox. */
  private readonly settling: { upTo: number; at: number }[] = [];
  private settleTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly settleMs: number;
  private readonly logger: Logger;
  /** Stanzas written, barriers confirmed, cuts with windows unconfirmed (since start). */
  readonly stats = { sent: 0, confirmed: 0, resent: 0 };

  constructor(
    private readonly source: OutboxSource,
    private readonly link: OutboxLink,
    private readonly options: OutboxPumpOptions,
  ) {
    this.logger = options.logger ?? silentLogger;
    this.settleMs = options.settleMs ?? 1000;
  }

  /** The link came up: everything still in the outbox goes (again) from the start. */
  online(): void {
    this.sentUpTo = 0;
    this.awaiting.length = 0;
    this.kick();
  }

  /**
   * The link went down: unconfirmed windows, and confirmed ones still settling, stay in the outbox and
   * go again (same origin-ids).
   */
  offline(): void {
    if (this.awaiting.length > 0 || this.settling.length > 0) {
      this.stats.resent++;
      this.logger.log("info", "federation.unconfirmed", {
        windows: this.awaiting.length,
        settling: this.settling.length,
        upTo: this.sentUpTo,
      });
    }
    this.awaiting.length = 0;
    this.settling.length = 0;
    clearTimeout(this.settleTimer);
    this.settleTimer = undefined;
    this.sentUpTo = 0;
  }

  /** Removes what is settling now (a clean stop: the server is there to finish what it routed). */
  flush(): void {
    clearTimeout(this.settleTimer);
    this.settleTimer = undefined;
    const last = this.settling.at(-1);
    this.settling.length = 0;
    if (last) this.source.outboxRemoveUpTo(last.upTo);
  }

  /** Something was added to the outbox. */
  kick(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.pump();
    });
  }

  /** A stanza from the link: true when it was one of our barriers (and is consumed). */
  consume(stanza: XElement): boolean {
    if (stanza.name !== "message") return false;
    const barrier = stanza.children.find(
      (c): c is XElement => typeof c !== "string" && c.ns === BARRIER_NS && c.name === "barrier",
    );
    if (!barrier) return false;
    const from = stanza.attrs.find((a) => a.name === "from")?.value;
    if (from !== this.options.domain) return false; // only our own barriers count
    const n = Number(barrier.attrs.find((a) => a.name === "n")?.value);
    let upTo = 0;
    while (this.awaiting.length > 0 && this.awaiting[0]!.n <= n) upTo = this.awaiting.shift()!.upTo;
    if (upTo > 0) {
      this.stats.confirmed++;
      this.settle(upTo);
      this.kick();
    }
    return true;
  }

  private settle(upTo: number): void {
    const ms = this.settleMs;
    if (ms <= 0) {
      this.source.outboxRemoveUpTo(upTo);
      return;
    }
    const now = this.options.clock.now();
    const last = this.settling.at(-1);
    if (last && now - last.at < SETTLE_GRAIN_MS) last.upTo = upTo;
    else this.settling.push({ upTo, at: now });
    this.sweep();
  }

  /** Removes from the outbox what has settled; comes back when the next entry will have. */
  private sweep(): void {
    const ms = this.settleMs;
    const now = this.options.clock.now();
    let upTo = 0;
    while (this.settling.length > 0 && now - this.settling[0]!.at >= ms) upTo = this.settling.shift()!.upTo;
    if (upTo > 0) this.source.outboxRemoveUpTo(upTo);
    const next = this.settling[0];
    if (next && this.settleTimer === undefined) {
      this.settleTimer = setTimeout(
        () => {
          this.settleTimer = undefined;
          this.sweep();
        },
        Math.max(1, next.at + ms - now),
      );
      this.settleTimer.unref?.();
    }
  }

  private pump(): void {
    if (this.settling.length > 0) this.sweep();
    if (this.link.corked) this.link.corked(() => this.send());
    else this.send();
  }

  private send(): void {
    const window = this.options.window ?? 16;
    while (this.link.online && this.awaiting.length < (this.options.windows ?? 4)) {
      const items = this.source.outbox(this.sentUpTo, window);
      if (items.length === 0) return;
      for (const item of items) {
        if (!this.link.send(this.expand(item))) return;
        this.sentUpTo = item.id;
        this.stats.sent++;
      }
      const n = this.nextBarrier++;
      const domain = this.options.domain;
      if (
        !this.link.send(
          el(
            "jabber:client",
            "message",
            { from: domain, to: domain },
            el(BARRIER_NS, "barrier", { n: String(n) }),
          ),
        )
      )
        return;
      this.awaiting.push({ n, upTo: this.sentUpTo });
    }
  }

  /**
   * As the network sees it: a XEP-0203 <delay/> when it waited, and for messages a XEP-0359 origin-id
   * fixed by its outbox row, the same on every resend.
   */
  private expand(item: OutboxItem): XElement {
    const waited = this.options.clock.now() - item.queuedAt > (this.options.delayAfterMs ?? 1000);
    const stanza = waited ? withDelay(item.stanza, this.options.domain, item.queuedAt) : item.stanza;
    if (stanza.name !== "message" || stanza.children.some((c) => typeof c !== "string" && c.ns === SID))
      return stanza;
    const originId = el(SID, "origin-id", { id: `cxmpp-${this.options.domain}-${item.id}` });
    return { ...stanza, children: [...stanza.children, originId] };
  }
}
