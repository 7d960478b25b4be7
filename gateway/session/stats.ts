/** The gateway's running counts, shared by the parts of the session layer and read by metrics. */

export interface GatewayStats {
  connects: number;
  refusedConnects: number;
  stanzasIn: number;
  stanzasOut: number;
  telemetryIn: number;
  duplicateFrames: number;
  badFrames: number;
  bytesIn: number;
  /** Downlink frame bytes, counted when a frame is first sent (not its resends). */
  bytesOut: number;
  /**
   * The same stanzas as XML would have been (for "bytes saved by the codec"): exact for the first 256,
   * then estimated from every 16th stanza (router.ts XmlSizeSampler).
   */
  xmlBytesIn: number;
  /** Stanzas queued for nodes, as XML (estimated the same way). */
  xmlBytesOut: number;
  /** Frames that referenced a table entry the gateway does not hold. */
  tableMisses: number;
  mailboxFull: number;
  mailboxExpired: number;
  mailboxCoalesced: number;
  presenceSent: number;
  storeFailures: number;
  /** iq results that answered nothing the recipient had asked (dropped). */
  unsolicited: number;
  /** Uplinks refused for acknowledging downlink frames never sent. */
  badAcks: number;
  /** NON readings dropped because their telemetry number was routed before (replays). */
  replayedTelemetry: number;
  /** NON readings dropped because a newer reading or stanza of the node was routed first. */
  outOfOrderTelemetry: number;
  /** Uplink frames beyond h + 1 (an earlier one missing): not taken, the node resends in order. */
  gaps: number;
  /** Used connect nonces forgotten early because the table was full (maxUsedNonces). */
  usedNoncesEvicted: number;
}

export function emptyStats(): GatewayStats {
  return {
    connects: 0,
    refusedConnects: 0,
    stanzasIn: 0,
    stanzasOut: 0,
    telemetryIn: 0,
    duplicateFrames: 0,
    badFrames: 0,
    bytesIn: 0,
    bytesOut: 0,
    xmlBytesIn: 0,
    xmlBytesOut: 0,
    tableMisses: 0,
    mailboxFull: 0,
    mailboxExpired: 0,
    mailboxCoalesced: 0,
    presenceSent: 0,
    storeFailures: 0,
    unsolicited: 0,
    badAcks: 0,
    replayedTelemetry: 0,
    outOfOrderTelemetry: 0,
    gaps: 0,
    usedNoncesEvicted: 0,
  };
}
