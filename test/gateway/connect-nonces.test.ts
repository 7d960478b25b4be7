/**
 * The connect challenge's nonces (gateway/session/connect.ts): their layout, single use, and the table
 * of used nonces at its cap, oldest first, also after the sweep emptied it (the evicting iterator is
 * kept across connects, so these are the cases it must get right).
 */
import { describe, expect, it } from "vitest";
import { DICTIONARY_V1 } from "../../codec/index.js";
import { MemoryDevices } from "../../gateway/index.js";
import { ConnectHandler } from "../../gateway/session/connect.js";
import { memoryJournal } from "../../gateway/session/journal.js";
import { DEFAULT_MAILBOX_LIMITS } from "../../gateway/session/mailbox.js";
import { PresenceBroadcaster } from "../../gateway/session/presence.js";
import { SessionRegistry } from "../../gateway/session/session-registry.js";
import { emptyStats } from "../../gateway/session/stats.js";
import {
  Code,
  connectOptions,
  OptionNumber,
  type PeerAddress,
  protocol,
  type Response,
  type ServerRequest,
  silentLogger,
} from "../../src/core/index.js";
import { nodeMac } from "../../src/node/index.js";
import { key } from "../kit/session-harness.js";

const DOMAIN = "iot.test";
const LIFETIME_MS = 60_000;
const MAX_USED = 3;

function setup() {
  const devices = new MemoryDevices();
  for (let i = 0; i < 20; i++)
    devices.add({ identity: `n${i}`, key: key(i), jid: `n${i}@${DOMAIN}`, peers: [] });
  const stats = emptyStats();
  const clock = { t: Date.UTC(2026, 0, 1), now: () => clock.t };
  let draw = 0;
  /** Set: every later draw is this word (the constructors drew their keys already). */
  let fixed: number | undefined;
  const random = { uint32: () => fixed ?? (++draw * 2_654_435_761) >>> 0 };
  const fixDraws = (word: number) => {
    fixed = word;
  };
  const registry = new SessionRegistry({
    devices,
    journal: memoryJournal(),
    dictionary: DICTIONARY_V1,
    domain: DOMAIN,
    resource: "cxmpp",
    mailbox: DEFAULT_MAILBOX_LIMITS,
    random,
    logger: silentLogger,
    stats,
    sessionExpiryMs: 3_600_000,
  });
  const presence = new PresenceBroadcaster(registry, {
    domain: DOMAIN,
    resource: "cxmpp",
    clock,
    logger: silentLogger,
    stats,
    route: () => {},
  });
  const handler = new ConnectHandler(registry, presence, {
    devices,
    dictionary: DICTIONARY_V1,
    mac: nodeMac,
    random,
    clock,
    logger: silentLogger,
    stats,
    nonceLifetimeMs: LIFETIME_MS,
    maxUsedNonces: MAX_USED,
  });
  let mid = 0;
  const send = (peer: string, payload: Uint8Array, echo?: Uint8Array): Response =>
    handler.handle({
      code: Code.POST,
      options: connectOptions(echo),
      payload,
      peer: peer as PeerAddress,
      token: Uint8Array.of(mid & 0xff),
      messageId: mid++ & 0xffff,
      confirmable: true,
    } satisfies ServerRequest);
  /** A challenge, then the proven connect; what a replay of the proven connect would send again. */
  const connect = (i: number) => {
    const peer = `10.0.0.${i}:5683`;
    const c = { identity: `n${i}`, dictionary: DICTIONARY_V1.id };
    const challenge = send(peer, protocol.encodeConnectRequest(c));
    expect(challenge.code).toBe(Code.UNAUTHORIZED);
    const echo = challenge.options.find((o) => o.number === OptionNumber.ECHO)!.value;
    const proof = nodeMac.hmacSha256(key(i), protocol.proofInput(echo, c)).subarray(0, protocol.PROOF_BYTES);
    const payload = protocol.encodeConnectRequest({ ...c, proof });
    const replay = () => send(peer, payload, echo).code;
    expect(replay()).toBe(Code.CREATED);
    return { echo, replay };
  };
  return { handler, stats, clock, send, connect, fixDraws };
}

describe("connect nonces", () => {
  it("carry the issue second, one random draw (low byte first) and a MAC bound to the address", () => {
    const { clock, send, fixDraws } = setup();
    fixDraws(0x04030201);
    const c = protocol.encodeConnectRequest({ identity: "n1", dictionary: DICTIONARY_V1.id });
    const echo = send("10.0.0.1:5683", c).options.find((o) => o.number === OptionNumber.ECHO)!.value;
    const seconds = clock.t / 1000;
    expect(echo.length).toBe(protocol.NONCE_BYTES);
    expect([...echo.subarray(0, 8)]).toEqual([
      seconds >>> 24,
      (seconds >>> 16) & 0xff,
      (seconds >>> 8) & 0xff,
      seconds & 0xff,
      1,
      2,
      3,
      4,
    ]);
    // The same signed bytes for another address would need another MAC: its echo is no use there.
    const proof = new Uint8Array(protocol.PROOF_BYTES);
    const payload = protocol.encodeConnectRequest({ identity: "n1", dictionary: DICTIONARY_V1.id, proof });
    expect(send("10.0.0.2:5683", payload, echo).code).toBe(Code.UNAUTHORIZED);
  });

  it("are used once; at the cap the oldest are forgotten first, also after a sweep emptied the table", () => {
    const { handler, stats, clock, connect } = setup();
    const first = Array.from({ length: 8 }, (_, i) => connect(i));
    expect(handler.usedNonces).toBe(MAX_USED);
    expect(stats.usedNoncesEvicted).toBe(8 - MAX_USED);
    // The newest three are remembered: replayed, they are challenged again.
    for (const c of first.slice(-MAX_USED)) expect(c.replay()).toBe(Code.UNAUTHORIZED);
    // The oldest was forgotten (within its lifetime, its replay is taken: what the cap trades).
    expect(first[0]!.replay()).toBe(Code.CREATED);
    expect(handler.usedNonces).toBe(MAX_USED);
    // Which evicted nonce 5 (the oldest left), not 6 or 7.
    expect(first[6]!.replay()).toBe(Code.UNAUTHORIZED);
    expect(first[7]!.replay()).toBe(Code.UNAUTHORIZED);
    expect(first[5]!.replay()).toBe(Code.CREATED);
    // Past their lifetime the sweep forgets them all (and they are refused as too old anyway).
    clock.t += LIFETIME_MS + 2_000;
    handler.sweep();
    expect(handler.usedNonces).toBe(0);
    expect(first[7]!.replay()).toBe(Code.UNAUTHORIZED);
    // Then the table fills and evicts in order again.
    const second = Array.from({ length: 5 }, (_, i) => connect(10 + i));
    expect(handler.usedNonces).toBe(MAX_USED);
    for (const c of second.slice(-MAX_USED)) expect(c.replay()).toBe(Code.UNAUTHORIZED);
    expect(second[1]!.replay()).toBe(Code.CREATED);
    expect(second[2]!.replay()).toBe(Code.CREATED);
  });
});
