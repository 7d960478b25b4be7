/** The shared stanza corpus, parsed once per test file, with the session each stanza belongs to. */

import { type CorpusEntry, readCorpus } from "../../bench/corpus.js";
import type { XElement } from "../../codec/index.js";
import { parseXml } from "../../gateway/xml/stanza-xml.js";

export interface CorpusStanza {
  /** "visible" or "rfc", and the line index in that file. */
  readonly source: "visible" | "rfc";
  readonly index: number;
  /** The session the stanza belongs to: `xep:<n>` or `rfc:<n>`. */
  readonly session: string;
  readonly entry: CorpusEntry;
  readonly tree: XElement;
}

export function loadCorpus(source: "visible" | "rfc"): CorpusStanza[] {
  return readCorpus(source).map((entry, index) => ({
    source,
    index,
    session: entry.xep !== undefined ? `xep:${entry.xep}` : `rfc:${entry.rfc ?? "?"}`,
    entry,
    tree: parseXml(entry.xml),
  }));
}

/** Groups stanzas by session, keeping corpus order inside each session. */
export function bySession(stanzas: readonly CorpusStanza[]): Map<string, CorpusStanza[]> {
  const groups = new Map<string, CorpusStanza[]>();
  for (const s of stanzas) {
    const list = groups.get(s.session);
    if (list) list.push(s);
    else groups.set(s.session, [s]);
  }
  return groups;
}

/** Describes a thrown value for failure messages. */
export function describeError(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
