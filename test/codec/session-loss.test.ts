/**
 * The session table survives packet loss (QPACK-style): frames dropped, duplicated and reordered on the
 * way, acknowledgements dropped and reordered on the way back — every frame that arrives decodes to
 * exactly the stanza that was sent.
 */
import { describe, expect, it } from "vitest";
import {
  CodecError,
  type EncodedFrame,
  el,
  JABBER_CLIENT,
  SessionDecoder,
  SessionEncoder,
  StatelessEncoder,
  sameInfoset,
  type XElement,
} from "../../codec/index.js";
import { parseXml, toXml } from "../../gateway/xml/stanza-xml.js";
import { describeError, loadCorpus } from "../kit/corpus.js";
import { seededRandom } from "../kit/seeded-random.js";

const visible = loadCorpus("visible");
const STANZAS: XElement[] = [
  ...visible.filter((s) => s.entry.xep === 323 || s.entry.xep === 325 || s.entry.xep === 60),
  ...loadCorpus("rfc"),
].map((s) => s.tree);

/**
 * A lossy datagram channel: each sent item is dropped, delivered, duplicated, or held back and delivered
 * after a few later sends. `deliver` is called for every item that arrives, in arrival order.
 */
class LossyChannel<T> {
  private held: { item: T; due: number }[] = [];
  private clock = 0;

  constructor(
    private readonly random: () => number,
    private readonly rates: { drop: number; duplicate: number; reorder: number },
    private readonly deliver: (item: T) => void,
  ) {}

  send(item: T): void {
    this.clock++;
    const r = this.random();
    if (r < this.rates.drop) {
      // lost
    } else if (r < this.rates.drop + this.rates.reorder) {
      this.held.push({ item, due: this.clock + 1 + Math.floor(this.random() * 6) });
    } else {
      this.deliver(item);
      if (this.random() < this.rates.duplicate) {
        // The copy arrives now or later.
        if (this.random() < 0.5) this.deliver(item);
        else this.held.push({ item, due: this.clock + 1 + Math.floor(this.random() * 6) });
      }
    }
    this.release(false);
  }

  /** Delivers held items that are due (all of them when `all`). */
  release(all: boolean): void {
    const due = this.held.filter((h) => all || h.due <= this.clock);
    this.held = this.held.filter((h) => !(all || h.due <= this.clock));
    for (const h of due) this.deliver(h.item);
  }
}

interface Datagram {
  readonly seq: number;
  readonly bytes: Uint8Array;
}

interface SessionStats {
  sent: number;
  received: number;
  duplicatesOrLate: number;
  mismatches: string[];
  errors: string[];
  smallerThanStateless: number;
  acksApplied: number;
}

/**
 * With `dedup`, the receiver decodes each frame once (as the cxmpp session layer does, by sequence
 * number) and the encoder may leave the insert base out (implicitBase); without, every copy is decoded.
 */
function simulate(seed: number, count: number, dedup = false): SessionStats {
  const random = seededRandom(seed);
  const encoder = new SessionEncoder({ implicitBase: dedup });
  const decoder = new SessionDecoder();
  const stateless = new StatelessEncoder();
  const sentStanza = new Map<number, XElement>();
  const seen = new Set<number>();
  const stats: SessionStats = {
    sent: 0,
    received: 0,
    duplicatesOrLate: 0,
    mismatches: [],
    errors: [],
    smallerThanStateless: 0,
    acksApplied: 0,
  };
  let highest = -1;

  const acks = new LossyChannel<readonly number[]>(
    random,
    { drop: 0.3, duplicate: 0, reorder: 0.2 },
    (ack) => {
      stats.acksApplied++;
      encoder.acknowledge(ack);
    },
  );
  const frames = new LossyChannel<Datagram>(random, { drop: 0.3, duplicate: 0.1, reorder: 0.2 }, (d) => {
    stats.received++;
    if (seen.has(d.seq) || d.seq < highest) stats.duplicatesOrLate++;
    if (dedup && seen.has(d.seq)) return;
    seen.add(d.seq);
    highest = Math.max(highest, d.seq);
    const expected = sentStanza.get(d.seq)!;
    try {
      const decoded = decoder.decode(d.bytes);
      if (!sameInfoset(decoded.stanza, expected)) {
        stats.mismatches.push(`seed ${seed} frame ${d.seq}: ${toXml(decoded.stanza).slice(0, 120)}`);
      }
      acks.send(decoded.inserted);
    } catch (error) {
      const code = error instanceof CodecError ? error.code : "not a CodecError";
      stats.errors.push(`seed ${seed} frame ${d.seq}: ${code} ${describeError(error)}`);
    }
  });

  for (let seq = 0; seq < count; seq++) {
    const stanza = STANZAS[seq % STANZAS.length]!;
    sentStanza.set(seq, stanza);
    const frame: EncodedFrame = encoder.encode(stanza);
    if (frame.bytes.length < stateless.encode(stanza).bytes.length) stats.smallerThanStateless++;
    stats.sent++;
    frames.send({ seq, bytes: frame.bytes });
  }
  frames.release(true);
  return stats;
}

describe("session table under loss, duplication and reordering", () => {
  it(`has a cycle of ${STANZAS.length} stanzas from XEP-0323, 0325, 0060 and the RFCs`, () => {
    expect(STANZAS.length).toBeGreaterThan(300);
  });

  it.each([1, 2, 3])("session %i: 2,000 stanzas, every frame that arrives decodes exactly", (session) => {
    const stats = simulate(0x5eed + session * 7919, 2000);
    expect(stats.mismatches.slice(0, 5), `${stats.mismatches.length} mismatches`).toEqual([]);
    expect(stats.errors.slice(0, 5), `${stats.errors.length} CodecErrors`).toEqual([]);
    // The channel did what it says: losses, duplicates/late frames, and acknowledgements that arrived.
    expect(stats.sent).toBe(2000);
    expect(stats.received).toBeGreaterThan(1200);
    expect(stats.received).toBeLessThan(1800);
    expect(stats.duplicatesOrLate).toBeGreaterThan(200);
    expect(stats.acksApplied).toBeGreaterThan(500);
    // Not vacuous: the session table is in use, so many frames beat the stateless encoding.
    expect(
      stats.smallerThanStateless,
      `${stats.smallerThanStateless} of 2000 frames smaller`,
    ).toBeGreaterThan(200);
  });
});

describe("QPACK rule in lockstep", () => {
  const NS = "urn:example:qpack";
  const stanza = (): XElement =>
    el(
      JABBER_CLIENT,
      "iq",
      { from: "sensor-17@field.example.org/unit-a", to: "gateway.example.org", type: "get", id: "k7Qz-001" },
      el(NS, "reading", { field: "soilMoistureVolumetric", unit: "percentVolume" }, "nominal-reading"),
    );

  it("an unacknowledged insert is never referenced; an acknowledged one is", () => {
    const encoder = new SessionEncoder();
    const frame1 = encoder.encode(stanza());
    expect(frame1.inserted.length, "frame 1 inserts strings").toBeGreaterThan(0);

    // Not acknowledged: frame 2 carries what it needs, a decoder that never saw frame 1 decodes it.
    const frame2 = encoder.encode(stanza());
    const fresh = new SessionDecoder();
    expect(sameInfoset(fresh.decode(frame2.bytes).stanza, stanza())).toBe(true);
    expect(encoder.pendingInserts).toBe(frame1.inserted.length + frame2.inserted.length);

    // Acknowledged: frame 3 references frame 1's entries and is smaller than frame 2.
    const decoder = new SessionDecoder();
    const decoded1 = decoder.decode(frame1.bytes);
    expect(sameInfoset(decoded1.stanza, stanza())).toBe(true);
    encoder.acknowledge(decoded1.inserted);
    const frame3 = encoder.encode(stanza());
    expect(frame3.bytes.length).toBeLessThan(frame2.bytes.length);

    // It needs frame 1: on a decoder that never saw frame 1 it is UNKNOWN_REF…
    for (const stranger of [new SessionDecoder(), fresh]) {
      try {
        stranger.decode(frame3.bytes);
        expect.unreachable("frame 3 decoded without frame 1's entries");
      } catch (error) {
        expect(error).toBeInstanceOf(CodecError);
        expect((error as CodecError).code).toBe("UNKNOWN_REF");
      }
    }
    // …and after frame 1 it decodes exactly, whether or not frame 2 arrived in between.
    expect(sameInfoset(decoder.decode(frame3.bytes).stanza, stanza())).toBe(true);
    expect(sameInfoset(decoder.decode(frame2.bytes).stanza, stanza())).toBe(true);
    expect(sameInfoset(decoder.decode(frame3.bytes).stanza, stanza())).toBe(true);
  });

  it("acknowledging unknown or repeated indices is harmless", () => {
    const encoder = new SessionEncoder();
    const decoder = new SessionDecoder();
    const frame1 = encoder.encode(stanza());
    const decoded = decoder.decode(frame1.bytes);
    encoder.acknowledge([...decoded.inserted, ...decoded.inserted, 999_999, -1]);
    encoder.acknowledge(decoded.inserted);
    expect(encoder.pendingInserts).toBe(0);
    for (let i = 0; i < 3; i++) {
      const frame = encoder.encode(stanza());
      expect(sameInfoset(decoder.decode(frame.bytes).stanza, stanza())).toBe(true);
    }
  });

  it("a duplicated frame decodes twice to the same stanza and changes nothing", () => {
    const encoder = new SessionEncoder();
    const decoder = new SessionDecoder();
    const frame1 = encoder.encode(stanza());
    const a = decoder.decode(frame1.bytes);
    const size = decoder.tableSize;
    const b = decoder.decode(frame1.bytes);
    expect(sameInfoset(a.stanza, b.stanza)).toBe(true);
    expect(decoder.tableSize).toBe(size);
    encoder.acknowledge(b.inserted);
    expect(sameInfoset(decoder.decode(encoder.encode(stanza()).bytes).stanza, stanza())).toBe(true);
  });
});

describe("implicit insert base (the session layer's setting)", () => {
  it.each([4, 5])(
    "seed %i: 2,000 stanzas under loss, duplication and reordering, each frame decoded once",
    (seed) => {
      const stats = simulate(seed, 2000, true);
      expect(stats.errors).toEqual([]);
      expect(stats.mismatches).toEqual([]);
      expect(stats.duplicatesOrLate).toBeGreaterThan(50);
      expect(stats.smallerThanStateless).toBeGreaterThan(1000);
    },
  );

  it("is why the receiver must not decode a base-less frame twice: the copy inserts after the original", () => {
    const enc = new SessionEncoder({ implicitBase: true });
    const dec = new SessionDecoder();
    const frame = enc.encode(
      parseXml("<message xmlns='jabber:client' to='x@example.org/r'><body>unusual words</body></message>"),
    );
    expect(frame.inserted.length).toBeGreaterThan(0);
    const first = dec.decode(frame.bytes);
    expect(first.inserted).toEqual(frame.inserted);
    const again = dec.decode(frame.bytes);
    expect(again.inserted).not.toEqual(frame.inserted); // new, wrong indices: hence exactly-once decoding
  });
});

describe("unsequenced frames (NON telemetry)", () => {
  it("insert nothing, use acknowledged entries, and decode in any order or not at all", () => {
    const reading = (v: string) =>
      parseXml(
        `<message xmlns='jabber:client' to='sink@iot.example.org'><x xmlns='urn:example:t' unit='Cel' v='${v}'/></message>`,
      );
    const enc = new SessionEncoder();
    const dec = new SessionDecoder();
    const first = enc.encode(reading("20.5"));
    enc.acknowledge(dec.decode(first.bytes).inserted);
    const frames = ["20.6", "20.7", "20.8"].map((v) => enc.encodeUnsequenced(reading(v)));
    for (const f of frames) expect(f.inserted).toEqual([]);
    // Smaller than the first frame: the acknowledged entries are referenced.
    for (const f of frames) expect(f.bytes.length).toBeLessThan(first.bytes.length);
    const before = dec.tableSize;
    for (const i of [2, 0]) {
      const d = dec.decode(frames[i]!.bytes); // frame 1 is "lost", the others arrive reordered
      expect(d.inserted).toEqual([]);
      expect(sameInfoset(d.stanza, reading(["20.6", "20.7", "20.8"][i]!))).toBe(true);
    }
    expect(dec.tableSize).toBe(before);
  });
});
