/**
 * Fuzzing the DTLS layer with fast-check: the parsers on arbitrary and mutated bytes (only DtlsError,
 * never anything else), and both endpoints fed arbitrary, structured and mutated datagrams (never a
 * throw out of the receive path; an established session and the tables survive).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { PeerAddress } from "../../src/core/interfaces.js";
import { alertName, DtlsError } from "../../src/dtls/errors.js";
import { encodeHandshake, parseFragments } from "../../src/dtls/handshake.js";
import {
  encodeClientHello,
  encodeServerHello,
  parseClientHello,
  parseHelloVerifyRequest,
  parsePskClientKeyExchange,
  parsePskServerKeyExchange,
  parseServerHello,
} from "../../src/dtls/messages.js";
import { DTLS_1_0, DTLS_1_2, encodeRecord, parseRecords } from "../../src/dtls/record.js";
import { clientAddress, clientHello, dtlsWorld, plainAlerts, SERVER, text } from "./kit.js";

const RUNS = 5000;

/** Runs `parse`; anything thrown must be a DtlsError of kind decode. */
function onlyDecodeErrors(parse: (b: Uint8Array) => unknown, b: Uint8Array): boolean {
  try {
    parse(b);
    return true;
  } catch (error) {
    if (!(error instanceof DtlsError))
      throw new Error(`threw ${String(error)} on ${Buffer.from(b).toString("hex")}`);
    expect(error.kind).toBe("decode");
    return false;
  }
}

/** Byte-level damage: flips, truncation, insertion, deletion, a length byte set to extremes. */
const mutation = fc.oneof(
  fc.record({ kind: fc.constant("flip" as const), at: fc.nat(), value: fc.integer({ min: 1, max: 255 }) }),
  fc.record({ kind: fc.constant("cut" as const), at: fc.nat() }),
  fc.record({
    kind: fc.constant("insert" as const),
    at: fc.nat(),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }),
  }),
  fc.record({ kind: fc.constant("delete" as const), at: fc.nat(), n: fc.integer({ min: 1, max: 8 }) }),
  fc.record({
    kind: fc.constant("set" as const),
    at: fc.nat(),
    value: fc.constantFrom(0, 1, 0x7f, 0x80, 0xfe, 0xff),
  }),
);
type Mutation = typeof mutation extends fc.Arbitrary<infer T> ? T : never;

function mutate(input: Uint8Array, mutations: readonly Mutation[]): Uint8Array {
  let b = input.slice();
  for (const m of mutations) {
    const at = b.length === 0 ? 0 : m.at % (b.length + 1);
    switch (m.kind) {
      case "flip":
        if (at < b.length) b[at]! ^= m.value;
        break;
      case "set":
        if (at < b.length) b[at] = m.value;
        break;
      case "cut":
        b = b.slice(0, at);
        break;
      case "insert":
        b = Uint8Array.from([...b.subarray(0, at), ...m.bytes, ...b.subarray(at)]);
        break;
      case "delete":
        b = Uint8Array.from([...b.subarray(0, at), ...b.subarray(at + m.n)]);
        break;
    }
  }
  return b;
}

const helloArb = fc.record({
  version: fc.constantFrom(DTLS_1_2, DTLS_1_0, 0xfefc, 0x0303),
  random: fc.uint8Array({ minLength: 32, maxLength: 32 }),
  sessionId: fc.uint8Array({ maxLength: 32 }),
  cookie: fc.uint8Array({ maxLength: 40 }),
  suites: fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 1, maxLength: 20 }),
  compressions: fc.uint8Array({ minLength: 1, maxLength: 3 }),
  extensions: fc.uniqueArray(
    fc.record({ type: fc.integer({ min: 0, max: 0xffff }), data: fc.uint8Array({ maxLength: 20 }) }),
    { selector: (e) => e.type, maxLength: 5 },
  ),
});

describe("parsers on arbitrary bytes", () => {
  it("parseRecords never throws and returns records within the datagram", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (b) => {
        const records = parseRecords(b);
        let total = 0;
        for (const r of records) {
          total += 13 + r.fragment.length;
          expect(r.fragment.buffer).toBe(b.buffer);
          expect(r.version === DTLS_1_2 || r.version === DTLS_1_0).toBe(true);
          expect(r.type >= 20 && r.type <= 23).toBe(true);
        }
        expect(total).toBeLessThanOrEqual(b.length);
      }),
      { numRuns: RUNS },
    );
  });

  it("parseRecords on record-shaped bytes (valid headers, any lengths) never throws", () => {
    const recordish = fc
      .array(
        fc.record({
          type: fc.integer({ min: 19, max: 24 }),
          version: fc.constantFrom(DTLS_1_2, DTLS_1_0, 0x0303),
          epoch: fc.integer({ min: 0, max: 0xffff }),
          seq: fc.integer({ min: 0, max: 2 ** 48 - 1 }),
          fragment: fc.uint8Array({ maxLength: 60 }),
          lie: fc.integer({ min: -3, max: 3 }),
        }),
        { maxLength: 5 },
      )
      .map((rs) =>
        Uint8Array.from(
          rs.flatMap((r) => {
            const rec = encodeRecord(r.type, r.version, r.epoch, r.seq, r.fragment);
            const n = Math.max(0, r.fragment.length + r.lie);
            rec[11] = n >> 8;
            rec[12] = n & 0xff;
            return [...rec];
          }),
        ),
      );
    fc.assert(
      fc.property(recordish, (b) => {
        expect(() => parseRecords(b)).not.toThrow();
      }),
      { numRuns: RUNS },
    );
  });

  const parsers: [string, (b: Uint8Array) => unknown][] = [
    ["parseFragments", parseFragments],
    ["parseClientHello", parseClientHello],
    ["parseServerHello", parseServerHello],
    ["parseHelloVerifyRequest", parseHelloVerifyRequest],
    ["parsePskClientKeyExchange", parsePskClientKeyExchange],
    ["parsePskServerKeyExchange", parsePskServerKeyExchange],
  ];
  for (const [name, parse] of parsers) {
    it(`${name} throws nothing but DtlsError (decode) on arbitrary bytes`, () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 300 }), (b) => {
          onlyDecodeErrors(parse, b);
        }),
        { numRuns: RUNS },
      );
    });
  }

  it("ClientHellos round-trip, and damaged ones throw nothing but DtlsError", () => {
    let accepted = 0;
    let refused = 0;
    fc.assert(
      fc.property(helloArb, fc.array(mutation, { minLength: 1, maxLength: 4 }), (hello, mutations) => {
        const body = encodeClientHello(hello);
        const parsed = parseClientHello(body);
        expect(parsed.suites).toEqual(hello.suites);
        expect(Buffer.from(encodeClientHello(parsed)).equals(Buffer.from(body))).toBe(true);
        if (onlyDecodeErrors(parseClientHello, mutate(body, mutations))) accepted++;
        else refused++;
        // And as handshake fragments.
        onlyDecodeErrors(parseFragments, mutate(encodeHandshake({ type: 1, seq: 0, body }), mutations));
      }),
      { numRuns: 2000 },
    );
    // Both outcomes happened: the mutations reach past the length checks.
    expect(accepted).toBeGreaterThan(0);
    expect(refused).toBeGreaterThan(0);
  });

  it("ServerHellos round-trip, and damaged ones throw nothing but DtlsError", () => {
    const sh = fc.record({
      version: fc.constantFrom(DTLS_1_2, DTLS_1_0),
      random: fc.uint8Array({ minLength: 32, maxLength: 32 }),
      sessionId: fc.uint8Array({ maxLength: 32 }),
      suite: fc.integer({ min: 0, max: 0xffff }),
      compression: fc.integer({ min: 0, max: 255 }),
      extensions: fc.uniqueArray(
        fc.record({ type: fc.integer({ min: 0, max: 0xffff }), data: fc.uint8Array({ maxLength: 10 }) }),
        { selector: (e) => e.type, maxLength: 4 },
      ),
    });
    fc.assert(
      fc.property(sh, fc.array(mutation, { minLength: 1, maxLength: 4 }), (h, mutations) => {
        const body = encodeServerHello(h);
        expect(parseServerHello(body).suite).toBe(h.suite);
        onlyDecodeErrors(parseServerHello, mutate(body, mutations));
      }),
      { numRuns: 2000 },
    );
  });
});

/** A datagram aimed at a DTLS endpoint: arbitrary bytes, record-shaped junk, or a damaged capture. */
function datagramArb(captured: readonly Uint8Array[]) {
  return fc.oneof(
    fc.uint8Array({ maxLength: 200 }),
    fc
      .record({
        type: fc.integer({ min: 20, max: 23 }),
        epoch: fc.constantFrom(0, 1, 2),
        seq: fc.integer({ min: 0, max: 2000 }),
        fragment: fc.uint8Array({ maxLength: 120 }),
      })
      .map((r) => encodeRecord(r.type, DTLS_1_2, r.epoch, r.seq, r.fragment)),
    fc
      .tuple(fc.constantFrom(...captured), fc.array(mutation, { maxLength: 3 }))
      .map(([d, mutations]) => mutate(d, mutations)),
    fc
      .tuple(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ maxLength: 20 }), fc.nat(5))
      .map(([random, cookie, seq]) => clientHello(random, cookie, seq)),
  );
}

describe("endpoints fed hostile datagrams", () => {
  it("the server never throws, keeps an established session working and its tables bounded", async () => {
    const w = dtlsWorld();
    w.time.advance(5000);
    const A = clientAddress(1);
    const node = w.client(A, "node-1");
    expect(await w.connect(node)).toBeUndefined();
    node.send(text("captured up"), SERVER);
    w.time.advance(5);
    const captured = w.wire(0, { from: A }).map((d) => d.data);
    expect(captured.length).toBeGreaterThanOrEqual(4);
    let round = 0;
    let handshakesSeen = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(datagramArb(captured), fc.boolean(), fc.nat(1000)), {
          minLength: 1,
          maxLength: 12,
        }),
        async (datagrams) => {
          for (const [d, fromNode, port] of datagrams) {
            w.inject(d, fromNode ? A : (`198.51.100.${port % 256}:${port + 1}` as PeerAddress));
          }
          w.time.advance(3); // the datagrams are delivered here: a throw would fail the property
          const t = w.server.tables();
          expect(t.sessions).toBe(1);
          // Only the node's own captured hello, replayed from its address within the cookie's
          // lifetime, can open a handshake: one per address at most, and it times out.
          expect(t.handshakes).toBeLessThanOrEqual(1);
          handshakesSeen = Math.max(handshakesSeen, t.handshakes);
          round++;
          const alive = `alive ${round}`;
          node.send(text(alive), SERVER);
          // Delivered, at once or after a new handshake (a replayed handshake can make the server
          // send the node a plaintext alert, which any spoofer could forge as well).
          expect(await w.until(() => w.toServer.at(-1)?.data === alive, 30_000)).toBe(true);
          expect(w.server.identityOf(`coaps://${A}` as PeerAddress)).toBe("node-1");
        },
      ),
      { numRuns: 400 },
    );
    const alertsToNode = new Map<string, number>();
    for (const d of w.wire(0, { from: SERVER, to: A }))
      for (const a of plainAlerts(d.data)) {
        const name = alertName(a.description);
        alertsToNode.set(name, (alertsToNode.get(name) ?? 0) + 1);
      }
    // Each plaintext alert the node heard was provoked by a datagram forged in its name (a hello of
    // another version, a replayed handshake): what the client takes as its session's end.
    expect(node.stats.handshakes - 1).toBeLessThanOrEqual(
      [...alertsToNode.values()].reduce((a, b) => a + b, 0),
    );
    console.log(
      `server fuzz: plaintext alerts to the node ${JSON.stringify(Object.fromEntries(alertsToNode))}; ` +
        `${w.server.stats.recordsIn} records in, ${w.server.stats.badRecords} bad, ` +
        `${w.server.stats.replayedRecords} replays, ${w.server.stats.helloVerifyRequests} HelloVerifyRequests, ` +
        `${w.server.stats.handshakesStarted - 1} handshakes opened by replayed hellos, ` +
        `node re-handshakes ${node.stats.handshakes - 1}`,
    );
    // Nothing but the node's own data reached the layer above.
    expect(w.toServer.every((d) => d.peer === `coaps://${A}`)).toBe(true);
    expect(w.toServer.map((d) => d.data).filter((s) => !s.startsWith("alive"))).toEqual(["captured up"]);
    expect(w.server.stats.badRecords).toBeGreaterThan(100);
  });

  it("the client never throws, in any phase, and connects afterwards", async () => {
    const w = dtlsWorld();
    w.time.advance(5000);
    const A = clientAddress(1);
    // A clean handshake first, to have the server's datagrams to damage.
    const first = w.client(A, "node-1");
    expect(await w.connect(first)).toBeUndefined();
    w.server.send(text("captured down"), `coaps://${A}` as PeerAddress);
    w.time.advance(5);
    const captured = w.wire(0, { from: SERVER }).map((d) => d.data);
    first.close();

    let n = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(datagramArb(captured), { minLength: 1, maxLength: 8 }),
        fc.integer({ min: 0, max: 4 }),
        async (datagrams, pauseAfter) => {
          n++;
          const addr = clientAddress(1000 + n);
          const c = w.client(addr, "node-1");
          const result = c.connect().then(
            () => "ok",
            (e: unknown) => e,
          );
          // Let the handshake get to some phase, then throw the datagrams at the client as its server.
          for (let i = 0; i < pauseAfter; i++) w.time.advance(1);
          for (const d of datagrams) w.inject(d, SERVER, addr);
          const outcome = await w.run(result, 120_000);
          if (outcome !== "ok") {
            expect(outcome).toBeInstanceOf(DtlsError);
            // A refused or broken handshake: the client can still connect on its own afterwards.
            expect(await w.connect(c)).toBeUndefined();
          }
          c.send(text(`from ${addr}`), SERVER);
          w.time.advance(5);
          expect(w.toServer.at(-1)?.data).toBe(`from ${addr}`);
          c.close();
        },
      ),
      { numRuns: 150 },
    );
  });
});
