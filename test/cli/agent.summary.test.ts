/**
 * What the agent tells a person about a run, through the real command line on the embedded queue:
 * its summary counts records done, dead-lettered and handed back for a retry as well as
 * transitions; PIPELINE_LOG_LEVEL=Debug adds a line per step and per done, with the record id.
 */
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect } from "effect"
import { afterAll, afterEach } from "vitest"
import { initialTransition, toAttributes } from "../../src/domain/transition.ts"
import { backendsFor } from "../../src/cli/layers.ts"
import { progressLine, summaryOf as summaryData, summaryText } from "../../src/cli/progress.ts"
import type { AgentStats } from "../../src/programs/agent.ts"
import { EngineSettings } from "../../src/services/EngineSettings.ts"
import { MessageQueue } from "../../src/services/MessageQueue.ts"
import { cleanUpBackends, makeBackend } from "../support/backends.ts"
import { killRunningClis, runCli } from "../support/cli.ts"

afterEach(killRunningClis)
afterAll(cleanUpBackends)

/** Sends bodies as they are (not validated, unlike `produce`), each at step 0 of its own chain. */
const sendRaw = (env: Record<string, string>, bodies: ReadonlyArray<string>) =>
  Effect.runPromise(
    Effect.gen(function*() {
      const { queueUrl } = yield* EngineSettings
      const queue = yield* MessageQueue
      yield* queue.send(queueUrl, bodies.map((body, i) => ({ id: `r${i}`, body, attributes: toAttributes(initialTransition(`r${i}`, body)) })))
    }).pipe(Effect.provide(backendsFor("greeting")), Effect.provide(ConfigProvider.layer(ConfigProvider.fromEnvRecord(env))))
  )

/** The agent's last JSON log line, the summary, as data. */
const summaryOf = (stderr: string) => {
  const line = stderr.split("\n").find((text) => text.includes(`"message":"agent summary"`))
  assert.isDefined(line, stderr)
  return (JSON.parse(line!) as { annotations: Record<string, number> }).annotations
}

describe("the agent's summary", { timeout: 60_000 }, () => {
  it("counts the record that was dead-lettered as dead-lettered, not as a transition", async () => {
    const backend = await makeBackend.local(30, "greeting")
    // greeting: "a" takes two steps and is done; "b" is not a greeting record (a number), dead-lettered at once
    await sendRaw(backend.env, [`{"id":"a"}`, `{"id":"b","greeting":5}`])
    const result = await runCli(["agent", "--pipeline", "greeting", "--until-empty", "--wait-seconds", "1"], backend.env)
    assert.strictEqual(result.code, 0, result.stderr)
    const { deadLetteredBy, perSecond: _perSecond, seconds: _seconds, steps, ...counts } = summaryOf(result.stderr) as unknown as ReturnType<typeof summaryData>
    // each step's runs (the figures the Lambda handler's metrics carry), and the dead letters by reason
    assert.deepStrictEqual(Object.keys(steps), ["createGreeting", "createName"])
    assert.deepStrictEqual([steps["createGreeting"]!.runs, steps["createName"]!.runs], [1, 1])
    assert.isAtLeast(steps["createGreeting"]!.averageMillis, 0)
    assert.deepStrictEqual(deadLetteredBy, { SchemaViolation: 1 })
    assert.deepStrictEqual(counts, {
      done: 1,
      deadLettered: 1,
      retried: 0,
      duplicates: 0,
      transitions: 2,
      received: 4,
      released: 0,
      receiveErrors: 0
    })
    assert.deepStrictEqual(await backend.counts(), { visible: 0, inFlight: 0, dead: 1 })
    assert.notInclude(result.stderr, `"level":"DEBUG"`, "no debug lines at the default level")
  })

  it("PIPELINE_LOG_LEVEL=Debug adds a line per step and per done, with the record id", async () => {
    const backend = await makeBackend.local(30, "greeting")
    await sendRaw(backend.env, [`{"id":"a"}`])
    const result = await runCli(["agent", "--pipeline", "greeting", "--until-empty", "--wait-seconds", "1"], {
      ...backend.env,
      PIPELINE_LOG_LEVEL: "Debug"
    })
    assert.strictEqual(result.code, 0, result.stderr)
    const debug = result.stderr.split("\n").filter((line) => line.includes(`"level":"DEBUG"`) && line.includes("record a"))
      .map((line) => JSON.parse(line) as { message: string; annotations: Record<string, unknown> })
    assert.deepStrictEqual(debug.map((line) => line.message), [
      "record a: step 1 createGreeting",
      "record a: step 2 createName",
      "record a: done after 2 steps"
    ])
    assert.deepInclude(debug[0]!.annotations, { recordId: "a", step: 1, mutation: "createGreeting" })
  })
})

describe("the agent's summary and progress line on a terminal", () => {
  const stats: AgentStats = {
    received: 12,
    succeeded: 10,
    failed: 2,
    advanced: 6,
    done: 1,
    deadLettered: 2,
    duplicates: 1,
    inFlight: 3,
    released: 0,
    receiveErrors: 0,
    elapsedMillis: 2000,
    steps: new Map(),
    deadLetteredBy: new Map()
  }

  it("say the same counts as the data summary, transitions per second", () => {
    assert.strictEqual(
      summaryText(stats),
      "agent: 1 record done, 2 dead-lettered, 2 retried; 6 transitions in 2 s (3/s), 1 duplicate skipped"
    )
    assert.strictEqual(progressLine(stats), "done 1 · dead-lettered 2 · retried 2 · transitions 6 · in flight 3 · 3.0/s")
    assert.strictEqual(
      summaryText({ ...stats, done: 2, advanced: 1, duplicates: 0, released: 4, receiveErrors: 1 }),
      "agent: 2 records done, 2 dead-lettered, 2 retried; 1 transition in 2 s (0.5/s), 4 handed back, 1 receive errors"
    )
    const figures = {
      steps: new Map([["download", { runs: 4, millis: 130 }], ["thumbnail_200", { runs: 3, millis: 61.5 }]]),
      deadLetteredBy: new Map([["CorruptImage", 1], ["ImageNotFound", 1]])
    }
    assert.strictEqual(
      summaryText({ ...stats, ...figures }),
      "agent: 1 record done, 2 dead-lettered, 2 retried; 6 transitions in 2 s (3/s), 1 duplicate skipped\n" +
        "  download: 4 runs, 32.5 ms on average\n" +
        "  thumbnail_200: 3 runs, 20.5 ms on average\n" +
        "  dead-lettered: 1 CorruptImage, 1 ImageNotFound"
    )
  })
})
