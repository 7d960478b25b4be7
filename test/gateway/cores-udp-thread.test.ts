/**
 * The socket thread of `cores: 2` (gateway/cluster/udp-thread.ts) over real UDP on loopback: datagrams
 * both ways byte for byte and in order, peers named as UdpTransport names them; and the cap on what it
 * hands to a gateway thread that is busy: a burst while that thread is blocked is dropped beyond
 * `maxQueued`, counted and logged, and the transport works again once the thread has caught up.
 */
import { createSocket, type Socket } from "node:dgram";
import { afterEach, describe, expect, it } from "vitest";
import { UdpThreadTransport } from "../../gateway/cluster/udp-thread.js";
import type { Logger, PeerAddress } from "../../src/core/index.js";

const open: { close(): void }[] = [];
afterEach(() => {
  for (const o of open.splice(0)) o.close();
});

async function client(): Promise<{ socket: Socket; port: number; received: Buffer[] }> {
  const socket = createSocket("udp4");
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", () => resolve()));
  const received: Buffer[] = [];
  socket.on("message", (m) => received.push(m));
  open.push(socket);
  return { socket, port: socket.address().port, received };
}

async function until(what: string, test: () => boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!test()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("the socket thread", () => {
  it("carries datagrams both ways, in order and byte for byte, from and to host:port peers", async () => {
    const transport = await UdpThreadTransport.bind("127.0.0.1", 0);
    open.push(transport);
    expect(transport.threadId).toBeGreaterThan(0);
    const peers: PeerAddress[] = [];
    transport.onReceive((data, peer) => {
      peers.push(peer);
      transport.send(Uint8Array.from([...data].reverse()), peer); // an answer the test can recognise
    });
    const c = await client();
    const sent = Array.from({ length: 50 }, (_, i) => Buffer.from([i, 255 - i, 7]));
    for (const d of sent) c.socket.send(d, transport.port, "127.0.0.1");
    await until("50 answers", () => c.received.length === 50);
    expect(c.received).toEqual(sent.map((d) => Buffer.from([...d].reverse())));
    expect(new Set(peers)).toEqual(new Set([`127.0.0.1:${c.port}`]));
    expect(transport.stats).toMatchObject({ received: 50, sent: 50, dropped: 0 });
    transport.close();
    await transport.whenClosed(); // the thread ends
  });

  it("drops beyond maxQueued while the gateway's thread is blocked, says so, and recovers", async () => {
    const logged: string[] = [];
    const logger: Logger = { log: (_level, event) => void logged.push(event) };
    const transport = await UdpThreadTransport.bind("127.0.0.1", 0, {
      logger,
      maxQueued: 64,
      recvBufferSize: 4 * 1024 * 1024,
    });
    open.push(transport);
    let blocked = false;
    const seen: number[] = [];
    transport.onReceive((data, peer) => {
      seen.push(data[0]! * 256 + data[1]!);
      if (!blocked) {
        blocked = true;
        const until = Date.now() + 500; // the gateway's thread busy: nothing is taken meanwhile
        while (Date.now() < until) {}
      }
      if (data[0] === 0xff) transport.send(data, peer);
    });
    const c = await client();
    for (let i = 0; i < 2000; i++) c.socket.send(Buffer.from([i >> 8, i & 255]), transport.port, "127.0.0.1");
    // The burst is over; once the thread has caught up (and a second has passed, so the drops are
    // reported), a probe gets through and back.
    await new Promise((r) => setTimeout(r, 1100));
    c.socket.send(Buffer.from([0xff, 0xff]), transport.port, "127.0.0.1");
    await until("the probe's answer", () => c.received.length === 1);
    await until("the drops reported", () => transport.stats.dropped > 64);
    const burst = seen.filter((n) => n !== 0xffff);
    expect(burst.length).toBeLessThanOrEqual(64);
    expect(burst).toEqual([...burst].sort((a, b) => a - b)); // what was taken, in order
    expect(burst.length + transport.stats.dropped).toBeGreaterThan(500); // the thread did see the burst
    expect(logged).toContain("udp.thread_queue_full");
  });
});
