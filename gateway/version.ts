/**
 * What this build is: the package version (from the package.json it ships in), the frame-format version
 * and the static dictionary's id. Peers must agree on the last two (docs/FORMAT.md §4, PROTOCOL.md §3).
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { DICTIONARY_V1, FORMAT_VERSION } from "../codec/index.js";

/**
 * The directory of the package.json this module belongs to: the repository root for the sources,
 * also for the compiled copy under dist/, and the installed package's own directory.
 */
export function packageRoot(from: string = dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, "package.json"))) return dir;
    if (dirname(dir) === dir) throw new Error(`no package.json above ${from}`);
  }
}

let version: string | undefined;

/** The package.json version, read once (/healthz reports it on every request). */
export function packageVersion(): string {
  if (version === undefined) {
    const pkg = JSON.parse(readFileSync(join(packageRoot(), "package.json"), "utf8")) as { version?: string };
    version = pkg.version ?? "0.0.0";
  }
  return version;
}

/** One line for `cxmpp --version`. */
export function versionLine(): string {
  return `cxmpp ${packageVersion()} (frame format ${FORMAT_VERSION}, dictionary ${DICTIONARY_V1.id})`;
}
