/**
 * A fake clock that is also a Scheduler: time moves only when a test says so, and due tasks run in
 * deadline order (then in the order they were scheduled), so loss tests are deterministic.
 */
import type { Cancellable, Clock, Random, Scheduler } from "../../src/core/interfaces.js";
import { seededRandom } from "./seeded-random.js";

interface Task {
  at: number;
  seq: number;
  run: () => void;
  cancelled: boolean;
}

export class FakeTime implements Clock, Scheduler {
  private time = 0;
  private seq = 0;
  private tasks: Task[] = [];

  now(): number {
    return this.time;
  }

  schedule(delayMs: number, run: () => void): Cancellable {
    const task: Task = { at: this.time + Math.max(0, delayMs), seq: this.seq++, run, cancelled: false };
    this.tasks.push(task);
    return {
      cancel: () => {
        task.cancelled = true;
      },
    };
  }

  /** Advances the clock by `ms`, running every task that falls due on the way. */
  advance(ms: number): void {
    const end = this.time + ms;
    this.runUntil(end);
    this.time = end;
  }

  /** Runs tasks until none is pending (or `limitMs` of fake time has passed). */
  runAll(limitMs = 10 * 60_000): void {
    this.runUntil(this.time + limitMs);
  }

  /** Runs due tasks in deadline order up to `end`; the clock stops at the last task run. */
  private runUntil(end: number): void {
    for (;;) {
      const due = this.nextDue(end);
      if (!due) return;
      this.time = due.at;
      due.cancelled = true;
      due.run();
    }
  }

  /** When the next pending task falls due, or undefined when none is pending. */
  nextDueAt(): number | undefined {
    let best: number | undefined;
    for (const t of this.tasks) if (!t.cancelled && (best === undefined || t.at < best)) best = t.at;
    return best;
  }

  get pending(): number {
    return this.tasks.filter((t) => !t.cancelled).length;
  }

  private nextDue(end: number): Task | undefined {
    this.tasks = this.tasks.filter((t) => !t.cancelled);
    let best: Task | undefined;
    for (const t of this.tasks) {
      if (t.at > end) continue;
      if (!best || t.at < best.at || (t.at === best.at && t.seq < best.seq)) best = t;
    }
    return best;
  }
}

export function fakeRandom(seed: number): Random {
  const next = seededRandom(seed);
  return { uint32: () => Math.floor(next() * 4_294_967_296) };
}

/**
 * Runs the fake clock until `p` settles: between due tasks the microtasks run, so async code (an await
 * per exchange or per block) takes its next step before time moves on.
 */
export async function drive<T>(time: FakeTime, p: Promise<T>, limitMs = 48 * 3600_000): Promise<T> {
  let done = false;
  p.then(
    () => {
      done = true;
    },
    () => {
      done = true;
    },
  );
  const end = time.now() + limitMs;
  for (;;) {
    await new Promise((r) => setImmediate(r));
    if (done) return p;
    const at = time.nextDueAt();
    if (at === undefined || at > end) return p;
    time.advance(at - time.now());
  }
}
