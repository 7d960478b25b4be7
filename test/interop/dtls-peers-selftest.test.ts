/**
 * The DTLS test peers of test/kit/dtls-peers.ts against each other, without any code of ours: proof
 * that each peer, as the kit runs it, does DTLS 1.2 with a PSK on loopback, so that a failure of our
 * DTLS layer (src/dtls) against one of them is ours. Also what each peer costs in time (printed at
 * the end, and written down in docs/INTEROP.md).
 */
import { afterAll, afterEach, describe, expect, it } from "vitest";
import {
  commandAvailable,
  DTLS_FIELDS,
  LIBCOAP_SERVER_BANNER,
  type LibcoapFlavour,
  libcoapClient,
  libcoapServer,
  nodeDtlsClientExchange,
  OPENSSL_CCM8,
  OPENSSL_GCM,
  opensslClient,
  opensslServer,
  pskHex,
  startCapture,
  stopDtlsPeers,
} from "../kit/dtls-peers.js";
import { Timings } from "../kit/timings.js";

const KEY = "secretPSK-0123456789";
const PSK = pskHex(KEY);
const ID = "client1";

const timings = new Timings();
const timed = <T>(what: string, run: () => Promise<T>): Promise<T> => timings.timed(what, run);

afterEach(stopDtlsPeers);
afterAll(() => {
  console.log(timings.report("DTLS peer timings (ms)"));
});

const FLAVOURS: readonly LibcoapFlavour[] = ["openssl", "gnutls"];

describe("libcoap client → libcoap server, coaps with a PSK", () => {
  it.each(FLAVOURS.flatMap((server) => FLAVOURS.map((client) => [client, server] as const)))(
    "coap-client-%s GETs / from coap-server-%s: 2.05 with the banner",
    async (client, server) => {
      const srv = await timed(`coap-server-${server} start (ready for a CoAP ping)`, () =>
        libcoapServer({ flavour: server, pskText: KEY }),
      );
      const res = await timed(`coap-client-${client} → coap-server-${server}: handshake + GET /`, () =>
        libcoapClient({ flavour: client, url: `${srv.url}/`, identity: ID, pskText: KEY }),
      );
      expect(res.code, res.stdout + res.stderr).toBe("2.05");
      expect(res.payload.toString()).toContain(LIBCOAP_SERVER_BANNER);
      expect(res.exitCode).toBe(0);
    },
  );

  it("Block2 inside DTLS: coap-client-openssl GETs the 1,500-byte /example_data in 64-byte blocks", async () => {
    const srv = await libcoapServer({ flavour: "openssl", pskText: KEY });
    const res = await libcoapClient({
      flavour: "openssl",
      url: `${srv.url}/example_data`,
      identity: ID,
      pskText: KEY,
      args: ["-b", "64"],
    });
    expect(res.code).toBe("2.05");
    expect(res.payload).toHaveLength(1500);
    expect(res.payload.subarray(0, 10).toString()).toBe("a123456789");
  });

  it("identity: the key is bound to it; another identity's handshake fails and no response comes", async () => {
    const srv = await libcoapServer({ flavour: "openssl", pskText: KEY, identity: ID });
    const good = await libcoapClient({
      flavour: "gnutls",
      url: `${srv.url}/time`,
      identity: ID,
      pskText: KEY,
    });
    expect(good.code).toBe("2.05");
    const bad = await timed("coap-client-gnutls, unknown identity, -B 2 (gives up)", () =>
      libcoapClient({
        flavour: "gnutls",
        url: `${srv.url}/time`,
        identity: "intruder",
        pskText: KEY,
        timeoutS: 2,
      }),
    );
    expect(bad.code).toBeUndefined();
    expect(bad.payload).toHaveLength(0);
  });
});

describe("openssl s_client ↔ openssl s_server", () => {
  it.each([
    [OPENSSL_CCM8, "PSK-AES128-CCM8"],
    [OPENSSL_GCM, "PSK-AES128-GCM-SHA256"],
  ])("%s: a line each way", async (cipher, expected) => {
    const server = await timed("s_server start (until ACCEPT)", () =>
      opensslServer({ psk: PSK, identity: ID }),
    );
    const client = await timed(`s_client ${cipher}: spawn + handshake`, () =>
      opensslClient({ port: server.port, psk: PSK, identity: ID, cipher }),
    );
    expect(client.handshake, client.output()).toMatchObject({
      ok: true,
      cipher: expected,
      protocol: "DTLSv1.2",
      extendedMasterSecret: true,
      secureRenegotiation: true,
    });
    await timed(`s_client → s_server → s_client, one line each way (${cipher})`, async () => {
      client.send("ping from s_client\n");
      await server.waitFor("ping from s_client\n");
      server.send("pong from s_server\n");
      await client.waitFor("pong from s_server\n");
    });
    expect(server.ciphers()).toEqual([expected]);
    expect(client.received()).toBe("pong from s_server\n");
    await client.stop();
    await server.waitFor(/^DONE$/m); // the client's close_notify ended the connection
  });

  it("a wrong key: no alert, the handshake times out (OpenSSL drops the Finished it cannot decrypt)", async () => {
    const server = await opensslServer({ psk: PSK, identity: ID });
    const client = await opensslClient({
      port: server.port,
      psk: pskHex("another key"),
      identity: ID,
      handshakeTimeoutMs: 2_000,
    });
    expect(client.handshake.ok).toBe(false);
    expect(client.handshake.error).toMatch(/^no handshake within 2000 ms/);
    expect(server.ciphers()).toEqual([]);
  });
});

describe("node-dtls-client 1.1.1", () => {
  it("→ s_server: the datagram reaches s_server's stdout, s_server's reply comes back", async () => {
    const server = await opensslServer({ psk: PSK, identity: ID });
    const reply = await timed("node-dtls-client → s_server: handshake + datagram + reply", () =>
      nodeDtlsClientExchange({
        port: server.port,
        identity: ID,
        pskText: KEY,
        send: new TextEncoder().encode("datagram from node-dtls-client\n"),
        onConnected: () => {
          void server.waitFor("datagram from node-dtls-client\n").then(() => server.send("reply\n"));
        },
      }),
    );
    expect(reply.toString()).toBe("reply\n");
    // node-dtls-client offers GCM first; it sends no renegotiation_info, no SCSV and no EMS.
    expect(server.received()).toContain(
      "CIPHER is PSK-AES128-GCM-SHA256\nSecure Renegotiation IS NOT supported",
    );
  });

  it("→ s_server with CCM_8 only", async () => {
    const server = await opensslServer({ psk: PSK, identity: ID });
    const exchange = nodeDtlsClientExchange({
      port: server.port,
      identity: ID,
      pskText: KEY,
      ciphers: ["TLS_PSK_WITH_AES_128_CCM_8"],
      send: new TextEncoder().encode("ccm8\n"),
      onConnected: () => {
        void server.waitFor("ccm8\n").then(() => server.send("ok\n"));
      },
    });
    expect((await exchange).toString()).toBe("ok\n");
    expect(server.ciphers()).toEqual(["PSK-AES128-CCM8"]);
  });

  it("cannot take a ServerKeyExchange (any identity hint): rejects with a clear error", async () => {
    const server = await opensslServer({ psk: PSK, identity: ID, hint: "some hint" });
    await expect(
      nodeDtlsClientExchange({ port: server.port, identity: ID, pskText: KEY, send: Uint8Array.of(1) }),
    ).rejects.toThrow(/unsupported message type 12/);
  });

  it("→ coap-server-openssl without a hint: a CoAP GET /time inside DTLS gets 2.05", async () => {
    const srv = await libcoapServer({ flavour: "openssl", pskText: KEY, hint: "" });
    // CON GET, token 0x01, MID 0x1234, Uri-Path "time"
    const get = Uint8Array.from([0x41, 0x01, 0x12, 0x34, 0x01, 0xb4, ...new TextEncoder().encode("time")]);
    const reply = await timed("node-dtls-client → coap-server-openssl: handshake + CoAP GET", () =>
      nodeDtlsClientExchange({ port: srv.port, identity: ID, pskText: KEY, send: get }),
    );
    expect(reply[0]! >> 4).toBe(0x6); // v1 ACK
    expect(reply[1]).toBe(0x45); // 2.05
    expect(reply.readUInt16BE(2)).toBe(0x1234);
  });
});

describe.skipIf(!commandAvailable("tshark") || !commandAvailable("dumpcap"))(
  "tshark decrypts DTLS on lo",
  () => {
    it("s_client ↔ s_server PSK-AES128-CCM8, decrypted with the PSK", async () => {
      const server = await opensslServer({ psk: PSK, identity: ID });
      const capture = await timed("capture start (dumpcap, until the marker is seen)", () =>
        startCapture({ ports: [server.port] }),
      );
      const client = await opensslClient({ port: server.port, psk: PSK, identity: ID });
      client.send("secret text\n");
      await server.waitFor("secret text\n");
      await client.stop();
      await timed("capture stop (until the end marker is seen)", () => capture.stop());
      const summary = await timed("tshark decode (one run)", () =>
        capture.decode({ pskHex: PSK, coap: false }),
      );
      // Decrypted, the Finished messages have their names instead of "Encrypted Handshake Message".
      expect(summary).toMatch(/Client Key Exchange, Change Cipher Spec, Finished/);
      const data = await capture.decode({ pskHex: PSK, coap: false, fields: ["data.data"], filter: "data" });
      expect(data).toContain(Buffer.from("secret text\n").toString("hex"));
      const fields = await capture.decode({
        pskHex: PSK,
        fields: DTLS_FIELDS,
        filter: "dtls.handshake.type==2",
      });
      expect(fields).toMatch(/\|0xc0a8\|65281,35,23\|/); // ServerHello: CCM_8; renegotiation_info, ticket, EMS
    });

    it("libcoap ↔ libcoap: ECDHE-PSK-CHACHA20-POLY1305 is not decrypted; GnuTLS without ChaCha gets PSK-AES256-GCM, which is", async () => {
      const srv = await libcoapServer({ flavour: "openssl", pskText: KEY });
      const capture = await startCapture({ ports: [srv.port] });
      const chacha = await libcoapClient({
        flavour: "openssl",
        url: `${srv.url}/time`,
        identity: ID,
        pskText: KEY,
      });
      const gcm = await libcoapClient({
        flavour: "gnutls",
        url: `${srv.url}/time`,
        identity: ID,
        pskText: KEY,
        noChacha: true,
      });
      expect(chacha.code).toBe("2.05");
      expect(gcm.code).toBe("2.05");
      await capture.stop();
      const hellos = await capture.decode({
        fields: ["dtls.handshake.ciphersuite"],
        filter: "dtls.handshake.type==2",
      });
      expect(hellos.trim().split("\n")).toEqual(["0xccac", "0x00a9"]); // ECDHE-PSK-CHACHA20, PSK-AES256-GCM
      const coap = await capture.decode({ pskHex: PSK, filter: "coap" });
      // Only the second session's GET and 2.05 are readable.
      expect(coap.match(/CON, MID:\d+, GET, TKN:01, :\d+\/time/g)).toHaveLength(1); // Uri-Port, Uri-Path
      expect(coap.match(/ACK, MID:\d+, 2\.05 Content/g)).toHaveLength(1);
    });
  },
);
