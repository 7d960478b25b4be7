/**
 * cbor-x as an independent CBOR implementation: every frame we write, for every corpus stanza in both
 * modes, is a well-formed CBOR sequence to it, and cbor-x writes the items back to the same bytes
 * (our heads are its preferred serialisation, RFC 8949 §4.1). The codec writes and reads CBOR itself
 * (speed, exact error offsets, hostile input), so this keeps it honest against a reference.
 */
import { addExtension, Decoder, Encoder, Tag } from "cbor-x";
import { describe, expect, it } from "vitest";
import { SessionDecoder, SessionEncoder, StatelessEncoder } from "../../codec/index.js";
import { bySession, loadCorpus } from "../kit/corpus.js";

const reference = new Encoder({
  useRecords: false,
  mapsAsObjects: false,
  tagUint8Array: false,
  variableMapSize: true,
  structuredClone: false,
  pack: false,
} as ConstructorParameters<typeof Encoder>[0]);

// cbor-x turns some registered tags into JavaScript values (tag 1 into a Date, …); we want the raw
// item back to compare bytes, so every tag the frames use decodes to a plain Tag here.
class RawTag {}
for (const tag of [1, 4, 6, 7, 8, 9, 10, 11, 13, 22, 23, 37, 100]) {
  addExtension({
    Class: RawTag,
    tag,
    encode: () => {},
    decode: (value: unknown) => new Tag(value, tag),
  } as never);
}

const reader = new Decoder({ mapsAsObjects: false, useRecords: false } as ConstructorParameters<
  typeof Decoder
>[0]);

function agree(frame: Uint8Array): boolean {
  const items: unknown[] = [];
  reader.decodeMultiple(frame, (item: unknown) => {
    items.push(item);
  });
  const again = items.map((item) => reference.encode(item) as Uint8Array);
  const joined = Buffer.concat(again);
  return joined.equals(Buffer.from(frame));
}

describe("frames against cbor-x", () => {
  it("the comparison notices a head that is not the preferred serialisation", () => {
    expect(agree(Uint8Array.of(0x82, 0x01, 0x02))).toBe(true);
    expect(agree(Uint8Array.of(0x82, 0x18, 0x01, 0x02))).toBe(false); // 1 written in two bytes
  });

  const corpus = [...loadCorpus("visible"), ...loadCorpus("rfc")];
  const label = (s: (typeof corpus)[number]) => `${s.source}#${s.index}`;
  it("every stateless frame is CBOR that cbor-x reads and writes back identically", () => {
    const enc = new StatelessEncoder();
    const bad = corpus.filter((s) => !agree(enc.encode(s.tree).bytes)).map(label);
    expect(bad.slice(0, 5)).toEqual([]);
  });

  it("every session frame too", () => {
    const bad: string[] = [];
    for (const session of bySession(corpus).values()) {
      const enc = new SessionEncoder();
      const dec = new SessionDecoder();
      for (const s of session) {
        const f = enc.encode(s.tree);
        enc.acknowledge(dec.decode(f.bytes).inserted);
        if (!agree(f.bytes)) bad.push(label(s));
      }
    }
    expect(bad.slice(0, 5)).toEqual([]);
  });
});
