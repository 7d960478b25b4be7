/** The single-timer queue: order, cancellation, and one host timer however many deadlines. */
import { describe, expect, it } from "vitest";
import { TimerQueue } from "../../src/core/timer-queue.js";
import { FakeTime } from "../kit/fake-time.js";

describe("TimerQueue", () => {
  it("runs tasks in deadline order, ties in insertion order, and skips cancelled ones", () => {
    const time = new FakeTime();
    const q = new TimerQueue(time, time);
    const ran: string[] = [];
    q.after(30, () => ran.push("c"));
    q.after(10, () => ran.push("a"));
    const b = q.after(20, () => ran.push("b"));
    q.after(10, () => ran.push("a2"));
    b.cancel();
    expect(q.size).toBe(3);
    time.advance(25);
    expect(ran).toEqual(["a", "a2"]);
    time.advance(10);
    expect(ran).toEqual(["a", "a2", "c"]);
    expect(q.size).toBe(0);
  });

  it("holds one host timer for a thousand deadlines", () => {
    const time = new FakeTime();
    const q = new TimerQueue(time, time);
    let count = 0;
    for (let i = 0; i < 1000; i++) q.after(1000 - i, () => count++);
    expect(time.pending).toBe(1);
    time.advance(500);
    expect(count).toBe(500);
    expect(time.pending).toBe(1);
    time.advance(500);
    expect(count).toBe(1000);
    expect(time.pending).toBe(0);
  });

  it("a task scheduled from inside a task runs at its own deadline", () => {
    const time = new FakeTime();
    const q = new TimerQueue(time, time);
    const at: number[] = [];
    q.after(10, () => q.after(5, () => at.push(time.now())));
    time.advance(100);
    expect(at).toEqual([15]);
  });
});
