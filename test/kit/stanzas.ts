/** Stanza helpers for session tests. */
import type { XElement } from "../../codec/index.js";

/** The text of a stanza's <body/>, "" without one. */
export function bodyOf(s: XElement | undefined): string {
  const body = s?.children.find((c) => typeof c !== "string" && c.name === "body");
  return body && typeof body !== "string" ? String(body.children[0] ?? "") : "";
}
