/**
 * One timer for many deadlines ("one scheduler, not a timer per message"): deadlines live
 * in a binary min-heap; only the earliest is armed with the host Scheduler. Retransmissions of a
 * thousand exchanges therefore cost one host timer, and cancelling is O(1) (lazy deletion).
 */
import type { Cancellable, Clock, Scheduler } from "./interfaces.js";

interface Entry {
  at: number;
  seq: number;
  task: () => void;
  cancelled: boolean;
}

export class TimerQueue {
  private readonly heap: Entry[] = [];
  private armed: { at: number; handle: Cancellable } | undefined;
  private seq = 0;
  private live = 0;

  constructor(
    private readonly clock: Clock,
    private readonly scheduler: Scheduler,
  ) {}

  /** Runs `task` at `delayMs` from now. Tasks due at the same time run in the order they were added. */
  after(delayMs: number, task: () => void): Cancellable {
    const entry: Entry = {
      at: this.clock.now() + Math.max(0, delayMs),
      seq: this.seq++,
      task,
      cancelled: false,
    };
    this.push(entry);
    this.live++;
    this.arm();
    return {
      cancel: () => {
        if (entry.cancelled) return;
        entry.cancelled = true;
        this.live--;
      },
    };
  }

  /** Pending (not cancelled, not yet run) tasks. */
  get size(): number {
    return this.live;
  }

  /** Cancels everything (endpoint shutdown). */
  clear(): void {
    for (const e of this.heap) e.cancelled = true;
    this.heap.length = 0;
    this.live = 0;
    this.armed?.handle.cancel();
    this.armed = undefined;
  }

  private arm(): void {
    this.dropCancelled();
    const first = this.heap[0];
    if (!first) {
      this.armed?.handle.cancel();
      this.armed = undefined;
      return;
    }
    if (this.armed && this.armed.at <= first.at) return;
    this.armed?.handle.cancel();
    const at = first.at;
    this.armed = {
      at,
      handle: this.scheduler.schedule(Math.max(0, at - this.clock.now()), () => this.fire()),
    };
  }

  private fire(): void {
    this.armed = undefined;
    const now = this.clock.now();
    for (;;) {
      this.dropCancelled();
      const first = this.heap[0];
      if (!first || first.at > now) break;
      this.pop();
      first.cancelled = true;
      this.live--;
      first.task();
    }
    this.arm();
  }

  private dropCancelled(): void {
    while (this.heap.length > 0 && this.heap[0]!.cancelled) this.pop();
  }

  private less(a: Entry, b: Entry): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  private push(e: Entry): void {
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  private pop(): void {
    const h = this.heap;
    const last = h.pop()!;
    if (h.length === 0) return;
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && this.less(h[l]!, h[m]!)) m = l;
      if (r < h.length && this.less(h[r]!, h[m]!)) m = r;
      if (m === i) break;
      [h[i], h[m]] = [h[m]!, h[i]!];
      i = m;
    }
  }
}
