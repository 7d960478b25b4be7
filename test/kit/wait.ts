/** Waiting in tests: a pause, and polling a condition until it holds or a deadline passes. */

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `what` every 10 ms; rejects with `describe()` after `timeoutMs`. */
export async function until(
  what: () => boolean,
  timeoutMs = 10_000,
  describe: () => string = () => "condition",
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!what()) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${describe()}`);
    await sleep(10);
  }
}
