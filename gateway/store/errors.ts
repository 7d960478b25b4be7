/**
 * The store's error, in a module of its own so that the session layer can recognise it with
 * `instanceof` without loading SQLite. Operator-facing: the message names the store, what was being
 * done and (when known) the likely cause (database.ts `storeError`).
 */

export class StoreError extends Error {
  override readonly name: string = "StoreError";
  constructor(
    message: string,
    /** The SQLite error code (SQLITE_FULL, SQLITE_READONLY, …) when there is one. */
    readonly code?: string,
  ) {
    super(message);
  }
}
