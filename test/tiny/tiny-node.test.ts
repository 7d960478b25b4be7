/**
 * The tiny node (src/tiny) on Node.js against a real gateway over real UDP: the host glue of
 * src/node/tiny-host.ts gives it a socket, one timer and random bytes and no native crypto, so it is
 * given the pure-JavaScript jsCrypto and, for coaps, the pure-JavaScript jsDtls, as a device without
 * crypto or DTLS of its own. coaps and plain coap; CON and NON readings; a downlink stanza; sleep and
 * wake; the device file decoded on the node; a host that gives no crypto at all, or no DTLS for a coaps
 * device, is told what is missing.
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { attr, el, type XElement } from "../../codec/index.js";
import { encodeDeviceFile } from "../../gateway/data-dir.js";
import type { PeerAddress } from "../../src/core/index.js";
import { nodeTinyHost } from "../../src/node/index.js";
import { createTinyNode, decodeDeviceFile, gatewayAddress } from "../../src/tiny/index.js";
import { jsCrypto } from "../../src/tiny/js-crypto.js";
import { jsDtls } from "../../src/tiny/js-dtls.js";
import { inProcessGateway, type TestGateway } from "../kit/in-process-gateway.js";
import { scratch } from "../kit/scratch.js";
import { key } from "../kit/session-harness.js";
import { bodyOf } from "../kit/stanzas.js";
import { until } from "../kit/wait.js";

const DOMAIN = "iot.localhost";
const { root, cleanups } = scratch("cxmpp-tiny-");

const reading = (n: number) =>
  el("jabber:client", "message", { to: "sink@elsewhere.example" }, el("jabber:client", "body", {}, `r${n}`));

async function gateway(name: string, outbound: XElement[]): Promise<TestGateway> {
  const gw = await inProcessGateway(join(root, name), {
    outbound,
    flags: { dtls_listen: "127.0.0.1:0" },
  });
  gw.store.devices.add({
    identity: "tiny1",
    key: key(1),
    jid: `tiny1@${DOMAIN}`,
    peers: [`peer@${DOMAIN}`],
    dtlsOnly: true,
  });
  gw.store.devices.add({ identity: "peer", key: key(2), jid: `peer@${DOMAIN}`, peers: [`tiny1@${DOMAIN}`] });
  return gw;
}

describe("the tiny node against a real gateway", () => {
  it("reads its device file, connects over coaps on the pure-JS crypto, sends CON and NON readings, gets downlink", async () => {
    const outbound: XElement[] = [];
    const gw = await gateway("coaps", outbound);
    cleanups.push(() => gw.stop());
    // The device file as `cxmpp provision add --out` writes it, decoded on the node.
    const file = encodeDeviceFile({
      gateway: `coaps://${gw.secureAddress}`,
      identity: "tiny1",
      key_hex: Buffer.from(key(1)).toString("hex"),
      jid: `tiny1@${DOMAIN}`,
      dictionary: "",
    });
    const device = decodeDeviceFile(file);
    expect(gatewayAddress(device.gateway)).toEqual({ secure: true, peer: gw.secureAddress });
    const h = await nodeTinyHost(gatewayAddress(device.gateway).peer as PeerAddress);
    cleanups.push(() => h.close());
    const node = createTinyNode({ ...h.host, crypto: jsCrypto, dtls: jsDtls }, device, { ackTimeoutMs: 300 });
    h.attach(node);
    const inbox: string[] = [];
    node.onStanza((s) => {
      if (s.name === "message") inbox.push(bodyOf(s));
    });
    expect(await node.connect()).toBe(`tiny1@${DOMAIN}/cxmpp`);
    expect(gw.dtls?.tables().sessions).toBe(1);
    await node.send(reading(1));
    node.telemetry(reading(2)); // the first reading of a session goes reliably (table priming)
    await until(() => outbound.length === 2);
    node.telemetry(reading(3)); // NON
    await until(() => outbound.length === 3);
    expect(outbound.map(bodyOf)).toEqual(["r1", "r2", "r3"]);
    expect(outbound.every((s) => attr(s, "from") === `tiny1@${DOMAIN}/cxmpp`)).toBe(true);

    // A stanza for the node while it is not asking: it waits; the next wake-up (poll) brings it.
    gw.service.route(
      el(
        "jabber:client",
        "message",
        { from: `peer@${DOMAIN}/x`, to: `tiny1@${DOMAIN}` },
        el("jabber:client", "body", {}, "on"),
      ),
    );
    await node.poll();
    await until(() => inbox.length === 1);
    expect(inbox).toEqual(["on"]);
    expect(node.pending).toBe(0);
    node.close();
  });

  it("over plain coap too, with the connect proof on the pure-JS HMAC", async () => {
    const outbound: XElement[] = [];
    const gw = await gateway("coap", outbound);
    cleanups.push(() => gw.stop());
    gw.store.devices.add({ identity: "plain1", key: key(3), jid: `plain1@${DOMAIN}`, peers: [] });
    const h = await nodeTinyHost(gw.address as PeerAddress);
    cleanups.push(() => h.close());
    const node = createTinyNode(
      { ...h.host, crypto: jsCrypto },
      { gateway: `coap://${gw.address}`, identity: "plain1", key: key(3) },
    );
    h.attach(node);
    await node.connect();
    await node.send(reading(7));
    await until(() => outbound.length === 1);
    expect(outbound.map(bodyOf)).toEqual(["r7"]);
    node.close();
  });

  it("tells a host without the crypto it needs what is missing: hmacSha256 always, all four for coaps", async () => {
    const h = await nodeTinyHost("127.0.0.1:9" as PeerAddress);
    cleanups.push(() => h.close());
    const device = { identity: "x", key: key(4) };
    expect(() => createTinyNode(h.host, { ...device, gateway: "coap://127.0.0.1:9" })).toThrow(
      /host\.crypto has no hmacSha256: give the host's own, or jsCrypto/,
    );
    const { hmacSha256 } = jsCrypto;
    // jsDtls needs the other three (a host's own DTLS does not: the node itself needs hmacSha256 only).
    expect(() =>
      createTinyNode(
        { ...h.host, crypto: { hmacSha256 }, dtls: jsDtls },
        { ...device, gateway: "coaps://127.0.0.1:9" },
      ),
    ).toThrow(/host\.crypto has no sha256, aes128Ccm8Seal, aes128Ccm8Open/);
    createTinyNode(
      { ...h.host, crypto: { hmacSha256 } },
      { ...device, gateway: "coap://127.0.0.1:9" },
    ).close();
  });

  it("tells a host without DTLS that a coaps device needs it (host.dtls), and a coap device runs without", async () => {
    const h = await nodeTinyHost("127.0.0.1:9" as PeerAddress);
    cleanups.push(() => h.close());
    const device = { identity: "x", key: key(4) };
    const host = { ...h.host, crypto: jsCrypto };
    expect(() => createTinyNode(host, { ...device, gateway: "coaps://127.0.0.1:9" })).toThrow(TypeError);
    expect(() => createTinyNode(host, { ...device, gateway: "coaps://127.0.0.1:9" })).toThrow(
      /host\.dtls is missing: coaps:\/\/127\.0\.0\.1:9 is coaps; give the host's own DTLS, or jsDtls \(cxmpp-dtls\.mjs\)/,
    );
    // Something that is not a TinyDtls is no DTLS either.
    expect(() =>
      createTinyNode({ ...host, dtls: {} as typeof jsDtls }, { ...device, gateway: "coaps://127.0.0.1:9" }),
    ).toThrow(/host\.dtls is missing/);
    createTinyNode(host, { ...device, gateway: "coap://127.0.0.1:9" }).close();
  });
});
