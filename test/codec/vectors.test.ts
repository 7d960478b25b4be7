/**
 * The wire-format contract (docs/FORMAT.md §9): every vector is checked in both directions — our encoder
 * produces exactly these bytes, and these bytes decode to exactly this stanza — so another implementation
 * can test itself against the same files.
 */
import { describe, expect, it } from "vitest";
import {
  DICTIONARY_V1,
  SessionDecoder,
  SessionEncoder,
  StatelessDecoder,
  StatelessEncoder,
  sameInfoset,
} from "../../codec/index.js";
import { parseXml } from "../../gateway/xml/stanza-xml.js";
import { readSessionVectors, readStaticVectors } from "../kit/vectors.js";

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
const bytes = (h: string): Uint8Array => Uint8Array.from(Buffer.from(h, "hex"));

const staticFile = readStaticVectors();
const sessionFile = readSessionVectors();

describe("test vectors", () => {
  it("are for the dictionary this codec ships", () => {
    expect(staticFile.dictionary).toBe(DICTIONARY_V1.id);
    expect(sessionFile.dictionary).toBe(DICTIONARY_V1.id);
    expect(staticFile.vectors.length).toBeGreaterThan(20);
  });

  describe("stateless", () => {
    for (const v of staticFile.vectors) {
      it(v.name, () => {
        expect(hex(new StatelessEncoder().encode(parseXml(v.xml)).bytes)).toBe(v.hex);
        const decoded = new StatelessDecoder().decode(bytes(v.hex));
        expect(sameInfoset(decoded.stanza, parseXml(v.xml))).toBe(true);
      });
    }
  });

  describe("session", () => {
    for (const s of sessionFile.sessions) {
      it(s.name, () => {
        const encoder = new SessionEncoder({
          aliases: s.aliases,
          implicitBase: s.implicitBase === true,
          templates: s.templates !== false,
        });
        const decoder = new SessionDecoder({ aliases: s.aliases });
        for (const f of s.frames) {
          const encoded = encoder.encode(parseXml(f.xml));
          expect(hex(encoded.bytes)).toBe(f.hex);
          expect([...encoded.inserted]).toEqual(f.inserted);
          const decoded = decoder.decode(bytes(f.hex));
          expect(sameInfoset(decoded.stanza, parseXml(f.xml))).toBe(true);
          expect([...decoded.inserted]).toEqual(f.inserted);
          if (f.ack) encoder.acknowledge(encoded.inserted);
        }
      });
    }
  });
});
