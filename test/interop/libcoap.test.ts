/**
 * Interop with independent CoAP implementations as clients of our CoapEndpoint on UDP 127.0.0.1:
 * libcoap's `coap-client-notls` (C, Debian libcoap3-bin) and node-coap's Agent (`coap` 1.5.0).
 *
 * Block1/Block2 (RFC 7959) and Observe (RFC 7641) interop tests are not here yet: they come with those
 * layers in src/core/coap (libcoap: `-b 64 -f big.bin` for Block1 — it changes the token per block and
 * ties blocks with Request-Tag; `-s 10` for Observe; see PEERS.md).
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createSocket } from "node:dgram";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Agent, request as coapRequest, type IncomingMessage } from "coap";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { Code } from "../../src/core/coap/registry.js";
import { createUdpEndpoint, type UdpEndpoint } from "../../src/node/index.js";
import { echoResources, LINK_FORMAT, type Served } from "./fixtures/echo-resources.js";

let server: UdpEndpoint;
let served: Served[];
let dir: string;
let base: string;

beforeAll(async () => {
  server = await createUdpEndpoint({ host: "127.0.0.1" });
  const resources = echoResources();
  served = resources.served;
  server.endpoint.exchanges.handle(resources.handler);
  base = `coap://127.0.0.1:${server.transport.port}`;
  dir = await mkdtemp(join(tmpdir(), "cxmpp-libcoap-"));
});

afterAll(async () => {
  await server?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

beforeEach(() => {
  served.length = 0;
});

/**
 * Runs coap-client-notls without blocking the event loop (our server answers in this process).
 * libcoap exits 0 even when it times out, so callers check what it printed.
 */
function coapClient(args: string[]): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile("coap-client-notls", ["-B", "5", ...args], { timeout: 15_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`coap-client-notls ${args.join(" ")}: ${error.message}\n${stderr}`));
      else resolve({ stdout, stderr });
    });
  });
}

describe("libcoap coap-client-notls → our CoapEndpoint", () => {
  it("POST /echo with CON: the binary payload comes back byte-exact in a piggybacked 2.04 ACK", async () => {
    const payload = Buffer.concat([Buffer.from("cxmpp\x00\xff"), randomBytes(200)]);
    const input = join(dir, "in.bin");
    const output = join(dir, "out.bin");
    await writeFile(input, payload);
    const { stdout, stderr } = await coapClient([
      "-v",
      "7",
      "-m",
      "post",
      "-t",
      "42",
      "-f",
      input,
      "-o",
      output,
      `${base}/echo`,
    ]);
    const log = stdout + stderr;
    expect(log).toMatch(/t:CON c:POST/);
    expect(log).toMatch(/t:ACK c:2\.04 .*Content-Format:application\/octet-stream/);
    expect(Buffer.compare(await readFile(output), payload)).toBe(0);
    expect(served).toHaveLength(1);
    expect(served[0]).toMatchObject({ path: "echo", code: Code.POST, confirmable: true });
  });

  it("POST /echo with NON (-N): a NON 2.04 response carries the payload", async () => {
    const { stdout, stderr } = await coapClient([
      "-v",
      "7",
      "-N",
      "-m",
      "post",
      "-e",
      "non hello",
      `${base}/echo`,
    ]);
    const log = stdout + stderr;
    expect(log).toMatch(/t:NON c:POST/);
    expect(log).toMatch(/t:NON c:2\.04 .*'non hello'/);
    expect(served).toHaveLength(1);
    expect(served[0]).toMatchObject({ path: "echo", confirmable: false });
  });

  it("GET /.well-known/core returns the link-format resource list", async () => {
    const { stdout } = await coapClient(["-m", "get", `${base}/.well-known/core`]);
    expect(stdout.trim()).toBe(LINK_FORMAT);
  });

  it("a malformed CON (reserved option nibble) gets RST; the server keeps serving libcoap", async () => {
    const raw = createSocket("udp4");
    await new Promise<void>((r) => raw.bind(0, "127.0.0.1", () => r()));
    try {
      const reply = new Promise<Buffer>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error("no RST within 2 s")), 2_000);
        raw.once("message", (m) => {
          clearTimeout(t);
          resolve(m);
        });
      });
      // CON POST, token length 0, MID 0x1234, then option byte 0xf0: delta nibble 15 is reserved.
      raw.send(Uint8Array.from([0x40, 0x02, 0x12, 0x34, 0xf0, 0x01]), server.transport.port, "127.0.0.1");
      expect([...(await reply)]).toEqual([0x70, 0x00, 0x12, 0x34]); // RST, Empty, same MID
    } finally {
      await new Promise<void>((r) => raw.close(() => r()));
    }
    expect(served).toHaveLength(0);
    const { stdout } = await coapClient(["-m", "post", "-e", "still here", `${base}/echo`]);
    expect(stdout.trim()).toBe("still here");
  });
});

describe("node-coap Agent → our CoapEndpoint", () => {
  let agent: Agent;
  beforeAll(() => {
    agent = new Agent({ type: "udp4" });
  });
  afterAll(() => {
    agent.close();
  });

  function send(method: "GET" | "POST", pathname: string, confirmable: boolean, payload?: Buffer) {
    return new Promise<IncomingMessage>((resolve, reject) => {
      const req = coapRequest({
        hostname: "127.0.0.1",
        port: server.transport.port,
        method,
        pathname,
        confirmable,
        agent,
      });
      const t = setTimeout(() => reject(new Error("node-coap: no response within 5 s")), 5_000);
      req.on("response", (res: IncomingMessage) => {
        clearTimeout(t);
        resolve(res);
      });
      req.on("error", (e: Error) => {
        clearTimeout(t);
        reject(e);
      });
      if (payload) req.write(payload);
      req.end();
    });
  }

  it("CON POST /echo: 2.04 with the payload", async () => {
    const payload = Buffer.from("from node-coap, confirmable");
    const res = await send("POST", "/echo", true, payload);
    expect(res.code).toBe("2.04");
    expect(res.payload.toString()).toBe(payload.toString());
    expect(served).toHaveLength(1);
    expect(served[0]).toMatchObject({ path: "echo", code: Code.POST, confirmable: true });
  });

  it("NON GET /.well-known/core: 2.05 link format in a NON response", async () => {
    const res = await send("GET", "/.well-known/core", false);
    expect(res.code).toBe("2.05");
    expect(res.headers["Content-Format"]).toBe("application/link-format");
    expect(res.payload.toString()).toBe(LINK_FORMAT);
    expect(served).toHaveLength(1);
    expect(served[0]).toMatchObject({ path: ".well-known/core", code: Code.GET, confirmable: false });
  });
});
