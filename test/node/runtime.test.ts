/** The Node.js runtime adapters: monotonic clock, setTimeout scheduler, crypto randomness, JSON logger. */
import { describe, expect, it } from "vitest";
import { consoleLogger, cryptoRandom, systemClock, timerScheduler } from "../../src/node/index.js";

describe("Node runtime adapters", () => {
  it("systemClock is monotonic milliseconds", async () => {
    const a = systemClock.now();
    await new Promise((r) => setTimeout(r, 20));
    const b = systemClock.now();
    expect(b - a).toBeGreaterThanOrEqual(15);
    expect(b - a).toBeLessThan(1_000);
  });

  it("timerScheduler runs tasks after their delay, in order, and cancel prevents a run", async () => {
    const s = timerScheduler({ unref: true });
    const ran: string[] = [];
    const start = systemClock.now();
    let at = 0;
    const done = new Promise<void>((resolve) => {
      s.schedule(30, () => {
        ran.push("b");
        at = systemClock.now() - start;
        resolve();
      });
    });
    s.schedule(5, () => ran.push("a"));
    s.schedule(10, () => ran.push("cancelled")).cancel();
    s.schedule(-5, () => ran.push("now"));
    await done;
    expect(ran).toEqual(["now", "a", "b"]);
    expect(at).toBeGreaterThanOrEqual(28);
  });

  it("cryptoRandom gives uniform 32-bit integers", () => {
    const values = Array.from({ length: 4_000 }, () => cryptoRandom.uint32());
    for (const v of values) {
      expect(Number.isInteger(v)).toBe(true);
      expect(v).toBeGreaterThanOrEqual(0);
      expect(v).toBeLessThan(2 ** 32);
    }
    expect(new Set(values).size).toBeGreaterThan(3_990);
    const high = values.filter((v) => v >= 2 ** 31).length;
    expect(high).toBeGreaterThan(1_800);
    expect(high).toBeLessThan(2_200);
  });

  it("consoleLogger writes one JSON object per line at or above its level", () => {
    const lines: string[] = [];
    const log = consoleLogger("info", { write: (l) => lines.push(l), base: { component: "t" } });
    log.log("debug", "hidden");
    log.log("info", "coap.started", { port: 5683, token: Uint8Array.of(0xab, 1), n: 10n });
    log.log("error", "boom", { error: new Error("bad") });
    expect(lines).toHaveLength(2);
    expect(lines.every((l) => l.endsWith("\n") && !l.slice(0, -1).includes("\n"))).toBe(true);
    const first = JSON.parse(lines[0]!);
    expect(first).toMatchObject({
      level: "info",
      event: "coap.started",
      component: "t",
      port: 5683,
      token: "ab01",
      n: "10",
    });
    expect(Number.isNaN(Date.parse(first.time))).toBe(false);
    expect(JSON.parse(lines[1]!)).toMatchObject({ level: "error", event: "boom", error: { message: "bad" } });
  });
});
