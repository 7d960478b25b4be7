/**
 * The store's schema, one migration per release that changed it; `PRAGMA user_version` records how
 * many have run. Migrations only ever append: a released one is never edited, so every data directory
 * can be brought forward from any earlier release.
 */
export const MIGRATIONS: readonly string[] = [
  // 1: devices, sessions with their codec state, mailboxes, the federation outbox.
  `
  CREATE TABLE devices (
    identity TEXT PRIMARY KEY,
    jid TEXT NOT NULL UNIQUE,
    key BLOB NOT NULL,
    peers TEXT NOT NULL DEFAULT '[]',
    revoked INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
  );
  CREATE TABLE sessions (
    identity TEXT PRIMARY KEY,
    id INTEGER NOT NULL UNIQUE,
    resume BLOB NOT NULL,
    peer TEXT,
    h INTEGER NOT NULL,
    delivered INTEGER NOT NULL,
    next_dseq INTEGER NOT NULL,
    wake INTEGER NOT NULL,
    last_seen INTEGER NOT NULL
  );
  -- Uplink frames of the current codec context that inserted table entries: replayed into a fresh
  -- decoder, they rebuild the node's uplink table exactly (docs/PROTOCOL.md §4).
  CREATE TABLE uplink_frames (
    identity TEXT NOT NULL,
    seq INTEGER NOT NULL,
    frame BLOB NOT NULL,
    PRIMARY KEY (identity, seq)
  ) WITHOUT ROWID;
  -- Downlink table entries the gateway's encoder inserted, and whether the node acknowledged them.
  CREATE TABLE downlink_entries (
    identity TEXT NOT NULL,
    idx INTEGER NOT NULL,
    entry BLOB NOT NULL,
    acked INTEGER NOT NULL,
    PRIMARY KEY (identity, idx)
  ) WITHOUT ROWID;
  -- Stanzas for a node: queued (seq NULL) or in flight (seq and frame set), until acknowledged.
  CREATE TABLE mailbox (
    id INTEGER PRIMARY KEY,
    identity TEXT NOT NULL,
    stanza BLOB NOT NULL,
    priority INTEGER NOT NULL,
    coalesce_key TEXT,
    bytes INTEGER NOT NULL,
    queued_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    seq INTEGER,
    frame BLOB,
    -- Table indices the frame inserted (JSON array): acknowledged with the frame.
    inserted TEXT
  );
  CREATE INDEX mailbox_by_identity ON mailbox (identity, id);
  -- Stanzas for other domains, in order, until the XMPP server has taken them.
  CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    stanza BLOB NOT NULL,
    queued_at INTEGER NOT NULL
  );
  `,
  // 2: outbox ids never reused (AUTOINCREMENT): the federation pump's cursor and the XEP-0359 origin-id
  // of a stanza are its id, and a plain rowid comes back once the highest row is gone.
  `
  CREATE TABLE outbox_v2 (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    stanza BLOB NOT NULL,
    queued_at INTEGER NOT NULL
  );
  INSERT INTO outbox_v2 (id, stanza, queued_at) SELECT id, stanza, queued_at FROM outbox ORDER BY id;
  DROP TABLE outbox;
  ALTER TABLE outbox_v2 RENAME TO outbox;
  `,
  // 3: the highest telemetry number routed per device, so that a replayed NON reading is refused across
  // message ids, deduplication windows, new sessions and restarts (docs/PROTOCOL.md §3.3).
  `
  ALTER TABLE sessions ADD COLUMN telemetry INTEGER NOT NULL DEFAULT 0;
  `,
  // 4: devices that may only connect over DTLS (issue 10). Devices of earlier releases keep plain CoAP.
  `
  ALTER TABLE devices ADD COLUMN dtls_only INTEGER NOT NULL DEFAULT 0;
  `,
];
