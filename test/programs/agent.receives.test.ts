/**
 * How many receives the agent has out at once, on the memory queue under the TestClock: each receive
 * takes 20 ms (a real call's latency), so receives that go out together overlap. On a backlog more
 * go out beside the first while they come back full; on a thin queue there is one at a time.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, type Duration, Effect, Fiber, Layer, Option } from "effect"
import { TestClock } from "effect/testing"
import type { QueueMessage } from "../../src/domain/messages.ts"
import { type AgentStats, runAgent } from "../../src/programs/agent.ts"
import { BatchRunner } from "../../src/services/BatchRunner.ts"
import { MessageQueue } from "../../src/services/MessageQueue.ts"

const QUEUE = "work"
const RECEIVE_MILLIS = 20

interface Load {
  /** Records on the queue before the agent starts. */
  readonly backlog: number
  /** Records sent one every `gapMillis` after the backlog. */
  readonly trickle?: { readonly records: number; readonly gapMillis: number }
  readonly concurrency: number
  readonly batchWindow?: Duration.Input
  /** How long the runner takes a batch. */
  readonly runMillis?: number
  /** Stop the agent at this time instead of after the last record ran. */
  readonly stopAt?: number
}

interface Observed {
  readonly stats: AgentStats
  /** For each receive, in the order they went out: how many were out with it (itself included). */
  readonly outAtOnce: ReadonlyArray<number>
  readonly sizes: ReadonlyArray<number>
}

const message = (id: string) => ({ id, body: JSON.stringify({ id }) })

const observe = (load: Load) =>
  Effect.gen(function*() {
    const base = yield* MessageQueue
    const stop = yield* Deferred.make<void>()
    const outAtOnce: Array<number> = []
    const sizes: Array<number> = []
    const records = load.backlog + (load.trickle?.records ?? 0)
    let out = 0
    const slowReceives = MessageQueue.of({
      ...base,
      receive: (queueUrl, receiveOptions) =>
        Effect.sync(() => outAtOnce.push(++out)).pipe(
          Effect.andThen(Effect.sleep(RECEIVE_MILLIS)),
          Effect.andThen(base.receive(queueUrl, receiveOptions)),
          Effect.ensuring(Effect.sync(() => out--))
        )
    })
    const runner = BatchRunner.of({
      run: (messages: ReadonlyArray<QueueMessage>) =>
        Effect.sleep(load.runMillis ?? 10).pipe(
          Effect.andThen(Effect.sync(() => sizes.push(messages.length))),
          Effect.andThen(Effect.suspend(() => sizes.reduce((sum, size) => sum + size, 0) >= records ? Deferred.succeed(stop, undefined) : Effect.void)),
          Effect.as({ failed: new Set<string>(), outcomes: Option.none() })
        )
    })
    yield* base.send(QUEUE, Array.from({ length: load.backlog }, (_, i) => message(`b${i}`)))
    const trickle = load.trickle
    if (trickle !== undefined) {
      yield* Effect.forkChild(Effect.forEach(
        Array.from({ length: trickle.records }, (_, i) => `t${i}`),
        (id) => base.send(QUEUE, [message(id)]).pipe(Effect.andThen(Effect.sleep(trickle.gapMillis))),
        { discard: true }
      ))
    }
    if (load.stopAt !== undefined) yield* Effect.forkChild(Effect.sleep(load.stopAt).pipe(Effect.andThen(Deferred.succeed(stop, undefined))))
    const agent = yield* Effect.forkChild(
      runAgent({ queueUrl: QUEUE, concurrency: load.concurrency, untilEmpty: false, waitSeconds: 20, stop, batchWindow: load.batchWindow }).pipe(
        Effect.provide(Layer.mergeAll(Layer.succeed(MessageQueue, slowReceives), Layer.succeed(BatchRunner, runner)))
      )
    )
    yield* TestClock.adjust("10 minutes")
    return { stats: yield* Fiber.join(agent), outAtOnce, sizes } satisfies Observed
  })

const memoryQueue = MessageQueue.layerMemory({ [QUEUE]: { visibilityTimeout: 30 } })

/** `observe` on a memory queue of its own. */
const run = (load: Load) => observe(load).pipe(Effect.provide(memoryQueue))

const most = (observed: Observed) => Math.max(...observed.outAtOnce)

describe("agent receives at once (TestClock)", () => {
  it.effect("a backlog: more receives go out beside the first, each for a full batch, up to the batches the concurrency allows", () =>
    Effect.gen(function*() {
      const observed = yield* run({ backlog: 200, concurrency: 40 })
      assert.strictEqual(observed.stats.succeeded, 200)
      assert.isAtLeast(most(observed), 3, `receives out at once: ${observed.outAtOnce.join(" ")}`)
      assert.isAtMost(most(observed), 4, "40 messages in flight are 4 batches")
      assert.deepStrictEqual(observed.sizes, Array.from({ length: 20 }, () => 10), "the backlog still goes in full batches")
    }))

  it.effect("a backlog with a batching window: full receives go out together too", () =>
    Effect.gen(function*() {
      const observed = yield* run({ backlog: 200, concurrency: 40, batchWindow: "1 second" })
      assert.isAtLeast(most(observed), 3, `receives out at once: ${observed.outAtOnce.join(" ")}`)
      assert.deepStrictEqual(observed.sizes, Array.from({ length: 20 }, () => 10))
    }))

  it.effect("a thin queue (fewer arrivals than a batch a receive): one receive at a time", () =>
    Effect.gen(function*() {
      const observed = yield* run({ backlog: 0, trickle: { records: 40, gapMillis: 50 }, concurrency: 40 })
      assert.strictEqual(observed.stats.succeeded, 40)
      assert.strictEqual(most(observed), 1, `receives out at once: ${observed.outAtOnce.join(" ")}`)
    }))

  it.effect("records gathered by a batching window (full receives after a wait): one receive at a time", () =>
    Effect.gen(function*() {
      const observed = yield* run({ backlog: 0, trickle: { records: 100, gapMillis: 20 }, concurrency: 40, batchWindow: "1 second" })
      assert.strictEqual(observed.stats.succeeded, 100)
      assert.strictEqual(most(observed), 1, `receives out at once: ${observed.outAtOnce.join(" ")}`)
      assert.isAtMost(observed.sizes.length, 12, `batches: ${observed.sizes.join(" ")}`)
    }))

  it.effect("once the backlog is worked off it drops back to one receive at a time", () =>
    Effect.gen(function*() {
      const observed = yield* run({ backlog: 100, trickle: { records: 30, gapMillis: 50 }, concurrency: 40 })
      assert.strictEqual(observed.stats.succeeded, 130)
      assert.isAtLeast(most(observed), 2, "several at once on the backlog")
      const last = observed.outAtOnce.slice(-20)
      assert.deepStrictEqual(last, last.map(() => 1), `receives out at once: ${observed.outAtOnce.join(" ")}`)
    }))

  it.effect("a stop while receives are out together: they are abandoned, the batch running finishes, nothing is left invisible", () =>
    Effect.gen(function*() {
      // the first receive's batch runs for 200 ms; the next two are out when the stop lands at 30 ms
      const observed = yield* observe({ backlog: 300, concurrency: 40, runMillis: 200, stopAt: 30 })
      assert.deepStrictEqual(observed.outAtOnce, [1, 1, 2])
      assert.deepStrictEqual(observed.sizes, [10], "the batch running finished")
      assert.strictEqual(observed.stats.received, 10)
      assert.strictEqual(observed.stats.succeeded, 10)
      const attributes = yield* (yield* MessageQueue).attributes(QUEUE)
      assert.strictEqual(attributes.approximateInFlight, 0, "none taken by an abandoned receive (their timeout is longer than the test)")
      assert.strictEqual(attributes.approximateVisible, 290)
    }).pipe(Effect.provide(MessageQueue.layerMemory({ [QUEUE]: { visibilityTimeout: 3600 } }))))
})
