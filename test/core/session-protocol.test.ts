/**
 * The session messages (docs/PROTOCOL.md §3) and the device file (§5) as parsers: every valid message
 * round-trips; any byte string gives a message or a SessionFormatError / DeviceConfigError, nothing else.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { encodeDeviceFile, readDeviceFile } from "../../gateway/data-dir.js";
import { DeviceConfigError } from "../../gateway/devices.js";
import { protocol, SessionFormatError } from "../../src/core/index.js";

const uint = fc.integer({ min: 0, max: 2 ** 32 - 1 });
const bytes = (max = 16) => fc.uint8Array({ maxLength: max });
const text = fc.string({ maxLength: 40 });

const connectRequest = fc.record(
  {
    identity: text,
    dictionary: text,
    resume: bytes(8),
    proof: bytes(16),
    wake: uint,
    ack: uint,
    format: uint,
  },
  { requiredKeys: ["identity", "dictionary"] },
);

const decoders: Array<[string, (b: Uint8Array) => unknown]> = [
  ["connect request", protocol.decodeConnectRequest],
  ["connect response", protocol.decodeConnectResponse],
  ["uplink", protocol.decodeUplink],
  ["downlink", protocol.decodeDownlink],
];

describe("session messages", () => {
  it("connect requests round-trip, the received count (key 5) included", () => {
    fc.assert(
      fc.property(connectRequest, (c) => {
        expect(protocol.decodeConnectRequest(protocol.encodeConnectRequest(c))).toEqual(c);
      }),
      { numRuns: 300 },
    );
  });

  it("the proof covers the received count when it is sent, and is unchanged when it is not", () => {
    const nonce = new Uint8Array(8).fill(1);
    const base = { identity: "n", dictionary: "d", resume: new Uint8Array([1, 2]) };
    const without = protocol.proofInput(nonce, base);
    expect(protocol.proofInput(nonce, { ...base, ack: 3 })).not.toEqual(without);
    expect(protocol.proofInput(nonce, { ...base, ack: 4 })).not.toEqual(
      protocol.proofInput(nonce, { ...base, ack: 3 }),
    );
  });

  it("the proof covers the format (key 6), never mistaken for a received count", () => {
    const nonce = new Uint8Array(8).fill(1);
    const base = { identity: "n", dictionary: "d" };
    expect(protocol.proofInput(nonce, { ...base, format: 2 })).not.toEqual(protocol.proofInput(nonce, base));
    expect(protocol.proofInput(nonce, { ...base, format: 2 })).not.toEqual(
      protocol.proofInput(nonce, { ...base, ack: 2 }),
    );
  });

  it("connect responses round-trip with and without the agreed format (key 7)", () => {
    const r = {
      session: 1,
      resume: new Uint8Array([9]),
      h: 4,
      jid: "a@b/c",
      aliases: ["x"],
      delivered: 2,
      telemetry: 7,
    };
    expect(protocol.decodeConnectResponse(protocol.encodeConnectResponse(r))).toEqual(r);
    expect(protocol.decodeConnectResponse(protocol.encodeConnectResponse({ ...r, format: 2 }))).toEqual({
      ...r,
      format: 2,
    });
  });

  it("format 2 NON telemetry is `t` and the frames, 3 bytes less than the header array, and round-trips", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 2 ** 32 - 1 }),
        fc.array(bytes(40), { maxLength: 3 }),
        (t, frames) => {
          const u = { seq: 0, ack: 0, t, compact: true, frames };
          const encoded = protocol.encodeUplink(u);
          expect(protocol.decodeUplink(encoded)).toEqual(u);
          const old = protocol.encodeUplink({ seq: 0, ack: 0, t, frames });
          expect(encoded.length).toBe(old.length - 3); // no array head, no seq 0, no ack
        },
      ),
      { numRuns: 300 },
    );
    // Telemetry numbers start at 1; a CON uplink is never compact.
    expect(() => protocol.decodeUplink(Uint8Array.of(0x00))).toThrow(SessionFormatError);
    expect(() => protocol.encodeUplink({ seq: 3, ack: 0, compact: true, frames: [] })).toThrow(
      SessionFormatError,
    );
  });

  it("uplinks and downlinks round-trip", () => {
    fc.assert(
      fc.property(
        uint,
        uint,
        fc.option(uint, { nil: undefined }),
        fc.array(bytes(40), { maxLength: 5 }),
        (seq, ack, wake, frames) => {
          // seq 0 is telemetry: it carries its telemetry number t (here ack + 1, any value would do).
          const u = {
            seq,
            ack,
            ...(seq === 0 ? { t: ack + 1 } : {}),
            ...(wake !== undefined ? { wake } : {}),
            frames,
          };
          expect(protocol.decodeUplink(protocol.encodeUplink(u))).toEqual(u);
          const d = { h: seq, dseq: ack, ...(wake ? { more: true } : {}), frames };
          expect(protocol.decodeDownlink(protocol.encodeDownlink(d))).toEqual(d);
        },
      ),
      { numRuns: 300 },
    );
  });

  it.each(decoders)(
    "%s: arbitrary bytes give a message or a SessionFormatError, never anything else",
    (_name, decode) => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 64 }), (data) => {
          try {
            decode(data);
          } catch (error) {
            expect(error).toBeInstanceOf(SessionFormatError);
          }
        }),
        { numRuns: 2000 },
      );
    },
  );
});

describe("device file", () => {
  const dir = mkdtempSync(join(tmpdir(), "cxmpp-devfile-"));
  const file = {
    gateway: "127.0.0.1:5683",
    identity: "sensor1",
    key_hex: "00112233445566778899aabbccddeeff",
    jid: "sensor1@iot.localhost",
    dictionary: "2f66e29cd1c27974",
  };

  it("CBOR and the JSON view read back the same; the CBOR form is under 90 bytes", () => {
    const cbor = encodeDeviceFile(file);
    expect(cbor.length).toBeLessThan(90);
    writeFileSync(join(dir, "d.cbor"), cbor);
    writeFileSync(join(dir, "d.json"), JSON.stringify(file));
    expect(readDeviceFile(join(dir, "d.cbor"))).toEqual(file);
    expect(readDeviceFile(join(dir, "d.json"))).toEqual(file);
  });

  it("arbitrary or mutated bytes give a DeviceConfigError naming the file, nothing else", () => {
    const good = encodeDeviceFile(file);
    const path = join(dir, "fuzz.bin");
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 100 }),
          fc
            .tuple(fc.integer({ min: 0, max: good.length - 1 }), fc.integer({ min: 0, max: 255 }))
            .map(([i, v]) => {
              const m = good.slice();
              m[i] = v;
              return m;
            }),
        ),
        (data) => {
          writeFileSync(path, data);
          try {
            readDeviceFile(path);
          } catch (error) {
            expect(error).toBeInstanceOf(DeviceConfigError);
            expect((error as Error).message).toContain(path);
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});
