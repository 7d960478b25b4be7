#!/usr/bin/env node
// Thin launcher: runs the TypeScript sources through tsx, so `cxmpp …` always runs the code in this
// checkout (a compiled copy could be stale) and finds ../shared beside it.
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

// `cxmpp … | head` closes stdout early: that is the reader's choice, not an error worth a stack trace.
process.stdout.on("error", (error) => {
  if (error.code === "EPIPE") process.exit(0);
  throw error;
});

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const { register } = await import("tsx/esm/api");
register();
const { main } = await import(pathToFileURL(join(root, "gateway", "cli", "main.ts")).href);
process.exitCode = await main(process.argv.slice(2));
