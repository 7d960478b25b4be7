/**
 * Running a command's entry point in the test process (`runSessionBench(…)` and the like) and reading
 * what it printed.
 */
import { vi } from "vitest";

/**
 * Swallows everything written to process.stdout until `vi.restoreAllMocks()`, and gives it back as one
 * string: the JSON contract of a command is what it writes there.
 */
export function captureStdout(): { text(): string } {
  const chunks: string[] = [];
  vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
    chunks.push(typeof chunk === "string" ? chunk : Buffer.from(chunk).toString());
    return true;
  });
  return { text: () => chunks.join("") };
}
