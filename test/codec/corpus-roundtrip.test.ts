/**
 * Every corpus stanza survives XML → tree → frame → tree exactly (same infoset), stateless and in session
 * mode (one encoder/decoder pair per XEP or RFC, acknowledging every frame), and the decoded tree
 * serialises back to XML text that parses to the same infoset.
 */
import { describe, expect, it } from "vitest";
import {
  SessionDecoder,
  SessionEncoder,
  StatelessDecoder,
  StatelessEncoder,
  sameInfoset,
  type XElement,
} from "../../codec/index.js";
import { parseXml, toXml } from "../../gateway/xml/stanza-xml.js";
import { bySession, type CorpusStanza, describeError, loadCorpus } from "../kit/corpus.js";

const SOURCES = ["visible", "rfc"] as const;
const CORPUS = new Map(SOURCES.map((s) => [s, loadCorpus(s)] as const));

interface Failure {
  readonly index: number;
  readonly why: string;
}

function report(name: string, total: number, failures: readonly Failure[]): string {
  const first = failures
    .slice(0, 5)
    .map((f) => `#${f.index}: ${f.why}`)
    .join("; ");
  return `${name}: ${failures.length} of ${total} stanzas failed. First: ${first}`;
}

/** Checks one decoded stanza against the parsed input; returns why it differs, or undefined. */
function check(input: XElement, decoded: XElement): string | undefined {
  if (!sameInfoset(input, decoded)) return `infoset differs: ${toXml(decoded).slice(0, 200)}`;
  const reparsed = parseXml(toXml(decoded));
  if (!sameInfoset(input, reparsed)) return `toXml does not round-trip: ${toXml(decoded).slice(0, 200)}`;
  return undefined;
}

describe.each(SOURCES)("corpus %s.jsonl", (source) => {
  const stanzas = CORPUS.get(source)!;

  it("is not empty", () => {
    expect(stanzas.length).toBeGreaterThan(source === "visible" ? 1000 : 100);
  });

  it(`round-trips every stanza statelessly (${stanzas.length} stanzas)`, () => {
    const encoder = new StatelessEncoder();
    const decoder = new StatelessDecoder();
    const failures: Failure[] = [];
    for (const s of stanzas) {
      try {
        const frame = encoder.encode(s.tree);
        const why = check(s.tree, decoder.decode(frame.bytes).stanza);
        if (why) failures.push({ index: s.index, why });
      } catch (error) {
        failures.push({ index: s.index, why: describeError(error) });
      }
    }
    expect(failures, report(`stateless ${source}`, stanzas.length, failures)).toEqual([]);
  });

  it(`round-trips every stanza in sessions, one pair per ${source === "rfc" ? "RFC" : "XEP"}`, () => {
    const failures: Failure[] = [];
    let references = 0;
    const sessions = bySession(stanzas);
    for (const list of sessions.values()) {
      const encoder = new SessionEncoder();
      const decoder = new SessionDecoder();
      for (const s of list) {
        try {
          const frame = encoder.encode(s.tree);
          const decoded = decoder.decode(frame.bytes);
          const sorted = (xs: readonly number[]): number[] => [...xs].sort((a, b) => a - b);
          expect(sorted(decoded.inserted), `#${s.index}: decoder reports the encoder's inserts`).toEqual(
            sorted(frame.inserted),
          );
          encoder.acknowledge(decoded.inserted);
          const why = check(s.tree, decoded.stanza);
          if (why) failures.push({ index: s.index, why });
        } catch (error) {
          failures.push({ index: s.index, why: describeError(error) });
        }
      }
      references += decoder.tableSize;
      expect(encoder.pendingInserts, "every insert was acknowledged").toBe(0);
    }
    expect(
      failures,
      report(`session ${source} (${sessions.size} sessions)`, stanzas.length, failures),
    ).toEqual([]);
    expect(references, "the session tables were used").toBeGreaterThan(0);
  });

  it("decodes each session frame only with the state of that session (sessions are independent)", () => {
    // Two sessions interleaved on separate pairs give the same result as each alone.
    const sessions = [...bySession(stanzas).values()].filter((l) => l.length >= 2).slice(0, 2);
    expect(sessions.length).toBe(2);
    const pairs = sessions.map(() => ({ enc: new SessionEncoder(), dec: new SessionDecoder() }));
    const longest = Math.max(...sessions.map((l) => l.length));
    let checked = 0;
    for (let i = 0; i < longest; i++) {
      sessions.forEach((list: CorpusStanza[], k) => {
        const s = list[i];
        if (!s) return;
        const pair = pairs[k]!;
        const frame = pair.enc.encode(s.tree);
        const decoded = pair.dec.decode(frame.bytes);
        pair.enc.acknowledge(decoded.inserted);
        expect(sameInfoset(s.tree, decoded.stanza), `#${s.index}`).toBe(true);
        checked++;
      });
    }
    expect(checked).toBe(sessions[0]!.length + sessions[1]!.length);
  });
});
