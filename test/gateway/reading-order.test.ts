/**
 * Readings in the order they were taken (docs/PROTOCOL.md §3.3): a node's stanzas and NON readings
 * reach the recipient in the order the node sent them, or a NON reading that would arrive after a
 * newer one is dropped and counted (cxmpp_uplink_rejected_total{reason="out_of_order"}). On the
 * in-memory lossy network with the fake clock, so every run is the same.
 */
import { describe, expect, it } from "vitest";
import { el, type XElement } from "../../codec/index.js";
import type { NodeClient, PeerAddress } from "../../src/core/index.js";
import { seededRandom } from "../kit/seeded-random.js";
import { GATEWAY, type Harness, harness } from "../kit/session-harness.js";
import { bodyOf } from "../kit/stanzas.js";

/** A reading numbered like XEP-0323's seqnr, carried in the body so the sink can tell them apart. */
const reading = (seqnr: number): XElement =>
  el(
    "jabber:client",
    "message",
    { to: "sink@elsewhere.example" },
    el("jabber:client", "body", {}, `${seqnr}`),
  );

const delivered = (h: Harness) => h.outbound.map((s) => Number(bodyOf(s)));

async function connected(h: Harness): Promise<NodeClient> {
  const node = h.node("sensor1");
  const c = node.connect();
  await h.settle(500);
  await c;
  return node;
}

/** Cuts the next `n` datagrams from `from` to the gateway, then lets everything through. */
function loseNext(h: Harness, from: PeerAddress, n = 1): void {
  let left = n;
  h.drop((f, to) => {
    if (f !== from || to !== GATEWAY || left === 0) return false;
    left--;
    return true;
  });
}

describe("readings in the order they were taken", () => {
  it("a reliable reading lost once, then NON readings: delivered 2, 3, 4 (not 3, 4, 2), the NON ones held until 2 is stored", async () => {
    const h = harness(["sensor1"]);
    const node = await connected(h);
    node.sendTelemetry(reading(1)); // the first reading of a session goes reliably (table priming)
    await h.settle(500);
    expect(delivered(h)).toEqual([1]);

    loseNext(h, h.address(node)); // the CON carrying reading 2 is lost once; CoAP retransmits it
    const stored = node.send(reading(2));
    node.sendTelemetry(reading(3));
    node.sendTelemetry(reading(4));
    expect(node.heldReadings).toBe(2); // nothing of 3 and 4 on air while 2 is not acknowledged
    expect(h.dropped).toBe(1);
    await h.settle(5_000);
    await stored;

    expect(delivered(h)).toEqual([1, 2, 3, 4]);
    expect(node.heldReadings).toBe(0);
    expect(h.gateway.stats.stanzasIn).toBe(2); // 1 and 2, reliably
    expect(h.gateway.stats.telemetryIn).toBe(2); // 3 and 4 still went as NON
    expect(h.gateway.stats.outOfOrderTelemetry).toBe(0);
  });

  it("a NON reading overtaken by the stanza sent after it is dropped and counted, never routed after it", async () => {
    const h = harness(["sensor1"]);
    const node = await connected(h);
    node.sendTelemetry(reading(1));
    await h.settle(500);

    h.net.setConditions({ reorder: 1, reorderDelayMs: 300 }); // reading 2's datagram is held back
    node.sendTelemetry(reading(2));
    h.net.setConditions({});
    const stored = node.send(reading(3)); // overtakes it
    await h.settle(1_000);
    await stored;
    node.sendTelemetry(reading(4));
    await h.settle(500);

    expect(delivered(h)).toEqual([1, 3, 4]);
    expect(h.gateway.stats.outOfOrderTelemetry).toBe(1);

    // Two NON readings the other way round: the older one, arriving second, is dropped too.
    h.net.setConditions({ reorder: 1, reorderDelayMs: 300 });
    node.sendTelemetry(reading(5));
    h.net.setConditions({});
    node.sendTelemetry(reading(6));
    await h.settle(1_000);
    expect(delivered(h)).toEqual([1, 3, 4, 6]);
    expect(h.gateway.stats.outOfOrderTelemetry).toBe(2);
    expect(h.gateway.stats.replayedTelemetry).toBe(0);
  });

  it("holds at most maxHeldReadings (16) behind an unacknowledged stanza: the oldest held ones are dropped and counted", async () => {
    const h = harness(["sensor1"]);
    const node = await connected(h);
    node.sendTelemetry(reading(1));
    await h.settle(500);

    h.drop((from, to) => from === h.address(node) && to === GATEWAY); // the uplink is down
    const stored = node.send(reading(2));
    for (let n = 3; n <= 24; n++) node.sendTelemetry(reading(n));
    expect(node.heldReadings).toBe(16);
    expect(node.droppedReadings).toBe(6);
    await h.settle(3_000);
    expect(delivered(h)).toEqual([1]);

    h.drop(undefined); // back up: the stanza is retried, then the newest 16 readings go
    await h.settle(30_000);
    await stored;
    expect(delivered(h)).toEqual([1, 2, ...Array.from({ length: 16 }, (_, i) => 9 + i)]);
    expect(node.heldReadings).toBe(0);
    expect(node.unacknowledged).toBe(0);
  });

  it("many mixed readings under 20% loss and reordering: every delivered reading in send order, the reliable ones exactly once", async () => {
    const h = harness(["sensor1"], { loss: 0.2, reorder: 0.25, reorderDelayMs: 300, delayMs: 5 }, 11);
    const node = await (async () => {
      const n = h.node("sensor1");
      const c = n.connect();
      await h.settle(30_000);
      await c;
      return n;
    })();
    const random = seededRandom(5);
    const total = 600;
    const reliable: number[] = [];
    const sends: Promise<void>[] = [];
    let held = 0; // readings asked for while others were held
    for (let n = 1; n <= total; n++) {
      if (n === 1) {
        reliable.push(n);
        node.sendTelemetry(reading(n)); // the first reading of the session goes reliably
      } else if (random() < 0.25) {
        reliable.push(n);
        sends.push(node.send(reading(n)));
      } else node.sendTelemetry(reading(n));
      held += node.heldReadings > 0 ? 1 : 0;
      await h.settle(Math.floor(random() * 1_000), 10); // readings 0–1 s apart: often while a CON is in flight
    }
    let done = 0;
    for (const s of sends) s.then(() => done++);
    for (let round = 0; round < 200 && done < sends.length; round++) await h.settle(2_000, 50);
    expect(done).toBe(sends.length);

    const got = delivered(h);
    for (let i = 1; i < got.length; i++) expect(got[i]).toBeGreaterThan(got[i - 1]!); // send order, no duplicate
    expect(got.filter((n) => reliable.includes(n))).toEqual(reliable); // every CON reading, exactly once
    const stats = h.gateway.stats;
    // NON readings lost on the way or dropped as late are the only ones missing.
    expect(stats.telemetryIn).toBe(got.length - reliable.length);
    expect(stats.stanzasIn).toBe(reliable.length);
    expect(stats.outOfOrderTelemetry).toBeGreaterThan(0); // reordering really happened
    const lostUp = h.net.log.filter((r) => r.dropped && r.from === h.address(node)).length;
    expect(lostUp).toBeGreaterThan(0); // and loss
    expect(held).toBeGreaterThan(0); // readings waited behind a CON in flight
    expect(stats.badFrames).toBe(0);
    const nonSent = total - reliable.length;
    console.log(
      `reading order: ${total} readings (${reliable.length} CON, ${nonSent} NON), ${got.length} delivered in order; ` +
        `${lostUp} uplink datagrams lost, ${held} readings asked for while others were held; ` +
        `NON: ${stats.telemetryIn} routed, ${stats.outOfOrderTelemetry} dropped as out of order, ` +
        `${nonSent - stats.telemetryIn - stats.outOfOrderTelemetry - node.droppedReadings} lost, ${node.droppedReadings} dropped held`,
    );
  }, 120_000);
});
