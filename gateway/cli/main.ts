/**
 * The `cxmpp` command line: a thin shell over `main(argv)`, which returns the exit code.
 * Each subcommand lives in its own module; this file only wires them.
 */
import { Command, CommanderError } from "commander";
import { runCodecBench } from "./bench-codec.js";
import { runDecode } from "./decode.js";

export async function main(argv: readonly string[]): Promise<number> {
  let code = 0;
  const program = new Command()
    .name("cxmpp")
    .description("Compact, binary-encoded XMPP for constrained networks")
    .version("0.1.0")
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });

  program
    .command("decode")
    .description("show a cxmpp frame as CBOR diagnostic notation and as XML")
    .argument("<frame>", "the frame as hex, or a file holding it (binary or hex)")
    .option("--session-aliases <list>", "comma-separated alias strings (table entries 0…n-1) of the session")
    .action(async (frame: string, opts: { sessionAliases?: string }) => {
      code = await runDecode(frame, opts);
    });

  const bench = program
    .command("bench")
    .description("benchmarks, with the anchors printed beside our figures");
  bench
    .command("codec")
    .description("per-stanza sizes and speed of the codec beside XML, deflate, EXI and CBOR")
    .option("--corpus <file>", "JSONL with an `xml` field per line (default: ../shared/corpus/visible.jsonl)")
    .option("--session", "session mode: one session per `xep` value, table warm and acknowledged")
    .option("--emit <file>", "write one JSON line per input line: {i, bytes, hex, xml} or {i, error}")
    .option("--chart <file>", "write an SVG chart of the size distributions")
    .option("--json", "print the summary as JSON")
    .option("--no-speed", "skip the throughput measurement")
    .action(async (opts) => {
      code = await runCodecBench(opts);
    });

  try {
    await program.parseAsync([...argv], { from: "user" });
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode;
    throw error;
  }
  return code;
}
