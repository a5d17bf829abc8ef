/**
 * The engine's debug lines: one per step run, per in-process retry and per record done, each with
 * the record id; none at the default level (Info).
 */
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Layer, Logger, type LogLevel, References, Schema } from "effect"
import { RetryableError } from "../../src/domain/errors.ts"
import { definePipeline, done, mutation } from "../../src/domain/Pipeline.ts"
import { initialTransition, toAttributes } from "../../src/domain/transition.ts"
import { processBatch } from "../../src/programs/engine.ts"
import { EngineSettings } from "../../src/services/EngineSettings.ts"
import { MessageQueue } from "../../src/services/MessageQueue.ts"

const QUEUE = "work"

const Greeting = Schema.Struct({ id: Schema.String, greeting: Schema.optionalKey(Schema.String) })
type Greeting = typeof Greeting.Type

/** One step, busy on its first two attempts for record "slow". */
const attempts = new Map<string, number>()
const greet = mutation<Greeting, RetryableError>("greet", (record) =>
  Effect.suspend(() => {
    const attempt = (attempts.get(record.id) ?? 0) + 1
    attempts.set(record.id, attempt)
    return record.id === "slow" && attempt <= 2
      ? Effect.fail(new RetryableError({ message: "busy" }))
      : Effect.succeed({ ...record, greeting: "hello" })
  }))
const pipeline = definePipeline({
  name: "greet",
  schema: Greeting,
  recordId: (record) => record.id,
  router: (record) => record.greeting === undefined ? greet : done,
  initialRecord: (id) => ({ id }),
  layer: Layer.empty
})

const message = (id: string, record: Greeting, step: number) => ({
  messageId: `m-${id}-${step}`,
  receiptHandle: `rh-${id}-${step}`,
  body: JSON.stringify(record),
  attributes: toAttributes({ ...initialTransition(id, record), step }),
  receiveCount: 1
})

/** The lines logged while the batch ran at `level`, with their level. */
const linesAt = (level: LogLevel.LogLevel) =>
  Effect.gen(function*() {
    attempts.clear()
    const lines: Array<string> = []
    const collect = Logger.layer([Logger.make((log) => lines.push(`${log.logLevel} ${(log.message as ReadonlyArray<unknown>).join(" ")}`))])
    const outcomes = yield* processBatch(pipeline)([
      message("fast", { id: "fast" }, 0),
      message("slow", { id: "slow" }, 0),
      message("old", { id: "old", greeting: "hi" }, 7)
    ]).pipe(
      Effect.provide(Layer.mergeAll(MessageQueue.layerMemory({ [QUEUE]: {} }), EngineSettings.layerWith({ queueUrl: QUEUE }), collect)),
      Effect.provideService(References.MinimumLogLevel, level)
    )
    assert.deepStrictEqual(outcomes.map((outcome) => outcome._tag).sort(), ["Advanced", "Advanced", "Done"])
    return lines
  })

describe("engine debug lines", () => {
  it.live("a retry line for each retry made, none for the attempt after which it gives up", () =>
    Effect.gen(function*() {
      let runs = 0
      const lines: Array<string> = []
      const busy = mutation<Greeting, RetryableError>("busy", () =>
        Effect.suspend(() => {
          runs++
          return Effect.fail(new RetryableError({ message: "busy" }))
        }))
      const stuck = definePipeline({ ...pipeline, router: (record: Greeting) => record.greeting === undefined ? busy : done })
      const outcomes = yield* processBatch(stuck)([message("stuck", { id: "stuck" }, 0)]).pipe(
        Effect.provide(Layer.mergeAll(
          MessageQueue.layerMemory({ [QUEUE]: {} }),
          EngineSettings.layerWith({ queueUrl: QUEUE, retryFor: Duration.millis(400) }),
          Logger.layer([Logger.make((log) => lines.push((log.message as ReadonlyArray<unknown>).join(" ")))])
        )),
        Effect.provideService(References.MinimumLogLevel, "Debug")
      )
      assert.deepStrictEqual(outcomes.map((outcome) => outcome._tag), ["Failed"])
      const retries = lines.filter((line) => line.startsWith("record stuck: busy failed with RetryableError, retry "))
      assert.isAtLeast(runs, 2)
      assert.strictEqual(retries.length, runs - 1)
    }))

  it.live("at Debug: a line per step with the record id, step and mutation; per retry with the error and attempt; per done", () =>
    Effect.gen(function*() {
      const lines = (yield* linesAt("Debug")).map((line) => line.replace(/ in [\d.]+m?s( \d+ns)?$|in \d+ms \d+[nµ]s$/, " in …"))
      assert.deepStrictEqual(lines.filter((line) => line.startsWith("Debug")).sort(), [
        "Debug record fast: step 1 greet",
        "Debug record old: done after 7 steps",
        "Debug record slow: greet failed with RetryableError, retry 1 in …",
        "Debug record slow: greet failed with RetryableError, retry 2 in …",
        "Debug record slow: step 1 greet"
      ])
    }))

  it.live("at the default level (Info): no debug line", () =>
    Effect.gen(function*() {
      const lines = yield* linesAt("Info")
      assert.deepStrictEqual(lines.filter((line) => line.startsWith("Debug")), [])
      assert.strictEqual(attempts.get("slow"), 3, "the retries happened all the same")
    }))
})
