/** Reads the shared stanza corpus (JSONL with an `xml` field a line) for tools, benchmarks and tests. */
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export interface CorpusEntry {
  readonly xml: string;
  readonly xep?: number;
  readonly rfc?: number;
  readonly kind?: string;
  readonly example_index?: number;
  readonly stanza_index?: number;
}

/** `../shared/corpus` beside this checkout (present in CI too). */
export const CORPUS_DIR = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "shared", "corpus");

export function readJsonl(path: string): CorpusEntry[] {
  return readFileSync(path, "utf8")
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => JSON.parse(line) as CorpusEntry);
}

export function readCorpus(name: "visible" | "rfc"): CorpusEntry[] {
  return readJsonl(join(CORPUS_DIR, `${name}.jsonl`));
}
