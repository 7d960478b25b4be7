/** HMAC-SHA-256 from node:crypto, for the session layer's connect proof (src/core Mac). */
import { createHmac } from "node:crypto";
import type { Mac } from "../core/interfaces.js";

export const nodeMac: Mac = {
  hmacSha256: (key, data) => Uint8Array.from(createHmac("sha256", key).update(data).digest()),
};
