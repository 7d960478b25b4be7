/**
 * The tiny-node bundles' size budgets (tools/build-node.ts): a ratchet that only goes down, towards the
 * targets of a microcontroller build (128 KB minified, 48 KB gzip), for the node's bundle alone (a host
 * with its own DTLS and crypto), with the pure-JavaScript crypto bundle beside it, and with the DTLS
 * bundle and the crypto bundle beside it (a host with neither). The node's and the DTLS bundle share
 * no code but a few bytes. The heap budgets are checked inside QuickJS (quickjs.test.ts).
 */
import { join, relative, resolve } from "node:path";
import { build } from "esbuild";
import { describe, expect, it } from "vitest";
import {
  BUDGETS,
  buildNodeBundle,
  bundleOptions,
  CRYPTO_ENTRY,
  DTLS_ENTRY,
  ENTRY,
  TARGETS,
} from "../../tools/build-node.js";
import { scratch } from "../kit/scratch.js";

const ROOT = resolve(import.meta.dirname, "..", "..");
const { root } = scratch("cxmpp-bundle-");
const NOT_PORTABLE = /\bfrom\s*"node:|require\(|\bBuffer\b|TextEncoder|TextDecoder/;

/** The source files esbuild put into `entry`'s bundle (with bytes in it), relative to the repository. */
async function inputs(entry: string): Promise<Set<string>> {
  const r = await build({ entryPoints: [entry], ...(await bundleOptions(entry)), metafile: true });
  const output = Object.values(r.metafile.outputs)[0]!;
  return new Set(
    Object.entries(output.inputs)
      .filter(([, i]) => i.bytesInOutput > 0)
      .map(([f]) => relative(ROOT, resolve(ROOT, f))),
  );
}

describe("npm run build:node", () => {
  it("builds the node's bundle, the DTLS bundle and the crypto bundle, neutral ESM within their budgets, with no Node.js module in them", async () => {
    const r = await buildNodeBundle(join(root, "cxmpp-node.mjs"));
    const d = await buildNodeBundle(join(root, "cxmpp-dtls.mjs"), DTLS_ENTRY);
    const c = await buildNodeBundle(join(root, "cxmpp-crypto.mjs"), CRYPTO_ENTRY);
    const all = {
      minifiedBytes: r.minifiedBytes + d.minifiedBytes + c.minifiedBytes,
      gzipBytes: r.gzipBytes + d.gzipBytes + c.gzipBytes,
    };
    console.log(
      `tiny-node bundle: ${r.minifiedBytes} B minified (budget ${BUDGETS.minifiedBytes}, target ${TARGETS.minifiedBytes}), ` +
        `${r.gzipBytes} B gzip (budget ${BUDGETS.gzipBytes}, target ${TARGETS.gzipBytes}); ` +
        `DTLS bundle ${d.minifiedBytes} B, ${d.gzipBytes} B gzip; crypto bundle ${c.minifiedBytes} B, ${c.gzipBytes} B gzip; ` +
        `node + crypto ${r.minifiedBytes + c.minifiedBytes} B (budget ${BUDGETS.withCrypto.minifiedBytes}), ` +
        `${r.gzipBytes + c.gzipBytes} B gzip (budget ${BUDGETS.withCrypto.gzipBytes}); ` +
        `node + DTLS + crypto ${all.minifiedBytes} B (budget ${BUDGETS.withDtlsAndCrypto.minifiedBytes}), ` +
        `${all.gzipBytes} B gzip (budget ${BUDGETS.withDtlsAndCrypto.gzipBytes})`,
    );
    // The node alone: its budgets, and both targets, met since DTLS left it.
    expect(r.minifiedBytes).toBeLessThanOrEqual(BUDGETS.minifiedBytes);
    expect(r.gzipBytes).toBeLessThanOrEqual(BUDGETS.gzipBytes);
    expect(r.minifiedBytes).toBeLessThanOrEqual(TARGETS.minifiedBytes);
    expect(r.gzipBytes).toBeLessThanOrEqual(TARGETS.gzipBytes);
    // The whole stack for a host with neither DTLS nor crypto: the minified target too.
    expect(all.minifiedBytes).toBeLessThanOrEqual(TARGETS.minifiedBytes);
    // The dictionary's data leads the node's bundle (src/tiny/index.ts imports it first): amid the code,
    // it would put code beyond gzip's 32 KB window of other code.
    expect(r.code.search(/"[^"]{15000,}"/)).toBeLessThan(200);
    expect(r.minifiedBytes + c.minifiedBytes).toBeLessThanOrEqual(BUDGETS.withCrypto.minifiedBytes);
    expect(r.gzipBytes + c.gzipBytes).toBeLessThanOrEqual(BUDGETS.withCrypto.gzipBytes);
    expect(all.minifiedBytes).toBeLessThanOrEqual(BUDGETS.withDtlsAndCrypto.minifiedBytes);
    expect(all.gzipBytes).toBeLessThanOrEqual(BUDGETS.withDtlsAndCrypto.gzipBytes);
    for (const code of [r.code, d.code, c.code]) expect(code).not.toMatch(NOT_PORTABLE);
    expect(r.code).toMatch(/export\s*\{[^}]*createTinyNode/);
    expect(d.code).toMatch(/export\s*\{[^}]*jsDtls/);
    expect(c.code).toMatch(/export\s*\{[^}]*jsCrypto/);
    // SHA-256's round constants, derived in BigInt: the pure-JavaScript crypto is the crypto bundle's only.
    expect(c.code).toContain("BigInt");
    expect(r.code).not.toContain("BigInt");
    expect(d.code).not.toContain("BigInt");
    // The PRF's labels (RFC 5246 §6.3): DTLS is the DTLS bundle's only.
    expect(d.code).toContain("key expansion");
    expect(r.code).not.toContain("key expansion");
  });

  it("the node's and the DTLS bundle share no code but a few bytes of src/core/interfaces.ts: no codec, no TimerQueue in the DTLS bundle", async () => {
    const node = await inputs(ENTRY);
    const dtls = await inputs(DTLS_ENTRY);
    expect([...dtls].filter((f) => f.startsWith("src/dtls/")).length).toBeGreaterThan(5);
    expect([...node].filter((f) => f.startsWith("src/dtls/"))).toEqual([]);
    expect(node.has("src/core/timer-queue.ts")).toBe(true);
    // What both carry: src/core/interfaces.ts's silentLogger, a few bytes.
    expect(dtls.has("src/core/timer-queue.ts")).toBe(false);
    expect([...dtls].filter((f) => node.has(f))).toEqual(["src/core/interfaces.ts"]);
  });
});
