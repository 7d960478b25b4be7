/**
 * Memory after a full collection, for the benchmarks and the tests that bound memory under floods:
 * V8's gc() exposed at run time when the process was not started with --expose-gc (vitest's workers
 * are not), then the JavaScript heap plus the ArrayBuffers outside it (kept payloads are Uint8Arrays).
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

export const MiB = 1024 * 1024;

let gcFunction: (() => void) | undefined;

/** Two full collections (the second frees what the first's finalizers released). */
export function fullGc(): void {
  if (!gcFunction) {
    const exposed = (globalThis as { gc?: () => void }).gc;
    if (exposed) gcFunction = exposed;
    else {
      setFlagsFromString("--expose-gc");
      gcFunction = runInNewContext("gc") as () => void;
    }
  }
  gcFunction();
  gcFunction();
}

/** heapUsed + arrayBuffers after fullGc(), in bytes. */
export function heapAfterGc(): number {
  fullGc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}
