#!/usr/bin/env node
// The `cxmpp` command: runs the compiled program in dist/ (`npm run build`, which `npm ci` and
// `npm install` in a checkout run by themselves through the `prepare` script).
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

// `cxmpp … | head` closes stdout early: that is the reader's choice, not an error worth a stack trace.
process.stdout.on("error", (error) => {
  if (error.code === "EPIPE") process.exit(0);
  throw error;
});

const main = join(dirname(fileURLToPath(import.meta.url)), "..", "dist", "gateway", "cli", "main.js");
if (!existsSync(main)) {
  process.stderr.write(`cxmpp: ${main} is missing: run \`npm run build\` in the cxmpp checkout first\n`);
  process.exit(2);
}
const { main: run } = await import(pathToFileURL(main).href);
process.exitCode = await run(process.argv.slice(2));
