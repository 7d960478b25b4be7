/**
 * Whole handshakes between DtlsClient and DtlsServer over the in-memory link on the fake clock: both
 * suites, extended master secret, the bytes of each flight, fragmentation at a small MTU, application
 * data both ways, and completion under heavy loss, duplication and reordering.
 */

import { describe, expect, it } from "vitest";
import type { PeerAddress } from "../../src/core/interfaces.js";
import { HANDSHAKE_HEADER_BYTES, HandshakeType, parseFragments } from "../../src/dtls/handshake.js";
import {
  Alert,
  DtlsError,
  TLS_PSK_WITH_AES_128_CCM_8,
  TLS_PSK_WITH_AES_128_GCM_SHA256,
} from "../../src/dtls/index.js";
import { ExtensionType, hasExtension, parseServerHello } from "../../src/dtls/messages.js";
import { ContentType, parseRecords, RECORD_HEADER_BYTES } from "../../src/dtls/record.js";
import { clientAddress, dtlsWorld, holdFirst, SERVER, text } from "./kit.js";

const NODE = clientAddress(1);

/** The plaintext handshake fragments in a datagram (epoch 0 only: later ones are encrypted). */
function plainFragments(datagram: Uint8Array) {
  return parseRecords(datagram)
    .filter((r) => r.epoch === 0 && r.type === ContentType.HANDSHAKE)
    .flatMap((r) => parseFragments(r.fragment));
}

describe("DTLS handshake over the in-memory link", () => {
  for (const [id, name, tag] of [
    [TLS_PSK_WITH_AES_128_CCM_8, "TLS_PSK_WITH_AES_128_CCM_8", 8],
    [TLS_PSK_WITH_AES_128_GCM_SHA256, "TLS_PSK_WITH_AES_128_GCM_SHA256", 16],
  ] as const) {
    it(`${name}: establishes, negotiates the extended master secret, carries data both ways`, async () => {
      const w = dtlsWorld();
      const c = w.client(NODE, "node-1", { suites: [id] });
      expect(await w.connect(c)).toBeUndefined();
      expect(c.established).toBe(true);
      expect(c.suite?.name).toBe(name);
      expect(c.extendedMasterSecret).toBe(true);
      expect(c.overhead).toBe(RECORD_HEADER_BYTES + 8 + tag);
      expect(w.established).toEqual([{ peer: `coaps://${NODE}`, identity: "node-1" }]);
      expect(w.server.stats.handshakesCompleted).toBe(1);
      expect(w.server.tables()).toEqual({ handshakes: 0, sessions: 1 });

      // The server said yes to EMS in its (plaintext) ServerHello.
      const sh = w
        .wire(0, { from: SERVER })
        .flatMap((d) => plainFragments(d.data))
        .find((f) => f.type === HandshakeType.SERVER_HELLO);
      expect(sh).toBeDefined();
      const hello = parseServerHello(sh!.data);
      expect(hello.suite).toBe(id);
      expect(hasExtension(hello.extensions, ExtensionType.EXTENDED_MASTER_SECRET)).toBe(true);

      const mark = w.net.log.length;
      c.send(text("up 1"), SERVER);
      c.send(text("up 2"), SERVER);
      w.time.advance(10);
      expect(w.toServer.map((d) => [d.data, d.peer])).toEqual([
        ["up 1", `coaps://${NODE}`],
        ["up 2", `coaps://${NODE}`],
      ]);
      w.server.send(text("down"), `coaps://${NODE}` as PeerAddress);
      w.time.advance(10);
      expect(w.toClient.get(NODE)!.map((d) => [d.data, d.peer])).toEqual([["down", SERVER]]);
      // Each application datagram is one record: the plaintext plus header, explicit nonce and tag.
      const sizes = w.wire(mark).map((d) => d.data.length);
      expect(sizes).toEqual([4 + c.overhead, 4 + c.overhead, 4 + c.overhead]);
      // Nothing of the plaintext is on the wire.
      for (const d of w.wire(mark)) expect(Buffer.from(d.data).includes(Buffer.from("up "))).toBe(false);
    });
  }

  it("the server picks its own preference (CCM_8) from a client offering GCM first", async () => {
    const w = dtlsWorld();
    const c = w.client(NODE, "node-1", {
      suites: [TLS_PSK_WITH_AES_128_GCM_SHA256, TLS_PSK_WITH_AES_128_CCM_8],
    });
    expect(await w.connect(c)).toBeUndefined();
    expect(c.suite?.id).toBe(TLS_PSK_WITH_AES_128_CCM_8);
  });

  it("no common suite: the client is told handshake_failure and the server keeps no state", async () => {
    const w = dtlsWorld({ server: { suites: [TLS_PSK_WITH_AES_128_GCM_SHA256] } });
    const c = w.client(NODE, "node-1", { suites: [TLS_PSK_WITH_AES_128_CCM_8] });
    const error = await w.connect(c);
    expect(error).toBeInstanceOf(DtlsError);
    expect((error as DtlsError).alert).toBe(Alert.HANDSHAKE_FAILURE);
    expect(w.server.tables()).toEqual({ handshakes: 0, sessions: 0 });
    expect(w.server.stats.handshakesFailed).toBe(1);
  });

  for (const [id, name, tag] of [
    [TLS_PSK_WITH_AES_128_CCM_8, "CCM_8", 8],
    [TLS_PSK_WITH_AES_128_GCM_SHA256, "GCM", 16],
  ] as const) {
    it(`flights on a clean link (${name}): six datagrams of known size, one per flight`, async () => {
      const w = dtlsWorld({ server: { suites: [id] } });
      const identity = "node-1";
      const c = w.client(NODE, identity);
      expect(await w.connect(c)).toBeUndefined();
      const flights = w.wire(0).map((d) => ({ dir: d.from === NODE ? "C>S" : "S>C", bytes: d.data.length }));
      // ClientHello body: version 2, random 32, session_id 1, cookie 1(+16), 2 suites 2+4, compression
      // 1+1, extensions 2 + EMS 4 + renegotiation_info 5.
      const hello = 2 + 32 + 1 + 1 + 6 + 2 + 11;
      const hs = RECORD_HEADER_BYTES + HANDSHAKE_HEADER_BYTES;
      const serverHello = 2 + 32 + 1 + 2 + 1 + 11;
      const protectedFinished = RECORD_HEADER_BYTES + 8 + HANDSHAKE_HEADER_BYTES + 12 + tag;
      const ccs = RECORD_HEADER_BYTES + 1;
      const expected = [
        { dir: "C>S", bytes: hs + hello }, // ClientHello
        { dir: "S>C", bytes: hs + 3 + 16 }, // HelloVerifyRequest with a 16-byte cookie
        { dir: "C>S", bytes: hs + hello + 16 }, // ClientHello with the cookie
        { dir: "S>C", bytes: hs + serverHello + hs }, // ServerHello, ServerHelloDone
        { dir: "C>S", bytes: hs + 2 + identity.length + ccs + protectedFinished }, // CKE, CCS, Finished
        { dir: "S>C", bytes: ccs + protectedFinished }, // CCS, Finished
      ];
      expect(flights).toEqual(expected);
      const total = flights.reduce((n, f) => n + f.bytes, 0);
      console.log(
        `DTLS PSK handshake, ${name}, identity of ${identity.length} bytes: ${flights
          .map((f) => `${f.dir} ${f.bytes}`)
          .join(", ")}; ${total} bytes in 6 datagrams; ${c.overhead} bytes per application datagram`,
      );
    });
  }

  it("a small MTU fragments handshake messages both ways and the handshake still completes", async () => {
    const mtu = 60;
    const identity = `node-with-a-long-identity-${"x".repeat(60)}`;
    const w = dtlsWorld({ server: { mtu }, identities: [identity] });
    const c = w.client(NODE, identity, { mtu });
    expect(await w.connect(c)).toBeUndefined();
    expect(c.established).toBe(true);

    const fragmented = (from: PeerAddress) =>
      w
        .wire(0, { from })
        .flatMap((d) => plainFragments(d.data))
        .filter((f) => f.data.length < f.length);
    const up = fragmented(NODE);
    const down = fragmented(SERVER);
    expect(new Set(up.map((f) => f.type))).toEqual(new Set([HandshakeType.CLIENT_KEY_EXCHANGE]));
    expect(new Set(down.map((f) => f.type))).toEqual(new Set([HandshakeType.SERVER_HELLO]));
    expect(up.length).toBeGreaterThanOrEqual(3);
    expect(down.length).toBeGreaterThanOrEqual(2);
    // Every datagram fits the MTU, except the ClientHello: a stateless server takes it only whole.
    for (const d of w.wire(0)) {
      const isHello = plainFragments(d.data).some((f) => f.type === HandshakeType.CLIENT_HELLO);
      if (!isHello) expect(d.data.length, `datagram from ${d.from}`).toBeLessThanOrEqual(mtu);
    }

    c.send(text("small mtu up"), SERVER);
    w.time.advance(10);
    w.server.send(text("small mtu down"), `coaps://${NODE}` as PeerAddress);
    w.time.advance(10);
    expect(w.toServer.map((d) => d.data)).toEqual(["small mtu up"]);
    expect(w.toClient.get(NODE)!.map((d) => d.data)).toEqual(["small mtu down"]);
  });

  it("a server whose MTU splits even the Finished flight still completes", async () => {
    const w = dtlsWorld({ server: { mtu: 40 } });
    const c = w.client(NODE, "node-1", { mtu: 40 });
    expect(await w.connect(c)).toBeUndefined();
    // CCS and Finished go in separate datagrams at this MTU.
    const last = w.wire(0, { from: SERVER }).slice(-2);
    expect(parseRecords(last[0]!.data).map((r) => r.type)).toEqual([ContentType.CHANGE_CIPHER_SPEC]);
    expect(parseRecords(last[1]!.data).map((r) => [r.type, r.epoch])).toEqual([[ContentType.HANDSHAKE, 1]]);
  });

  it("200 concurrent handshakes at 30% loss each way: at least 99% established within 60 s", async () => {
    const w = dtlsWorld({ conditions: { loss: 0.3 }, seed: 42 });
    const n = 200;
    const doneAt: (number | undefined)[] = new Array(n).fill(undefined);
    const errors: unknown[] = [];
    const clients = Array.from({ length: n }, (_, i) => w.client(clientAddress(100 + i), "node-1"));
    clients.forEach((c, i) => {
      c.connect().then(
        () => {
          doneAt[i] = w.time.now();
        },
        (e: unknown) => errors.push(e),
      );
    });
    await w.until(() => doneAt.every((t) => t !== undefined) || doneAt.length === 0, 60_000);
    const times = doneAt.filter((t): t is number => t !== undefined).sort((a, b) => a - b);
    const pct = (p: number) => times[Math.min(times.length - 1, Math.floor((p / 100) * times.length))];
    console.log(
      `200 handshakes at 30% loss each way: ${times.length} established within 60 s of fake time ` +
        `(median ${pct(50)} ms, p90 ${pct(90)} ms, p99 ${pct(99)} ms, max ${times[times.length - 1]} ms); ` +
        `server: ${w.server.stats.handshakesCompleted} completed, ${w.server.stats.handshakesFailed} failed, ` +
        `${w.server.stats.helloVerifyRequests} HelloVerifyRequests; ${errors.length} client errors`,
    );
    expect(times.length).toBeGreaterThanOrEqual(198);
    expect(times.every((t) => t <= 60_000)).toBe(true);
    // Each established client has its session on the server, each under its own address.
    expect(w.server.tables().sessions).toBeGreaterThanOrEqual(times.length);

    // And every established session carries data (on a clean link now).
    w.net.setConditions({});
    const live = clients.filter((c) => c.established);
    for (const [i, c] of live.entries()) c.send(text(`hello ${i}`), SERVER);
    w.time.advance(10);
    expect(w.toServer.length).toBe(live.length);
    expect(new Set(w.toServer.map((d) => d.peer)).size).toBe(live.length);
  }, 120_000);

  it("reordering and duplication (with loss) at a small MTU: every handshake completes, data arrives once", async () => {
    const conditions = { loss: 0.1, duplicate: 0.2, reorder: 0.3, reorderDelayMs: 300 };
    const mtu = 60;
    const w = dtlsWorld({ conditions, seed: 7, server: { mtu } });
    const n = 40;
    const clients = Array.from({ length: n }, (_, i) => w.client(clientAddress(500 + i), "node-2", { mtu }));
    // Staggered starts: some handshakes run after the first second of the server's life.
    const results: unknown[] = [];
    clients.forEach((c, i) => {
      w.time.schedule(i * 97, () => {
        c.connect().then(
          () => results.push("ok"),
          (e: unknown) => results.push(e),
        );
      });
    });
    await w.until(() => results.length === n, 120_000);
    const failures = results.filter((r) => r !== "ok");
    expect(failures).toEqual([]);
    expect(w.server.stats.handshakesCompleted).toBeGreaterThanOrEqual(n);

    // Data under duplication and reordering (no loss): each datagram delivered exactly once.
    w.net.setConditions({ duplicate: 0.5, reorder: 0.5, reorderDelayMs: 50 });
    clients.forEach((c, i) => {
      for (let k = 0; k < 5; k++) c.send(text(`c${i}-m${k}`), SERVER);
    });
    w.time.advance(1000);
    const got = w.toServer.map((d) => d.data).sort();
    const want = clients.flatMap((_, i) => [0, 1, 2, 3, 4].map((k) => `c${i}-m${k}`)).sort();
    expect(got).toEqual(want);
  }, 60_000);

  it("a Finished that overtakes its ClientKeyExchange is dropped quietly, and the handshake completes", async () => {
    const mtu = 60; // CKE (+CCS) and Finished travel in separate datagrams
    const w = dtlsWorld({ server: { mtu } });
    w.time.advance(5000); // well into the server's life (its unknown-peer alert budget is full)
    const hasCke = (d: Uint8Array) =>
      plainFragments(d).some((f) => f.type === HandshakeType.CLIENT_KEY_EXCHANGE);
    const c = w.client(NODE, "node-1", { mtu }, holdFirst(hasCke));
    expect(await w.connect(c)).toBeUndefined();
    const alerts = w
      .wire(0, { from: SERVER })
      .flatMap((d) => parseRecords(d.data))
      .filter((r) => r.type === ContentType.ALERT);
    expect(alerts).toEqual([]);
    expect(w.server.stats.alertsSent).toBe(0);
    expect(w.server.stats.handshakesCompleted).toBe(1);
    // The early Finished was dropped (counted), and the retransmitted flight finished the handshake.
    expect(w.server.stats.badRecords).toBe(1);
    expect(c.stats.handshakeFailures).toBe(0);
  });

  it("a retry after a timeout is not confused by the server's flight of the abandoned attempt", async () => {
    const w = dtlsWorld();
    w.time.advance(5000);
    const hasCke = (d: Uint8Array) =>
      plainFragments(d).some((f) => f.type === HandshakeType.CLIENT_KEY_EXCHANGE);
    let dropCke = true;
    const c = w.client(NODE, "node-1", { handshakeTimeoutMs: 3000 }, (lower) => ({
      send: (d, p) => {
        if (!(dropCke && hasCke(d))) lower.send(d, p);
      },
      onReceive: (h) => lower.onReceive(h),
      close: () => lower.close(),
    }));
    // The client's key exchange never arrives: it gives up, while the server keeps its half of the
    // handshake and retransmits its ServerHello flight.
    const first = await w.connect(c);
    expect((first as DtlsError).kind).toBe("timeout");
    expect(w.server.tables().handshakes).toBe(1);
    const oldFlight = w
      .wire(0, { from: SERVER, to: NODE })
      .filter((d) => plainFragments(d.data).some((f) => f.type === HandshakeType.SERVER_HELLO));
    expect(oldFlight.length).toBeGreaterThan(1);
    dropCke = false;
    // The retry's ClientHello goes out now; a retransmission of the old flight is already on its way
    // and arrives before the HelloVerifyRequest.
    const retry = w.run(c.connect());
    w.inject(oldFlight.at(-1)!.data, SERVER, NODE);
    await expect(retry).resolves.toBeUndefined();
    expect(c.established).toBe(true);
    c.send(text("made it"), SERVER);
    w.time.advance(5);
    expect(w.toServer.map((d) => d.data)).toEqual(["made it"]);
  });

  it("close_notify: a client's close() ends its server session; a server's close() ends its clients'", async () => {
    const w = dtlsWorld();
    const a = w.client(NODE, "node-1");
    const b = w.client(clientAddress(2), "node-2");
    expect(await w.connect(a)).toBeUndefined();
    expect(await w.connect(b)).toBeUndefined();
    a.close();
    w.time.advance(5);
    expect(w.closed).toEqual([
      { peer: `coaps://${NODE}`, identity: "node-1", reason: "peer sent close_notify" },
    ]);
    expect(w.server.tables().sessions).toBe(1);
    await expect(a.connect()).rejects.toMatchObject({ kind: "closed" });
    w.server.close();
    w.time.advance(5);
    expect(b.established).toBe(false);
    expect(w.toClient.get(clientAddress(2))).toEqual([]);
  });
});
