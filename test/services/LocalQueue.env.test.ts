/**
 * The local queue's own settings, `PIPELINE_MAX_RECEIVE_COUNT` and `PIPELINE_VISIBILITY_TIMEOUT`,
 * read from the environment by the backends a command gets without `PIPELINE_QUEUE_URL` (and by
 * `npm start`'s embedded ones), checked by how the queue then behaves.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Layer } from "effect"
import { TestClock } from "effect/testing"
import { EngineSettings } from "../../src/services/EngineSettings.ts"
import { backendsFor, localBackendsFor } from "../../src/cli/layers.ts"
import { LOCAL_QUEUE } from "../../src/services/EngineSettings.ts"
import { MessageQueue } from "../../src/services/MessageQueue.ts"

const DLQ = `${LOCAL_QUEUE}-dlq`

const tempDir = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "local-queue-env-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

/** Runs with the backends an environment of `vars` gives (a data folder of its own included). */
const withEnv = (vars: Record<string, string>, backends: ReturnType<typeof backendsFor> = backendsFor("pipeline")) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    Effect.flatMap(tempDir, (directory) =>
      effect.pipe(
        Effect.provide(backends.pipe(
          Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env: { PIPELINE_DATA_DIR: directory, ...vars } })))
        ))
      ))

/** Sends one message to the local queue; returns the queue. */
const sendOne = Effect.gen(function*() {
  const queue = yield* MessageQueue
  const { queueUrl } = yield* EngineSettings
  assert.strictEqual(queueUrl, LOCAL_QUEUE)
  yield* queue.send(LOCAL_QUEUE, [{ id: "m", body: "{\"id\":\"m\"}", attributes: { kind: "test" } }])
  return queue
})

/** Receives (and never deletes) until the message stops coming back; its receive counts. */
const receiveUntilGone = (queue: MessageQueue["Service"]) =>
  Effect.gen(function*() {
    const counts: Array<number> = []
    for (let i = 0; i < 20; i++) {
      const [message] = yield* queue.receive(LOCAL_QUEUE, { visibilityTimeout: 0 })
      if (message === undefined) break
      counts.push(message.receiveCount)
    }
    return counts
  })

describe("PIPELINE_MAX_RECEIVE_COUNT", () => {
  it.effect("2: the third receive moves the message to pipeline-dlq, its body unchanged, with the reason", () =>
    Effect.gen(function*() {
      const queue = yield* sendOne
      assert.deepStrictEqual(yield* receiveUntilGone(queue), [1, 2])
      const [dead] = yield* queue.receive(DLQ)
      assert.strictEqual(dead!.body, "{\"id\":\"m\"}")
      assert.strictEqual(dead!.attributes["kind"], "test")
      assert.strictEqual(dead!.attributes["error.tag"], "MaxReceiveCountExceeded")
      assert.strictEqual(dead!.attributes["error.receive_count"], "2")
    }).pipe(withEnv({ PIPELINE_MAX_RECEIVE_COUNT: "2" })))

  it.effect("unset: 5 receives", () =>
    Effect.gen(function*() {
      const queue = yield* sendOne
      assert.deepStrictEqual(yield* receiveUntilGone(queue), [1, 2, 3, 4, 5])
      assert.strictEqual((yield* queue.attributes(DLQ)).approximateVisible, 1)
    }).pipe(withEnv({})))

  it.effect("npm start's embedded queue reads it too, whatever PIPELINE_QUEUE_URL says", () =>
    Effect.gen(function*() {
      const queue = yield* sendOne
      assert.deepStrictEqual(yield* receiveUntilGone(queue), [1, 2, 3])
    }).pipe(withEnv({ PIPELINE_MAX_RECEIVE_COUNT: "3", PIPELINE_QUEUE_URL: "https://sqs.invalid/0/elsewhere" }, localBackendsFor("pipeline"))))
})

describe("PIPELINE_VISIBILITY_TIMEOUT", () => {
  /** Receives once with the queue's own timeout; the seconds until the message is back. */
  const secondsInvisible = Effect.gen(function*() {
    const queue = yield* sendOne
    const [first] = yield* queue.receive(LOCAL_QUEUE)
    assert.strictEqual(first!.receiveCount, 1)
    for (let seconds = 1; seconds <= 60; seconds++) {
      yield* TestClock.adjust("1 second")
      const [again] = yield* queue.receive(LOCAL_QUEUE)
      if (again !== undefined) {
        assert.strictEqual(again.receiveCount, 2)
        return { seconds, reported: (yield* queue.attributes(LOCAL_QUEUE)).visibilityTimeout }
      }
    }
    return assert.fail("the message never came back")
  })

  it.effect("7: a received message is back after 7 seconds, and the queue says 7 (the agent's heartbeat uses it)", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* secondsInvisible, { seconds: 7, reported: 7 })
    }).pipe(withEnv({ PIPELINE_VISIBILITY_TIMEOUT: "7" })))

  it.effect("unset: 30 seconds", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* secondsInvisible, { seconds: 30, reported: 30 })
    }).pipe(withEnv({})))
})

describe("the local queue's settings", () => {
  it.effect("an invalid value fails with a ConfigError that names the setting", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [string, string]> = [
        ["PIPELINE_MAX_RECEIVE_COUNT", "often"],
        ["PIPELINE_MAX_RECEIVE_COUNT", "0"],
        ["PIPELINE_MAX_RECEIVE_COUNT", "1001"],
        ["PIPELINE_VISIBILITY_TIMEOUT", "30s"],
        ["PIPELINE_VISIBILITY_TIMEOUT", "-1"],
        ["PIPELINE_VISIBILITY_TIMEOUT", "43201"]
      ]
      for (const [name, value] of cases) {
        const error = yield* Effect.flip(Effect.gen(function*() {
          yield* MessageQueue
        }).pipe(withEnv({ [name]: value })))
        assert.strictEqual(error._tag, "ConfigError", `${name}=${value}: ${error.message}`)
        assert.include(error.message, name, `${name}=${value}`)
      }
    }))
})
