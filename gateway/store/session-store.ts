/**
 * The session journal on SQLite (docs/PROTOCOL.md §4): session headers, the frames and entries that
 * rebuild both codec tables, mailboxes and the federation outbox. Stanzas are kept as stateless cxmpp
 * frames (exact, and a third the size of their XML); table entries as V8 structured clones, which keep
 * every field of the codec's entries as they were.
 */
import { deserialize, serialize } from "node:v8";
import {
  type DecodedFrame,
  StatelessDecoder,
  StatelessEncoder,
  type TableEntry,
  type XElement,
} from "../../codec/index.js";
import type { SavedSession, SessionHeader, SessionJournal } from "../session/journal.js";
import type { MailItem } from "../session/mailbox.js";
import { type Db, StoreError } from "./database.js";
import type { WriteBatch } from "./write-batch.js";

interface HeaderRow {
  identity: string;
  id: number;
  resume: Buffer;
  peer: string | null;
  h: number;
  delivered: number;
  next_dseq: number;
  wake: number;
  last_seen: number;
  telemetry: number;
}

interface MailRow {
  id: number;
  identity: string;
  stanza: Buffer;
  priority: number;
  coalesce_key: string | null;
  bytes: number;
  queued_at: number;
  expires_at: number;
  seq: number | null;
  frame: Buffer | null;
  inserted: string | null;
}

/** A mailbox row written at the batch's commit: its columns as they stand then. */
interface PendingMail {
  readonly id: number;
  readonly identity: string;
  readonly stanza: Uint8Array;
  readonly priority: number;
  readonly coalesce: string | null;
  readonly bytes: number;
  readonly queuedAt: number;
  readonly expiresAt: number;
  seq: number | null;
  frame: Uint8Array | null;
  inserted: string | null;
}

export interface OutboxItem {
  readonly id: number;
  readonly stanza: XElement;
  readonly queuedAt: number;
}

const stateless = new StatelessEncoder();
const statelessDecoder = new StatelessDecoder();

/** A Buffer over the same bytes (better-sqlite3 binds Buffers and copies them into SQLite itself). */
function view(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** At most this long between a barrier's confirmation and the delete of its rows (when nothing else writes). */
const CONFIRM_DELAY_MS = 1000;

/** Outbox rows kept decoded for the pump (beyond, the table serves them). */
const RECENT_OUTBOX = 4096;

/** V8's serialisation header (0xFF, format version) in this Node. */
const V8_HEADER = serialize("").subarray(0, 2);

/**
 * A table entry as the store keeps it: a V8 structured clone (`deserialize` reads it). Most entries are
 * short Latin-1 strings (texts and attribute values): those are written here as V8 writes a one-byte
 * string (header, tag '"', varint length, the characters), since V8's serializer object costs several
 * times that per call; everything else goes through `v8.serialize`.
 */
export function packEntry(entry: TableEntry): Buffer {
  if (typeof entry !== "string" || !LATIN1.test(entry)) return serialize(entry);
  let n = entry.length;
  let varint = 1;
  while (n >= 0x80) {
    varint++;
    n >>>= 7;
  }
  const out = Buffer.allocUnsafe(3 + varint + entry.length);
  out[0] = V8_HEADER[0]!;
  out[1] = V8_HEADER[1]!;
  out[2] = 0x22; // '"': one-byte string
  let i = 3;
  for (n = entry.length; n >= 0x80; n >>>= 7) out[i++] = (n & 0x7f) | 0x80;
  out[i++] = n;
  out.write(entry, i, "latin1");
  return out;
}
const LATIN1 = /^[\u0000-\u00ff]*$/;

/** A stanza as the store keeps it. */
export function packStanza(stanza: XElement): Uint8Array {
  return stateless.encode(stanza).bytes;
}

function unpackStanza(bytes: Uint8Array, where: string): XElement {
  let decoded: DecodedFrame;
  try {
    decoded = statelessDecoder.decode(bytes);
  } catch (error) {
    throw new StoreError(`${where}: the stored stanza does not decode (${(error as Error).message})`);
  }
  return decoded.stanza;
}

export class SqliteJournal implements SessionJournal {
  private readonly s;

  constructor(
    private readonly db: Db,
    private readonly batch: WriteBatch,
  ) {
    this.s = {
      header: db.prepare(
        `INSERT INTO sessions (identity, id, resume, peer, h, delivered, next_dseq, wake, last_seen, telemetry)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (identity) DO UPDATE SET id = excluded.id, resume = excluded.resume,
           peer = excluded.peer, h = excluded.h, delivered = excluded.delivered,
           next_dseq = excluded.next_dseq, wake = excluded.wake, last_seen = excluded.last_seen,
           telemetry = excluded.telemetry`,
      ),
      clearUplink: db.prepare("DELETE FROM uplink_frames WHERE identity = ?"),
      clearEntries: db.prepare("DELETE FROM downlink_entries WHERE identity = ?"),
      uplinkFrame: db.prepare("INSERT OR REPLACE INTO uplink_frames (identity, seq, frame) VALUES (?, ?, ?)"),
      entry: db.prepare(
        "INSERT OR REPLACE INTO downlink_entries (identity, idx, entry, acked) VALUES (?, ?, ?, 0)",
      ),
      ackEntry: db.prepare("UPDATE downlink_entries SET acked = 1 WHERE identity = ? AND idx = ?"),
      ackRange: db.prepare(
        "UPDATE downlink_entries SET acked = 1 WHERE identity = ? AND idx BETWEEN ? AND ?",
      ),
      mailAdd: db.prepare(
        `INSERT INTO mailbox (id, identity, stanza, priority, coalesce_key, bytes, queued_at, expires_at,
           seq, frame, inserted)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      mailMaxId: db.prepare("SELECT coalesce(max(id), 0) FROM mailbox").pluck(),
      mailFly: db.prepare("UPDATE mailbox SET seq = ?, frame = ?, inserted = ? WHERE id = ?"),
      mailRemove: db.prepare("DELETE FROM mailbox WHERE id = ?"),
      outboxAdd: db.prepare("INSERT INTO outbox (stanza, queued_at) VALUES (?, ?)"),
      outboxRemove: db.prepare("DELETE FROM outbox WHERE id = ?"),
      outboxRemoveUpTo: db.prepare("DELETE FROM outbox WHERE id <= ?"),
      outboxHead: db.prepare<[number, number], { id: number; stanza: Buffer; queued_at: number }>(
        "SELECT id, stanza, queued_at FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
      ),
      outboxCount: db.prepare("SELECT count(*) FROM outbox WHERE id > ?").pluck(),
      outboxMaxId: db.prepare("SELECT coalesce(max(id), 0) FROM outbox").pluck(),
      maxId: db.prepare("SELECT coalesce(max(id), 0) FROM sessions").pluck(),
    };
    this.cachedAfter = this.s.outboxMaxId.get() as number;
    this.nextMailId = (this.s.mailMaxId.get() as number) + 1;
    batch.beforeCommit(() => this.writePending());
    batch.afterOpen(() => {
      this.deletedInBatch = 0;
      this.deleteConfirmed();
    });
    batch.afterRollback(() => {
      // The delete went with the batch: the rows are still confirmed, the next transaction deletes them.
      if (this.deletedInBatch > this.confirmedUpTo) this.confirmedUpTo = this.deletedInBatch;
      this.headers.clear();
      this.mail.clear();
      this.recent.clear();
      this.cachedAfter = this.s.outboxMaxId.get() as number;
    });
  }

  /**
   * Every outbox row with an id above `cachedAfter`, as it was added: the pump reads the stanzas it
   * sends from here, without a SELECT and a decode each (older rows, from before a start, an overflow
   * or a rolled-back batch, are read from the table).
   */
  private readonly recent = new Map<number, OutboxItem>();
  private cachedAfter: number;
  /**
   * Outbox rows up to this id are confirmed by a barrier but not yet deleted: the delete joins the next
   * transaction opened anyway (or one of its own within CONFIRM_DELAY_MS, and at close) instead of
   * costing a commit and an fsync per barrier. A crash before it commits sends them once more after
   * the restart, with their origin-id (docs/PROTOCOL.md §6.2), as a link cut does.
   */
  private confirmedUpTo = 0;
  /** What the open transaction deleted (confirmed again if it rolls back). */
  private deletedInBatch = 0;
  private confirmTimer: NodeJS.Timeout | undefined;
  /**
   * Writes of the open batch kept until just before its COMMIT (WriteBatch.beforeCommit), in the same
   * transaction, so "acknowledged means stored" is as before: a session's header once per batch
   * however many of its requests the batch holds (the last one wins), and a mailbox row inserted once
   * with what happened to it in the batch: a stanza queued and pushed at once is one INSERT instead
   * of an INSERT and an UPDATE, one queued and delivered (or coalesced away) in the batch no row.
   */
  private readonly headers = new Map<string, SessionHeader>();
  private readonly mail = new Map<number, PendingMail>();
  /** Mailbox ids are assigned here (the rows are written at the commit): above every id stored. */
  private nextMailId: number;

  load(): SavedSession[] {
    this.writeKept();
    const headers = this.db.prepare<[], HeaderRow>("SELECT * FROM sessions").all();
    const frames = group(
      this.db
        .prepare<[], { identity: string; frame: Buffer }>(
          "SELECT identity, frame FROM uplink_frames ORDER BY identity, seq",
        )
        .all(),
    );
    const entries = group(
      this.db
        .prepare<[], { identity: string; idx: number; entry: Buffer; acked: number }>(
          "SELECT identity, idx, entry, acked FROM downlink_entries ORDER BY identity, idx",
        )
        .all(),
    );
    const mail = group(
      this.db
        .prepare<[], MailRow>("SELECT * FROM mailbox ORDER BY identity, seq IS NULL, seq, priority DESC, id")
        .all(),
    );
    return headers.map((h) => ({
      identity: h.identity,
      id: h.id,
      resume: Uint8Array.from(h.resume),
      peer: h.peer ?? undefined,
      h: h.h,
      delivered: h.delivered,
      nextDseq: h.next_dseq,
      wake: h.wake,
      lastSeen: h.last_seen,
      telemetry: h.telemetry,
      uplinkFrames: (frames.get(h.identity) ?? []).map((r) => Uint8Array.from(r.frame)),
      downlinkEntries: (entries.get(h.identity) ?? []).map((r) => ({
        index: r.idx,
        entry: deserialize(r.entry) as TableEntry,
        acknowledged: r.acked === 1,
      })),
      mailbox: (mail.get(h.identity) ?? []).map((r) => mailItem(r)),
    }));
  }

  nextSessionId(): number {
    this.writeKept();
    return (this.s.maxId.get() as number) + 1;
  }

  /** What the open batch kept, written now (in it): for reads that must see it. */
  private writeKept(): void {
    if (this.batch.pending && (this.headers.size > 0 || this.mail.size > 0))
      this.batch.run(() => this.writePending());
  }

  saveHeader(h: SessionHeader): void {
    this.batch.run(() => this.headers.set(h.identity, h));
  }

  /** The batch's kept writes (WriteBatch.beforeCommit; inside its transaction). */
  private writePending(): void {
    for (const h of this.headers.values())
      this.s.header.run(
        h.identity,
        h.id,
        view(h.resume),
        h.peer ?? null,
        h.h,
        h.delivered,
        h.nextDseq,
        h.wake,
        h.lastSeen,
        h.telemetry,
      );
    this.headers.clear();
    for (const m of this.mail.values())
      this.s.mailAdd.run(
        m.id,
        m.identity,
        view(m.stanza),
        m.priority,
        m.coalesce,
        m.bytes,
        m.queuedAt,
        m.expiresAt,
        m.seq,
        m.frame === null ? null : view(m.frame),
        m.inserted,
      );
    this.mail.clear();
  }

  resetCodec(identity: string): void {
    this.batch.run(() => {
      this.s.clearUplink.run(identity);
      this.s.clearEntries.run(identity);
    });
  }

  uplinkFrame(identity: string, seq: number, frame: Uint8Array): void {
    this.batch.run(() => this.s.uplinkFrame.run(identity, seq, view(frame)));
  }

  downlinkEntries(identity: string, entries: readonly { index: number; entry: TableEntry }[]): void {
    this.batch.run(() => {
      for (const e of entries) this.s.entry.run(identity, e.index, packEntry(e.entry));
    });
  }

  acknowledgeEntries(identity: string, indices: readonly number[]): void {
    // A frame's inserts take consecutive indices: one statement per run of them.
    this.batch.run(() => {
      for (let i = 0; i < indices.length; ) {
        const first = indices[i]!;
        let last = first;
        while (++i < indices.length && indices[i] === last + 1) last++;
        if (last === first) this.s.ackEntry.run(identity, first);
        else this.s.ackRange.run(identity, first, last);
      }
    });
  }

  mailboxAdd(identity: string, item: Omit<MailItem, "id">, stanza: Uint8Array): number {
    return this.batch.run(() => {
      const id = this.nextMailId++;
      this.mail.set(id, {
        id,
        identity,
        // The codec's frames are views of slabs it never writes again: kept without a copy.
        stanza,
        priority: item.priority,
        coalesce: item.coalesce ?? null,
        bytes: item.bytes,
        queuedAt: item.queuedAt,
        expiresAt: item.expiresAt,
        seq: null,
        frame: null,
        inserted: null,
      });
      return id;
    });
  }

  mailboxFly(item: MailItem): void {
    this.batch.run(() => {
      const inserted = JSON.stringify(item.frame!.inserted);
      const pending = this.mail.get(item.id);
      if (pending) {
        pending.seq = item.seq!;
        pending.frame = item.frame!.bytes;
        pending.inserted = inserted;
      } else this.s.mailFly.run(item.seq, view(item.frame!.bytes), inserted, item.id);
    });
  }

  mailboxRemove(ids: readonly number[]): void {
    this.batch.run(() => {
      for (const id of ids) if (!this.mail.delete(id)) this.s.mailRemove.run(id);
    });
  }

  outboxAdd(stanza: XElement, now: number): number {
    const packed = view(packStanza(stanza));
    const id = this.batch.run(() => Number(this.s.outboxAdd.run(packed, now).lastInsertRowid));
    if (this.recent.size >= RECENT_OUTBOX) {
      // A long backlog (link down): the table serves it; the cache starts again from here.
      this.recent.clear();
      this.cachedAfter = id;
    } else this.recent.set(id, { id, stanza, queuedAt: now });
    return id;
  }

  /** Up to `limit` outbox stanzas after id `after`, oldest first. */
  outbox(after: number, limit: number): OutboxItem[] {
    if (after >= this.cachedAfter) {
      const items: OutboxItem[] = [];
      for (const item of this.recent.values()) {
        if (item.id <= after) continue;
        items.push(item);
        if (items.length === limit) break;
      }
      return items;
    }
    return this.s.outboxHead
      .all(Math.max(after, this.confirmedUpTo), limit)
      .map((r) => ({ id: r.id, stanza: unpackStanza(r.stanza, `outbox ${r.id}`), queuedAt: r.queued_at }));
  }

  outboxRemove(id: number): void {
    this.batch.run(() => this.s.outboxRemove.run(id));
    this.recent.delete(id);
  }

  /** The server has taken every stanza up to `id` (outbox-pump.ts): deleted with the next transaction. */
  outboxRemoveUpTo(id: number): void {
    for (const key of this.recent.keys()) {
      if (key > id) break;
      this.recent.delete(key);
    }
    if (id > this.confirmedUpTo) this.confirmedUpTo = id;
    if (this.batch.pending) this.batch.run(() => this.deleteConfirmed());
    else if (this.confirmTimer === undefined) {
      this.confirmTimer = setTimeout(() => {
        this.confirmTimer = undefined;
        try {
          this.flushConfirmed();
        } catch {
          // The batch failed (its commit rolls it back and the gateway reloads): the rows stay, and go
          // once more after a restart unless a later confirmation deletes them.
        }
      }, CONFIRM_DELAY_MS);
      this.confirmTimer.unref();
    }
  }

  /** Deletes the confirmed outbox rows now (in the current batch; shutdown). */
  flushConfirmed(): void {
    clearTimeout(this.confirmTimer);
    this.confirmTimer = undefined;
    if (this.confirmedUpTo > 0) this.batch.run(() => this.deleteConfirmed());
  }

  /** Inside the open transaction. */
  private deleteConfirmed(): void {
    if (this.confirmedUpTo === 0) return;
    this.s.outboxRemoveUpTo.run(this.confirmedUpTo);
    if (this.confirmedUpTo > this.deletedInBatch) this.deletedInBatch = this.confirmedUpTo;
    this.confirmedUpTo = 0;
  }

  get outboxDepth(): number {
    return this.s.outboxCount.get(this.confirmedUpTo) as number;
  }

  run<T>(fn: () => T): T {
    return this.batch.run(fn);
  }

  committed(): Promise<void> {
    return this.batch.committed();
  }

  answered(): Promise<void> {
    return this.batch.answered();
  }

  get pending(): boolean {
    return this.batch.pending;
  }
}

function mailItem(r: MailRow): MailItem {
  const item: MailItem = {
    id: r.id,
    stanza: unpackStanza(r.stanza, `mailbox ${r.id}`),
    priority: r.priority,
    coalesce: r.coalesce_key ?? undefined,
    bytes: r.bytes,
    queuedAt: r.queued_at,
    expiresAt: r.expires_at,
  };
  if (r.seq !== null && r.frame !== null) {
    // In flight: resent exactly as first sent; its inserts are acknowledged with it.
    item.seq = r.seq;
    item.frame = { bytes: Uint8Array.from(r.frame), inserted: JSON.parse(r.inserted ?? "[]") as number[] };
  }
  return item;
}

function group<T extends { identity: string }>(rows: readonly T[]): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const r of rows) {
    const list = out.get(r.identity);
    if (list) list.push(r);
    else out.set(r.identity, [r]);
  }
  return out;
}
