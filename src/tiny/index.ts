/**
 * The tiny-node client people flash (docs/TINY-NODE.md): `createTinyNode(host, device)` over a host's
 * datagrams, clock, one timer and random bytes; `el()` builds the stanzas it sends. Portable: ES2022
 * only, no Node.js APIs; this file is the entry point of `npm run build:node`.
 */
// The dictionary's data first: esbuild lays modules out in import order, and its 34 KB of strings in the
// middle of the code put code on either side of it beyond gzip's 32 KB window of each other (DEFLATE,
// RFC 1951 §2): first, the code is one run that gzip codes ~0.5 KB smaller (test/tiny/bundle.test.ts).
import "../../codec/dictionary/data.js";

// SessionEncoder/SessionDecoder: the session codec the node carries anyway (NodeClient's), exported so a
// host can check the bundle itself against test/vectors (test/tiny/quickjs.test.ts); 42 bytes of names.
export { el, SessionDecoder, SessionEncoder, type XElement, type XNode } from "../../codec/index.js";
export { decodeDeviceFile, gatewayAddress, type TinyDevice } from "./device.js";
export type {
  TinyCrypto,
  TinyDatagrams,
  TinyDtls,
  TinyDtlsOptions,
  TinyDtlsSession,
  TinyHost,
} from "./host.js";
export { createTinyNode, type TinyNode, type TinyNodeOptions } from "./node.js";
