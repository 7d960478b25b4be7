/** A test file's scratch space: a temporary directory, and what to undo once all its tests ran. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll } from "vitest";

export interface Scratch {
  /** A new directory under the system's temporary directory. */
  readonly root: string;
  /** Run after all the file's tests, last pushed first; then `root` is removed. */
  readonly cleanups: Array<() => unknown>;
}

/** Makes the directory (`prefix` and a random suffix) and registers the afterAll that undoes it all. */
export function scratch(prefix: string): Scratch {
  const root = mkdtempSync(join(tmpdir(), prefix));
  const cleanups: Array<() => unknown> = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c();
    rmSync(root, { recursive: true, force: true });
  });
  return { root, cleanups };
}
