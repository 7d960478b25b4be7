/**
 * Imports point one way (docs/ARCHITECTURE.md):
 * test → bench → examples → gateway → src/node → src/tiny → src/dtls → src/core → codec → (cbor-x).
 * codec/, src/core/ and src/dtls/ are the portable tiny-node core: no `node:` modules, no Buffer. The
 * CoAP core never imports DTLS: DTLS is a transport beneath it. The product
 * (gateway/ and below) never loads benchmarks or examples, except through the command line's dynamic
 * `import()` of the one command that runs them.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, resolve, sep } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = resolve(import.meta.dirname, "..");
const LAYERS = [
  "codec",
  "src/core",
  "src/dtls",
  "src/tiny",
  "src/node",
  "gateway",
  "examples",
  "bench",
  "tools",
] as const;
type Layer = (typeof LAYERS)[number];

/** What each layer may import besides itself. */
/** node: modules and the production dependencies of package.json (never a devDependency). */
const PRODUCT_PACKAGES = new RegExp(
  `^(node:|(${Object.keys(
    (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { dependencies: object }).dependencies,
  )
    .map((name) => name.replace(/[/.]/g, "\\$&"))
    .join("|")})(/|$))`,
);
const ALLOWED: Record<Layer, { layers: Layer[]; packages: RegExp }> = {
  codec: { layers: [], packages: /^cbor-x$/ },
  "src/core": { layers: ["codec"], packages: /^$/ },
  "src/dtls": { layers: ["src/core"], packages: /^$/ },
  "src/tiny": { layers: ["codec", "src/core", "src/dtls"], packages: /^$/ },
  "src/node": { layers: ["codec", "src/core", "src/dtls", "src/tiny"], packages: /^(node:|[a-z@])/ },
  gateway: { layers: ["codec", "src/core", "src/dtls", "src/tiny", "src/node"], packages: PRODUCT_PACKAGES },
  examples: {
    layers: ["codec", "src/core", "src/dtls", "src/tiny", "src/node", "gateway"],
    packages: PRODUCT_PACKAGES,
  },
  bench: {
    layers: ["codec", "src/core", "src/dtls", "src/tiny", "src/node", "gateway", "examples"],
    packages: /^(node:|[a-z@])/,
  },
  tools: {
    layers: ["codec", "src/core", "src/dtls", "src/tiny", "src/node", "gateway", "examples", "bench"],
    packages: /^(node:|[a-z@])/,
  },
};

/** The command line's lazy doors into bench/ and examples/: dynamic imports in this file only. */
const CLI = "gateway/cli/main.ts";

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

function rel(path: string): string {
  return relative(ROOT, path).split(sep).join("/");
}

function layerOf(path: string): Layer | undefined {
  const r = rel(path);
  return [...LAYERS].reverse().find((l) => r === l || r.startsWith(`${l}/`));
}

/** Every file a module loads when it is imported: static imports, followed transitively. */
function staticClosure(entry: string): Set<string> {
  const seen = new Set<string>();
  const todo = [entry];
  while (todo.length > 0) {
    const file = todo.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    for (const m of readFileSync(file, "utf8").matchAll(IMPORT_RE)) {
      const spec = m[1];
      if (spec?.startsWith(".")) todo.push(resolve(join(file, ".."), spec).replace(/\.js$/, ".ts"));
    }
  }
  return seen;
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
            const lazyCommand =
              m[2] !== undefined && rel(file) === CLI && (target === "bench" || target === "examples");
            if (target !== layer && !lazyCommand && !(target && ALLOWED[layer].layers.includes(target))) {
              problems.push(`${relative(ROOT, file)} → ${spec}`);
            }
          } else if (!/^\s*(?:import|export) type\s/.test(m[0]) && !ALLOWED[layer].packages.test(spec)) {
            // (type-only imports are erased: they load nothing at run time)
            problems.push(`${relative(ROOT, file)} → ${spec}`);
          }
        }
        if (
          (layer === "codec" || layer === "src/core" || layer === "src/dtls" || layer === "src/tiny") &&
          /\bBuffer\b/.test(text.replace(/\/\/.*|\/\*[\s\S]*?\*\//g, ""))
        ) {
          problems.push(`${relative(ROOT, file)} uses Buffer`);
        }
      }
      expect(problems).toEqual([]);
    });
  }

  it("`cxmpp gateway` loads no benchmark or example code", () => {
    const loaded = [
      ...staticClosure(join(ROOT, CLI)),
      ...staticClosure(join(ROOT, "gateway/cli/gateway-command.ts")),
      ...staticClosure(join(ROOT, "gateway/index.ts")),
    ].map(rel);
    expect(loaded).toContain("gateway/session/gateway-service.ts"); // the walk follows imports
    expect(loaded.filter((f) => /^(bench|examples|test|tools)\//.test(f))).toEqual([]);
  });

  it("the check itself catches a crossing import", () => {
    const sample = `import { x } from "../../gateway/thing.js";\nimport { readFileSync } from "node:fs";`;
    const specs = [...sample.matchAll(IMPORT_RE)].map((m) => m[1] ?? m[2]);
    expect(specs).toEqual(["../../gateway/thing.js", "node:fs"]);
    expect(ALLOWED.codec.packages.test("node:fs")).toBe(false);
    expect(layerOf(join(ROOT, "gateway/x.ts"))).toBe("gateway");
    expect(PRODUCT_PACKAGES.test("commander")).toBe(true);
    expect(PRODUCT_PACKAGES.test("@xmpp/component")).toBe(true);
    expect(PRODUCT_PACKAGES.test("tsx")).toBe(false); // a devDependency
    expect(PRODUCT_PACKAGES.test("@xmpp/client")).toBe(false);
  });
});

/**
 * The portable core uses no host API (issue 11): an embedded engine has ECMAScript 2022 and what the host
 * hands in, nothing else. tsconfig.portable.json ("types": [], lib ES2022) rejects such names where they
 * are typed; this also catches them behind `any` or `globalThis`. Comments may name them.
 */
const HOST_GLOBALS =
  /\b(?:TextEncoder|TextDecoder|Buffer|process|globalThis|setTimeout|setInterval|setImmediate|clearTimeout|clearInterval|queueMicrotask|console|require|performance)\b|\bcrypto\s*\.\s*(?:subtle|getRandomValues|randomUUID)\b/g;

function hostGlobals(text: string): string[] {
  return [...text.replace(/\/\/.*|\/\*[\s\S]*?\*\//g, "").matchAll(HOST_GLOBALS)].map((m) => m[0]);
}

describe("the portable core", () => {
  for (const layer of ["codec", "src/core", "src/dtls", "src/tiny"] as const) {
    it(`${layer} names no host global (TextEncoder, Buffer, process, globalThis.crypto, timers, console)`, () => {
      const problems: string[] = [];
      for (const file of files(join(ROOT, layer))) {
        const names = hostGlobals(readFileSync(file, "utf8"));
        if (names.length > 0) problems.push(`${rel(file)}: ${[...new Set(names)].join(", ")}`);
      }
      expect(problems).toEqual([]);
    });
  }

  it("the check itself catches a host global", () => {
    expect(hostGlobals("const a = new TextEncoder(); // TextDecoder\n/* Buffer */ const b = 1;")).toEqual([
      "TextEncoder",
    ]);
    expect(hostGlobals("globalThis.crypto.getRandomValues(x); process.env.X; setTimeout(f, 1);")).toEqual([
      "globalThis",
      "crypto.getRandomValues",
      "process",
      "setTimeout",
    ]);
    expect(hostGlobals("this.options.crypto.randomBytes(32); const crypto = host.crypto;")).toEqual([]);
  });
});
