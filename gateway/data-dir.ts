/**
 * The device file a builder flashes onto a node (docs/PROTOCOL.md §5). Where the gateway keeps its
 * state is a config key (`data_dir`, gateway/config.ts), found the same way by every command.
 */
import { readFileSync } from "node:fs";
import { encodeSequence, SessionReader, type Value } from "../src/core/index.js";
import { DeviceConfigError, parseDevice } from "./devices.js";

/** The few bytes a builder flashes onto a node, as humans see them (the JSON view). */
export interface DeviceFile {
  readonly gateway: string;
  readonly identity: string;
  readonly key_hex: string;
  readonly jid: string;
  readonly dictionary: string;
}

/**
 * The device file on flash (docs/PROTOCOL.md §5): one CBOR map with small integer keys,
 * {0: gateway "HOST:PORT", 1: identity, 2: key (bytes), 3: JID, 4: dictionary id}; 60-70 bytes.
 */
export function encodeDeviceFile(d: DeviceFile): Uint8Array {
  return encodeSequence([
    new Map<number, Value>([
      [0, d.gateway],
      [1, d.identity],
      [2, Uint8Array.from(Buffer.from(d.key_hex, "hex"))],
      [3, d.jid],
      [4, d.dictionary],
    ]),
  ]);
}

function decodeCborDeviceFile(bytes: Uint8Array, path: string): Record<string, unknown> {
  let m: Value;
  try {
    const r = new SessionReader(bytes);
    m = r.read();
    if (!r.done) throw new Error("bytes after the map");
  } catch (error) {
    throw new DeviceConfigError(`${path}: not a device file (${(error as Error).message})`);
  }
  if (!(m instanceof Map)) throw new DeviceConfigError(`${path}: not a device file (expected a CBOR map)`);
  const key = m.get(2);
  return {
    gateway: m.get(0),
    identity: m.get(1),
    key_hex: key instanceof Uint8Array ? Buffer.from(key).toString("hex") : undefined,
    jid: m.get(3),
    dictionary: m.get(4),
  };
}

/** Reads a device file, CBOR or its JSON view (a JSON file starts with "{"). */
export function readDeviceFile(path: string): DeviceFile {
  let raw: unknown;
  try {
    const bytes = readFileSync(path);
    raw =
      bytes[0] === 0x7b
        ? JSON.parse(bytes.toString("utf8"))
        : decodeCborDeviceFile(Uint8Array.from(bytes), path);
  } catch (error) {
    if (error instanceof DeviceConfigError) throw error;
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
