/**
 * A transport that records every datagram passing below it, both ways: what an attacker on the link
 * captures. It can send a captured datagram again (replay) and read the DTLS handshake a peer sent.
 */
import type { DatagramTransport, PeerAddress } from "../../src/core/index.js";
import { ContentType, parseRecords } from "../../src/dtls/index.js";

export class Tap<T extends DatagramTransport = DatagramTransport> implements DatagramTransport {
  readonly sent: Uint8Array[] = [];
  readonly received: Uint8Array[] = [];
  constructor(readonly inner: T) {}
  send(data: Uint8Array, peer: PeerAddress): void {
    this.sent.push(Uint8Array.from(data));
    this.inner.send(data, peer);
  }
  onReceive(handler: (data: Uint8Array, peer: PeerAddress) => void): void {
    this.inner.onReceive((data, peer) => {
      this.received.push(Uint8Array.from(data));
      handler(data, peer);
    });
  }
  close(): void {
    this.inner.close();
  }
  /** Sends a CoAP `datagram` again from the node's own address with a new message id (past deduplication). */
  replay(datagram: Uint8Array, to: PeerAddress, mid: number): void {
    const copy = Uint8Array.from(datagram);
    copy[2] = (mid >> 8) & 0xff;
    copy[3] = mid & 0xff;
    this.inner.send(copy, to);
  }
  /** The plaintext (epoch 0) DTLS handshake message types received, in order, once each. */
  handshakeTypes(): number[] {
    const types: number[] = [];
    for (const datagram of this.received)
      for (const r of parseRecords(datagram)) {
        if (r.epoch !== 0 || r.type !== ContentType.HANDSHAKE) continue;
        for (let at = 0; at + 12 <= r.fragment.length; ) {
          const type = r.fragment[at]!;
          if (!types.includes(type)) types.push(type);
          at += 12 + ((r.fragment[at + 9]! << 16) | (r.fragment[at + 10]! << 8) | r.fragment[at + 11]!);
        }
      }
    return types;
  }
}
