/**
 * An in-memory datagram network for unit tests: endpoints by address, delivery after a delay on the
 * fake clock, with seeded loss, duplication and reordering per direction, and a log of every datagram
 * (for lockstep assertions).
 */
import type { DatagramTransport, PeerAddress } from "../../src/core/interfaces.js";
import type { FakeTime } from "./fake-time.js";
import { seededRandom } from "./seeded-random.js";

export interface LinkConditions {
  /** Probability a datagram is dropped. */
  loss?: number;
  /** Probability a delivered datagram is delivered twice. */
  duplicate?: number;
  /** Probability a datagram is held back by `reorderDelayMs` extra. */
  reorder?: number;
  delayMs?: number;
  reorderDelayMs?: number;
}

export interface WireRecord {
  readonly at: number;
  readonly from: PeerAddress;
  readonly to: PeerAddress;
  readonly data: Uint8Array;
  readonly dropped: boolean;
}

export class LossyNetwork {
  readonly log: WireRecord[] = [];
  private readonly handlers = new Map<PeerAddress, (data: Uint8Array, peer: PeerAddress) => void>();
  private readonly random: () => number;
  private conditions: LinkConditions;

  constructor(
    private readonly time: FakeTime,
    conditions: LinkConditions = {},
    seed = 1,
  ) {
    this.conditions = conditions;
    this.random = seededRandom(seed);
  }

  setConditions(conditions: LinkConditions): void {
    this.conditions = conditions;
  }

  transport(address: string): DatagramTransport & { readonly address: PeerAddress } {
    const self = address as PeerAddress;
    return {
      address: self,
      send: (data, peer) => this.deliver(self, peer, Uint8Array.from(data)),
      onReceive: (handler) => void this.handlers.set(self, handler),
      close: () => void this.handlers.delete(self),
    };
  }

  private deliver(from: PeerAddress, to: PeerAddress, data: Uint8Array): void {
    const c = this.conditions;
    const dropped = this.random() < (c.loss ?? 0);
    this.log.push({ at: this.time.now(), from, to, data, dropped });
    if (dropped) return;
    const copies = this.random() < (c.duplicate ?? 0) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const late = this.random() < (c.reorder ?? 0) ? (c.reorderDelayMs ?? 300) : 0;
      this.time.schedule((c.delayMs ?? 1) + late + i, () => this.handlers.get(to)?.(data, from));
    }
  }
}
