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

export interface OutboxItem {
  readonly id: number;
  readonly stanza: XElement;
  readonly queuedAt: number;
}

const stateless = new StatelessEncoder();
const statelessDecoder = new StatelessDecoder();

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
        `INSERT INTO sessions (identity, id, resume, peer, h, delivered, next_dseq, wake, last_seen)
         VALUES (@identity, @id, @resume, @peer, @h, @delivered, @nextDseq, @wake, @lastSeen)
         ON CONFLICT (identity) DO UPDATE SET id = excluded.id, resume = excluded.resume,
           peer = excluded.peer, h = excluded.h, delivered = excluded.delivered,
           next_dseq = excluded.next_dseq, wake = excluded.wake, last_seen = excluded.last_seen`,
      ),
      clearUplink: db.prepare("DELETE FROM uplink_frames WHERE identity = ?"),
      clearEntries: db.prepare("DELETE FROM downlink_entries WHERE identity = ?"),
      uplinkFrame: db.prepare("INSERT OR REPLACE INTO uplink_frames (identity, seq, frame) VALUES (?, ?, ?)"),
      entry: db.prepare(
        "INSERT OR REPLACE INTO downlink_entries (identity, idx, entry, acked) VALUES (?, ?, ?, 0)",
      ),
      ackEntry: db.prepare("UPDATE downlink_entries SET acked = 1 WHERE identity = ? AND idx = ?"),
      mailAdd: db.prepare(
        `INSERT INTO mailbox (identity, stanza, priority, coalesce_key, bytes, queued_at, expires_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)`,
      ),
      mailFly: db.prepare("UPDATE mailbox SET seq = ?, frame = ?, inserted = ? WHERE id = ?"),
      mailRemove: db.prepare("DELETE FROM mailbox WHERE id = ?"),
      outboxAdd: db.prepare("INSERT INTO outbox (stanza, queued_at) VALUES (?, ?)"),
      outboxRemove: db.prepare("DELETE FROM outbox WHERE id = ?"),
      outboxRemoveUpTo: db.prepare("DELETE FROM outbox WHERE id <= ?"),
      outboxHead: db.prepare<[number, number], { id: number; stanza: Buffer; queued_at: number }>(
        "SELECT id, stanza, queued_at FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
      ),
      outboxCount: db.prepare("SELECT count(*) FROM outbox").pluck(),
      maxId: db.prepare("SELECT coalesce(max(id), 0) FROM sessions").pluck(),
    };
  }

  load(): SavedSession[] {
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
    return (this.s.maxId.get() as number) + 1;
  }

  saveHeader(h: SessionHeader): void {
    this.batch.run(() => this.s.header.run({ ...h, resume: Buffer.from(h.resume), peer: h.peer ?? null }));
  }

  resetCodec(identity: string): void {
    this.batch.run(() => {
      this.s.clearUplink.run(identity);
      this.s.clearEntries.run(identity);
    });
  }

  uplinkFrame(identity: string, seq: number, frame: Uint8Array): void {
    this.batch.run(() => this.s.uplinkFrame.run(identity, seq, Buffer.from(frame)));
  }

  downlinkEntries(identity: string, entries: readonly { index: number; entry: TableEntry }[]): void {
    this.batch.run(() => {
      for (const e of entries) this.s.entry.run(identity, e.index, serialize(e.entry));
    });
  }

  acknowledgeEntries(identity: string, indices: readonly number[]): void {
    this.batch.run(() => {
      for (const i of indices) this.s.ackEntry.run(identity, i);
    });
  }

  mailboxAdd(identity: string, item: Omit<MailItem, "id">, stanza: Uint8Array): number {
    return this.batch.run(
      () =>
        this.s.mailAdd.run(
          identity,
          Buffer.from(stanza),
          item.priority,
          item.coalesce ?? null,
          item.bytes,
          item.queuedAt,
          item.expiresAt,
        ).lastInsertRowid as number,
    );
  }

  mailboxFly(item: MailItem): void {
    this.batch.run(() =>
      this.s.mailFly.run(
        item.seq,
        Buffer.from(item.frame!.bytes),
        JSON.stringify(item.frame!.inserted),
        item.id,
      ),
    );
  }

  mailboxRemove(ids: readonly number[]): void {
    this.batch.run(() => {
      for (const id of ids) this.s.mailRemove.run(id);
    });
  }

  outboxAdd(stanza: XElement, now: number): number {
    const packed = Buffer.from(packStanza(stanza));
    return this.batch.run(() => this.s.outboxAdd.run(packed, now).lastInsertRowid as number);
  }

  /** Up to `limit` outbox stanzas after id `after`, oldest first. */
  outbox(after: number, limit: number): OutboxItem[] {
    return this.s.outboxHead
      .all(after, limit)
      .map((r) => ({ id: r.id, stanza: unpackStanza(r.stanza, `outbox ${r.id}`), queuedAt: r.queued_at }));
  }

  outboxRemove(id: number): void {
    this.batch.run(() => this.s.outboxRemove.run(id));
  }

  /** The server has taken every stanza up to `id` (outbox-pump.ts). */
  outboxRemoveUpTo(id: number): void {
    this.batch.run(() => this.s.outboxRemoveUpTo.run(id));
  }

  get outboxDepth(): number {
    return this.s.outboxCount.get() as number;
  }

  run<T>(fn: () => T): T {
    return this.batch.run(fn);
  }

  committed(): Promise<void> {
    return this.batch.committed();
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
