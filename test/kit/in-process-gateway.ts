/**
 * A real gateway in the test's own process, as `cxmpp gateway` runs it (startGateway: SQLite in
 * `dataDir`, real UDP on loopback, metrics served on a free port so tests can read them), for tests
 * that need to look inside it (stats, tables, the store) while they talk to it over real sockets.
 */
import type { XElement } from "../../codec/index.js";
import {
  type ConfigKey,
  type GatewayConfig,
  loadConfig,
  type RunningGateway,
  startGateway,
} from "../../gateway/index.js";

/** Config keys a test sets beside the kit's own (`{dtls_listen: "127.0.0.1:0"}` for a test of DTLS). */
export type TestFlags = Partial<Record<ConfigKey, string | number>>;

/**
 * The configuration every in-process test gateway uses: plain CoAP only (DTLS off, so no test holds the
 * fixed coaps port 5684; `flags` can switch it on), only errors logged, metrics on a free port.
 */
export function testGatewayConfig(dataDir: string, port = 0, flags: TestFlags = {}): GatewayConfig {
  return loadConfig({
    env: {},
    flags: {
      data_dir: dataDir,
      listen: `127.0.0.1:${port}`,
      dtls_listen: "off",
      log_level: "error",
      metrics_listen: "127.0.0.1:0",
      ...flags,
    },
  });
}

export interface TestGateway extends RunningGateway {
  readonly host: string;
  readonly port: number;
}

/** Starts a gateway on `dataDir` (UDP `port`, 0 = a free one); stanzas for other domains go to `outbound`. */
export async function inProcessGateway(
  dataDir: string,
  options: { readonly port?: number; readonly outbound?: XElement[]; readonly flags?: TestFlags } = {},
): Promise<TestGateway> {
  const outbound = options.outbound;
  const gw = await startGateway(testGatewayConfig(dataDir, options.port, options.flags), {
    ...(outbound ? { outbound: (s: XElement) => outbound.push(s) } : {}),
  });
  const colon = gw.address.lastIndexOf(":");
  return Object.assign(gw, { host: gw.address.slice(0, colon), port: Number(gw.address.slice(colon + 1)) });
}
