import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Installs the third-party peers of test/interop (libcoap, nftables, iproute2) when missing.
    globalSetup: ["test/setup/peers.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
