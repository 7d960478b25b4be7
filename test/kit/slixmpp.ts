/**
 * slixmpp (Python, Debian python3-slixmpp) as an independent XMPP client: test/kit/slixmpp_peer.py run
 * with /usr/bin/python3 (the python3 first on PATH may lack slixmpp, docs/INTEROP.md), driven by JSON lines on
 * its stdin and reporting every received stanza as a JSON line on its stdout. The protocol is described
 * at the top of slixmpp_peer.py.
 */
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { Inbox } from "./xmpp-user.js";

const SCRIPT = fileURLToPath(new URL("./slixmpp_peer.py", import.meta.url));
const PYTHON = "/usr/bin/python3";

/** One stanza slixmpp received, as the peer reports it. */
export interface SlixStanza {
  readonly kind: "message" | "presence" | "iq";
  readonly from: string;
  readonly to: string;
  /** The `type` attribute, as slixmpp reads it (its defaults apply, e.g. "normal" for a message). */
  readonly type: string;
  readonly id: string;
  /** The message body ("" for presence and iq). */
  readonly body: string;
  /** The raw stanza XML as slixmpp serialises it. */
  readonly xml: string;
}

export type SlixOp =
  | { op: "message"; to: string; body: string; type?: string; id?: string }
  | { op: "presence"; to?: string; type?: string; show?: string; status?: string }
  | { op: "subscribe"; to: string }
  | { op: "iq_get"; to: string; xml: string; id?: string }
  | { op: "raw"; xml: string }
  | { op: "readout"; to: string; fields?: string[]; flags?: Record<string, string>; nodes?: string[] }
  | {
      op: "control";
      to: string;
      values: Array<[name: string, type: string, value: string]>;
      nodes?: string[];
    }
  | { op: "control_message"; to: string; values: Array<[name: string, type: string, value: string]> }
  | { op: "pubsub_subscribe"; service: string; node: string }
  | { op: "quit" };

/** A plugin event the peer reported (`readout`, `control`, `subscribed`, `pubsub_item`). */
export interface SlixEvent {
  readonly event: "readout" | "control" | "subscribed" | "pubsub_item";
  readonly [field: string]: unknown;
}

export interface SlixOptions {
  /** Loopback address and c2s port of the server (e.g. `Prosody.address`, `Prosody.c2sPort`). */
  readonly host: string;
  readonly port: number;
  /** Bare or full JID; with a resource, slixmpp asks for it at binding. */
  readonly jid: string;
  readonly password: string;
  /** Send initial presence after session start (RFC 6121 §4.2). Default true. */
  readonly presence?: boolean;
  /** How long to wait for `ready`. Default 10 s. */
  readonly readyTimeoutMs?: number;
}

export interface SlixPeer {
  /** The full JID the server bound. */
  readonly jid: string;
  readonly pid: number;
  /** Every stanza received (taken by `waitFor` or not). */
  readonly received: readonly SlixStanza[];
  /** Every `{"event":"error"}` message and every stderr line. */
  readonly errors: readonly string[];
  send(op: SlixOp): void;
  /** The first received stanza, not taken yet, that matches; see `Inbox`. Default timeout 5 s. */
  waitFor(predicate: (stanza: SlixStanza) => boolean, timeoutMs?: number): Promise<SlixStanza>;
  /** Every plugin event reported (taken by `waitForEvent` or not). */
  readonly events: readonly SlixEvent[];
  /** The first plugin event, not taken yet, that matches. Default timeout 5 s. */
  waitForEvent(predicate: (event: SlixEvent) => boolean, timeoutMs?: number): Promise<SlixEvent>;
  /** Sends `quit`, waits for the process to exit (kills it after `timeoutMs`, default 5 s). */
  stop(timeoutMs?: number): Promise<void>;
}

export async function startSlixmpp(options: SlixOptions): Promise<SlixPeer> {
  const config = {
    jid: options.jid,
    password: options.password,
    host: options.host,
    port: options.port,
    presence: options.presence ?? true,
  };
  const child: ChildProcessWithoutNullStreams = spawn(PYTHON, [SCRIPT], {
    env: { ...process.env, CXMPP_SLIXMPP: JSON.stringify(config), PYTHONUNBUFFERED: "1" },
    stdio: ["pipe", "pipe", "pipe"],
  });
  const inbox = new Inbox<SlixStanza>((s) => s.xml);
  const events = new Inbox<SlixEvent>((e) => JSON.stringify(e));
  const errors: string[] = [];
  let exitCode: number | null | undefined;
  const exited = new Promise<void>((resolve) => {
    child.once("exit", (code) => {
      exitCode = code;
      const gone = new Error(`slixmpp ${options.jid} exited (${code}); errors: ${errors.join("; ")}`);
      inbox.fail(gone);
      events.fail(gone);
      resolve();
    });
  });
  let onReady: ((jid: string) => void) | undefined;
  const ready = new Promise<string>((resolve) => {
    onReady = resolve;
  });

  let partial = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    const lines = (partial + chunk).split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) {
      if (!line.trim()) continue;
      let report: Record<string, unknown>;
      try {
        report = JSON.parse(line) as Record<string, unknown>;
      } catch {
        errors.push(`unparsable line from slixmpp_peer.py: ${line}`);
        continue;
      }
      if (report.event === "ready") onReady?.(String(report.jid));
      else if (report.event === "error") errors.push(String(report.message));
      else if (typeof report.event === "string" && report.event !== "disconnected")
        events.push(report as unknown as SlixEvent);
      else if (typeof report.kind === "string") inbox.push(report as unknown as SlixStanza);
    }
  });
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    for (const line of chunk.split("\n")) if (line.trim()) errors.push(line);
  });
  // EPIPE if the peer died between an op and its write: the exit handler reports that already.
  child.stdin.on("error", () => undefined);

  const kill = async (timeoutMs: number): Promise<void> => {
    if (exitCode !== undefined) return;
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    await exited;
    clearTimeout(timer);
  };

  const readyTimeoutMs = options.readyTimeoutMs ?? 10_000;
  let timer: NodeJS.Timeout | undefined;
  const jid = await Promise.race([
    ready,
    exited.then(() => {
      throw new Error(`slixmpp ${options.jid} exited before session start: ${errors.join("\n")}`);
    }),
    new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(new Error(`slixmpp ${options.jid} not ready in ${readyTimeoutMs} ms: ${errors.join("\n")}`)),
        readyTimeoutMs,
      );
    }),
  ]).catch(async (error: unknown) => {
    child.kill("SIGKILL");
    await kill(1_000);
    throw error;
  });
  clearTimeout(timer);

  return {
    jid,
    pid: child.pid ?? -1,
    received: inbox.received,
    errors,
    send: (op) => {
      child.stdin.write(`${JSON.stringify(op)}\n`);
    },
    waitFor: (predicate, timeoutMs) => inbox.waitFor(predicate, timeoutMs, `stanza for slixmpp ${jid}`),
    events: events.received,
    waitForEvent: (predicate, timeoutMs) => events.waitFor(predicate, timeoutMs, `event at slixmpp ${jid}`),
    stop: async (timeoutMs = 5_000) => {
      if (exitCode === undefined && child.stdin.writable)
        child.stdin.write(`${JSON.stringify({ op: "quit" })}\n`);
      await kill(timeoutMs);
    },
  };
}
