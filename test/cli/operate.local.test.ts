/** `status`, `dlq list`, `dlq redrive`, `trace` and `diagram` on the local queue (see test/support/operate.ts). */
import { assert, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import { afterEach } from "vitest"
import { makeBackend } from "../support/backends.ts"
import { killRunningClis, startCli, waitFor } from "../support/cli.ts"
import { describeOperate, runExpect } from "../support/operate.ts"

describeOperate("local")
afterEach(killRunningClis)

/** util-linux `script`: runs a command on a pseudo-terminal (stdin, stdout and stderr all a tty). */
const hasScript = spawnSync("script", ["--version"]).status === 0

it("dlq redrive --status: the local queue has no move tasks, and says so", { timeout: 60_000 }, async () => {
  const backend = await makeBackend.local(30)
  const result = await runExpect(["dlq", "redrive", "--status"], backend.env)
  assert.include(result.stdout, "no move tasks")
})

it("bad usage exits 2; --help exits 0 (the same on every backend: the flags are parsed first)", async () => {
  const backend = await makeBackend.local(30)
  await runExpect(["dlq", "redrive", "--status", "--max", "3"], backend.env, 2)
  await runExpect(["dlq", "redrive", "--max", "0"], backend.env, 2)
  assert.include((await runExpect(["status", "--help"], backend.env)).stdout, "--watch")
  assert.include((await runExpect(["dlq", "redrive", "--help"], backend.env)).stdout, "--reason")
}, 60_000)

it("status --watch refreshes until Ctrl-C, then exits 0 (off a terminal: one JSON line per refresh)", { timeout: 60_000 }, async () => {
  const backend = await makeBackend.local(30)
  const watching = startCli(["status", "--watch", "--json"], backend.env)
  let out = ""
  watching.child.stdout!.on("data", (chunk: Buffer) => (out += chunk.toString()))
  await waitFor(async () => out.split("\n").filter((line) => line.startsWith("{")).length >= 2, 30_000, "two refreshes")
  watching.child.kill("SIGINT")
  const result = await watching.exit
  assert.strictEqual(result.code, 0, result.stderr)
  for (const line of result.stdout.trim().split("\n")) assert.deepInclude(JSON.parse(line).queue, { visible: 0, inFlight: 0 })
})

it.skipIf(!hasScript)("status --watch at a terminal redraws the snapshot in place: back to its first line, clear, draw", { timeout: 60_000 }, async () => {
  const backend = await makeBackend.local(30)
  const command = [process.execPath, "src/bin/cli.ts", "status", "--watch"].join(" ")
  // `script` passes no Ctrl-C on: the test ends it with SIGKILL (killRunningClis), its terminal closing ends the command
  const watching = startCli([], backend.env, { command: { file: "script", args: ["-qfec", command, "/dev/null"] } })
  let screen = ""
  watching.child.stdout!.on("data", (chunk: Buffer) => (screen += chunk.toString()))
  // a snapshot is 7 lines on the local queue with no dead letters: 4 of status, 2 of the ledger's last hour, 1 saying when and how to stop
  await waitFor(async () => screen.includes("\x1b[7F\x1b[J"), 30_000, "a redraw")
  const [first, second] = screen.split("\x1b[7F\x1b[J")
  assert.match(first!, /^queue thumbnails\r\n.*\r\ndead letters thumbnails-dlq\r\n {2}0 messages\r\nlast hour \(transition ledger\)\r\n.*\r\n\(.*every 2 seconds; Ctrl-C stops\)\r\n$/)
  assert.match(second!, /^queue thumbnails\r\n/)
})
