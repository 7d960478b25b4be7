/** Wall-clock timings of the steps of a test file, printed together at its end. */
export class Timings {
  readonly entries: Array<[string, number]> = [];

  /** Runs `run`, noting how long it took as `what` (failed or not). */
  async timed<T>(what: string, run: () => Promise<T>): Promise<T> {
    const t0 = performance.now();
    try {
      return await run();
    } finally {
      this.entries.push([what, performance.now() - t0]);
    }
  }

  /** `title`, then a line per step: milliseconds, right-aligned, and what. */
  report(title: string): string {
    return `${title}:\n${this.entries.map(([what, ms]) => `  ${ms.toFixed(0).padStart(6)}  ${what}`).join("\n")}`;
  }
}
