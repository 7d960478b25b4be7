/** `cxmpp gateway`: the border-router program on UDP, until SIGTERM/SIGINT. */
import { DICTIONARY_V1, type XElement } from "../../codec/index.js";
import type { Response } from "../../src/core/index.js";
import {
  consoleLogger,
  createUdpEndpoint,
  cryptoRandom,
  nodeMac,
  systemClock,
} from "../../src/node/index.js";
import { dataDir, FileDevices } from "../data-dir.js";
import { GatewayService } from "../session/gateway-service.js";
import { toXml } from "../xml/stanza-xml.js";

export interface GatewayCommandOptions {
  readonly listen?: string;
  readonly domain?: string;
  readonly dataDir?: string;
  readonly logLevel?: string;
}

export interface RunningGateway {
  readonly address: string;
  /** Devices registered when it started. */
  readonly devices: number;
  readonly service: GatewayService;
  stop(): Promise<void>;
}

/** Starts the gateway; resolves once it listens. */
export async function startGateway(opts: GatewayCommandOptions): Promise<RunningGateway> {
  const listen = opts.listen ?? process.env.CXMPP_LISTEN ?? "127.0.0.1:5683";
  const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(listen);
  if (!m) throw new Error(`--listen: expected HOST:PORT, got '${listen}'`);
  const host = m[1]!.replace(/^\[|\]$/g, "");
  const port = Number(m[2]);
  const domain = opts.domain ?? process.env.CXMPP_DOMAIN ?? "iot.localhost";
  const level = (opts.logLevel ?? process.env.CXMPP_LOG_LEVEL ?? "info") as
    | "debug"
    | "info"
    | "warn"
    | "error";
  if (!["debug", "info", "warn", "error"].includes(level))
    throw new Error(`--log-level: unknown level '${level}'`);
  const logger = consoleLogger(level, { base: { component: "gateway" } });
  const dir = dataDir(opts.dataDir);
  const devices = new FileDevices(dir);
  const udp = await createUdpEndpoint({ host, port, logger });
  let push: ((path: string, response: Response) => number) | undefined;
  const service = new GatewayService({
    push: (path, response) => push?.(path, response) ?? 0,
    devices,
    domain,
    mac: nodeMac,
    random: cryptoRandom,
    clock: systemClock,
    logger,
    // Federation comes with the XEP-0114 issue; until then stanzas for other domains are logged.
    outbound: (stanza: XElement) =>
      logger.log("info", "gateway.outbound", {
        to: stanza.attrs.find((a) => a.name === "to")?.value,
        xml: toXml(stanza),
      }),
  });
  udp.endpoint.handle(service.handle);
  push = (path, response) => udp.endpoint.notify(path, response);
  const address = udp.transport.address;
  logger.log("info", "gateway.listening", {
    address,
    domain,
    dataDir: dir,
    devices: devices.size,
    dictionary: DICTIONARY_V1.id,
  });
  return { address, devices: devices.size, service, stop: () => udp.close() };
}

export async function runGateway(opts: GatewayCommandOptions): Promise<number> {
  let running: RunningGateway;
  try {
    running = await startGateway(opts);
  } catch (error) {
    process.stderr.write(`cxmpp gateway: ${(error as Error).message}\n`);
    return 2;
  }
  process.stdout.write(`cxmpp gateway listening on coap://${running.address} (Ctrl-C to stop)\n`);
  if (running.devices === 0) {
    process.stdout.write(
      "no devices yet: register one with `cxmpp provision add NAME --out NAME.json`, then `cxmpp node run --device NAME.json`\n",
    );
  }
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  await running.stop();
  process.stdout.write("cxmpp gateway stopped\n");
  return 0;
}
