/**
 * The tiny-node bundle inside a real embedded engine: QuickJS (quickjs-emscripten, the C engine compiled
 * to WebAssembly and driven from Node), with no polyfills, bridged to Node for what a device's glue
 * gives: a UDP socket towards the gateway (src/node UdpTransport), a monotonic clock
 * (performance.now), ONE timer (one Node setTimeout that calls back into QuickJS) and random bytes
 * (node:crypto). Bytes cross the boundary as ArrayBuffers.
 *
 * QuickJS runs its promise jobs only when the host asks: after every call into the engine (a call from
 * the test, a datagram, the timer) the kit runs the pending jobs, then samples the heap.
 *
 * The heap is QuickJS's own accounting (JS_ComputeMemoryUsage's memory_used_size: objects, shapes,
 * properties, atoms, strings, bytecode and the source text QuickJS keeps per function, array and
 * ArrayBuffer storage, 8 bytes of malloc overhead a block). Its malloc_size cannot be used here: built
 * for WebAssembly, QuickJS has no malloc_usable_size and counts 8 bytes a block (js_def_malloc), so
 * JS_SetMemoryLimit, which compares against malloc_size, does not bind either. The kit sets it anyway
 * and enforces the limit itself on memory_used_size: sampled after every call into the engine and,
 * through QuickJS's interrupt handler, every ~10,000 bytecode branches and calls inside a call; over the
 * limit, the running code is interrupted (an uncatchable InternalError, as a real allocator failing)
 * and the next call from the test throws.
 */
import { randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import {
  getQuickJS,
  type QuickJSContext,
  type QuickJSHandle,
  type QuickJSRuntime,
  type QuickJSWASMModule,
} from "quickjs-emscripten";
import type { XElement } from "../../codec/index.js";
import type { PeerAddress } from "../../src/core/index.js";
import { UdpTransport } from "../../src/node/index.js";

/** JS_ComputeMemoryUsage as quickjs-emscripten reports it (no malloc_size: see above). */
export interface QuickJsMemory {
  readonly memory_used_size: number;
  readonly memory_used_count: number;
  readonly malloc_count: number;
  readonly atom_count: number;
  readonly atom_size: number;
  readonly str_count: number;
  readonly str_size: number;
  readonly obj_count: number;
  readonly obj_size: number;
  readonly prop_count: number;
  readonly prop_size: number;
  readonly shape_count: number;
  readonly shape_size: number;
  readonly js_func_count: number;
  readonly js_func_size: number;
  readonly js_func_code_size: number;
  readonly js_func_pc2line_count: number;
  readonly js_func_pc2line_size: number;
  readonly c_func_count: number;
  readonly array_count: number;
  readonly fast_array_count: number;
  readonly fast_array_elements: number;
  readonly binary_object_count: number;
  readonly binary_object_size: number;
}

/** A value passed into QuickJS: Uint8Array goes as an ArrayBuffer (a copy). */
export type QuickJsArg = string | number | boolean | undefined | Uint8Array;

export interface QuickJsEngineOptions {
  /** Heap limit in bytes of memory_used_size; absent: none. */
  readonly memoryLimit?: number;
  /**
   * What the compiler keeps of each function, as a device build chooses (QuickJS's `JS_SetStripInfo`,
   * or `qjsc -s` / `-ss` when the program is compiled to bytecode ahead of time): "none" keeps every
   * function's source text (for Function.prototype.toString) and its debug info, as quickjs-emscripten
   * does; "source" drops the source text; "debug" drops the line tables and variable names too.
   * Default "none".
   */
  readonly strip?: "none" | "source" | "debug";
}

/** QuickJS 2025-09-13's JS_STRIP_SOURCE and JS_STRIP_DEBUG (quickjs.h). */
const STRIP_FLAGS = { none: 0, source: 1, debug: 2 } as const;

/**
 * `JS_SetStripInfo(rt, flags)` for a quickjs-emscripten runtime, which does not export it. The flag is
 * the byte `strip_flags` of the C `JSRuntime` (quickjs.c), right before `shape_hash_bits`, whose
 * neighbour `shape_hash_size` is 2 to that power, after four null SharedArrayBuffer hooks: found by
 * that pattern in the runtime's memory (exactly one match, or this throws), then checked: a function
 * compiled next must have lost its source text (its toString is the "[native code]" form).
 */
function setStripInfo(quickjs: QuickJSWASMModule, context: QuickJSContext, flags: number): void {
  const pointer = (context.runtime as unknown as { rt: { value: number } }).rt.value;
  const memory = new DataView(quickjs.getWasmMemory().buffer);
  const at: number[] = [];
  for (let o = 24; o < 1024; o += 4) {
    const bits = memory.getInt32(pointer + o, true);
    if (bits < 4 || bits > 24 || memory.getInt32(pointer + o + 4, true) !== 1 << bits) continue;
    if ([4, 8, 12, 16, 20].every((k) => memory.getUint32(pointer + o - k, true) === 0)) at.push(o - 4);
  }
  if (at.length !== 1)
    throw new Error(`setStripInfo: JSRuntime.strip_flags not found (${at.length} candidates)`);
  memory.setUint8(pointer + at[0]!, flags);
  const shown = String(
    context.dump(context.unwrapResult(context.evalCode("(function probe(a) { return a; }).toString()"))),
  );
  if (shown.includes("return a")) throw new Error(`setStripInfo: the flag did not take (toString: ${shown})`);
}

export class QuickJsMemoryLimitError extends Error {
  constructor(
    readonly used: number,
    readonly limit: number,
    readonly where: string,
  ) {
    super(`QuickJS heap ${used} B is over its limit ${limit} B (${where})`);
  }
}

/** One QuickJS runtime and its one context, with heap sampling and an enforced limit. */
export class QuickJsEngine {
  /**
   * A fresh runtime. Created as the runtime's own context (QuickJS.newContext), so that
   * computeMemoryUsage() reports through it instead of creating a second context in the heap it measures.
   */
  static async start(options: QuickJsEngineOptions = {}): Promise<QuickJsEngine> {
    const quickjs = await getQuickJS();
    const context = quickjs.newContext();
    const strip = STRIP_FLAGS[options.strip ?? "none"];
    if (strip !== 0) setStripInfo(quickjs, context, strip);
    return new QuickJsEngine(context, options);
  }

  readonly runtime: QuickJSRuntime;
  /** Largest memory_used_size seen after a call into the engine. */
  peak = 0;
  /** Largest memory_used_size seen inside a call (interrupt handler) or after one. */
  peakWithin = 0;
  /** Where peakWithin was seen ("inside device_send", "after __receive"...). */
  peakAt = "";
  /** Heap samples taken (after calls, and inside calls). */
  samples = 0;
  /** The first time the heap went over the limit; every later call from the test throws it. */
  overLimit: QuickJsMemoryLimitError | undefined;
  /** Exceptions from calls the test did not make itself (datagrams, the timer, pending jobs). */
  readonly errors: string[] = [];
  /** Cycle collections forced by collect(). */
  collections = 0;
  /** Set while collect() or unsampled() runs: no samples, no limit. */
  private collecting = false;
  /** The call into QuickJS under way. */
  private current = "";

  private constructor(
    readonly context: QuickJSContext,
    readonly options: QuickJsEngineOptions,
  ) {
    this.runtime = context.runtime;
    if (options.memoryLimit !== undefined) {
      this.runtime.setMemoryLimit(options.memoryLimit);
      this.runtime.setInterruptHandler(() => {
        if (this.collecting) return false;
        const used = this.sample(`inside ${this.current}`);
        return used > options.memoryLimit!;
      });
    }
  }

  /** JS_ComputeMemoryUsage now. */
  memory(): QuickJsMemory {
    const h = this.runtime.computeMemoryUsage();
    try {
      return this.context.dump(h) as QuickJsMemory;
    } finally {
      h.dispose();
    }
  }

  /** QuickJS's own report (JS_DumpMemoryUsage; quickjs-emscripten keeps its first 1,024 characters). */
  dumpMemory(): string {
    return this.runtime.dumpMemoryUsage();
  }

  /**
   * Runs QuickJS's cycle collector now and returns the heap after it. quickjs-emscripten does not expose
   * JS_RunGC, and QuickJS triggers it when malloc_size passes a threshold (256 KB at first, then 1.5× what
   * survived the last collection), a malloc_size that here counts 8 bytes a block: left alone, the first
   * collection would wait for ~32,000 blocks, several MB of heap, and cyclic garbage (promise chains)
   * would count as heap until then. So the kit makes cyclic garbage until a WeakRef to a cyclic canary
   * is cleared, i.e. until QuickJS's own trigger has run the collector. After the first collection the
   * threshold is 1.5× the surviving blocks, and QuickJS collects by itself as on a device (in blocks, not
   * bytes). Not counted in the peaks, not limited.
   */
  collect(): number {
    if (this.overLimit) throw this.overLimit;
    this.collecting = true;
    try {
      const made = this.context.unwrapResult(
        this.context.evalCode(
          "(() => { let c = {}; c.c = c; const w = new WeakRef(c); c = undefined; let i = 0;" +
            " for (; w.deref() !== undefined && i < 5e6; i++) { const o = {}; o.o = o; } return i; })()",
          "collect.js",
        ),
      );
      const n = this.context.getNumber(made);
      made.dispose();
      if (n >= 5e6) throw new Error("QuickJS did not collect cycles");
      this.collections++;
    } finally {
      this.collecting = false;
    }
    return this.memory().memory_used_size;
  }

  /** Runs `body` without heap samples inside calls (timings: a sample costs a walk of the heap). */
  unsampled<T>(body: () => T): T {
    const was = this.collecting;
    this.collecting = true;
    try {
      return body();
    } finally {
      this.collecting = was;
    }
  }

  /** Forgets the peaks (to measure a phase from here). */
  resetPeak(): void {
    this.peak = 0;
    this.peakWithin = 0;
    this.peakAt = "";
  }

  /**
   * Evaluates an ES module (the bundle as built, no conversion) and makes its exports the global
   * `name`. Imports are not resolved: the bundle has none.
   */
  loadModule(name: string, filename: string, code: string): void {
    this.enter(() => {
      const exports = this.context.unwrapResult(this.context.evalCode(code, filename, { type: "module" }));
      this.context.setProp(this.context.global, name, exports);
      exports.dispose();
    }, `loading ${filename}`);
  }

  /** Evaluates a script (glue) in the global scope. */
  evaluate(code: string, filename: string): void {
    this.enter(() => {
      this.context.unwrapResult(this.context.evalCode(code, filename)).dispose();
    }, filename);
  }

  /** Makes a Node function callable from QuickJS as `globalThis[object][name]`. */
  expose(
    object: string,
    functions: Record<string, (...args: QuickJSHandle[]) => QuickJSHandle | undefined>,
  ): void {
    const o = this.context.newObject();
    for (const [name, fn] of Object.entries(functions)) {
      const f = this.context.newFunction(name, fn);
      this.context.setProp(o, name, f);
      f.dispose();
    }
    this.context.setProp(this.context.global, object, o);
    o.dispose();
  }

  /** Calls `globalThis[fn]`, returns its result dumped to Node (JSON-like values). */
  call(fn: string, ...args: QuickJsArg[]): unknown {
    return this.enter(() => {
      const h = this.invoke(fn, args);
      try {
        return this.context.dump(h);
      } finally {
        h.dispose();
      }
    }, fn);
  }

  /** Calls `globalThis[fn]`, whose result is a promise; resolves or rejects as it settles inside QuickJS. */
  async callAsync(fn: string, ...args: QuickJsArg[]): Promise<unknown> {
    const settled = this.enter(() => {
      const promise = this.invoke(fn, args);
      try {
        return this.context.resolvePromise(promise);
      } finally {
        promise.dispose();
      }
    }, fn);
    const result = await settled;
    if (result.error) {
      const error = this.context.dump(result.error) as unknown;
      result.error.dispose();
      throw new Error(`${fn} rejected inside QuickJS: ${describeError(error)}`);
    }
    const value = this.context.dump(result.value) as unknown;
    result.value.dispose();
    this.check();
    return value;
  }

  /**
   * A call the engine's host makes on its own (a datagram arrived, the timer fired): exceptions and an
   * exceeded limit are recorded in `errors`, not thrown into a socket callback.
   */
  callback(fn: string, ...args: QuickJsArg[]): void {
    if (this.overLimit) return;
    try {
      this.call(fn, ...args);
    } catch (error) {
      this.errors.push(`${fn}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  dispose(): void {
    this.runtime.removeInterruptHandler();
    this.context.dispose();
  }

  private invoke(fn: string, args: readonly QuickJsArg[]): QuickJSHandle {
    const f = this.context.getProp(this.context.global, fn);
    const handles = args.map((a) => this.toHandle(a));
    try {
      return this.context.unwrapResult(this.context.callFunction(f, this.context.undefined, ...handles));
    } finally {
      for (const h of handles) h.dispose();
      f.dispose();
    }
  }

  private toHandle(a: QuickJsArg): QuickJSHandle {
    if (a === undefined) return this.context.undefined;
    if (typeof a === "string") return this.context.newString(a);
    if (typeof a === "number") return this.context.newNumber(a);
    if (typeof a === "boolean") return a ? this.context.true : this.context.false;
    return this.context.newArrayBuffer(a.slice().buffer);
  }

  /** Runs `body` (one call into QuickJS), then the pending jobs, then samples and checks the heap. */
  private enter<T>(body: () => T, where: string): T {
    if (this.overLimit) throw this.overLimit;
    this.current = where;
    let result: T;
    try {
      result = body();
    } catch (error) {
      this.afterCall(where);
      this.check();
      throw error;
    }
    this.afterCall(where);
    this.check();
    return result;
  }

  private afterCall(where: string): void {
    const jobs = this.runtime.executePendingJobs();
    if (jobs.error) {
      const error = jobs.error.context.dump(jobs.error) as unknown;
      jobs.error.dispose();
      this.errors.push(`a pending job after ${where}: ${describeError(error)}`);
    }
    const used = this.sample(`after ${where}`);
    if (used > this.peak) this.peak = used;
  }

  private sample(where: string): number {
    if (this.collecting) return 0;
    const used = this.memory().memory_used_size;
    this.samples++;
    if (used > this.peakWithin) {
      this.peakWithin = used;
      this.peakAt = where;
    }
    const limit = this.options.memoryLimit;
    if (limit !== undefined && used > limit && !this.overLimit)
      this.overLimit = new QuickJsMemoryLimitError(used, limit, where);
    return used;
  }

  private check(): void {
    if (this.overLimit) throw this.overLimit;
  }
}

function describeError(error: unknown): string {
  if (error && typeof error === "object") {
    const e = error as { name?: unknown; message?: unknown; stack?: unknown };
    return `${String(e.name ?? "Error")}: ${String(e.message ?? JSON.stringify(error))}${e.stack ? `\n${String(e.stack)}` : ""}`;
  }
  return String(error);
}

/**
 * The device side, evaluated inside QuickJS after the bundle: the host object the tiny node needs
 * (TinyHost) over the functions the kit exposes as `__host`, the node made from its device file, and
 * the few calls a sensor application makes (XEP-0323 readings built with el()). Plain ES2022: this is
 * the glue a device would carry.
 */
/**
 * The TinyHost inside QuickJS, over the bridge functions of \`globalThis.__host\` (as a device's C glue
 * registers them): declares \`h\`, \`host\` and the one pending timer callback \`fire\`.
 */
export const TINY_HOST_GLUE = `
  const h = globalThis.__host;
  let fire;
  const host = {
    send(d) {
      h.send(d.byteOffset === 0 && d.byteLength === d.buffer.byteLength ? d.buffer : d.slice().buffer);
    },
    now: () => h.now(),
    setTimer(ms, f) { fire = f; h.setTimer(ms); },
    clearTimer() { fire = undefined; h.clearTimer(); },
    random: (n) => new Uint8Array(h.random(n)),
    // No crypto nor DTLS of its own: the pure-JavaScript ones, when their bundles (cxmpp-crypto.mjs,
    // cxmpp-dtls.mjs) were loaded; or the host's own, as QuickJsTinyNodeOptions.hostOwn sets them (__hostOwn).
    crypto: globalThis.cxmppCrypto?.jsCrypto,
    dtls: globalThis.cxmppDtls?.jsDtls,
    ...globalThis.__hostOwn,
    log(level, event, fields) {
      if (level === "warn" || level === "error") h.log(level, event, JSON.stringify(fields ?? {}));
    },
  };
`;

const DEVICE_GLUE = `
(() => {
  const cx = globalThis.cxmpp;
${TINY_HOST_GLUE}  let node;
  const IOT = "urn:xmpp:iot:sensordata";
  // A XEP-0323 reading: <message><fields seqnr=n><node><timestamp><numeric .../></timestamp></node></fields></message>
  const reading = (to, n) =>
    cx.el("jabber:client", "message", { to },
      cx.el(IOT, "fields", { seqnr: String(n) },
        cx.el(IOT, "node", { nodeId: "n1" },
          cx.el(IOT, "timestamp", { value: new Date(Date.UTC(2026, 10, 27, 10, n % 60, 0)).toISOString().slice(0, 19) + "Z" },
            cx.el(IOT, "numeric", { name: "Temperature", momentary: "true", value: (20 + (n % 50) / 10).toFixed(1), unit: "°C" })))));
  globalThis.__fire = () => { const f = fire; fire = undefined; if (f) f(); };
  globalThis.__receive = (ab) => { node.receive(new Uint8Array(ab)); };
  globalThis.device = {
    create(file, ackTimeoutMs, wake) {
      const options = {};
      if (ackTimeoutMs !== undefined) options.ackTimeoutMs = ackTimeoutMs;
      if (wake !== undefined) options.wake = wake;
      node = cx.createTinyNode(host, cx.decodeDeviceFile(new Uint8Array(file)), options);
      node.onStanza((s) => h.stanza(JSON.stringify(s)));
    },
    async connect(tries) {
      for (let i = 1; ; i++) {
        try { return await node.connect(); } catch (e) { if (i >= tries) throw e; }
      }
    },
    reading,
    send: (to, n) => node.send(reading(to, n)),
    telemetry(to, n) { node.telemetry(reading(to, n)); },
    poll: () => node.poll(),
    pending: () => node.pending,
    jid: () => node.jid,
    close() { node.close(); },
  };
  // Flat entry points for the kit: it calls globals.
  for (const [k, v] of Object.entries(globalThis.device)) globalThis["device_" + k] = v;
})();
`;

export interface QuickJsTinyNodeOptions {
  /** The bundle's code (dist/tiny/cxmpp-node.mjs). */
  readonly bundle: string;
  /**
   * The crypto bundle's code (dist/tiny/cxmpp-crypto.mjs), loaded after the bundle as the global
   * `cxmppCrypto` (the host glue passes its jsCrypto as host.crypto) and counted in the heap as a
   * device without crypto of its own would hold it.
   */
  readonly crypto?: string;
  /**
   * The DTLS bundle's code (dist/tiny/cxmpp-dtls.mjs), loaded after the bundle as the global
   * `cxmppDtls` (the host glue passes its jsDtls as host.dtls), counted in the heap likewise.
   */
  readonly dtls?: string;
  /**
   * A host's own services instead: Node functions exposed to QuickJS before anything loads
   * (QuickJsEngine.expose), and a script evaluated before the device glue that sets
   * `globalThis.__hostOwn` to members of the host object (its own `dtls`, `crypto`).
   */
  readonly hostOwn?: {
    readonly expose: (engine: QuickJsEngine) => void;
    readonly glue: string;
  };
  /** Where the node's datagrams go (the gateway, or a relay in front of it). */
  readonly gateway: PeerAddress;
  /** The CBOR device file, decoded inside QuickJS. */
  readonly deviceFile: Uint8Array;
  readonly ackTimeoutMs?: number;
  readonly wake?: number;
  readonly memoryLimit?: number;
  /** QuickJsEngineOptions.strip. */
  readonly strip?: QuickJsEngineOptions["strip"];
  /**
   * The device side evaluated after the bundle (default: the glue above, over createTinyNode). Another
   * glue (a device program's, examples/tiny-sensor) defines at least `__fire()`, `__receive(buffer)` and
   * `device_create(file, ackTimeoutMs, wake)` over `__host`, and `device_*` for the calls it supports.
   */
  readonly glue?: string;
}

/** Heap figures of one node (memory_used_size, bytes). */
export interface HeapFigures {
  /** Empty runtime and context, before the bundle. */
  readonly empty: number;
  /** After the bundle's module evaluated, its garbage collected. */
  readonly load: number;
  /** Peak during the load (interrupt samples included). */
  readonly loadPeak: number;
}

/**
 * A tiny node running in QuickJS over a real UDP socket: the kit's `__host` functions, the device glue,
 * and the node created from its device file.
 */
export class QuickJsTinyNode {
  static async start(options: QuickJsTinyNodeOptions): Promise<QuickJsTinyNode> {
    const engine = await QuickJsEngine.start({
      ...(options.memoryLimit !== undefined ? { memoryLimit: options.memoryLimit } : {}),
      ...(options.strip !== undefined ? { strip: options.strip } : {}),
    });
    const transport = await UdpTransport.bind("127.0.0.1", 0);
    const node = new QuickJsTinyNode(engine, transport, options.gateway);
    try {
      node.loadFigures = node.load(options);
    } catch (error) {
      const report =
        `heap (memory_used_size): empty ${node.emptyHeap} B, now ${engine.memory().memory_used_size} B, ` +
        `peak ${engine.peakWithin} B\n${engine.dumpMemory()}`;
      await node.close();
      throw new Error(`${error instanceof Error ? error.message : String(error)}\n${report}`, {
        cause: error,
      });
    }
    return node;
  }

  /** Downlink stanzas, as the node handed them to its application. */
  readonly inbox: XElement[] = [];
  /** warn and error events the node logged. */
  readonly logs: string[] = [];
  /** Datagrams each way through the bridge. */
  readonly datagrams = { out: 0, in: 0, bytesOut: 0, bytesIn: 0 };
  loadFigures: HeapFigures | undefined;
  private emptyHeap = 0;
  private timer: NodeJS.Timeout | undefined;
  private held: Uint8Array[] | undefined;
  private closed = false;

  private constructor(
    readonly engine: QuickJsEngine,
    readonly transport: UdpTransport,
    readonly gateway: PeerAddress,
  ) {
    const c = engine.context;
    engine.expose("__host", {
      send: (d) => {
        const bytes = c.getArrayBuffer(d);
        try {
          const copy = Uint8Array.from(bytes.value);
          this.datagrams.out++;
          this.datagrams.bytesOut += copy.length;
          transport.send(copy, gateway);
        } finally {
          bytes.dispose();
        }
        return undefined;
      },
      now: () => c.newNumber(performance.now()),
      setTimer: (ms) => {
        const delay = c.getNumber(ms);
        if (this.timer) clearTimeout(this.timer);
        this.timer = setTimeout(() => {
          this.timer = undefined;
          if (!this.closed) engine.callback("__fire");
        }, delay);
        return undefined;
      },
      clearTimer: () => {
        if (this.timer) clearTimeout(this.timer);
        this.timer = undefined;
        return undefined;
      },
      random: (n) => c.newArrayBuffer(Uint8Array.from(randomBytes(c.getNumber(n))).buffer),
      stanza: (json) => {
        this.inbox.push(JSON.parse(c.getString(json)) as XElement);
        return undefined;
      },
      log: (level, event, fields) => {
        this.logs.push(`${c.getString(level)} ${c.getString(event)} ${c.getString(fields)}`);
        return undefined;
      },
    });
    transport.onReceive((data, peer) => {
      if (peer !== gateway || this.closed) return;
      this.datagrams.in++;
      this.datagrams.bytesIn += data.length;
      if (this.held) this.held.push(Uint8Array.from(data));
      else engine.callback("__receive", data);
    });
  }

  private load(options: QuickJsTinyNodeOptions): HeapFigures {
    const e = this.engine;
    this.emptyHeap = e.memory().memory_used_size;
    e.resetPeak();
    options.hostOwn?.expose(e);
    e.loadModule("cxmpp", "cxmpp-node.mjs", options.bundle);
    if (options.dtls !== undefined) e.loadModule("cxmppDtls", "cxmpp-dtls.mjs", options.dtls);
    if (options.crypto !== undefined) e.loadModule("cxmppCrypto", "cxmpp-crypto.mjs", options.crypto);
    const loadPeak = e.peakWithin;
    // The first collection, which also brings QuickJS's own collection threshold down to what a
    // device would have (see collect()).
    const load = e.collect();
    if (options.hostOwn) e.evaluate(options.hostOwn.glue, "host-own.js");
    e.evaluate(options.glue ?? DEVICE_GLUE, "device-glue.js");
    e.call("device_create", options.deviceFile, options.ackTimeoutMs, options.wake);
    return { empty: this.emptyHeap, load, loadPeak };
  }

  connect(tries = 1): Promise<string> {
    return this.engine.callAsync("device_connect", tries) as Promise<string>;
  }

  /** A XEP-0323 reading numbered `n`, sent reliably (CON): resolves once the gateway stored it. */
  send(to: string, n: number): Promise<void> {
    return this.engine.callAsync("device_send", to, n).then(() => undefined);
  }

  /** A XEP-0323 reading as telemetry (NON). */
  telemetry(to: string, n: number): void {
    this.engine.call("device_telemetry", to, n);
  }

  /** A wake-up: asks the gateway for what waits. */
  poll(): Promise<void> {
    return this.engine.callAsync("device_poll").then(() => undefined);
  }

  get pending(): number {
    return this.engine.call("device_pending") as number;
  }

  /** Holds datagrams from the gateway (not handed to the node) until release(). */
  hold(): void {
    this.held ??= [];
  }

  release(): void {
    const held = this.held ?? [];
    this.held = undefined;
    for (const d of held) this.engine.callback("__receive", d);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    try {
      if (!this.engine.overLimit && this.engine.context.alive) this.engine.call("device_close");
    } catch {
      // closing after a failure: the node may not exist
    }
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.transport.close();
    await this.transport.whenClosed();
    this.engine.dispose();
  }
}
