/**
 * The agent's batching window on the memory queue, driven by the TestClock: records trickle in one
 * at a time, and the window gathers them into batches without holding any message longer than the
 * window (nor longer than a third of the visibility timeout).
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Deferred, type Duration, Effect, Fiber, Layer, Logger, Option } from "effect"
import { TestClock } from "effect/testing"
import type { QueueMessage } from "../../src/domain/messages.ts"
import { type AgentStats, runAgent } from "../../src/programs/agent.ts"
import { BatchRunner } from "../../src/services/BatchRunner.ts"
import { MessageQueue } from "../../src/services/MessageQueue.ts"

const QUEUE = "work"

interface Trickle {
  readonly records: number
  readonly gapMillis: number
  readonly batchWindow: Duration.Input
  readonly concurrency?: number
  readonly visibilityTimeout?: number
  /** Records on the queue before the agent starts (ahead of those that trickle in). */
  readonly backlog?: number
  /** Stop the agent at this time instead of after the last record ran. */
  readonly stopAt?: number
}

interface Observed {
  readonly stats: AgentStats
  /** Each batch the runner was given: when, and its records. */
  readonly batches: ReadonlyArray<{ readonly at: number; readonly ids: ReadonlyArray<string> }>
  readonly sentAt: ReadonlyMap<string, number>
  readonly receivedAt: ReadonlyMap<string, number>
  readonly warnings: ReadonlyArray<string>
}

const idOf = (message: QueueMessage) => (JSON.parse(message.body) as { id: string }).id

/**
 * `records` sent one every `gapMillis` while the agent runs with `batchWindow`; a runner that only
 * records each batch (and succeeds, so nothing comes back); the agent stops once every record ran.
 */
const trickle = (options: Trickle) =>
  Effect.gen(function*() {
    const base = yield* MessageQueue
    const sentAt = new Map<string, number>()
    const receivedAt = new Map<string, number>()
    const batches: Array<{ at: number; ids: ReadonlyArray<string> }> = []
    const warnings: Array<string> = []
    const stop = yield* Deferred.make<void>()
    const now = Clock.currentTimeMillis
    const recording = MessageQueue.of({
      ...base,
      receive: (queueUrl, receiveOptions) =>
        base.receive(queueUrl, receiveOptions).pipe(
          Effect.tap((messages) => Effect.map(now, (at) => messages.forEach((message) => receivedAt.set(idOf(message), at))))
        )
    })
    const runner = BatchRunner.of({
      run: (messages) =>
        Effect.gen(function*() {
          batches.push({ at: yield* now, ids: messages.map(idOf) })
          if (batches.flatMap((batch) => batch.ids).length >= options.records + (options.backlog ?? 0)) yield* Deferred.succeed(stop, undefined)
          return { failed: new Set<string>(), outcomes: Option.none() }
        })
    })
    const producer = Effect.forEach(
      Array.from({ length: options.records }, (_, i) => `r${i}`),
      (id) =>
        Effect.gen(function*() {
          sentAt.set(id, yield* now)
          yield* base.send(QUEUE, [{ id, body: JSON.stringify({ id }) }])
          yield* Effect.sleep(options.gapMillis)
        }),
      { discard: true }
    )
    const logs = Logger.layer([Logger.make((log) => {
      if (log.logLevel === "Warn") warnings.push(String(log.message))
    })])
    const seeds = Array.from({ length: options.backlog ?? 0 }, (_, i) => `b${i}`)
    for (const id of seeds) sentAt.set(id, yield* now)
    yield* base.send(QUEUE, seeds.map((id) => ({ id, body: JSON.stringify({ id }) })))
    yield* Effect.forkChild(producer)
    if (options.stopAt !== undefined) yield* Effect.forkChild(Effect.sleep(options.stopAt).pipe(Effect.andThen(Deferred.succeed(stop, undefined))))
    const agent = yield* Effect.forkChild(
      runAgent({
        queueUrl: QUEUE,
        concurrency: options.concurrency ?? 10,
        untilEmpty: false,
        waitSeconds: 20,
        stop,
        batchWindow: options.batchWindow
      }).pipe(
        Effect.provide(Layer.mergeAll(Layer.succeed(MessageQueue, recording), Layer.succeed(BatchRunner, runner), logs))
      )
    )
    yield* TestClock.adjust("10 minutes")
    const stats = yield* Fiber.join(agent)
    return { stats, batches, sentAt, receivedAt, warnings } satisfies Observed
  })

/** `trickle` on a memory queue of its own. */
const run = (options: Trickle) => trickle(options).pipe(Effect.provide(memoryQueue(options.visibilityTimeout)))

const memoryQueue = (visibilityTimeout = 30) => MessageQueue.layerMemory({ [QUEUE]: { visibilityTimeout } })

const sizes = (observed: Observed) => observed.batches.map((batch) => batch.ids.length)

/** How long each record waited from its receive (or its send) until its batch ran, in ms. */
const waits = (observed: Observed, since: "receivedAt" | "sentAt") =>
  observed.batches.flatMap((batch) => batch.ids.map((id) => batch.at - observed[since].get(id)!))

describe("agent batching window (TestClock)", () => {
  it.effect("records arriving one every 50 ms: without a window one per batch; with 1 s, batches of 10", () =>
    Effect.gen(function*() {
      const without = yield* run({ records: 40, gapMillis: 50, batchWindow: "0 millis" })
      assert.deepStrictEqual(sizes(without), Array.from({ length: 40 }, () => 1))

      const within = yield* run({ records: 40, gapMillis: 50, batchWindow: "1 second" })
      assert.deepStrictEqual(sizes(within), [10, 10, 10, 10])
      assert.strictEqual(within.stats.succeeded, 40)
      assert.isAtMost(Math.max(...waits(within, "receivedAt")), 1000, "no message held past the window")
    }))

  it.effect("never holds a message longer than the window, nor lets one wait longer in the queue while slots are free", () =>
    Effect.gen(function*() {
      // a record every 300 ms fills no batch of 10 within 1 s: each batch goes when the window ends
      const observed = yield* run({ records: 12, gapMillis: 300, batchWindow: "1 second" })
      assert.strictEqual(observed.stats.succeeded, 12)
      assert.isAtMost(Math.max(...waits(observed, "receivedAt")), 1000)
      assert.isAtMost(Math.max(...waits(observed, "sentAt")), 1000)
      assert.isAbove(Math.max(...sizes(observed)), 2, `gathered several a batch: ${sizes(observed).join(", ")}`)
      assert.isBelow(observed.batches.length, 12)
    }))

  it.effect("a backlog is not held back: full receives run at once", () =>
    Effect.gen(function*() {
      const observed = yield* run({ records: 0, gapMillis: 0, backlog: 100, batchWindow: "1 second", concurrency: 40 })
      assert.deepStrictEqual(sizes(observed), Array.from({ length: 10 }, () => 10))
      assert.deepStrictEqual(observed.batches.map((batch) => batch.at), Array.from({ length: 10 }, () => 0), "none waited for the window")
    }))

  it.effect("a batch is as big as the concurrency allows", () =>
    Effect.gen(function*() {
      const observed = yield* run({ records: 12, gapMillis: 20, batchWindow: "1 second", concurrency: 4 })
      assert.deepStrictEqual(sizes(observed), [4, 4, 4])
    }))

  it.effect("the window is held to a third of the visibility timeout, with a warning", () =>
    Effect.gen(function*() {
      const observed = yield* run({ records: 12, gapMillis: 300, batchWindow: "10 seconds", visibilityTimeout: 3 })
      assert.strictEqual(observed.stats.succeeded, 12)
      assert.isAtMost(Math.max(...waits(observed, "receivedAt")), 1000)
      assert.include(observed.warnings, "batch window 10s held to 1s, a third of the queue's visibility timeout (3 s)")
    }))

  it.effect("messages gathered when the stop comes are handed back at once, not run", () =>
    Effect.gen(function*() {
      const observed = yield* trickle({ records: 3, gapMillis: 100, batchWindow: "5 seconds", stopAt: 1000 })
      assert.deepStrictEqual(observed.batches, [])
      assert.strictEqual(observed.stats.released, observed.receivedAt.size)
      assert.isAbove(observed.stats.released, 0)
      const attributes = yield* (yield* MessageQueue).attributes(QUEUE)
      assert.strictEqual(attributes.approximateInFlight, 0, "visible again now, not after their 30 s timeout")
      assert.strictEqual(attributes.approximateVisible, 3)
    }).pipe(Effect.provide(memoryQueue())))
})
