/**
 * The batching window through the real command line on the embedded queue: `--batch-window` and
 * `PIPELINE_BATCH_WINDOW` run the records to done, and a wrong value is refused in one line.
 */
import { assert, describe, it } from "@effect/vitest"
import { afterAll, afterEach } from "vitest"
import { greetingPipeline } from "../../src/pipelines/greeting.ts"
import { cleanUpBackends, makeBackend, produceInProcess, temporaryDir } from "../support/backends.ts"
import { killRunningClis, runCli } from "../support/cli.ts"

afterEach(killRunningClis)
afterAll(cleanUpBackends)

const ACCEPTED = `a duration from zero to 300 seconds such as "1 second", "500 millis" or "2 minutes" ` +
  "(a number, a space and a unit: nanos, micros, millis, seconds, minutes, hours, days or weeks)"

/** The agent's summary line's counts. */
const summaryOf = (stderr: string) => {
  const line = stderr.split("\n").find((text) => text.includes(`"message":"agent summary"`))
  assert.isDefined(line, stderr)
  return (JSON.parse(line!) as { annotations: Record<string, number> }).annotations
}

const AGENT = ["agent", "--pipeline", "greeting", "--until-empty", "--wait-seconds", "1"]

describe("agent --batch-window", { timeout: 60_000 }, () => {
  it("runs every record to done with the flag's window, and with the setting's (each held to a third of the visibility timeout, said)", async () => {
    const runs = [[["--batch-window", "5 seconds"], {}, "5s"], [[], { PIPELINE_BATCH_WINDOW: "10 seconds" }, "10s"]] as const
    for (const [args, env, window] of runs) {
      const backend = await makeBackend.local(3, "greeting")
      await produceInProcess(backend, greetingPipeline, Array.from({ length: 15 }, (_, i) => `r${i}`))
      const result = await runCli([...AGENT, ...args], { ...backend.env, ...env })
      assert.strictEqual(result.code, 0, result.stderr)
      assert.include(result.stderr, `batch window ${window} held to 1s, a third of the queue's visibility timeout (3 s)`)
      assert.deepInclude(summaryOf(result.stderr), { done: 15, transitions: 30, retried: 0, released: 0 })
      assert.deepStrictEqual(await backend.counts(), { visible: 0, inFlight: 0, dead: 0 })
    }
  })

  it("a wrong --batch-window is a usage error (exit 2); a wrong PIPELINE_BATCH_WINDOW names the setting (exit 1)", async () => {
    const env = { PIPELINE_DATA_DIR: temporaryDir("batch-window-test-") }
    const [flag, tooLong, setting] = await Promise.all([
      runCli([...AGENT, "--batch-window", "1s"], env),
      runCli([...AGENT, "--batch-window", "301 seconds"], env),
      runCli(AGENT, { ...env, PIPELINE_BATCH_WINDOW: "-1 seconds" })
    ])
    assert.strictEqual(flag.stderr, `error: --batch-window must be ${ACCEPTED}, got "1s"\n`)
    assert.strictEqual(flag.code, 2)
    assert.strictEqual(tooLong.stderr, `error: --batch-window must be ${ACCEPTED}, got "301 seconds"\n`)
    assert.strictEqual(tooLong.code, 2)
    assert.strictEqual(setting.stderr, `error: the setting PIPELINE_BATCH_WINDOW is invalid: expected ${ACCEPTED}, got "-1 seconds"\n`)
    assert.strictEqual(setting.code, 1)
  })
})
