/**
 * A `TinyHost` on Node.js (src/tiny host.ts): a UDP socket, one setTimeout, node:crypto randomness;
 * no native crypto, so the tiny node runs its pure-JavaScript fallback exactly as on a device. For
 * tests and for trying the tiny node without hardware.
 */
import { randomBytes } from "node:crypto";
import type { PeerAddress } from "../core/interfaces.js";
import type { TinyHost, TinyNode } from "../tiny/index.js";
import { systemClock } from "./runtime.js";
import { UdpTransport } from "./udp-transport.js";

export interface NodeTinyHost {
  readonly host: TinyHost;
  readonly transport: UdpTransport;
  /** Hands the node every datagram from the gateway. */
  attach(node: TinyNode): void;
  close(): Promise<void>;
}

export async function nodeTinyHost(gateway: PeerAddress, bindHost = "127.0.0.1"): Promise<NodeTinyHost> {
  const transport = await UdpTransport.bind(bindHost, 0);
  let timer: NodeJS.Timeout | undefined;
  const host: TinyHost = {
    send: (datagram) => transport.send(datagram, gateway),
    now: () => systemClock.now(),
    setTimer(delayMs, fire) {
      if (timer) clearTimeout(timer);
      timer = setTimeout(() => {
        timer = undefined;
        fire();
      }, delayMs);
    },
    clearTimer() {
      if (timer) clearTimeout(timer);
      timer = undefined;
    },
    random: (n) => Uint8Array.from(randomBytes(n)),
  };
  return {
    host,
    transport,
    attach(node) {
      transport.onReceive((data, peer) => {
        if (peer === gateway) node.receive(data);
      });
    },
    async close() {
      host.clearTimer();
      transport.close();
      await transport.whenClosed();
    },
  };
}
