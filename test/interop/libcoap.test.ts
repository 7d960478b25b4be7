/**
 * Interop with independent CoAP implementations as clients of our CoapEndpoint on UDP 127.0.0.1:
 * libcoap's `coap-client-notls` (C, Debian libcoap3-bin) and node-coap's Agent (`coap` 1.5.0).
 *
 * The server mounts the fixture resources with `endpoint.handle`, so they are served through the
 * endpoint's block-wise (RFC 7959) and Observe (RFC 7641) layers: libcoap uploads with Block1 in
 * 16-byte blocks (a new token per block, tied together by Request-Tag), fetches a 3,000-byte
 * representation as Block2 and observes a resource while the test notifies; node-coap's Agent does
 * the Block1 upload (same token on every block, no Request-Tag) and the observation too.
 */
import { randomBytes } from "node:crypto";
import { createSocket } from "node:dgram";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFinished } from "vitest";
import { Code } from "../../src/core/coap/registry.js";
import { createUdpEndpoint, type UdpEndpoint } from "../../src/node/index.js";
import {
  BIG_BODY,
  echoResources,
  LINK_FORMAT,
  obsResponse,
  type ResourceState,
  type Served,
} from "./fixtures/echo-resources.js";
import { Agent, coapClient, nodeCoap, pdus } from "./fixtures/peers.js";

let server: UdpEndpoint;
let served: Served[];
let state: ResourceState;
let dir: string;
let base: string;

beforeAll(async () => {
  server = await createUdpEndpoint({ host: "127.0.0.1" });
  const resources = echoResources();
  served = resources.served;
  state = resources.state;
  server.endpoint.handle(resources.handler);
  base = `coap://127.0.0.1:${server.transport.port}`;
  dir = await mkdtemp(join(tmpdir(), "cxmpp-libcoap-"));
});

afterAll(async () => {
  await server?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

beforeEach(() => {
  served.length = 0;
  state.obs = "initial";
});

/** Resolves once `path` has `n` observers (the client's registration reached the Observe layer). */
async function observers(path: string, n: number, timeoutMs = 5_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (server.endpoint.observers.count(path) < n) {
    if (Date.now() > until) throw new Error(`no observer of /${path} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Changes /obs and notifies its observers; returns how many were notified. */
function change(text: string): number {
  state.obs = text;
  return server.endpoint.notify("obs", obsResponse(state));
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

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

  it("Block1 (-b 16): a 1,000-byte upload in 63 blocks, new token each, one Request-Tag, reaches the handler once and comes back exact", async () => {
    const payload = Uint8Array.from(randomBytes(1000));
    const input = join(dir, "block1.bin");
    const output = join(dir, "block1.out");
    await writeFile(input, payload);
    const { stdout, stderr } = await coapClient([
      "-v",
      "7", // 7 (debug) logs every block; 6 only the first request and the last response
      "-m",
      "post",
      "-b",
      "16",
      "-f",
      input,
      "-o",
      output,
      `${base}/echo`,
    ]);
    const lines = pdus(stdout + stderr);
    // At -v 7 libcoap also logs the whole body once before cutting it; the blocks carry Request-Tag.
    const posts = lines.filter((l) => /t:CON c:POST .*Request-Tag:/.test(l));
    expect(posts).toHaveLength(63); // ⌈1000 / 16⌉
    posts.forEach((l, i) => {
      expect(l).toContain(`Block1:${i}/${i < 62 ? "M" : "_"}/16`);
    });
    // RFC 9175 §3: every block carries the same Request-Tag …
    const tags = new Set(posts.map((l) => /Request-Tag:(0x[0-9a-f]+)/.exec(l)?.[1]));
    expect(tags.size).toBe(1);
    expect([...tags][0]).toBeDefined();
    // … and a different token: the server must not reassemble by token.
    expect(new Set(posts.map((l) => /\{([0-9a-f]*)\}/.exec(l)?.[1])).size).toBe(63);
    expect(lines.filter((l) => /t:ACK c:2\.31 /.test(l))).toHaveLength(62);
    expect(lines.filter((l) => /t:ACK c:2\.04 .*Block1:62\/_\/16/.test(l))).toHaveLength(1);
    expect(Buffer.compare(await readFile(output), payload)).toBe(0);
    expect(served).toHaveLength(1);
    expect(served[0]).toMatchObject({ path: "echo", code: Code.POST });
    expect(Buffer.compare(Buffer.from(served[0]!.payload), Buffer.from(payload))).toBe(0);
  });

  it.each([
    ["-b 16", ["-b", "16"], 16, 188],
    ["default block size", [] as string[], 1024, 3],
  ])(
    "Block2 (%s): GET /big returns the 3,000-byte representation exactly",
    async (_, flags, size, blocks) => {
      const output = join(dir, `big-${size}.out`);
      const { stdout, stderr } = await coapClient([
        "-v",
        "6",
        "-m",
        "get",
        ...flags,
        "-o",
        output,
        `${base}/big`,
      ]);
      expect(Buffer.compare(await readFile(output), BIG_BODY)).toBe(0);
      const responses = pdus(stdout + stderr).filter((l) => /t:ACK c:2\.05 .*Block2:/.test(l));
      expect(responses).toHaveLength(blocks);
      expect(responses[0]).toContain(`Block2:0/M/${size}`);
      expect(responses[0]).toContain("Size2:3000");
      expect(responses[blocks - 1]).toContain(`Block2:${blocks - 1}/_/${size}`);
      // Only block 0 reaches the handler: the later blocks come from the copy kept by the endpoint.
      expect(served.filter((s) => s.path === "big")).toHaveLength(1);
    },
  );

  it("Observe (-s 3): libcoap prints the registration response and three notifications in order", async () => {
    const run = coapClient(["-s", "3", "-m", "get", `${base}/obs`]);
    await observers("obs", 1);
    for (const text of ["<n1>", "<n2>", "<n3>"]) {
      expect(change(text)).toBe(1);
      await pause(100);
    }
    const { stdout } = await run;
    expect(stdout).toBe("initial<n1><n2><n3>\n");
    expect(served.filter((s) => s.path === "obs" && s.observe === 0)).toHaveLength(1);
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
    return nodeCoap({ port: server.transport.port, method, pathname, confirmable, agent, payload });
  }

  it("CON POST /echo: 2.04 with the payload", async () => {
    const payload = Buffer.from("from node-coap, confirmable");
    const res = await send("POST", "/echo", true, payload);
    expect(res.code).toBe("2.04");
    expect(res.payload.toString()).toBe(payload.toString());
    expect(served).toHaveLength(1);
    expect(served[0]).toMatchObject({ path: "echo", code: Code.POST, confirmable: true });
  });

  it("Block1 when asked (Block1 szx 0 = 16-byte blocks): a 1,000-byte upload reaches the handler once and comes back exact", async () => {
    // node-coap keeps one token for every block and sends no Request-Tag: the endpoint's
    // (peer, method, path, Request-Tag) key still holds the blocks together.
    const payload = randomBytes(1000);
    const res = await nodeCoap({
      port: server.transport.port,
      method: "POST",
      pathname: "/echo",
      agent,
      payload,
      block1Szx: 0, // 16-byte blocks
    });
    expect(res.code).toBe("2.04");
    expect(Buffer.compare(res.payload, payload)).toBe(0);
    expect(served).toHaveLength(1);
    expect(Buffer.compare(Buffer.from(served[0]!.payload), payload)).toBe(0);
  });

  it("Observe (observe: true): the registration response, then three notifications in order; close(true) deregisters", async () => {
    // A separate Agent on a socket of our own. node-coap 1.5.0's close(true) emits "close" before
    // "deregister": on an Agent that owns its socket and has no other request, "close" closes the
    // socket, and the deregistering GET then throws "Not running" (uncaught, and the Agent is dead).
    // With a caller's socket the Agent never closes it, and the deregistration goes out.
    const socket = createSocket("udp4");
    await new Promise<void>((r) => socket.bind(0, "127.0.0.1", () => r()));
    const observeAgent = new Agent({ type: "udp4", socket });
    onTestFinished(async () => {
      observeAgent.close();
      await new Promise<void>((r) => socket.close(() => r()));
    });
    const seen: string[] = [];
    const stream = await nodeCoap({
      port: server.transport.port,
      method: "GET",
      pathname: "/obs",
      observe: true,
      agent: observeAgent,
    });
    stream.on("data", (chunk: Buffer) => seen.push(chunk.toString()));
    await observers("obs", 1);
    for (const text of ["<n1>", "<n2>", "<n3>"]) {
      expect(change(text)).toBe(1);
      await pause(50);
    }
    const until = Date.now() + 2_000;
    while (seen.length < 4 && Date.now() < until) await pause(5);
    expect(seen).toEqual(["initial", "<n1>", "<n2>", "<n3>"]);
    expect(stream.headers.Observe).toBeDefined();
    // close(true) deregisters eagerly: GET with Observe=1 and the same token (RFC 7641 §3.6).
    (stream as unknown as { close(eagerDeregister?: boolean): void }).close(true);
    const gone = Date.now() + 2_000;
    while (server.endpoint.observers.count("obs") > 0 && Date.now() < gone) await pause(5);
    expect(server.endpoint.observers.count("obs")).toBe(0);
    const deregistered = served.filter((x) => x.path === "obs" && x.observe === 1);
    expect(deregistered).toHaveLength(1);
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
