#!/usr/bin/env node
// Thin launcher: run the compiled CLI when `npm run build` has produced it, else the TypeScript
// sources through tsx (a dev dependency), so `npx cxmpp …` works straight from a checkout.
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

// `cxmpp … | head` closes stdout early: that is the reader's choice, not an error worth a stack trace.
process.stdout.on("error", (error) => {
  if (error.code === "EPIPE") process.exit(0);
  throw error;
});

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const built = join(root, "dist", "gateway", "cli", "main.js");
let entry;
if (existsSync(built)) {
  entry = built;
} else {
  const { register } = await import("tsx/esm/api");
  register();
  entry = join(root, "gateway", "cli", "main.ts");
}
const { main } = await import(pathToFileURL(entry).href);
process.exitCode = await main(process.argv.slice(2));
