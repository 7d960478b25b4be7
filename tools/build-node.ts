/**
 * `npm run build:node`: the tiny-node bundle a builder flashes (docs/TINY-NODE.md). One minified ESM
 * file, platform neutral, of src/tiny/index.ts (createTinyNode, el, decodeDeviceFile), written to
 * dist/tiny/cxmpp-node.mjs, and beside it dist/tiny/cxmpp-dtls.mjs (the pure-JavaScript DTLS client,
 * for a host without its own) and dist/tiny/cxmpp-crypto.mjs (the pure-JavaScript crypto, for a host
 * without its own), with their sizes printed beside the budgets, which only ever go down
 * (test/tiny/bundle.test.ts enforces them; the heap budgets are checked inside QuickJS).
 *
 * `tsx tools/build-node.ts ENTRY [OUTFILE]` bundles a device program on the tiny node instead, with the
 * same options (examples/tiny-sensor: dist/tiny/cxmpp-sensor.mjs), its size beside the budgets of the
 * node with the DTLS and the crypto.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { basename, dirname, join, relative, resolve } from "node:path";
import { gzipSync } from "node:zlib";
import { type BuildOptions, build } from "esbuild";
import ts from "typescript";

const ROOT = resolve(import.meta.dirname, "..");
export const BUNDLE = join(ROOT, "dist", "tiny", "cxmpp-node.mjs");
/** The tiny-node API's entry point: what BUNDLE holds. */
export const ENTRY = join(ROOT, "src", "tiny", "index.ts");
/**
 * The pure-JavaScript crypto (`jsCrypto`) for hosts that have none, bundled apart: a host with its own
 * SHA-256, HMAC and AES-CCM (most microcontrollers the node targets have them in hardware) loads
 * BUNDLE alone; one without loads both and passes `jsCrypto` as `host.crypto`.
 */
export const CRYPTO_BUNDLE = join(ROOT, "dist", "tiny", "cxmpp-crypto.mjs");
export const CRYPTO_ENTRY = join(ROOT, "src", "tiny", "js-crypto.ts");
/**
 * The pure-JavaScript DTLS client (`jsDtls`) for hosts that have none, bundled apart: a host whose
 * runtime gives DTLS sockets (Zephyr, ESP-IDF esp-tls, RIOT sock_dtls, mbedTLS, tinydtls) plugs its
 * own in as `host.dtls` and loads BUNDLE alone; one without loads this too (and CRYPTO_BUNDLE if it
 * has no crypto either). Only src/tiny's interface names cross between the bundles, and every build
 * keeps those as written (bundleOptions).
 */
export const DTLS_BUNDLE = join(ROOT, "dist", "tiny", "cxmpp-dtls.mjs");
export const DTLS_ENTRY = join(ROOT, "src", "tiny", "js-dtls.ts");

/**
 * Where the tiny node must get to (issue 11): a bundle a microcontroller's flash and a few hundred KB
 * of RAM hold.
 *
 * The heap target is the heap of a device build, and test/tiny/quickjs.test.ts enforces it on one: a
 * device flashes the bundle as bytecode compiled with strip (`qjsc -s`, examples/tiny-sensor's
 * Makefile; or it loads source after `JS_SetStripInfo(rt, JS_STRIP_SOURCE | JS_STRIP_DEBUG)`), so its
 * functions hold bytecode only. quickjs-emscripten, which the tests drive, evaluates the bundle as
 * source and keeps each function's text and debug info (Function.prototype.toString, stack lines):
 * ~200 KB more of the same program, which BUDGETS.heapBytes ratchets separately.
 */
export const TARGETS = Object.freeze({
  minifiedBytes: 128 * 1024,
  gzipBytes: 48 * 1024,
  /** QuickJS heap after connect (its own accounting: memory_used_size), as a device build runs it. */
  heapBytes: 512 * 1024,
  /** Peak heap over steady heap, as a device build runs it (and under a limit of heapBytes × peakRatio). */
  peakRatio: 1.5,
});

/**
 * The budgets `npm test` enforces: a ratchet from the measured size down to TARGETS, and below a
 * target once it is met (the budget keeps what was won). Lower them as the bundle shrinks, never raise
 * them.
 */
export const BUDGETS = Object.freeze({
  /**
   * The node's bundle, as a host with its own DTLS and crypto loads it: measured 109,166 B minified,
   * 48,934 B gzip with the dictionary's data first in it (49,434 B with the data amid the code; 14,586 B
   * and 5,322 B more with the DTLS client in it, measured at one commit; 131,755 B and 58,363 B with the
   * pure-JavaScript crypto in it too; 145,801 B and 60,323 B before property mangling; 149,238 B and
   * 61,625 B before the dictionary's repacking; 155,299 B and 62,919 B when frame format 2 had just
   * landed).
   */
  minifiedBytes: 109_260,
  gzipBytes: 49_000,
  /**
   * The node's bundle and the crypto bundle (4,380 B, 2,088 B gzip) together, as a host with its own
   * DTLS but no crypto loads them: measured 113,546 B minified, 51,022 B gzip (each file gzipped).
   */
  withCrypto: Object.freeze({ minifiedBytes: 113_640, gzipBytes: 51_100 }),
  /**
   * The node's, the DTLS (14,758 B, 5,923 B gzip) and the crypto bundle together, as a host with
   * neither loads them: measured 128,304 B minified, 56,945 B gzip (each file gzipped).
   * examples/tiny-sensor's bundle, which carries both, is held to these plus its own code
   * (test/examples/tiny-sensor.test.ts).
   */
  withDtlsAndCrypto: Object.freeze({ minifiedBytes: 128_400, gzipBytes: 57_040 }),
  /**
   * The heap as quickjs-emscripten runs the bundle (source text and debug info kept; TARGETS.heapBytes
   * is a device build's): measured 681.6 KB after connect in QuickJS 0.32 with the DTLS and crypto
   * bundles loaded beside the node, peak 1.30× (1.5 KB of it for DTLS in a bundle of its own: a second
   * module and the adapter; 698.6 KB with the crypto bundle alone beside the node, before the codec's
   * and the core's latest cuts; 732.7 KB before property mangling and the dictionary's repacking;
   * 767.7 KB when frame format 2 had just landed; 817.4 KB before the UTF-8 decoder's reusable char
   * arrays, 8,128 slots, were made per length on first use; before that 912-916 KB: the decoder's
   * literal memo and the encoder's frame slab made on first use).
   */
  heapBytes: 683 * 1024,
  peakRatio: 1.5,
});

export interface BundleReport {
  readonly path: string;
  readonly minifiedBytes: number;
  readonly gzipBytes: number;
  readonly code: string;
}

/** The tiny-node bundle's esbuild options, but for the entry point: one minified neutral ESM file, in memory. */
export const BUNDLE_OPTIONS = {
  bundle: true,
  minify: true,
  format: "esm",
  platform: "neutral",
  target: "es2022",
  write: false,
  legalComments: "none",
} as const satisfies BuildOptions;

/**
 * Property names a bundle must keep as written, besides ES2022's own: the names of the session codec's
 * members and results that test/tiny/quickjs.test.ts calls from its vector glue inside QuickJS (the
 * tiny node exports SessionEncoder and SessionDecoder for that), and DICTIONARY_V1.id, which it reads
 * from a bundle of codec/.
 */
const KEPT_PROPS = [
  "encode",
  "encodeUnsequenced",
  "acknowledge",
  "decode",
  "bytes",
  "inserted",
  "stanza",
  "aliases",
  "implicitBase",
  "templates",
  "id",
];

/** Property names ES2022 defines: every member of TypeScript's declarations of its built-ins. */
function builtinProps(): Set<string> {
  const lib = dirname(createRequire(import.meta.url).resolve("typescript/lib/lib.es5.d.ts"));
  const names = new Set<string>();
  for (const file of readdirSync(lib)) {
    if (!/^lib\.es(5|20(1\d|2[0-2]))(\.[a-z]+)*\.d\.ts$/.test(file) || file.includes(".full.")) continue;
    collectProps(join(lib, file), names, () => true);
  }
  return names;
}

/**
 * Adds to `names` the member names in `file` that `keep` selects (interfaces, type literals, classes),
 * or with `every`, every property name the file writes (a device program's own code).
 */
function collectProps(
  file: string,
  names: Set<string>,
  keep: (member: ts.Node) => boolean,
  every = false,
): void {
  const source = ts.createSourceFile(file, readFileSync(file, "utf8"), ts.ScriptTarget.ES2022, true);
  const add = (name: ts.Node | undefined) => {
    if (name && (ts.isIdentifier(name) || ts.isStringLiteral(name))) names.add(name.text);
  };
  const visit = (node: ts.Node): void => {
    if (every) {
      if (ts.isPropertyAccessExpression(node)) add(node.name);
      if (
        ts.isPropertyAssignment(node) ||
        ts.isShorthandPropertyAssignment(node) ||
        ts.isMethodDeclaration(node)
      )
        add(node.name);
      if (ts.isBindingElement(node)) add(node.propertyName ?? node.name);
    }
    // The attributes given to el(), a record of attribute names.
    if (
      ts.isCallExpression(node) &&
      /(^|\.)el$/.test(node.expression.getText(source)) &&
      node.arguments[2] &&
      ts.isObjectLiteralExpression(node.arguments[2])
    )
      for (const p of node.arguments[2].properties) add(p.name);
    if (
      (ts.isPropertySignature(node) ||
        ts.isMethodSignature(node) ||
        ts.isPropertyDeclaration(node) ||
        ts.isMethodDeclaration(node) ||
        ts.isGetAccessor(node) ||
        ts.isParameter(node)) &&
      keep(node)
    ) {
      // A constructor's parameter is a member only as a parameter property (`readonly code`).
      if (!ts.isParameter(node) || ts.getModifiers(node)?.length) add(node.name);
    }
    // `"name" in object` reads a property by its string.
    if (
      ts.isBinaryExpression(node) &&
      node.operatorToken.kind === ts.SyntaxKind.InKeyword &&
      ts.isStringLiteral(node.left)
    )
      names.add(node.left.text);
    // The fields of a log event, which the host's log sink reads by name.
    if (
      ts.isCallExpression(node) &&
      ts.isPropertyAccessExpression(node.expression) &&
      node.expression.name.text === "log" &&
      node.arguments[2] &&
      ts.isObjectLiteralExpression(node.arguments[2])
    )
      for (const p of node.arguments[2].properties) add(p.name);
    ts.forEachChild(node, visit);
  };
  visit(source);
}

/** Whether a member belongs to an error class (`code`, `kind`, `offset`: what a catch reads). */
function inErrorClass(member: ts.Node): boolean {
  const parent = ts.isParameter(member) ? member.parent.parent : member.parent;
  return (
    ts.isClassDeclaration(parent) &&
    (parent.heritageClauses ?? []).some((h) => h.types.some((t) => /Error$/.test(t.expression.getText())))
  );
}

let builtins: Set<string> | undefined;

/**
 * The bundle's esbuild options for `entry`: BUNDLE_OPTIONS, and property mangling (esbuild's
 * mangleProps), which renames the properties and methods of the code's own objects to one or two
 * letters (−14.5 KB minified, −2 KB gzip, and the atoms and source text QuickJS keeps of them). The
 * source keeps its names; the build keeps as written every name something outside the bundle may read
 * by its string:
 * - ES2022's own (TypeScript's declarations of the built-ins), and names in capitals (the constant
 *   objects, whose keys alertName and the like print);
 * - the API a host or device program uses: the members of the interfaces and type literals in
 *   src/tiny (TinyHost, TinyDevice, TinyNode and its options) and codec/tree.ts (XElement, which JSON
 *   carries too);
 * - every property name a device program's own files (outside codec/ and src/: examples/tiny-sensor)
 *   write: its objects are its own business, and some are records whose keys are data (the attributes
 *   it gives el(), its events);
 * - the members of the error classes (code, kind, offset, alert), the attributes given to el() and the
 *   fields of log events as object literals, names read with `"name" in object`, and KEPT_PROPS.
 * Quoted names (`o["x"]`, `{ "xml:lang": … }`) are never mangled (esbuild's default).
 */
export async function bundleOptions(entry = ENTRY): Promise<BuildOptions> {
  builtins ??= builtinProps();
  const inputs = await build({ entryPoints: [entry], ...BUNDLE_OPTIONS, minify: false, metafile: true });
  const kept = new Set([...builtins, ...KEPT_PROPS]);
  // The API's files: a file of types only (src/tiny/host.ts) is not among the bundle's inputs.
  const tsIn = (dir: string) =>
    readdirSync(dir)
      .filter((f) => f.endsWith(".ts"))
      .map((f) => join(dir, f));
  const outside = (file: string) => !/^(codec|src)\//.test(relative(ROOT, file));
  const api = new Set([...tsIn(dirname(ENTRY)), join(ROOT, "codec", "tree.ts")]);
  if (outside(entry)) for (const f of tsIn(dirname(resolve(entry)))) api.add(f);
  const files = new Set([...api, ...Object.keys(inputs.metafile.inputs).map((f) => resolve(ROOT, f))]);
  for (const file of files) {
    const isApi = api.has(file) || outside(file);
    collectProps(file, kept, (m) => (isApi && !ts.isParameter(m)) || inErrorClass(m), outside(file));
  }
  const names = [...kept].filter((n) => /^[a-z]\w*$/.test(n)).sort();
  return {
    ...BUNDLE_OPTIONS,
    mangleProps: /^[a-z]/,
    reserveProps: new RegExp(`^(?:${names.join("|")})$`),
  };
}

/** Bundles `entry` (the tiny-node API, or a device program on it) with bundleOptions into `outfile`. */
export async function buildNodeBundle(outfile = BUNDLE, entry = ENTRY): Promise<BundleReport> {
  const result = await build({ entryPoints: [entry], ...(await bundleOptions(entry)) });
  const code = result.outputFiles![0]!.text;
  mkdirSync(dirname(outfile), { recursive: true });
  writeFileSync(outfile, code);
  return {
    path: outfile,
    minifiedBytes: Buffer.byteLength(code),
    gzipBytes: gzipSync(code, { level: 9 }).length,
    code,
  };
}

function kb(n: number): string {
  return `${(n / 1024).toFixed(1)} KB`;
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  const [entry, out] = process.argv.slice(2);
  const line = (what: string, value: number, budget: number, target: number) =>
    `  ${what.padEnd(10)} ${kb(value).padStart(9)}   budget ${kb(budget).padStart(9)} ${value <= budget ? "ok  " : "OVER"}   target ${kb(target).padStart(9)} ${value <= target ? "met" : "not yet"}`;
  const report = (
    title: string,
    minified: number,
    gzip: number,
    budget: { minifiedBytes: number; gzipBytes: number },
  ) => {
    process.stdout.write(
      `${title}\n${line("minified", minified, budget.minifiedBytes, TARGETS.minifiedBytes)}\n${line("gzip -9", gzip, budget.gzipBytes, TARGETS.gzipBytes)}\n`,
    );
    if (minified > budget.minifiedBytes || gzip > budget.gzipBytes) process.exitCode = 1;
  };
  if (entry) {
    const r = await buildNodeBundle(
      out ? resolve(out) : join(dirname(BUNDLE), `cxmpp-${basename(entry).replace(/\.[cm]?[jt]s$/, "")}.mjs`),
      resolve(entry),
    );
    // A device program has no budget of its own (examples/tiny-sensor's is its test's): its size beside
    // the budget of the node with the JavaScript DTLS and crypto, the most it carries of ours, and the
    // targets. Nothing here fails the build.
    const beside = (what: string, value: number, budget: number, target: number) =>
      `  ${what.padEnd(10)} ${kb(value).padStart(9)}   node + dtls + crypto budget ${kb(budget).padStart(9)}, ${value >= budget ? `${kb(value - budget)} more` : `${kb(budget - value)} less`}   target ${kb(target).padStart(9)} ${value <= target ? "met" : "not yet"}`;
    const w = BUDGETS.withDtlsAndCrypto;
    process.stdout.write(
      `${r.path} (a device program with the node)\n${beside("minified", r.minifiedBytes, w.minifiedBytes, TARGETS.minifiedBytes)}\n${beside("gzip -9", r.gzipBytes, w.gzipBytes, TARGETS.gzipBytes)}\n`,
    );
  } else {
    const node = await buildNodeBundle();
    const dtls = await buildNodeBundle(DTLS_BUNDLE, DTLS_ENTRY);
    const crypto = await buildNodeBundle(CRYPTO_BUNDLE, CRYPTO_ENTRY);
    report(
      `${node.path} (a host with its own DTLS and crypto loads this alone)`,
      node.minifiedBytes,
      node.gzipBytes,
      BUDGETS,
    );
    for (const b of [dtls, crypto])
      process.stdout.write(`${b.path}: ${kb(b.minifiedBytes)} minified, ${kb(b.gzipBytes)} gzip -9\n`);
    report(
      "node + crypto (a host with its own DTLS but no crypto for JavaScript loads the two)",
      node.minifiedBytes + crypto.minifiedBytes,
      node.gzipBytes + crypto.gzipBytes,
      BUDGETS.withCrypto,
    );
    report(
      "node + dtls + crypto (a host with neither loads the three)",
      node.minifiedBytes + dtls.minifiedBytes + crypto.minifiedBytes,
      node.gzipBytes + dtls.gzipBytes + crypto.gzipBytes,
      BUDGETS.withDtlsAndCrypto,
    );
  }
}
