/**
 * The repository stands alone: nothing in it refers to files outside it (design notes or data that sat
 * beside the checkout where it was first written), the documents the code cites exist, and the corpus
 * the tests and benchmarks read is here, unchanged (corpus/README.md).
 */
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, resolve, sep } from "node:path";
import { describe, expect, it } from "vitest";
import { CORPUS_DIR, readCorpus } from "../bench/corpus.js";

const ROOT = resolve(import.meta.dirname, "..");
const SKIP = new Set(["node_modules", "dist", ".git", "bench-results", "cxmpp-data"]);
const TEXT = /\.(ts|js|mjs|cjs|json|md|py|lua|sh|service|ya?ml|txt)$|^run$/;

function walk(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    if (SKIP.has(name)) continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path, out);
    else if (TEXT.test(name) && name !== "package-lock.json") out.push(path);
  }
  return out;
}

const rel = (path: string) => relative(ROOT, path).split(sep).join("/");
const FILES = walk(ROOT).filter((f) => !rel(f).startsWith("corpus/"));
// Built from parts, so that this file does not match itself.
const OUTSIDE = new RegExp(
  ["\\.\\./sha" + "red", "BRI" + "EF\\.md", "PEE" + "RS\\.md", "STY" + "LE\\.md"].join("|"),
);

describe("the repository stands alone", () => {
  it("scans the whole tree", () => {
    expect(FILES.map(rel)).toEqual(
      expect.arrayContaining(["README.md", "gateway/cli/main.ts", "package.json"]),
    );
  });

  it("no code, test, script, comment or document refers to files outside it", () => {
    const hits: string[] = [];
    for (const file of FILES) {
      readFileSync(file, "utf8")
        .split("\n")
        .forEach((line, i) => {
          if (OUTSIDE.test(line)) hits.push(`${rel(file)}:${i + 1}: ${line.trim()}`);
        });
    }
    expect(hits).toEqual([]);
  });

  it("every docs/*.md and corpus/ file that the tree cites exists", () => {
    const missing = new Set<string>();
    for (const file of FILES) {
      for (const m of readFileSync(file, "utf8").matchAll(
        /\b((?:docs\/[A-Z][A-Z_]*\.md)|(?:corpus\/[\w.-]+\.(?:jsonl|csv|md)))/g,
      )) {
        if (!existsSync(join(ROOT, m[1]!))) missing.add(`${rel(file)} → ${m[1]}`);
      }
    }
    expect([...missing]).toEqual([]);
  });

  it("the corpus is in the repository, each visible stanza matching its recorded sha1", () => {
    expect(rel(CORPUS_DIR)).toBe("corpus");
    const visible = readCorpus("visible") as ReturnType<typeof readCorpus> & { sha1?: string }[];
    expect(visible.length).toBe(2468);
    expect(readCorpus("rfc").length).toBe(257);
    const bad = visible.filter(
      (e) =>
        createHash("sha1")
          .update((e as { xml: string }).xml)
          .digest("hex") !== (e as { sha1?: string }).sha1,
    );
    expect(bad.length).toBe(0);
    const anchors = readFileSync(join(CORPUS_DIR, "anchors-visible.csv"), "utf8").trim().split("\n");
    expect(anchors.length - 1).toBe(visible.length); // a header, then one row per visible stanza
  });
});
