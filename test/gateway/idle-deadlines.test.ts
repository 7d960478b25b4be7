/**
 * The deadline heap behind the gateway's tick (gateway/session/deadlines.ts), and the tick's promise
 * that rests on it: sessions are visited when something changed or a deadline came, never all of them.
 */
import { describe, expect, it } from "vitest";
import { DeadlineHeap, type DeadlineItem } from "../../gateway/session/deadlines.js";
import { seededRandom } from "../../src/core/seeded-random.js";

interface Item extends DeadlineItem {
  readonly name: number;
}

const item = (name: number): Item => ({ name, deadlineSlot: -1 });

function drain(heap: DeadlineHeap<Item>, now: number): number[] {
  const out: number[] = [];
  for (let i = heap.popDue(now); i !== undefined; i = heap.popDue(now)) out.push(i.name);
  return out;
}

describe("DeadlineHeap", () => {
  it("pops what is due in deadline order, and nothing that is not", () => {
    const heap = new DeadlineHeap<Item>();
    const items = [5, 1, 4, 2, 3].map(item);
    for (const i of items) heap.set(i, i.name * 1000);
    expect(heap.size).toBe(5);
    expect(heap.earliest).toBe(1000);
    expect(drain(heap, 2999)).toEqual([1, 2]);
    expect(drain(heap, 3000)).toEqual([3]);
    expect(heap.size).toBe(2);
    expect(items[0]!.deadlineSlot).toBeGreaterThanOrEqual(0);
    expect(items[1]!.deadlineSlot).toBe(-1); // popped: out of the heap
  });

  it("moves, lowers only earlier, and deletes items in place", () => {
    const heap = new DeadlineHeap<Item>();
    const [a, b, c] = [item(1), item(2), item(3)];
    heap.set(a, 100);
    heap.set(b, 200);
    heap.set(c, 300);
    heap.set(a, 400); // later
    expect(heap.deadlineOf(a)).toBe(400);
    heap.lower(c, 500); // later: left where it is
    expect(heap.deadlineOf(c)).toBe(300);
    heap.lower(c, 50); // earlier: moved
    expect(heap.deadlineOf(c)).toBe(50);
    heap.delete(b);
    heap.delete(b); // twice: harmless
    expect(heap.deadlineOf(b)).toBeUndefined();
    expect(drain(heap, 1_000)).toEqual([3, 1]);
    expect(heap.size).toBe(0);
    expect(heap.earliest).toBe(Number.POSITIVE_INFINITY);
  });

  it("forEachDue sees exactly the due items without taking them", () => {
    const heap = new DeadlineHeap<Item>();
    for (let i = 0; i < 100; i++) heap.set(item(i), i);
    const seen: number[] = [];
    heap.forEachDue(9, (i) => seen.push(i.name));
    expect(seen.sort((x, y) => x - y)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(heap.size).toBe(100);
  });

  it("stays ordered under thousands of random sets, lowers and deletes (checked against a sort)", () => {
    const random = seededRandom(13);
    const heap = new DeadlineHeap<Item>();
    const items = Array.from({ length: 3_000 }, (_, i) => item(i));
    const truth = new Map<Item, number>();
    for (let step = 0; step < 20_000; step++) {
      const it = items[Math.floor(random() * items.length)]!;
      const at = Math.floor(random() * 1e6) + 1.7e12; // wall-clock instants, beyond small integers
      const op = random();
      if (op < 0.5) {
        heap.set(it, at);
        truth.set(it, at);
      } else if (op < 0.8) {
        heap.lower(it, at);
        const old = truth.get(it);
        truth.set(it, old === undefined ? at : Math.min(old, at));
      } else {
        heap.delete(it);
        truth.delete(it);
      }
    }
    expect(heap.size).toBe(truth.size);
    for (const [it, at] of truth) expect(heap.deadlineOf(it)).toBe(at);
    const popped: number[] = [];
    for (let i = heap.popDue(Number.POSITIVE_INFINITY); i; i = heap.popDue(Number.POSITIVE_INFINITY))
      popped.push(truth.get(i)!);
    expect(popped).toEqual([...truth.values()].sort((x, y) => x - y));
  });
});
