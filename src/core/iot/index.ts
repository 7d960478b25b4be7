/** XMPP's IoT vocabulary as codec trees: sensor data (XEP-0323), control (XEP-0325), publishing (XEP-0060). */
export * from "./control.js";
export * from "./pubsub.js";
export * from "./sensordata.js";
