/**
 * `npm run build:node`: the tiny-node bundle a builder flashes (docs/TINY-NODE.md). One minified ESM
 * file, platform neutral, of src/tiny/index.ts (createTinyNode, el, decodeDeviceFile), written to
 * dist/tiny/cxmpp-node.mjs, with its size printed beside the budgets, which only ever go down
 * (test/tiny/bundle.test.ts enforces them; the heap budgets are checked inside QuickJS).
 *
 * `tsx tools/build-node.ts ENTRY [OUTFILE]` bundles a device program on the tiny node instead, with the
 * same options (examples/tiny-sensor: dist/tiny/cxmpp-sensor.mjs), its size beside the same budgets.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { gzipSync } from "node:zlib";
import { type BuildOptions, build } from "esbuild";

const ROOT = resolve(import.meta.dirname, "..");
export const BUNDLE = join(ROOT, "dist", "tiny", "cxmpp-node.mjs");
/** The tiny-node API's entry point: what BUNDLE holds. */
export const ENTRY = join(ROOT, "src", "tiny", "index.ts");

/**
 * Where the tiny node must get to (issue 11): a bundle a microcontroller's flash and a few hundred KB
 * of RAM hold.
 */
export const TARGETS = Object.freeze({
  minifiedBytes: 128 * 1024,
  gzipBytes: 48 * 1024,
  /** QuickJS heap after connect (its own accounting: memory_used_size). */
  heapBytes: 512 * 1024,
  /** Peak heap over steady heap. */
  peakRatio: 1.5,
});

/**
 * The budgets `npm test` enforces: a ratchet from the measured size down to TARGETS. Lower them as
 * the bundle shrinks, never raise them.
 */
export const BUDGETS = Object.freeze({
  /**
   * Measured 149,238 B minified, 61,625 B gzip (the tiny-node API; 155,299 B and 62,919 B when frame
   * format 2 had just landed, over the budgets of 148 KB and 61 KB); examples/tiny-sensor's bundle,
   * held to these plus its own code (test/examples/tiny-sensor.test.ts), 151,590 B and 62,670 B.
   */
  minifiedBytes: 146 * 1024,
  gzipBytes: 61 * 1024,
  /**
   * Measured 732.7 KB after connect in QuickJS 0.32 (quickjs-emscripten), peak 1.35× (767.7 KB when
   * frame format 2 had just landed; 745.7 KB before it; 817.4 KB before the UTF-8 decoder's reusable
   * char arrays, 8,128 slots, were made per length on first use; before that 912-916 KB: the decoder's
   * literal memo and the encoder's frame slab made on first use).
   */
  heapBytes: 733 * 1024,
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

/** Bundles `entry` (the tiny-node API, or a device program on it) with BUNDLE_OPTIONS into `outfile`. */
export async function buildNodeBundle(outfile = BUNDLE, entry = ENTRY): Promise<BundleReport> {
  const result = await build({ entryPoints: [entry], ...BUNDLE_OPTIONS });
  const code = result.outputFiles[0]!.text;
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
  const r = entry
    ? await buildNodeBundle(
        out
          ? resolve(out)
          : join(dirname(BUNDLE), `cxmpp-${basename(entry).replace(/\.[cm]?[jt]s$/, "")}.mjs`),
        resolve(entry),
      )
    : await buildNodeBundle();
  const line = (what: string, value: number, budget: number, target: number) =>
    `  ${what.padEnd(10)} ${kb(value).padStart(9)}   budget ${kb(budget).padStart(9)} ${value <= budget ? "ok  " : "OVER"}   target ${kb(target).padStart(9)} ${value <= target ? "met" : "not yet"}`;
  process.stdout.write(
    `${r.path}\n${line("minified", r.minifiedBytes, BUDGETS.minifiedBytes, TARGETS.minifiedBytes)}\n${line("gzip -9", r.gzipBytes, BUDGETS.gzipBytes, TARGETS.gzipBytes)}\n`,
  );
  if (r.minifiedBytes > BUDGETS.minifiedBytes || r.gzipBytes > BUDGETS.gzipBytes) process.exitCode = 1;
}
