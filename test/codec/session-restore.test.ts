/**
 * A session encoder rebuilt from its saved inserts (what the gateway keeps in its store) writes exactly
 * the bytes the original would have written: a restarted gateway continues a node's session with the
 * node's tables as they are.
 */
import { deserialize, serialize } from "node:v8";
import { describe, expect, it } from "vitest";
import {
  CodecError,
  SessionDecoder,
  SessionEncoder,
  type TableEntry,
  type XElement,
} from "../../codec/index.js";
import { loadCorpus } from "../kit/corpus.js";
import { seededRandom } from "../kit/seeded-random.js";

const STANZAS: XElement[] = loadCorpus("visible")
  .filter((s) => [60, 323, 325, 45].includes(s.entry.xep ?? 0))
  .map((s) => s.tree);
const aliases = ["node1@iot.localhost/cxmpp", "iot.localhost", "alice@a.localhost"];

interface Saved {
  index: number;
  entry: TableEntry;
  acknowledged: boolean;
}

describe("SessionEncoder.restore", () => {
  it.each([1, 2, 3])("continues byte for byte after a restore at random points (seed %i)", (seed) => {
    const random = seededRandom(seed);
    const original = new SessionEncoder({ aliases, implicitBase: true });
    const decoder = new SessionDecoder({ aliases });
    const saved = new Map<number, Saved>();
    let inFlight: { inserted: readonly number[] }[] = [];
    let restored: SessionEncoder | undefined;
    let compared = 0;
    for (let i = 0; i < 400; i++) {
      const stanza = STANZAS[Math.floor(random() * STANZAS.length)]!;
      const frame = original.encode(stanza);
      if (restored) {
        expect(restored.encode(stanza).bytes).toEqual(frame.bytes);
        compared++;
      }
      // Saved through a structured clone, as the store does (v8 serialize keeps undefined ids).
      const entries = deserialize(serialize(original.entries(frame.inserted))) as TableEntry[];
      frame.inserted.forEach(
        (index, k) => void saved.set(index, { index, entry: entries[k]!, acknowledged: false }),
      );
      expect(decoder.decode(frame.bytes).stanza).toBeDefined();
      inFlight.push(frame);
      // The peer acknowledges a random prefix of what is in flight.
      if (random() < 0.5) {
        const n = Math.floor(random() * (inFlight.length + 1));
        for (const f of inFlight.slice(0, n)) {
          original.acknowledge(f.inserted);
          restored?.acknowledge(f.inserted);
          for (const index of f.inserted) saved.get(index)!.acknowledged = true;
        }
        inFlight = inFlight.slice(n);
      }
      if (random() < 0.05) {
        // "Restart": a fresh encoder from the saved inserts alone.
        restored = new SessionEncoder({ aliases, implicitBase: true });
        restored.restore([...saved.values()].sort((a, b) => a.index - b.index));
        expect(restored.pendingInserts).toBe(original.pendingInserts);
      }
    }
    expect(compared).toBeGreaterThan(50);
  });

  it("refuses inserts out of order with a CodecError", () => {
    const encoder = new SessionEncoder({ aliases });
    expect(() => encoder.restore([{ index: 7, entry: "x", acknowledged: true }])).toThrow(CodecError);
  });

  it("entries() of an index that is not pending is a CodecError", () => {
    const encoder = new SessionEncoder({ aliases });
    expect(() => encoder.entries([99])).toThrow(CodecError);
  });
});
