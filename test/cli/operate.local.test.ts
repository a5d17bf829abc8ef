/** `status`, `dlq list` and `dlq redrive` on the local queue (see test/support/operate.ts). */
import { assert, it } from "@effect/vitest"
import { makeBackend } from "../support/backends.ts"
import { startCli, waitFor } from "../support/cli.ts"
import { describeOperate, runExpect } from "../support/operate.ts"

describeOperate("local")

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
