/**
 * Templates and deltas (docs/FORMAT.md §6.6): a stanza whose structure matches an acknowledged one goes as
 * a reference to it with only the values that differ, numbers and times as deltas. Exact whatever the
 * values, loss-safe like the rest of the table, and hostile override maps fail with a CodecError.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  CodecError,
  diagnostic,
  el,
  SessionDecoder,
  SessionEncoder,
  sameInfoset,
  type XElement,
} from "../../codec/index.js";
import { applyDelta, deltaOf } from "../../codec/typed.js";
import { SENSORDATA, sensorDataMessage } from "../../examples/iot-stanzas.js";
import { concat, head, MAJOR, text } from "../kit/cbor.js";
import { seededRandom } from "../kit/seeded-random.js";

const SD = SENSORDATA;
const aliases = ["sensor1@iot.example.org/a", "iot.example.org", "sink@iot.example.org"];

function reading(seq: number, time: string, value: string, unit = "°C"): XElement {
  const field = el(SD, "numeric", { name: "temperature", momentary: "true", value, unit });
  return sensorDataMessage(
    { to: "sink@iot.example.org" },
    { nodeId: "n1", seqnr: seq, timestamp: time, field },
  );
}

const iso = (s: number): string => new Date(s * 1000).toISOString().replace(".000Z", "Z");
const T0 = Date.UTC(2026, 10, 27, 10) / 1000;

describe("deltas (an int overriding a number or time)", () => {
  it("integers, decimals and date-times round trip through deltaOf/applyDelta", () => {
    const int = fc.integer({ min: -1e12, max: 1e12 }).map(String);
    const dec = fc
      .tuple(fc.integer({ min: -1e9, max: 1e9 }), fc.integer({ min: 1, max: 6 }))
      .map(([m, scale]) => {
        const digits = String(Math.abs(m)).padStart(scale + 1, "0");
        const s = `${m < 0 ? "-" : ""}${digits.slice(0, -scale)}.${digits.slice(-scale)}`;
        return s.startsWith("-") && /^-0\.0+$/.test(s) ? s.slice(1) : s;
      });
    const time = fc
      .tuple(fc.integer({ min: -3e10, max: 2.5e11 }), fc.constantFrom("Z", "", "+01:00", "-05:30"))
      .map(([s, zone]) => `${new Date(s * 1000).toISOString().slice(0, 19)}${zone}`);
    for (const gen of [int, dec, time]) {
      fc.assert(
        fc.property(gen, gen, (a, b) => {
          const d = deltaOf(a, b);
          if (d !== undefined) expect(applyDelta(a, d)).toBe(b);
        }),
        { numRuns: 300 },
      );
    }
    expect(deltaOf("21.5", "21.7")).toBe(2);
    expect(deltaOf("7", "300")).toBe(293);
    expect(deltaOf("2026-11-27T10:00:00Z", "2026-11-27T10:01:00Z")).toBe(60);
    expect(deltaOf("2026-11-27T10:00:00.250+01:00", "2026-11-27T09:59:59.250+01:00")).toBe(-1);
  });

  it("exists only between values of one form", () => {
    expect(deltaOf("21.5", "21.75")).toBeUndefined(); // other fraction digits
    expect(deltaOf("21", "21.5")).toBeUndefined();
    expect(deltaOf("2026-11-27T10:00:00Z", "2026-11-27T10:00:00+01:00")).toBeUndefined();
    expect(deltaOf("on", "off")).toBeUndefined();
    expect(deltaOf("007", "008")).toBeUndefined(); // not a canonical integer: it stays a string
    expect(applyDelta("on", 1)).toBeUndefined();
    expect(applyDelta("9999-12-31T23:59:59Z", 1)).toBeUndefined(); // past tag 1's range
    expect(applyDelta(String(Number.MAX_SAFE_INTEGER), 1)).toBeUndefined();
    expect(applyDelta("-0.5", 5)).toBe("0.0");
  });
});

describe("templates", () => {
  it("a repeated reading costs its changed values, and exactly what it was decodes", () => {
    const enc = new SessionEncoder({ aliases, implicitBase: true });
    const dec = new SessionDecoder({ aliases });
    const plain = new SessionEncoder({ aliases, implicitBase: true, templates: false });
    const sizes: number[] = [];
    const plainSizes: number[] = [];
    for (let i = 0; i < 40; i++) {
      const stanza = reading(i + 1, iso(T0 + 60 * i), (20 + (i % 7) / 10).toFixed(1));
      const f = i === 0 ? enc.encode(stanza) : enc.encodeUnsequenced(stanza);
      const p = i === 0 ? plain.encode(stanza) : plain.encodeUnsequenced(stanza);
      expect(sameInfoset(dec.decode(f.bytes).stanza, stanza)).toBe(true);
      enc.acknowledge(f.inserted);
      plain.acknowledge(p.inserted);
      sizes.push(f.bytes.length);
      plainSizes.push(p.bytes.length);
    }
    // The first inserts the template (one byte more than format 1); every later one is an instance.
    expect(sizes[0]).toBe(plainSizes[0]! + 1);
    for (let i = 1; i < 40; i++) expect(sizes[i]).toBeLessThanOrEqual(plainSizes[i]! - 10);
    expect(Math.max(...sizes.slice(1))).toBeLessThanOrEqual(16);
  });

  it("is only referenced once acknowledged, and not inserted twice while its frame is in flight", () => {
    const enc = new SessionEncoder({ aliases, implicitBase: true });
    const first = enc.encode(reading(1, iso(T0), "20.0"));
    const second = enc.encode(reading(2, iso(T0 + 60), "20.1"));
    // Not acknowledged yet: no reference to it, and no second copy of the same template.
    expect(second.bytes.length).toBeGreaterThan(20);
    expect(first.bytes[0]).toBe(0xcd); // tag 13 on the root: the template insert
    expect(second.bytes.includes(0xcd) && second.bytes.indexOf(0xcd) <= 1).toBe(false);
    enc.acknowledge(first.inserted);
    enc.acknowledge(second.inserted);
    expect(enc.encode(reading(3, iso(T0 + 120), "20.2")).bytes.length).toBeLessThanOrEqual(16);
  });

  it("survives loss, duplicates and reordering of NON frames (seeded)", () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const random = seededRandom(seed);
      const enc = new SessionEncoder({ aliases, implicitBase: true });
      const dec = new SessionDecoder({ aliases });
      const late: { bytes: Uint8Array; stanza: XElement }[] = [];
      for (let i = 0; i < 200; i++) {
        const variant = random() < 0.1 ? reading(i, iso(T0 + i), "x", "K") : undefined;
        const stanza = variant ?? reading(i, iso(T0 + 37 * i), (random() * 80 - 40).toFixed(2));
        const sequenced = random() < 0.2;
        const f = sequenced ? enc.encode(stanza) : enc.encodeUnsequenced(stanza);
        if (sequenced) {
          // Sequenced frames arrive in order (the session layer retransmits them); the ack may be lost.
          expect(sameInfoset(dec.decode(f.bytes).stanza, stanza)).toBe(true);
          if (random() < 0.7) enc.acknowledge(f.inserted);
        } else if (random() < 0.3) late.push({ bytes: f.bytes, stanza });
        else if (random() < 0.8) expect(sameInfoset(dec.decode(f.bytes).stanza, stanza)).toBe(true);
        if (late.length > 0 && random() < 0.2) {
          const l = late.splice(Math.floor(random() * late.length), 1)[0]!;
          expect(sameInfoset(dec.decode(l.bytes).stanza, l.stanza)).toBe(true);
          expect(sameInfoset(dec.decode(l.bytes).stanza, l.stanza)).toBe(true); // a duplicate
        }
      }
      for (const l of late) expect(sameInfoset(dec.decode(l.bytes).stanza, l.stanza)).toBe(true);
    }
  });

  it("arbitrary values in a fixed structure round trip exactly", () => {
    const value = fc.oneof(
      fc.integer({ min: -1e6, max: 1e6 }).map(String),
      fc.double({ min: -1e4, max: 1e4, noNaN: true }).map((x) => x.toFixed(2)),
      fc.integer({ min: 0, max: 2e9 }).map(iso),
      fc.string({ minLength: 1, maxLength: 12 }),
    );
    const enc = new SessionEncoder({ aliases, implicitBase: true });
    const dec = new SessionDecoder({ aliases });
    fc.assert(
      fc.property(value, value, value, (seq, time, v) => {
        const stanza = el(
          "jabber:client",
          "message",
          { to: "sink@iot.example.org" },
          el(SD, "fields", { seqnr: seq }, el(SD, "timestamp", { value: time }, el(SD, "v", {}, v))),
        );
        const f = enc.encode(stanza);
        expect(sameInfoset(dec.decode(f.bytes).stanza, stanza)).toBe(true);
        enc.acknowledge(f.inserted);
      }),
      { numRuns: 400 },
    );
  });

  it("a format 1 encoder writes no template and no delta", () => {
    const enc = new SessionEncoder({ aliases, implicitBase: true, templates: false });
    const dec = new SessionDecoder({ aliases });
    for (let i = 0; i < 10; i++) {
      const f = enc.encode(reading(i + 1, iso(T0 + 60 * i), "20.5"));
      dec.decode(f.bytes);
      // No template is ever inserted (so none can be referenced), and no root is a subtree insert.
      for (const entry of enc.entries(f.inserted))
        expect(typeof entry === "object" && entry.kind === "subtree" && entry.template === true).toBe(false);
      expect(diagnostic(f.bytes)).not.toMatch(/^(\d+, )?13\(/);
      enc.acknowledge(f.inserted);
    }
  });

  it("takes at most a quarter of the table", () => {
    const enc = new SessionEncoder({ aliases, limits: { maxTableBytes: 2048 } });
    const dec = new SessionDecoder({ aliases, limits: { maxTableBytes: 2048 } });
    let templates = 0;
    for (let i = 0; i < 40; i++) {
      // Forty structures (a different element name each): each would be a template of its own.
      const stanza = el(
        "jabber:client",
        "message",
        { to: "sink@iot.example.org" },
        el(SD, `m${i}`, { a: "1" }),
      );
      const f = enc.encode(stanza);
      if (f.bytes[0] === 0xcd || f.bytes[1] === 0xcd) templates++;
      dec.decode(f.bytes);
      enc.acknowledge(f.inserted);
    }
    expect(templates).toBeGreaterThan(5);
    expect(templates).toBeLessThan(40);
  });
});

describe("hostile template instances", () => {
  // A session whose table holds the template at index 3 (aliases 0-2).
  function primed(): SessionDecoder {
    const enc = new SessionEncoder({ aliases, implicitBase: true });
    const dec = new SessionDecoder({ aliases });
    dec.decode(enc.encode(reading(1, iso(T0), "20.5")).bytes);
    return dec;
  }
  const ref = head(MAJOR.negint, 3);
  const inst = (...items: Uint8Array[]) => concat(head(MAJOR.array, 1 + items.length), ref, ...items);
  const cases: [string, Uint8Array, string][] = [
    ["no override", inst(), "BAD_STRUCTURE"],
    ["a slot without a value", inst(head(0, 1)), "BAD_STRUCTURE"],
    ["a slot past the last", inst(head(0, 9), text("x")), "BAD_STRUCTURE"],
    ["slots not ascending", inst(head(0, 2), text("a"), head(0, 1), text("b")), "BAD_STRUCTURE"],
    ["a map where a slot belongs", inst(head(MAJOR.map, 0), text("x")), "BAD_STRUCTURE"],
    ["a delta past year 9999", inst(head(0, 4), head(0, 2 ** 40)), "BAD_VALUE"],
    ["a delta past the safe integers", inst(head(0, 1), head(0, 2 ** 53)), "BAD_VALUE"],
    ["tag 12 (not a value)", concat(head(MAJOR.tag, 12), head(0, 1)), "BAD_STRUCTURE"],
    [
      "a template not held",
      concat(head(MAJOR.array, 3), head(MAJOR.negint, 99), head(0, 0), text("x")),
      "UNKNOWN_REF",
    ],
  ];
  for (const [name, frame, code] of cases) {
    it(`${name}: ${code}`, () => {
      const dec = primed();
      let error: unknown;
      try {
        dec.decode(frame);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(CodecError);
      expect((error as CodecError).code).toBe(code);
      // The session goes on: a good instance still decodes.
      const good = inst(head(0, 1), head(0, 1));
      const fields = dec.decode(good).stanza.children[0] as XElement;
      expect(fields.attrs.find((a) => a.name === "seqnr")?.value).toBe("2");
    });
  }

  it("an instance below the root is an element like any other", () => {
    const dec = primed();
    // <wrapper>[template 3 with seqnr + 5]</wrapper> as a child: the decoder takes it anywhere.
    const frame = concat(head(MAJOR.array, 2), text("wrapper"), inst(head(0, 1), head(0, 5)));
    const stanza = dec.decode(frame).stanza;
    const inner = stanza.children[0] as XElement;
    expect(inner.name).toBe("message");
    expect((inner.children[0] as XElement).attrs[0]!.value).toBe("6");
  });
});
