/**
 * Which sessions exist and where their nodes are (docs/PROTOCOL.md §3.2, §4): sessions by device
 * identity and by the peer address they last connected from, their ids, the resume tokens, rebuilding
 * them from the journal after a restart, and their end when a node stays silent past the expiry time.
 * It does not parse requests, route stanzas or show presence.
 */
import type { StaticDictionary } from "../../codec/index.js";
import { type Logger, type PeerAddress, type Random, randomBytes } from "../../src/core/index.js";
import type { Device, DeviceDirectory } from "../devices.js";
import { DeadlineHeap } from "./deadlines.js";
import type { SessionJournal } from "./journal.js";
import type { MailboxLimits } from "./mailbox.js";
import { AWAKE_WINDOW_MS, NodeSession, type SessionContext } from "./node-session.js";
import type { NodeState } from "./presence.js";
import type { GatewayStats } from "./stats.js";

export interface SessionRegistryOptions {
  readonly devices: DeviceDirectory;
  readonly journal: SessionJournal;
  readonly dictionary: StaticDictionary;
  readonly domain: string;
  readonly resource: string;
  readonly mailbox: MailboxLimits;
  readonly random: Random;
  readonly logger: Logger;
  readonly stats: GatewayStats;
  /** A session not heard of for this long ends (its node shows unavailable). */
  readonly sessionExpiryMs: number;
}

/** Bytes of a resume token (docs/PROTOCOL.md §3.3). */
const TOKEN_BYTES = 8;

/** Nodes by the presence last shown for them (metrics: no scan of the sessions per scrape). */
export interface ShownCounts {
  available: number;
  xa: number;
  unavailable: number;
}

export class SessionRegistry {
  private readonly byPeer = new Map<PeerAddress, NodeSession>();
  private readonly byIdentity = new Map<string, NodeSession>();
  /** Sessions whose header changed while handling the current request or tick. */
  private readonly touched = new Set<NodeSession>();
  /**
   * Sessions something changed in since the last tick (peer, wake, last exchange, a queued stanza):
   * the next tick looks at them whatever their deadline, as the scan of every session did. At most
   * one entry per session (its `recheck` flag).
   */
  private recheck: NodeSession[] = [];
  /**
   * When each other session needs a look: its first queued stanza's expiry, its session expiry, the
   * end of its awake window. Sessions with none of these (an idle node that does not sleep, with an
   * empty mailbox, still has its expiry) are not visited until then.
   */
  private readonly deadlines = new DeadlineHeap<NodeSession>();
  private readonly context: SessionContext;
  private readonly counts: ShownCounts = { available: 0, xa: 0, unavailable: 0 };
  /** Stanzas waiting in all mailboxes (metrics). */
  private waiting = 0;
  private nextId: number;

  constructor(private readonly o: SessionRegistryOptions) {
    this.nextId = o.journal.nextSessionId();
    this.context = {
      journal: o.journal,
      dictionary: o.dictionary,
      domain: o.domain,
      resource: o.resource,
      limits: o.mailbox,
      changed: (session) => {
        if (session.recheck) return;
        session.recheck = true;
        this.recheck.push(session);
      },
      mailboxCount: (delta) => {
        this.waiting += delta;
      },
    };
  }

  /** (Re)builds every session from the journal: at start, and after a write batch failed. */
  reload(): void {
    // What each node was last shown survives a reload: only changes are broadcast at the next tick.
    const shown = new Map<string, NodeState>();
    for (const session of this.byIdentity.values()) {
      if (session.shown !== undefined) shown.set(session.identity, session.shown);
      session.recheck = false;
    }
    this.touched.clear();
    this.byPeer.clear();
    this.byIdentity.clear();
    this.recheck = [];
    this.deadlines.clear();
    this.counts.available = this.counts.xa = this.counts.unavailable = 0;
    this.waiting = 0;
    for (const saved of this.o.journal.load()) {
      const device = this.o.devices.find(saved.identity);
      if (!device) continue; // removed from the registry: its state stays in the store, unused
      const session = this.create(device, saved.id, saved.resume);
      session.restore(saved);
      if (saved.peer !== undefined && !device.revoked) {
        session.peer = saved.peer as PeerAddress;
        this.byPeer.set(saved.peer as PeerAddress, session);
      }
      const was = shown.get(device.identity);
      if (was !== undefined) this.setShown(session, was);
      if (saved.id >= this.nextId) this.nextId = saved.id + 1;
    }
  }

  get all(): IterableIterator<NodeSession> {
    return this.byIdentity.values();
  }

  get size(): number {
    return this.byIdentity.size;
  }

  get(identity: string): NodeSession | undefined {
    return this.byIdentity.get(identity);
  }

  /** The session whose node connected from `peer`. */
  at(peer: PeerAddress): NodeSession | undefined {
    return this.byPeer.get(peer);
  }

  /** The session whose full JID is `full`, through the device directory (no scan of all sessions). */
  ofJid(full: string): NodeSession | undefined {
    const device = this.o.devices.byJid(full.split("/")[0]!);
    const session = device ? this.byIdentity.get(device.identity) : undefined;
    return session?.jid === full ? session : undefined;
  }

  /** The device's session, made (and saved) if it has none: stanzas for it need a mailbox. */
  ensure(device: Device): NodeSession {
    const known = this.byIdentity.get(device.identity);
    if (known) return known;
    const session = this.create(device, this.nextId++, this.token());
    session.save();
    return session;
  }

  /**
   * A new session, or the device's existing one with new codec tables and a new resume token. The
   * uplink count `h` goes on across connects (the node numbers its next frame h + 1 from the connect
   * response), so a frame of an earlier connection replayed later is a duplicate, never a new stanza;
   * the mailbox is kept. The caller saves the session (connect.ts, once its wake and time are set): a
   * new one is not saved here first, as `ensure` would.
   */
  establish(device: Device, peer: PeerAddress, format = 1): NodeSession {
    const known = this.byIdentity.get(device.identity);
    if (known?.peer) this.byPeer.delete(known.peer);
    const session = known ?? this.create(device, this.nextId++, this.token());
    session.peer = peer;
    if (known) session.resume = this.token(); // a new session's token is fresh already
    session.resetCodec(format);
    this.byPeer.set(peer, session);
    return session;
  }

  /** The node is gone from `peer` (revoked, or its session expired): it must connect again. */
  detach(session: NodeSession, peer: PeerAddress | undefined = session.peer): void {
    if (peer !== undefined) this.byPeer.delete(peer);
    if (session.peer === peer) session.peer = undefined;
  }

  touch(session: NodeSession): void {
    this.touched.add(session);
  }

  /** Writes the headers of the sessions that changed, once per request however often they changed. */
  saveTouched(): void {
    for (const session of this.touched) session.save();
    this.touched.clear();
  }

  /** Forgets the changes of a request whose batch failed (the store is the truth; reload follows). */
  discardTouched(): void {
    this.touched.clear();
  }

  /** Records the presence shown for a node (presence.ts), keeping the counts. */
  setShown(session: NodeSession, state: NodeState | undefined): void {
    if (session.shown !== undefined) this.counts[session.shown]--;
    session.shown = state;
    if (state !== undefined) this.counts[state]++;
  }

  /**
   * Time passes: mailbox items past their TTL go, and sessions not heard of for the expiry time (or
   * twice their node's sleep) end; `each` is called for every session that may have changed (presence).
   * Only the sessions something happened to since the last tick and those whose deadline came are
   * visited: the others would come out the same as at their last visit.
   */
  sweep(now: number, each: (session: NodeSession) => void): void {
    const visit = this.recheck;
    this.recheck = [];
    for (const session of visit) {
      session.recheck = false;
      this.deadlines.delete(session);
    }
    for (let s = this.deadlines.popDue(now); s !== undefined; s = this.deadlines.popDue(now)) visit.push(s);
    for (const session of visit) this.visit(session, now, each);
    this.saveTouched();
  }

  /** Sessions due at the next tick (changed, or deadline come), and sessions with a deadline (metrics). */
  get scheduled(): { recheck: number; deadlines: number } {
    return { recheck: this.recheck.length, deadlines: this.deadlines.size };
  }

  /** Stanzas waiting in all mailboxes. */
  get mailboxDepth(): number {
    return this.waiting;
  }

  /**
   * Nodes available and asleep at `now`: the counts of what was last shown, corrected for the sessions
   * the next tick would look at (those alone can show something else now). No scan of the sessions.
   */
  census(now: number, stateAt: (session: NodeSession, now: number) => NodeState): ShownCounts {
    const counts = { ...this.counts };
    const seen = new Set<NodeSession>();
    const correct = (session: NodeSession) => {
      if (seen.has(session)) return;
      seen.add(session);
      if (session.shown !== undefined) counts[session.shown]--;
      counts[stateAt(session, now)]++;
    };
    for (const session of this.recheck) correct(session);
    this.deadlines.forEachDue(now, correct);
    return counts;
  }

  private visit(session: NodeSession, now: number, each: (session: NodeSession) => void): void {
    if (session.mailboxExpiry <= now) {
      const expired = session.mailbox.expire(now);
      if (expired.length > 0) {
        this.o.stats.mailboxExpired += expired.length;
        this.o.journal.mailboxRemove(expired.map((q) => q.id));
        this.o.logger.log("info", "gateway.mailbox_expired", { jid: session.jid, count: expired.length });
      }
    }
    const overdue = Math.max(this.o.sessionExpiryMs, 2 * session.wake * 1000);
    if (session.peer !== undefined && now - session.lastSeen > overdue) {
      this.detach(session);
      session.save();
      this.o.logger.log("info", "gateway.session_expired", { jid: session.jid });
    }
    each(session);
    // The next moment a visit could change something: a queued stanza expires, the session expires, the
    // awake window of a sleeping node ends (its presence turns xa). A deadline equal to `now` (the
    // check is strict) comes back at the next tick.
    let next = session.mailboxExpiry;
    if (session.peer !== undefined) {
      next = Math.min(next, session.lastSeen + overdue);
      if (session.wake > 0 && !session.asleep(now)) next = Math.min(next, session.lastSeen + AWAKE_WINDOW_MS);
    }
    if (next === Number.POSITIVE_INFINITY) this.deadlines.delete(session);
    else this.deadlines.set(session, next);
  }

  private create(device: Device, id: number, resume: Uint8Array): NodeSession {
    const session = new NodeSession(id, device, undefined, resume, this.context);
    this.byIdentity.set(device.identity, session);
    // Never shown yet: the next tick shows it (unavailable until it connects), as the scan did.
    this.context.changed(session);
    return session;
  }

  private token(): Uint8Array {
    return randomBytes(this.o.random, TOKEN_BYTES);
  }
}
