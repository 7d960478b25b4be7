/**
 * The DTLS layer's building blocks on their own: the TLS 1.2 PRF against the published P_SHA256 vector,
 * the PSK premaster layout, the record protection of both suites, the replay window against a model,
 * and handshake reassembly under any fragmentation, duplication and order.
 */
import { createHmac } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  encodeHandshake,
  fragmentHandshake,
  type HandshakeMessage,
  parseFragments,
  Reassembler,
} from "../../src/dtls/handshake.js";
import { masterSecret, prf, pskPremaster, trafficKeys, verifyData } from "../../src/dtls/prf.js";
import {
  ContentType,
  DTLS_1_2,
  type DtlsRecord,
  encodeRecord,
  parseRecords,
  RecordProtection,
  ReplayWindow,
} from "../../src/dtls/record.js";
import {
  CIPHER_SUITES,
  TLS_PSK_WITH_AES_128_CCM_8,
  TLS_PSK_WITH_AES_128_GCM_SHA256,
} from "../../src/dtls/suites.js";
import { Reader, sameBytes, Writer } from "../../src/dtls/wire.js";
import { nodeDtlsCrypto } from "../../src/node/dtls-crypto.js";
import { hex, text, toHex } from "./kit.js";

const crypto = nodeDtlsCrypto;

/** P_SHA256 written out from RFC 5246 §5 with node:crypto directly: an independent cross-check. */
function referencePrf(secret: Uint8Array, label: string, seed: Uint8Array, length: number): Buffer {
  const hmac = (data: Buffer) => createHmac("sha256", secret).update(data).digest();
  const labelSeed = Buffer.concat([Buffer.from(label, "latin1"), seed]);
  const out: Buffer[] = [];
  let a = labelSeed;
  let n = 0;
  while (n < length) {
    a = hmac(a);
    const block = hmac(Buffer.concat([a, labelSeed]));
    out.push(block);
    n += block.length;
  }
  return Buffer.concat(out).subarray(0, length);
}

describe("TLS 1.2 PRF (RFC 5246 §5)", () => {
  // The P_SHA256 vector posted to the IETF TLS list (mail-archive/web/tls/current/msg03416.html) and
  // used by BearSSL, Bouncy Castle and others: 100 bytes of output.
  const secret = hex("9bbe436ba940f017b17652849a71db35");
  const seed = hex("a0ba9f936cda311827a6f796ffd5198c");
  const expected =
    "e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a" +
    "6b301791e90d35c9c9a46b4e14baf9af0fa022f7077def17abfd3797c0564bab" +
    "4fbc91666e9def9b97fce34f796789baa48082d122ee42c5a72e5a5110fff701" +
    "87347b66";

  it("matches the published P_SHA256 test vector (100 bytes)", () => {
    expect(toHex(prf(crypto, secret, "test label", seed, 100))).toBe(expected);
  });

  it("matches an independent HMAC computation, and every prefix length", () => {
    expect(toHex(referencePrf(secret, "test label", seed, 100))).toBe(expected);
    for (const n of [0, 1, 12, 31, 32, 33, 48, 64, 65, 99]) {
      expect(toHex(prf(crypto, secret, "test label", seed, n))).toBe(expected.slice(0, 2 * n));
    }
  });

  it("agrees with the reference for arbitrary secrets, labels, seeds and lengths", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 80 }),
        fc.stringMatching(/^[ -~]{0,24}$/),
        fc.uint8Array({ maxLength: 80 }),
        fc.integer({ min: 0, max: 200 }),
        (s, label, sd, n) => {
          expect(toHex(prf(crypto, s, label, sd, n))).toBe(toHex(referencePrf(s, label, sd, n)));
        },
      ),
      { numRuns: 300 },
    );
  });

  it("derives master secret, key block and Finished from the labels of RFC 5246 and RFC 7627", () => {
    const premaster = pskPremaster(text("secret"));
    const cr = new Uint8Array(32).fill(1);
    const sr = new Uint8Array(32).fill(2);
    const classic = masterSecret(crypto, { premaster, clientRandom: cr, serverRandom: sr });
    expect(toHex(classic)).toBe(toHex(referencePrf(premaster, "master secret", Buffer.concat([cr, sr]), 48)));
    const sessionHash = crypto.sha256(text("transcript"));
    const ems = masterSecret(crypto, { premaster, clientRandom: cr, serverRandom: sr, sessionHash });
    expect(toHex(ems)).toBe(toHex(referencePrf(premaster, "extended master secret", sessionHash, 48)));
    expect(toHex(ems)).not.toBe(toHex(classic));

    const suite = CIPHER_SUITES.get(TLS_PSK_WITH_AES_128_CCM_8)!;
    const keys = trafficKeys(crypto, suite, ems, cr, sr);
    const block = referencePrf(ems, "key expansion", Buffer.concat([sr, cr]), 40);
    expect(toHex(keys.clientKey)).toBe(toHex(block.subarray(0, 16)));
    expect(toHex(keys.serverKey)).toBe(toHex(block.subarray(16, 32)));
    expect(toHex(keys.clientIv)).toBe(toHex(block.subarray(32, 36)));
    expect(toHex(keys.serverIv)).toBe(toHex(block.subarray(36, 40)));

    const fin = verifyData(crypto, ems, "client", sessionHash);
    expect(fin.length).toBe(12);
    expect(toHex(fin)).toBe(toHex(referencePrf(ems, "client finished", sessionHash, 12)));
    expect(toHex(verifyData(crypto, ems, "server", sessionHash))).not.toBe(toHex(fin));
  });
});

describe("PSK premaster secret (RFC 4279 §2)", () => {
  it("is uint16 N, N zero bytes, uint16 N, the key", () => {
    expect(toHex(pskPremaster(hex("aabbcc")))).toBe("0003" + "000000" + "0003" + "aabbcc");
    const key = Uint8Array.from({ length: 16 }, (_, i) => i + 1);
    const p = pskPremaster(key);
    expect(p.length).toBe(36);
    expect(toHex(p)).toBe("0010" + "00".repeat(16) + "0010" + toHex(key));
  });

  it("encodes lengths of 256 bytes and more in two bytes", () => {
    const key = new Uint8Array(300).fill(0xee);
    const p = pskPremaster(key);
    expect(p.length).toBe(4 + 600);
    expect(toHex(p.subarray(0, 2))).toBe("012c");
    expect(p.subarray(2, 302).every((b) => b === 0)).toBe(true);
    expect(toHex(p.subarray(302, 304))).toBe("012c");
    expect(p.subarray(304).every((b) => b === 0xee)).toBe(true);
  });
});

describe("record protection (RFC 5288, RFC 6655)", () => {
  const key = hex("000102030405060708090a0b0c0d0e0f");
  const iv = hex("a0a1a2a3");

  for (const id of [TLS_PSK_WITH_AES_128_CCM_8, TLS_PSK_WITH_AES_128_GCM_SHA256]) {
    const suite = CIPHER_SUITES.get(id)!;

    it(`${suite.name}: seal/open round trip through the wire format`, () => {
      const writer = new RecordProtection(crypto, suite, key, iv);
      const reader = new RecordProtection(crypto, suite, key, iv);
      const plaintext = text("hello, constrained world");
      const fragment = writer.seal(ContentType.APPLICATION_DATA, DTLS_1_2, 1, 0x0102030405, plaintext);
      expect(fragment.length).toBe(plaintext.length + suite.recordIvLength + suite.tagLength);
      expect(writer.overhead).toBe(suite.recordIvLength + suite.tagLength);
      // The explicit nonce is epoch ‖ sequence number.
      expect(toHex(fragment.subarray(0, 8))).toBe("0001000102030405");
      const datagram = encodeRecord(ContentType.APPLICATION_DATA, DTLS_1_2, 1, 0x0102030405, fragment);
      const [record] = parseRecords(datagram);
      expect(record).toBeDefined();
      const opened = reader.open(record!);
      expect(opened && toHex(opened)).toBe(toHex(plaintext));
    });

    it(`${suite.name}: a record with any byte changed, or moved to another sequence number, is rejected`, () => {
      const writer = new RecordProtection(crypto, suite, key, iv);
      const reader = new RecordProtection(crypto, suite, key, iv);
      const fragment = writer.seal(ContentType.APPLICATION_DATA, DTLS_1_2, 1, 7, text("payload bytes"));
      const record = (f: Uint8Array, seq = 7, type: number = ContentType.APPLICATION_DATA): DtlsRecord => ({
        type,
        version: DTLS_1_2,
        epoch: 1,
        seq,
        fragment: f,
      });
      expect(reader.open(record(fragment))).toBeDefined();
      // Every byte after the explicit nonce is authenticated (the explicit nonce itself feeds the nonce).
      for (let i = 0; i < fragment.length; i++) {
        const damaged = fragment.slice();
        damaged[i]! ^= 0x01;
        expect(reader.open(record(damaged)), `byte ${i}`).toBeUndefined();
      }
      expect(reader.open(record(fragment, 8))).toBeUndefined();
      expect(reader.open(record(fragment, 7, ContentType.HANDSHAKE))).toBeUndefined();
      expect(reader.open(record(fragment.subarray(0, fragment.length - 1)))).toBeUndefined();
      expect(reader.open(record(fragment.subarray(0, 4)))).toBeUndefined();
      const otherKey = new RecordProtection(crypto, suite, hex("ff".repeat(16)), iv);
      expect(otherKey.open(record(fragment))).toBeUndefined();
    });
  }

  it("AES-128-CCM-8 through the adapter: seal/open and a tampered tag", () => {
    const nonce = hex("000102030405060708090a0b");
    const aad = text("header");
    const sealed = crypto.seal("aes-128-ccm-8", key, nonce, aad, text("abc"));
    expect(sealed.length).toBe(3 + 8);
    expect(crypto.open("aes-128-ccm-8", key, nonce, aad, sealed)).toEqual(text("abc"));
    const bad = sealed.slice();
    bad[bad.length - 1]! ^= 0x80;
    expect(crypto.open("aes-128-ccm-8", key, nonce, aad, bad)).toBeUndefined();
    expect(crypto.open("aes-128-ccm-8", key, nonce, text("Header"), sealed)).toBeUndefined();
    expect(crypto.open("aes-128-ccm-8", key, nonce, aad, sealed.subarray(0, 7))).toBeUndefined();
    // An empty plaintext still carries a tag that authenticates the additional data.
    const empty = crypto.seal("aes-128-ccm-8", key, nonce, aad, new Uint8Array(0));
    expect(empty.length).toBe(8);
    expect(crypto.open("aes-128-ccm-8", key, nonce, aad, empty)).toEqual(new Uint8Array(0));
  });
});

/** The replay window as a set: what RFC 6347 §4.1.2.6 says, with no bit tricks. */
class ModelWindow {
  newest = -1;
  readonly seen = new Set<number>();
  fresh(seq: number): boolean {
    if (seq > this.newest) return true;
    if (seq <= this.newest - 64) return false;
    return !this.seen.has(seq);
  }
  mark(seq: number): void {
    this.seen.add(seq);
    if (seq > this.newest) this.newest = seq;
  }
}

describe("ReplayWindow (RFC 6347 §4.1.2.6)", () => {
  it("accepts each sequence number once", () => {
    const w = new ReplayWindow();
    expect(w.fresh(0)).toBe(true);
    w.mark(0);
    expect(w.fresh(0)).toBe(false);
    expect(w.fresh(2)).toBe(true);
    w.mark(2);
    expect(w.fresh(1)).toBe(true);
    w.mark(1);
    expect([0, 1, 2].map((s) => w.fresh(s))).toEqual([false, false, false]);
    expect(w.fresh(3)).toBe(true);
  });

  it("slides by exactly 64: the newest minus 64 is too old, minus 63 is still in the window", () => {
    const w = new ReplayWindow();
    w.mark(0);
    w.mark(64);
    expect(w.fresh(0)).toBe(false); // 64 - 64: left the window
    expect(w.fresh(1)).toBe(true); // 64 - 63: in the window, never seen
    w.mark(1);
    expect(w.fresh(1)).toBe(false);
    w.mark(127);
    expect(w.fresh(63)).toBe(false); // 127 - 64
    expect(w.fresh(64)).toBe(false); // seen, still in the window
    expect(w.fresh(65)).toBe(true);
    expect(w.fresh(1)).toBe(false); // old
  });

  it("a slot reused after the window moved is not mistaken for the old record (same seq mod 64)", () => {
    const w = new ReplayWindow();
    for (let s = 0; s < 64; s++) w.mark(s);
    w.mark(100); // slides over 64..100: their slots (0..36 mod 64) must read as unseen now
    for (let s = 64; s < 100; s++) expect(w.fresh(s), `seq ${s}`).toBe(true);
    for (let s = 37; s < 64; s++) expect(w.fresh(s), `seq ${s}`).toBe(false);
    expect(w.fresh(36)).toBe(false); // 100 - 64
  });

  it("a far jump clears the whole window", () => {
    const w = new ReplayWindow();
    for (let s = 0; s < 10; s++) w.mark(s);
    w.mark(1000);
    expect(w.fresh(1000)).toBe(false);
    for (let s = 937; s < 1000; s++) expect(w.fresh(s)).toBe(true);
    expect(w.fresh(936)).toBe(false);
    expect(w.fresh(5)).toBe(false);
    const top = 2 ** 48 - 1;
    w.mark(top - 1);
    expect(w.fresh(top)).toBe(true);
    expect(w.fresh(top - 1)).toBe(false);
    expect(w.fresh(top - 64)).toBe(true);
    expect(w.fresh(top - 65)).toBe(false);
  });

  it("agrees with a set-based model on any sequence of records (fast-check)", () => {
    const seq = fc.oneof(
      { weight: 6, arbitrary: fc.integer({ min: 0, max: 300 }) },
      { weight: 1, arbitrary: fc.integer({ min: 0, max: 2 ** 48 - 1 }) },
    );
    const step = fc.oneof(
      { weight: 4, arbitrary: seq.map((s) => ({ kind: "abs" as const, s })) },
      // Near the newest: the interesting edge of the window.
      {
        weight: 4,
        arbitrary: fc.integer({ min: -70, max: 70 }).map((d) => ({ kind: "rel" as const, s: d })),
      },
    );
    fc.assert(
      fc.property(fc.array(step, { maxLength: 300 }), (steps) => {
        const w = new ReplayWindow();
        const m = new ModelWindow();
        for (const st of steps) {
          const s = st.kind === "abs" ? st.s : Math.max(0, Math.min(2 ** 48 - 1, m.newest + st.s));
          const fresh = m.fresh(s);
          expect(w.fresh(s)).toBe(fresh);
          if (fresh) {
            w.mark(s);
            m.mark(s);
          }
        }
        // And every number around the newest reads the same afterwards.
        for (let s = Math.max(0, m.newest - 70); s <= m.newest + 2; s++) expect(w.fresh(s)).toBe(m.fresh(s));
      }),
      { numRuns: 500 },
    );
  });
});

// ---- handshake fragmentation and reassembly ----

function fragmentBytes(m: HandshakeMessage, offset: number, end: number): Uint8Array {
  return new Writer()
    .u8(m.type)
    .u24(m.body.length)
    .u16(m.seq)
    .u24(offset)
    .u24(end - offset)
    .bytes(m.body.subarray(offset, end))
    .finish();
}

const messagesArb = fc
  .record({
    first: fc.integer({ min: 0, max: 5 }),
    bodies: fc.array(
      fc.record({ type: fc.integer({ min: 0, max: 255 }), body: fc.uint8Array({ maxLength: 400 }) }),
      { minLength: 1, maxLength: 8 },
    ),
  })
  .map(({ first, bodies }) => bodies.map((b, i): HandshakeMessage => ({ ...b, seq: first + i })));

/**
 * Messages cut at random offsets, some pieces overlapping or duplicated, shuffled, then grouped several
 * to a record's plaintext: what a lossy, duplicating, reordering link and a peer with any MTU can give.
 */
const deliveryArb = messagesArb.chain((messages) =>
  fc
    .tuple(
      ...messages.map((m) =>
        fc.record({
          cuts: fc.uniqueArray(fc.integer({ min: 1, max: Math.max(1, m.body.length - 1) }), { maxLength: 6 }),
          extra: fc.array(
            fc
              .tuple(fc.nat(m.body.length), fc.nat(m.body.length))
              .map(([a, b]) => [Math.min(a, b), Math.max(a, b)] as const),
            { maxLength: 3 },
          ),
        }),
      ),
    )
    .chain((plans) => {
      const pieces: Uint8Array[] = [];
      messages.forEach((m, i) => {
        const plan = plans[i]!;
        const cuts = [0, ...plan.cuts.filter((c) => c < m.body.length).sort((a, b) => a - b), m.body.length];
        for (let k = 0; k + 1 < cuts.length; k++) {
          if (cuts[k] === cuts[k + 1] && m.body.length > 0) continue;
          pieces.push(fragmentBytes(m, cuts[k]!, cuts[k + 1]!));
        }
        for (const [a, b] of plan.extra) pieces.push(fragmentBytes(m, a, b));
      });
      return fc
        .tuple(fc.shuffledSubarray(pieces, { minLength: pieces.length }), fc.array(fc.nat(pieces.length - 1)))
        .map(([shuffled, dupIndexes]) => {
          const withDups = [...shuffled, ...dupIndexes.map((i) => shuffled[i]!)];
          return { messages, pieces: withDups };
        });
    })
    .chain(({ messages: ms, pieces }) =>
      fc
        .array(fc.integer({ min: 1, max: 4 }), { minLength: pieces.length, maxLength: pieces.length })
        .map((groupSizes) => {
          const records: Uint8Array[] = [];
          let at = 0;
          for (const g of groupSizes) {
            if (at >= pieces.length) break;
            const group = pieces.slice(at, at + g);
            at += g;
            const w = new Writer();
            for (const p of group) w.bytes(p);
            records.push(w.finish());
          }
          return { messages: ms, records };
        }),
    ),
);

describe("handshake reassembly (RFC 6347 §4.2.3)", () => {
  it("fragmentHandshake pieces parse back to the message; the whole encoding is one fragment", () => {
    const m: HandshakeMessage = { type: 2, seq: 3, body: Uint8Array.from({ length: 100 }, (_, i) => i) };
    const pieces = fragmentHandshake(m, 30);
    expect(pieces.length).toBe(4);
    const fragments = pieces.flatMap((p) => parseFragments(p));
    expect(fragments.map((f) => [f.offset, f.data.length])).toEqual([
      [0, 30],
      [30, 30],
      [60, 30],
      [90, 10],
    ]);
    expect(fragments.every((f) => f.length === 100 && f.seq === 3 && f.type === 2)).toBe(true);
    const r = new Reassembler(3);
    const out = r.add([...fragments].reverse());
    expect(out.messages.length).toBe(1);
    expect(toHex(out.messages[0]!.body)).toBe(toHex(m.body));
    expect(toHex(fragmentHandshake(m, 100)[0]!)).toBe(toHex(encodeHandshake(m)));
  });

  it("any fragmentation, duplication and order yields the messages once, in order (fast-check)", () => {
    fc.assert(
      fc.property(deliveryArb, ({ messages, records }) => {
        const r = new Reassembler(messages[0]!.seq, { maxMessageBytes: 4096, maxAhead: messages.length });
        const out: HandshakeMessage[] = [];
        for (const rec of records) out.push(...r.add(parseFragments(rec)).messages);
        expect(out.map((m) => m.seq)).toEqual(messages.map((m) => m.seq));
        out.forEach((m, i) => {
          expect(m.type).toBe(messages[i]!.type);
          expect(toHex(m.body)).toBe(toHex(messages[i]!.body));
        });
        expect(r.next).toBe(messages[0]!.seq + messages.length);
        // Everything again (a retransmitted flight): flagged as a retransmission, nothing new.
        for (const rec of records) {
          const again = r.add(parseFragments(rec));
          expect(again.messages).toEqual([]);
          expect(again.retransmission).toBe(true);
        }
      }),
      { numRuns: 400 },
    );
  });

  it("with the default 4-message look-ahead, retransmitted flights still yield every message in order", () => {
    fc.assert(
      fc.property(deliveryArb, ({ messages, records }) => {
        const r = new Reassembler(messages[0]!.seq);
        const out: HandshakeMessage[] = [];
        // Each pass is one retransmission of the whole flight in the same shuffled order.
        for (let pass = 0; pass < messages.length + 1 && out.length < messages.length; pass++)
          for (const rec of records) out.push(...r.add(parseFragments(rec)).messages);
        expect(out.map((m) => m.seq)).toEqual(messages.map((m) => m.seq));
        out.forEach((m, i) => {
          expect(toHex(m.body)).toBe(toHex(messages[i]!.body));
        });
      }),
      { numRuns: 200 },
    );
  });

  it("a fragment that disagrees about its message's type or length is ignored", () => {
    const m: HandshakeMessage = { type: 16, seq: 0, body: Uint8Array.from({ length: 20 }, (_, i) => i) };
    const r = new Reassembler(0);
    expect(r.add(parseFragments(fragmentBytes(m, 0, 10))).messages).toEqual([]);
    const liar = { ...m, type: 20 };
    expect(r.add(parseFragments(fragmentBytes(liar, 10, 20))).messages).toEqual([]);
    const longer = { ...m, body: new Uint8Array(30) };
    expect(r.add(parseFragments(fragmentBytes(longer, 10, 30))).messages).toEqual([]);
    const done = r.add(parseFragments(fragmentBytes(m, 10, 20))).messages;
    expect(done.length).toBe(1);
    expect(toHex(done[0]!.body)).toBe(toHex(m.body));
  });

  it("refuses a message longer than maxMessageBytes and drops messages beyond maxAhead", () => {
    const r = new Reassembler(0, { maxMessageBytes: 64, maxAhead: 2 });
    const big: HandshakeMessage = { type: 1, seq: 0, body: new Uint8Array(65) };
    expect(() => r.add(parseFragments(fragmentBytes(big, 0, 10)))).toThrow(/65 bytes/);
    const far: HandshakeMessage = { type: 1, seq: 2, body: new Uint8Array(4) };
    expect(r.add(parseFragments(encodeHandshake(far))).messages).toEqual([]);
    const m0: HandshakeMessage = { type: 1, seq: 0, body: new Uint8Array(4) };
    const m1: HandshakeMessage = { type: 1, seq: 1, body: new Uint8Array(4) };
    expect(r.add(parseFragments(encodeHandshake(m1))).messages).toEqual([]); // buffered (1 ahead)
    expect(r.add(parseFragments(encodeHandshake(m0))).messages.map((m) => m.seq)).toEqual([0, 1]);
    // seq 2 was beyond the look-ahead when it came: it was not kept.
    expect(r.next).toBe(2);
    expect(r.add([]).messages).toEqual([]);
  });
});

describe("wire reader", () => {
  it("reads 48-bit integers exactly and refuses reads past the end with a decode error", () => {
    const top = 2 ** 48 - 1;
    const bytes = new Writer().u48(top).u48(0x0102_0304_0506).u24(0xabcdef).finish();
    const r = new Reader(bytes);
    expect(r.u48()).toBe(top);
    expect(r.u48()).toBe(0x0102_0304_0506);
    expect(r.u24()).toBe(0xabcdef);
    expect(() => r.u8("tail")).toThrow(/truncated tail/);
    expect(sameBytes(text("ab"), text("ab"))).toBe(true);
    expect(sameBytes(text("ab"), text("ac"))).toBe(false);
    expect(sameBytes(text("ab"), text("abc"))).toBe(false);
  });
});
