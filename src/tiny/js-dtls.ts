/**
 * The pure-JavaScript DTLS client for a host without DTLS of its own (docs/TINY-NODE.md): DTLS 1.2
 * PSK with TLS_PSK_WITH_AES_128_CCM_8 (src/dtls/client.ts DtlsClient) as a `TinyHost.dtls`. Not part
 * of the node's API module, so not in its bundle: most runtimes a node targets give DTLS sockets over
 * hardware crypto (Zephyr, ESP-IDF esp-tls, RIOT sock_dtls, mbedTLS, tinydtls), and such a host plugs
 * its own in. `npm run build:node` bundles this apart as dist/tiny/cxmpp-dtls.mjs, which a host without
 * DTLS loads (`host.dtls = jsDtls`), with cxmpp-crypto.mjs if it has no crypto either; a device program
 * that needs it imports it and is bundled with it.
 *
 * Only names of src/tiny's interfaces cross between this bundle and the node's (both builds keep them
 * as written): the node's socket and options in, the session out (the DtlsClient itself: its connect,
 * send, onReceive and close are the session's). The DtlsCrypto, clock and scheduler it takes are made
 * here, on this side. QuickJS keeps every function's bytecode (and, from source, its text): the adapter
 * is kept to a few closures.
 */
import type { DatagramTransport, PeerAddress } from "../core/interfaces.js";
import { DtlsClient } from "../dtls/client.js";
import { TLS_PSK_WITH_AES_128_CCM_8 } from "../dtls/suites.js";
import type { TinyCrypto, TinyDatagrams, TinyDtls, TinyDtlsOptions, TinyDtlsSession } from "./host.js";

function client(socket: TinyDatagrams, o: TinyDtlsOptions): TinyDtlsSession {
  // createTinyNode checked them (jsDtls.needs).
  const { sha256, hmacSha256, aes128Ccm8Seal, aes128Ccm8Open } = o.crypto as Required<TinyCrypto>;
  const server = o.gateway as PeerAddress;
  // The node's socket as the DatagramTransport DtlsClient runs over: one peer, the gateway.
  const lower: DatagramTransport = {
    send: (data) => socket.send(data),
    onReceive: (handler) => socket.onReceive((data) => handler(data, server)),
    close() {},
  };
  return new DtlsClient(lower, {
    server,
    identity: o.identity,
    psk: o.psk,
    crypto: {
      sha256,
      hmacSha256,
      randomBytes: o.random,
      seal: (_alg, key, nonce, aad, plaintext) => aes128Ccm8Seal(key, nonce, aad, plaintext),
      open: (_alg, key, nonce, aad, sealed) => aes128Ccm8Open(key, nonce, aad, sealed),
    },
    clock: { now: o.now },
    scheduler: { schedule: o.after },
    logger: { log: o.log },
    // CoAP's mandatory suite only: its 8-byte tag is the smallest on air, and no GCM code is bundled
    // (RFC 7925 §4.2).
    suites: [TLS_PSK_WITH_AES_128_CCM_8],
    ...(o.mtu !== undefined ? { mtu: o.mtu } : {}),
  });
}

export const jsDtls: TinyDtls = Object.freeze({
  client,
  needs: Object.freeze(["hmacSha256", "sha256", "aes128Ccm8Seal", "aes128Ccm8Open"] as const),
});
