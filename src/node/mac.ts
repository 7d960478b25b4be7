/** HMAC-SHA-256 from node:crypto, for the session layer's connect proof (src/core Mac). */
import { createHmac } from "node:crypto";
import type { Mac } from "../core/interfaces.js";

export const nodeMac: Mac = {
  // The digest's Buffer is a Uint8Array already: no copy.
  hmacSha256: (key, data) => createHmac("sha256", key).update(data).digest(),
};
