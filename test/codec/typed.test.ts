/**
 * Typed values (codec/typed.ts): a string is carried in binary only when it renders back byte-identical.
 * Every `parse*` either declines (undefined) or returns a value whose `render*` is exactly the input.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  joinJid,
  parseBase64,
  parseDate,
  parseDecimal,
  parseHex,
  parseInteger,
  parseTimestamp,
  parseUuid,
  renderBase64,
  renderDate,
  renderDecimal,
  renderHex,
  renderInteger,
  renderTimestamp,
  renderUuid,
  splitJid,
} from "../../codec/typed.js";

/** Each typed kind as a parse/render pair over strings. */
const KINDS: Record<string, (s: string) => string | undefined> = {
  integer: (s) => {
    const v = parseInteger(s);
    return v === undefined ? undefined : renderInteger(v);
  },
  decimal: (s) => {
    const v = parseDecimal(s);
    return v === undefined ? undefined : renderDecimal(v);
  },
  timestamp: (s) => {
    const v = parseTimestamp(s);
    return v === undefined ? undefined : renderTimestamp(v);
  },
  date: (s) => {
    const v = parseDate(s);
    return v === undefined ? undefined : renderDate(v);
  },
  hex: (s) => {
    const v = parseHex(s);
    return v === undefined ? undefined : renderHex(v);
  },
  base64: (s) => {
    const v = parseBase64(s);
    return v === undefined ? undefined : renderBase64(v);
  },
  uuid: (s) => {
    const v = parseUuid(s);
    return v === undefined ? undefined : renderUuid(v);
  },
};

/** Parses with `kind`: "rejected", or the rendering (which must be the input). */
function roundTrip(kind: string, s: string): string {
  return KINDS[kind]!(s) ?? "rejected";
}

describe("integers", () => {
  it.each(["0", "7", "-17", "41", "1000000", "9007199254740991", "-9007199254740991"])("%s is exact", (s) => {
    expect(parseInteger(s)).toBe(Number(s));
    expect(renderInteger(parseInteger(s)!)).toBe(s);
  });
  it.each([
    "007",
    "00",
    "-0",
    "+1",
    "1e5",
    "1E5",
    "1.0",
    " 1",
    "1 ",
    "",
    "-",
    "0x10",
    "9007199254740992",
    "12345678901234567890",
    "١٢",
  ])("'%s' is not an integer", (s) => {
    expect(parseInteger(s)).toBeUndefined();
  });
});

describe("decimals", () => {
  it.each([
    ["41.7", -1, 417],
    ["41.70", -2, 4170],
    ["-0.5", -1, -5],
    ["0.0", -1, 0],
    ["0.005", -3, 5],
    ["-12.50", -2, -1250],
    ["123456789012345.5", -1, 1234567890123455],
  ])("%s is exactly m×10^e", (s, exponent, mantissa) => {
    expect(parseDecimal(s)).toEqual({ exponent, mantissa });
    expect(renderDecimal({ exponent, mantissa })).toBe(s);
  });
  it.each([
    "-0.0",
    "1e5",
    "1.5e3",
    ".5",
    "5.",
    "00.5",
    "+1.5",
    "1,5",
    "1.2.3",
    "41",
    "-",
    "0.1234567890123",
    "9999999999999999.9",
  ])("'%s' is not a decimal", (s) => {
    expect(parseDecimal(s)).toBeUndefined();
  });
});

describe("timestamps (XEP-0082)", () => {
  it.each([
    "2002-09-10T23:08:25Z",
    "2002-09-10T23:08:25.123-07:00",
    "2002-09-10T23:08:25.000Z",
    "2002-09-10T23:08:25.5+05:30",
    "2002-09-10T23:08:25+00:00",
    "2002-09-10T23:08:25.123456789Z",
    "1000-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "2000-02-29T12:00:00Z",
  ])("%s parses and renders exactly", (s) => {
    expect(parseTimestamp(s)).toBeDefined();
    expect(roundTrip("timestamp", s)).toBe(s);
  });
  it.each([
    "2002-09-10T23:08:25-00:00", // would come back as +00:00
    "2002-09-10T24:00:00Z",
    "2002-09-10T23:60:00Z",
    "2002-09-10T23:08:60Z", // leap second: Date would roll over
    "2002-02-29T00:00:00Z",
    "2002-13-01T00:00:00Z",
    "2002-09-10 23:08:25Z",
    "2002-09-10t23:08:25z",
    "2002-09-10T23:08:25.Z",
    "2002-09-10T23:08:25.1234567890Z",
    "2002-09-10T23:08Z",
    "0999-12-31T23:59:59Z",
    "2002-09-10T23:08:25+0700",
    "+2002-09-10T23:08:25Z",
  ])("%s is not a timestamp", (s) => {
    expect(parseTimestamp(s)).toBeUndefined();
  });
  it("a timestamp without zone designator is rejected or exact", () => {
    for (const s of ["2013-03-07T16:24:30", "2013-03-07T16:24:30.250"])
      expect([s, "rejected"]).toContain(roundTrip("timestamp", s));
  });
});

describe("dates", () => {
  it.each(["2002-09-10", "2000-02-29", "1970-01-01", "1000-01-01", "9999-12-31", "1969-12-31"])(
    "%s is exact",
    (s) => {
      expect(parseDate(s)).toBeDefined();
      expect(renderDate(parseDate(s)!)).toBe(s);
    },
  );
  it("1970-01-01 is day 0", () => {
    expect(parseDate("1970-01-01")).toBe(0);
    expect(parseDate("1970-01-02")).toBe(1);
  });
  it.each([
    "2002-02-29",
    "2002-13-01",
    "2002-00-10",
    "2002-09-31",
    "2002-9-10",
    "02002-09-10",
    "0999-01-01",
    "2002-09-10Z",
  ])("%s is not a date", (s) => {
    expect(parseDate(s)).toBeUndefined();
  });
});

describe("base64", () => {
  it.each(["QUJDREVG", "QUJDREVGRw==", "QUJDREVGR0g=", "AAAAAAAA", "////////", "+/+/+/+/"])(
    "canonical %s is exact",
    (s) => {
      expect(parseBase64(s)).toBeDefined();
      expect(renderBase64(parseBase64(s)!)).toBe(s);
    },
  );
  it("decodes to the bytes Node decodes", () => {
    expect(Buffer.from(parseBase64("QUJDREVGR0g=")!).toString("latin1")).toBe("ABCDEFGH");
  });
  it.each([
    "QUJDREVGRx==", // nonzero pad bits: would come back as QUJDREVGRw==
    "QUJDREVGR0h=", // nonzero pad bits: would come back as QUJDREVGR0g=
    "QUJDREVGRw=", // bad padding length
    "QUJDREVGRw", // unpadded
    "QUJD REVG",
    "QUJDREVG\n",
    "QUJD-_VG", // base64url
    "QUJDREVGRw===",
  ])("non-canonical %s does not parse", (s) => {
    expect(parseBase64(s)).toBeUndefined();
  });
  it("short strings are rejected or exact", () => {
    for (const s of ["QUJD", "QQ==", "QUI=", "QUJ="])
      expect([s, "rejected"]).toContain(roundTrip("base64", s));
    expect(roundTrip("base64", "QUJ=")).toBe("rejected"); // nonzero pad bits never round-trip
  });
});

describe("hex and UUIDs", () => {
  it("lowercase hex is exact, other forms are not hex", () => {
    expect(renderHex(parseHex("deadbeef")!)).toBe("deadbeef");
    expect(Array.from(parseHex("00ff10a0")!)).toEqual([0, 255, 16, 160]);
    for (const s of ["DEADBEEF", "DeadBeef", "deadbee", "deadbeefg0", "0xdeadbeef", "dead beef"])
      expect(parseHex(s), s).toBeUndefined();
  });
  it("lowercase UUIDs are exact, other forms are not UUIDs", () => {
    const u = "f81d4fae-7dec-11d0-a765-00a0c91e6bf6";
    expect(parseUuid(u)!.length).toBe(16);
    expect(renderUuid(parseUuid(u)!)).toBe(u);
    for (const s of [
      u.toUpperCase(),
      u.replace(/-/g, ""),
      `{${u}}`,
      "f81d4fae7-dec-11d0-a765-00a0c91e6bf6",
      "f81d4fae-7dec-11d0-a765-00a0c91e6bf",
      "g81d4fae-7dec-11d0-a765-00a0c91e6bf6",
    ])
      expect(parseUuid(s), s).toBeUndefined();
  });
});

describe("JIDs", () => {
  it.each(["a@b.c", "a@b.c/d", "b.c/d", "a@b.c/d/e@f", "juliet@example.com/balcony"])(
    "%s splits and joins exactly",
    (s) => {
      const parts = splitJid(s);
      expect(parts).toBeDefined();
      expect(joinJid(parts!)).toBe(s);
    },
  );
  it("splits at the first @ and the first / after the domain (RFC 7622 §3.1)", () => {
    expect(splitJid("a@b.c/d/e@f")).toEqual({ local: "a", domain: "b.c", resource: "d/e@f" });
  });
  it.each(["@b.c", "a@b.c/", "a@", "", "plain", "a@b c.d"])("'%s' is not split", (s) => {
    expect(splitJid(s)).toBeUndefined();
  });
});

describe("property: parse then render is the identity", () => {
  const biased = fc.string({
    unit: fc.oneof(
      { weight: 6, arbitrary: fc.constantFrom(..."0123456789") },
      { weight: 3, arbitrary: fc.constantFrom(..."-.:TZ+") },
      { weight: 1, arbitrary: fc.constantFrom(..."abcdefABCDEF=/ e") },
    ),
    maxLength: 40,
  });
  const shaped = fc.oneof(
    biased,
    // Mutations of well-formed values, so that the regexes match and the deeper checks run.
    fc
      .tuple(
        fc.constantFrom(
          "2002-09-10T23:08:25Z",
          "2002-09-10T23:08:25.123-07:00",
          "2013-03-07T16:24:30",
          "2002-09-10",
          "41.70",
          "-0.5",
          "9007199254740991",
          "QUJDREVGRw==",
          "deadbeefdeadbeef",
          "f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
        ),
        fc.nat(),
        fc.constantFrom(..."0123456789-.:TZ+=aA9"),
      )
      .map(([s, at, c]) => s.slice(0, at % s.length) + c + s.slice((at % s.length) + 1)),
  );

  it.each(Object.keys(KINDS))("%s", (kind) => {
    let accepted = 0;
    fc.assert(
      fc.property(shaped, (s) => {
        const r = roundTrip(kind, s);
        if (r !== "rejected") {
          accepted++;
          expect(r).toBe(s);
        }
      }),
      { seed: 7, numRuns: 2000 },
    );
    expect(accepted, `${kind}: some inputs were accepted, so the property was exercised`).toBeGreaterThan(0);
  });

  it("rendered values from the decoder's range parse back to the same string", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 9 }),
        fc.integer({ min: -(2 ** 53) + 1, max: 2 ** 53 - 1 }),
        (scale, mantissa) => {
          const s = renderDecimal({ exponent: -scale, mantissa });
          const back = parseDecimal(s);
          if (back !== undefined) expect(back).toEqual({ exponent: -scale, mantissa });
          // Up to 15 integer digits the rendering is always accepted again.
          const integerDigits = s.replace("-", "").indexOf(".");
          if (integerDigits <= 15) expect(back, s).toBeDefined();
        },
      ),
      { seed: 8, numRuns: 2000 },
    );
    fc.assert(
      fc.property(fc.integer({ min: -30_610_224_000, max: 253_402_300_799 }), (seconds) => {
        const s = renderTimestamp({ seconds, zone: null, fraction: 0, fractionDigits: 0 });
        expect(roundTrip("timestamp", s)).toBe(s);
      }),
      { seed: 9, numRuns: 2000 },
    );
    fc.assert(
      fc.property(fc.integer({ min: -354_000, max: 2_932_896 }), (days) => {
        const s = renderDate(days);
        expect(parseDate(s)).toBe(days);
      }),
      { seed: 10, numRuns: 2000 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 6, maxLength: 40 }), (bytes) => {
        const s = renderBase64(bytes);
        expect(s).toBe(Buffer.from(bytes).toString("base64"));
        expect(Array.from(parseBase64(s) ?? [])).toEqual(Array.from(bytes));
      }),
      { seed: 11, numRuns: 1000 },
    );
  });
});
