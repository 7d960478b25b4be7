/**
 * DtlsServer and DtlsClient end to end over real UDP sockets on 127.0.0.1 (ephemeral ports), with the
 * Node.js clock and timers: handshakes with both suites, data both ways, a wrong key refused, and a
 * server restart healed by a new handshake.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { PeerAddress } from "../../src/core/interfaces.js";
import {
  DtlsClient,
  DtlsError,
  DtlsServer,
  type DtlsSessionEvent,
  TLS_PSK_WITH_AES_128_CCM_8,
  TLS_PSK_WITH_AES_128_GCM_SHA256,
} from "../../src/dtls/index.js";
import { nodeDtlsCrypto } from "../../src/node/dtls-crypto.js";
import { systemClock, timerScheduler } from "../../src/node/runtime.js";
import { UdpTransport } from "../../src/node/udp-transport.js";
import { keyOf, str, text } from "./kit.js";

const host = { crypto: nodeDtlsCrypto, clock: systemClock, scheduler: timerScheduler({ unref: true }) };
const cleanup: (() => void)[] = [];

afterEach(() => {
  for (const c of cleanup.splice(0).reverse()) c();
});

/** Polls until `done()` (the event loop runs the sockets meanwhile); fails after `limitMs`. */
async function waitFor(what: string, done: () => boolean, limitMs = 20_000): Promise<void> {
  const end = Date.now() + limitMs;
  while (!done()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function startServer(port = 0) {
  const udp = await UdpTransport.bind("127.0.0.1", port);
  const keys = new Map([
    ["node-1", keyOf("node-1")],
    ["node-2", keyOf("node-2")],
  ]);
  const server = new DtlsServer(udp, { ...host, psk: (id) => keys.get(id) });
  const received: { data: string; peer: PeerAddress }[] = [];
  const closed: (DtlsSessionEvent & { reason: string })[] = [];
  server.onReceive((data, peer) => {
    received.push({ data: str(data), peer });
    server.send(text(`echo ${str(data)}`), peer);
  });
  server.onClosed = (e) => closed.push(e);
  cleanup.push(() => server.close());
  return { udp, server, received, closed, keys };
}

async function startClient(
  serverAddress: PeerAddress,
  identity: string,
  psk = keyOf(identity),
  suites?: number[],
) {
  const udp = await UdpTransport.bind("127.0.0.1", 0);
  const client = new DtlsClient(udp, {
    ...host,
    server: serverAddress,
    identity,
    psk,
    ...(suites ? { suites } : {}),
  });
  const received: string[] = [];
  client.onReceive((data) => received.push(str(data)));
  cleanup.push(() => client.close());
  return { udp, client, received };
}

describe("DTLS over real UDP on loopback", () => {
  it("two clients (CCM_8 and GCM) handshake, exchange data, and a close_notify ends the session", async () => {
    const s = await startServer();
    const ccm = await startClient(s.udp.address, "node-1", undefined, [TLS_PSK_WITH_AES_128_CCM_8]);
    const gcm = await startClient(s.udp.address, "node-2", undefined, [TLS_PSK_WITH_AES_128_GCM_SHA256]);
    await Promise.all([ccm.client.connect(), gcm.client.connect()]);
    expect(ccm.client.suite?.id).toBe(TLS_PSK_WITH_AES_128_CCM_8);
    expect(gcm.client.suite?.id).toBe(TLS_PSK_WITH_AES_128_GCM_SHA256);
    expect(ccm.client.extendedMasterSecret && gcm.client.extendedMasterSecret).toBe(true);

    ccm.client.send(text("ping from ccm"), s.udp.address);
    gcm.client.send(text("ping from gcm"), s.udp.address);
    await waitFor("echoes", () => ccm.received.length === 1 && gcm.received.length === 1);
    expect(ccm.received).toEqual(["echo ping from ccm"]);
    expect(gcm.received).toEqual(["echo ping from gcm"]);
    expect(s.received.map((r) => r.peer).sort()).toEqual(
      [`coaps://${ccm.udp.address}`, `coaps://${gcm.udp.address}`].sort(),
    );
    expect(s.server.identityOf(`coaps://${ccm.udp.address}` as PeerAddress)).toBe("node-1");
    expect(s.server.tables()).toEqual({ handshakes: 0, sessions: 2 });

    gcm.client.send(text("still here"), s.udp.address);
    await waitFor("the other echo", () => gcm.received.length === 2);
    expect(gcm.received[1]).toBe("echo still here");
  });

  // UdpTransport.close() lets datagrams already handed to the socket leave first (node:dgram drops a
  // send still queued when its socket closes): without that the close_notify never left over UDP.
  it("a client's close() tells the server over UDP (close_notify ends its session)", async () => {
    const s = await startServer();
    const node = await startClient(s.udp.address, "node-1");
    await node.client.connect();
    expect(s.server.tables().sessions).toBe(1);
    node.client.close();
    await waitFor("the session's end", () => s.closed.length === 1, 3000);
    expect(s.closed[0]!.reason).toMatch(/close_notify/);
  });

  it("a wrong key is refused with kind auth; the server keeps no state", async () => {
    const s = await startServer();
    const bad = await startClient(s.udp.address, "node-1", keyOf("wrong"));
    const error = await bad.client.connect().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(DtlsError);
    expect((error as DtlsError).kind).toBe("auth");
    expect(s.server.stats.handshakesFailed).toBe(1);
    expect(s.server.tables()).toEqual({ handshakes: 0, sessions: 0 });
    expect(s.received).toEqual([]);
  });

  it("after the server restarts on the same port, the client's next datagram goes through a new handshake", async () => {
    const first = await startServer();
    const port = first.udp.port;
    const node = await startClient(first.udp.address, "node-1");
    await node.client.connect();
    node.client.send(text("before"), first.udp.address);
    await waitFor("the first echo", () => node.received.length === 1);
    // A crash: the socket goes away without close_notify (the server object is left behind).
    first.udp.close();
    await first.udp.whenClosed();
    const second = await startServer(port);
    node.client.send(text("into the void"), second.udp.address);
    await waitFor("the unknown-peer alert", () => !node.client.established);
    node.client.send(text("after"), second.udp.address);
    await waitFor("the echo after the restart", () => node.received.length === 2);
    expect(node.received).toEqual(["echo before", "echo after"]);
    expect(second.received.map((r) => r.data)).toEqual(["after"]);
    expect(node.client.stats.handshakes).toBe(2);
    expect(node.client.stats.handshakeFailures).toBe(0);
  });
});
