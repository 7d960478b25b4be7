/**
 * Group commit: every write made while handling the datagrams of one event-loop turn goes into one
 * transaction, committed once the turn is over; each response waits for that commit. "Acked means
 * stored" then costs one fsync per turn instead of one per request (docs/PROTOCOL.md §4).
 */
import { type Db, storeError } from "./database.js";

export type CommitScheduler = (commit: () => void) => void;

/**
 * Requests that make a full event-loop turn: libuv reads at most 32 datagrams from a socket per poll
 * (uv__udp_io), so a turn that brought this many most likely left more waiting in the socket.
 */
const FULL_TURN = 32;
/** Turns a batch waits at most for the next full turn before it commits. */
const MAX_WAIT_TURNS = 2;

/** One promise for every request of a batch, settled by its commit. */
interface BatchOutcome {
  readonly promise: Promise<void>;
  resolve(): void;
  reject(error: Error): void;
}

function outcome(): BatchOutcome {
  let resolve!: () => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<void>((ok, fail) => {
    resolve = ok;
    reject = fail;
  });
  // Nobody may be waiting (a batch opened by the tick): a failure is then reported by onFailure alone.
  promise.catch(() => {});
  return { promise, resolve, reject };
}

export class WriteBatch {
  private open = false;
  /** The open batch's outcome, made when the first request asks for it. */
  private waiting: BatchOutcome | undefined;
  private failure: Error | undefined;
  /** Requests waiting for this batch that came since its commit was last scheduled, and turns it waited. */
  private joined = 0;
  private waited = 0;
  /**
   * BEGIN and COMMIT prepared once: `exec` parses its SQL on every call, and a batch begins and commits
   * once per event-loop turn, up to once per request on a quiet gateway.
   */
  private readonly begin;
  private readonly end;

  constructor(
    private readonly db: Db,
    private readonly path: string,
    private readonly schedule: CommitScheduler = (commit) => setImmediate(commit),
  ) {
    this.begin = db.prepare("BEGIN IMMEDIATE");
    this.end = db.prepare("COMMIT");
  }

  /** Runs `fn` inside the open transaction (opening one if needed). A failure spoils the whole batch. */
  run<T>(fn: () => T): T {
    if (this.failure) throw this.failure;
    if (!this.open) {
      try {
        this.begin.run();
      } catch (error) {
        this.lastError = storeError(this.path, "beginning a transaction", error);
        throw this.lastError;
      }
      this.open = true;
      this.schedule(() => this.due());
      try {
        for (const hook of this.openHooks) hook();
      } catch (error) {
        this.failure = storeError(this.path, "writing", error);
        throw this.failure;
      }
    }
    try {
      return fn();
    } catch (error) {
      this.failure = storeError(this.path, "writing", error);
      throw this.failure;
    }
  }

  get pending(): boolean {
    return this.open;
  }

  /**
   * Resolves when everything written so far is committed (at once when nothing is open). Every caller
   * in one batch gets the same promise: a request costs no promise and no waiter of its own.
   */
  committed(): Promise<void> {
    if (!this.open) return Promise.resolve();
    this.waiting ??= outcome();
    return this.waiting.promise;
  }

  /**
   * As committed(), for a node's request waiting for its answer: these count towards a full turn. Other
   * waits (stanzas from the XMPP server, which a TCP read brings by the dozen, pushes) never hold a
   * commit back: measured, waiting for them made the federation's downlink dearer.
   */
  answered(): Promise<void> {
    if (this.open) this.joined++;
    return this.committed();
  }

  /**
   * The scheduled commit. Under a backlog (the turn was full: the socket still holds requests) it waits
   * a turn or two, so that one COMMIT, and one fsync with `full`, serves up to three turns' requests
   * instead of one: at 100 nodes and more batches came out at about 30 requests, libuv's 32 a turn.
   * Nothing is answered before the commit; a turn that is not full commits at once, as before.
   */
  private due(): void {
    if (this.open && !this.failure && this.joined >= FULL_TURN && this.waited < MAX_WAIT_TURNS) {
      this.joined = 0;
      this.waited++;
      this.schedule(() => this.due());
      return;
    }
    this.commit();
  }

  /** Commits now (shutdown, tests). */
  flush(): void {
    if (this.open) this.commit();
  }

  private commit(): void {
    if (!this.open) return;
    const waiting = this.waiting;
    this.waiting = undefined;
    this.open = false;
    this.joined = 0;
    this.waited = 0;
    let error = this.failure;
    if (!error) {
      try {
        for (const hook of this.closeHooks) hook();
      } catch (e) {
        error = storeError(this.path, "writing", e);
      }
    }
    if (!error) {
      try {
        this.end.run();
      } catch (e) {
        error = storeError(this.path, "committing", e);
      }
    }
    if (error) {
      try {
        if (this.db.inTransaction) this.db.exec("ROLLBACK");
      } catch {
        // The rollback failing changes nothing: SQLite rolls back an unfinished transaction itself.
      }
      this.failure = undefined;
      this.lastError = error;
      for (const hook of this.rollbackHooks) hook();
      this.onFailure?.(error);
      waiting?.reject(error);
    } else {
      this.lastError = undefined;
      waiting?.resolve();
    }
  }

  /**
   * The error of the last batch if it failed (or could not begin); undefined once a batch commits
   * again. The gateway's /healthz reads it: acked means stored, so a store that fails is unhealthy.
   */
  lastError: Error | undefined;

  private readonly rollbackHooks: (() => void)[] = [];
  private readonly openHooks: (() => void)[] = [];
  private readonly closeHooks: (() => void)[] = [];

  /** Calls `hook` inside each new transaction, before its first write (writes that can wait for one). */
  afterOpen(hook: () => void): void {
    this.openHooks.push(hook);
  }

  /**
   * Calls `hook` inside each transaction just before its COMMIT: writes kept in memory until then (the
   * last of several to one row, a row inserted and deleted in the same batch) are made once. A hook
   * that throws fails the batch as a failed write would.
   */
  beforeCommit(hook: () => void): void {
    this.closeHooks.push(hook);
  }

  /** Calls `hook` whenever a batch is rolled back (before onFailure): caches of what it wrote are void. */
  afterRollback(hook: () => void): void {
    this.rollbackHooks.push(hook);
  }

  /** Called once per failed batch, before its waiters hear of it (the gateway reloads its state). */
  onFailure: ((error: Error) => void) | undefined;
}
