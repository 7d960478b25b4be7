/** The gateway's config: file, env and flags merged by precedence, and errors an operator can act on. */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  CONFIG_KEYS,
  ConfigError,
  type ConfigKey,
  describeConfig,
  formatHostPort,
  type LoadConfigOptions,
  loadConfig,
  parseHostPort,
} from "../../gateway/config.js";

const dir = mkdtempSync(join(tmpdir(), "cxmpp-config-"));
let files = 0;
/** Writes text (or an object as JSON) to a fresh file and returns its absolute path. */
function file(content: unknown): string {
  const path = join(dir, `c${files++}.json`);
  writeFileSync(path, typeof content === "string" ? content : JSON.stringify(content, null, 2));
  return path;
}

/** The ConfigError loadConfig throws (fails the test when it does not throw one). */
function failure(options: LoadConfigOptions): ConfigError {
  try {
    loadConfig({ env: {}, ...options });
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error("expected a ConfigError");
}

describe("loadConfig", () => {
  it("runs on defaults alone (local mode, no metrics) and resolves the data dir against cwd", () => {
    const c = loadConfig({ env: {}, cwd: "/srv/gw" });
    expect(c).toMatchObject({
      listen: { host: "127.0.0.1", port: 5683 },
      dtlsListen: { host: "127.0.0.1", port: 5684 },
      allowPlainCoap: false,
      domain: "iot.localhost",
      dataDir: "/srv/gw/cxmpp-data",
      logLevel: "info",
      metricsListen: undefined,
      xmppService: undefined,
      xmppTlsCa: undefined,
      xmppTlsPin: undefined,
      xmppDomain: "iot.localhost",
      xmppSecret: undefined,
      pubsubService: undefined,
      resource: "cxmpp",
      maxDownlinkBytes: 512,
      mailboxMaxStanzas: 100,
      mailboxMaxBytes: 16384,
      mailboxTtlS: 86400,
      durability: "full",
      sessionExpiryS: 604800,
      dtlsMaxHandshakes: 1024,
      dtlsMaxSessions: 100000,
      dtlsSessionIdleS: 86400,
    });
    expect(c.sources.listen).toBe("default");
    expect(c.sources.dtls_listen).toBe("default");
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.listen)).toBe(true);
  });

  it("reads every key from the file", () => {
    const path = file({
      listen: "[::1]:5684",
      domain: "iot.example.org",
      data_dir: "state",
      log_level: "debug",
      metrics_listen: "127.0.0.1:9464",
      xmpp_service: "xmpp://127.0.0.1:15347",
      xmpp_tls_pin: "AB:".repeat(31) + "AB",
      xmpp_domain: "sensors.example.org",
      xmpp_secret: "s3cret",
      pubsub_service: "pubsub.example.org",
      resource: "node",
      max_downlink_bytes: 64,
      mailbox_max_stanzas: 5,
      mailbox_max_bytes: 64,
      mailbox_ttl_s: 60,
      durability: "normal",
      session_expiry_s: 60,
      dtls_listen: "[::1]:15684",
      allow_plain_coap: true,
      dtls_max_handshakes: 8,
      dtls_max_sessions: 9,
      dtls_session_idle_s: 10,
    });
    const c = loadConfig({ file: path, env: {}, cwd: "/x" });
    expect(c).toMatchObject({
      listen: { host: "::1", port: 5684 },
      dtlsListen: { host: "::1", port: 15684 },
      allowPlainCoap: true,
      dtlsMaxHandshakes: 8,
      dtlsMaxSessions: 9,
      dtlsSessionIdleS: 10,
      domain: "iot.example.org",
      dataDir: "/x/state",
      logLevel: "debug",
      metricsListen: { host: "127.0.0.1", port: 9464 },
      xmppService: ["xmpp://127.0.0.1:15347"],
      xmppTlsPin: ["ab".repeat(32)],
      xmppDomain: "sensors.example.org",
      xmppSecret: "s3cret",
      pubsubService: "pubsub.example.org",
      resource: "node",
      maxDownlinkBytes: 64,
      mailboxMaxStanzas: 5,
      mailboxMaxBytes: 64,
      mailboxTtlS: 60,
      durability: "normal",
      sessionExpiryS: 60,
    });
    expect(c.sources.domain).toBe(`file ${path}`);
  });

  it('pubsub_service: a bare JID from env or file; off by default and with "off"; anything else refused', () => {
    expect(loadConfig({ env: { CXMPP_PUBSUB_SERVICE: "pubsub.localhost" } }).pubsubService).toBe(
      "pubsub.localhost",
    );
    expect(loadConfig({ env: { CXMPP_PUBSUB_SERVICE: "off" } }).pubsubService).toBeUndefined();
    expect(loadConfig({ file: file({ pubsub_service: "svc@pubsub.example" }), env: {} }).pubsubService).toBe(
      "svc@pubsub.example",
    );
    for (const bad of ["pubsub.localhost/res", "has space", "a@b@c"]) {
      const e = failure({ env: { CXMPP_PUBSUB_SERVICE: bad } });
      expect(e.key).toBe("pubsub_service");
      expect(e.message).toContain("a bare JID");
    }
  });

  it("finds a relative file against cwd", () => {
    const path = file({ domain: "rel.example" });
    expect(loadConfig({ file: path.slice(dir.length + 1), cwd: dir, env: {} }).domain).toBe("rel.example");
  });

  it("lets env override the file, and flags override env", () => {
    const path = file({ domain: "file.example", mailbox_ttl_s: 10, listen: "127.0.0.1:1" });
    const env = { CXMPP_DOMAIN: "env.example", CXMPP_MAILBOX_TTL_S: "20", CXMPP_LISTEN: "127.0.0.1:2" };
    const c = loadConfig({ file: path, env, flags: { listen: "127.0.0.1:3", mailbox_ttl_s: 30 } });
    expect(c.domain).toBe("env.example");
    expect(c.mailboxTtlS).toBe(30);
    expect(c.listen?.port).toBe(3);
    expect(c.sources).toMatchObject({
      domain: "env CXMPP_DOMAIN",
      mailbox_ttl_s: "flag --mailbox-ttl-s",
      listen: "flag --listen",
    });
    expect(loadConfig({ file: path, env }).mailboxTtlS).toBe(20);
  });

  it("skips flags that were not given, empty env vars and unrelated CXMPP_ variables", () => {
    const c = loadConfig({
      env: { CXMPP_DOMAIN: "", CXMPP_DEVICE: "x.json", CXMPP_LISTEN: "127.0.0.1:7" },
      flags: { listen: undefined },
    });
    expect(c.domain).toBe("iot.localhost");
    expect(c.listen?.port).toBe(7);
  });

  it('switches metrics and federation off with "off", also over a file that turns them on', () => {
    const path = file({ metrics_listen: "127.0.0.1:9464", xmpp_service: "xmpp://h:1", xmpp_secret: "s" });
    const c = loadConfig({ file: path, env: { CXMPP_METRICS_LISTEN: "off", CXMPP_XMPP_SERVICE: "off" } });
    expect(c.metricsListen).toBeUndefined();
    expect(c.xmppService).toBeUndefined();
    expect(loadConfig({ file: file({ metrics_listen: "" }), env: {} }).metricsListen).toBeUndefined();
  });

  it("takes several XMPP servers: a JSON array in the file, comma-separated in env and flags", () => {
    const two = ["xmpp://127.0.0.1:5347", "xmpps://xmpp2.example.org:5223"];
    expect(loadConfig({ file: file({ xmpp_service: two, xmpp_secret: "s" }), env: {} }).xmppService).toEqual(
      two,
    );
    const env = {
      CXMPP_XMPP_SERVICE: " xmpp://127.0.0.1:5347 , xmpps://xmpp2.example.org:5223",
      CXMPP_XMPP_SECRET: "s",
    };
    expect(loadConfig({ env }).xmppService).toEqual(two);
    expect(
      loadConfig({ env: {}, flags: { xmpp_service: two.join(","), xmpp_secret: "s" } }).xmppService,
    ).toEqual(two);
    // A repeat, an empty entry, a non-URL entry, an xmpps:// without its port: refused, naming the key.
    for (const bad of [[two[0], two[0]], [], [two[0], 5], ["xmpps://h"]]) {
      const e = failure({ file: file({ xmpp_service: bad, xmpp_secret: "s" }) });
      expect(e.key).toBe("xmpp_service");
      expect(e.message).toContain("expected xmpp://HOST:PORT or xmpps://HOST:PORT URLs");
    }
    expect(failure({ env: { CXMPP_XMPP_SERVICE: `${two[0]},`, CXMPP_XMPP_SECRET: "s" } }).key).toBe(
      "xmpp_service",
    );
  });

  it("reads the TLS trust of xmpps:// servers: a CA file checked at load, pinned fingerprints", () => {
    const pem = join(dir, "not-a-cert.pem");
    writeFileSync(pem, "-----BEGIN CERTIFICATE-----\nnonsense\n-----END CERTIFICATE-----\n");
    const bad = failure({ file: file({ xmpp_tls_ca: pem }) });
    expect(bad.key).toBe("xmpp_tls_ca");
    expect(bad.message).toContain("holds no PEM certificate");
    const missing = failure({ env: { CXMPP_XMPP_TLS_CA: join(dir, "nowhere.pem") } });
    expect(missing.message).toContain("no such file");
    const pins = loadConfig({
      env: { CXMPP_XMPP_TLS_PIN: `${"0".repeat(64)}, ${"F".repeat(64)}` },
    }).xmppTlsPin;
    expect(pins).toEqual(["0".repeat(64), "f".repeat(64)]);
    expect(failure({ env: { CXMPP_XMPP_TLS_PIN: "abcd" } }).key).toBe("xmpp_tls_pin");
  });

  it("defaults xmpp_domain to domain, wherever domain came from", () => {
    expect(loadConfig({ env: { CXMPP_DOMAIN: "d.example" } }).xmppDomain).toBe("d.example");
  });

  it("names an unknown file key and suggests the closest valid one", () => {
    const path = file({ domain: "x", mailbox_tll_s: 5 });
    const e = failure({ file: path });
    expect(e.key).toBe("mailbox_tll_s");
    expect(e.source).toBe(`file ${path}`);
    expect(e.message).toBe(
      `config: mailbox_tll_s (file ${path}): unknown key; did you mean "mailbox_ttl_s"?`,
    );
    expect(failure({ file: file({ dataDir: "x" }) }).message).toContain('did you mean "data_dir"?');
    expect(failure({ file: file({ zzzzzzzz: 1 }) }).message).toContain(
      "valid keys: listen, dtls_listen, allow_plain_coap, domain,",
    );
  });

  it("names key and source of a value of the wrong type in the file", () => {
    const path = file({ mailbox_ttl_s: "5" });
    const e = failure({ file: path });
    expect(e.key).toBe("mailbox_ttl_s");
    expect(e.message).toBe(`config: mailbox_ttl_s (file ${path}): expected an integer ≥ 1, got "5"`);
    expect(failure({ file: file({ max_downlink_bytes: 2048 }) }).message).toContain(
      "expected an integer from 16 to 1024, got 2048",
    );
    expect(failure({ file: file({ log_level: "loud" }) }).message).toContain(
      'expected one of debug, info, warn, error, got "loud"',
    );
    expect(failure({ file: file({ listen: "::1:5683" }) }).key).toBe("listen");
    expect(failure({ file: file({ xmpp_service: "http://h:1" }) }).key).toBe("xmpp_service");
    expect(failure({ file: file({ mailbox_max_bytes: 12.5 }) }).key).toBe("mailbox_max_bytes");
  });

  it("parses numbers from env strictly and names the variable", () => {
    const e = failure({ env: { CXMPP_MAILBOX_TTL_S: "abc" } });
    expect(e.key).toBe("mailbox_ttl_s");
    expect(e.source).toBe("env CXMPP_MAILBOX_TTL_S");
    expect(e.message).toBe(
      'config: mailbox_ttl_s (env CXMPP_MAILBOX_TTL_S): expected an integer ≥ 1, got "abc"',
    );
    for (const bad of ["12abc", " 12", "1e3", "0x10", "1.0", "-5", "99999999999999999999"]) {
      expect(failure({ env: { CXMPP_MAILBOX_TTL_S: bad } }).message).toContain(`got ${JSON.stringify(bad)}`);
    }
    expect(loadConfig({ env: { CXMPP_SESSION_EXPIRY_S: "3600" } }).sessionExpiryS).toBe(3600);
  });

  it("names the flag of a bad flag value, and refuses a flag that is no key", () => {
    const e = failure({ flags: { log_level: "verbose" } });
    expect(e.source).toBe("flag --log-level");
    expect(e.message).toContain("config: log_level (flag --log-level): expected one of");
    const unknown = failure({ flags: { logLevel: "info" } as never });
    expect(unknown.message).toContain('did you mean "log_level"?');
  });

  it("reports invalid JSON with line and column", () => {
    const path = file('{\n  "domain": "x"\n  "listen": "127.0.0.1:1"\n}\n');
    const e = failure({ file: path });
    expect(e.key).toBeUndefined();
    expect(e.source).toBe(`file ${path}`);
    expect(e.message).toMatch(/^config: file .*: invalid JSON at line 3, column 3: Expected ',' or '}'/);
    expect(failure({ file: file("") }).message).toContain("invalid JSON at line 1, column 1");
    expect(failure({ file: file("[1]") }).message).toContain("expected one JSON object");
  });

  it("reports a missing or unreadable file", () => {
    const path = join(dir, "absent.json");
    const e = failure({ file: path });
    expect(e.message).toBe(`config: file ${path}: cannot read it: no such file`);
    expect(failure({ file: dir }).message).toContain("cannot read it: it is a directory");
  });

  it("requires xmpp_secret once xmpp_service is set, without echoing secrets", () => {
    const e = failure({ env: { CXMPP_XMPP_SERVICE: "xmpp://127.0.0.1:15347" } });
    expect(e.key).toBe("xmpp_secret");
    expect(e.message).toContain("xmpp_secret");
    expect(e.message).toContain(
      "required when xmpp_service is set (xmpp_service from env CXMPP_XMPP_SERVICE)",
    );
    const ok = loadConfig({
      env: { CXMPP_XMPP_SERVICE: "xmpp://127.0.0.1:15347", CXMPP_XMPP_SECRET: "pw" },
    });
    expect(ok.xmppSecret).toBe("pw");
    const typed = failure({ file: file({ xmpp_secret: 12345678 }) });
    expect(typed.message).toContain("got a number");
    expect(typed.message).not.toContain("12345678");
  });

  it("never throws anything but ConfigError, whatever JSON object the file holds", () => {
    const keys = Object.keys(CONFIG_KEYS);
    const value = fc.oneof(
      fc.jsonValue(),
      fc.constantFrom("off", "", "127.0.0.1:1", "[::1]:80", "xmpp://h:1", "debug", "full", "x"),
      fc.integer({ min: -10, max: 70000 }),
    );
    const known = fc.dictionary(fc.constantFrom(...keys), value);
    const anyObject = fc.dictionary(fc.string(), fc.jsonValue());
    fc.assert(
      fc.property(fc.oneof(known, known, anyObject), (object) => {
        const path = join(dir, "prop.json");
        writeFileSync(path, JSON.stringify(object));
        try {
          const c = loadConfig({ file: path, env: {} });
          expect(Object.isFrozen(c)).toBe(true);
        } catch (error) {
          if (!(error instanceof ConfigError)) throw error;
          expect(error.message).toMatch(/^config: /);
        }
      }),
      { numRuns: 300 },
    );
  });

  it("never throws anything but ConfigError, whatever strings env and flags hold", () => {
    const keys = Object.keys(CONFIG_KEYS) as ConfigKey[];
    fc.assert(
      fc.property(fc.dictionary(fc.constantFrom(...keys), fc.string()), fc.boolean(), (values, asFlags) => {
        const env = Object.fromEntries(
          Object.entries(values).map(([k, v]) => [CONFIG_KEYS[k as ConfigKey].env, v]),
        );
        try {
          loadConfig(asFlags ? { env: {}, flags: values } : { env });
        } catch (error) {
          if (!(error instanceof ConfigError)) throw error;
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe("plain CoAP and DTLS listeners (secure by default)", () => {
  it("dtls_listen defaults to the host of listen on port 5684, wherever listen came from", () => {
    const c = loadConfig({ env: { CXMPP_LISTEN: "[::1]:7000" } });
    expect(c.dtlsListen).toEqual({ host: "::1", port: 5684 });
    expect(c.sources.dtls_listen).toBe("default");
    expect(loadConfig({ env: {}, flags: { listen: "127.0.0.2:1" } }).dtlsListen).toEqual({
      host: "127.0.0.2",
      port: 5684,
    });
    const set = loadConfig({ env: { CXMPP_DTLS_LISTEN: "127.0.0.1:0" } });
    expect(set.dtlsListen).toEqual({ host: "127.0.0.1", port: 0 });
    expect(set.sources.dtls_listen).toBe("env CXMPP_DTLS_LISTEN");
    expect(Object.isFrozen(set.dtlsListen)).toBe(true);
  });

  it('"off" switches either off, never both', () => {
    expect(loadConfig({ env: { CXMPP_DTLS_LISTEN: "off" } }).dtlsListen).toBeUndefined();
    const dtlsOnly = loadConfig({ file: file({ listen: "off", dtls_listen: "[::]:5684" }), env: {} });
    expect(dtlsOnly.listen).toBeUndefined();
    expect(dtlsOnly.dtlsListen).toEqual({ host: "::", port: 5684 });
    // listen off, dtls_listen by default: the default host of listen
    expect(loadConfig({ env: { CXMPP_LISTEN: "off" } }).dtlsListen).toEqual({
      host: "127.0.0.1",
      port: 5684,
    });
    const both = failure({ env: { CXMPP_LISTEN: "off", CXMPP_DTLS_LISTEN: "off" } });
    expect(both.key).toBe("listen");
    expect(both.message).toContain('plain CoAP is "off" and so is dtls_listen (env CXMPP_DTLS_LISTEN)');
    expect(both.message).toContain('set "dtls_listen" to HOST:PORT');
    expect(failure({ file: file({ dtls_listen: "5684" }) }).message).toContain(
      'expected HOST:PORT (port 0-65535, [::1]:PORT for IPv6) or "off", got "5684"',
    );
  });

  it("plain CoAP on an address other than loopback is refused unless allow_plain_coap, saying what to do", () => {
    for (const loopback of [
      "127.0.0.1:1",
      "127.8.9.10:1",
      "[::1]:1",
      "[::ffff:127.0.0.1]:1",
      "localhost:1",
    ]) {
      expect(loadConfig({ env: { CXMPP_LISTEN: loopback } }).listen).toBeDefined();
    }
    const path = file({ listen: "[::]:5683" });
    const e = failure({ file: path });
    expect(e.key).toBe("listen");
    expect(e.source).toBe(`file ${path}`);
    expect(e.message).toBe(
      `config: listen (file ${path}): [::]:5683 is not a loopback address, and plain CoAP there would let ` +
        'anyone on that network forge and read the nodes\' traffic. Either set "allow_plain_coap": true (or ' +
        "CXMPP_ALLOW_PLAIN_COAP=true) if that link is trusted, or listen on loopback (127.0.0.1:5683), or " +
        'set "listen": "off" and let the nodes use DTLS ("dtls_listen")',
    );
    for (const outside of ["0.0.0.0:5683", "192.168.1.1:5683", "[fd00::1]:5683", "gw.example:5683"]) {
      expect(failure({ env: { CXMPP_LISTEN: outside } }).key).toBe("listen");
    }
    const allowed = loadConfig({ file: file({ listen: "[::]:5683", allow_plain_coap: true }), env: {} });
    expect(allowed).toMatchObject({ listen: { host: "::", port: 5683 }, allowPlainCoap: true });
    expect(
      loadConfig({ env: { CXMPP_LISTEN: "0.0.0.0:1", CXMPP_ALLOW_PLAIN_COAP: "true" } }).allowPlainCoap,
    ).toBe(true);
    expect(failure({ env: { CXMPP_ALLOW_PLAIN_COAP: "yes" } }).message).toBe(
      'config: allow_plain_coap (env CXMPP_ALLOW_PLAIN_COAP): expected true or false, got "yes"',
    );
    expect(failure({ file: file({ allow_plain_coap: "true" }) }).key).toBe("allow_plain_coap");
  });

  it("the DTLS limits are integers ≥ 1 from file, env and flags", () => {
    const c = loadConfig({
      env: { CXMPP_DTLS_MAX_HANDSHAKES: "16", CXMPP_DTLS_SESSION_IDLE_S: "5" },
      flags: { dtls_max_sessions: 7 },
    });
    expect([c.dtlsMaxHandshakes, c.dtlsMaxSessions, c.dtlsSessionIdleS]).toEqual([16, 7, 5]);
    expect(failure({ env: { CXMPP_DTLS_MAX_SESSIONS: "0" } }).message).toContain("expected an integer ≥ 1");
  });
});

describe("host:port", () => {
  it("parses and formats IPv4, names and bracketed IPv6", () => {
    expect(parseHostPort("[::1]:5683")).toEqual({ host: "::1", port: 5683 });
    expect(parseHostPort("gw.local:0")).toEqual({ host: "gw.local", port: 0 });
    for (const bad of ["::1:5683", "[gw]:1", "h:65536", "h:", ":1", "h :1", "h:1x"])
      expect(parseHostPort(bad)).toBeUndefined();
    expect(formatHostPort({ host: "::1", port: 1 })).toBe("[::1]:1");
    expect(formatHostPort({ host: "127.0.0.1", port: 1 })).toBe("127.0.0.1:1");
  });
});

describe("CONFIG_KEYS and describeConfig", () => {
  it("describe every key with its default, env variable and flag", () => {
    expect(CONFIG_KEYS.mailbox_ttl_s).toEqual({
      description: expect.any(String),
      default: "86400",
      env: "CXMPP_MAILBOX_TTL_S",
      flag: "--mailbox-ttl-s",
    });
    const help = describeConfig();
    for (const [key, info] of Object.entries(CONFIG_KEYS)) {
      expect(help).toMatch(new RegExp(`^  ${key} `, "m"));
      expect(help.replace(/\s+/g, " ")).toContain(`default: ${info.default})`);
    }
    expect(Math.max(...help.split("\n").map((l) => l.length))).toBeLessThanOrEqual(100);
  });
});
