/**
 * The ejabberd 23.01 cluster kit for interop tests. The launcher lives in bench/ejabberd-process.ts,
 * because benchmarks use it too and bench code never imports from test/; see there and docs/INTEROP.md.
 */
export * from "../../bench/ejabberd-process.js";
