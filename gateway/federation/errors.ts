/**
 * Federation's errors, in a module of their own so that the command line can recognise them without
 * loading the XMPP libraries.
 */

/** The server refused the handshake (XEP-0114 §3: wrong secret, or a domain it does not serve). */
export class ComponentAuthError extends Error {
  override readonly name: string = "ComponentAuthError";
}
