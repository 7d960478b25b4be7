/**
 * A host with DTLS of its own (docs/TINY-NODE.md, TinyHost.dtls): the node bundle ALONE inside QuickJS
 * (dist/tiny/cxmpp-node.mjs as tools/build-node.ts builds it; neither cxmpp-dtls.mjs nor
 * cxmpp-crypto.mjs is loaded), its host glue giving a TinyDtls over an independent DTLS implementation
 * on the Node side, node-dtls-client 1.1.1 (what mbedTLS, Zephyr's DTLS sockets or esp-tls are on a
 * device), and its HMAC over node:crypto (mbedtls_md_hmac on a device). Against a real gateway (in
 * process, DTLS listener on, a DTLS-only device): the node connects over coaps and a CON reading is
 * stored, every datagram through the host's DTLS socket and none through the node's raw one.
 */
import { createHmac } from "node:crypto";
import { join } from "node:path";
import { dtls } from "node-dtls-client";
import { beforeAll, describe, expect, it } from "vitest";
import { attr, type XElement } from "../../codec/index.js";
import { encodeDeviceFile } from "../../gateway/data-dir.js";
import type { PeerAddress } from "../../src/core/index.js";
import { BUDGETS, buildNodeBundle } from "../../tools/build-node.js";
import { inProcessGateway } from "../kit/in-process-gateway.js";
import { type QuickJsEngine, QuickJsTinyNode } from "../kit/quickjs-host.js";
import { scratch } from "../kit/scratch.js";
import { until } from "../kit/wait.js";

const DOMAIN = "iot.localhost";
const JID = `tiny2@${DOMAIN}`;
const SINK = "sink@elsewhere.example";
/** node-dtls-client takes text keys only: the device key is the bytes of this text. */
const KEY_TEXT = "secret-key-tiny2";

const { root, cleanups } = scratch("cxmpp-quickjs-host-dtls-");

let bundle = "";
beforeAll(async () => {
  bundle = (await buildNodeBundle(join(root, "cxmpp-node.mjs"))).code;
});

/**
 * The host's own DTLS and HMAC, inside QuickJS: a TinyDtls whose session is the host's DTLS socket
 * (`__hostDtls`, the Node side below), which talks to the gateway itself, so the node's raw socket
 * (the `socket` argument) goes unused and nothing calls node.receive. Plain ES2022, as a device's glue.
 */
const HOST_OWN_GLUE = `
(() => {
  const d = globalThis.__hostDtls;
  const buffer = (u) => u.slice().buffer;
  let receive = () => {};
  let settle;
  globalThis.__dtlsReceive = (ab) => receive(new Uint8Array(ab));
  globalThis.__dtlsSettled = (error) => { const s = settle; settle = undefined; if (s) s(error); };
  globalThis.__hostOwn = {
    crypto: { hmacSha256: (key, data) => new Uint8Array(d.hmac(buffer(key), buffer(data))) },
    dtls: {
      client(socket, o) {
        return {
          connect: () => new Promise((resolve, reject) => {
            settle = (error) => (error === undefined ? resolve() : reject(new Error(error)));
            d.connect(o.gateway, o.identity, buffer(o.psk));
          }),
          send: (datagram) => d.send(buffer(datagram)),
          onReceive: (handler) => { receive = handler; },
          close: () => d.close(),
        };
      },
    },
  };
})();
`;

/** The Node side of the host's DTLS: node-dtls-client, one socket per connect. */
function nodeDtlsHost() {
  let socket: dtls.Socket | undefined;
  let closed = false;
  const seen = { gateway: "", identity: "", handshakes: 0, sent: 0, received: 0 };
  const expose = (engine: QuickJsEngine) => {
    const c = engine.context;
    const bytes = (h: Parameters<typeof c.getArrayBuffer>[0]) => {
      const b = c.getArrayBuffer(h);
      try {
        return Uint8Array.from(b.value);
      } finally {
        b.dispose();
      }
    };
    const into = (name: string, ...args: (string | Uint8Array | undefined)[]) => {
      if (!closed) engine.callback(name, ...args);
    };
    engine.expose("__hostDtls", {
      // The node requires hmacSha256 of every host (a coap connect's proof); over DTLS the gateway
      // takes the DTLS identity as the proof and sends no challenge, so it goes uncalled here.
      hmac: (key, data) => {
        const mac = createHmac("sha256", bytes(key)).update(bytes(data)).digest();
        return c.newArrayBuffer(Uint8Array.from(mac).buffer);
      },
      connect: (gateway, identity, psk) => {
        seen.gateway = c.getString(gateway);
        seen.identity = c.getString(identity);
        seen.handshakes++;
        const colon = seen.gateway.lastIndexOf(":");
        socket = dtls.createSocket({
          type: "udp4",
          address: seen.gateway.slice(0, colon),
          port: Number(seen.gateway.slice(colon + 1)),
          psk: { [seen.identity]: Buffer.from(bytes(psk)).toString("latin1") },
          timeout: 5_000,
          ciphers: ["TLS_PSK_WITH_AES_128_CCM_8"],
        });
        socket.on("connected", () => into("__dtlsSettled"));
        socket.on("error", (e: Error) => into("__dtlsSettled", `node-dtls-client: ${e.message}`));
        socket.on("message", (m: Buffer) => {
          seen.received++;
          into("__dtlsReceive", Uint8Array.from(m));
        });
        return undefined;
      },
      send: (datagram) => {
        seen.sent++;
        socket?.send(Buffer.from(bytes(datagram)));
        return undefined;
      },
      close: () => {
        closed = true;
        socket?.close();
        socket = undefined;
        return undefined;
      },
    });
  };
  return { seen, expose };
}

describe("a host with its own DTLS (TinyHost.dtls) and HMAC, inside QuickJS", () => {
  it("the node bundle alone connects over coaps through node-dtls-client to a real gateway, and a CON reading is stored", async () => {
    const outbound: XElement[] = [];
    const gw = await inProcessGateway(join(root, "gw"), {
      outbound,
      flags: { dtls_listen: "127.0.0.1:0" },
    });
    cleanups.push(() => gw.stop());
    gw.store.devices.add({
      identity: "tiny2",
      key: new TextEncoder().encode(KEY_TEXT),
      jid: JID,
      peers: [],
      dtlsOnly: true,
    });
    const own = nodeDtlsHost();
    const q = await QuickJsTinyNode.start({
      bundle,
      gateway: gw.secureAddress as PeerAddress,
      deviceFile: encodeDeviceFile({
        gateway: `coaps://${gw.secureAddress}`,
        identity: "tiny2",
        key_hex: Buffer.from(KEY_TEXT).toString("hex"),
        jid: JID,
        dictionary: "",
      }),
      ackTimeoutMs: 300,
      memoryLimit: BUDGETS.heapBytes * BUDGETS.peakRatio,
      hostOwn: { expose: own.expose, glue: HOST_OWN_GLUE },
    });
    cleanups.push(() => q.close());
    // Only the node's bundle is in QuickJS: no JavaScript DTLS, no JavaScript crypto.
    expect(q.engine.call("eval", "typeof cxmpp.createTinyNode")).toBe("function");
    expect(q.engine.call("eval", "[typeof globalThis.cxmppDtls, typeof globalThis.cxmppCrypto].join()")).toBe(
      "undefined,undefined",
    );

    expect(await q.connect()).toBe(`${JID}/cxmpp`);
    // The node handed the host its credentials from the device file (TinyDtlsOptions survive mangling).
    expect(own.seen).toMatchObject({ gateway: gw.secureAddress, identity: "tiny2", handshakes: 1 });
    expect(gw.dtls?.tables().sessions).toBe(1);

    await q.send(SINK, 1); // resolves once the gateway stored it
    await until(() => outbound.length === 1);
    expect(attr(outbound[0]!, "to")).toBe(SINK);
    expect(attr(outbound[0]!, "from")).toBe(`${JID}/cxmpp`);
    expect(q.pending).toBe(0);
    // Every datagram went through the host's DTLS socket; the node's raw socket sent none.
    expect(q.datagrams.out).toBe(0);
    expect(own.seen.sent).toBeGreaterThanOrEqual(2); // the connect request and the reading
    expect(own.seen.received).toBeGreaterThanOrEqual(2); // their answers
    expect(q.engine.errors).toEqual([]);
    expect(q.logs).toEqual([]);
    await q.close();
  }, 60_000);
});
