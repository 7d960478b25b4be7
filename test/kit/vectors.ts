/** The wire-format test vectors (test/vectors, docs/FORMAT.md §9) as the tests read them. */
import { readFileSync } from "node:fs";
import { join } from "node:path";

export const VECTORS_DIR = join(import.meta.dirname, "..", "vectors");

/** test/vectors/static.json: stateless frames. */
export interface StaticFile {
  dictionary: string;
  vectors: Array<{ name: string; xml: string; hex: string }>;
}

/** test/vectors/session.json: sessions of frames, each frame's aliases inserted and whether it was acknowledged. */
export interface SessionFile {
  dictionary: string;
  sessions: Array<{
    name: string;
    aliases: string[];
    implicitBase?: boolean;
    /** FORMAT.md §6.6: false for an encoder that writes format 1 only. */
    templates?: boolean;
    frames: Array<{ xml: string; hex: string; inserted: number[]; ack: boolean }>;
  }>;
}

export const readStaticVectors = (): StaticFile =>
  JSON.parse(readFileSync(join(VECTORS_DIR, "static.json"), "utf8")) as StaticFile;

export const readSessionVectors = (): SessionFile =>
  JSON.parse(readFileSync(join(VECTORS_DIR, "session.json"), "utf8")) as SessionFile;
