/**
 * The host side of the core's small interfaces on Node.js: a monotonic clock, setTimeout timers,
 * cryptographic randomness and a JSON-lines logger.
 */
import { randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import type { Cancellable, Clock, Logger, LogLevel, Random, Scheduler } from "../core/interfaces.js";

/** Milliseconds on a monotonic clock (never jumps with wall-clock changes). */
/** Monotonic milliseconds (never jumps with the wall clock): CoAP timers, retransmission, benchmarks. */
export const systemClock: Clock = { now: () => performance.now() };

/**
 * Wall-clock milliseconds since the epoch: for instants that are stored, survive a restart or are
 * written into stanzas (XEP-0082 stamps, mailbox expiry, last seen).
 */
export const wallClock: Clock = { now: () => Date.now() };

export interface TimerSchedulerOptions {
  /** Unref'd timers do not keep the process alive on their own. Default false. */
  readonly unref?: boolean;
}

/** setTimeout's largest delay; longer delays are re-armed in steps. */
const MAX_TIMEOUT_MS = 2_147_483_647;

/** A `Scheduler` on setTimeout. Delays beyond setTimeout's range are split, never fired early. */
export function timerScheduler(options: TimerSchedulerOptions = {}): Scheduler {
  return {
    schedule(delayMs: number, task: () => void): Cancellable {
      let handle: NodeJS.Timeout | undefined;
      let cancelled = false;
      const arm = (remaining: number) => {
        const step = Math.min(Math.max(0, remaining), MAX_TIMEOUT_MS);
        handle = setTimeout(() => {
          if (cancelled) return;
          if (remaining > step) arm(remaining - step);
          else task();
        }, step);
        if (options.unref) handle.unref();
      };
      arm(Number.isFinite(delayMs) ? delayMs : MAX_TIMEOUT_MS);
      return {
        cancel: () => {
          cancelled = true;
          if (handle) clearTimeout(handle);
        },
      };
    },
  };
}

/** Uniform 32-bit integers from node:crypto, drawn from a pooled buffer (one syscall per 256). */
export const cryptoRandom: Random = (() => {
  const WORDS = 256;
  let pool = randomBytes(WORDS * 4);
  let index = WORDS;
  return {
    uint32(): number {
      if (index >= WORDS) {
        pool = randomBytes(WORDS * 4);
        index = 0;
      }
      return pool.readUInt32LE(4 * index++);
    },
  };
})();

const LEVELS: Readonly<Record<LogLevel, number>> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface ConsoleLoggerOptions {
  /** Where the JSON lines go. Default process.stderr. */
  readonly write?: (line: string) => void;
  /** Fields added to every line (e.g. the component name). */
  readonly base?: Readonly<Record<string, unknown>>;
}

/**
 * A structured logger: one JSON object per line on stderr, `{"time","level","event",…fields}`, for
 * events at `level` or above. Byte arrays are written as hex, errors as their message, bigints as text.
 */
export function consoleLogger(level: LogLevel = "info", options: ConsoleLoggerOptions = {}): Logger {
  const threshold = LEVELS[level];
  const write = options.write ?? ((line: string) => process.stderr.write(line));
  return {
    log(at: LogLevel, event: string, fields?: Readonly<Record<string, unknown>>): void {
      if (LEVELS[at] < threshold) return;
      const record = { time: new Date().toISOString(), level: at, event, ...options.base, ...fields };
      let line: string;
      try {
        line = JSON.stringify(record, jsonValue);
      } catch (error) {
        line = JSON.stringify({ time: record.time, level: at, event, logError: String(error) });
      }
      write(`${line}\n`);
    },
  };
}

function jsonValue(_key: string, value: unknown): unknown {
  if (typeof value === "bigint") return value.toString();
  if (value instanceof Uint8Array)
    return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("hex");
  if (value instanceof Error) return { name: value.name, message: value.message };
  return value;
}

/**
 * `promise`, or a rejection `Error("<what> within <ms/1000> s")` once `ms` have passed without it
 * settling (the timer does not hold the process open, and is cleared either way).
 */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} within ${ms / 1000} s`)), ms);
      timer.unref?.();
    }),
  ]).finally(() => clearTimeout(timer));
}
