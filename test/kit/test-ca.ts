/**
 * A throwaway test PKI made with the `openssl` CLI in a temporary directory: a CA, a server certificate
 * it signed (SAN: the given DNS names and IP addresses), and a second, unrelated CA with a server
 * certificate of its own for "a wrong certificate is refused" tests. Keys are EC P-256 (instant to
 * make), certificates valid for two days. Also the SHA-256 of each server certificate's DER and of its
 * SubjectPublicKeyInfo, lowercase hex, for pinning tests.
 *
 * The directory and the certificates are world-readable, the keys only by their owner and, when the
 * system has a group `ejabberd`, by that group (ejabberd runs as the user `ejabberd` and reads the
 * combined PEM of its `certfiles`); this is test material, never a real secret.
 */
import { execFile } from "node:child_process";
import { createHash, X509Certificate } from "node:crypto";
import { chmod, chown, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);

export interface TestCa {
  /** CA certificate (PEM file). */
  readonly cert: string;
  /** CA private key (PEM file). */
  readonly key: string;
  /** The CA certificate's PEM text, e.g. for `tls.connect({ ca })`. */
  readonly certPem: string;
}

export interface TestServerCert {
  /** Server certificate (PEM file). */
  readonly cert: string;
  /** Server private key (PEM file, PKCS#8). */
  readonly key: string;
  /** Certificate followed by the key in one PEM file (ejabberd `certfiles`). */
  readonly combined: string;
  readonly certPem: string;
  readonly keyPem: string;
  /** SHA-256 of the certificate's DER, lowercase hex. */
  readonly fingerprintSha256: string;
  /** SHA-256 of the certificate's DER SubjectPublicKeyInfo, lowercase hex. */
  readonly spkiSha256: string;
}

export interface TestPki {
  readonly dir: string;
  readonly ca: TestCa;
  /** Signed by `ca`, for the requested names and IPs. */
  readonly server: TestServerCert;
  /** A second CA with no relation to `ca`. */
  readonly wrongCa: TestCa;
  /** Signed by `wrongCa`, for the same names and IPs. */
  readonly wrongServer: TestServerCert;
  /** Removes the directory. */
  cleanup(): Promise<void>;
}

export interface TestPkiOptions {
  /** DNS names of the server certificate (the first is also its CN). Default ["localhost"]. */
  readonly names?: readonly string[];
  /** IP addresses of the server certificate. Default ["127.0.0.1"]. */
  readonly ips?: readonly string[];
}

const EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];

async function openssl(dir: string, args: readonly string[]): Promise<void> {
  try {
    await execFileAsync("openssl", [...args], { cwd: dir, timeout: 30_000 });
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? "";
    throw new Error(`openssl ${args[0]} failed: ${String(error)}\n${stderr}`);
  }
}

/** The gid of group `ejabberd`, or undefined when the system has none. */
async function ejabberdGid(): Promise<number | undefined> {
  try {
    const { stdout } = await execFileAsync("getent", ["group", "ejabberd"]);
    const gid = Number(stdout.split(":")[2]);
    return Number.isInteger(gid) ? gid : undefined;
  } catch {
    return undefined;
  }
}

async function makeCa(dir: string, name: string, cn: string): Promise<TestCa> {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  await openssl(dir, [
    "req",
    "-x509",
    ...EC,
    "-keyout",
    key,
    "-out",
    cert,
    "-days",
    "2",
    "-subj",
    `/CN=${cn}`,
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  ]);
  return { cert, key, certPem: await readFile(cert, "utf8") };
}

async function makeServer(
  dir: string,
  name: string,
  ca: TestCa,
  names: readonly string[],
  ips: readonly string[],
  gid: number | undefined,
): Promise<TestServerCert> {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  const combined = join(dir, `${name}.pem`);
  const san = [...names.map((n) => `DNS:${n}`), ...ips.map((ip) => `IP:${ip}`)].join(",");
  await writeFile(
    ext,
    [
      "basicConstraints=critical,CA:FALSE",
      "keyUsage=critical,digitalSignature,keyEncipherment",
      "extendedKeyUsage=serverAuth,clientAuth",
      `subjectAltName=${san}`,
      "",
    ].join("\n"),
  );
  await openssl(dir, ["req", ...EC, "-keyout", key, "-out", csr, "-subj", `/CN=${names[0] ?? ips[0]}`]);
  await openssl(dir, [
    "x509",
    "-req",
    "-in",
    csr,
    "-CA",
    ca.cert,
    "-CAkey",
    ca.key,
    "-set_serial",
    `0x${Date.now().toString(16)}${Math.floor(Math.random() * 0xffff).toString(16)}`,
    "-days",
    "2",
    "-extfile",
    ext,
    "-out",
    cert,
  ]);
  const certPem = await readFile(cert, "utf8");
  const keyPem = await readFile(key, "utf8");
  await writeFile(combined, certPem + keyPem);
  for (const k of [key, combined]) {
    await chmod(k, gid === undefined ? 0o600 : 0o640);
    if (gid !== undefined) await chown(k, process.getuid?.() ?? 0, gid);
  }
  const x509 = new X509Certificate(certPem);
  const sha256 = (data: Buffer) => createHash("sha256").update(data).digest("hex");
  return {
    cert,
    key,
    combined,
    certPem,
    keyPem,
    fingerprintSha256: sha256(x509.raw),
    spkiSha256: sha256(x509.publicKey.export({ type: "spki", format: "der" })),
  };
}

/** Makes the PKI (about 0.1 s); call `cleanup()` when done. */
export async function makeTestPki(options: TestPkiOptions = {}): Promise<TestPki> {
  const names = options.names ?? ["localhost"];
  const ips = options.ips ?? ["127.0.0.1"];
  if (names.length + ips.length === 0) throw new Error("a server certificate needs a name or an IP");
  const dir = await mkdtemp(join(tmpdir(), "cxmpp-pki-"));
  const cleanup = () => rm(dir, { recursive: true, force: true });
  try {
    await chmod(dir, 0o755);
    const gid = process.getuid?.() === 0 ? await ejabberdGid() : undefined;
    const ca = await makeCa(dir, "ca", "cxmpp test CA");
    const wrongCa = await makeCa(dir, "wrong-ca", "cxmpp unrelated test CA");
    const server = await makeServer(dir, "server", ca, names, ips, gid);
    const wrongServer = await makeServer(dir, "wrong-server", wrongCa, names, ips, gid);
    return {
      dir,
      ca,
      server,
      wrongCa,
      wrongServer,
      cleanup,
    };
  } catch (error) {
    await cleanup();
    throw error;
  }
}
