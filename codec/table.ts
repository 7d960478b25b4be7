/**
 * The session string table (FORMAT.md §6), QPACK-style (RFC 9204 §2.1.2 "blocked references" avoided):
 * an encoder references an entry only after the peer acknowledged the frame that inserted it, or within
 * the frame that inserts it. Indices are assigned by the encoder, carried in the frame (base + order), and
 * never reused within a session, so a lost, duplicated or reordered frame can never change what a later
 * frame means.
 */
import { CodecError } from "./errors.js";
import type { CodecLimits } from "./limits.js";

const utf8 = new TextEncoder();

/** Encoder side: assigns indices, tracks which ones the peer has acknowledged. */
export class EncoderTable {
  /** Next index to assign; indices below it were assigned (some maybe lost). */
  private next: number;
  private bytes = 0;
  /** Every acknowledged string and the index the peer holds it at. */
  private readonly acked = new Map<string, number>();
  /** Index → string for inserts not yet acknowledged. */
  private readonly pending = new Map<number, string>();

  constructor(
    private readonly limits: CodecLimits,
    aliases: readonly string[] = [],
  ) {
    aliases.forEach((alias, i) => {
      if (!this.acked.has(alias)) this.acked.set(alias, i);
    });
    this.next = aliases.length;
  }

  /** The acknowledged index of `value`, if any. */
  lookup(value: string): number | undefined {
    return this.acked.get(value);
  }

  /** The index the next insert gets. */
  get nextIndex(): number {
    return this.next;
  }

  /** True when an entry of `value` still fits the limits the decoder enforces. */
  canInsert(value: string): boolean {
    return (
      this.next < this.limits.maxTableEntries &&
      this.bytes + utf8.encode(value).length <= this.limits.maxTableBytes
    );
  }

  /** Assigns the next index to `value` (the caller writes the insert into the frame). */
  insert(value: string): number {
    const index = this.next++;
    this.bytes += utf8.encode(value).length;
    this.pending.set(index, value);
    return index;
  }

  /** The peer decoded the frame that carried these inserts: they may be referenced from now on. */
  acknowledge(indices: Iterable<number>): void {
    for (const index of indices) {
      const value = this.pending.get(index);
      if (value === undefined) continue;
      this.pending.delete(index);
      if (!this.acked.has(value)) this.acked.set(value, index);
    }
  }

  /** Entries assigned but not acknowledged (inserts in frames that are in flight or lost). */
  get pendingCount(): number {
    return this.pending.size;
  }
}

/** Decoder side: holds what the peer's frames inserted, within the same limits. */
export class DecoderTable {
  private readonly entries = new Map<number, string>();
  private bytes = 0;

  constructor(
    private readonly limits: CodecLimits,
    aliases: readonly string[] = [],
  ) {
    aliases.forEach((alias, i) => void this.entries.set(i, alias));
  }

  get(index: number, offset: number): string {
    const value = this.entries.get(index);
    if (value === undefined) throw new CodecError("UNKNOWN_REF", offset, `table entry ${index} is not held`);
    return value;
  }

  has(index: number): boolean {
    return this.entries.has(index);
  }

  /** Stores an insert; the same index with the same string again is a harmless repeat. */
  insert(index: number, value: string, offset: number): void {
    const existing = this.entries.get(index);
    if (existing !== undefined) {
      if (existing !== value)
        throw new CodecError("TABLE_CONFLICT", offset, `table entry ${index} holds another string`);
      return;
    }
    const size = utf8.encode(value).length;
    if (index >= this.limits.maxTableEntries || this.bytes + size > this.limits.maxTableBytes) {
      throw new CodecError("TABLE_FULL", offset, `insert at ${index} exceeds the table limits`);
    }
    this.entries.set(index, value);
    this.bytes += size;
  }

  /** Removes entries (used to undo the inserts of a frame that failed to decode). */
  remove(indices: readonly number[]): void {
    for (const index of indices) {
      const value = this.entries.get(index);
      if (value === undefined) continue;
      this.entries.delete(index);
      this.bytes -= utf8.encode(value).length;
    }
  }

  get size(): number {
    return this.entries.size;
  }
}
