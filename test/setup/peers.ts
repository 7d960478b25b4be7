/**
 * vitest globalSetup: makes sure the third-party peers the interop tests talk to are on this machine
 * (docs/INTEROP.md): libcoap's `coap-client-notls` and the DTLS-capable `coap-*-openssl|gnutls`
 * (Debian `libcoap3-bin`), `openssl` (s_client/s_server, the DTLS peers of test/kit/dtls-peers.ts),
 * `nft` (`nftables`), `ip` (`iproute2`), `prosody` and slixmpp for the system Python
 * (`python3-slixmpp`). When one is missing it installs the Debian packages (we run as root here and in
 * CI); when everything is present it does nothing. If it cannot install, it fails with a clear error.
 * Optional peers (tshark and its dumpcap, for decoding DTLS captures) are installed the same way, but
 * a failure only prints a warning: the tests that need them skip.
 */
import { execFileSync } from "node:child_process";

/**
 * `command` is looked up on PATH; `probe` is run instead where a command lookup proves nothing (a
 * Python module: test/kit/slixmpp.ts runs /usr/bin/python3, and the python3 first on PATH may differ).
 */
const NEEDED: ReadonlyArray<{
  command: string;
  pkg: string;
  probe?: readonly string[];
  optional?: boolean;
}> = [
  { command: "coap-client-notls", pkg: "libcoap3-bin" },
  { command: "openssl", pkg: "openssl" },
  { command: "nft", pkg: "nftables" },
  { command: "ip", pkg: "iproute2" },
  { command: "prosody", pkg: "prosody" },
  { command: "ejabberdctl", pkg: "ejabberd" },
  { command: "slixmpp", pkg: "python3-slixmpp", probe: ["/usr/bin/python3", "-c", "import slixmpp"] },
  // dumpcap captures and tshark decodes DTLS on lo (test/kit/dtls-peers.ts startCapture)
  { command: "tshark", pkg: "tshark", optional: true },
  { command: "dumpcap", pkg: "tshark", optional: true },
];

function present(need: (typeof NEEDED)[number]): boolean {
  try {
    if (need.probe) execFileSync(need.probe[0]!, need.probe.slice(1), { stdio: "ignore", timeout: 30_000 });
    else execFileSync("sh", ["-c", `command -v ${need.command}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

function run(args: string[]): void {
  execFileSync(args[0]!, args.slice(1), {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
    timeout: 600_000,
  });
}

export default function setup(): void {
  const missing = NEEDED.filter((n) => !present(n));
  if (missing.length === 0) return;
  const required = NEEDED.filter((n) => !n.optional);
  const requiredMissing = missing.filter((m) => !m.optional);
  const optionalMissing = missing.filter((m) => m.optional);
  const what = requiredMissing.map((m) => `${m.command} (${m.pkg})`).join(", ");
  if (process.getuid?.() !== 0) {
    if (requiredMissing.length === 0) {
      warnOptional(optionalMissing, "not root");
      return;
    }
    throw new Error(
      `test peers missing: ${what}; run as root or: apt-get install -y ${required.map((n) => n.pkg).join(" ")}`,
    );
  }
  try {
    run(["apt-get", "update"]);
    if (requiredMissing.length > 0) run(["apt-get", "install", "-y", ...required.map((n) => n.pkg)]);
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString().trim() ?? "";
    if (requiredMissing.length === 0) {
      warnOptional(optionalMissing, `${String(error)}\n${stderr}`);
      return;
    }
    throw new Error(`could not install test peers (${what}) with apt-get: ${String(error)}\n${stderr}`);
  }
  const still = required.filter((n) => !present(n));
  if (still.length > 0)
    throw new Error(`apt-get ran but these are still missing: ${still.map((s) => s.command).join(", ")}`);
  if (optionalMissing.length > 0) {
    try {
      run(["apt-get", "install", "-y", ...new Set(optionalMissing.map((n) => n.pkg))]);
    } catch (error) {
      warnOptional(optionalMissing, String(error));
    }
  }
}

function warnOptional(missing: ReadonlyArray<{ command: string; pkg: string }>, why: string): void {
  console.warn(
    `optional test peers not installed (${missing.map((m) => `${m.command} (${m.pkg})`).join(", ")}): ${why}; ` +
      "the tests that need them skip",
  );
}
