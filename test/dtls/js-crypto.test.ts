/**
 * The pure-JavaScript cryptography (src/dtls/js-crypto.ts) against the published vectors (FIPS 180-4,
 * RFC 4231, FIPS 197, RFC 3610, NIST SP 800-38C and the GCM specification's test cases), against
 * node:crypto as an oracle for random inputs, and inside whole DTLS handshakes with a node:crypto peer.
 */
import { createCipheriv, createHash, createHmac, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { PeerAddress } from "../../src/core/interfaces.js";
import {
  type AeadAlgorithm,
  DtlsClient,
  DtlsServer,
  TLS_PSK_WITH_AES_128_CCM_8,
  TLS_PSK_WITH_AES_128_GCM_SHA256,
} from "../../src/dtls/index.js";
import {
  aes128Encrypt,
  aes128Key,
  ccmOpen,
  ccmSeal,
  gcmOpen,
  gcmSeal,
  hmacSha256,
  jsDtlsCrypto,
  jsDtlsCryptoCcm,
  jsMac,
  sameTag,
  sha256,
} from "../../src/dtls/js-crypto.js";
import { nodeDtlsCrypto } from "../../src/node/dtls-crypto.js";
import { clientAddress, dtlsWorld, hex, keyOf, SERVER, str, text, toHex } from "./kit.js";

const hostRandom = (n: number): Uint8Array => new Uint8Array(randomBytes(n));

/**
 * node:crypto fails a CCM seal of an empty input whose ArrayBuffer has no backing store ("tag not set":
 * OpenSSL sees a NULL pointer): the oracle gets empty inputs as views into a 1-byte buffer.
 */
const backed = (b: Uint8Array): Uint8Array => (b.length ? b : new Uint8Array(1).subarray(1));

/** node:crypto CCM with any nonce and tag length (the oracle for the parameterised core). */
function nodeCcm(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, pt: Uint8Array, tag: number): string {
  const c = createCipheriv("aes-128-ccm", key, nonce, { authTagLength: tag });
  c.setAAD(aad, { plaintextLength: pt.length });
  const body = c.update(backed(pt));
  c.final();
  return toHex(Buffer.concat([body, c.getAuthTag()]));
}

const bytes = (min: number, max: number) => fc.uint8Array({ minLength: min, maxLength: max });
const key16 = bytes(16, 16);
const nonce12 = bytes(12, 12);

/** A copy of `b` with one byte changed. */
function tamper(b: Uint8Array, at: number, by: number): Uint8Array {
  const copy = b.slice();
  copy[at % copy.length]! ^= by;
  return copy;
}

/**
 * jsDtlsCrypto's `algorithm` over `runs` random inputs (12-byte nonces): seals as node:crypto does, each
 * opens the other's record, and a record with any single byte changed (record, nonce, key or associated
 * data) is refused.
 */
function sealsLikeNodeCrypto(algorithm: AeadAlgorithm, runs: number): void {
  const c = jsDtlsCrypto(hostRandom);
  fc.assert(
    fc.property(
      key16,
      nonce12,
      bytes(0, 40),
      bytes(0, 300),
      fc.nat(),
      fc.integer({ min: 1, max: 255 }),
      (key, nonce, aad, plaintext, at, by) => {
        const sealed = c.seal(algorithm, key, nonce, aad, plaintext);
        expect(toHex(sealed)).toBe(toHex(nodeDtlsCrypto.seal(algorithm, key, nonce, aad, backed(plaintext))));
        expect(c.open(algorithm, key, nonce, aad, sealed)).toEqual(plaintext);
        expect(nodeDtlsCrypto.open(algorithm, key, nonce, aad, sealed)).toEqual(plaintext);
        expect(c.open(algorithm, key, nonce, aad, tamper(sealed, at, by))).toBeUndefined();
        expect(c.open(algorithm, key, tamper(nonce, at, by), aad, sealed)).toBeUndefined();
        expect(c.open(algorithm, tamper(key, at, by), nonce, aad, sealed)).toBeUndefined();
        if (aad.length) expect(c.open(algorithm, key, nonce, tamper(aad, at, by), sealed)).toBeUndefined();
      },
    ),
    { numRuns: runs },
  );
}

describe("SHA-256 (FIPS 180-4)", () => {
  it("the NIST examples: empty, 'abc', the 448-bit message, a million 'a'", () => {
    expect(toHex(sha256(new Uint8Array(0)))).toBe(
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    );
    expect(toHex(sha256(text("abc")))).toBe(
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    );
    expect(toHex(sha256(text("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")))).toBe(
      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
    );
    expect(toHex(sha256(new Uint8Array(1_000_000).fill(0x61)))).toBe(
      "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
    );
  });

  it("every length across the padding boundaries equals node:crypto", () => {
    const data = new Uint8Array(randomBytes(200));
    for (let n = 0; n <= 200; n++) {
      const m = data.subarray(0, n);
      expect(toHex(sha256(m)), `length ${n}`).toBe(createHash("sha256").update(m).digest("hex"));
    }
  });

  it("random messages equal node:crypto", () => {
    fc.assert(
      fc.property(bytes(0, 1000), (m) => {
        expect(toHex(sha256(m))).toBe(createHash("sha256").update(m).digest("hex"));
      }),
      { numRuns: 200 },
    );
  });
});

describe("HMAC-SHA-256 (RFC 2104)", () => {
  // RFC 4231 §4.2-4.8.
  const cases: [string, Uint8Array, Uint8Array, string][] = [
    [
      "1",
      new Uint8Array(20).fill(0x0b),
      text("Hi There"),
      "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
    ],
    [
      "2",
      text("Jefe"),
      text("what do ya want for nothing?"),
      "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    ],
    [
      "3",
      new Uint8Array(20).fill(0xaa),
      new Uint8Array(50).fill(0xdd),
      "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
    ],
    [
      "4",
      hex("0102030405060708090a0b0c0d0e0f10111213141516171819"),
      new Uint8Array(50).fill(0xcd),
      "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
    ],
    [
      "5 (truncated to 128 bits)",
      new Uint8Array(20).fill(0x0c),
      text("Test With Truncation"),
      "a3b6167473100ee06e0c796c2955552b",
    ],
    [
      "6 (131-byte key)",
      new Uint8Array(131).fill(0xaa),
      text("Test Using Larger Than Block-Size Key - Hash Key First"),
      "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
    ],
    [
      "7 (131-byte key and data)",
      new Uint8Array(131).fill(0xaa),
      text(
        "This is a test using a larger than block-size key and a larger than block-size data. " +
          "The key needs to be hashed before being used by the HMAC algorithm.",
      ),
      "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
    ],
  ];
  for (const [name, key, data, expected] of cases) {
    it(`RFC 4231 test case ${name}`, () => {
      expect(toHex(hmacSha256(key, data)).slice(0, expected.length)).toBe(expected);
    });
  }

  it("random keys (0-200 bytes: shorter than, equal to and longer than a block) and data equal node:crypto", () => {
    fc.assert(
      fc.property(bytes(0, 200), bytes(0, 300), (key, data) => {
        expect(toHex(jsMac.hmacSha256(key, data))).toBe(createHmac("sha256", key).update(data).digest("hex"));
      }),
      { numRuns: 300 },
    );
  });
});

describe("AES-128 (FIPS 197)", () => {
  it("Appendix C.1 and Appendix B", () => {
    const block = hex("00112233445566778899aabbccddeeff");
    expect(
      toHex(aes128Encrypt(aes128Key(hex("000102030405060708090a0b0c0d0e0f")), block, new Uint8Array(16))),
    ).toBe("69c4e0d86a7b0430d8cdb78070b4c55a");
    expect(block).toEqual(hex("00112233445566778899aabbccddeeff")); // not touched when out is another array
    const inPlace = hex("3243f6a8885a308d313198a2e0370734");
    aes128Encrypt(aes128Key(hex("2b7e151628aed2a6abf7158809cf4f3c")), inPlace);
    expect(toHex(inPlace)).toBe("3925841d02dc09fbdc118597196a0b32");
  });

  it("the key expansion of Appendix A.1 (the last round key)", () => {
    const w = aes128Key(hex("2b7e151628aed2a6abf7158809cf4f3c"));
    expect([...w.subarray(40)].map((x) => (x >>> 0).toString(16).padStart(8, "0"))).toEqual([
      "d014f9a8",
      "c9ee2589",
      "e13f0cc8",
      "b6630ca6",
    ]);
  });

  it("random keys and blocks equal node:crypto (AES-128-ECB)", () => {
    fc.assert(
      fc.property(key16, bytes(16, 16), (key, block) => {
        const c = createCipheriv("aes-128-ecb", key, null).setAutoPadding(false);
        expect(toHex(aes128Encrypt(aes128Key(key), block, new Uint8Array(16)))).toBe(toHex(c.update(block)));
      }),
      { numRuns: 300 },
    );
  });

  it("refuses a key that is not 16 bytes", () => {
    expect(() => aes128Key(new Uint8Array(32))).toThrow(RangeError);
  });
});

describe("AES-128-CCM (RFC 3610, NIST SP 800-38C)", () => {
  // RFC 3610 §8 packet vectors 1-24 (13-byte nonces, L = 2): nonce, header (= AAD) length, the whole
  // packet (header || plaintext), the output after the header (ciphertext || tag), tag length.
  const K1 = "C0C1C2C3C4C5C6C7C8C9CACBCCCDCECF";
  const K2 = "D7828D13B2B0BDC325A76236DF93CC6B";
  const seq = (n: number) => Array.from({ length: n }, (_, i) => i.toString(16).padStart(2, "0")).join("");
  const rfc3610: [string, string, number, string, string, number][] = [
    [
      K1,
      "00000003020100A0A1A2A3A4A5",
      8,
      seq(31),
      "588C979A61C663D2F066D0C2C0F989806D5F6B61DAC38417E8D12CFDF926E0",
      8,
    ],
    [
      K1,
      "00000004030201A0A1A2A3A4A5",
      8,
      seq(32),
      "72C91A36E135F8CF291CA894085C87E3CC15C439C9E43A3BA091D56E10400916",
      8,
    ],
    [
      K1,
      "00000005040302A0A1A2A3A4A5",
      8,
      seq(33),
      "51B1E5F44A197D1DA46B0F8E2D282AE871E838BB64DA8596574ADAA76FBD9FB0C5",
      8,
    ],
    [
      K1,
      "00000006050403A0A1A2A3A4A5",
      12,
      seq(31),
      "A28C6865939A9A79FAAA5C4C2A9D4A91CDAC8C96C861B9C9E61EF1",
      8,
    ],
    [
      K1,
      "00000007060504A0A1A2A3A4A5",
      12,
      seq(32),
      "DCF1FB7B5D9E23FB9D4E131253658AD86EBDCA3E51E83F077D9C2D93",
      8,
    ],
    [
      K1,
      "00000008070605A0A1A2A3A4A5",
      12,
      seq(33),
      "6FC1B011F006568B5171A42D953D469B2570A4BD87405A0443AC91CB94",
      8,
    ],
    [
      K1,
      "00000009080706A0A1A2A3A4A5",
      8,
      seq(31),
      "0135D1B2C95F41D5D1D4FEC185D166B8094E999DFED96C048C56602C97ACBB7490",
      10,
    ],
    [
      K1,
      "0000000A090807A0A1A2A3A4A5",
      8,
      seq(32),
      "7B75399AC0831DD2F0BBD75879A2FD8F6CAE6B6CD9B7DB24C17B4433F434963F34B4",
      10,
    ],
    [
      K1,
      "0000000B0A0908A0A1A2A3A4A5",
      8,
      seq(33),
      "82531A60CC24945A4B8279181AB5C84DF21CE7F9B73F42E197EA9C07E56B5EB17E5F4E",
      10,
    ],
    [
      K1,
      "0000000C0B0A09A0A1A2A3A4A5",
      12,
      seq(31),
      "07342594157785152B074098330ABB141B947B566AA9406B4D999988DD",
      10,
    ],
    [
      K1,
      "0000000D0C0B0AA0A1A2A3A4A5",
      12,
      seq(32),
      "676BB20380B0E301E8AB79590A396DA78B834934F53AA2E9107A8B6C022C",
      10,
    ],
    [
      K1,
      "0000000E0D0C0BA0A1A2A3A4A5",
      12,
      seq(33),
      "C0FFA0D6F05BDB67F24D43A4338D2AA4BED7B20E43CD1AA31662E7AD65D6DB",
      10,
    ],
    [
      K2,
      "00412B4EA9CDBE3C9696766CFA",
      8,
      "0BE1A88BACE018B108E8CF97D820EA258460E96AD9CF5289054D895CEAC47C",
      "4CB97F86A2A4689A877947AB8091EF5386A6FFBDD080F8E78CF7CB0CDDD7B3",
      8,
    ],
    [
      K2,
      "0033568EF7B2633C9696766CFA",
      8,
      "63018F76DC8A1BCB9020EA6F91BDD85AFA0039BA4BAFF9BFB79C7028949CD0EC",
      "4CCB1E7CA981BEFAA0726C55D378061298C85C92814ABC33C52EE81D7D77C08A",
      8,
    ],
    [
      K2,
      "00103FE41336713C9696766CFA",
      8,
      "AA6CFA36CAE86B40B916E0EACC1C00D7DCEC68EC0B3BBB1A02DE8A2D1AA346132E",
      "B1D23A2220DDC0AC900D9AA03C61FCF4A559A4417767089708A776796EDB723506",
      8,
    ],
    [
      K2,
      "00764C63B8058E3C9696766CFA",
      12,
      "D0D0735C531E1BECF049C24412DAAC5630EFA5396F770CE1A66B21F7B2101C",
      "14D253C3967B70609B7CBB7C499160283245269A6F49975BCADEAF",
      8,
    ],
    [
      K2,
      "00F8B678094E3B3C9696766CFA",
      12,
      "77B60F011C03E1525899BCAEE88B6A46C78D63E52EB8C546EFB5DE6F75E9CC0D",
      "5545FF1A085EE2EFBF52B2E04BEE1E2336C73E3F762C0C7744FE7E3C",
      8,
    ],
    [
      K2,
      "00D560912D3F703C9696766CFA",
      12,
      "CD9044D2B71FDB8120EA60C06435ACBAFB11A82E2F071D7CA4A5EBD93A803BA87F",
      "009769ECABDF48625594C59251E6035722675E04C847099E5AE0704551",
      8,
    ],
    [
      K2,
      "0042FFF8F1951C3C9696766CFA",
      8,
      "D85BC7E69F944FB88A19B950BCF71A018E5E6701C91787659809D67DBEDD18",
      "BC218DAA947427B6DB386A99AC1AEF23ADE0B52939CB6A637CF9BEC2408897C6BA",
      10,
    ],
    [
      K2,
      "00920F40E56CDC3C9696766CFA",
      8,
      "74A0EBC9069F5B371761433C37C5A35FC1F39F406302EB907C6163BE38C98437",
      "5810E6FD25874022E80361A478E3E9CF484AB04F447EFFF6F0A477CC2FC9BF548944",
      10,
    ],
    [
      K2,
      "0027CA0C7120BC3C9696766CFA",
      8,
      "44A3AA3AAE6475CAA434A8E58500C6E41530538862D686EA9E81301B5AE4226BFA",
      "F2BEED7BC5098E83FEB5B31608F8E29C38819A89C8E776F1544D4151A4ED3A8B87B9CE",
      10,
    ],
    [
      K2,
      "005B8CCBCD9AF83C9696766CFA",
      12,
      "EC46BB63B02520C33C49FD70B96B49E21D621741632875DB7F6C9243D2D7C2",
      "31D750A09DA3ED7FDDD49A2032AABF17EC8EBF7D22C8088C666BE5C197",
      10,
    ],
    [
      K2,
      "003EBE94044B9A3C9696766CFA",
      12,
      "47A65AC78B3D594227E85E71E2FCFBB880442C731BF95167C8FFD7895E337076",
      "E882F1DBD38CE3EDA7C23F04DD65071EB41342ACDF7E00DCCEC7AE52987D",
      10,
    ],
    [
      K2,
      "008D493B30AE8B3C9696766CFA",
      12,
      "6E37A6EF546D955D34AB6059ABF21C0B02FEB88F856DF4A37381BCE3CC128517D4",
      "F32905B88A641B04B9C9FFB58CC390900F3DA12AB16DCE9E82EFA16DA62059",
      10,
    ],
  ];
  rfc3610.forEach(([key, nonce, headerLength, packet, expected, tag], i) => {
    it(`RFC 3610 packet vector #${i + 1} (M = ${tag}, ${headerLength}-byte header)`, () => {
      const all = hex(packet);
      const aad = all.subarray(0, headerLength);
      const plaintext = all.subarray(headerLength);
      const sealed = ccmSeal(hex(key), hex(nonce), aad, plaintext, tag);
      expect(toHex(sealed)).toBe(expected.toLowerCase());
      expect(ccmOpen(hex(key), hex(nonce), aad, sealed, tag)).toEqual(plaintext);
      expect(ccmOpen(hex(key), hex(nonce), aad, tamper(sealed, i * 7, 0x80), tag)).toBeUndefined();
    });
  });

  // NIST SP 800-38C Appendix C, Examples 1-3: 7-, 8- and 12-byte nonces; 4-, 6- and 8-byte tags.
  // Example 3 has the DTLS shape (12-byte nonce, L = 3, 8-byte tag).
  const K = hex("404142434445464748494a4b4c4d4e4f");
  const nist: [string, string, string, string, number][] = [
    ["10111213141516", seq(8), "20212223", "7162015b4dac255d", 4],
    [
      "1011121314151617",
      seq(16),
      "202122232425262728292a2b2c2d2e2f",
      "d2a1f0e051ea5f62081a7792073d593d1fc64fbfaccd",
      6,
    ],
    [
      "101112131415161718191a1b",
      seq(20),
      "202122232425262728292a2b2c2d2e2f3031323334353637",
      "e3b201a9f5b71a7a9b1ceaeccd97e70b6176aad9a4428aa5484392fbc1b09951",
      8,
    ],
  ];
  nist.forEach(([nonce, aad, plaintext, expected, tag], i) => {
    it(`NIST SP 800-38C Example ${i + 1} (${nonce.length / 2}-byte nonce, ${tag}-byte tag)`, () => {
      expect(toHex(ccmSeal(K, hex(nonce), hex(aad), hex(plaintext), tag))).toBe(expected);
      expect(ccmOpen(K, hex(nonce), hex(aad), hex(expected), tag)).toEqual(hex(plaintext));
    });
  });
  it("Example 3 through the DtlsCrypto entry point (aes-128-ccm-8)", () => {
    const c = jsDtlsCryptoCcm(hostRandom);
    const [nonce, aad, plaintext, expected] = nist[2]!;
    expect(toHex(c.seal("aes-128-ccm-8", K, hex(nonce), hex(aad), hex(plaintext)))).toBe(expected);
    expect(c.open("aes-128-ccm-8", K, hex(nonce), hex(aad), hex(expected))).toEqual(hex(plaintext));
  });

  it("CCM-8 with a 12-byte nonce equals node:crypto; every single-byte change is refused", () => {
    sealsLikeNodeCrypto("aes-128-ccm-8", 300);
  });

  it("the parameterised core (nonces of 7-13 bytes, even tags of 4-16 bytes) equals node:crypto", () => {
    fc.assert(
      fc.property(
        key16,
        fc.integer({ min: 7, max: 13 }).chain((n) => bytes(n, n)),
        fc.constantFrom(4, 6, 8, 10, 12, 14, 16),
        bytes(0, 40),
        bytes(0, 100),
        (key, nonce, tag, aad, plaintext) => {
          const sealed = ccmSeal(key, nonce, aad, plaintext, tag);
          expect(toHex(sealed)).toBe(nodeCcm(key, nonce, aad, plaintext, tag));
          expect(ccmOpen(key, nonce, aad, sealed, tag)).toEqual(plaintext);
        },
      ),
      { numRuns: 200 },
    );
  });

  it("long associated data (the 0xFFFE length form, from 0xFF00 bytes) equals node:crypto", () => {
    const key = new Uint8Array(randomBytes(16));
    const nonce = new Uint8Array(randomBytes(12));
    const plaintext = new Uint8Array(randomBytes(50));
    for (const n of [0xfeff, 0xff00, 70_000]) {
      const aad = new Uint8Array(randomBytes(n));
      expect(toHex(ccmSeal(key, nonce, aad, plaintext)), `${n} bytes`).toBe(
        nodeCcm(key, nonce, aad, plaintext, 8),
      );
    }
  });

  it("refuses bad parameters when sealing and never throws when opening", () => {
    const key = new Uint8Array(16);
    expect(() => ccmSeal(key, new Uint8Array(6), new Uint8Array(0), new Uint8Array(1))).toThrow(RangeError);
    expect(() => ccmSeal(key, new Uint8Array(14), new Uint8Array(0), new Uint8Array(1))).toThrow(RangeError);
    expect(() => ccmSeal(key, new Uint8Array(12), new Uint8Array(0), new Uint8Array(1), 5)).toThrow(
      RangeError,
    );
    expect(() => ccmSeal(key, new Uint8Array(12), new Uint8Array(0), new Uint8Array(1), 18)).toThrow(
      RangeError,
    );
    expect(() =>
      ccmSeal(new Uint8Array(8), new Uint8Array(12), new Uint8Array(0), new Uint8Array(1)),
    ).toThrow(RangeError);
    // L = 2 (13-byte nonce) carries at most 65535 bytes.
    expect(() => ccmSeal(key, new Uint8Array(13), new Uint8Array(0), new Uint8Array(65_536))).toThrow(
      RangeError,
    );
    const sealed = ccmSeal(key, new Uint8Array(12), new Uint8Array(0), new Uint8Array(3));
    expect(ccmOpen(key, new Uint8Array(12), new Uint8Array(0), sealed.subarray(0, 7))).toBeUndefined();
    expect(ccmOpen(key, new Uint8Array(5), new Uint8Array(0), sealed)).toBeUndefined();
    expect(ccmOpen(key, new Uint8Array(16), new Uint8Array(0), sealed)).toBeUndefined();
    expect(ccmOpen(new Uint8Array(3), new Uint8Array(12), new Uint8Array(0), sealed)).toBeUndefined();
    expect(ccmOpen(key, new Uint8Array(12), new Uint8Array(0), sealed)).toEqual(new Uint8Array(3));
  });
});

describe("AES-128-GCM (NIST SP 800-38D)", () => {
  // The GCM specification's (McGrew & Viega, as revised for NIST) test cases 1-4: AES-128, 96-bit IV.
  const K3 = "feffe9928665731c6d6a8f9467308308";
  const IV3 = "cafebabefacedbaddecaf888";
  const P3 =
    "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72" +
    "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255";
  const C3 =
    "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e" +
    "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985";
  const zero = "00000000000000000000000000000000";
  const cases: [string, string, string, string, string, string][] = [
    [zero, zero.slice(0, 24), "", "", "", "58e2fccefa7e3061367f1d57a4e7455a"],
    [
      zero,
      zero.slice(0, 24),
      "",
      zero,
      "0388dace60b6a392f328c2b971b2fe78",
      "ab6e47d42cec13bdf53a67b21257bddf",
    ],
    [K3, IV3, "", P3, C3, "4d5c2af327cd64a62cf35abd2ba6fab4"],
    [
      K3,
      IV3,
      "feedfacedeadbeeffeedfacedeadbeefabaddad2",
      P3.slice(0, 120),
      C3.slice(0, 120),
      "5bc94fbc3221a5db94fae95ae7121a47",
    ],
  ];
  cases.forEach(([key, iv, aad, plaintext, ciphertext, tag], i) => {
    it(`test case ${i + 1}`, () => {
      const sealed = gcmSeal(hex(key), hex(iv), hex(aad), hex(plaintext));
      expect(toHex(sealed)).toBe(ciphertext + tag);
      expect(gcmOpen(hex(key), hex(iv), hex(aad), sealed)).toEqual(hex(plaintext));
      expect(gcmOpen(hex(key), hex(iv), hex(aad), tamper(sealed, i * 5, 1))).toBeUndefined();
    });
  });

  it("equals node:crypto for random inputs; every single-byte change is refused", () => {
    sealsLikeNodeCrypto("aes-128-gcm", 200);
  });

  it("takes 12-byte IVs only; open never throws", () => {
    expect(() =>
      gcmSeal(new Uint8Array(16), new Uint8Array(8), new Uint8Array(0), new Uint8Array(1)),
    ).toThrow(RangeError);
    expect(
      gcmOpen(new Uint8Array(16), new Uint8Array(8), new Uint8Array(0), new Uint8Array(20)),
    ).toBeUndefined();
    expect(
      gcmOpen(new Uint8Array(16), new Uint8Array(12), new Uint8Array(0), new Uint8Array(15)),
    ).toBeUndefined();
  });
});

describe("jsDtlsCrypto", () => {
  it("takes its randomness from the host, and checks the length it gets", () => {
    const asked: number[] = [];
    const c = jsDtlsCrypto((n) => {
      asked.push(n);
      return new Uint8Array(n).fill(7);
    });
    expect(c.randomBytes(32)).toEqual(new Uint8Array(32).fill(7));
    expect(asked).toEqual([32]);
    expect(() => jsDtlsCrypto(() => new Uint8Array(4)).randomBytes(32)).toThrow(/4 bytes, not 32/);
  });

  it("the CCM-only build seals no GCM (it throws) and opens none (undefined)", () => {
    const c = jsDtlsCryptoCcm(hostRandom);
    const key = new Uint8Array(16);
    const nonce = new Uint8Array(12);
    expect(() => c.seal("aes-128-gcm", key, nonce, new Uint8Array(0), new Uint8Array(1))).toThrow(
      /not in this build/,
    );
    const sealed = nodeDtlsCrypto.seal("aes-128-gcm", key, nonce, new Uint8Array(0), new Uint8Array(1));
    expect(c.open("aes-128-gcm", key, nonce, new Uint8Array(0), sealed)).toBeUndefined();
    expect(jsDtlsCrypto(hostRandom).open("aes-128-gcm", key, nonce, new Uint8Array(0), sealed)).toEqual(
      new Uint8Array(1),
    );
  });

  it("sha256 and hmacSha256 are the same functions", () => {
    const c = jsDtlsCrypto(hostRandom);
    expect(c.sha256).toBe(sha256);
    expect(c.hmacSha256).toBe(hmacSha256);
  });

  it("compares tags in constant time: every byte is looked at", () => {
    const a = new Uint8Array(16).fill(1);
    expect(sameTag(a, a.slice())).toBe(true);
    for (let i = 0; i < 16; i++) expect(sameTag(a, tamper(a, i, 0x10))).toBe(false);
    expect(sameTag(a, a.subarray(0, 8))).toBe(false);
    // No early exit: reads of every index of both arrays, even when the first byte differs.
    const reads = new Set<number>();
    const spy = new Proxy(tamper(a, 0, 1), {
      get(target, p) {
        if (typeof p === "string" && /^\d+$/.test(p)) reads.add(Number(p));
        return Reflect.get(target, p);
      },
    });
    expect(sameTag(a, spy)).toBe(false);
    expect(reads.size).toBe(16);
  });

  it("is portable: no host API in the source (only ECMAScript 2022 globals)", () => {
    const source = readFileSync(new URL("../../src/dtls/js-crypto.ts", import.meta.url), "utf8")
      .replace(/\/\*[\s\S]*?\*\//g, "")
      .replace(/\/\/.*$/gm, "");
    for (const forbidden of [
      "Math.random",
      "Buffer",
      "TextEncoder",
      "TextDecoder",
      "globalThis",
      "crypto.",
      "require(",
      "process",
      "node:",
      "Date",
      "console",
    ])
      expect(source.replace(/^import .*$/gm, "").includes(forbidden), forbidden).toBe(false);
    expect(source.match(/^import .*$/gm)).toEqual([
      'import type { Mac } from "../core/interfaces.js";',
      'import type { AeadAlgorithm, DtlsCrypto } from "./crypto.js";',
    ]);
  });
});

describe("DTLS handshakes with the pure-JavaScript cryptography on one side and node:crypto on the other", () => {
  for (const [id, name] of [
    [TLS_PSK_WITH_AES_128_CCM_8, "TLS_PSK_WITH_AES_128_CCM_8"],
    [TLS_PSK_WITH_AES_128_GCM_SHA256, "TLS_PSK_WITH_AES_128_GCM_SHA256"],
  ] as const) {
    it(`${name}: a jsDtlsCrypto client and a node:crypto server establish and carry data both ways`, async () => {
      const w = dtlsWorld();
      const node = clientAddress(1);
      let randomCalls = 0;
      const c = new DtlsClient(w.net.transport(node), {
        server: SERVER,
        identity: "node-1",
        psk: keyOf("node-1"),
        crypto: jsDtlsCrypto((n) => {
          randomCalls++;
          return hostRandom(n);
        }),
        clock: w.time,
        scheduler: w.time,
        suites: [id],
      });
      const got: string[] = [];
      c.onReceive((data, peer) => got.push(`${str(data)} from ${peer}`));
      expect(await w.connect(c)).toBeUndefined();
      expect(c.established).toBe(true);
      expect(c.suite?.name).toBe(name);
      expect(c.extendedMasterSecret).toBe(true);
      expect(randomCalls).toBeGreaterThan(0);
      expect(w.established).toEqual([{ peer: `coaps://${node}`, identity: "node-1" }]);

      for (let i = 0; i < 20; i++) c.send(text(`up ${i} ${"x".repeat(i * 10)}`), SERVER);
      w.time.advance(10);
      expect(w.toServer.map((d) => d.data)).toEqual(
        Array.from({ length: 20 }, (_, i) => `up ${i} ${"x".repeat(i * 10)}`),
      );
      w.server.send(text("down"), `coaps://${node}` as PeerAddress);
      w.time.advance(10);
      expect(got).toEqual([`down from ${SERVER}`]);
      expect(w.server.stats.handshakesCompleted).toBe(1);
    });

    it(`${name}: a node:crypto client and a jsDtlsCrypto server establish and carry data both ways`, async () => {
      const w = dtlsWorld();
      const address = "192.0.2.2:5684" as PeerAddress;
      const server = new DtlsServer(w.net.transport(address), {
        psk: (identity) => (identity === "node-2" ? keyOf("node-2") : undefined),
        crypto: jsDtlsCrypto(hostRandom),
        clock: w.time,
        scheduler: w.time,
      });
      const up: string[] = [];
      server.onReceive((data, peer) => up.push(`${str(data)} from ${peer}`));
      const node = clientAddress(2);
      const c = w.client(node, "node-2", { server: address, suites: [id] });
      expect(await w.connect(c)).toBeUndefined();
      expect(c.suite?.name).toBe(name);
      c.send(text("up"), address);
      w.time.advance(10);
      expect(up).toEqual([`up from coaps://${node}`]);
      server.send(text("down"), `coaps://${node}` as PeerAddress);
      w.time.advance(10);
      expect(w.toClient.get(node)!.map((d) => d.data)).toEqual(["down"]);
      server.close();
    });
  }

  it("the CCM-only build, offering CCM_8 only, completes at 30% loss each way", async () => {
    const w = dtlsWorld({ conditions: { loss: 0.3 }, seed: 7 });
    const node = clientAddress(3);
    const c = new DtlsClient(w.net.transport(node), {
      server: SERVER,
      identity: "node-3",
      psk: keyOf("node-3"),
      crypto: jsDtlsCryptoCcm(hostRandom),
      clock: w.time,
      scheduler: w.time,
      suites: [TLS_PSK_WITH_AES_128_CCM_8],
    });
    expect(await w.connect(c)).toBeUndefined();
    expect(c.suite?.name).toBe("TLS_PSK_WITH_AES_128_CCM_8");
  });

  it("a wrong key on the jsDtlsCrypto side fails the handshake", async () => {
    const w = dtlsWorld();
    const c = new DtlsClient(w.net.transport(clientAddress(4)), {
      server: SERVER,
      identity: "node-1",
      psk: keyOf("someone else"),
      crypto: jsDtlsCrypto(hostRandom),
      clock: w.time,
      scheduler: w.time,
      handshakeTimeoutMs: 10_000,
    });
    expect(await w.connect(c)).toBeDefined();
    expect(c.established).toBe(false);
    expect(w.server.stats.handshakesCompleted).toBe(0);
  });
});
