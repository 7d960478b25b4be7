/**
 * Where the gateway keeps its state, found the same way by every command: `--data-dir`, else
 * CXMPP_DATA_DIR, else ./cxmpp-data. (The durable store of the sleeping-nodes issue lives here too.)
 */
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import {
  type Device,
  DeviceConfigError,
  type DeviceDirectory,
  MemoryDevices,
  parseDevice,
} from "./devices.js";

export function dataDir(flag?: string): string {
  return resolve(flag ?? process.env.CXMPP_DATA_DIR ?? "cxmpp-data");
}

export function devicesPath(dir: string): string {
  return join(dir, "devices.json");
}

export function loadDevices(dir: string): MemoryDevices {
  const path = devicesPath(dir);
  return existsSync(path) ? MemoryDevices.fromFile(path) : new MemoryDevices();
}

/**
 * The devices file, re-read when it changes: `cxmpp provision add|revoke` take effect on a running
 * gateway at its next lookup, without a restart.
 */
export class FileDevices implements DeviceDirectory {
  private devices: MemoryDevices;
  private stamp: number;

  constructor(private readonly dir: string) {
    this.devices = loadDevices(dir);
    this.stamp = this.mtime();
  }

  private mtime(): number {
    try {
      return statSync(devicesPath(this.dir)).mtimeMs;
    } catch {
      return 0;
    }
  }

  private fresh(): MemoryDevices {
    const now = this.mtime();
    if (now !== this.stamp) {
      this.stamp = now;
      this.devices = loadDevices(this.dir);
    }
    return this.devices;
  }

  find(identity: string): Device | undefined {
    return this.fresh().find(identity);
  }

  byJid(jid: string): Device | undefined {
    return this.fresh().byJid(jid);
  }

  get size(): number {
    return this.fresh().size;
  }
}

/** Writes the device list atomically (a crash leaves the old file or the new one, never half). */
export function saveDevices(dir: string, devices: readonly Device[]): void {
  mkdirSync(dir, { recursive: true });
  const path = devicesPath(dir);
  const json = devices.map((d) => ({
    identity: d.identity,
    key_hex: Buffer.from(d.key).toString("hex"),
    jid: d.jid,
    peers: d.peers,
    ...(d.revoked ? { revoked: true } : {}),
  }));
  writeFileSync(`${path}.tmp`, `${JSON.stringify(json, null, 2)}\n`);
  renameSync(`${path}.tmp`, path);
}

/** The few bytes a builder flashes onto a node (JSON view). */
export interface DeviceFile {
  readonly gateway: string;
  readonly identity: string;
  readonly key_hex: string;
  readonly jid: string;
  readonly dictionary: string;
}

export function readDeviceFile(path: string): DeviceFile {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    throw new DeviceConfigError(`cannot read device file ${path}: ${(error as Error).message}`);
  }
  const d = parseDevice(raw, path);
  const gateway = (raw as Record<string, unknown>).gateway;
  if (typeof gateway !== "string" || !/^(\[[^\]]+\]|[^:]+):\d+$/.test(gateway)) {
    throw new DeviceConfigError(`${path}.gateway: expected HOST:PORT`);
  }
  const dictionary = (raw as Record<string, unknown>).dictionary;
  return {
    gateway,
    identity: d.identity,
    key_hex: Buffer.from(d.key).toString("hex"),
    jid: d.jid,
    dictionary: typeof dictionary === "string" ? dictionary : "",
  };
}
