/**
 * examples/tiny-sensor (issue 11 item 5): the device program of a sensor on the tiny node.
 * (a) Its bundle builds with the tiny-node bundle's options (tools/build-node.ts, as
 *     `npx tsx tools/build-node.ts examples/tiny-sensor/sensor.ts` builds it) within the size budgets
 *     of the node with the JavaScript DTLS and crypto it carries, names no Node.js module, and exports
 *     runSensor; sensor.ts type-checks with ES2022 only
 *     (examples/tiny-sensor/tsconfig.json: no Node.js types).
 * (b) The bundle runs inside QuickJS (test/kit/quickjs-host.ts, with the heap limit of the node's
 *     budgets) with the device file `cxmpp provision add` wrote, against a real gateway (in process,
 *     DTLS on, the device DTLS-only): it connects over coaps, reads its sensor every 0.3 s and reports
 *     each value as XEP-0323 fields (every third one reliably), sleeps between readings, and a stanza
 *     sent to it while it sleeps arrives at the next wake-up.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import ts from "typescript";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { attr, el, type XElement } from "../../codec/index.js";
import type { PeerAddress } from "../../src/core/index.js";
import { BUDGETS, buildNodeBundle } from "../../tools/build-node.js";
import { CLI, freeUdpPort, runToEnd } from "../kit/gateway-process.js";
import { inProcessGateway } from "../kit/in-process-gateway.js";
import { QuickJsTinyNode, TINY_HOST_GLUE } from "../kit/quickjs-host.js";
import { bodyOf } from "../kit/stanzas.js";
import { until } from "../kit/wait.js";

const run = promisify(execFile); // rejects on a non-zero exit, with its output
const ROOT = resolve(import.meta.dirname, "..", "..");
const EXAMPLE = join(ROOT, "examples", "tiny-sensor");
const DOMAIN = "iot.localhost";
const SINK = "sink@elsewhere.example";
/**
 * The example's own code over the budgets of the node, DTLS and crypto bundles: a ratchet too. Measured
 * 131,039 B minified, 57,396 B gzip for the whole bundle (the dictionary's data first in it, as in the
 * node's), against 128,304 B and 56,945 B for the three bundles (its own 2,735 B; 451 B of gzip).
 */
const SENSOR_CODE = { minifiedBytes: 2_740, gzipBytes: 490 };
/** The runtime's limit, as test/tiny/quickjs.test.ts sets it for the node bundle. */
const LIMIT = BUDGETS.heapBytes * BUDGETS.peakRatio;

const root = mkdtempSync(join(tmpdir(), "cxmpp-tiny-sensor-"));
const cleanups: (() => unknown)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
  rmSync(root, { recursive: true, force: true });
});

let bundle = "";
beforeAll(async () => {
  bundle = (await buildNodeBundle(join(root, "cxmpp-sensor.mjs"), join(EXAMPLE, "sensor.ts"))).code;
});

describe("examples/tiny-sensor: the bundle", () => {
  it("builds within the tiny node's budgets plus its own code, with no Node.js module in it, and exports runSensor", async () => {
    const r = await buildNodeBundle(join(root, "built.mjs"), join(EXAMPLE, "sensor.ts"));
    console.log(`tiny-sensor bundle: ${r.minifiedBytes} B minified, ${r.gzipBytes} B gzip`);
    // The budgets of the node with the JavaScript DTLS and crypto (the sensor carries both:
    // quickjs-main.c gives neither) plus the example's own code (the sensor loop and its XEP-0323
    // builder: SENSOR_CODE).
    expect(r.minifiedBytes).toBeLessThanOrEqual(
      BUDGETS.withDtlsAndCrypto.minifiedBytes + SENSOR_CODE.minifiedBytes,
    );
    expect(r.gzipBytes).toBeLessThanOrEqual(BUDGETS.withDtlsAndCrypto.gzipBytes + SENSOR_CODE.gzipBytes);
    // Both pure-JavaScript layers are in it (the PRF's label; SHA-256's constants in BigInt).
    expect(r.code).toContain("key expansion");
    expect(r.code).toContain("BigInt");
    expect(r.code).not.toMatch(/\bfrom\s*"node:|\bimport\s*\(|require\(|\bBuffer\b|TextEncoder|TextDecoder/);
    expect(r.code).not.toMatch(/\bsetTimeout\b|\bsetInterval\b|\bprocess\./);
    expect(r.code).toMatch(/export\s*\{\s*\w+ as runSensor\s*\}/);
  });

  it("`tsx tools/build-node.ts examples/tiny-sensor/sensor.ts OUT`, as its README builds it, exits 0 and prints its size beside the node + dtls + crypto budget and the targets", async () => {
    const out = join(root, "cli.mjs");
    const tsx = join(ROOT, "node_modules", ".bin", "tsx");
    const r = await run(tsx, ["tools/build-node.ts", "examples/tiny-sensor/sensor.ts", out], { cwd: ROOT });
    expect(r.stdout).toContain(`${out} (a device program with the node)`);
    expect(r.stdout).toMatch(/minified .* node \+ dtls \+ crypto budget .* target .* (met|not yet)/);
    expect(r.stdout).toMatch(/gzip -9 .* node \+ dtls \+ crypto budget .* target .* (met|not yet)/);
    expect(readFileSync(out, "utf8")).toMatch(/export\s*\{\s*\w+ as runSensor\s*\}/);
  });

  it("sensor.ts type-checks with ECMAScript 2022 alone (no Node.js types, no DOM)", () => {
    const file = ts.findConfigFile(EXAMPLE, ts.sys.fileExists, "tsconfig.json")!;
    expect(file).toBe(join(EXAMPLE, "tsconfig.json"));
    const config = ts.getParsedCommandLineOfConfigFile(file, undefined, {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (d) => {
        throw new Error(ts.flattenDiagnosticMessageText(d.messageText, "\n"));
      },
    })!;
    expect(config.options.types).toEqual([]);
    expect(config.fileNames).toEqual([join(EXAMPLE, "sensor.ts")]);
    const program = ts.createProgram(config.fileNames, config.options);
    const errors = ts
      .getPreEmitDiagnostics(program)
      .map((d) => ts.flattenDiagnosticMessageText(d.messageText, "\n"));
    expect(errors).toEqual([]);
    // Only the portable layers come in.
    const sources = program
      .getSourceFiles()
      .map((s) => s.fileName)
      .filter((f) => !f.includes("node_modules"))
      .map((f) => f.slice(ROOT.length + 1).split("/")[0]);
    expect(new Set(sources)).toEqual(new Set(["codec", "src", "examples"]));
  }, 60_000);
});

/**
 * The device side inside QuickJS: a TinyHost over the kit's `__host` functions (what a device's C glue
 * registers: examples/tiny-sensor/quickjs-main.c), a simulated thermometer, and runSensor. Its events
 * go to the kit's log as `event TYPE JSON`.
 */
function sensorGlue(options: { to: string; every: number; reliableEvery: number; count: number }): string {
  return `
(() => {
${TINY_HOST_GLUE}  let sensor;
  let reads = 0;
  // A thermometer: 20.0, 20.5, 21.0, ... °C.
  const readSensor = () => 20 + 0.5 * reads++;
  globalThis.__fire = () => { const f = fire; fire = undefined; if (f) f(); };
  globalThis.__receive = (ab) => { sensor.receive(new Uint8Array(ab)); };
  globalThis.device_create = (file, ackTimeoutMs) => {
    sensor = globalThis.cxmpp.runSensor(host, new Uint8Array(file), {
      ...${JSON.stringify(options)},
      readSensor,
      node: { ackTimeoutMs },
      onStanza: (s) => h.stanza(JSON.stringify(s)),
      onEvent: (e) => h.log("event", e.type, JSON.stringify(e)),
    });
  };
  globalThis.device_readings = () => sensor.readings;
  globalThis.device_gateway = () => sensor.gateway + (sensor.secure ? " secure" : "");
  globalThis.device_close = () => sensor.stop();
})();
`;
}

/** An element's attributes as a record (all of them unqualified here). */
const attrsOf = (e: XElement | undefined) =>
  Object.fromEntries((e?.attrs ?? []).map((a) => [a.name, a.value]));

/** The one XEP-0323 field of a reading as the gateway passed it on: fields, node, timestamp, numeric. */
function fieldsOf(s: XElement) {
  const child = (e: XElement | undefined, name: string) =>
    e?.children.find((c): c is XElement => typeof c !== "string" && c.name === name);
  const fields = child(s, "fields");
  const node = child(fields, "node");
  const timestamp = child(node, "timestamp");
  const numeric = child(timestamp, "numeric");
  return { fields, node, timestamp, numeric };
}

describe("examples/tiny-sensor inside QuickJS against a real gateway", () => {
  it("connects with the provisioned device file over coaps, reports XEP-0323 readings, sleeps, gets a stanza at a wake-up", async () => {
    const data = join(root, "data");
    const dtlsPort = await freeUdpPort();
    const deviceFile = join(root, "tiny1.cbor");
    // The device file, as a builder makes it (README.md): a DTLS-only device, its gateway coaps://.
    const provision = await runToEnd(
      process.execPath,
      [
        CLI,
        "provision",
        "add",
        "tiny1",
        "--allow",
        `peer@${DOMAIN}`,
        "--dtls-only",
        "--gateway",
        `coaps://127.0.0.1:${dtlsPort}`,
        "--out",
        deviceFile,
        "--data-dir",
        data,
      ],
      { cwd: root, env: { PATH: process.env.PATH ?? "" } },
    );
    expect(provision.stderr).toBe("");
    expect(provision.status).toBe(0);

    const outbound: XElement[] = [];
    const gw = await inProcessGateway(data, { outbound, flags: { dtls_listen: `127.0.0.1:${dtlsPort}` } });
    cleanups.push(() => gw.stop());
    expect(gw.secureAddress).toBe(`127.0.0.1:${dtlsPort}`);
    expect(gw.store.devices.find("tiny1")?.dtlsOnly).toBe(true);

    const COUNT = 9;
    const q = await QuickJsTinyNode.start({
      bundle,
      gateway: gw.secureAddress as PeerAddress,
      deviceFile: Uint8Array.from(readFileSync(deviceFile)), // a copy: a Buffer may view a larger pool
      ackTimeoutMs: 300,
      memoryLimit: LIMIT,
      glue: sensorGlue({ to: SINK, every: 0.3, reliableEvery: 3, count: COUNT }),
    });
    cleanups.push(() => q.close());
    const events = () =>
      q.logs
        .filter((l) => l.startsWith("event "))
        .map((l) => JSON.parse(l.slice(l.indexOf("{"))) as { type: string; seqnr?: number; value?: string });
    const failures = () => q.logs.filter((l) => !l.startsWith("event "));
    const JID = `tiny1@${DOMAIN}`;
    // Where the glue opens its socket: the device file's gateway, as runSensor read it.
    expect(q.engine.call("device_gateway")).toBe(`127.0.0.1:${dtlsPort} secure`);

    await until(
      () => events().some((e) => e.type === "connected"),
      20_000,
      () => q.logs.join("\n"),
    );
    expect(events()[0]).toEqual({ type: "connected", jid: `${JID}/cxmpp` });

    // While it sleeps after its second reading, a stanza for it waits at the gateway.
    await until(
      () => outbound.length >= 2,
      10_000,
      () => `2 readings; ${q.logs.join("\n")}`,
    );
    gw.service.route(
      el(
        "jabber:client",
        "message",
        { from: `peer@${DOMAIN}/x`, to: JID },
        el("jabber:client", "body", {}, "interval 600"),
      ),
    );
    await until(
      () => events().some((e) => e.type === "stopped"),
      20_000,
      () => `the sensor to stop after ${COUNT} readings; ${q.logs.join("\n")}`,
    );

    // Every reading arrived once, in order, with the sensor's values, as XEP-0323 fields.
    await until(() => outbound.length >= COUNT);
    expect(outbound).toHaveLength(COUNT);
    const now = Date.now();
    outbound.forEach((s, i) => {
      expect(s.name).toBe("message");
      expect(attr(s, "from")).toBe(`${JID}/cxmpp`);
      expect(attr(s, "to")).toBe(SINK);
      const { fields, node, timestamp, numeric } = fieldsOf(s);
      expect(fields?.ns).toBe("urn:xmpp:iot:sensordata");
      expect(attrsOf(fields)).toEqual({ seqnr: String(i + 1), done: "true" });
      expect(attrsOf(node)).toEqual({ nodeId: "tiny1" });
      const ts = attr(timestamp!, "value")!;
      expect(ts).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      expect(Math.abs(Date.parse(ts) - now)).toBeLessThan(60_000);
      expect(attrsOf(numeric)).toEqual({
        name: "temperature",
        momentary: "true",
        automaticReadout: "true",
        value: (20 + 0.5 * i).toFixed(1),
        unit: "°C",
      });
    });

    // Every third went reliably and was stored; the rest as telemetry.
    const readings = events().filter((e) => e.type === "reading");
    expect(readings.map((e) => e.value)).toEqual(outbound.map((s) => attr(fieldsOf(s).numeric!, "value")));
    expect(readings.filter((e) => (e as { reliable?: boolean }).reliable).map((e) => e.seqnr)).toEqual([
      3, 6, 9,
    ]);
    expect(
      events()
        .filter((e) => e.type === "stored")
        .map((e) => e.seqnr),
    ).toEqual([3, 6, 9]);
    expect(events().at(-1)).toEqual({ type: "stopped", readings: COUNT });

    // The stanza sent while it slept came down at a later wake-up.
    const messages = q.inbox.filter((s) => s.name === "message");
    expect(messages.map(bodyOf)).toEqual(["interval 600"]);
    expect(attr(messages[0]!, "from")).toBe(`peer@${DOMAIN}/x`);

    expect(q.engine.errors).toEqual([]);
    expect(failures()).toEqual([]);
    expect(q.engine.call("device_readings")).toBe(COUNT);
    console.log(
      `tiny-sensor in QuickJS: ${COUNT} readings, ${q.datagrams.out} datagrams out (${q.datagrams.bytesOut} B), ` +
        `${q.datagrams.in} in (${q.datagrams.bytesIn} B), heap after load ${(q.loadFigures!.load / 1024).toFixed(1)} KB, ` +
        `peak ${(q.engine.peakWithin / 1024).toFixed(1)} KB (limit ${(LIMIT / 1024).toFixed(0)} KB)`,
    );
  }, 120_000);
});
