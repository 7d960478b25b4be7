/**
 * The crash test over DTLS (issue 10, "Loss"; the scenario is test/kit/crash-kit.ts): `cxmpp gateway`
 * with a coaps listener on a fixed port runs as a child process under load from nodes made from
 * DTLS-only device files (`cxmpp provision add NAME --dtls-only --out FILE`, gateway
 * `coaps://127.0.0.1:PORT`, read by the same code as `cxmpp node`), and is killed with SIGKILL at random
 * moments (seeded), then started again on the same ports and data directory. The restarted gateway
 * has forgotten every DTLS session: it answers a node's next record with an alert and the node
 * handshakes again by itself. Nothing acknowledged is lost or duplicated, and the nodes resume their
 * sessions without a new connect. The record that drew the alert is lost, so an exchange in flight at a
 * kill fails more often than over plain CoAP, and these nodes (`cxmpp node`'s) retry a failed exchange
 * after 1 s, not the plain test's 100 ms: a run takes 15–25 s rather than ~10 s. The commands run
 * compiled (bin/cxmpp.js → dist/): `npm run build` first.
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { cleanEnv } from "../../bench/child-process.js";
import type { DtlsClient } from "../../src/dtls/index.js";
import { type CrashSetup, crashUnderLoad, dtlsCrashNode, IDENTITIES, SEED } from "../kit/crash-kit.js";
import { CLI, freeUdpPort, killAllGateways, startGatewayProcess } from "../kit/gateway-process.js";
import { scratch } from "../kit/scratch.js";

const { root, cleanups } = scratch("cxmpp-crash-dtls-");
cleanups.push(killAllGateways); // (run last: cleanups run in reverse)

describe("crash over DTLS: SIGKILL of the gateway under load", () => {
  it(`loses and duplicates nothing acknowledged; nodes handshake again and resume (seed ${SEED})`, async () => {
    const dataDir = join(root, "data");
    const [port, dtlsPort] = [await freeUdpPort(), await freeUdpPort()];
    const env = { CXMPP_DATA_DIR: dataDir, CXMPP_DTLS_LISTEN: `127.0.0.1:${dtlsPort}` };
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
    const setup: CrashSetup = {
      dataDir,
      cleanups,
      // The same coaps port every time: the device files name it. Plain CoAP stays on (on loopback, as
      // by default) but the devices are DTLS-only.
      start: () => startGatewayProcess({ dataDir, port, logLevel: "info", env }),
      node: dtlsCrashNode(deviceFile, dtls),
    };
    const { connectsAfterStart, report } = await crashUnderLoad(setup, "crash test over DTLS");

    // (5) Every node handshook again by itself after the restarts, and the restarted gateways rebuilt
    // every session: no node connected again.
    const handshakes = IDENTITIES.map((id) => dtls.get(id)!.stats);
    console.log(
      `crash test over DTLS, the nodes' DTLS clients: ${JSON.stringify(Object.fromEntries(IDENTITIES.map((id, i) => [id, handshakes[i]])))}`,
    );
    for (const [i, s] of handshakes.entries()) {
      // A handshake the kill cut short fails (the restarted gateway answers its last flight with the
      // unknown-peer alert) and the next send starts another: at most one such failure per kill.
      expect(s.handshakeFailures, IDENTITIES[i]).toBeLessThanOrEqual(report.kills.length);
      expect(s.handshakes, IDENTITIES[i]).toBeGreaterThan(1);
    }
    expect(connectsAfterStart, JSON.stringify(connectsAfterStart)).toEqual([]);
    expect(report.clientReconnects).toEqual([0, 0, 0, 0]);
  }, 120_000);
});
