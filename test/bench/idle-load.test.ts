/**
 * The idle load's lean client (bench/idle.ts): its connect requests, built from templates, are the
 * bytes src/core's serializer makes, with and without the Echo option; its device keys are the ones
 * the gateway child provisions.
 */
import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { benchDeviceKey, connectRequest, RequestTemplate } from "../../bench/idle.js";
import { protocol } from "../../src/core/index.js";

describe("bench idle: connect requests from templates", () => {
  it("are byte for byte what serializeMessage makes", () => {
    const t = new RequestTemplate();
    const payload = protocol.encodeConnectRequest({ identity: "node12345", dictionary: "d1" });
    const nonce = Uint8Array.from({ length: protocol.NONCE_BYTES }, (_, i) => 200 - i);
    for (const mid of [0, 1, 255, 256, 0x1234, 0xffff]) {
      expect(t.build(mid, payload)).toEqual(connectRequest(mid, payload));
      expect(t.build(mid, payload, nonce)).toEqual(connectRequest(mid, payload, nonce));
    }
    // An Echo of another length (never the gateway's) still comes out right, the slow way.
    const odd = Uint8Array.of(1, 2, 3);
    expect(t.build(7, payload, odd)).toEqual(connectRequest(7, payload, odd));
  });
});

describe("bench idle: device keys", () => {
  it("are HMAC-SHA-256 under cxmpp-bench-SEED of the index, first 16 bytes (as before, through node:crypto)", () => {
    for (const seed of [1, 5, 12345])
      for (const i of [0, 9, 10, 99_999, 1_000_000]) {
        const expected = createHmac("sha256", `cxmpp-bench-${seed}`)
          .update(String(i))
          .digest()
          .subarray(0, 16);
        expect(Buffer.from(benchDeviceKey(i, seed)).toString("hex")).toBe(expected.toString("hex"));
      }
  });
});
