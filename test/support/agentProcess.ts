/**
 * The agent as a user runs it (`src/bin/cli.ts` in child processes) on one backend: every record
 * done, none lost to a SIGKILL, slow steps run once, SIGTERM finishes in-flight work and hands
 * nothing back late. One file per backend (test/cli/agent.process*.test.ts), so vitest runs the
 * backends in parallel workers.
 */
import { assert, describe, it } from "@effect/vitest"
import { afterAll, afterEach } from "vitest"
import tracked from "./pipelines/tracked.ts"
import { type BackendName, cleanUpBackends, makeBackend, produceInProcess } from "./backends.ts"
import { type CliResult, killRunningClis, runCli, startCli, waitFor } from "./cli.ts"

export const TRACKED = ["--pipeline", "test/support/pipelines/tracked.ts"]

export const ids = (count: number) => Array.from({ length: count }, (_, i) => `rec-${i}`)

/** Runs the CLI to its end and insists on exit 0. */
export const runOk = async (args: ReadonlyArray<string>, env: Record<string, string>): Promise<CliResult> => {
  const result = await runCli(args, env)
  assert.strictEqual(result.code, 0, `${args.join(" ")} failed:\n${result.stderr}`)
  return result
}

/** Off a terminal, stderr is JSON log lines only: no progress line, no pretty logs. */
export const assertJsonLogLines = (stderr: string) => {
  assert.notInclude(stderr, "\r", "no progress line redrawn off a terminal")
  const lines = stderr.split("\n").filter((line) => line.trim() !== "")
  assert.isAbove(lines.length, 0)
  for (const line of lines) {
    const entry = JSON.parse(line) as { message?: unknown; level?: unknown; logLevel?: unknown }
    assert.isDefined(entry.message, line)
  }
}

/** The lines worth reading when a summary is off: warnings, errors and the summary itself. */
const notableLines = (stderr: string) =>
  stderr.split("\n").filter((line) => /WARN|ERROR|"done":/.test(line)).join("\n")

export const describeAgentProcess = (name: BackendName) => {
  afterEach(killRunningClis)
  afterAll(cleanUpBackends)
  const newBackend = makeBackend[name]

  describe(`agent and producer on ${name}`, { timeout: 60_000 }, () => {
    it("50 records produced, the agent runs until empty: all done, queue and DLQ empty", async () => {
      const backend = await newBackend(30, "tracked")
      if (name === "moto") {
        // the one place the CLI's `produce` sends to SQS (on the embedded queue: test/cli/produce.test.ts)
        const produced = await runOk(["produce", ...TRACKED, ...ids(50)], backend.env)
        assert.include(produced.stdout, "sent 50 records")
      } else {
        await produceInProcess(backend, tracked, ids(50))
      }
      const agent = await runOk(["agent", ...TRACKED, "--until-empty", "--concurrency", "20"], backend.env)
      assert.strictEqual((await backend.keys("finished/")).length, 50)
      assert.strictEqual((await backend.keys("runs/greet/")).length, 50, "each step ran once per record")
      assert.deepStrictEqual(await backend.counts(), { visible: 0, inFlight: 0, dead: 0 })
      assert.include(
        agent.stderr,
        `"done":50,"deadLettered":0,"retried":0,"duplicates":0,"transitions":150`,
        `the agent's summary, with its warnings:\n${notableLines(agent.stderr)}`
      )
      assertJsonLogLines(agent.stderr)
    })

    it("killed with SIGKILL halfway and restarted: all 50 done, none lost", async () => {
      const backend = await newBackend(2, "tracked")
      const env = { ...backend.env, TRACKED_STEP_MS: "100" }
      await produceInProcess(backend, tracked, ids(50))
      const first = startCli(["agent", ...TRACKED, "--concurrency", "10"], env)
      await waitFor(async () => (await backend.keys("finished/")).length >= 10, 40_000, "10 finished records")
      first.child.kill("SIGKILL")
      assert.strictEqual((await first.exit).signal, "SIGKILL")
      const finishedBeforeRestart = (await backend.keys("finished/")).length
      assert.isBelow(finishedBeforeRestart, 50, "killed before the end")
      await runOk(["agent", ...TRACKED, "--until-empty", "--concurrency", "10"], env)
      const finished = new Set(await backend.keys("finished/"))
      assert.strictEqual(finished.size, 50)
      assert.deepStrictEqual(await backend.counts(), { visible: 0, inFlight: 0, dead: 0 })
    })

    it("a step slower than the visibility timeout runs once: the heartbeat keeps it hidden", async () => {
      const backend = await newBackend(2, "tracked")
      // 2 s visibility, heartbeat every 2/3 s; without it the message reappears at 2 s and is
      // received again within the 1 s poll, well before the 4 s step ends
      const env = { ...backend.env, TRACKED_STEP_MS: "4000", TRACKED_SLOW_STEP: "greet" }
      await produceInProcess(backend, tracked, ["slow-1"])
      await runOk(["agent", ...TRACKED, "--until-empty", "--concurrency", "2"], env)
      assert.strictEqual((await backend.keys("runs/greet/")).length, 1, "the slow step ran once")
      assert.deepStrictEqual(await backend.keys("finished/"), ["finished/slow-1"])
    })

    it("SIGTERM during work: in-flight messages finish, nothing stays hidden, exit 0", async () => {
      const backend = await newBackend(30, "tracked")
      const env = { ...backend.env, TRACKED_STEP_MS: "1500" }
      await produceInProcess(backend, tracked, ids(20))
      const agent = startCli(["agent", ...TRACKED, "--concurrency", "5"], env)
      await waitFor(async () => (await backend.counts()).inFlight === 5, 20_000, "5 messages in flight")
      agent.child.kill("SIGTERM")
      const result = await agent.exit
      assert.strictEqual(result.code, 0, result.stderr)
      assert.include(result.stderr, "finishing 5 messages in flight")
      assert.strictEqual((await backend.keys("runs/greet/")).length, 5, "the five in flight finished their step")
      const counts = await backend.counts()
      assert.strictEqual(counts.inFlight, 0, "nothing left invisible")
      assert.strictEqual(counts.visible, 20, "15 untouched + 5 successors, all visible now")
    })
  })
}
