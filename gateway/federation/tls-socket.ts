/**
 * The component link's socket for `xmpps://HOST:PORT`: the XEP-0114 stream inside TLS from the first
 * byte ("Direct TLS", as XEP-0368 does for clients; Prosody multiplexes component streams on its Direct
 * TLS port, ejabberd's `ejabberd_service` listener takes `tls: true`). Without it the stanzas and the
 * SHA-1 handshake (XEP-0114 §3) cross the network in the clear.
 *
 * xmpp.js's connection creates `new this.Socket()`, calls `connect(params)` with what
 * `socketParameters(service)` returned, and listens for connect/data/close/error: this class is that
 * socket over node:tls, and `connect` is reported only once the server's certificate passed the check
 * below, so nothing (not even the stream header) is written to an unverified server.
 *
 * The check: with pins, the certificate's SHA-256 fingerprint must be one of them (a self-signed
 * certificate is then fine: the pin is the trust); otherwise the chain must verify to the configured CA
 * file (or the system's CAs) and the certificate must name the URL's host (RFC 6125 via node:tls).
 */
import { createHash } from "node:crypto";
import { EventEmitter } from "node:events";
import { isIP } from "node:net";
import { type TLSSocket, connect as tlsConnect } from "node:tls";

/** How xmpps:// servers are trusted. */
export interface LinkTls {
  /** PEM of the CA certificates the chain must end at; undefined: the system's CAs. */
  readonly ca?: string;
  /** SHA-256 fingerprints (lowercase hex, no colons) of acceptable server certificates. */
  readonly pins?: readonly string[];
}

/** The parameters `socketParameters` hands to TlsLinkSocket.connect. */
export interface TlsLinkParams {
  readonly host: string;
  readonly port: number;
  readonly tls: LinkTls;
}

/** The refusal of a server whose certificate failed the check; the link tries the next server. */
export class LinkCertificateError extends Error {
  override readonly name = "LinkCertificateError";
}

/** Lowercase hex SHA-256 of a certificate's DER: what `openssl x509 -fingerprint -sha256` prints, without colons. */
export function certificateFingerprint(der: Buffer): string {
  return createHash("sha256").update(der).digest("hex");
}

export class TlsLinkSocket extends EventEmitter {
  private socket: TLSSocket | undefined;
  /** xmpp.js reads this to know the stream is already encrypted. */
  readonly secure = true;

  connect(params: TlsLinkParams): void {
    const { host, port, tls } = params;
    const pinned = tls.pins !== undefined && tls.pins.length > 0;
    const socket = tlsConnect({
      host,
      port,
      // SNI only for names (RFC 6066 §3: not for IP literals).
      ...(isIP(host) === 0 ? { servername: host } : {}),
      ...(tls.ca !== undefined ? { ca: tls.ca } : {}),
      minVersion: "TLSv1.2",
      // A pin replaces the CA check, which is then done below instead of by node:tls.
      rejectUnauthorized: !pinned,
    });
    this.socket = socket;
    socket.on("secureConnect", () => {
      const refusal = pinned ? pinRefusal(socket, tls.pins!) : undefined;
      if (refusal) {
        this.emit("error", refusal);
        socket.destroy();
        return;
      }
      this.emit("connect");
    });
    socket.on("data", (data: Buffer) => this.emit("data", data));
    socket.on("error", (error: Error) => this.emit("error", asCertificateError(error, host, port)));
    socket.on("close", (hadError: boolean) => this.emit("close", hadError));
  }

  write(data: string, callback?: (error?: Error | null) => void): void {
    if (!this.socket) {
      callback?.(new Error("not connected"));
      return;
    }
    this.socket.write(data, callback);
  }

  end(): void {
    this.socket?.end();
  }

  destroy(): void {
    this.socket?.destroy();
  }

  cork(): void {
    this.socket?.cork();
  }

  uncork(): void {
    this.socket?.uncork();
  }
}

function pinRefusal(socket: TLSSocket, pins: readonly string[]): LinkCertificateError | undefined {
  const cert = socket.getPeerCertificate();
  if (!cert?.raw) return new LinkCertificateError("the XMPP server presented no certificate");
  const fingerprint = certificateFingerprint(cert.raw);
  return pins.includes(fingerprint)
    ? undefined
    : new LinkCertificateError(
        `the XMPP server's certificate (SHA-256 ${fingerprint}, subject ${cert.subject?.CN ?? "?"}) matches no xmpp_tls_pin`,
      );
}

/** node:tls's verification failures, said as the operator needs them: which server, which check. */
function asCertificateError(error: Error, host: string, port: number): Error {
  const code = (error as NodeJS.ErrnoException).code ?? "";
  if (!/CERT|SELF_SIGNED|ERR_TLS_CERT_ALTNAME_INVALID|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER/.test(code))
    return error;
  return new LinkCertificateError(
    `the certificate of the XMPP server at ${host}:${port} failed verification (${code}: ${error.message}); ` +
      "set xmpp_tls_ca to the CA file that signed it, or pin it with xmpp_tls_pin",
  );
}
