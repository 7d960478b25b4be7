/** RFC 7252 §3 message format: exact bytes, round trips, and malformed datagrams. */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  blockOption,
  CoapFormatError,
  type CoapMessage,
  isUtf8,
  parseMessage,
  pathOptions,
  readBlock,
  serializeMessage,
  uintOption,
  uriPath,
} from "../../src/core/coap/message.js";
import {
  Code,
  ContentFormat,
  KNOWN_OPTIONS,
  MessageType,
  OptionNumber,
} from "../../src/core/coap/registry.js";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const bytes = (h: string) => Uint8Array.from(Buffer.from(h, "hex"));

describe("CoAP message format", () => {
  it("serialises a CON GET with path, token and payload exactly (RFC 7252 §3)", () => {
    const m: CoapMessage = {
      type: MessageType.CON,
      code: Code.POST,
      messageId: 0x1234,
      token: bytes("a1b2"),
      options: [...pathOptions("s/u"), uintOption(OptionNumber.CONTENT_FORMAT, 60)],
      payload: bytes("8101"),
    };
    // 0x42: ver 1, CON, TKL 2; 0x02 POST; MID; token; Uri-Path 's' (delta 11, len 1); 'u' (delta 0);
    // Content-Format 60 (delta 1, len 1); marker; payload.
    expect(hex(serializeMessage(m))).toBe("42021234a1b2b1730175113cff8101");
    expect(parseMessage(serializeMessage(m))).toEqual(m);
  });

  it("uses the extended option delta and length forms (13 and 14)", () => {
    const big = new Uint8Array(300).fill(7);
    const m: CoapMessage = {
      type: MessageType.NON,
      code: Code.CONTENT,
      messageId: 1,
      token: new Uint8Array(0),
      options: [{ number: OptionNumber.REQUEST_TAG, value: big }],
      payload: new Uint8Array(0),
    };
    const wire = serializeMessage(m);
    expect(wire[4]).toBe(0xee); // delta 292 → 14 (+2 bytes), length 300 → 14 (+2 bytes)
    expect(parseMessage(wire)).toEqual(m);
  });

  it("round-trips any well-formed message (property)", () => {
    const option = fc.record({
      number: fc.integer({ min: 0, max: 2000 }),
      value: fc.uint8Array({ maxLength: 300 }),
    });
    fc.assert(
      fc.property(
        fc.record({
          type: fc.constantFrom(0, 1, 2, 3),
          code: fc.integer({ min: 1, max: 255 }),
          messageId: fc.integer({ min: 0, max: 0xffff }),
          token: fc.uint8Array({ maxLength: 8 }),
          options: fc.array(option, { maxLength: 6 }),
          payload: fc.uint8Array({ maxLength: 64 }),
        }),
        (r) => {
          const m = {
            ...r,
            type: r.type as MessageType,
            options: [...r.options].sort((a, b) => a.number - b.number),
          };
          expect(parseMessage(serializeMessage(m))).toEqual(m);
        },
      ),
      { seed: 7, numRuns: 500 },
    );
  });

  it("rejects malformed datagrams with CoapFormatError, keeping what it could parse", () => {
    const cases: Array<[string, string]> = [
      ["", "shorter than a CoAP header"],
      ["4001", "shorter than a CoAP header"],
      ["80011234", "version"], // version 2
      ["49011234", "token length"], // TKL 9
      ["42011234a1", "token cut short"],
      ["40011234ff", "payload marker without payload"],
      ["40011234d1", "bad option delta"], // delta 13 without its extension byte
      ["40011234f0", "bad option delta"], // delta 15 (reserved)
      ["400112340f", "bad option length"], // length 15 (reserved)
      ["4001123413", "option value cut short"],
      ["6000123401", "empty message"], // ACK 0.00 with trailing bytes
    ];
    for (const [h, why] of cases) {
      let error: unknown;
      try {
        parseMessage(bytes(h));
      } catch (e) {
        error = e;
      }
      expect(error, h).toBeInstanceOf(CoapFormatError);
      expect((error as Error).message, h).toContain(why);
    }
    const e = (() => {
      try {
        parseMessage(bytes("42011234a1b2f0"));
      } catch (x) {
        return x as CoapFormatError;
      }
      return undefined;
    })();
    expect(e?.type).toBe(MessageType.CON);
    expect(e?.messageId).toBe(0x1234);
    expect(hex(e!.token!)).toBe("a1b2");
  });

  it("never throws anything but CoapFormatError on arbitrary bytes (fuzz)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), (data) => {
        try {
          parseMessage(data);
        } catch (e) {
          expect(e).toBeInstanceOf(CoapFormatError);
        }
      }),
      { seed: 11, numRuns: 3000 },
    );
  });

  it("reads Uri-Path and Block values (RFC 7959 §2.2)", () => {
    const m = parseMessage(
      serializeMessage({
        type: 0,
        code: Code.GET,
        messageId: 2,
        token: new Uint8Array(0),
        options: [
          ...pathOptions(".well-known/core"),
          blockOption(OptionNumber.BLOCK2, { num: 3, more: true, szx: 2 }),
        ],
        payload: new Uint8Array(0),
      }),
    );
    expect(uriPath(m)).toBe(".well-known/core");
    const block = m.options.find((o) => o.number === OptionNumber.BLOCK2)!;
    expect(hex(block.value)).toBe("3a");
    expect(readBlock(block.value)).toEqual({ num: 3, more: true, szx: 2 });
    expect(readBlock(bytes("0f"))).toBeUndefined(); // SZX 7 is reserved
  });
});

describe("isUtf8 (string options, RFC 7252 §3.2)", () => {
  it("agrees with a fatal TextDecoder on arbitrary bytes", () => {
    const strict = new TextDecoder("utf-8", { fatal: true });
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 12 }), (bytes) => {
        let valid = true;
        try {
          strict.decode(bytes);
        } catch {
          valid = false;
        }
        expect(isUtf8(bytes)).toBe(valid);
      }),
      { numRuns: 20_000 },
    );
    for (const s of ["a/b", "é", "€", "𝄞", ""]) expect(isUtf8(new TextEncoder().encode(s))).toBe(true);
    for (const b of [[0xff], [0xc3, 0x28], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82]])
      expect(isUtf8(Uint8Array.from(b))).toBe(false);
  });
});

describe("registry constants", () => {
  it("KNOWN_OPTIONS is every OptionNumber, and the objects keep their numbers", () => {
    expect([...KNOWN_OPTIONS].sort((a, b) => a - b)).toEqual(
      Object.values(OptionNumber).sort((a, b) => a - b),
    );
    expect(MessageType).toEqual({ CON: 0, NON: 1, ACK: 2, RST: 3 });
    expect([Code.POST, Code.CONTINUE, Code.UNPROCESSABLE_ENTITY, Code.SERVICE_UNAVAILABLE]).toEqual([
      2, 95, 150, 163,
    ]);
    expect([OptionNumber.ECHO, OptionNumber.REQUEST_TAG, ContentFormat.CXMPP_SESSION]).toEqual([
      252, 292, 65_101,
    ]);
    expect(Object.isFrozen(Code) && Object.isFrozen(OptionNumber)).toBe(true);
  });
});
