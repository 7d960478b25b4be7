/**
 * DTLS interop (issue 10 item 5): our DTLS 1.2 PSK layer (src/dtls) against implementations we did not
 * write, on loopback, with CoAP inside wherever the peer speaks it (test/kit/dtls-peers.ts runs the
 * peers; docs/INTEROP.md, "DTLS peers", says what each offers).
 *
 * A. Independent clients against OUR server: the real gateway in this process with its coaps listener
 *    on a free port and a device whose key is the bytes of a text (the peers take only text keys):
 *    node-dtls-client (GCM, CCM_8), coap-client-openssl and coap-client-gnutls GET /.well-known/core
 *    and get the gateway's link format; openssl s_client (CCM_8, GCM) handshakes with EMS and carries
 *    a CoAP GET made of raw bytes; a wrong key and an unknown identity fail (counted by the gateway)
 *    while a good client at the same moment gets its answer.
 * B. OUR client against independent servers: DtlsClient against openssl s_server (both suites, with
 *    and without an identity hint: a datagram each way) and coap-server-openssl/gnutls (a CoAP GET
 *    through a CoapEndpoint on our DtlsClient, with and without the server's hint).
 * C. A capture of a node on our client talking to our gateway, decoded by tshark with the PSK: CoAP
 *    inside DTLS; without the PSK, nothing of it.
 */
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { el, type XElement } from "../../codec/index.js";
import {
  CoapEndpoint,
  Code,
  type DatagramTransport,
  MessageType,
  NodeClient,
  type PeerAddress,
  parseMessage,
  pathOptions,
  protocol,
  serializeMessage,
} from "../../src/core/index.js";
import {
  DtlsClient,
  type DtlsClientOptions,
  DtlsError,
  TLS_PSK_WITH_AES_128_CCM_8,
  TLS_PSK_WITH_AES_128_GCM_SHA256,
} from "../../src/dtls/index.js";
import {
  createDtlsClientEndpoint,
  cryptoRandom,
  nodeDtlsCrypto,
  nodeMac,
  systemClock,
  timerScheduler,
  UdpTransport,
} from "../../src/node/index.js";
import {
  commandAvailable,
  type LibcoapFlavour,
  libcoapClient,
  libcoapServer,
  type NodeDtlsCipher,
  nodeDtlsClientExchange,
  OPENSSL_CCM8,
  OPENSSL_GCM,
  opensslClient,
  opensslServer,
  pskHex,
  startCapture,
  stopDtlsPeers,
} from "../kit/dtls-peers.js";
import { inProcessGateway, type TestGateway } from "../kit/in-process-gateway.js";
import { scratch } from "../kit/scratch.js";
import { Tap } from "../kit/tap.js";
import { Timings } from "../kit/timings.js";
import { until } from "../kit/wait.js";

const DOMAIN = "iot.localhost";
const text = (s: string) => new TextEncoder().encode(s);

/** Devices whose keys are texts (libcoap 4.3.1 and node-dtls-client take only text keys). */
const SENSOR = { identity: "sensor1", key: "secret-key-sensor1" };
const METER = { identity: "meter2", key: "secret-key-meter2" };

/** What the gateway's /.well-known/core holds (src/core/session/protocol.ts linkFormat). */
const LINK_FORMAT =
  /^<\/c>;rt="cxmpp\.connect";dict="[^"]+",<\/u>;rt="cxmpp\.uplink";ct=65101,<\/>;rt="cxmpp\.uplink";ct=65101,<\/d>;rt="cxmpp\.downlink";obs;ct=65101$/;

const { root, cleanups } = scratch("cxmpp-dtls-interop-");
afterEach(stopDtlsPeers);

const timings = new Timings();
const timed = <T>(what: string, run: () => Promise<T>): Promise<T> => timings.timed(what, run);
/** What interoperated: peer, suite, extended master secret, identity hint, what went through. */
const matrix: Array<[string, string, string, string, string]> = [];
afterAll(() => {
  console.log(timings.report("DTLS interop timings (ms)"));
  console.log(
    `DTLS interop matrix (peer | suite | EMS | hint | exchange):\n${matrix.map((row) => `  ${row.join(" | ")}`).join("\n")}`,
  );
});

function portOf(address: string): number {
  return Number(address.slice(address.lastIndexOf(":") + 1));
}

/** A CON GET of /.well-known/core as raw bytes. */
function wellKnownGet(messageId: number, token: Uint8Array): Uint8Array {
  return serializeMessage({
    type: MessageType.CON,
    code: Code.GET,
    messageId,
    token,
    options: pathOptions(protocol.Paths.CORE),
    payload: new Uint8Array(0),
  });
}

let gw: TestGateway;
let coapsPort: number;
const outbound: XElement[] = [];

beforeAll(async () => {
  gw = await inProcessGateway(join(root, "gw"), { outbound, flags: { dtls_listen: "127.0.0.1:0" } });
  cleanups.push(() => gw.stop());
  coapsPort = portOf(gw.secureAddress!);
  for (const d of [SENSOR, METER])
    gw.store.devices.add({
      identity: d.identity,
      key: text(d.key),
      jid: `${d.identity}@${DOMAIN}`,
      peers: [],
      dtlsOnly: true,
    });
});

// ---------------------------------------------------------------------------------------------------
// A. independent clients → our server (the gateway's coaps listener)

describe("A. independent clients → the gateway's DTLS server", () => {
  it.each([
    ["GCM", "TLS_PSK_WITH_AES_128_GCM_SHA256"],
    ["CCM_8", "TLS_PSK_WITH_AES_128_CCM_8"],
  ] as const)(
    "node-dtls-client (%s, no EMS) GETs /.well-known/core: 2.05 with the link format",
    async (_, cipher) => {
      const completed = gw.dtls!.stats.handshakesCompleted;
      const mid = 0x5151;
      const reply = await timed(`node-dtls-client ${cipher}: handshake + GET`, () =>
        nodeDtlsClientExchange({
          port: coapsPort,
          identity: SENSOR.identity,
          pskText: SENSOR.key,
          ciphers: [cipher as NodeDtlsCipher],
          send: wellKnownGet(mid, Uint8Array.of(0xa1, 0xb2)),
        }),
      );
      const m = parseMessage(reply);
      expect(m.type).toBe(MessageType.ACK);
      expect(m.code).toBe(Code.CONTENT);
      expect(m.messageId).toBe(mid);
      expect([...m.token]).toEqual([0xa1, 0xb2]);
      expect(new TextDecoder().decode(m.payload)).toMatch(LINK_FORMAT);
      expect(gw.dtls!.stats.handshakesCompleted).toBe(completed + 1);
      matrix.push(["node-dtls-client → gateway", cipher, "no (not offered)", "no", "GET /.well-known/core"]);
    },
  );

  it.each(["openssl", "gnutls"] as const)(
    "coap-client-%s GETs coaps://…/.well-known/core: 2.05 with the link format",
    async (flavour: LibcoapFlavour) => {
      const completed = gw.dtls!.stats.handshakesCompleted;
      const res = await timed(`coap-client-${flavour}: handshake + GET`, () =>
        libcoapClient({
          flavour,
          url: `coaps://127.0.0.1:${coapsPort}/.well-known/core`,
          identity: SENSOR.identity,
          pskText: SENSOR.key,
          verbose: 9, // the TLS library's log too: the suite it got (and GnuTLS: the ServerHello's extensions)
        }),
      );
      expect(res.code, res.stdout + res.stderr).toBe("2.05");
      expect(res.payload.toString()).toMatch(LINK_FORMAT);
      expect(gw.dtls!.stats.handshakesCompleted).toBe(completed + 1);
      // Both offer ECDHE-PSK and ChaCha first; we have CCM_8 and GCM, CCM_8 preferred.
      const log = res.stdout + res.stderr;
      if (flavour === "openssl") expect(log).toMatch(/Using cipher: PSK-AES128-CCM8\b/);
      else {
        expect(log).toMatch(/Selected cipher suite: GNUTLS_PSK_AES_128_CCM_8\b/);
        expect(log).toMatch(/Parsing extension 'Extended Master Secret\/23'/); // in our ServerHello
      }
      matrix.push([
        `coap-client-${flavour} → gateway`,
        "TLS_PSK_WITH_AES_128_CCM_8",
        flavour === "gnutls" ? "yes" : "offered (not logged)",
        "no",
        "GET /.well-known/core",
      ]);
    },
  );

  it.each([
    [OPENSSL_CCM8, "PSK-AES128-CCM8", "TLS_PSK_WITH_AES_128_CCM_8"],
    [OPENSSL_GCM, "PSK-AES128-GCM-SHA256", "TLS_PSK_WITH_AES_128_GCM_SHA256"],
  ])(
    "openssl s_client -cipher %s: handshake with EMS, then a CoAP GET in raw bytes gets 2.05",
    async (cipher, expected, suite) => {
      const completed = gw.dtls!.stats.handshakesCompleted;
      const failed = gw.dtls!.stats.handshakesFailed;
      const client = await timed(`s_client ${cipher}: spawn + handshake`, () =>
        opensslClient({ port: coapsPort, psk: pskHex(SENSOR.key), identity: SENSOR.identity, cipher }),
      );
      expect(client.handshake, client.output()).toMatchObject({
        ok: true,
        cipher: expected,
        protocol: "DTLSv1.2",
        extendedMasterSecret: true,
        secureRenegotiation: true,
      });
      expect(gw.dtls!.stats.handshakesCompleted).toBe(completed + 1);
      // A line of text is no CoAP message: the gateway's CoAP layer drops it; the session stays.
      const records = gw.dtls!.stats.recordsIn;
      client.send("hello from s_client\n");
      await until(() => gw.dtls!.stats.recordsIn > records, 5_000);
      // s_client sends what it reads from stdin as one record: a CoAP GET, byte for byte.
      client.sendBytes(wellKnownGet(0x4142, text("tk")));
      await client.waitFor(/<\/d>;rt="cxmpp\.downlink";obs;ct=65101/);
      // s_client prints the record as is (read here as UTF-8): the header is ASCII too, "bEAB" + token
      // "tk" = ACK (0x62), 2.05 (0x45), MID 0x4142; then Content-Format 40 (bytes C1 28, not UTF-8) and
      // the link format.
      expect(client.received()).toMatch(/bEABtk[^<]{1,4}<\/c>;rt="cxmpp\.connect";dict="[^"]+",<\/u>;/);
      await client.stop();
      expect(gw.dtls!.stats.handshakesFailed).toBe(failed);
      matrix.push(["s_client → gateway", suite, "yes", "no", "CoAP GET as raw bytes"]);
    },
  );
});

describe("A. refused clients: the gateway counts the failure, a good client at the same moment is served", () => {
  it("a wrong key from coap-client-openssl fails while coap-client-gnutls GETs /.well-known/core", async () => {
    const stats = { ...gw.dtls!.stats };
    const [bad, good] = await timed("coap-client-openssl wrong key ∥ coap-client-gnutls good key", () =>
      Promise.all([
        libcoapClient({
          flavour: "openssl",
          url: `coaps://127.0.0.1:${coapsPort}/.well-known/core`,
          identity: SENSOR.identity,
          pskText: "not-the-sensor1-key",
          timeoutS: 3,
        }),
        libcoapClient({
          flavour: "gnutls",
          url: `coaps://127.0.0.1:${coapsPort}/.well-known/core`,
          identity: METER.identity,
          pskText: METER.key,
        }),
      ]),
    );
    expect(bad.code, bad.stdout + bad.stderr).toBeUndefined();
    expect(bad.stderr + bad.stdout).toMatch(/alert read:fatal:decrypt error/); // our alert at Finished
    expect(bad.payload).toHaveLength(0);
    expect(good.code, good.stdout + good.stderr).toBe("2.05");
    expect(good.payload.toString()).toMatch(LINK_FORMAT);
    expect(gw.dtls!.stats.handshakesFailed).toBe(stats.handshakesFailed + 1);
    expect(gw.dtls!.stats.handshakesCompleted).toBe(stats.handshakesCompleted + 1);
  });

  it("a wrong key from s_client fails at Finished while node-dtls-client GETs /.well-known/core", async () => {
    const stats = { ...gw.dtls!.stats };
    const [bad, good] = await timed("s_client wrong key ∥ node-dtls-client good key", () =>
      Promise.all([
        opensslClient({
          port: coapsPort,
          psk: pskHex("not-the-sensor1-key"),
          identity: SENSOR.identity,
          handshakeTimeoutMs: 3_000,
        }),
        nodeDtlsClientExchange({
          port: coapsPort,
          identity: METER.identity,
          pskText: METER.key,
          send: wellKnownGet(0x0a0b, Uint8Array.of(9)),
        }),
      ]),
    );
    expect(bad.handshake.ok, bad.output()).toBe(false);
    expect(bad.output()).toMatch(/decrypt error/i); // our alert, as s_client names it
    expect(parseMessage(good).code).toBe(Code.CONTENT);
    expect(gw.dtls!.stats.handshakesFailed).toBe(stats.handshakesFailed + 1);
    expect(gw.dtls!.stats.handshakesCompleted).toBe(stats.handshakesCompleted + 1);
  });

  it("an unknown identity fails like a wrong key (s_client, coap-client-gnutls) while s_client with a good key is served", async () => {
    const stats = { ...gw.dtls!.stats };
    const [badSsl, badCoap, good] = await timed("2 unknown identities ∥ s_client good key", () =>
      Promise.all([
        opensslClient({
          port: coapsPort,
          psk: pskHex(SENSOR.key),
          identity: "intruder",
          handshakeTimeoutMs: 3_000,
        }),
        libcoapClient({
          flavour: "gnutls",
          url: `coaps://127.0.0.1:${coapsPort}/.well-known/core`,
          identity: "intruder",
          pskText: SENSOR.key,
          timeoutS: 3,
        }),
        opensslClient({
          port: coapsPort,
          psk: pskHex(METER.key),
          identity: METER.identity,
          cipher: OPENSSL_GCM,
        }),
      ]),
    );
    expect(badSsl.handshake.ok).toBe(false);
    expect(badSsl.output()).toMatch(/decrypt error/i);
    expect(badCoap.code).toBeUndefined();
    expect(badCoap.stderr + badCoap.stdout).toMatch(/Alert '51': Decrypt error/); // as for a wrong key
    expect(good.handshake).toMatchObject({
      ok: true,
      cipher: "PSK-AES128-GCM-SHA256",
      extendedMasterSecret: true,
    });
    good.sendBytes(wellKnownGet(0x0c0d, Uint8Array.of(3)));
    await good.waitFor('</c>;rt="cxmpp.connect"');
    expect(gw.dtls!.stats.handshakesFailed).toBe(stats.handshakesFailed + 2);
    expect(gw.dtls!.stats.handshakesCompleted).toBe(stats.handshakesCompleted + 1);
  });
});

// ---------------------------------------------------------------------------------------------------
// B. our client → independent servers

const CLIENT_ID = "client1";
const CLIENT_KEY = "secretPSK-0123456789";

const SERVER_KEY_EXCHANGE = 12;

interface OurClient {
  readonly dtls: DtlsClient;
  /** The UDP socket beneath our client, keeping what the server sent (to see its handshake messages). */
  readonly tap: Tap;
  readonly server: PeerAddress;
  /** Application datagrams received, as text. */
  readonly received: string[];
  readonly endpoint: CoapEndpoint;
}

/** Our DtlsClient over a UDP socket to 127.0.0.1:port, with a CoAP endpoint on top. */
async function ourClient(
  port: number,
  options: Partial<
    Pick<DtlsClientOptions, "suites" | "identity" | "psk" | "handshakeTimeoutMs" | "retransmit">
  > = {},
): Promise<OurClient> {
  const udp = await UdpTransport.bind("127.0.0.1", 0);
  const tap = new Tap(udp);
  const server = `127.0.0.1:${port}` as PeerAddress;
  const dtls = new DtlsClient(tap, {
    server,
    identity: options.identity ?? CLIENT_ID,
    psk: options.psk ?? text(CLIENT_KEY),
    crypto: nodeDtlsCrypto,
    clock: systemClock,
    scheduler: timerScheduler(),
    handshakeTimeoutMs: options.handshakeTimeoutMs ?? 5_000,
    ...(options.suites ? { suites: options.suites } : {}),
    ...(options.retransmit ? { retransmit: options.retransmit } : {}),
  });
  // Raw datagrams (s_server) are read below the endpoint: the endpoint drops what is not CoAP.
  const received: string[] = [];
  const upper = {
    send: (d: Uint8Array, p: PeerAddress) => dtls.send(d, p),
    onReceive(handler: (d: Uint8Array, p: PeerAddress) => void) {
      dtls.onReceive((d, p) => {
        received.push(new TextDecoder().decode(d));
        handler(d, p);
      });
    },
    close: () => dtls.close(),
  } satisfies DatagramTransport;
  const endpoint = new CoapEndpoint({
    transport: upper,
    clock: systemClock,
    scheduler: timerScheduler(),
    random: cryptoRandom,
  });
  cleanups.push(() => {
    endpoint.close();
    dtls.close();
  });
  return { dtls, tap, server, received, endpoint };
}

const SUITES = [
  [OPENSSL_CCM8, TLS_PSK_WITH_AES_128_CCM_8, "TLS_PSK_WITH_AES_128_CCM_8"],
  [OPENSSL_GCM, TLS_PSK_WITH_AES_128_GCM_SHA256, "TLS_PSK_WITH_AES_128_GCM_SHA256"],
] as const;

describe("B. our DtlsClient → openssl s_server -dtls1_2 -nocert -psk", () => {
  it.each(
    SUITES.flatMap(([cipher, , suite]) => [
      [cipher, suite, "no hint"] as const,
      [cipher, suite, "a hint"] as const,
    ]),
  )("s_server -cipher %s (%s), %s: EMS, a datagram each way", async (cipher, suite, hint) => {
    const server = await timed(`s_server ${cipher} start`, () =>
      opensslServer({
        psk: pskHex(CLIENT_KEY),
        identity: CLIENT_ID,
        cipher,
        ...(hint === "a hint" ? { hint: "s_server hint" } : {}),
      }),
    );
    const c = await ourClient(server.port);
    await timed(`DtlsClient → s_server ${cipher}, ${hint}: handshake`, () => c.dtls.connect());
    expect(c.dtls.suite?.name).toBe(suite);
    expect(c.dtls.extendedMasterSecret).toBe(true);
    // With -psk_hint s_server sends a ServerKeyExchange, which our client reads past.
    expect(c.tap.handshakeTypes().includes(SERVER_KEY_EXCHANGE)).toBe(hint === "a hint");
    await server.waitFor(/^CIPHER is /m); // s_server prints it once its side is done too
    expect(server.ciphers()).toEqual([cipher]);
    expect(server.received()).not.toContain("PSK warning"); // s_server got the identity it expects
    c.dtls.send(text("datagram from cxmpp\n"), c.server);
    await server.waitFor("datagram from cxmpp\n");
    server.send("reply from s_server\n");
    await until(() => c.received.length > 0, 5_000);
    expect(c.received).toEqual(["reply from s_server\n"]);
    expect(c.dtls.stats.handshakes).toBe(1);
    expect(c.dtls.stats.handshakeFailures).toBe(0);
    matrix.push(["s_server", suite, "yes", hint === "a hint" ? "yes" : "no", "datagram each way"]);
  });

  it("a wrong key: s_server drops our Finished without an alert (OpenSSL), so our client has no answer", async () => {
    const server = await opensslServer({
      psk: pskHex(CLIENT_KEY),
      identity: CLIENT_ID,
      cipher: OPENSSL_CCM8,
    });
    const c = await ourClient(server.port, {
      psk: text("a-wrong-key-entirely"),
      handshakeTimeoutMs: 1_000,
      retransmit: { initialMs: 250 },
    });
    const failed = await timed("DtlsClient wrong key → s_server: handshake timeout 1 s", () =>
      c.dtls.connect().then(
        () => undefined,
        (error: unknown) => error,
      ),
    );
    expect(failed).toBeInstanceOf(DtlsError);
    expect((failed as DtlsError).kind).toBe("timeout");
    expect(c.dtls.established).toBe(false);
    expect(c.dtls.stats.retransmissions).toBeGreaterThan(0); // our last flight went again, unanswered
    expect(server.ciphers()).toEqual([]);
  });
});

describe("B. our DtlsClient under a CoapEndpoint → libcoap coap-server with a PSK", () => {
  const cases = (["openssl", "gnutls"] as const).flatMap((flavour) =>
    (["no hint", "hint CoAP"] as const).map((hint) => [flavour, hint] as const),
  );
  it.each(cases)(
    "coap-server-%s, %s: GET /time and /example_data (Block2) give 2.05 over each suite",
    async (flavour, hint) => {
      const srv = await timed(`coap-server-${flavour} start`, () =>
        libcoapServer({ flavour, pskText: CLIENT_KEY, ...(hint === "no hint" ? { hint: "" } : {}) }),
      );
      for (const [, id, name] of SUITES) {
        const c = await ourClient(srv.port, { suites: [id] });
        const time = await timed(
          `DtlsClient → coap-server-${flavour}, ${hint}, ${name}: handshake + GET /time`,
          () =>
            c.endpoint.request(c.server, {
              code: Code.GET,
              options: pathOptions("time"),
              payload: new Uint8Array(0),
            }),
        );
        expect(time.code).toBe(Code.CONTENT);
        expect(new TextDecoder().decode(time.payload)).toMatch(/^[A-Z][a-z]{2} \d\d \d\d:\d\d:\d\d$/);
        expect(c.dtls.suite?.name).toBe(name);
        expect(c.dtls.extendedMasterSecret).toBe(true);
        // libcoap's hint ("CoAP" unless -h "") comes in a ServerKeyExchange.
        expect(c.tap.handshakeTypes().includes(SERVER_KEY_EXCHANGE)).toBe(hint === "hint CoAP");
        // Block2 through DTLS: 1,500 bytes in 1,024-byte blocks.
        const data = await c.endpoint.request(c.server, {
          code: Code.GET,
          options: pathOptions("example_data"),
          payload: new Uint8Array(0),
        });
        expect(data.code).toBe(Code.CONTENT);
        expect(data.payload).toHaveLength(1500);
        expect(c.dtls.stats.handshakes).toBe(1);
        matrix.push([
          `coap-server-${flavour}`,
          name,
          "yes",
          hint === "no hint" ? "no" : "yes",
          "GET /time, Block2",
        ]);
        c.endpoint.close();
        c.dtls.close();
      }
      // Our default offer, CCM_8 then GCM: both libraries take CCM_8 (RFC 7925's mandatory suite).
      const both = await ourClient(srv.port);
      const time = await both.endpoint.request(both.server, {
        code: Code.GET,
        options: pathOptions("time"),
        payload: new Uint8Array(0),
      });
      expect(time.code).toBe(Code.CONTENT);
      expect(both.dtls.suite?.name).toBe("TLS_PSK_WITH_AES_128_CCM_8");
    },
  );
});

// ---------------------------------------------------------------------------------------------------
// C. tshark reads our CoAP inside our DTLS, with the PSK only

describe.skipIf(!commandAvailable("tshark") || !commandAvailable("dumpcap"))(
  "C. a capture of a node on our DtlsClient ↔ the gateway, decoded by tshark",
  () => {
    it("with -o dtls.psk:HEX the connect (POST /c) and the uplink (POST /, format 2) show as CoAP; without it, none", async () => {
      const capture = await timed("capture start", () => startCapture({ ports: [coapsPort] }));
      const gateway = gw.secureAddress as PeerAddress;
      const node = await createDtlsClientEndpoint({
        host: "127.0.0.1",
        dtls: { server: gateway, identity: SENSOR.identity, psk: text(SENSOR.key) },
      });
      cleanups.push(() => node.close());
      const client = new NodeClient({
        endpoint: node.endpoint,
        gateway,
        identity: SENSOR.identity,
        key: text(SENSOR.key),
        mac: nodeMac,
      });
      const sent = outbound.length;
      await timed("NodeClient over coaps: handshake + connect + one stanza", async () => {
        await client.connect();
        await client.send(
          el(
            "jabber:client",
            "message",
            { to: "sink@elsewhere.example", type: "chat" },
            el("jabber:client", "body", {}, "over coaps"),
          ),
        );
      });
      await until(() => outbound.length > sent, 5_000);
      await node.close();
      await timed("capture stop", () => capture.stop());
      const psk = pskHex(SENSOR.key);
      const decrypted = await timed("tshark decode with the PSK", () => capture.decode({ pskHex: psk }));
      expect(decrypted).toMatch(/CoAP \d+ CON, MID:\d+, POST, TKN:[0-9a-f ]+, \/c\b/);
      expect(decrypted).toMatch(/CoAP \d+ ACK, MID:\d+, 2\.0[14] \w+, TKN:[0-9a-f ]+, \/c\b/);
      // The uplink goes to the root in format 2 (docs/PROTOCOL.md §3.3): no Uri-Path, so no path shown.
      expect(decrypted).toMatch(/CoAP \d+ CON, MID:\d+, POST, TKN:[0-9a-f ]+$/m);
      // The handshake's own last messages are readable too.
      expect(decrypted).toContain("Client Key Exchange, Change Cipher Spec, Finished");
      const fields = await capture.decode({ pskHex: psk, fields: ["coap.opt.uri_path"], filter: "coap" });
      expect(fields.split("\n")).toEqual(expect.arrayContaining(["c"]));
      const opaque = await timed("tshark decode without the PSK", () => capture.decode());
      expect(opaque).toContain("Application Data");
      expect(opaque).not.toMatch(/CoAP|POST|\/c\b|\/u\b/);
      expect(opaque).toContain("Encrypted Handshake Message");
    });
  },
);
