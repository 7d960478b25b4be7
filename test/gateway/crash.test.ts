/**
 * Crash tests (docs/PROTOCOL.md §4.1, "acked means stored"): `cxmpp gateway` runs as a child process
 * under load from real UDP nodes and is killed with SIGKILL at random moments (seeded), then started
 * again on the same port and data directory. Whatever the gateway acknowledged must survive exactly
 * once and in order — in the sink node's mailbox and in the outbox for another domain — and the nodes
 * must carry on without a new connect, since the restarted gateway rebuilds their sessions. The
 * scenario is test/kit/crash-kit.ts; crash-dtls.test.ts runs it over DTLS.
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
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
import { freeUdpPort, killAllGateways, startGatewayProcess } from "../kit/gateway-process.js";
import { scratch } from "../kit/scratch.js";

const { root, cleanups } = scratch("cxmpp-crash-");
cleanups.push(killAllGateways); // (run last: cleanups run in reverse)

/** The sink's key is key(100), sender s<k>'s key(k + 1). */

describe("crash: SIGKILL of the gateway under load", () => {
  it(`loses and duplicates nothing acknowledged; nodes resume without a new connect (seed ${SEED})`, async () => {
    const dataDir = join(root, "data");
    const store = openStore(dataDir);
    for (const identity of IDENTITIES)
      store.devices.add({ identity, key: keyOf(identity), jid: `${identity}@${DOMAIN}`, peers: [] });
    store.close();

    const port = await freeUdpPort();
    const setup: CrashSetup = {
      dataDir,
      cleanups,
      start: () =>
        startGatewayProcess({
          dataDir,
          port,
          logLevel: "info",
          env: { CXMPP_DTLS_LISTEN: "off" }, // plain CoAP only: no gateway here holds the coaps port
        }),
      node: plainCrashNode,
    };
    const { connectsAfterStart, report } = await crashUnderLoad(setup, "crash test");

    // (5) The restarted gateways rebuilt every session: no node connected again.
    expect(connectsAfterStart, JSON.stringify(connectsAfterStart)).toEqual([]);
    expect(report.clientReconnects).toEqual([0, 0, 0, 0]);
  }, 90_000);
});
