/**
 * When each session next needs the gateway's attention, as a binary min-heap of deadlines: the tick
 * takes only what is due instead of visiting every session every second, so a million idle sessions
 * cost no CPU between their events (issue 13 item 4). A deadline is a lower bound: the owner checks
 * what is really due when it pops, and may leave a deadline earlier than needed (moving it later on
 * every exchange would cost a sift for nothing; popping it early costs one check).
 *
 * The keys live in a Float64Array beside the items, so a deadline (a wall-clock instant in ms, beyond
 * V8's small integers) costs 8 bytes instead of a boxed number per session; each item keeps its own
 * position (`deadlineSlot`) so that moving or removing it is O(log n) without a search.
 */

/** What the heap holds: its position in the heap (-1: not in it), kept by the heap. */
export interface DeadlineItem {
  deadlineSlot: number;
}

const INITIAL_CAPACITY = 64;

export class DeadlineHeap<T extends DeadlineItem> {
  private items: T[] = [];
  private keys = new Float64Array(INITIAL_CAPACITY);

  get size(): number {
    return this.items.length;
  }

  /** The earliest deadline, or Infinity when empty. */
  get earliest(): number {
    return this.items.length > 0 ? this.keys[0]! : Number.POSITIVE_INFINITY;
  }

  /** The deadline `item` is held at, or undefined. */
  deadlineOf(item: T): number | undefined {
    return item.deadlineSlot >= 0 ? this.keys[item.deadlineSlot] : undefined;
  }

  /** Sets `item`'s deadline to `at` (inserted, or moved earlier or later). */
  set(item: T, at: number): void {
    const i = item.deadlineSlot;
    if (i < 0) {
      const n = this.items.length;
      if (n === this.keys.length) {
        const grown = new Float64Array(n * 2);
        grown.set(this.keys);
        this.keys = grown;
      }
      this.items.push(item);
      this.place(item, at, n);
      this.up(n);
      return;
    }
    const old = this.keys[i]!;
    this.keys[i] = at;
    if (at < old) this.up(i);
    else if (at > old) this.down(i);
  }

  /** Moves `item` earlier only: a later deadline is left as it is (see the file comment). */
  lower(item: T, at: number): void {
    const i = item.deadlineSlot;
    if (i < 0 || at < this.keys[i]!) this.set(item, at);
  }

  /** Takes `item` out, if it is in. */
  delete(item: T): void {
    const i = item.deadlineSlot;
    if (i < 0) return;
    item.deadlineSlot = -1;
    const last = this.items.pop()!;
    const lastKey = this.keys[this.items.length]!;
    if (last === item) return;
    this.place(last, lastKey, i);
    this.up(i);
    this.down(last.deadlineSlot);
  }

  /** Takes the earliest item if its deadline is at or before `now`. */
  popDue(now: number): T | undefined {
    if (this.items.length === 0 || this.keys[0]! > now) return undefined;
    const top = this.items[0]!;
    this.delete(top);
    return top;
  }

  /** Every item due at `now`, without taking them (for a read-only look, e.g. metrics). */
  forEachDue(now: number, each: (item: T) => void): void {
    const stack: number[] = [];
    if (this.items.length > 0) stack.push(0);
    while (stack.length > 0) {
      const i = stack.pop()!;
      if (this.keys[i]! > now) continue;
      each(this.items[i]!);
      const l = 2 * i + 1;
      if (l < this.items.length) stack.push(l);
      if (l + 1 < this.items.length) stack.push(l + 1);
    }
  }

  /** Empties the heap (every item's slot is reset). */
  clear(): void {
    for (const item of this.items) item.deadlineSlot = -1;
    this.items = [];
    this.keys = new Float64Array(INITIAL_CAPACITY);
  }

  private place(item: T, key: number, i: number): void {
    this.items[i] = item;
    this.keys[i] = key;
    item.deadlineSlot = i;
  }

  private up(i: number): void {
    const item = this.items[i]!;
    const key = this.keys[i]!;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.keys[parent]! <= key) break;
      this.place(this.items[parent]!, this.keys[parent]!, i);
      i = parent;
    }
    this.place(item, key, i);
  }

  private down(i: number): void {
    const n = this.items.length;
    const item = this.items[i]!;
    const key = this.keys[i]!;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && this.keys[r]! < this.keys[l]! ? r : l;
      if (this.keys[c]! >= key) break;
      this.place(this.items[c]!, this.keys[c]!, i);
      i = c;
    }
    this.place(item, key, i);
  }
}
