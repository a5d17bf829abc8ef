/**
 * The agent as a person runs it at a terminal, on the embedded queue: a live progress line and a
 * summary (under a pseudo-terminal from util-linux `script`), Ctrl-C (SIGINT) stops it cleanly,
 * and without --concurrency it keeps 5 messages per core in flight, at least 10.
 * Off a terminal it writes JSON log lines: checked on every backend in test/support/agentProcess.ts.
 */
import { assert, describe, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import { availableParallelism } from "node:os"
import { afterAll, afterEach } from "vitest"
import { ids, TRACKED } from "../support/agentProcess.ts"
import { cleanUpBackends, makeBackend, produceInProcess } from "../support/backends.ts"
import { killRunningClis, startCli, waitFor } from "../support/cli.ts"
import tracked from "../support/pipelines/tracked.ts"

afterEach(killRunningClis)
afterAll(cleanUpBackends)

const available = (command: string, args: ReadonlyArray<string>) => spawnSync(command, args).status === 0
/** util-linux `script`: runs a command on a pseudo-terminal (stdin, stdout and stderr all a tty). */
const hasScript = available("script", ["--version"])
const hasTaskset = available("taskset", ["-c", "0", "true"])

const quote = (word: string) => `'${word.replaceAll("'", `'\\''`)}'`

/** The agent's default concurrency as the README states it, for a machine with `cores` cores. */
const defaultConcurrencyFor = (cores: number) => Math.max(10, 5 * cores)

describe("the agent at a terminal", { timeout: 60_000 }, () => {
  it.skipIf(!hasScript)("shows one live progress line, redrawn in place, then clears it and prints a summary", async () => {
    const backend = await makeBackend.local(30, "tracked")
    await produceInProcess(backend, tracked, ids(10))
    // 100 ms per step: the run lasts several of the 250 ms progress ticks
    const command = [process.execPath, "src/bin/cli.ts", "agent", ...TRACKED, "--until-empty"].map(quote).join(" ")
    const result = await startCli([], { ...backend.env, TRACKED_STEP_MS: "100" }, {
      command: { file: "script", args: ["-qfec", command, "/dev/null"] }
    }).exit
    assert.strictEqual(result.code, 0, result.stdout + result.stderr)
    const screen = result.stdout
    const redraws = screen.split("\r\x1b[K").slice(1)
    const progress = redraws.filter((part) => part.startsWith("done "))
    assert.isAtLeast(progress.length, 2, `a progress line redrawn in place:\n${JSON.stringify(screen)}`)
    for (const line of progress) {
      assert.match(line, /^done \d+ · dead-lettered 0 · retried 0 · transitions \d+ · in flight \d+ · [\d.]+\/s$/)
    }
    assert.isTrue(
      progress.some((line) => line.startsWith("done 10 · dead-lettered 0 · retried 0 · transitions 30 · in flight 0 ·")),
      "it counts every record and every transition"
    )
    // the line is cleared, then the summary (stdout) follows on the same terminal
    assert.match(redraws.at(-1)!, /^agent: 10 records done, 0 dead-lettered, 0 retried; 30 transitions in [\d.]+ s \([\d.]+\/s\)\r?\n/)
    assert.notMatch(screen, /^\{"/m, "pretty logs, not JSON lines, on a terminal")
    assert.include(screen, "agent: tracked on tracked")
    assert.strictEqual((await backend.keys("finished/")).length, 10)
  })

  it("Ctrl-C (SIGINT) with the default concurrency: 5 per core, at least 10, in flight; they finish, nothing stays hidden, exit 0", async () => {
    const inFlight = defaultConcurrencyFor(availableParallelism())
    const backend = await makeBackend.local(30, "tracked")
    await produceInProcess(backend, tracked, ids(inFlight + 5))
    const agent = startCli(["agent", ...TRACKED], { ...backend.env, TRACKED_STEP_MS: "2000" })
    await waitFor(async () => (await backend.counts()).inFlight === inFlight, 20_000, `${inFlight} messages in flight`)
    agent.child.kill("SIGINT")
    const result = await agent.exit
    assert.strictEqual(result.code, 0, result.stderr)
    assert.include(result.stderr, `${inFlight} in flight at most`)
    assert.include(result.stderr, `finishing ${inFlight} messages in flight`)
    assert.strictEqual((await backend.keys("runs/greet/")).length, inFlight, "those in flight finished their step, no more started")
    assert.deepStrictEqual(await backend.counts(), { visible: inFlight + 5, inFlight: 0, dead: 0 }, "5 untouched + the successors, all visible")
  })

  it("a second Ctrl-C while it finishes ends it at once: exit 130, the unfinished messages come back after their visibility timeout", async () => {
    const backend = await makeBackend.local(30, "tracked")
    await produceInProcess(backend, tracked, ids(3))
    const agent = startCli(["agent", ...TRACKED], { ...backend.env, TRACKED_STEP_MS: "20000" })
    let stderr = ""
    agent.child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()))
    await waitFor(async () => (await backend.counts()).inFlight === 3, 20_000, "3 messages in flight")
    agent.child.kill("SIGINT")
    await waitFor(async () => stderr.includes("finishing 3 messages in flight"), 10_000, "the graceful stop")
    agent.child.kill("SIGINT")
    const result = await agent.exit
    assert.strictEqual(result.code, 130, result.stderr)
    assert.deepStrictEqual(await backend.counts(), { visible: 0, inFlight: 3, dead: 0 }, "nothing finished, nothing lost")
  })

  it.skipIf(!hasTaskset)("on one core the default concurrency is still 10", async () => {
    const backend = await makeBackend.local(30, "tracked")
    const result = await startCli([], backend.env, {
      command: { file: "taskset", args: ["-c", "0", process.execPath, "src/bin/cli.ts", "agent", ...TRACKED, "--until-empty", "--wait-seconds", "0"] }
    }).exit
    assert.strictEqual(result.code, 0, result.stderr)
    assert.include(result.stderr, `${defaultConcurrencyFor(1)} in flight at most`)
  })
})
