/**
 * The device program of a tiny sensor (examples/tiny-sensor/README.md): it reads a value, reports it as
 * XEP-0323 sensor data to one JID and sleeps until the next reading, on the tiny-node client
 * (docs/TINY-NODE.md). Portable like src/tiny: ECMAScript 2022 only, no Node.js API, no timers API;
 * everything with a side effect comes from the host (TinyHost) and the host's sensor function. Bundled
 * with `npx tsx tools/build-node.ts examples/tiny-sensor/sensor.ts dist/tiny/cxmpp-sensor.mjs`, it is
 * the one file a device loads, beside its device file.
 *
 * Each wake-up: read the sensor, send the reading as telemetry (a NON message, no retransmission, no
 * answer), every k-th one reliably instead (CON: stored at the gateway before it counts), then ask for
 * what waits in the mailbox (a poll; a reliable reading's own exchange brings it). In between nothing is
 * due but the next wake-up and the node's own deadlines, so the host can sleep on its one timer.
 */
import {
  createTinyNode,
  decodeDeviceFile,
  el,
  gatewayAddress,
  type TinyHost,
  type TinyNode,
  type TinyNodeOptions,
  type XElement,
} from "../../src/tiny/index.js";
import { jsCrypto } from "../../src/tiny/js-crypto.js";
import { jsDtls } from "../../src/tiny/js-dtls.js";
import { SENSORDATA, sensorDataMessage } from "../iot-stanzas.js";

export interface SensorOptions {
  /** Reads the sensor now (the host's driver: an ADC, an I²C sensor, the chip's own thermometer). */
  readonly readSensor: () => number;
  /** Where the readings go (a bare or full JID; the gateway stamps the sensor's own JID as `from`). */
  readonly to: string;
  /**
   * Seconds between readings, the node's wake interval: the gateway counts it asleep in between and
   * keeps what comes for it until the next wake-up. Default 60.
   */
  readonly every?: number;
  /** Every k-th reading goes reliably (CON), the others as telemetry (NON). Default 10; 1: all reliable. */
  readonly reliableEvery?: number;
  /** Stop after this many readings (close the node); absent: run until stop(). */
  readonly count?: number;
  /** XEP-0323 `node@nodeId`. Default: the device file's identity. */
  readonly nodeId?: string;
  /** The field's name. Default "temperature". */
  readonly field?: string;
  /** The field's unit. Default "°C". */
  readonly unit?: string;
  /** Decimals of the reported value. Default 1. */
  readonly decimals?: number;
  /**
   * Wall-clock milliseconds since 1970 for the readings' timestamps (an RTC or SNTP). Default
   * Date.now(), which on a board without a set clock counts from 1970 at boot.
   */
  readonly wallClock?: () => number;
  /** Poll for downlink after a telemetry reading. Default true. */
  readonly pollOnWake?: boolean;
  /** The tiny node's own options (ackTimeoutMs, mtu, maxPayload); `wake` is `every`. */
  readonly node?: Omit<TinyNodeOptions, "wake">;
  /** Stanzas from the network (a command to the sensor, a chat message). */
  readonly onStanza?: (stanza: XElement) => void;
  /** What the sensor does, for a log or a status LED. */
  readonly onEvent?: (event: SensorEvent) => void;
}

export type SensorEvent =
  | { readonly type: "connected"; readonly jid: string }
  | { readonly type: "connect-failed"; readonly error: string; readonly retryMs: number }
  | { readonly type: "reading"; readonly seqnr: number; readonly value: string; readonly reliable: boolean }
  /** A reliable reading the gateway has stored. */
  | { readonly type: "stored"; readonly seqnr: number }
  | { readonly type: "error"; readonly seqnr?: number; readonly error: string }
  | { readonly type: "stopped"; readonly readings: number };

/** What runSensor hands back to the host's glue. */
export interface Sensor {
  /** Where the host's socket sends: `HOST:PORT` from the device file (IPv6 in brackets). */
  readonly gateway: string;
  /** Whether that is coaps (DTLS), as the device file says. */
  readonly secure: boolean;
  /** The host calls this with every datagram from the gateway. */
  receive(datagram: Uint8Array): void;
  /** Readings taken so far. */
  readonly readings: number;
  readonly node: TinyNode;
  /** Closes the node and disarms the timer. */
  stop(): void;
}

/**
 * Two deadlines on the host's ONE timer: slot 0 is the node's (it keeps its own queue behind it), slot 1
 * the sensor's (the next wake-up or connect attempt). The host's timer is armed for the earlier.
 */
function sharedTimer(host: TinyHost) {
  const at: (number | undefined)[] = [undefined, undefined];
  const task: ((() => void) | undefined)[] = [undefined, undefined];
  let firing = false;
  const arm = () => {
    if (firing) return;
    let next: number | undefined;
    for (const t of at) if (t !== undefined && (next === undefined || t < next)) next = t;
    if (next === undefined) host.clearTimer();
    else host.setTimer(Math.max(0, next - host.now()), fire);
  };
  const fire = () => {
    firing = true;
    try {
      const now = host.now();
      for (let i = 0; i < 2; i++) {
        const t = at[i];
        if (t === undefined || t > now) continue;
        const f = task[i];
        at[i] = undefined;
        task[i] = undefined;
        f?.();
      }
    } finally {
      firing = false;
      arm();
    }
  };
  return {
    set(slot: 0 | 1, delayMs: number, f: () => void) {
      at[slot] = host.now() + delayMs;
      task[slot] = f;
      arm();
    },
    clear(slot: 0 | 1) {
      at[slot] = undefined;
      task[slot] = undefined;
      arm();
    },
  };
}

/** `2026-11-27T10:00:00Z`: XEP-0323's xs:dateTime, to the second. */
function isoSeconds(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/**
 * Starts the sensor: decodes the device file (`cxmpp provision add NAME --out NAME.cbor`), connects
 * (retrying with back-off), then reads and reports every `every` seconds. Returns at once, before
 * anything is sent: the connect starts when the host's timer first fires, so the glue can open its
 * socket towards `gateway` first. The glue then feeds datagrams to `receive` and runs the engine's
 * pending jobs after every call in.
 */
export function runSensor(host: TinyHost, deviceFile: Uint8Array, options: SensorOptions): Sensor {
  const device = decodeDeviceFile(deviceFile);
  const address = gatewayAddress(device.gateway);
  const everyMs = (options.every ?? 60) * 1000;
  const k = Math.max(1, Math.floor(options.reliableEvery ?? 10));
  const nodeId = options.nodeId ?? device.identity;
  const field = options.field ?? "temperature";
  const unit = options.unit ?? "°C";
  const decimals = options.decimals ?? 1;
  const wallClock = options.wallClock ?? (() => Date.now());
  const event = (e: SensorEvent) => options.onEvent?.(e);
  const timer = sharedTimer(host);

  // The host as the node sees it: the same functions, but its timer is slot 0 of the shared one.
  const nodeHost: TinyHost = {
    send: (d) => host.send(d),
    now: () => host.now(),
    random: (n) => host.random(n),
    setTimer: (ms, f) => timer.set(0, ms, f),
    clearTimer: () => timer.clear(0),
    log: (level, name, fields) => host.log?.(level, name, fields),
    // What the host does natively, the pure-JavaScript crypto for the rest (quickjs-main.c has none),
    // and the host's DTLS where it has one, else the pure-JavaScript client (a coaps device file).
    crypto: { ...jsCrypto, ...host.crypto },
    dtls: host.dtls ?? jsDtls,
  };
  // The gateway counts the node asleep until its next wake-up (whole seconds on the wire).
  const node = createTinyNode(nodeHost, device, {
    ...options.node,
    wake: Math.max(1, Math.ceil(everyMs / 1000)),
  });
  if (options.onStanza) node.onStanza(options.onStanza);

  let readings = 0;
  let stopped = false;
  /** Polls under way (a stop after `count` readings waits for them). */
  let polling = 0;
  let retryMs = 1000;
  let nextAt = 0;

  const reading = (seqnr: number, value: string): XElement =>
    sensorDataMessage(
      { to: options.to },
      {
        nodeId,
        seqnr,
        timestamp: isoSeconds(wallClock()),
        field: el(SENSORDATA, "numeric", {
          name: field,
          momentary: "true",
          automaticReadout: "true",
          value,
          unit,
        }),
      },
    );

  const stop = () => {
    if (stopped) return;
    stopped = true;
    timer.clear(1);
    node.close();
    event({ type: "stopped", readings });
  };

  const failed = (seqnr: number | undefined, error: unknown) =>
    event({ type: "error", ...(seqnr !== undefined ? { seqnr } : {}), error: String(error) });

  /** One wake-up: a reading, then the next wake-up on a fixed cadence (no drift). */
  const wake = () => {
    if (stopped) return;
    const seqnr = ++readings;
    let raw: number;
    let threw = false;
    try {
      raw = options.readSensor();
    } catch (error) {
      raw = Number.NaN;
      threw = true;
      failed(seqnr, error);
    }
    if (Number.isFinite(raw)) {
      const value = raw.toFixed(decimals);
      const reliable = seqnr % k === 0;
      const stanza = reading(seqnr, value);
      event({ type: "reading", seqnr, value, reliable });
      try {
        if (reliable) {
          // Its exchange with the gateway also brings what waits in the mailbox.
          node.send(stanza).then(
            () => event({ type: "stored", seqnr }),
            (error: unknown) => failed(seqnr, error),
          );
        } else {
          node.telemetry(stanza);
          if (options.pollOnWake !== false) {
            polling++;
            node.poll().then(
              () => polling--,
              (error: unknown) => {
                polling--;
                failed(undefined, error);
              },
            );
          }
        }
      } catch (error) {
        failed(seqnr, error);
      }
    } else if (!threw) {
      failed(seqnr, `the sensor read ${raw}`);
    }
    if (options.count !== undefined && readings >= options.count) {
      // A reliable reading or a poll may still wait for its answer: stop once none does.
      const done = () => (node.pending === 0 && polling === 0 ? stop() : timer.set(1, 100, done));
      done();
      return;
    }
    // The next one a period after this one was due, or now if the device fell a whole period behind.
    nextAt = Math.max(nextAt + everyMs, host.now());
    timer.set(1, nextAt - host.now(), wake);
  };

  const connect = () => {
    if (stopped) return;
    node.connect().then(
      (jid) => {
        if (stopped) return;
        retryMs = 1000;
        event({ type: "connected", jid });
        nextAt = host.now();
        wake();
      },
      (error: unknown) => {
        if (stopped) return;
        event({ type: "connect-failed", error: String(error), retryMs });
        timer.set(1, retryMs, connect);
        retryMs = Math.min(retryMs * 2, Math.max(everyMs, 60_000));
      },
    );
  };
  // Nothing goes on air before the host's timer first fires: the glue opens its socket towards
  // `gateway` after runSensor returns.
  timer.set(1, 0, connect);

  return {
    gateway: address.peer,
    secure: address.secure,
    receive: (datagram) => node.receive(datagram),
    get readings() {
      return readings;
    },
    node,
    stop,
  };
}
