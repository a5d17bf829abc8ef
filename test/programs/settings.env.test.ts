/**
 * The engine's settings as the README promises them, read from the environment: each variable
 * goes through the real backends layer (the local queue in a temp folder, as a user without
 * PIPELINE_QUEUE_URL gets) and is checked by what the engine then does, not by the value read.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Fiber, Layer, Option, Schema } from "effect"
import { TestClock } from "effect/testing"
import { RetryableError } from "../../src/domain/errors.ts"
import { type AnyPipeline, definePipeline, done, mutation } from "../../src/domain/Pipeline.ts"
import { Attribute, initialTransition, toAttributes } from "../../src/domain/transition.ts"
import { acknowledge, type Outcome, processBatch } from "../../src/programs/engine.ts"
import { EngineSettings } from "../../src/services/EngineSettings.ts"
import { backendsFor } from "../../src/cli/layers.ts"
import { LOCAL_QUEUE } from "../../src/services/EngineSettings.ts"
import { MessageQueue } from "../../src/services/MessageQueue.ts"

const DLQ = `${LOCAL_QUEUE}-dlq`

/** A fresh data folder, removed when the test's scope closes. */
const tempDir = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "settings-env-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

/** The backends a command gets from an environment holding `vars` (and a data folder of its own). */
const withEnv = (vars: Record<string, string>) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    Effect.flatMap(tempDir, (directory) =>
      effect.pipe(
        Effect.provide(backendsFor(LOCAL_QUEUE).pipe(
          Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env: { PIPELINE_DATA_DIR: directory, ...vars } })))
        ))
      ))

/** A record that counts its own steps: n = 0 → 1 → 2 → 3 → 4 → done (four mutations). */
const Counter = Schema.Struct({ id: Schema.String, n: Schema.Number })
type Counter = typeof Counter.Type
const counter = definePipeline({
  name: "counter",
  schema: Counter,
  recordId: (record) => record.id,
  router: (record) => record.n < 4 ? mutation<Counter>("bump", (r) => Effect.succeed({ ...r, n: r.n + 1 })) : done,
  initialRecord: (id) => ({ id, n: 0 }),
  layer: Layer.empty
})

/** One step that fails retryably forever, counting its attempts. */
const stuck = (attempts: { count: number }) =>
  definePipeline({
    name: "stuck",
    schema: Counter,
    recordId: (record) => record.id,
    router: (record) =>
      record.n === 0
        ? mutation<Counter, RetryableError>("busy", () =>
          Effect.suspend(() => {
            attempts.count++
            return Effect.fail(new RetryableError({ message: "busy" }))
          }))
        : done,
    initialRecord: (id) => ({ id, n: 0 }),
    layer: Layer.empty
  })

/** One step that takes a second and records how many of its kind run at once. */
const slow = (gauge: { now: number; most: number }) =>
  definePipeline({
    name: "slow",
    schema: Counter,
    recordId: (record) => record.id,
    router: (record) =>
      record.n === 0
        ? mutation<Counter>("slow", (r) =>
          Effect.gen(function*() {
            gauge.most = Math.max(gauge.most, ++gauge.now)
            yield* Effect.sleep("1 second")
            gauge.now--
            return { ...r, n: 1 }
          }))
        : done,
    initialRecord: (id) => ({ id, n: 0 }),
    layer: Layer.empty
  })

/** Sends records as the producer does (step 0), or at a given step. */
const seed = (records: ReadonlyArray<unknown>, step = 0) =>
  Effect.gen(function*() {
    const queue = yield* MessageQueue
    const { queueUrl } = yield* EngineSettings
    const result = yield* queue.send(
      queueUrl,
      records.map((record, i) => ({
        id: `s${i}`,
        body: typeof record === "string" ? record : JSON.stringify(record),
        attributes: { ...toAttributes(initialTransition(`r${i}`, record)), [Attribute.step]: String(step) }
      }))
    )
    assert.deepStrictEqual(result.failed, [])
  })

/** Receive, process, acknowledge until a receive finds nothing (at most `passes` times): an agent's passes. */
const drain = (pipeline: AnyPipeline, passes = 50) =>
  Effect.gen(function*() {
    const queue = yield* MessageQueue
    const { queueUrl } = yield* EngineSettings
    const process = processBatch(pipeline)
    const outcomes: Array<Outcome> = []
    for (let pass = 0; pass < passes; pass++) {
      const messages = yield* queue.receive(queueUrl)
      if (messages.length === 0) break
      const batch = yield* process(messages)
      yield* acknowledge(queueUrl, batch)
      outcomes.push(...batch)
    }
    return outcomes
  })

/** Everything on a queue, taken off it. */
const takeAll = (queueUrl: string) =>
  Effect.gen(function*() {
    const queue = yield* MessageQueue
    const messages = yield* queue.receive(queueUrl, { visibilityTimeout: 0 })
    yield* queue.delete(queueUrl, messages.map((m, i) => ({ id: `t${i}`, receiptHandle: m.receiptHandle })))
    return messages
  })

const tags = (outcomes: ReadonlyArray<Outcome>) => outcomes.map((outcome) => outcome._tag)

describe("PIPELINE_MAX_STEPS", () => {
  it.effect("3: a four-step chain is dead-lettered at step 3 with StepLimitReached", () =>
    Effect.gen(function*() {
      yield* seed([{ id: "c", n: 0 }])
      const outcomes = yield* drain(counter)
      assert.deepStrictEqual(tags(outcomes), ["Advanced", "Advanced", "Advanced", "DeadLettered"])
      const [dead] = yield* takeAll(DLQ)
      assert.deepStrictEqual(JSON.parse(dead!.body), { id: "c", n: 3 })
      assert.strictEqual(dead!.attributes["error.tag"], "StepLimitReached")
      assert.include(dead!.attributes["error.message"], "limit of 3")
    }).pipe(withEnv({ PIPELINE_MAX_STEPS: "3" })))

  it.effect("unset: 100 (the same chain finishes; step 99 still runs, step 100 does not)", () =>
    Effect.gen(function*() {
      yield* seed([{ id: "c", n: 0 }])
      assert.deepStrictEqual(tags(yield* drain(counter)), ["Advanced", "Advanced", "Advanced", "Advanced", "Done"])

      yield* seed([{ id: "late", n: 3 }], 99)
      assert.deepStrictEqual(tags(yield* drain(counter)), ["Advanced", "DeadLettered"])
      const [dead] = yield* takeAll(DLQ)
      assert.deepStrictEqual(JSON.parse(dead!.body), { id: "late", n: 4 })
      assert.include(dead!.attributes["error.message"], "limit of 100")
    }).pipe(withEnv({})))
})

describe("PIPELINE_RETRY_FOR", () => {
  /** Starts a pass on a step that is always busy; returns a probe of whether it has given up yet. */
  const startStuck = Effect.gen(function*() {
    const attempts = { count: 0 }
    yield* seed([{ id: "s", n: 0 }])
    // one pass: the message it leaves comes back after the visibility timeout, to be retried again
    const fiber = yield* Effect.forkChild(drain(stuck(attempts), 1))
    return { fiber, attempts }
  })

  it.effect("30 seconds: still retrying after 20 s, given up (left for redelivery) within a minute", () =>
    Effect.gen(function*() {
      const { attempts, fiber } = yield* startStuck
      yield* TestClock.adjust("20 seconds")
      assert.isUndefined(fiber.pollUnsafe(), "still retrying after 20 s")
      yield* TestClock.adjust("40 seconds")
      const outcomes = yield* Fiber.join(fiber)
      assert.deepStrictEqual(tags(outcomes), ["Failed"])
      assert.isAbove(attempts.count, 5)
      assert.deepStrictEqual(yield* takeAll(DLQ), [], "a retryable error is never dead-lettered")
    }).pipe(withEnv({ PIPELINE_RETRY_FOR: "30 seconds" })))

  it.effect("unset: 10 seconds (retried for a while, given up well before 20 s)", () =>
    Effect.gen(function*() {
      const { attempts, fiber } = yield* startStuck
      yield* TestClock.adjust("5 seconds")
      assert.isUndefined(fiber.pollUnsafe(), "still retrying after 5 s")
      yield* TestClock.adjust("15 seconds")
      assert.isDefined(fiber.pollUnsafe(), "given up by 20 s")
      assert.deepStrictEqual(tags(yield* Fiber.join(fiber)), ["Failed"])
      assert.isAbove(attempts.count, 3)
    }).pipe(withEnv({})))
})

describe("PIPELINE_CONCURRENCY", () => {
  /** Ten one-second steps in one batch; how many ran at once. */
  const mostAtOnce = Effect.gen(function*() {
    const gauge = { now: 0, most: 0 }
    yield* seed(Array.from({ length: 10 }, (_, i) => ({ id: `m${i}`, n: 0 })))
    const fiber = yield* Effect.forkChild(drain(slow(gauge)))
    for (let second = 0; second < 12; second++) yield* TestClock.adjust("1 second")
    const outcomes = yield* Fiber.join(fiber)
    assert.strictEqual(outcomes.filter((o) => o._tag === "Advanced").length, 10)
    return gauge.most
  })

  it.effect("3: at most three messages of a batch at once", () =>
    Effect.gen(function*() {
      assert.strictEqual(yield* mostAtOnce, 3)
    }).pipe(withEnv({ PIPELINE_CONCURRENCY: "3" })))

  it.effect("unset: 10, a whole batch at once", () =>
    Effect.gen(function*() {
      assert.strictEqual(yield* mostAtOnce, 10)
    }).pipe(withEnv({})))
})

describe("PIPELINE_DLQ_URL", () => {
  it.effect("set: permanent failures go there instead of the queue's redrive target", () =>
    Effect.gen(function*() {
      yield* seed(["{not json"])
      assert.deepStrictEqual(tags(yield* drain(counter)), ["DeadLettered"])
      const [dead] = yield* takeAll("poison")
      assert.strictEqual(dead!.body, "{not json")
      assert.strictEqual(dead!.attributes["error.tag"], "MalformedBody")
      assert.strictEqual(dead!.attributes["error.source_queue"], LOCAL_QUEUE)
      assert.deepStrictEqual(yield* takeAll(DLQ), [])
    }).pipe(withEnv({ PIPELINE_DLQ_URL: "poison" })))

  it.effect("unset: the redrive target (the local queue's pipeline-dlq)", () =>
    Effect.gen(function*() {
      yield* seed(["{not json"])
      assert.deepStrictEqual(tags(yield* drain(counter)), ["DeadLettered"])
      assert.deepStrictEqual((yield* takeAll(DLQ)).map((m) => m.body), ["{not json"])
    }).pipe(withEnv({})))
})

describe("settings from the environment", () => {
  it.effect("the Lambda's settings layer reads the same variables", () =>
    Effect.gen(function*() {
      const settings = yield* EngineSettings
      assert.deepStrictEqual(
        { ...settings, retryFor: Duration.toMillis(settings.retryFor), runAhead: Duration.toMillis(settings.runAhead) },
        { queueUrl: "https://sqs/q", deadLetterQueueUrl: Option.some("https://sqs/d"), maxSteps: 7, retryFor: 2500, concurrency: 4, runAhead: 1500 }
      )
    }).pipe(Effect.provide(EngineSettings.layer.pipe(Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({
      env: {
        PIPELINE_QUEUE_URL: "https://sqs/q",
        PIPELINE_DLQ_URL: "https://sqs/d",
        PIPELINE_MAX_STEPS: "7",
        PIPELINE_RETRY_FOR: "2500 millis",
        PIPELINE_CONCURRENCY: "4",
        PIPELINE_RUN_AHEAD: "1500 millis"
      }
    })))))))

  it.effect("an invalid value fails with a ConfigError that names the setting", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [string, string]> = [
        ["PIPELINE_MAX_STEPS", "many"],
        ["PIPELINE_MAX_STEPS", "0"],
        ["PIPELINE_MAX_STEPS", "2.5"],
        ["PIPELINE_RETRY_FOR", "a while"],
        ["PIPELINE_CONCURRENCY", "0"],
        ["PIPELINE_CONCURRENCY", "-2"],
        ["PIPELINE_CONCURRENCY", "ten"]
      ]
      for (const [name, value] of cases) {
        const error = yield* Effect.flip(Effect.gen(function*() {
          return yield* EngineSettings
        }).pipe(withEnv({ [name]: value })))
        assert.strictEqual(error._tag, "ConfigError", `${name}=${value}`)
        assert.include(error.message, name, `${name}=${value}`)
      }
    }))
})
