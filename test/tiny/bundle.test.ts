/**
 * The tiny-node bundle's size budgets (tools/build-node.ts): a ratchet that only goes down, towards the
 * targets of a microcontroller build (128 KB minified, 48 KB gzip). The heap budgets are checked
 * inside QuickJS (quickjs.test.ts).
 */
import { describe, expect, it } from "vitest";
import { BUDGETS, buildNodeBundle, TARGETS } from "../../tools/build-node.js";

describe("npm run build:node", () => {
  it("builds one neutral ESM bundle within its budgets, with no Node.js module in it", async () => {
    const r = await buildNodeBundle();
    console.log(
      `tiny-node bundle: ${r.minifiedBytes} B minified (budget ${BUDGETS.minifiedBytes}, target ${TARGETS.minifiedBytes}), ` +
        `${r.gzipBytes} B gzip (budget ${BUDGETS.gzipBytes}, target ${TARGETS.gzipBytes})`,
    );
    expect(r.minifiedBytes).toBeLessThanOrEqual(BUDGETS.minifiedBytes);
    expect(r.gzipBytes).toBeLessThanOrEqual(BUDGETS.gzipBytes);
    expect(BUDGETS.minifiedBytes).toBeGreaterThanOrEqual(TARGETS.minifiedBytes);
    expect(r.code).not.toMatch(/\bfrom\s*"node:|require\(|\bBuffer\b|TextEncoder|TextDecoder/);
    expect(r.code).toMatch(/export\s*\{[^}]*createTinyNode/);
  });
});
