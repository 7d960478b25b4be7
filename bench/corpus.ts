/** Reads the stanza corpus (JSONL with an `xml` field a line) for tools, benchmarks and tests. */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { packageRoot } from "../gateway/version.js";

export interface CorpusEntry {
  readonly xml: string;
  readonly xep?: number;
  readonly rfc?: number;
  readonly kind?: string;
  readonly example_index?: number;
  readonly stanza_index?: number;
}

/** `corpus/` of this package (provenance and licences in corpus/README.md). */
export const CORPUS_DIR = join(packageRoot(), "corpus");

export function readJsonl(path: string): CorpusEntry[] {
  return readFileSync(path, "utf8")
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => JSON.parse(line) as CorpusEntry);
}

export function readCorpus(name: "visible" | "rfc"): CorpusEntry[] {
  return readJsonl(join(CORPUS_DIR, `${name}.jsonl`));
}
