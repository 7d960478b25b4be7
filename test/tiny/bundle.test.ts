/**
 * The tiny-node bundles' size budgets (tools/build-node.ts): a ratchet that only goes down, towards the
 * targets of a microcontroller build (128 KB minified, 48 KB gzip), for the node's bundle alone (a host
 * with its own crypto) and with the pure-JavaScript crypto bundle beside it (a host without). The heap
 * budgets are checked inside QuickJS (quickjs.test.ts).
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { BUDGETS, buildNodeBundle, CRYPTO_ENTRY, TARGETS } from "../../tools/build-node.js";
import { scratch } from "../kit/scratch.js";

const { root } = scratch("cxmpp-bundle-");
const NOT_PORTABLE = /\bfrom\s*"node:|require\(|\bBuffer\b|TextEncoder|TextDecoder/;

describe("npm run build:node", () => {
  it("builds the node's bundle and the crypto bundle, neutral ESM within their budgets, with no Node.js module in them", async () => {
    const r = await buildNodeBundle(join(root, "cxmpp-node.mjs"));
    const c = await buildNodeBundle(join(root, "cxmpp-crypto.mjs"), CRYPTO_ENTRY);
    console.log(
      `tiny-node bundle: ${r.minifiedBytes} B minified (budget ${BUDGETS.minifiedBytes}, target ${TARGETS.minifiedBytes}), ` +
        `${r.gzipBytes} B gzip (budget ${BUDGETS.gzipBytes}, target ${TARGETS.gzipBytes}); ` +
        `crypto bundle ${c.minifiedBytes} B, ${c.gzipBytes} B gzip; both ${r.minifiedBytes + c.minifiedBytes} B ` +
        `(budget ${BUDGETS.withCrypto.minifiedBytes}), ${r.gzipBytes + c.gzipBytes} B gzip (budget ${BUDGETS.withCrypto.gzipBytes})`,
    );
    expect(r.minifiedBytes).toBeLessThanOrEqual(BUDGETS.minifiedBytes);
    expect(r.gzipBytes).toBeLessThanOrEqual(BUDGETS.gzipBytes);
    expect(r.minifiedBytes + c.minifiedBytes).toBeLessThanOrEqual(BUDGETS.withCrypto.minifiedBytes);
    expect(r.gzipBytes + c.gzipBytes).toBeLessThanOrEqual(BUDGETS.withCrypto.gzipBytes);
    for (const code of [r.code, c.code]) expect(code).not.toMatch(NOT_PORTABLE);
    expect(r.code).toMatch(/export\s*\{[^}]*createTinyNode/);
    expect(c.code).toMatch(/export\s*\{[^}]*jsCrypto/);
    // SHA-256's round constants, derived in BigInt: the pure-JavaScript crypto is the crypto bundle's only.
    expect(c.code).toContain("BigInt");
    expect(r.code).not.toContain("BigInt");
  });
});
