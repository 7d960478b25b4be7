/**
 * A frame cut short anywhere is a CodecError, never a stanza or another exception; and in session mode a
 * cut frame leaves the table as it was, so the complete frame still decodes afterwards.
 */
import { describe, expect, it } from "vitest";
import {
  CodecError,
  SessionDecoder,
  SessionEncoder,
  StatelessDecoder,
  StatelessEncoder,
  sameInfoset,
} from "../../codec/index.js";
import { bySession, type CorpusStanza, describeError, loadCorpus } from "../kit/corpus.js";

const visible = loadCorpus("visible");
const rfc = loadCorpus("rfc");
/** Every 8th visible stanza plus every 4th RFC stanza (~375). */
const SAMPLE = [...visible.filter((s) => s.index % 8 === 0), ...rfc.filter((s) => s.index % 4 === 0)];
const SAMPLED = new Set(SAMPLE);

/** Checks that decoding `bytes[0..len)` for every len < n throws a CodecError; returns problems found. */
function checkPrefixes(decode: (bytes: Uint8Array) => unknown, bytes: Uint8Array, label: string): string[] {
  const problems: string[] = [];
  for (let len = 0; len < bytes.length; len++) {
    const prefix = bytes.slice(0, len);
    try {
      decode(prefix);
      problems.push(`${label} prefix ${len}/${bytes.length}: decoded without error`);
    } catch (error) {
      if (!(error instanceof CodecError)) {
        problems.push(`${label} prefix ${len}/${bytes.length}: ${describeError(error)}`);
      } else if (
        typeof error.code !== "string" ||
        !Number.isInteger(error.offset) ||
        error.offset < 0 ||
        error.offset > len
      ) {
        problems.push(`${label} prefix ${len}: bad error fields code=${error.code} offset=${error.offset}`);
      } else if (error.code !== "TRUNCATED") {
        problems.push(`${label} prefix ${len}/${bytes.length}: code ${error.code}, expected TRUNCATED`);
      }
    }
  }
  return problems;
}

describe("truncated frames", () => {
  it(`sample covers the corpus (${SAMPLE.length} stanzas)`, () => {
    expect(SAMPLE.length).toBeGreaterThan(250);
  });

  it("stateless: every strict prefix of every sampled frame is a CodecError", () => {
    const encoder = new StatelessEncoder();
    const decoder = new StatelessDecoder();
    const problems: string[] = [];
    let prefixes = 0;
    for (const s of SAMPLE) {
      const bytes = encoder.encode(s.tree).bytes;
      prefixes += bytes.length;
      problems.push(...checkPrefixes((b) => decoder.decode(b), bytes, `${s.source}#${s.index}`));
      // The full frame still decodes (the decoder holds no state, but check it anyway).
      expect(sameInfoset(decoder.decode(bytes).stanza, s.tree), `${s.source}#${s.index}`).toBe(true);
    }
    expect(problems.slice(0, 10), `${problems.length} problems over ${prefixes} prefixes`).toEqual([]);
    expect(prefixes).toBeGreaterThan(SAMPLE.length * 10);
  });

  it("session: every strict prefix is a CodecError and leaves the table unpoisoned", () => {
    const problems: string[] = [];
    let prefixes = 0;
    let referencing = 0;
    const sessions = [...bySession(visible).values(), ...bySession(rfc).values()];
    for (const list of sessions) {
      const encoder = new SessionEncoder();
      const decoder = new SessionDecoder();
      list.forEach((s: CorpusStanza) => {
        const frame = encoder.encode(s.tree);
        if (SAMPLED.has(s)) {
          // The decoder holds the state of every earlier frame of this session.
          const sizeBefore = decoder.tableSize;
          prefixes += frame.bytes.length;
          problems.push(...checkPrefixes((b) => decoder.decode(b), frame.bytes, `${s.source}#${s.index}`));
          if (decoder.tableSize !== sizeBefore) {
            problems.push(
              `${s.source}#${s.index}: table size ${sizeBefore} → ${decoder.tableSize} after failures`,
            );
          }
          // A frame that references earlier entries: it could not decode on a fresh decoder.
          try {
            new SessionDecoder().decode(frame.bytes);
          } catch (error) {
            if (error instanceof CodecError && error.code === "UNKNOWN_REF") referencing++;
          }
        }
        const decoded = decoder.decode(frame.bytes);
        if (!sameInfoset(decoded.stanza, s.tree)) {
          problems.push(`${s.source}#${s.index}: full frame decodes differently after failed prefixes`);
        }
        encoder.acknowledge(decoded.inserted);
      });
    }
    expect(problems.slice(0, 10), `${problems.length} problems over ${prefixes} prefixes`).toEqual([]);
    expect(prefixes).toBeGreaterThan(SAMPLE.length * 10);
    // The check is only meaningful if many sampled frames depend on the session state.
    expect(referencing, "sampled frames that reference earlier inserts").toBeGreaterThan(SAMPLE.length / 4);
  });
});
