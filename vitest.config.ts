import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Installs the third-party peers the tests talk to (libcoap, nftables, iproute2, Prosody, slixmpp)
    // when missing; each test file starts and stops its own servers.
    globalSetup: ["test/setup/peers.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
