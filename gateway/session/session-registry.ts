/**
 * Which sessions exist and where their nodes are (docs/PROTOCOL.md §3.2, §4): sessions by device
 * identity and by the peer address they last connected from, their ids, the resume tokens, rebuilding
 * them from the journal after a restart, and their end when a node stays silent past the expiry time.
 * It does not parse requests, route stanzas or show presence.
 */
import type { StaticDictionary } from "../../codec/index.js";
import { type Logger, type PeerAddress, type Random, randomBytes } from "../../src/core/index.js";
import type { Device, DeviceDirectory } from "../devices.js";
import type { SessionJournal } from "./journal.js";
import type { MailboxLimits } from "./mailbox.js";
import { NodeSession } from "./node-session.js";
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

export class SessionRegistry {
  private readonly byPeer = new Map<PeerAddress, NodeSession>();
  private readonly byIdentity = new Map<string, NodeSession>();
  /** Sessions whose header changed while handling the current request or tick. */
  private readonly touched = new Set<NodeSession>();
  private nextId: number;

  constructor(private readonly o: SessionRegistryOptions) {
    this.nextId = o.journal.nextSessionId();
  }

  /** (Re)builds every session from the journal: at start, and after a write batch failed. */
  reload(): void {
    this.touched.clear();
    this.byPeer.clear();
    this.byIdentity.clear();
    for (const saved of this.o.journal.load()) {
      const device = this.o.devices.find(saved.identity);
      if (!device) continue; // removed from the registry: its state stays in the store, unused
      const session = this.create(device, saved.id, saved.resume);
      session.restore(saved);
      if (saved.peer !== undefined && !device.revoked) {
        session.peer = saved.peer as PeerAddress;
        this.byPeer.set(session.peer, session);
      }
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
   * the mailbox is kept.
   */
  establish(device: Device, peer: PeerAddress): NodeSession {
    const known = this.byIdentity.get(device.identity);
    if (known?.peer) this.byPeer.delete(known.peer);
    const session = known ?? this.ensure(device);
    session.peer = peer;
    session.resume = this.token();
    session.resetCodec();
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

  /**
   * Time passes: mailbox items past their TTL go, and sessions not heard of for the expiry time (or
   * twice their node's sleep) end. Calls `each` for every session afterwards (presence).
   */
  sweep(now: number, each: (session: NodeSession) => void): void {
    for (const session of this.byIdentity.values()) {
      const expired = session.mailbox.expire(now);
      if (expired.length > 0) {
        this.o.stats.mailboxExpired += expired.length;
        this.o.journal.mailboxRemove(expired.map((q) => q.id));
        this.o.logger.log("info", "gateway.mailbox_expired", { jid: session.jid, count: expired.length });
      }
      const overdue = Math.max(this.o.sessionExpiryMs, 2 * session.wake * 1000);
      if (session.peer !== undefined && now - session.lastSeen > overdue) {
        this.detach(session);
        session.save();
        this.o.logger.log("info", "gateway.session_expired", { jid: session.jid });
      }
      each(session);
    }
    this.saveTouched();
  }

  private create(device: Device, id: number, resume: Uint8Array): NodeSession {
    const session = new NodeSession(
      id,
      device,
      `${device.jid}/${this.o.resource}`,
      this.o.domain,
      undefined,
      resume,
      this.o.journal,
      this.o.dictionary,
      this.o.mailbox,
    );
    this.byIdentity.set(device.identity, session);
    return session;
  }

  private token(): Uint8Array {
    return randomBytes(this.o.random, TOKEN_BYTES);
  }
}
