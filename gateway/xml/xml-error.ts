/** The error for XML text that is not well-formed (XML 1.0) or not namespace-well-formed (Namespaces). */
export class XmlError extends Error {
  override readonly name = "XmlError";
}
