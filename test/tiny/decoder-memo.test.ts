/**
 * The tiny node's session decoder runs without the literal memo (`literalCache: false`,
 * src/core/session/node-client.ts): it must decode every session vector to the same tree and inserts as
 * a decoder with the memo, twice over (a second pass would hit a warm memo).
 */
import { describe, expect, it } from "vitest";
import { SessionDecoder, sameInfoset } from "../../codec/index.js";
import { parseXml } from "../../gateway/xml/stanza-xml.js";
import { readSessionVectors } from "../kit/vectors.js";

describe("a session decoder without the literal memo", () => {
  it("decodes test/vectors' sessions as the memoised decoder does", () => {
    let frames = 0;
    for (let pass = 0; pass < 2; pass++) {
      for (const s of readSessionVectors().sessions) {
        const plain = new SessionDecoder({ aliases: s.aliases, literalCache: false });
        const memo = new SessionDecoder({ aliases: s.aliases });
        for (const f of s.frames) {
          const bytes = Uint8Array.from(Buffer.from(f.hex, "hex"));
          const a = plain.decode(bytes);
          const b = memo.decode(bytes);
          expect(sameInfoset(a.stanza, parseXml(f.xml)), s.name).toBe(true);
          expect(a.stanza).toEqual(b.stanza);
          expect(a.inserted).toEqual(f.inserted);
          frames++;
        }
      }
    }
    expect(frames).toBeGreaterThan(20);
  });
});
