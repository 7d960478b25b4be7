/**
 * Imports point one way (BRIEF.md): test → gateway → src/node → src/core → codec → (cbor-x).
 * codec/ and src/core/ are the portable tiny-node core: no `node:` modules, no Buffer.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, resolve, sep } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = resolve(import.meta.dirname, "..");
const LAYERS = ["codec", "src/core", "src/node", "gateway"] as const;
type Layer = (typeof LAYERS)[number];

/** What each layer may import besides itself. */
const ALLOWED: Record<Layer, { layers: Layer[]; packages: RegExp }> = {
  codec: { layers: [], packages: /^cbor-x$/ },
  "src/core": { layers: ["codec"], packages: /^$/ },
  "src/node": { layers: ["codec", "src/core"], packages: /^(node:|[a-z@])/ },
  gateway: { layers: ["codec", "src/core", "src/node"], packages: /^(node:|[a-z@])/ },
};

function files(dir: string): string[] {
  let out: string[] = [];
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of entries) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out = out.concat(files(path));
    else if (path.endsWith(".ts")) out.push(path);
  }
  return out;
}

function layerOf(path: string): Layer | undefined {
  const rel = relative(ROOT, path).split(sep).join("/");
  return [...LAYERS].reverse().find((l) => rel === l || rel.startsWith(`${l}/`));
}

const IMPORT_RE =
  /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g;

describe("import direction", () => {
  for (const layer of LAYERS) {
    it(`${layer} imports only what lies below it`, () => {
      const problems: string[] = [];
      for (const file of files(join(ROOT, layer))) {
        const text = readFileSync(file, "utf8");
        for (const m of text.matchAll(IMPORT_RE)) {
          const spec = (m[1] ?? m[2])!;
          if (spec.startsWith(".")) {
            const target = layerOf(resolve(join(file, ".."), spec));
            if (target !== layer && !(target && ALLOWED[layer].layers.includes(target))) {
              problems.push(`${relative(ROOT, file)} → ${spec}`);
            }
          } else if (!ALLOWED[layer].packages.test(spec)) {
            problems.push(`${relative(ROOT, file)} → ${spec}`);
          }
        }
        if (
          (layer === "codec" || layer === "src/core") &&
          /\bBuffer\b/.test(text.replace(/\/\/.*|\/\*[\s\S]*?\*\//g, ""))
        ) {
          problems.push(`${relative(ROOT, file)} uses Buffer`);
        }
      }
      expect(problems).toEqual([]);
    });
  }

  it("the check itself catches a crossing import", () => {
    const sample = `import { x } from "../../gateway/thing.js";\nimport { readFileSync } from "node:fs";`;
    const specs = [...sample.matchAll(IMPORT_RE)].map((m) => m[1] ?? m[2]);
    expect(specs).toEqual(["../../gateway/thing.js", "node:fs"]);
    expect(ALLOWED.codec.packages.test("node:fs")).toBe(false);
    expect(layerOf(join(ROOT, "gateway/x.ts"))).toBe("gateway");
  });
});
