/**
 * The `cxmpp` command line: a thin shell over `main(argv)`, which returns the exit code.
 * Each subcommand lives in its own module, imported only when that command runs: `cxmpp gateway` never
 * loads the benchmarks (bench/) or the demo (examples/), and `--help` loads neither.
 */
import { Command, CommanderError, Option } from "commander";
import { describeConfig } from "../config.js";
import { versionLine } from "../version.js";

/** How every command that reads the store finds it (gateway/cli/settings.ts). */
const dataDirOption = () =>
  new Option("--data-dir <dir>", "state directory (env CXMPP_DATA_DIR; default ./cxmpp-data)");
const configOption = () =>
  new Option(
    "--config <file>",
    "the gateway's config file (env CXMPP_CONFIG; default ./cxmpp.json if present)",
  );

export async function main(argv: readonly string[]): Promise<number> {
  let code = 0;
  const program = new Command()
    .name("cxmpp")
    .description("Compact, binary-encoded XMPP for constrained networks")
    .version(
      versionLine(),
      "-V, --version",
      "print the package version, wire-format version and dictionary id",
    )
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });

  const collect = (value: string, previous: string[] = []) => [...previous, value];

  program
    .command("gateway")
    .description("run the gateway: CoAP on UDP for nodes, durable mailboxes, local routing, the outbox")
    .option("--config <file>", "JSON config file (env CXMPP_CONFIG; default ./cxmpp.json if present)")
    .option(
      "--dtls-listen <host:port>",
      'CoAP over DTLS (coaps) address, or "off" (env CXMPP_DTLS_LISTEN; default the host of listen, port 5684)',
    )
    .option("--listen <host:port>", 'plain CoAP address, or "off" (env CXMPP_LISTEN; default 127.0.0.1:5683)')
    .option("--domain <domain>", "XMPP domain of the nodes (env CXMPP_DOMAIN; default iot.localhost)")
    .addOption(dataDirOption())
    .option("--log-level <level>", "debug | info | warn | error (env CXMPP_LOG_LEVEL)")
    .option("--metrics-listen <host:port>", "serve Prometheus metrics at /metrics (env CXMPP_METRICS_LISTEN)")
    .option("--cores <n>", "1, or 2: the UDP sockets on a thread of their own (env CXMPP_CORES; default 1)")
    .option(
      "--check-config",
      "print the resolved configuration as JSON (every key, its source, secrets masked) and exit: 0 if valid, 2 if not; opens no socket and no store",
    )
    .addHelpText(
      "after",
      `\nConfig keys (file key, env CXMPP_<KEY>, flag; flags win over env, env over the file):\n${describeConfig()}`,
    )
    .action(async (opts) => {
      if (opts.checkConfig) code = (await import("./check-config.js")).runCheckConfig(opts);
      else code = await (await import("./gateway-command.js")).runGateway(opts);
    });

  const provision = program.command("provision").description("register devices and write their device files");
  provision
    .command("add")
    .description("register a device; print or write its device file")
    .argument("<name>", "device name: its identity and the local part of its JID")
    .option("--allow <jid>", "a peer the node talks to (repeatable)", collect)
    .option("--out <file>", "write the device file here (CBOR; a name ending in .json gets the JSON view)")
    .option("--domain <domain>", "XMPP domain (env CXMPP_DOMAIN; default iot.localhost)")
    .option(
      "--gateway <uri>",
      "gateway address for the device file: coaps://HOST:PORT, coap://HOST:PORT, or HOST:PORT (coaps for a " +
        "DTLS-only device); default: dtls_listen for a DTLS-only device, listen otherwise",
    )
    .option(
      "--psk <text>",
      "use the bytes of TEXT as the key (16-64 printable ASCII characters), for DTLS peers that take only " +
        "text keys; default: 16 random bytes. It is visible to other users in the process list",
    )
    .option(
      "--dtls-only",
      "the device may only connect over DTLS (default when dtls_listen is on, as it is by default)",
    )
    .option("--no-dtls-only", "the device may connect over plain CoAP too (default when dtls_listen is off)")
    .addOption(dataDirOption())
    .addOption(configOption())
    .addHelpText(
      "after",
      "\nThe device file holds the key: it is written with mode 0600. `provision show NAME --json` prints the\n" +
        "identity and key_hex again (for DTLS clients: PSK identity = the name, key = key_hex).",
    )
    .action(async (name: string, opts) => {
      code = (await import("./provision-command.js")).runProvisionAdd(name, opts);
    });
  provision
    .command("list")
    .description("list registered devices")
    .option("--json", "as JSON (identity, jid, peers, revoked, dtls_only)")
    .addOption(dataDirOption())
    .addOption(configOption())
    .action(async (opts) => {
      code = (await import("./provision-command.js")).runProvisionList(opts);
    });
  provision
    .command("show")
    .description("show one device (with its key)")
    .argument("<name>")
    .option("--json", "as JSON: identity, jid, peers, revoked, dtls_only, key_hex, gateway, dictionary")
    .option("--gateway <uri>", "the gateway address to show, as for `provision add`")
    .addOption(dataDirOption())
    .addOption(configOption())
    .action(async (name: string, opts) => {
      code = (await import("./provision-command.js")).runProvisionShow(name, opts);
    });
  provision
    .command("set")
    .description("change a device: --dtls-only (from its next connect) or --no-dtls-only")
    .argument("<name>")
    .option("--dtls-only", "the device may only connect over DTLS")
    .option("--no-dtls-only", "the device may connect over plain CoAP too (trusted links)")
    .option("--out <file>", "write its new device file here (CBOR; .json gets the JSON view)")
    .option("--gateway <uri>", "the gateway address for that file, as for `provision add`")
    .addOption(dataDirOption())
    .addOption(configOption())
    .action(async (name: string, opts) => {
      code = (await import("./provision-command.js")).runProvisionSet(name, opts);
    });
  provision
    .command("revoke")
    .description("revoke a device: a running gateway refuses it at its next exchange")
    .argument("<name>")
    .addOption(dataDirOption())
    .addOption(configOption())
    .action(async (name: string, opts) => {
      code = (await import("./provision-command.js")).runProvisionRevoke(name, opts);
    });

  const store = program
    .command("store")
    .description(
      "back up and restore the gateway's store (devices and their keys, sessions, mailboxes, outbox)",
    );
  store
    .command("backup")
    .description("copy the store to a file while the gateway runs (SQLite online backup), check the copy")
    .option("--out <file>", "the backup file to write (mode 0600: it holds the device keys); required")
    .addOption(dataDirOption())
    .addOption(configOption())
    .addHelpText(
      "after",
      "\nThe copy is one consistent snapshot, taken without stopping the gateway. It is checked (SQLite\n" +
        "integrity check, schema version) and written beside --out first, then renamed into place.\n" +
        "Prints one line: the file, its size, and the devices, sessions and queued stanzas it holds.\n" +
        "Exit 0 when written, 2 when not (no store in the data directory, destination not writable, …).",
    )
    .action(async (opts) => {
      code = await (await import("./store-command.js")).runStoreBackup(opts);
    });
  store
    .command("restore")
    .description("replace the store with a backup; the gateway must be stopped")
    .argument("<file>", "a backup written by `cxmpp store backup`")
    .addOption(dataDirOption())
    .addOption(configOption())
    .addHelpText(
      "after",
      "\nRefused while a gateway runs on the data directory, and when the file is not a cxmpp store this\n" +
        "release can run (integrity check, schema version): then nothing is changed. The current store\n" +
        "(cxmpp.db with its -wal and -shm) is kept as cxmpp.db.before-restore-<UTC time>, never deleted.\n" +
        "Exit 0 when restored, 2 when refused.",
    )
    .action(async (file: string, opts) => {
      code = (await import("./store-command.js")).runStoreRestore(file, opts);
    });

  const node = program.command("node").description("a simulated node on UDP");
  node
    .command("run")
    .description("connect and print every stanza received, one line of XML each, until Ctrl-C")
    .requiredOption("--device <file>", "device file from `cxmpp provision add`")
    .option("--poll <seconds>", "ask for downlink this often (default 2, or the --wake interval)")
    .option("--wake <seconds>", "be a sleepy node: wake every N seconds, asleep (xa) in between")
    .option(
      "--state <file>",
      "a JSON state file: answer XEP-0323 readouts from it and apply XEP-0325 control to it",
    )
    .option("--log-level <level>", "debug | info | warn | error")
    .addHelpText(
      "after",
      "\nThe state file (--state):\n" +
        '  {"fields": {"temperature": {"value": "21.5", "unit": "°C", "type": "numeric"},\n' +
        '              "relay": {"value": "false", "type": "boolean", "writable": true}}}\n' +
        "Per field: value (required), unit (numeric), type (numeric | boolean | string | int | long |\n" +
        "dateTime | timeSpan | enum; default from the value: a number is numeric, true/false boolean,\n" +
        'anything else string), writable (default false), flags (default ["momentary"]). A readout\n' +
        "(iq get <req xmlns='urn:xmpp:iot:sensordata'>) is accepted and answered with one <fields done>\n" +
        "message of the requested fields; one naming only unknown fields is rejected. A control <set>\n" +
        "(urn:xmpp:iot:control) changes writable fields of a matching type and rewrites the file\n" +
        "atomically; in an iq it is answered <setResponse responseCode='OK'/>, or refused (NotFound,\n" +
        "FormError) with nothing changed. The file is read again for every request. One line on stderr\n" +
        "per answer; a sleepy node answers at the wake-up that brings the request.",
    )
    .action(async (opts) => {
      code = await (await import("./node-command.js")).runNodeRun(opts);
    });
  node
    .command("send")
    .description(
      "send one message (--to, --body) or any stanza (--xml); exit 0 only when acknowledged end to end",
    )
    .requiredOption("--device <file>", "device file from `cxmpp provision add`")
    .option("--to <jid>", "recipient of a chat message (with --body)")
    .option("--body <text>", "message text (with --to)")
    .option("--xml <stanza>", "a whole message, presence or iq as XML text (jabber:client by default)")
    .option("--timeout <seconds>", "give up after this long (default 30)")
    .option("--log-level <level>", "debug | info | warn | error")
    .addHelpText(
      "after",
      "\nAn iq get or set (--xml) waits for its reply and prints it as one line of XML on stdout: exit 0\n" +
        "for a result, 1 for an error (its condition on stderr) or no reply within --timeout. An iq without\n" +
        "an id gets one. Exit 1 when not acknowledged, 2 for XML that does not parse or is not a stanza.\n" +
        "The reply is delivered to the device's JID: do not run `node run` with the same device meanwhile.",
    )
    .action(async (opts) => {
      code = await (await import("./node-command.js")).runNodeSend(opts);
    });
  node
    .command("publish")
    .description("publish one item to a XEP-0060 pubsub node; print its item id")
    .requiredOption("--device <file>", "device file from `cxmpp provision add`")
    .requiredOption("--service <jid>", "the pubsub service (e.g. pubsub.example.org)")
    .requiredOption("--node <name>", "the pubsub node")
    .requiredOption("--payload <xml>", "the item's payload as XML text, with its own xmlns")
    .option("--item-id <id>", "the item id (default: the service chooses)")
    .option("--timeout <seconds>", "give up after this long (default 30)")
    .option("--log-level <level>", "debug | info | warn | error")
    .addHelpText(
      "after",
      "\nExit 0 when the service returned its result (the item id on stdout), 1 with the error condition\n" +
        "on stderr (e.g. forbidden, item-not-found, remote-server-not-found) or no reply within --timeout,\n" +
        "2 when the payload does not parse.",
    )
    .action(async (opts) => {
      code = await (await import("./node-command.js")).runNodePublish(opts);
    });
  node
    .command("report")
    .description("send one XEP-0323 sensor data message (momentary, timestamped now)")
    .requiredOption("--device <file>", "device file from `cxmpp provision add`")
    .requiredOption("--to <jid>", "recipient")
    .argument("<fields...>", "name=value[unit], e.g. temperature=21.5°C count=3 door=true mode=eco")
    .option("--timeout <seconds>", "give up after this long (default 30)")
    .option("--log-level <level>", "debug | info | warn | error")
    .addHelpText(
      "after",
      "\nA value that is a number is numeric, with the rest as its unit (21.5°C, 55%, 3); true or false\n" +
        "is boolean; anything else a string. Exit 0 once the gateway acknowledged it, 2 for an argument\n" +
        "that is not name=value.",
    )
    .action(async (fields: string[], opts) => {
      code = await (await import("./node-command.js")).runNodeReport(opts, fields);
    });

  program
    .command("decode")
    .description("show a cxmpp frame as CBOR diagnostic notation and as XML")
    .argument("<frame>", "the frame as hex, or a file holding it (binary or hex)")
    .option("--session-aliases <list>", "comma-separated alias strings (table entries 0…n-1) of the session")
    .action(async (frame: string, opts: { sessionAliases?: string }) => {
      code = await (await import("./decode.js")).runDecode(frame, opts);
    });

  const bench = program
    .command("bench")
    .description("benchmarks, with the anchors printed beside our figures");
  bench
    .command("codec")
    .description("per-stanza sizes and speed of the codec beside XML, deflate, EXI and CBOR")
    .option(
      "--corpus <file>",
      "JSONL with an `xml` field per line (default: corpus/visible.jsonl of this package)",
    )
    .option("--session", "session mode: one session per `xep` value, table warm and acknowledged")
    .option("--emit <file>", "write one JSON line per input line: {i, bytes, hex, xml} or {i, error}")
    .option("--chart <file>", "write an SVG chart of the size distributions")
    .option("--json", "print the summary as JSON")
    .option("--no-speed", "skip the throughput measurement")
    .action(async (opts) => {
      code = await (await import("../../bench/codec.js")).runCodecBench(opts);
    });

  bench
    .command("session")
    .description(
      "the session layer over real UDP on loopback: throughput, gateway CPU, delivery under loss, bytes on air, memory per session, with the Paho MQTT-SN anchors beside",
    )
    .option("--nodes <n>", "simulated nodes, 1-5000 (default 10)")
    .option("--stanzas <m>", "stanzas per node (default 100)")
    .option("--loss <p>", "drop probability per direction, 0 ≤ p < 1, through a seeded UDP relay (default 0)")
    .option("--seed <n>", "seed of the loss relay and the readings (default 1)")
    .option("--telemetry", "send NON telemetry instead of reliable CON stanzas")
    .option("--ack-timeout <ms>", "CoAP ACK timeout when --loss > 0 (default 100)")
    .option(
      "--store <kind>",
      "gateway state: memory (default), or SQLite in a temp dir with durability full | normal",
    )
    .option(
      "--load-processes <n>",
      "processes that run the nodes, 1-16 (default 1 below 100 nodes, else min(2, cores)); each reports its CPU share",
    )
    .option(
      "--idle <n>",
      "connect and hold N idle sessions over real UDP first: RSS/heap per session and per device, connects/s, idle CPU (alone, or beside --nodes)",
    )
    .option("--idle-wake <s>", "what the idle nodes say they sleep, seconds (default 0: always on)")
    .option("--window <w>", "reliable stanzas each node keeps in flight, 1-64 (default 1: one at a time)")
    .option("--cores <n>", "gateway cores: 1 (default), or 2 with its UDP socket on its own thread")
    .option("--json", "print one JSON object (with --suite: {suite: [...], memory, elapsed_s})")
    .option("--suite", "run the standard suite (also the default when no other option is given)")
    .action(async (opts) => {
      code = await (await import("../../bench/session.js")).runSessionBench(opts);
    });

  bench
    .command("wake")
    .description(
      "one wake-up of a sleepy node with 1, 10, 100 stanzas queued: exchanges, datagrams and bytes on air to drain, beside XML and MQTT-SN",
    )
    .option("--counts <list>", "stanzas queued per run, comma-separated (default 1,10,100)")
    .option("--store <kind>", "gateway state: full (default) | normal (SQLite in a temp dir) | memory")
    .option("--max-downlink-bytes <n>", "frame bytes per response, 64-60000 (default 512)")
    .option("--seed <n>", "seed of the stanzas' values (default 1)")
    .option("--json", "print one JSON object {runs: [...], mqtt_sn_formula, anchors}")
    .action(async (opts) => {
      code = await (await import("../../bench/wake.js")).runWakeBench(opts);
    });

  bench
    .command("federation")
    .description(
      "stanzas/s from nodes through the gateway into a real Prosody and out to a client, and back; gateway and Prosody CPU per stanza beside the Paho MQTT-SN anchor",
    )
    .option("--nodes <n>", "simulated always-on nodes, 1-1000 (default 10)")
    .option("--stanzas <m>", "stanzas per node, each way (default 100)")
    .option("--window <w>", "downlink stanzas per node in flight from the client, 1-100 (default 16)")
    .option("--durability <mode>", "the gateway's SQLite durability: full (default) | normal")
    .option("--json", "print one JSON object {uplink, downlink, …}")
    .action(async (opts) => {
      code = await (await import("../../bench/federation.js")).runFederationBench(opts);
    });

  bench
    .command("cluster")
    .description(
      "stanzas/s through a real two-node ejabberd cluster with 1 and 2 gateways, CPU per stanza of every process, and the component link's failover time and duplicates when an ejabberd node is SIGKILLed under load (needs root and ejabberd)",
    )
    .option("--gateways <g>", "1 or 2 (default: both runs, then the failover run)")
    .option("--nodes <n>", "simulated always-on nodes in all, split over the gateways, 1-1000 (default 20)")
    .option("--stanzas <m>", "stanzas per node (default 100)")
    .option("--durability <mode>", "the gateways' SQLite durability: full (default) | normal")
    .option("--failover", "also run the failover measurement (default when --gateways is not given)")
    .option("--no-failover", "skip the failover measurement")
    .option("--json", "print one JSON object {runs, failover, …}")
    .action(async (opts) => {
      code = await (await import("../../bench/cluster.js")).runClusterBench(opts);
    });

  bench
    .command("soak")
    .description(
      "a gateway for a long while under lossy nodes, spoofed floods and hostile datagrams: every acknowledged stanza once and in order, CoAP tables at their caps, heap after GC bounded",
    )
    .option("--duration <s>", "seconds of load, 5-86400 (default 60)")
    .option("--nodes <n>", "normal nodes, 1-200 (default 20)")
    .option("--loss <p>", "drop probability per direction for the nodes, 0 ≤ p < 1 (default 0.2)")
    .option("--seed <n>", "seed of the relay, the nodes and the flood (default 1)")
    .option("--flood-rate <n>", "spoofed and hostile datagrams per second, 0-5000 (default 300)")
    .option("--interval <ms>", "mean time between two things a node sends (default 100)")
    .option("--heap-bound <MiB>", "allowed growth of the heap after GC (default 64)")
    .option("--json", "print one JSON object")
    .action(async (opts) => {
      code = await (await import("../../bench/soak.js")).runSoakBench(opts);
    });

  bench
    .command("dtls")
    .description(
      "DTLS 1.2 PSK on the node link: handshake round trips and bytes, bytes on air per reading with and without DTLS, handshakes/s and records/s of the server, gateway CPU per stanza over DTLS beside plain UDP, with the MQTT-SN anchors beside",
    )
    .option("--handshakes <n>", "handshakes per suite and connects per mode, 1-1000 (default 20)")
    .option("--readings <n>", "readings per mode, CON and NON each, 1-1000 (default 20)")
    .option("--duration <s>", "seconds of each server load phase, 0.2-600 (default 3)")
    .option("--clients <n>", "concurrent node sockets loading the server, 1-1000 (default 32)")
    .option("--nodes <list>", "node counts of the gateway comparison, comma-separated (default 10,100)")
    .option("--stanzas <m>", "stanzas per node in the gateway comparison (default 10,000 / nodes)")
    .option("--stores <list>", "gateway stores compared: memory, full, normal (default memory,full)")
    .option("--seed <n>", "seed of the keys and readings (default 1)")
    .option("--json", "print one JSON object {handshake, connect, bytes, server, gateway, anchors}")
    .action(async (opts) => {
      code = await (await import("../../bench/dtls.js")).runDtlsBench(opts);
    });

  bench
    .command("iot")
    .description(
      "bytes on air per IoT flow (a pubsub publish, a readout answer, a control set) on the node link, plain and DTLS CCM_8, first in a session and warm, beside the same stanzas as XML and MQTT-SN",
    )
    .option("--repeat <n>", "runs of each flow per session; the last is the warm one, 2-1000 (default 10)")
    .option("--seed <n>", "seed of the keys, values and ids (default 1)")
    .option("--json", "print one JSON object {flows, record_overhead, mqtt_sn, …}")
    .action(async (opts) => {
      code = await (await import("../../bench/iot.js")).runIotBench(opts);
    });

  program
    .command("demo")
    .description(
      "a gateway and three simulated nodes (sensor, actuator, sleepy sensor) over a lossy link on loopback, live",
    )
    .option("--duration <s>", "stop after this many seconds (default: run until Ctrl-C)")
    .option(
      "--loss <p>",
      "drop probability per direction, 0 ≤ p < 1, through a seeded UDP relay (default 0.2)",
    )
    .option("--seed <n>", "seed of the loss relay and the readings (default 1)")
    .option("--wake <s>", "seconds the sleepy sensor sleeps between wake-ups (default 8)")
    .option("--json", "at the end print one JSON object per node and one for the gateway, one per line")
    .action(async (opts) => {
      code = await (await import("../../examples/demo.js")).runDemo(opts);
    });

  try {
    await program.parseAsync([...argv], { from: "user" });
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode;
    throw error;
  }
  return code;
}
