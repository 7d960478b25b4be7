/**
 * The session layer over real UDP sockets with a seeded lossy relay between the nodes and the gateway:
 * thousands of CON stanzas from several nodes at 30% loss each way arrive exactly once and in order,
 * and the codec tables never desynchronise (no frame fails to decode).
 */
import { afterAll, describe, expect, it } from "vitest";
import { el, type XElement } from "../../codec/index.js";
import { MemoryDevices } from "../../gateway/devices.js";
import { attachGateway } from "../../gateway/index.js";
import { NodeClient } from "../../src/core/index.js";
import { createUdpEndpoint, nodeMac, systemClock, type UdpEndpoint } from "../../src/node/index.js";
import { key } from "../kit/session-harness.js";
import { bodyOf } from "../kit/stanzas.js";
import { LossyUdpRelay, RECV_BUFFER } from "../node/lossy-udp-relay.js";

const closers: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const c of closers.reverse()) await c();
});

const DOMAIN = "iot.example.org";
const transmission = { ackTimeoutMs: 15, maxRetransmit: 8 };

describe("cxmpp session over real UDP with 30% loss each way", () => {
  it("4 nodes × 500 CON stanzas: every one exactly once, in order, no codec desync", async () => {
    const names = ["s1", "s2", "s3", "s4"];
    const devices = new MemoryDevices(
      names.map((n, i) => ({ identity: n, key: key(i + 1), jid: `${n}@${DOMAIN}`, peers: [] })),
    );
    const outbound: XElement[] = [];
    const gatewayUdp: UdpEndpoint = await createUdpEndpoint({
      host: "127.0.0.1",
      transmission,
      udp: { recvBufferSize: RECV_BUFFER },
    });
    closers.push(() => gatewayUdp.close());
    const gateway = attachGateway(gatewayUdp.endpoint, {
      devices,
      domain: DOMAIN,
      clock: systemClock,
      outbound: (s) => outbound.push(s),
    });
    const relay = await LossyUdpRelay.start(
      gatewayUdp.transport.address,
      { loss: 0.3, duplicate: 0.05, reorder: 0.1, maxDelayMs: 8 },
      20261127,
    );
    closers.push(() => relay.close());

    const perNode = 500;
    const clients = await Promise.all(
      names.map(async (n, i) => {
        const udp = await createUdpEndpoint({
          host: "127.0.0.1",
          transmission,
          exchange: { tokenLength: 1 },
        });
        closers.push(() => udp.close());
        return new NodeClient({
          endpoint: udp.endpoint,
          gateway: relay.address,
          identity: n,
          key: key(i + 1),
          mac: nodeMac,
          retryDelayMs: 20,
        });
      }),
    );
    await Promise.all(clients.map((c) => connectWithRetry(c)));
    const sends: Promise<void>[] = [];
    clients.forEach((c, i) => {
      for (let k = 0; k < perNode; k++) {
        sends.push(
          c.send(
            el(
              "jabber:client",
              "message",
              { to: "sink@elsewhere.example" },
              el("jabber:client", "body", {}, `${names[i]}:${k}`),
            ),
          ),
        );
      }
    });
    await Promise.all(sends);
    for (const n of names) {
      const bodies = outbound.map(bodyOf).filter((b) => b.startsWith(`${n}:`));
      expect(bodies).toEqual(Array.from({ length: perNode }, (_, k) => `${n}:${k}`));
    }
    expect(gateway.stats.badFrames).toBe(0);
    expect(relay.toServer.stats.dropped).toBeGreaterThan(100); // the loss really happened
    expect(relay.toClient.stats.dropped).toBeGreaterThan(100);
  }, 120_000);
});

/** Connecting is two exchanges; at 30% loss each way a connect may need another try. */
async function connectWithRetry(client: NodeClient): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await client.connect();
      return;
    } catch (error) {
      if (attempt >= 5) throw error;
    }
  }
}
