/**
 * A queue that delivers a message again while the agent works on it (a standard queue delivers at
 * least once; moto does it when two receives overlap; any queue does once a visibility timeout
 * lapses). The copy is not run again, and the message is deleted with the copy's receipt handle,
 * the only one the memory queue (like the embedded one, and like SQS for a delete) honours.
 * On the memory queue under the TestClock.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, type Duration, Effect, Fiber, Layer, Option } from "effect"
import { TestClock } from "effect/testing"
import type { QueueMessage } from "../../src/domain/messages.ts"
import { runAgent } from "../../src/programs/agent.ts"
import { BatchRunner } from "../../src/services/BatchRunner.ts"
import { MessageQueue } from "../../src/services/MessageQueue.ts"

const QUEUE = "work"

interface Redelivery {
  /**
   * When the queue delivers the first message it handed out again: while its batch runs, before its
   * batch starts (gathered by a window), or after the agent deleted it (a late copy).
   */
  readonly when: "running" | "gathering" | "deleted"
  readonly records: number
  readonly concurrency: number
  readonly batchWindow?: Duration.Input
  /** The queue's visibility timeout in seconds (default 30): the agent's heartbeat beats every third of it. */
  readonly visibilityTimeout?: number
  /** How long the runner takes a batch (default 2 s). */
  readonly runFor?: Duration.Input
}

const observe = (redelivery: Redelivery) =>
  Effect.gen(function*() {
    const base = yield* MessageQueue
    const stop = yield* Deferred.make<void>()
    const batches: Array<ReadonlyArray<string>> = []
    let first: QueueMessage | undefined
    let redelivered = false
    /** Heartbeat entries the queue refused (a stale receipt handle). */
    let refusedExtensions = 0
    const deletedHandles: Array<string> = []
    const LATE_COPY = "late-copy-handle"
    /** Makes the first message visible again: the next receive brings a copy with a new handle. */
    const redeliverFirst = Effect.suspend(() => {
      if (first === undefined || redelivered) return Effect.void
      redelivered = true
      return Effect.asVoid(base.changeVisibility(QUEUE, [{ id: "again", receiptHandle: first.receiptHandle }], 0)).pipe(Effect.orDie)
    })
    const queue = MessageQueue.of({
      ...base,
      delete: (queueUrl, entries) =>
        Effect.sync(() => deletedHandles.push(...entries.map((entry) => entry.receiptHandle))).pipe(Effect.andThen(base.delete(queueUrl, entries))),
      changeVisibility: (queueUrl, entries, seconds) =>
        base.changeVisibility(queueUrl, entries, seconds).pipe(
          Effect.tap((result) => Effect.sync(() => (refusedExtensions += seconds > 0 ? result.failed.length : 0)))
        ),
      receive: (queueUrl, options) =>
        (redelivery.when === "gathering" ? redeliverFirst : Effect.void).pipe(
          Effect.andThen(base.receive(queueUrl, options)),
          Effect.tap((messages) => Effect.sync(() => (first ??= messages[0]))),
          // once the first message is deleted, the next receive brings a copy of it, as SQS may
          Effect.map((messages) => {
            if (redelivery.when !== "deleted" || redelivered || first === undefined || !deletedHandles.includes(first.receiptHandle)) return messages
            redelivered = true
            return [{ ...first, receiptHandle: LATE_COPY }, ...messages]
          })
        )
    })
    const runner = BatchRunner.of({
      run: (messages) =>
        Effect.sync(() => batches.push(messages.map((message) => message.messageId))).pipe(
          Effect.andThen(redelivery.when === "running" ? redeliverFirst : Effect.void),
          // long enough for the agent's next receives to bring the copy while this batch runs
          Effect.andThen(Effect.sleep(redelivery.runFor ?? "2 seconds")),
          Effect.as({ failed: new Set<string>(), outcomes: Option.none() })
        )
    })
    yield* base.send(QUEUE, Array.from({ length: redelivery.records }, (_, i) => ({ id: `m${i}`, body: JSON.stringify({ id: i }) })))
    const agent = yield* Effect.forkChild(
      runAgent({ queueUrl: QUEUE, concurrency: redelivery.concurrency, untilEmpty: false, waitSeconds: 1, stop, batchWindow: redelivery.batchWindow }).pipe(
        Effect.provide(Layer.mergeAll(Layer.succeed(MessageQueue, queue), Layer.succeed(BatchRunner, runner))),
        Effect.tapCause(Effect.logError)
      )
    )
    yield* TestClock.adjust("10 seconds")
    yield* Deferred.succeed(stop, undefined)
    yield* TestClock.adjust("10 seconds")
    const stats = yield* Fiber.join(agent)
    const attributes = yield* base.attributes(QUEUE)
    return { stats, batches, redelivered, refusedExtensions, lateCopyDeleted: deletedHandles.includes(LATE_COPY), firstId: first?.messageId ?? "none received", attributes }
  })

const run = (redelivery: Redelivery) =>
  observe(redelivery).pipe(Effect.provide(MessageQueue.layerMemory({ [QUEUE]: { visibilityTimeout: redelivery.visibilityTimeout ?? 30 } })))

describe("agent: a message delivered again while it is worked on (TestClock)", () => {
  it.effect("a copy received while its batch runs is not run again; the message is deleted with the copy's handle", () =>
    Effect.gen(function*() {
      const observed = yield* run({ when: "running", records: 1, concurrency: 10 })
      assert.isTrue(observed.redelivered)
      assert.deepStrictEqual(observed.batches, [[observed.firstId]], "run once")
      assert.strictEqual(observed.stats.received, 1)
      assert.strictEqual(observed.stats.succeeded, 1)
      assert.strictEqual(observed.attributes.approximateVisible + observed.attributes.approximateInFlight, 0, "deleted, not left to come back")
    }))

  it.effect("with several in flight: only the copy is dropped, the rest run once each", () =>
    Effect.gen(function*() {
      // two batches at once: the second receive, while the first batch runs, brings the copy
      const observed = yield* run({ when: "running", records: 25, concurrency: 20 })
      const runs = observed.batches.flat()
      assert.strictEqual(runs.length, 25, `runs: ${runs.join(" ")}`)
      assert.strictEqual(new Set(runs).size, 25)
      assert.strictEqual(observed.stats.succeeded, 25)
      assert.strictEqual(observed.attributes.approximateVisible + observed.attributes.approximateInFlight, 0)
    }))

  it.effect("a copy gathered into the same batch by a window runs once, deleted with the newer handle", () =>
    Effect.gen(function*() {
      const observed = yield* run({ when: "gathering", records: 1, concurrency: 10, batchWindow: "1 second" })
      assert.isTrue(observed.redelivered)
      assert.deepStrictEqual(observed.batches, [[observed.firstId]], "one batch of one")
      assert.strictEqual(observed.stats.received, 1)
      assert.strictEqual(observed.attributes.approximateVisible + observed.attributes.approximateInFlight, 0)
    }))

  it.effect("the heartbeat goes on with the copy's handle: the message stays hidden until its run ends", () =>
    Effect.gen(function*() {
      // 3 s visibility, a beat every second, a 7 s run: beats with the first handle would be refused
      // and the message would come back at 3 s
      const observed = yield* run({ when: "running", records: 1, concurrency: 10, visibilityTimeout: 3, runFor: "7 seconds" })
      assert.isTrue(observed.redelivered)
      assert.strictEqual(observed.refusedExtensions, 0)
      assert.deepStrictEqual(observed.batches, [[observed.firstId]])
      assert.strictEqual(observed.attributes.approximateVisible + observed.attributes.approximateInFlight, 0)
    }))

  it.effect("a copy that arrives after its message was deleted is deleted, not run", () =>
    Effect.gen(function*() {
      const observed = yield* run({ when: "deleted", records: 1, concurrency: 10 })
      assert.isTrue(observed.redelivered)
      assert.deepStrictEqual(observed.batches, [[observed.firstId]], "run once")
      assert.isTrue(observed.lateCopyDeleted, "the copy is deleted with its own handle")
      assert.strictEqual(observed.stats.received, 1)
    }))
})
