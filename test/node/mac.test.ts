/**
 * src/node/mac.ts: HMAC-SHA-256 in plain JavaScript is node:crypto's, for every message length around
 * the block boundaries and every kind of key (short, a block, longer than a block: hashed first).
 */
import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { HmacSha256Key, nodeMac } from "../../src/node/mac.js";

const bytes = (n: number, seed: number) =>
  Uint8Array.from({ length: n }, (_, i) => (i * 131 + seed * 17 + 7) & 0xff);
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

describe("HMAC-SHA-256 in JavaScript", () => {
  it("is node:crypto's for messages of 0-300 bytes under keys of 0-200 bytes", () => {
    for (const keyLength of [0, 1, 16, 32, 63, 64, 65, 100, 200]) {
      const key = bytes(keyLength, keyLength);
      const signer = new HmacSha256Key(key);
      for (let n = 0; n <= 300; n++) {
        const data = bytes(n, n + keyLength);
        const expected = createHmac("sha256", key).update(data).digest("hex");
        expect(hex(signer.sign(data)), `key ${keyLength}, data ${n}`).toBe(expected);
        expect(hex(nodeMac.hmacSha256(key, data))).toBe(expected);
      }
    }
  });

  it("truncates into the buffer it is given, and one key signs many messages", () => {
    const key = bytes(32, 1);
    const signer = new HmacSha256Key(key);
    const out = new Uint8Array(4);
    for (let n = 0; n < 40; n++) {
      const data = bytes(n, 3);
      expect(signer.sign(data, out)).toBe(out);
      expect(hex(out)).toBe(createHmac("sha256", key).update(data).digest("hex").slice(0, 8));
    }
  });

  it("RFC 4231 test case 2", () => {
    const key = new TextEncoder().encode("Jefe");
    const data = new TextEncoder().encode("what do ya want for nothing?");
    expect(hex(new HmacSha256Key(key).sign(data))).toBe(
      "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    );
  });
});
