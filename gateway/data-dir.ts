/**
 * The device file a builder flashes onto a node (docs/PROTOCOL.md §5). Where the gateway keeps its
 * state is a config key (`data_dir`, gateway/config.ts), found the same way by every command.
 */
import { readFileSync } from "node:fs";
import { encodeSequence, type Value } from "../src/core/index.js";
// The module alone, not src/tiny/index.js: the gateway does not load the tiny node client.
import { decodeDeviceFile, type TinyDevice } from "../src/tiny/device.js";
import { formatHostPort, parseHostPort } from "./config.js";
import { DeviceConfigError, parseDevice } from "./devices.js";

/** Where a node finds its gateway: plain CoAP or CoAP over DTLS (coaps), and the address. */
export interface GatewayUri {
  readonly scheme: "coap" | "coaps";
  /** IPv6 without brackets. */
  readonly host: string;
  readonly port: number;
}

/** The default ports of the two schemes (RFC 7252 §6.1, §6.2). */
const DEFAULT_PORT = { coap: 5683, coaps: 5684 } as const;

/**
 * Parses a device file's gateway address: `coaps://HOST:PORT`, `coap://HOST:PORT` (the port may be left
 * out: 5684 and 5683), or a bare `HOST:PORT` as files before DTLS wrote it, which is plain CoAP. IPv6
 * hosts in brackets. Throws a DeviceConfigError saying what is accepted.
 */
export function parseGatewayUri(text: string): GatewayUri {
  const m = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\/(.*?)\/?$/.exec(text);
  const scheme = m ? m[1]!.toLowerCase() : "coap";
  if (scheme !== "coap" && scheme !== "coaps") {
    throw new DeviceConfigError(
      `gateway address ${JSON.stringify(text)}: the scheme must be coap:// or coaps://, not ${scheme}://`,
    );
  }
  const authority = m ? m[2]! : text;
  // In a URI the port may be left out (the scheme's default); a bare address must have one.
  // No user, path, query or fragment: a gateway is a host and a port.
  const address = /[@/?#]/.test(authority)
    ? undefined
    : (parseHostPort(authority) ?? (m ? parseHostPort(`${authority}:${DEFAULT_PORT[scheme]}`) : undefined));
  if (!address || address.port === 0) {
    throw new DeviceConfigError(
      `gateway address ${JSON.stringify(text)}: expected coaps://HOST:PORT, coap://HOST:PORT or HOST:PORT ` +
        "(IPv6 in brackets: coaps://[fd00::1]:5684; port 1-65535)",
    );
  }
  return { scheme, host: address.host, port: address.port };
}

/** The inverse of parseGatewayUri: always with the scheme and the port. */
export function formatGatewayUri(uri: GatewayUri): string {
  return `${uri.scheme}://${formatHostPort(uri)}`;
}

/** The few bytes a builder flashes onto a node, as humans see them (the JSON view). */
export interface DeviceFile {
  /**
   * `coaps://HOST:PORT` for a device that connects over DTLS, `coap://HOST:PORT` for plain CoAP; files
   * written before DTLS hold a bare `HOST:PORT` (plain CoAP). Read it with parseGatewayUri.
   */
  readonly gateway: string;
  readonly identity: string;
  readonly key_hex: string;
  readonly jid: string;
  readonly dictionary: string;
}

/**
 * The device file on flash (docs/PROTOCOL.md §5): one CBOR map with small integer keys,
 * {0: gateway "coaps://HOST:PORT" (or coap://; a bare "HOST:PORT" in older files), 1: identity,
 * 2: key (bytes), 3: JID, 4: dictionary id}; 70-80 bytes.
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

/** The CBOR device file, read with the node's own decoder (src/tiny), as fields the JSON view has. */
function decodeCborDeviceFile(bytes: Uint8Array, path: string): Record<string, unknown> {
  let d: TinyDevice;
  try {
    d = decodeDeviceFile(bytes);
  } catch (error) {
    throw new DeviceConfigError(`${path}: not a device file (${(error as Error).message})`);
  }
  return {
    gateway: d.gateway,
    identity: d.identity,
    key_hex: Buffer.from(d.key).toString("hex"),
    jid: d.jid,
    dictionary: d.dictionary,
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
  if (typeof gateway !== "string") {
    throw new DeviceConfigError(`${path}.gateway: expected coaps://HOST:PORT, coap://HOST:PORT or HOST:PORT`);
  }
  try {
    parseGatewayUri(gateway);
  } catch (error) {
    throw new DeviceConfigError(`${path}.gateway: ${(error as Error).message}`);
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
