/**
 * The write batch's economies (gateway/store/write-batch.ts, session-store.ts; docs/PROTOCOL.md §4.1):
 * a session's header and a mailbox row are written once per batch, just before its COMMIT, as they stand
 * then; under a backlog a batch waits a turn or two before it commits. Nothing of it may show before
 * the commit, and a rolled-back batch leaves nothing behind.
 */
import { describe, expect, it } from "vitest";
import { el } from "../../codec/index.js";
import type { SessionHeader } from "../../gateway/session/journal.js";
import type { MailItem } from "../../gateway/session/mailbox.js";
import { openStore, type Store } from "../../gateway/store/index.js";

const header = (h: number): SessionHeader => ({
  identity: "n1",
  id: 1,
  resume: Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8),
  peer: "127.0.0.1:5683",
  h,
  delivered: 0,
  nextDseq: 1,
  wake: 0,
  lastSeen: 1000 + h,
  telemetry: 0,
});

const item = (): Omit<MailItem, "id"> => ({
  stanza: el("jabber:client", "message", { to: "n1@iot.localhost" }),
  priority: 1,
  coalesce: undefined,
  bytes: 10,
  queuedAt: 1,
  expiresAt: 100_000,
});

/** A store whose batches commit only when the test runs the scheduled callbacks. */
function manual(): { store: Store; turns: (() => void)[] } {
  const turns: (() => void)[] = [];
  return { store: openStore(":memory:", { schedule: (commit) => turns.push(commit) }), turns };
}

const mailRows = (store: Store) =>
  store.db.prepare("SELECT id, seq, frame FROM mailbox ORDER BY id").all() as {
    id: number;
    seq: number | null;
    frame: Buffer | null;
  }[];

describe("write batch: writes kept until the commit", () => {
  it("writes a session's header once per batch, the last one, and only at the commit", () => {
    const { store } = manual();
    for (let h = 1; h <= 5; h++) store.journal.saveHeader(header(h));
    expect(store.db.prepare("SELECT count(*) FROM sessions").pluck().get()).toBe(0);
    store.batch.flush();
    expect(store.db.prepare("SELECT h, last_seen FROM sessions").get()).toEqual({ h: 5, last_seen: 1005 });
    expect(store.journal.load()[0]!.resume).toEqual(Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8));
    store.close();
  });

  it("inserts a stanza queued and sent in one batch as one row with its frame; one queued and removed leaves none", () => {
    const { store } = manual();
    const flown = store.journal.mailboxAdd("n1", item(), Uint8Array.of(0x80));
    const gone = store.journal.mailboxAdd("n1", item(), Uint8Array.of(0x80));
    expect(gone).toBeGreaterThan(flown);
    store.journal.mailboxFly({
      ...item(),
      id: flown,
      seq: 1,
      frame: { bytes: Uint8Array.of(9, 9), inserted: [] },
    });
    store.journal.mailboxRemove([gone]);
    expect(mailRows(store)).toEqual([]);
    store.batch.flush();
    expect(mailRows(store)).toEqual([{ id: flown, seq: 1, frame: Buffer.from([9, 9]) }]);
    // Rows of earlier batches are updated and deleted in place; new ids stay above every stored one.
    const next = store.journal.mailboxAdd("n1", item(), Uint8Array.of(0x80));
    expect(next).toBeGreaterThan(gone);
    store.journal.mailboxRemove([flown]);
    store.batch.flush();
    expect(mailRows(store).map((r) => r.id)).toEqual([next]);
    store.close();
  });

  it("a read of the sessions inside the batch sees what it kept", () => {
    const { store } = manual();
    store.journal.saveHeader({ ...header(3), id: 41 });
    expect(store.journal.nextSessionId()).toBe(42);
    store.batch.flush();
    store.close();
  });

  it("a batch that fails at its commit writes nothing it kept, and fails every request waiting for it", async () => {
    const { store } = manual();
    store.journal.saveHeader(header(1));
    store.journal.mailboxAdd("n1", item(), Uint8Array.of(0x80));
    const waiting = store.batch.committed();
    store.db.exec("CREATE TRIGGER no_mail BEFORE INSERT ON mailbox BEGIN SELECT RAISE(ABORT, 'full'); END");
    store.batch.flush();
    await expect(waiting).rejects.toThrow(/full/);
    expect(store.db.prepare("SELECT count(*) FROM sessions").pluck().get()).toBe(0);
    expect(mailRows(store)).toEqual([]);
    store.close();
  });
});

describe("write batch: a backlog waits a turn or two", () => {
  it("commits after the turn when fewer than 32 requests came, after up to two more turns when they came full", async () => {
    const { store, turns } = manual();
    const run = () => turns.shift()!();
    // A quiet turn: committed when its callback runs.
    store.journal.saveHeader(header(1));
    const quiet = store.batch.committed();
    run();
    await quiet;
    expect(store.batch.pending).toBe(false);
    // Full turns: 32 requests each time the callback comes; the third time it commits all the same.
    store.journal.saveHeader(header(2));
    let done = false;
    const full = () => {
      for (let i = 0; i < 32; i++) void store.batch.answered().then(() => (done = true));
    };
    full();
    run();
    expect(store.batch.pending).toBe(true);
    full();
    run();
    expect(store.batch.pending).toBe(true);
    full();
    run();
    expect(store.batch.pending).toBe(false);
    expect(turns).toEqual([]);
    await Promise.resolve();
    expect(done).toBe(true);
    expect(store.db.prepare("SELECT h FROM sessions").pluck().get()).toBe(2);
    store.close();
  });

  it("waits only for nodes' requests: stanzas from the XMPP server and pushes never hold a commit back", () => {
    const { store, turns } = manual();
    store.journal.saveHeader(header(1));
    for (let i = 0; i < 64; i++) void store.batch.committed();
    turns.shift()!();
    expect(store.batch.pending).toBe(false);
    store.close();
  });
});
