/**
 * The DTLS server and client against peers that lie, replay, flood and vanish, over the in-memory link
 * on the fake clock. Each refusal is checked from outside (what goes on the wire, what reaches the
 * layer above, the stats and tables) while a bystander's session goes on working.
 */

import { describe, expect, it } from "vitest";
import type { PeerAddress } from "../../src/core/interfaces.js";
import { HandshakeType } from "../../src/dtls/handshake.js";
import { Alert, AlertLevel, type DtlsClient, DtlsError } from "../../src/dtls/index.js";
import { ContentType, DTLS_1_2, encodeRecord, parseRecords } from "../../src/dtls/record.js";
import { seededRandom } from "../kit/seeded-random.js";
import {
  clientAddress,
  clientHello,
  type DtlsWorld,
  dtlsWorld,
  helloVerifyCookies,
  keyOf,
  plainAlerts,
  SERVER,
  text,
  type WorldOptions,
} from "./kit.js";

const A = clientAddress(1);
const B = clientAddress(2);
const C = clientAddress(3);
const D = clientAddress(4);
const label = (lower: PeerAddress) => `coaps://${lower}` as PeerAddress;

/** A world past its first seconds with a bystander (node-2 at B) holding an established session. */
async function withBystander(options: WorldOptions = {}) {
  const w = dtlsWorld(options);
  w.time.advance(5000);
  const bystander = w.client(B, "node-2");
  expect(await w.connect(bystander)).toBeUndefined();
  let round = 0;
  /** The bystander's session carries a datagram each way, right now. */
  const bystanderWorks = () => {
    round++;
    const up = `bystander up ${round}`;
    const down = `bystander down ${round}`;
    bystander.send(text(up), SERVER);
    w.server.send(text(down), label(B));
    w.time.advance(5);
    expect(w.toServer.filter((d) => d.data === up && d.peer === label(B)).length).toBe(1);
    expect(w.toClient.get(B)!.filter((d) => d.data === down).length).toBe(1);
  };
  bystanderWorks();
  return { w, bystander, bystanderWorks };
}

/** The last application datagram `from` put on the wire (an epoch-1 record). */
function lastDatagramFrom(w: DtlsWorld, from: PeerAddress): Uint8Array {
  const d = w.wire(0, { from }).filter((x) => parseRecords(x.data)[0]?.type === ContentType.APPLICATION_DATA);
  expect(d.length).toBeGreaterThan(0);
  return d[d.length - 1]!.data;
}

function alertsTo(w: DtlsWorld, to: PeerAddress, since = 0) {
  return w.wire(since, { from: SERVER, to }).flatMap((d) => plainAlerts(d.data));
}

describe("refused handshakes", () => {
  it("a wrong key: the client fails with kind auth, the server counts a failed handshake, once", async () => {
    const { w, bystanderWorks } = await withBystander();
    const bad = w.client(A, "node-1", { psk: keyOf("not the key of node-1") });
    const error = await w.connect(bad);
    expect(error).toBeInstanceOf(DtlsError);
    expect((error as DtlsError).kind).toBe("auth");
    expect((error as DtlsError).alert).toBe(Alert.DECRYPT_ERROR);
    expect(w.server.stats.handshakesFailed).toBe(1);
    expect(w.server.stats.handshakesCompleted).toBe(1); // the bystander's
    expect(w.server.tables()).toEqual({ handshakes: 0, sessions: 1 });
    expect(w.established.map((e) => e.identity)).toEqual(["node-2"]);
    // Let whatever follows the failure play out: one failure, one alert, no alert ping-pong.
    w.time.advance(10_000);
    expect(bad.stats.handshakeFailures).toBe(1);
    expect(alertsTo(w, A)).toEqual([{ level: AlertLevel.FATAL, description: Alert.DECRYPT_ERROR, epoch: 0 }]);
    expect(w.server.stats.handshakesFailed).toBe(1);
    bystanderWorks();
  });

  it("an unknown identity gets exactly the answer of a wrong key: same alert bytes, same stats", async () => {
    const { w, bystanderWorks } = await withBystander();
    const asked: string[] = [];
    const psk = w.keys;
    // Watch which identities the server asks about.
    const original = psk.get.bind(psk);
    psk.get = (id: string) => {
      asked.push(id);
      return original(id);
    };
    const runOne = async (client: DtlsClient, at: PeerAddress) => {
      const before = { ...w.server.stats };
      const mark = w.net.log.length;
      const error = (await w.connect(client)) as DtlsError;
      w.time.advance(10_000);
      const after = w.server.stats;
      const delta = Object.fromEntries(
        Object.entries(after).map(([k, v]) => [k, v - before[k as keyof typeof before]]),
      );
      const alertBytes = w
        .wire(mark, { from: SERVER, to: at })
        .filter((d) => parseRecords(d.data).some((r) => r.type === ContentType.ALERT))
        .map((d) => Buffer.from(d.data).toString("hex"));
      return {
        kind: error.kind,
        alert: error.alert,
        delta,
        alertBytes,
        failures: client.stats.handshakeFailures,
      };
    };
    const wrongKey = await runOne(w.client(A, "node-1", { psk: keyOf("wrong") }), A);
    const unknown = await runOne(w.client(C, "stranger", { psk: keyOf("stranger") }), C);
    expect(asked).toEqual(["node-1", "stranger"]);
    expect(unknown).toEqual(wrongKey);
    expect(wrongKey.kind).toBe("auth");
    expect(wrongKey.alertBytes.length).toBe(1);
    expect(wrongKey.delta.handshakesFailed).toBe(1);
    expect(w.server.tables()).toEqual({ handshakes: 0, sessions: 1 });
    bystanderWorks();
  });

  it("an identity revoked mid-run (psk says undefined) is refused new handshakes", async () => {
    const { w, bystanderWorks } = await withBystander();
    const first = w.client(A, "node-3");
    expect(await w.connect(first)).toBeUndefined();
    w.keys.delete("node-3");
    const again = w.client(C, "node-3");
    const error = await w.connect(again);
    expect((error as DtlsError).kind).toBe("auth");
    expect(w.server.stats.handshakesFailed).toBe(1);
    expect(w.established.map((e) => e.identity)).toEqual(["node-2", "node-3"]);
    expect(w.server.identityOf(label(C))).toBeUndefined();
    bystanderWorks();
  });

  it("a ServerHello forged from another handshake breaks one attempt, not the retry after it", async () => {
    const w = dtlsWorld();
    w.time.advance(5000);
    const earlier = w.client(C, "node-1");
    expect(await w.connect(earlier)).toBeUndefined();
    const forged = w
      .wire(0, { from: SERVER, to: C })
      .find((d) =>
        parseRecords(d.data).some((r) => r.epoch === 0 && r.fragment[0] === HandshakeType.SERVER_HELLO),
      )!;
    const node = w.client(A, "node-1");
    const attempt = w.run(node.connect());
    w.time.advance(1); // the HelloVerifyRequest is on its way; the forgery lands right after it
    w.inject(forged.data, SERVER, A);
    w.inject(clientHello(new Uint8Array(32), new Uint8Array(0), 3), SERVER, A);
    await expect(attempt).rejects.toBeInstanceOf(DtlsError);
    // The server answers the broken attempt's records (decrypt_error, an unknown-peer alert) while the
    // retry says hello: those late alerts must not end the retry.
    expect(await w.connect(node)).toBeUndefined();
    expect(node.established).toBe(true);
    expect(alertsTo(w, A).map((a) => a.description)).toContain(Alert.DECRYPT_ERROR);
    node.send(text("through"), SERVER);
    w.time.advance(5);
    expect(w.toServer.filter((d) => d.peer === label(A)).map((d) => d.data)).toEqual(["through"]);
  });

  for (const alertLost of [false, true]) {
    it(`closeIdentity ends a running session; the client cannot exchange again (alert ${alertLost ? "lost" : "delivered"})`, async () => {
      const { w, bystanderWorks } = await withBystander();
      const node = w.client(A, "node-1");
      expect(await w.connect(node)).toBeUndefined();
      node.send(text("before revocation"), SERVER);
      w.time.advance(5);
      expect(w.toServer.map((d) => d.data)).toContain("before revocation");

      w.keys.delete("node-1");
      if (alertLost) w.net.setConditions({ loss: 1 });
      expect(w.server.closeIdentity("node-1")).toBe(1);
      w.time.advance(5);
      w.net.setConditions({});
      expect(w.closed).toEqual([{ peer: label(A), identity: "node-1", reason: "revoked" }]);
      expect(w.server.identityOf(label(A))).toBeUndefined();
      expect(w.server.tables()).toEqual({ handshakes: 0, sessions: 1 });
      expect(node.established).toBe(alertLost); // it heard access_denied, unless that was lost

      // Whatever the client tries now, nothing it sends reaches the layer above again.
      for (let i = 0; i < 4; i++) {
        node.send(text(`after revocation ${i}`), SERVER);
        w.time.advance(15_000);
      }
      expect(w.toServer.filter((d) => d.peer === label(A)).map((d) => d.data)).toEqual(["before revocation"]);
      expect(node.established).toBe(false);
      expect(node.stats.handshakeFailures).toBeGreaterThanOrEqual(1);
      expect(w.server.stats.handshakesFailed).toBeGreaterThanOrEqual(1);
      expect(w.server.stats.handshakesCompleted).toBe(2);
      // And the server does not send it data either.
      w.server.send(text("to the revoked"), label(A));
      w.time.advance(5);
      expect(w.toClient.get(A)!.map((d) => d.data)).toEqual([]);
      bystanderWorks();
    });
  }
});

describe("authorize (a device revoked while its session runs)", () => {
  it("a session whose identity is no longer authorized ends at its next record, with access_denied", async () => {
    const allowed = new Set(["node-1", "node-2"]);
    const { w, bystanderWorks } = await withBystander({
      server: { authorize: (identity: string) => allowed.has(identity) },
    });
    const node = w.client(A, "node-1");
    expect(await w.connect(node)).toBeUndefined();
    node.send(text("while allowed"), SERVER);
    w.time.advance(5);
    allowed.delete("node-1");
    node.send(text("after the revocation"), SERVER);
    w.time.advance(5);
    expect(w.toServer.filter((d) => d.peer === label(A)).map((d) => d.data)).toEqual(["while allowed"]);
    expect(w.closed).toEqual([{ peer: label(A), identity: "node-1", reason: "revoked" }]);
    expect(node.established).toBe(false); // it heard access_denied
    expect(w.server.tables()).toEqual({ handshakes: 0, sessions: 1 });
    bystanderWorks();
  });
});

describe("replayed, forged and damaged records", () => {
  it("a replayed application record is not delivered twice and is counted as a replay", async () => {
    const { w, bystanderWorks } = await withBystander();
    const node = w.client(A, "node-1");
    expect(await w.connect(node)).toBeUndefined();
    node.send(text("exactly once"), SERVER);
    w.time.advance(5);
    const captured = lastDatagramFrom(w, A);
    const bad = w.server.stats.badRecords;
    for (let i = 0; i < 3; i++) w.inject(captured, A);
    w.time.advance(5);
    expect(w.toServer.filter((d) => d.data === "exactly once").length).toBe(1);
    expect(w.server.stats.replayedRecords).toBe(3);
    expect(w.server.stats.badRecords - bad).toBe(3);

    // Older than the window: 100 records later, the first one is still refused.
    for (let i = 0; i < 100; i++) node.send(text(`m${i}`), SERVER);
    w.time.advance(5);
    w.inject(captured, A);
    w.time.advance(5);
    expect(w.toServer.filter((d) => d.data === "exactly once").length).toBe(1);
    expect(w.server.stats.badRecords - bad).toBe(4);

    // Replayed from another address it belongs to no session: dropped there too.
    w.inject(captured, C);
    w.time.advance(5);
    expect(w.toServer.filter((d) => d.data === "exactly once").length).toBe(1);
    // A server→client record replayed to the client is not delivered twice either.
    w.server.send(text("down once"), label(A));
    w.time.advance(5);
    const down = w.wire(0, { from: SERVER, to: A }).at(-1)!.data;
    w.inject(down, SERVER, A);
    w.time.advance(5);
    expect(w.toClient.get(A)!.map((d) => d.data)).toEqual(["down once"]);
    expect(node.stats.badRecords).toBeGreaterThanOrEqual(1);
    bystanderWorks();
  });

  it("records of a wrong or future epoch, plaintext data and forged plaintext alerts are dropped", async () => {
    const { w, bystanderWorks } = await withBystander();
    const node = w.client(A, "node-1");
    expect(await w.connect(node)).toBeUndefined();
    node.send(text("genuine"), SERVER);
    w.time.advance(5);
    const captured = lastDatagramFrom(w, A);
    const withEpoch = (epoch: number) => {
      const d = captured.slice();
      d[3] = epoch >> 8;
      d[4] = epoch & 0xff;
      return d;
    };
    const forged = [
      withEpoch(2),
      withEpoch(0xffff),
      withEpoch(0), // the same bytes as plaintext data
      encodeRecord(ContentType.APPLICATION_DATA, DTLS_1_2, 0, 99, text("plaintext data")),
      encodeRecord(ContentType.APPLICATION_DATA, DTLS_1_2, 1, 99, text("unprotected data at epoch 1")),
      // Unauthenticated alerts never end an established session.
      encodeRecord(
        ContentType.ALERT,
        DTLS_1_2,
        0,
        100,
        Uint8Array.of(AlertLevel.WARNING, Alert.CLOSE_NOTIFY),
      ),
      encodeRecord(ContentType.ALERT, DTLS_1_2, 0, 101, Uint8Array.of(AlertLevel.FATAL, Alert.DECRYPT_ERROR)),
      encodeRecord(ContentType.CHANGE_CIPHER_SPEC, DTLS_1_2, 0, 102, Uint8Array.of(1)),
      encodeRecord(ContentType.CHANGE_CIPHER_SPEC, DTLS_1_2, 1, 103, Uint8Array.of(1)),
    ];
    for (const f of forged) w.inject(f, A);
    w.time.advance(5);
    expect(w.toServer.filter((d) => d.peer === label(A)).map((d) => d.data)).toEqual(["genuine"]);
    expect(w.server.tables().sessions).toBe(2);
    expect(w.closed).toEqual([]);
    expect(w.server.stats.badRecords).toBeGreaterThanOrEqual(6);
    // The session goes on.
    node.send(text("still here"), SERVER);
    w.time.advance(5);
    expect(w.toServer.filter((d) => d.peer === label(A)).map((d) => d.data)).toEqual([
      "genuine",
      "still here",
    ]);
    bystanderWorks();
  });

  it("truncated and garbage datagrams are dropped without harm", async () => {
    const { w, bystanderWorks } = await withBystander();
    const node = w.client(A, "node-1");
    expect(await w.connect(node)).toBeUndefined();
    node.send(text("whole"), SERVER);
    w.time.advance(5);
    const captured = lastDatagramFrom(w, A);
    const bad = w.server.stats.badRecords;
    for (let n = 0; n < captured.length; n++) w.inject(captured.subarray(0, n), A);
    // Cut inside the body but with the header's length shortened to match: fails authentication.
    for (let n = 13; n < captured.length; n++) {
      const d = captured.slice(0, n);
      d[11] = (n - 13) >> 8;
      d[12] = (n - 13) & 0xff;
      w.inject(d, A);
    }
    const random = seededRandom(99);
    for (let i = 0; i < 2000; i++) {
      const d = Uint8Array.from({ length: Math.floor(random() * 120) }, () => Math.floor(random() * 256));
      // Half of them look like DTLS 1.2 records of some type and epoch.
      if (i % 2 === 0 && d.length >= 13) {
        d[0] = 20 + (i % 4);
        d[1] = 0xfe;
        d[2] = 0xfd;
        d[11] = 0;
        d[12] = d.length - 13;
      }
      w.inject(d, i % 3 === 0 ? A : clientAddress(10_000 + i));
    }
    w.time.advance(5);
    expect(w.toServer.filter((d) => d.peer === label(A)).map((d) => d.data)).toEqual(["whole"]);
    expect(w.server.stats.badRecords - bad).toBeGreaterThanOrEqual(2 * captured.length - 13);
    expect(w.server.tables()).toEqual({ handshakes: 0, sessions: 2 });
    node.send(text("after the garbage"), SERVER);
    w.time.advance(5);
    expect(w.toServer.filter((d) => d.peer === label(A)).map((d) => d.data)).toEqual([
      "whole",
      "after the garbage",
    ]);
    bystanderWorks();
  });
});

describe("floods and limits", () => {
  it("10,000 ClientHellos from spoofed addresses leave no state and are not amplified", async () => {
    const { w, bystanderWorks } = await withBystander();
    const random = seededRandom(5);
    const pendingBefore = w.time.pending;
    const hvrBefore = w.server.stats.helloVerifyRequests;
    let bytesIn = 0;
    const mark = w.net.log.length;
    for (let i = 0; i < 10_000; i++) {
      const from = `198.51.${Math.floor(random() * 256)}.${Math.floor(random() * 256)}:${
        1 + Math.floor(random() * 65_535)
      }` as PeerAddress;
      const hello = Uint8Array.from({ length: 32 }, () => Math.floor(random() * 256));
      // Half carry a made-up cookie.
      const cookie =
        i % 2 ? Uint8Array.from({ length: 16 }, () => Math.floor(random() * 256)) : new Uint8Array(0);
      const d = clientHello(hello, cookie, i % 2);
      bytesIn += d.length;
      w.inject(d, from);
      if (i % 1000 === 999) {
        w.time.advance(2);
        expect(w.server.tables().handshakes).toBe(0);
      }
    }
    w.time.advance(10);
    expect(w.server.stats.helloVerifyRequests - hvrBefore).toBe(10_000);
    expect(w.server.stats.handshakesStarted).toBe(1); // the bystander's
    expect(w.server.tables()).toEqual({ handshakes: 0, sessions: 1 });
    // No timers or deliveries left behind per hello (the fake scheduler holds only the long-lived ones).
    expect(w.time.pending).toBeLessThanOrEqual(pendingBefore + 2);
    const out = w.wire(mark, { from: SERVER }).reduce((n, d) => n + d.data.length, 0);
    expect(out).toBeLessThan(bytesIn); // each HelloVerifyRequest is smaller than the hello it answers
    bystanderWorks();
  });

  it("records from addresses with no session get at most unknownPeerAlertsPerSecond alerts a second", async () => {
    const { w, bystanderWorks } = await withBystander({
      server: { limits: { unknownPeerAlertsPerSecond: 20 } },
    });
    const record = encodeRecord(ContentType.APPLICATION_DATA, DTLS_1_2, 1, 1, new Uint8Array(40));
    const flood = (n: number, base: number) => {
      const mark = w.net.log.length;
      for (let i = 0; i < n; i++) w.inject(record, clientAddress(20_000 + base + i));
      w.time.advance(5);
      return w.wire(mark, { from: SERVER }).flatMap((d) => plainAlerts(d.data));
    };
    const first = flood(1000, 0);
    expect(first.length).toBe(20);
    expect(first.every((a) => a.description === Alert.UNEXPECTED_MESSAGE)).toBe(true);
    expect(flood(1000, 1000).length).toBe(0); // same second: the budget is spent
    w.time.advance(1000);
    expect(flood(1000, 2000).length).toBe(20);
    expect(w.server.tables()).toEqual({ handshakes: 0, sessions: 1 });
    bystanderWorks();
  });

  it("handshakes beyond maxHandshakesPerHost and maxHandshakes are refused; a legit client gets in after the sweep", async () => {
    const limits = { maxHandshakes: 4, maxHandshakesPerHost: 2, handshakeTimeoutMs: 10_000 };
    const { w, bystanderWorks } = await withBystander({ server: { limits } });
    // Three half-open handshakes from one host: two are taken, the third refused.
    const sameHost = [1, 2, 3].map((port) => w.halfOpen(`203.0.113.7:${port}` as PeerAddress));
    expect(sameHost.every((h) => h.cookie !== undefined)).toBe(true);
    expect(w.server.tables().handshakes).toBe(2);
    expect(w.server.stats.handshakesRefused).toBe(1);
    // The ones taken got a ServerHello; the refused one got nothing after its HelloVerifyRequest.
    expect(sameHost.map((h) => h.got.length)).toEqual([2, 2, 1]);
    // Three more hosts: two fill the table, the third is refused.
    for (const host of ["203.0.113.8", "203.0.113.9", "203.0.113.10"]) w.halfOpen(`${host}:9` as PeerAddress);
    expect(w.server.tables().handshakes).toBe(4);
    expect(w.server.stats.handshakesRefused).toBe(2);

    // A legitimate client is refused too while the table is full, and gets in once the stale
    // handshakes are swept (handshakeTimeoutMs), by its own retransmissions.
    const legit = w.client(A, "node-1");
    const started = w.time.now();
    expect(await w.connect(legit)).toBeUndefined();
    expect(w.server.stats.handshakesRefused).toBeGreaterThanOrEqual(3);
    expect(w.server.stats.handshakesTimedOut).toBe(4);
    expect(w.time.now() - started).toBeGreaterThanOrEqual(5_000);
    expect(w.server.tables()).toEqual({ handshakes: 0, sessions: 2 });
    bystanderWorks();
  });

  it("a handshake that never finishes is dropped after handshakeTimeoutMs and its flight is no longer sent", async () => {
    const { w, bystanderWorks } = await withBystander({ server: { limits: { handshakeTimeoutMs: 20_000 } } });
    const peer = "203.0.113.50:4444" as PeerAddress;
    const h = w.halfOpen(peer);
    expect(h.cookie).toBeDefined();
    expect(w.server.tables().handshakes).toBe(1);
    w.time.advance(19_000);
    expect(w.server.tables().handshakes).toBe(1);
    expect(w.server.stats.handshakesTimedOut).toBe(0);
    const resent = h.got.length;
    expect(resent).toBeGreaterThan(2); // the ServerHello flight was retransmitted meanwhile
    w.time.advance(6_000); // past the timeout and the next sweep
    expect(w.server.stats.handshakesTimedOut).toBe(1);
    expect(w.server.tables()).toEqual({ handshakes: 0, sessions: 1 });
    const atDrop = h.got.length;
    w.time.advance(60_000);
    expect(h.got.length).toBe(atDrop);
    bystanderWorks();
  });

  it("beyond maxSessions the least recently active session is evicted (with close_notify)", async () => {
    const { w, bystander } = await withBystander({ server: { limits: { maxSessions: 3 } } });
    const a = w.client(A, "node-1");
    expect(await w.connect(a)).toBeUndefined();
    const c = w.client(C, "node-3");
    expect(await w.connect(c)).toBeUndefined();
    // Order of establishment: B (bystander), A, C. B and C speak later, A stays quiet.
    w.time.advance(2000);
    bystander.send(text("b is active"), SERVER);
    w.time.advance(2000);
    c.send(text("c is active"), SERVER);
    w.time.advance(10);
    const d = w.client(D, "node-4");
    expect(await w.connect(d)).toBeUndefined();
    expect(w.server.stats.sessionsEvicted).toBe(1);
    expect(w.closed).toEqual([{ peer: label(A), identity: "node-1", reason: "session table full" }]);
    expect(w.server.tables().sessions).toBe(3);
    w.time.advance(5);
    expect(a.established).toBe(false); // it heard close_notify
    for (const [client, addr, msg] of [
      [bystander, B, "b"],
      [c, C, "c"],
      [d, D, "d"],
    ] as const) {
      client.send(text(`${msg} after eviction`), SERVER);
      w.time.advance(5);
      expect(w.toServer.filter((x) => x.peer === label(addr)).map((x) => x.data)).toContain(
        `${msg} after eviction`,
      );
    }
  });

  it("idle sessions expire after sessionIdleMs; forged plaintext records do not keep one alive", async () => {
    const { w, bystander } = await withBystander({ server: { limits: { sessionIdleMs: 30_000 } } });
    const a = w.client(A, "node-1");
    expect(await w.connect(a)).toBeUndefined();
    // The bystander speaks every 10 s; A is silent, but someone sends plaintext records in its name.
    for (let t = 0; t < 5; t++) {
      bystander.send(text(`tick ${t}`), SERVER);
      w.inject(encodeRecord(ContentType.CHANGE_CIPHER_SPEC, DTLS_1_2, 0, 500 + t, Uint8Array.of(1)), A);
      w.inject(
        encodeRecord(
          ContentType.ALERT,
          DTLS_1_2,
          0,
          600 + t,
          Uint8Array.of(AlertLevel.WARNING, Alert.CLOSE_NOTIFY),
        ),
        A,
      );
      w.time.advance(10_000);
    }
    expect(w.server.stats.sessionsExpired).toBe(1);
    expect(w.closed).toEqual([{ peer: label(A), identity: "node-1", reason: "idle" }]);
    expect(w.server.tables().sessions).toBe(1);
    expect(w.server.identityOf(label(B))).toBe("node-2");
  });
});

describe("restarts", () => {
  for (const restartAt of [10_000, 200]) {
    it(`a client whose server restarted (at ${restartAt} ms) is told so and handshakes again when it sends`, async () => {
      const w = dtlsWorld();
      const node = w.client(A, "node-1");
      expect(await w.connect(node)).toBeUndefined();
      w.time.advance(restartAt - w.time.now());
      const fresh = w.restartServer();
      expect(fresh.tables()).toEqual({ handshakes: 0, sessions: 0 });

      node.send(text("into the void"), SERVER);
      w.time.advance(10);
      expect(alertsTo(w, A).map((a) => a.description)).toEqual([Alert.UNEXPECTED_MESSAGE]);
      expect(node.established).toBe(false);
      expect(fresh.stats.badRecords).toBe(1);

      node.send(text("after the restart"), SERVER);
      await w.until(() => w.toServer.some((d) => d.data === "after the restart"), 10_000);
      expect(w.toServer.map((d) => d.data)).toEqual(["after the restart"]);
      expect(node.established).toBe(true);
      expect(node.stats.handshakes).toBe(2);
      expect(node.stats.handshakeFailures).toBe(0);
      expect(fresh.stats.handshakesCompleted).toBe(1);
      fresh.send(text("welcome back"), label(A));
      w.time.advance(5);
      expect(w.toClient.get(A)!.map((d) => d.data)).toEqual(["welcome back"]);
    });
  }

  it("several datagrams in flight when the server restarted: one new handshake, no failure counted", async () => {
    const w = dtlsWorld();
    w.time.advance(5000);
    const node = w.client(A, "node-1");
    expect(await w.connect(node)).toBeUndefined();
    const fresh = w.restartServer();
    for (let i = 0; i < 3; i++) node.send(text(`lost ${i}`), SERVER);
    w.time.advance(10);
    expect(alertsTo(w, A).length).toBe(3);
    node.send(text("after"), SERVER);
    await w.until(() => w.toServer.length > 0, 10_000);
    expect(w.toServer.map((d) => d.data)).toEqual(["after"]);
    expect(node.stats.handshakes).toBe(2);
    expect(node.stats.handshakeFailures).toBe(0);
    expect(fresh.stats.handshakesCompleted).toBe(1);
  });

  it("a stale unknown-peer alert that arrives during the new handshake does not end it", async () => {
    const w = dtlsWorld();
    w.time.advance(5000);
    const node = w.client(A, "node-1");
    expect(await w.connect(node)).toBeUndefined();
    const fresh = w.restartServer();
    node.send(text("lost 1"), SERVER); // its alert comes back 2 ms later
    w.time.advance(1);
    node.send(text("lost 2"), SERVER); // and this one's 1 ms after that
    w.time.advance(1);
    expect(node.established).toBe(false); // the first alert arrived
    node.send(text("after"), SERVER); // a new handshake starts; the second alert is still on its way
    await w.until(() => w.toServer.length > 0, 10_000);
    expect(w.toServer.map((d) => d.data)).toEqual(["after"]);
    expect(node.stats.handshakeFailures).toBe(0);
    expect(fresh.stats.handshakesCompleted).toBe(1);
  });

  it("a rebooted client at the same address handshakes again and replaces its old session", async () => {
    const w = dtlsWorld();
    w.time.advance(5000);
    const before = w.client(A, "node-1");
    expect(await w.connect(before)).toBeUndefined();
    before.send(text("first life"), SERVER);
    w.time.advance(5);
    const after = w.client(A, "node-1"); // same address: takes over the link endpoint
    expect(await w.connect(after)).toBeUndefined();
    expect(w.closed).toEqual([{ peer: label(A), identity: "node-1", reason: "replaced by a new handshake" }]);
    expect(w.server.tables()).toEqual({ handshakes: 0, sessions: 1 });
    after.send(text("second life"), SERVER);
    w.server.send(text("hello again"), label(A));
    w.time.advance(5);
    expect(w.toServer.map((d) => d.data)).toEqual(["first life", "second life"]);
    expect(w.toClient.get(A)!.map((d) => d.data)).toEqual(["hello again"]);
  });
});

describe("the layer above", () => {
  it("a server session's peer is coaps://HOST:PORT, for IPv4 and IPv6 addresses", async () => {
    const w = dtlsWorld();
    const v6 = "[2001:db8::17]:61616" as PeerAddress;
    const c4 = w.client(A, "node-1");
    const c6 = w.client(v6, "node-2");
    expect(await w.connect(c4)).toBeUndefined();
    expect(await w.connect(c6)).toBeUndefined();
    c4.send(text("v4"), SERVER);
    c6.send(text("v6"), SERVER);
    w.time.advance(5);
    expect(w.toServer.map((d) => [d.data, d.peer])).toEqual([
      ["v4", `coaps://${A}`],
      ["v6", "coaps://[2001:db8::17]:61616"],
    ]);
    expect(w.established.map((e) => e.peer)).toEqual([`coaps://${A}`, "coaps://[2001:db8::17]:61616"]);
    expect(w.server.identityOf(`coaps://${A}` as PeerAddress)).toBe("node-1");
    expect(w.server.identityOf(A)).toBeUndefined(); // a plain label never names a DTLS session
  });

  it("server.send to a plain label, an unknown peer or a closed session is dropped without throwing", async () => {
    const w = dtlsWorld();
    const c = w.client(A, "node-1");
    expect(await w.connect(c)).toBeUndefined();
    const mark = w.net.log.length;
    for (const peer of [A, "coaps://10.99.99.99:1", "coaps://", "", "coap://" + A, `COAPS://${A}`]) {
      expect(() => w.server.send(text("nowhere"), peer as PeerAddress)).not.toThrow();
    }
    w.time.advance(5);
    expect(w.net.log.length).toBe(mark);
    w.server.send(text("somewhere"), label(A));
    w.time.advance(5);
    expect(w.net.log.length).toBe(mark + 1);
    expect(w.toClient.get(A)!.map((d) => d.data)).toEqual(["somewhere"]);
    // The client sends only to its server; anything else is dropped.
    c.send(text("elsewhere"), C);
    w.time.advance(5);
    expect(w.net.log.length).toBe(mark + 1);
  });

  it("a client ignores datagrams from addresses other than its server", async () => {
    const w = dtlsWorld();
    const c = w.client(A, "node-1");
    expect(await w.connect(c)).toBeUndefined();
    w.server.send(text("genuine"), label(A));
    w.time.advance(5);
    const captured = w.wire(0, { from: SERVER, to: A }).at(-1)!.data;
    const inBefore = c.stats.recordsIn;
    w.inject(captured, C, A);
    w.inject(clientHello(new Uint8Array(32), new Uint8Array(0), 0), C, A);
    w.time.advance(5);
    expect(c.stats.recordsIn).toBe(inBefore);
    expect(w.toClient.get(A)!.map((d) => d.data)).toEqual(["genuine"]);
  });
});

describe("cookies", () => {
  it("a cookie is accepted only for cookieLifetimeMs, however quiet the server was meanwhile", () => {
    const w = dtlsWorld({ server: { limits: { cookieLifetimeMs: 60_000 } } });
    const peer = "203.0.113.80:5000" as PeerAddress;
    const t = w.net.transport(peer);
    const got: Uint8Array[] = [];
    t.onReceive((d) => got.push(d));
    const random = new Uint8Array(32).fill(7);
    t.send(clientHello(random, new Uint8Array(0), 0), SERVER);
    w.time.advance(3);
    const cookie = got.flatMap(helloVerifyCookies)[0]!;
    expect(cookie.length).toBe(16);
    // Ten quiet minutes later the same hello with that cookie gets a new HelloVerifyRequest, no handshake.
    w.time.advance(600_000);
    t.send(clientHello(random, cookie, 1), SERVER);
    w.time.advance(3);
    expect(w.server.stats.handshakesStarted).toBe(0);
    expect(w.server.stats.helloVerifyRequests).toBe(2);
    const fresh = got.flatMap(helloVerifyCookies).at(-1)!;
    expect(Buffer.from(fresh).equals(Buffer.from(cookie))).toBe(false);
    // The fresh cookie works.
    t.send(clientHello(random, fresh, 2), SERVER);
    w.time.advance(3);
    expect(w.server.stats.handshakesStarted).toBe(1);
  });

  it("a cookie stays good across one rotation within its lifetime, and not beyond", () => {
    const w = dtlsWorld({ server: { limits: { cookieLifetimeMs: 60_000 } } });
    const peer = "203.0.113.81:5000" as PeerAddress;
    const t = w.net.transport(peer);
    const got: Uint8Array[] = [];
    t.onReceive((d) => got.push(d));
    const random = new Uint8Array(32).fill(9);
    t.send(clientHello(random, new Uint8Array(0), 0), SERVER);
    w.time.advance(3);
    const cookie = got.flatMap(helloVerifyCookies)[0]!;
    // Someone else's hello at 35 s rotates the secret.
    w.time.advance(35_000);
    w.inject(clientHello(new Uint8Array(32), new Uint8Array(0), 0), "203.0.113.82:1" as PeerAddress);
    w.time.advance(15_000); // 50 s after the cookie: still good
    t.send(clientHello(random, cookie, 1), SERVER);
    w.time.advance(3);
    expect(w.server.stats.handshakesStarted).toBe(1);
    // A second peer with a cookie of the same age, presented after 65 s and another rotation: refused.
    const other = "203.0.113.83:5000" as PeerAddress;
    const t2 = w.net.transport(other);
    const got2: Uint8Array[] = [];
    t2.onReceive((d) => got2.push(d));
    w.time.advance(1_000);
    t2.send(clientHello(random, new Uint8Array(0), 0), SERVER); // at ~51 s: signed with the 35 s secret
    w.time.advance(3);
    const cookie2 = got2.flatMap(helloVerifyCookies)[0]!;
    w.time.advance(45_000); // 96 s: the 35 s secret was made 61 s ago
    t2.send(clientHello(random, cookie2, 1), SERVER);
    w.time.advance(3);
    expect(w.server.stats.handshakesStarted).toBe(1);
    expect(got2.flatMap(helloVerifyCookies).length).toBe(2);
  });

  it("a cookie is bound to the address and the hello it was issued for", () => {
    const w = dtlsWorld();
    const h = w.halfOpen("203.0.113.90:1000" as PeerAddress, new Uint8Array(32).fill(1));
    expect(w.server.stats.handshakesStarted).toBe(1);
    // The same hello and cookie from another port, or another random from the same address: no.
    w.inject(clientHello(h.random, h.cookie!, 1), "203.0.113.90:1001" as PeerAddress);
    w.inject(clientHello(new Uint8Array(32).fill(2), h.cookie!, 1), "203.0.113.91:1000" as PeerAddress);
    w.time.advance(3);
    expect(w.server.stats.handshakesStarted).toBe(1);
    expect(w.server.stats.helloVerifyRequests).toBe(3);
    expect(w.server.tables().handshakes).toBe(1);
    // A ClientHello in two fragments (with a valid cookie) is dropped and counted, not answered.
    const whole = clientHello(new Uint8Array(32).fill(3), new Uint8Array(0), 0);
    const bad = w.server.stats.badRecords;
    const body = parseRecords(whole)[0]!.fragment.subarray(12);
    const pieces = [0, 30].map((offset) => {
      const part = body.subarray(offset, offset === 0 ? 30 : body.length);
      const hs = new Uint8Array(12 + part.length);
      hs.set([HandshakeType.CLIENT_HELLO, 0, body.length >> 8, body.length & 255, 0, 0]);
      hs.set([0, offset >> 8, offset & 255, 0, part.length >> 8, part.length & 255], 6);
      hs.set(part, 12);
      return encodeRecord(ContentType.HANDSHAKE, DTLS_1_2, 0, offset, hs);
    });
    const mark = w.net.log.length;
    for (const p of pieces) w.inject(p, "203.0.113.92:1" as PeerAddress);
    w.time.advance(3);
    expect(w.wire(mark, { from: SERVER })).toEqual([]);
    expect(w.server.stats.badRecords - bad).toBe(2);
  });
});
