/**
 * What the gateway's session state writes to durable storage, and reads back after a restart
 * (docs/PROTOCOL.md §4). The session code calls it; gateway/store implements it on SQLite, and
 * `memoryJournal` keeps nothing (tests of one layer, the in-memory benchmark).
 */
import type { TableEntry, XElement } from "../../codec/index.js";
import type { MailItem } from "./mailbox.js";

/** A session's header: everything but the tables and the mailbox. */
export interface SessionHeader {
  readonly identity: string;
  readonly id: number;
  readonly resume: Uint8Array;
  readonly peer: string | undefined;
  readonly h: number;
  readonly delivered: number;
  readonly nextDseq: number;
  readonly wake: number;
  readonly lastSeen: number;
  /** The highest telemetry number routed for this device (never reset by a connect). */
  readonly telemetry: number;
}

export interface SavedSession extends SessionHeader {
  /** Uplink frames of the current codec context that inserted entries, in seq order. */
  readonly uplinkFrames: readonly Uint8Array[];
  /** Downlink table entries in index order. */
  readonly downlinkEntries: readonly { index: number; entry: TableEntry; acknowledged: boolean }[];
  /** In flight (by seq), then queued. */
  readonly mailbox: readonly MailItem[];
}

export interface SessionJournal {
  /** Every saved session (at start). */
  load(): SavedSession[];
  /** The next free session id. */
  nextSessionId(): number;
  saveHeader(header: SessionHeader): void;
  /** A connect started new codec contexts: the saved tables are obsolete. */
  resetCodec(identity: string): void;
  uplinkFrame(identity: string, seq: number, frame: Uint8Array): void;
  downlinkEntries(identity: string, entries: readonly { index: number; entry: TableEntry }[]): void;
  acknowledgeEntries(identity: string, indices: readonly number[]): void;
  /** Stores a new queued item; returns its id. */
  mailboxAdd(identity: string, item: Omit<MailItem, "id">, stanza: Uint8Array): number;
  /** An item took off (or was renumbered by a reconnect). */
  mailboxFly(item: MailItem): void;
  mailboxRemove(ids: readonly number[]): void;
  /** A stanza for another domain; returns its id. */
  outboxAdd(stanza: XElement, now: number): number;
  /** Runs `fn` as part of the current write batch. */
  run<T>(fn: () => T): T;
  /** Resolves when everything written so far is durable. */
  committed(): Promise<void>;
  /** The same, for a node's request waiting for its answer (the store may gather a backlog's into one commit). */
  answered(): Promise<void>;
  readonly pending: boolean;
}

/** Keeps nothing: ids from a counter, writes ignored, every write at once "durable". */
export function memoryJournal(): SessionJournal {
  let ids = 1;
  let sessionIds = 1;
  return {
    load: () => [],
    nextSessionId: () => sessionIds++,
    saveHeader: () => {},
    resetCodec: () => {},
    uplinkFrame: () => {},
    downlinkEntries: () => {},
    acknowledgeEntries: () => {},
    mailboxAdd: () => ids++,
    mailboxFly: () => {},
    mailboxRemove: () => {},
    outboxAdd: () => ids++,
    run: (fn) => fn(),
    committed: () => Promise.resolve(),
    answered: () => Promise.resolve(),
    pending: false,
  };
}
