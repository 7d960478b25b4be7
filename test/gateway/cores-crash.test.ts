import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../gateway/index.js";
import { openStore } from "../../gateway/store/index.js";
import {
  type CrashSetup,
  crashUnderLoad,
  DOMAIN,
  IDENTITIES,
  keyOf,
  plainCrashNode,
  SEED,
} from "../kit/crash-kit.js";
import {
  freeUdpPort,
  type GatewayProcess,
  killAllGateways,
  startGatewayProcess,
} from "../kit/gateway-process.js";
import { scratch } from "../kit/scratch.js";

const { root, cleanups } = scratch("cxmpp-cores-");
cleanups.push(killAllGateways); // (run last: cleanups run in reverse)

/** Every gateway started listened with `cores: 2` and as many socket threads as listeners, none this one. */
function expectSocketThreads(started: readonly GatewayProcess[], listeners: number): void {
  expect(started.length).toBeGreaterThan(1); // the first start and the restarts after each kill
  for (const gateway of started) {
    const [listening] = gateway.log("gateway.listening");
    expect(listening?.cores).toBe(2);
    const threads = listening?.socketThreads as number[];
    expect(threads).toHaveLength(listeners);
    for (const id of threads) expect(id).toBeGreaterThan(0); // 0 is the gateway's own thread
  }
}

describe("cores: 2, the sockets on their own thread", () => {
  it("is 1 by default; 2 is accepted; anything else is a ConfigError naming the key", () => {
    expect(loadConfig({ env: {}, flags: {} }).cores).toBe(1);
    expect(loadConfig({ env: {}, flags: { cores: "2" } }).cores).toBe(2);
    expect(loadConfig({ env: { CXMPP_CORES: "2" } }).cores).toBe(2);
    for (const bad of ["0", "3", "two", "1.5", ""]) {
      const attempt = () => loadConfig({ env: {}, flags: { cores: bad } });
      expect(attempt, bad).toThrow(ConfigError);
      expect(attempt, bad).toThrow(/cores/);
    }
  });

  it(`plain CoAP, SIGKILL under load: nothing acknowledged lost or duplicated, in order (seed ${SEED})`, async () => {
    const dataDir = join(root, "plain");
    const store = openStore(dataDir);
    for (const identity of IDENTITIES)
      store.devices.add({ identity, key: keyOf(identity), jid: `${identity}@${DOMAIN}`, peers: [] });
    store.close();
    const port = await freeUdpPort();
    const started: GatewayProcess[] = [];
    const setup: CrashSetup = {
      dataDir,
      cleanups,
      start: async () => {
        const gateway = await startGatewayProcess({
          dataDir,
          port,
          logLevel: "info",
          args: ["--cores", "2"],
          env: { CXMPP_DTLS_LISTEN: "off" },
        });
        started.push(gateway);
        return gateway;
      },
      node: plainCrashNode,
    };
    const { connectsAfterStart, report } = await crashUnderLoad(setup, "crash test, cores 2");
    expectSocketThreads(started, 1);
    expect(connectsAfterStart, JSON.stringify(connectsAfterStart)).toEqual([]);
    expect(report.clientReconnects).toEqual([0, 0, 0, 0]);
  }, 90_000);
});
