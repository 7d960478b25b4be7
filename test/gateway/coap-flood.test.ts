/**
 * A real gateway (startGateway, in this process) flooded over real UDP on loopback the way an attacker
 * on the link would, with the bounded floods of the hardening probe: 2,000 GETs with 60 KB paths (a
 * 4.04 echoing the path used to be kept for Block2), 200 Block1 transfers started from 200 source ports
 * and never finished (they took every slot: 5.03 for everyone else), and 1,000 observe registrations
 * with different tokens from one socket. The gateway's own metrics (cxmpp_coap_*) must show every
 * table at or under its cap, the heap after a forced GC must stay within a small bound, and a
 * legitimate node must still complete a block-wise POST during the Block1 flood and get exactly one
 * notification per change.
 */
import { createSocket, type Socket } from "node:dgram";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { heapAfterGc, MiB } from "../../bench/memory.js";
import { el, type XElement } from "../../codec/index.js";
import type { RunningGateway } from "../../gateway/index.js";
import { blockOption } from "../../src/core/coap/message.js";
import {
  CoapEndpoint,
  type CoapMessage,
  Code,
  type DatagramTransport,
  MessageType,
  NodeClient,
  OptionNumber,
  optionUint,
  type PeerAddress,
  parseMessage,
  pathOptions,
  serializeMessage,
  uintOption,
} from "../../src/core/index.js";
import { cryptoRandom, nodeMac, systemClock, timerScheduler, UdpTransport } from "../../src/node/index.js";
import { inProcessGateway } from "../kit/in-process-gateway.js";
import { key } from "../kit/session-harness.js";
import { bodyOf } from "../kit/stanzas.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** A bare UDP socket speaking hand-made CoAP: the attacker's tool. */
interface Raw {
  readonly socket: Socket;
  readonly answers: CoapMessage[];
  onAnswer: (m: CoapMessage) => void;
  send(bytes: Uint8Array): void;
}

async function rawSocket(to: { host: string; port: number }): Promise<Raw> {
  const socket = createSocket("udp4");
  await new Promise<void>((r) => socket.bind(0, "127.0.0.1", () => r()));
  const raw: Raw = {
    socket,
    answers: [],
    onAnswer: () => {},
    send: (bytes) => socket.send(bytes, to.port, to.host),
  };
  socket.on("message", (d) => {
    const m = parseMessage(new Uint8Array(d));
    raw.answers.push({ ...m, payload: m.payload.slice() }); // keep no view of the big receive buffer
    raw.onAnswer(m);
  });
  cleanups.push(() => new Promise<void>((r) => socket.close(() => r())));
  return raw;
}

let nextMid = 1;
let nextToken = 1;
function con(code: number, options: ReturnType<typeof pathOptions>, payload = new Uint8Array(0)) {
  const messageId = nextMid++ & 0xffff;
  const t = nextToken++;
  const token = Uint8Array.of(t >>> 24, (t >>> 16) & 0xff, (t >>> 8) & 0xff, t & 0xff);
  return {
    messageId,
    bytes: serializeMessage({ type: MessageType.CON, code, messageId, token, options, payload }),
  };
}

/**
 * Sends `count` messages made by `make` from `raw` keeping at most `window` unanswered (a bounded
 * flood that does not just overrun the socket buffers), resending one unanswered for 300 ms; resolves
 * when all are answered. Messages are made as they go, so the test holds no flood of its own.
 */
function pump(
  raw: Raw,
  count: number,
  make: (i: number) => { messageId: number; bytes: Uint8Array },
  window: number,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let next = 0;
    const pending = new Map<number, { bytes: Uint8Array; at: number }>();
    const done = () => {
      clearTimeout(deadline);
      clearInterval(resend);
      resolve();
    };
    const fill = () => {
      while (pending.size < window && next < count) {
        const m = make(next++);
        pending.set(m.messageId, { bytes: m.bytes, at: Date.now() });
        raw.send(m.bytes);
      }
      if (pending.size === 0 && next >= count) done();
    };
    raw.onAnswer = (m) => {
      if (m.type === MessageType.ACK && pending.delete(m.messageId)) fill();
    };
    const resend = setInterval(() => {
      for (const p of pending.values())
        if (Date.now() - p.at > 300) {
          p.at = Date.now();
          raw.send(p.bytes);
        }
    }, 100);
    const deadline = setTimeout(() => {
      clearInterval(resend);
      reject(new Error(`flood stalled: ${next - pending.size} of ${count} answered`));
    }, 60_000);
    fill();
  });
}

/** A node's CoAP endpoint on real UDP that records every datagram it sends and receives. */
async function recordingEndpoint() {
  const udp = await UdpTransport.bind("127.0.0.1", 0);
  const sent: CoapMessage[] = [];
  const received: CoapMessage[] = [];
  const transport: DatagramTransport = {
    send: (data, peer) => {
      sent.push(parseMessage(data));
      udp.send(data, peer);
    },
    onReceive: (handler) =>
      udp.onReceive((data, peer) => {
        received.push(parseMessage(data));
        handler(data, peer);
      }),
    close: () => udp.close(),
  };
  const endpoint = new CoapEndpoint({
    transport,
    clock: systemClock,
    scheduler: timerScheduler(),
    random: cryptoRandom,
  });
  cleanups.push(async () => {
    endpoint.close();
    await udp.whenClosed();
  });
  return { endpoint, sent, received };
}

/** Prometheus text → `name{labels}` → value. */
async function coapMetrics(gw: RunningGateway): Promise<Map<string, number>> {
  const samples = new Map<string, number>();
  for (const line of (await gw.metrics!.scrape()).split("\n")) {
    const m = /^(cxmpp_coap_\S+?(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (m) samples.set(m[1]!, Number(m[2]));
  }
  return samples;
}
const entries = (s: Map<string, number>, table: string) =>
  s.get(`cxmpp_coap_table_entries{table="${table}"}`);

async function until(what: string, ok: () => boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe("a real gateway flooded over UDP on loopback", () => {
  it("keeps every CoAP table at its cap and its heap bounded; a legitimate node is served throughout", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "cxmpp-flood-"));
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    const outbound: XElement[] = [];
    const gw = await inProcessGateway(dataDir, { outbound });
    cleanups.push(() => gw.stop());
    const { host, port } = gw;
    const gateway = gw.address as PeerAddress;
    const domain = gw.config.xmppDomain;
    gw.store.devices.add({ identity: "sender", key: key(1), jid: `sender@${domain}`, peers: [] });
    gw.store.devices.add({ identity: "receiver", key: key(2), jid: `receiver@${domain}`, peers: [] });

    // Two legitimate nodes: one sends, one is always on and observes its downlink. The receiver
    // registers twice (a node that lost its first token, say): the second registration replaces the first.
    const senderUdp = await recordingEndpoint();
    const receiverUdp = await recordingEndpoint();
    const node = (endpoint: CoapEndpoint, identity: string, n: number) =>
      new NodeClient({ endpoint, gateway, identity, key: key(n), mac: nodeMac, retryDelayMs: 20 });
    const sender = node(senderUdp.endpoint, "sender", 1);
    const receiver = node(receiverUdp.endpoint, "receiver", 2);
    cleanups.push(() => sender.close());
    cleanups.push(() => receiver.close());
    const got: string[] = [];
    receiver.onStanza((s) => got.push(bodyOf(s)));
    await sender.connect();
    await receiver.connect();
    await receiver.observeDownlink();
    await receiver.observeDownlink();

    const heapBefore = heapAfterGc();
    const rssBefore = process.memoryUsage().rss;
    const started = Date.now();

    // 1. 2,000 GETs with 60 KB paths from one socket.
    const big = await rawSocket({ host, port });
    const bigPath = (i: number) => `${String(i).padStart(5, "0")}${"p".repeat(60_000)}`;
    await pump(big, 2_000, (i) => con(Code.GET, pathOptions(bigPath(i))), 2);
    const notFound = big.answers.filter((m) => m.type === MessageType.ACK);
    expect(notFound.length).toBeGreaterThanOrEqual(2_000);
    for (const m of notFound) {
      expect(m.code).toBe(Code.NOT_FOUND);
      expect(optionUint(m, OptionNumber.BLOCK2)).toBeUndefined();
      expect(m.payload.length).toBeLessThanOrEqual(64);
    }
    expect(new TextDecoder().decode(notFound[0]!.payload)).toBe("no resource /00000ppppppppppp…");
    big.answers.length = 0;

    // 2. 200 Block1 transfers started from 200 source ports and never finished.
    const half = (n: number) =>
      con(
        Code.POST,
        [
          ...pathOptions("u"),
          { number: OptionNumber.REQUEST_TAG, value: Uint8Array.of(n >>> 8, n & 0xff) },
          blockOption(OptionNumber.BLOCK1, { num: 0, more: true, szx: 6 }),
        ],
        new Uint8Array(1024).fill(n & 0xff),
      );
    const spoofed = await Promise.all(Array.from({ length: 200 }, () => rawSocket({ host, port })));
    for (let i = 0; i < spoofed.length; i += 20)
      await Promise.all(spoofed.slice(i, i + 20).map((s, k) => pump(s, 1, () => half(i + k), 1)));
    expect(spoofed.every((s) => s.answers[0]?.code === Code.CONTINUE)).toBe(true);
    const afterBlock1 = await coapMetrics(gw);
    expect(entries(afterBlock1, "block1_assemblies")).toBe(64);

    // ... and while the attacker keeps starting new ones (4 a millisecond from its ports in turn, each
    // with a new Request-Tag), the sender's five large stanzas go up block-wise and are stored.
    let flooded = 0;
    const flood = setInterval(() => {
      for (let k = 0; k < 4; k++) {
        spoofed[flooded % spoofed.length]!.send(half(1_000 + flooded).bytes);
        flooded++;
      }
    }, 1);
    // Text the codec cannot squeeze into one block: about 4.5 KB on the air, five blocks each.
    let seed = 12_345;
    const texts = Array.from({ length: 5 }, () =>
      Array.from({ length: 6_000 }, () => {
        seed = (seed * 1_103_515_245 + 12_345) >>> 0;
        return "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"[seed % 62];
      }).join(""),
    );
    try {
      await new Promise((r) => setTimeout(r, 200)); // the flood is well under way
      for (const text of texts) {
        const stanza = el(
          "jabber:client",
          "message",
          { to: "sink@elsewhere.example" },
          el("jabber:client", "body", {}, text),
        );
        await sender.send(stanza);
      }
    } finally {
      clearInterval(flood);
    }
    expect(outbound.map(bodyOf)).toEqual(texts);
    const blocks = senderUdp.sent.filter((m) => optionUint(m, OptionNumber.BLOCK1) !== undefined);
    expect(blocks.length).toBeGreaterThanOrEqual(5 * 4); // it really went block-wise
    expect(senderUdp.received.some((m) => m.code === Code.SERVICE_UNAVAILABLE)).toBe(false);

    // 3. 1,000 observe registrations with different tokens from one socket, for one path.
    const observer = await rawSocket({ host, port });
    const registrations = Array.from({ length: 1_000 }, () =>
      con(Code.GET, [...pathOptions(".well-known/core"), uintOption(OptionNumber.OBSERVE, 0)]),
    );
    await pump(observer, 1_000, (i) => registrations[i]!, 8);
    expect(observer.answers.filter((m) => m.code === Code.CONTENT).length).toBeGreaterThanOrEqual(1_000);

    const floodMs = Date.now() - started;
    // The counters follow once a tick (1 s) has synced them.
    await new Promise((r) => setTimeout(r, 1_200));
    const m = await coapMetrics(gw);
    expect(entries(m, "block2_representations")).toBe(0);
    expect(m.get('cxmpp_coap_table_bytes{table="block2_representations"}')).toBe(0);
    expect(entries(m, "block1_assemblies")).toBeLessThanOrEqual(64);
    // Every start beyond the 64 slots evicted one: 200 + flooded − held (allowing 64 lost on the way).
    expect(m.get('cxmpp_coap_evictions_total{table="block1_assemblies"}')).toBeGreaterThanOrEqual(
      136 + flooded - 64,
    );
    // The receiver's only: /.well-known/core is not observable at the gateway (served without Observe),
    // and the receiver's second registration replaced its first (the per-(peer, path) rule itself is
    // exercised with 1,000 tokens in test/core/coap-limits.test.ts).
    expect(entries(m, "observers")).toBe(1);
    expect(observer.answers.some((a) => optionUint(a, OptionNumber.OBSERVE) !== undefined)).toBe(false);
    expect(m.get("cxmpp_coap_observers_replaced_total")).toBe(1);
    expect(entries(m, "dedup")).toBeLessThanOrEqual(m.get('cxmpp_coap_table_limit{table="dedup"}')!);

    const heapAfter = heapAfterGc();
    const rssAfter = process.memoryUsage().rss;
    console.info(
      `coap flood: ${floodMs} ms; heap + ArrayBuffers after GC ${(heapBefore / MiB).toFixed(1)} → ${(heapAfter / MiB).toFixed(1)} MiB, ` +
        `RSS ${(rssBefore / MiB).toFixed(0)} → ${(rssAfter / MiB).toFixed(0)} MiB; ` +
        `${entries(m, "dedup")} dedup entries, ${flooded} more Block1 starts during the POST`,
    );
    // Bounded by the caps: ~3,500 remembered replies (<2 MiB), 64 × 1 KiB of assemblies, one observer.
    // Before the caps, the 2,000 kept 4.04s of 60 KB paths alone took it from 22 to 265 MiB.
    expect(heapAfter - heapBefore).toBeLessThan(16 * MiB);

    // 4. Exactly one notification per change for the node that registered twice.
    const notifications = () =>
      receiverUdp.received.filter(
        (x) => x.type !== MessageType.ACK && optionUint(x, OptionNumber.OBSERVE) !== undefined,
      ).length;
    const before = notifications();
    for (let i = 1; i <= 5; i++) {
      await sender.send(
        el(
          "jabber:client",
          "message",
          { to: `receiver@${domain}` },
          el("jabber:client", "body", {}, `c${i}`),
        ),
      );
      await until(`change ${i} at the receiver`, () => got.includes(`c${i}`));
      await new Promise((r) => setTimeout(r, 50)); // time for a second copy, were there one
      expect(notifications() - before).toBe(i);
    }
    expect(got).toEqual(["c1", "c2", "c3", "c4", "c5"]);
  }, 120_000);
});
