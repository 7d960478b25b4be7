/**
 * What `cxmpp bench session`, `bench wake` and `bench federation` share: option parsing, the store
 * choice, rounding and the plain-text table of their reports. One copy, so that the three commands
 * word their usage errors and lay out their tables alike.
 */

/** A bad command-line option: the command prints the message and exits without running. */
export class UsageError extends Error {}

/** Parses an integer option `--name` (Commander hands over strings; numbers are accepted too). */
export function integer(
  name: string,
  value: string | number | undefined,
  fallback: number,
  min: number,
  max: number,
): number {
  if (value === undefined) return fallback;
  const n = typeof value === "number" ? value : Number(value.trim());
  if (!Number.isInteger(n) || n < min || n > max)
    throw new UsageError(`--${name} must be an integer from ${min} to ${max}, not '${value}'`);
  return n;
}

/** The gateway's state in a benchmark: in memory, or the SQLite store with durability `full` or `normal`. */
export type StoreKind = "memory" | "full" | "normal";
export const STORE_KINDS: readonly StoreKind[] = ["memory", "full", "normal"];

/** Parses `--store`; throws a UsageError naming the choices. */
export function storeKind(value: string | undefined, fallback: StoreKind = "memory"): StoreKind {
  const kind = (value ?? fallback).trim();
  if (!(STORE_KINDS as readonly string[]).includes(kind))
    throw new UsageError(`--store must be one of ${STORE_KINDS.join(", ")}, not '${value}'`);
  return kind as StoreKind;
}

/**
 * Node options for a benchmark's gateway process alone, from CXMPP_BENCH_GATEWAY_NODE_OPTIONS
 * (space-separated): `--cpu-prof --cpu-prof-dir=DIR`, `--perf-basic-prof` or `--trace-gc` reach the
 * gateway without the load processes, which NODE_OPTIONS cannot do (it refuses --cpu-prof, and would
 * reach every child).
 */
export function gatewayNodeOptions(): string[] {
  return (process.env.CXMPP_BENCH_GATEWAY_NODE_OPTIONS ?? "").split(" ").filter((a) => a !== "");
}

export const sleep = (ms: number): Promise<void> => new Promise((done) => setTimeout(done, ms));

export function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** The value at rank ⌊p × n⌋ of `xs` sorted (0 for none). */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return 0;
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0;
}

export function median(xs: readonly number[]): number {
  return percentile(xs, 0.5);
}

export const fmt = (x: number): string => x.toLocaleString("en-US");

/** A plain-text table: first column left-aligned, the others right-aligned. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    `  ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join("  ")}`.trimEnd();
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

/**
 * Runs one bench command to an exit code, never throwing: a bad option or a failure is printed as
 * `cxmpp bench COMMAND: message` on stderr. `exitCodes` lets a command tell them apart (bench
 * federation: 2 for bad options or missing software, 1 for a failed run).
 */
export async function runBenchCommand<C>(
  command: string,
  parse: () => C,
  run: (config: C) => Promise<number>,
  exitCodes: { readonly usage: number; failure(error: unknown): number } = { usage: 1, failure: () => 1 },
): Promise<number> {
  const fail = (error: unknown, code: number): number => {
    process.stderr.write(
      `cxmpp bench ${command}: ${error instanceof Error ? error.message : String(error)}\n`,
    );
    return code;
  };
  let config: C;
  try {
    config = parse();
  } catch (error) {
    return fail(error, error instanceof UsageError ? exitCodes.usage : exitCodes.failure(error));
  }
  try {
    return await run(config);
  } catch (error) {
    return fail(error, exitCodes.failure(error));
  }
}
