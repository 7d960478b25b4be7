/**
 * Helpers for the federation end-to-end tests (test/interop/federation.test.ts): the `cxmpp` command
 * line as child processes (provision, a federating gateway, `node run`, `node send`), an in-process
 * node for load, a TCP proxy that can cut the gateway's XEP-0114 link, and waits over growing lists.
 *
 * Every child started here is remembered: `killAllChildren()` (afterAll) and a process exit hook leave
 * none behind.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach } from "vitest";
import { cleanEnv, freeUdpPort, killOnExit, PDEATHSIG_EXEC, PYTHON } from "../../bench/child-process.js";
import { attr, type XElement } from "../../codec/index.js";
import { connectDeviceNode } from "../../gateway/cli/node-command.js";
import { parseXml } from "../../gateway/xml/stanza-xml.js";
import type { NodeClient } from "../../src/core/index.js";
import type { UdpEndpoint } from "../../src/node/index.js";
import { sleep, until } from "./wait.js";

export const CLI = join(import.meta.dirname, "..", "..", "bin", "cxmpp.js");

const children = new Set<ChildProcess>();
/** Remembered for `killAllChildren`; the gateway's helper kills it if the test process exits first. */
function track(child: ChildProcess): void {
  children.add(child);
  child.once("exit", () => children.delete(child));
  killOnExit(child);
}

/** SIGKILLs every child still running and waits for them to exit. */
export async function killAllChildren(): Promise<void> {
  await Promise.all(
    [...children].map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once("exit", () => resolve());
          child.kill("SIGKILL");
        }),
    ),
  );
}

export { cleanEnv, freeUdpPort, sleep, until };

/**
 * The index of the first item of `list` at or after `from` that matches, waiting for it to arrive.
 * Unlike `Inbox.waitFor` this gives the position, so a test can assert what came after what.
 */
export async function waitIndex<T>(
  list: readonly T[],
  predicate: (item: T) => boolean,
  options: { from?: number; timeoutMs?: number; what?: string; show?: (item: T) => string } = {},
): Promise<number> {
  const from = options.from ?? 0;
  const timeoutMs = options.timeoutMs ?? 5_000;
  const end = Date.now() + timeoutMs;
  let checked = from;
  for (;;) {
    for (; checked < list.length; checked++) if (predicate(list[checked]!)) return checked;
    if (Date.now() > end) {
      const show = options.show ?? String;
      const seen = list.slice(from).map(show).join("\n  ") || "(nothing)";
      throw new Error(
        `no ${options.what ?? "matching item"} within ${timeoutMs} ms; received since #${from}:\n  ${seen}`,
      );
    }
    await sleep(20);
  }
}

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `cxmpp ARGS…` to completion. */
export function runCli(
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  cwd?: string,
  timeoutMs = 60_000,
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env, cwd, stdio: ["ignore", "pipe", "pipe"] });
    track(child);
    let stdout = "";
    let stderr = "";
    child.stdout!.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(
        new Error(`cxmpp ${args.join(" ")} did not finish within ${timeoutMs} ms\n${stdout}\n${stderr}`),
      );
    }, timeoutMs);
    child.once("error", reject);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** One JSON line of a cxmpp log (consoleLogger), parsed. */
export interface LogRecord {
  readonly event: string;
  readonly level: string;
  readonly [field: string]: unknown;
}

export interface CliProcess {
  readonly child: ChildProcess;
  readonly args: readonly string[];
  stdout(): string;
  stderr(): string;
  /** Complete stdout lines so far. */
  lines(): string[];
  /** JSON log records from stdout and stderr so far, optionally only those of one event. */
  log(event?: string): LogRecord[];
  /** Resolves with the exit code (or -1 for a signal) when the process exits. */
  readonly exited: Promise<number>;
  readonly running: boolean;
  /** Waits until `what(this)` holds; rejects early if the process exits, with its output. */
  waitUntil(what: () => boolean, timeoutMs: number, describe: string): Promise<void>;
  /** SIGTERM, SIGKILL after `timeoutMs`; resolves with the exit code. */
  stop(timeoutMs?: number): Promise<number>;
}

function records(text: string): LogRecord[] {
  return text
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .flatMap((line) => {
      try {
        const r = JSON.parse(line) as LogRecord;
        return typeof r.event === "string" ? [r] : [];
      } catch {
        return [];
      }
    });
}

/**
 * Starts a long-running `cxmpp ARGS…`, through PDEATHSIG_EXEC: if the test worker dies without
 * afterAll, a gateway or `node run` child does not live on.
 */
export function startCli(args: readonly string[], env: NodeJS.ProcessEnv, cwd?: string): CliProcess {
  const child = spawn(PYTHON, ["-c", PDEATHSIG_EXEC, process.execPath, CLI, ...args], {
    env,
    cwd,
    stdio: ["ignore", "pipe", "pipe"],
  });
  track(child);
  let out = "";
  let err = "";
  let done = false;
  child.stdout!.setEncoding("utf8").on("data", (d: string) => (out += d));
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (err += d));
  const exited = new Promise<number>((resolve) => {
    child.once("exit", (code, signal) => {
      done = true;
      resolve(code ?? (signal ? -1 : 0));
    });
  });
  const self: CliProcess = {
    child,
    args,
    stdout: () => out,
    stderr: () => err,
    lines: () => out.split("\n").slice(0, -1),
    log: (event) => records(`${out}\n${err}`).filter((r) => event === undefined || r.event === event),
    exited,
    get running() {
      return !done;
    },
    async waitUntil(what, timeoutMs, describe) {
      const end = Date.now() + timeoutMs;
      while (!what()) {
        if (done)
          throw new Error(
            `cxmpp ${args.join(" ")} exited before ${describe}\nstdout: ${out}\nstderr: ${err}`,
          );
        if (Date.now() > end)
          throw new Error(
            `cxmpp ${args[0]}: no ${describe} within ${timeoutMs} ms\nstdout: ${out}\nstderr: ${err}`,
          );
        await sleep(20);
      }
    },
    async stop(timeoutMs = 10_000) {
      if (!done) child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
  return self;
}

/** Parses one line `cxmpp node run` printed (one stanza). */
export function parseStanzaLine(line: string): XElement {
  return parseXml(line);
}

/** The first child element named `name` in namespace `ns` (any namespace when omitted). */
export function child(element: XElement, name: string, ns?: string): XElement | undefined {
  for (const c of element.children)
    if (typeof c !== "string" && c.name === name && (ns === undefined || c.ns === ns)) return c;
  return undefined;
}

export function textOf(element: XElement | undefined): string | undefined {
  if (!element) return undefined;
  return element.children.filter((c): c is string => typeof c === "string").join("");
}

export { attr };

export interface InProcessNode {
  readonly client: NodeClient;
  readonly udp: UdpEndpoint;
  /** Stanzas received from the gateway, in order. */
  readonly received: XElement[];
  close(): Promise<void>;
}

/** A node in this process (NodeClient on a real UDP socket), connected with the device file's key. */
export async function connectInProcessNode(deviceFile: string, wake?: number): Promise<InProcessNode> {
  const received: XElement[] = [];
  const { client, udp } = await connectDeviceNode(deviceFile, {
    ...(wake === undefined ? {} : { wake }),
    onStanza: (s) => received.push(s),
  });
  return {
    client,
    udp,
    received,
    close: async () => {
      client.close();
      await udp.close();
    },
  };
}

export interface TcpProxy {
  readonly host: string;
  readonly port: number;
  /** Connections accepted so far (the gateway reconnecting shows up here). */
  readonly accepted: number;
  /** Connections currently open. */
  readonly open: number;
  /**
   * Cuts the link: destroys every open connection on both sides, refuses new ones for `downMs`
   * (the port is closed: connecting gets ECONNREFUSED), then listens again on the same port.
   */
  cut(downMs: number): Promise<void>;
  /**
   * Freezes the link: open connections stay open but no byte passes either way any more (a peer that
   * vanished without closing, e.g. a power cut), until close().
   */
  freeze(): void;
  close(): Promise<void>;
}

/** A TCP proxy on `host` (a free port) to `target`: bytes pass unchanged both ways until cut. */
export async function startTcpProxy(
  target: { host: string; port: number },
  host = "127.0.0.1",
): Promise<TcpProxy> {
  const pairs = new Set<[Socket, Socket]>();
  let accepted = 0;
  let closed = false;
  let frozen = false;

  const onConnection = (downstream: Socket) => {
    accepted++;
    const upstream = createConnection({ host: target.host, port: target.port });
    const pair: [Socket, Socket] = [downstream, upstream];
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      downstream.destroy();
      upstream.destroy();
    };
    downstream.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
    if (frozen) return; // accepted, then silence
    downstream.pipe(upstream);
    upstream.pipe(downstream);
  };

  const listen = (port: number): Promise<Server> =>
    new Promise((resolve, reject) => {
      const server = createServer(onConnection);
      server.once("error", reject);
      server.listen({ host, port }, () => resolve(server));
    });

  let server = await listen(0);
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;

  const closeServer = (s: Server) => new Promise<void>((resolve) => s.close(() => resolve()));
  const destroyAll = () => {
    for (const [a, b] of pairs) {
      a.destroy();
      b.destroy();
    }
    pairs.clear();
  };

  return {
    host,
    port,
    get accepted() {
      return accepted;
    },
    get open() {
      return pairs.size;
    },
    async cut(downMs) {
      const closing = closeServer(server); // stop accepting first, so nothing slips in between
      destroyAll();
      await closing;
      await sleep(downMs);
      if (!closed) server = await listen(port);
    },
    freeze() {
      frozen = true;
      for (const [a, b] of pairs) {
        a.unpipe(b);
        b.unpipe(a);
        a.pause();
        b.pause();
      }
    },
    async close() {
      closed = true;
      destroyAll();
      await closeServer(server);
    },
  };
}

/**
 * Keeps the output of a test file's processes when one of its tests failed, for diagnosis: call it at
 * the top level of the file (it registers an afterEach that notes failures), then `save(files)` in
 * afterAll, before stopping anything. The files go to `$TMPDIR/cxmpp-NAME-logs` when a test failed or
 * `force` holds (a set-up that never finished), and one line says where.
 */
export function failureLogs(name: string): {
  save(files: Readonly<Record<string, string>>, force?: boolean): Promise<void>;
} {
  const dir = join(tmpdir(), `cxmpp-${name}-logs`);
  let failed = false;
  afterEach((context) => {
    if (context.task.result?.state === "fail") failed = true;
  });
  return {
    async save(files, force = false) {
      if (!failed && !force) return;
      await mkdir(dir, { recursive: true });
      for (const [file, text] of Object.entries(files)) await writeFile(join(dir, file), text);
      console.log(`${name}: logs of the failed run in ${dir}`);
    },
  };
}
