/**
 * The gateway's facade and the layer's typed errors: `startGateway` from resolved configuration (the
 * data-directory lock, /healthz that follows the store, a clean stop that releases the lock), and the
 * error hierarchies each layer exports (CoAP, session, stanza, store).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { el } from "../../codec/index.js";
import {
  ConfigError,
  DataDirLockedError,
  GATEWAY_DEFAULTS,
  loadConfig,
  STANZA_ERROR_CONDITIONS,
  StanzaError,
  StoreError,
  startGateway,
} from "../../gateway/index.js";
import { openStore } from "../../gateway/store/index.js";
import {
  BlockwiseError,
  CoapError,
  CoapFormatError,
  CoapTimeoutError,
  EndpointClosed,
  parseMessage,
  protocol,
  ResetByPeer,
  ResponseTimeout,
  RetransmitsExceeded,
  SessionError,
  SessionFormatError,
} from "../../src/core/index.js";
import { testGatewayConfig } from "../kit/in-process-gateway.js";

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "cxmpp-facade-"));
  dirs.push(d);
  return d;
}
const config = (dataDir: string) => testGatewayConfig(dataDir);

async function healthz(address: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`http://${address}/healthz`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe("startGateway", () => {
  it("starts from resolved configuration with its defaults, and /healthz reports it healthy", async () => {
    const dir = tempDir();
    const gw = await startGateway(config(dir));
    try {
      expect(gw.address).toMatch(/^127\.0\.0\.1:\d+$/);
      expect(gw.config.resource).toBe(GATEWAY_DEFAULTS.resource);
      expect(gw.config.maxDownlinkBytes).toBe(GATEWAY_DEFAULTS.maxDownlinkBytes);
      const h = await healthz(gw.metricsAddress!);
      expect(h.status).toBe(200);
      expect(h.body).toMatchObject({ ok: true, store: "ok", federation: "off", sessions: 0, outbox: 0 });
    } finally {
      await gw.stop();
    }
  });

  it("refuses a second gateway on the same data directory, and frees it on stop", async () => {
    const dir = tempDir();
    const first = await startGateway(config(dir));
    let refused: unknown;
    try {
      await startGateway(config(dir));
    } catch (error) {
      refused = error;
    }
    expect(refused).toBeInstanceOf(DataDirLockedError);
    expect((refused as DataDirLockedError).pid).toBe(process.pid);
    await first.stop();
    const second = await startGateway(config(dir)); // the lock went with the first
    await second.stop();
  });

  it("answers /healthz 503 while the store fails its commits, 200 again once one succeeds", async () => {
    const dir = tempDir();
    const gw = await startGateway(config(dir));
    const away = () => el("jabber:client", "message", { to: "alice@elsewhere.example", from: "x@iot" });
    try {
      // A real SQLite failure inside the batch: every outbox insert aborts while this trigger exists.
      gw.store.db.exec(
        "CREATE TEMP TRIGGER refuse BEFORE INSERT ON main.outbox BEGIN SELECT RAISE(ABORT, 'disk says no'); END",
      );
      expect(() => gw.service.route(away())).toThrow(StoreError);
      await expect(gw.service.committed()).rejects.toBeInstanceOf(StoreError);
      const failing = await healthz(gw.metricsAddress!);
      expect(failing.status).toBe(503);
      expect(failing.body.ok).toBe(false);
      expect(String(failing.body.store)).toMatch(/^failing: .*disk says no/);
      gw.store.db.exec("DROP TRIGGER refuse");
      gw.service.route(away());
      await gw.service.committed();
      const healed = await healthz(gw.metricsAddress!);
      expect([healed.status, healed.body.ok, healed.body.outbox]).toEqual([200, true, 1]);
    } finally {
      await gw.stop();
    }
  });

  it("fails to start with a StoreError on a file that is not a store, and leaves nothing locked", async () => {
    const dir = tempDir();
    writeFileSync(join(dir, "cxmpp.db"), "not a database, just text ".repeat(100));
    await expect(startGateway(config(dir))).rejects.toBeInstanceOf(StoreError);
    rmSync(join(dir, "cxmpp.db"));
    const gw = await startGateway(config(dir)); // the failed start released the lock
    await gw.stop();
  });

  it("reports bad configuration as ConfigError naming the key", () => {
    expect(() => loadConfig({ env: { CXMPP_LISTEN: "nowhere" } })).toThrow(ConfigError);
  });
});

describe("typed errors, one hierarchy per layer", () => {
  it("CoAP: every failure is a CoapError; the timeouts share CoapTimeoutError", () => {
    for (const e of [new RetransmitsExceeded("x"), new ResponseTimeout("x")]) {
      expect(e).toBeInstanceOf(CoapTimeoutError);
      expect(e).toBeInstanceOf(CoapError);
    }
    for (const e of [new ResetByPeer("x"), new EndpointClosed("x"), new BlockwiseError("x")]) {
      expect(e).toBeInstanceOf(CoapError);
      expect(e).not.toBeInstanceOf(CoapTimeoutError);
    }
    let parsed: unknown;
    try {
      parseMessage(Uint8Array.of(0xff));
    } catch (error) {
      parsed = error;
    }
    expect(parsed).toBeInstanceOf(CoapFormatError);
    expect(parsed).toBeInstanceOf(CoapError);
  });

  it("session: a malformed session message is a SessionError of kind format, with its offset", () => {
    let caught: unknown;
    try {
      protocol.decodeUplink(Uint8Array.of(0xff, 0x00));
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(SessionFormatError);
    expect(caught).toBeInstanceOf(SessionError);
    expect((caught as SessionError).kind).toBe("format");
    expect(new SessionError("not-connected", "not connected").kind).toBe("not-connected");
  });

  it("stanza: RFC 6120 §8.3.3's 22 conditions, each with its default type", () => {
    expect(Object.keys(STANZA_ERROR_CONDITIONS)).toHaveLength(22);
    expect(new StanzaError("service-unavailable").type).toBe("cancel");
    expect(new StanzaError("resource-constraint").type).toBe("wait");
    expect(new StanzaError("forbidden").type).toBe("auth");
    expect(new StanzaError("bad-request").type).toBe("modify");
    expect(new StanzaError("internal-server-error", "wait").type).toBe("wait");
  });

  it("stanza: a reply swaps the addresses, keeps the payload and reads back as the same error", () => {
    const request = el(
      "jabber:client",
      "iq",
      { type: "get", id: "q1", from: "alice@a.example/x", to: "node@iot.example" },
      el("urn:xmpp:ping", "ping"),
    );
    const reply = new StanzaError("item-not-found", undefined, "no such node").reply(request);
    expect(reply.attrs.map((a) => `${a.name}=${a.value}`)).toEqual([
      "to=alice@a.example/x",
      "from=node@iot.example",
      "type=error",
      "id=q1",
    ]);
    expect(reply.children[0]).toEqual(el("urn:xmpp:ping", "ping"));
    const back = StanzaError.fromStanza(reply)!;
    expect([back.condition, back.type, back.text]).toEqual(["item-not-found", "cancel", "no such node"]);
    expect(StanzaError.fromStanza(request)).toBeUndefined();
  });

  it("store: errors from opening a damaged store are StoreError, recognised with instanceof", () => {
    const dir = tempDir();
    writeFileSync(join(dir, "cxmpp.db"), "garbage ".repeat(600));
    expect(() => openStore(dir)).toThrow(StoreError);
  });
});
