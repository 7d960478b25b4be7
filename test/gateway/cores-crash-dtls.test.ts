/**
 * `cores: 2` over DTLS: the crash scenario of crash-dtls.test.ts (test/kit/crash-kit.ts) against
 * `cxmpp gateway` with both listeners' sockets on socket threads (gateway/cluster/udp-thread.ts) and
 * the DTLS server on the gateway's thread, over real UDP: SIGKILLed at seeded moments under load and
 * started again, nothing acknowledged lost or duplicated, in order, the nodes handshake again and resume
 * without a new connect; every start reports its two socket threads. Compiled commands: build first.
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { cleanEnv } from "../../bench/child-process.js";
import type { DtlsClient } from "../../src/dtls/index.js";
import { type CrashSetup, crashUnderLoad, dtlsCrashNode, IDENTITIES, SEED } from "../kit/crash-kit.js";
import {
  CLI,
  freeUdpPort,
  type GatewayProcess,
  killAllGateways,
  startGatewayProcess,
} from "../kit/gateway-process.js";
import { scratch } from "../kit/scratch.js";

const { root, cleanups } = scratch("cxmpp-cores-dtls-");
cleanups.push(killAllGateways); // (run last: cleanups run in reverse)

describe("cores: 2 over DTLS", () => {
  it(`DTLS, SIGKILL under load: the same, through the DTLS server over the socket thread (seed ${SEED})`, async () => {
    const dataDir = join(root, "dtls");
    const [port, dtlsPort] = [await freeUdpPort(), await freeUdpPort()];
    const env = { CXMPP_DATA_DIR: dataDir, CXMPP_DTLS_LISTEN: `127.0.0.1:${dtlsPort}`, CXMPP_CORES: "2" };
    const deviceFile = (identity: string) => join(root, `${identity}.cbor`);
    for (const identity of IDENTITIES) {
      const add = spawnSync(
        process.execPath,
        [CLI, "provision", "add", identity, "--dtls-only", "--out", deviceFile(identity)],
        { encoding: "utf8", env: cleanEnv(env), timeout: 30_000 },
      );
      expect(add.status, add.stderr).toBe(0);
    }
    const dtls = new Map<string, DtlsClient>();
    const started: GatewayProcess[] = [];
    const setup: CrashSetup = {
      dataDir,
      cleanups,
      start: async () => {
        const gateway = await startGatewayProcess({ dataDir, port, logLevel: "info", env });
        started.push(gateway);
        return gateway;
      },
      node: dtlsCrashNode(deviceFile, dtls),
    };
    const { connectsAfterStart, report } = await crashUnderLoad(setup, "crash test over DTLS, cores 2");
    expect(started.length).toBeGreaterThan(1); // the first start and the restarts after each kill
    for (const gateway of started) {
      const [listening] = gateway.log("gateway.listening");
      expect(listening?.cores).toBe(2);
      const threads = listening?.socketThreads as number[];
      expect(threads).toHaveLength(2); // coap and coaps
      for (const id of threads) expect(id).toBeGreaterThan(0); // 0 is the gateway's own thread
    }
    for (const id of IDENTITIES) expect(dtls.get(id)!.stats.handshakes, id).toBeGreaterThan(1);
    expect(connectsAfterStart, JSON.stringify(connectsAfterStart)).toEqual([]);
    expect(report.clientReconnects).toEqual([0, 0, 0, 0]);
  }, 120_000);
});
