/** A CoAP response with a short diagnostic payload (RFC 7252 §5.5.2), for the gateway's resources. */
import type { Response } from "../../src/core/index.js";

const encoder = new TextEncoder();

export function respond(code: number, message: string): Response {
  return { code, options: [], payload: encoder.encode(message) };
}
