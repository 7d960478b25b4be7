/**
 * A real Prosody (0.12, Debian package) for interop tests: a temporary directory with its own config,
 * data and hosts file, run in the foreground (`prosody -F`) on a loopback address, stopped and removed
 * afterwards. The recipe is the verified one in docs/INTEROP.md.
 *
 * The launcher itself lives in bench/prosody-process.ts, because `cxmpp bench federation` needs it
 * too and bench code never imports from test/. This module keeps the kit's import path and names
 * (startProsody, freePort, S2S_PORT, Prosody, ProsodyOptions, ProsodyUser, ProsodyComponent); see there
 * for ports (free ones, s2s on 5269, `s2sPort: null`), DNS and the parent-death safety.
 */
export * from "../../bench/prosody-process.js";
