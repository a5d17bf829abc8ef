#!/usr/bin/env node
/**
 * The command-line entry point: `node src/bin/cli.ts <command> ...` (`src/cli/run.ts`).
 * An older Node is told so in one line (what Lambda runs, Node 24, is what this needs: it loads an
 * author's `.ts` module as it is). Node's compile cache goes on first, so each later start skips
 * most parsing and compiling (`node src/bin/cli.ts --help`: 0.93 s → 0.72 s here); it lives in
 * the system's temp folder.
 */
import * as nodeModule from "node:module"

const major = Number(process.versions.node.split(".")[0])
if (major < 24) {
  console.error(`error: sqs-state-pipeline needs Node.js 24 or newer; this is ${process.version}`)
  process.exit(1)
}
nodeModule.enableCompileCache()
await import("../cli/run.ts")
