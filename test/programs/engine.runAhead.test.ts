/**
 * Run-ahead (`PIPELINE_RUN_AHEAD`): a message runs the steps after its own in the same pass, within
 * a budget, and sends only the state it reached; the ledger still has every place, so the chain's
 * history and step count are as if each step had been a pass of its own.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Duration, Effect, Layer, Option, Schema } from "effect"
import { TestClock } from "effect/testing"
import { PermanentError } from "../../src/domain/errors.ts"
import { definePipeline, done, mutation } from "../../src/domain/Pipeline.ts"
import { Attribute, initialTransition, toAttributes } from "../../src/domain/transition.ts"
import { acknowledge, type Outcome, processBatch } from "../../src/programs/engine.ts"
import { countOutcomes } from "../../src/programs/inProcessRunner.ts"
import { EngineSettings } from "../../src/services/EngineSettings.ts"
import { InvocationDeadline } from "../../src/services/InvocationDeadline.ts"
import { MessageQueue } from "../../src/services/MessageQueue.ts"
import { MemoryQueueControl } from "../../src/services/queue/memory.ts"
import { TransitionLedger } from "../../src/services/TransitionLedger.ts"

const QUEUE = "work"
const DLQ = "work-dlq"

const Counter = Schema.Struct({
  id: Schema.String,
  count: Schema.Number,
  /** The count at which `increment` fails (permanently). */
  failAt: Schema.optionalKey(Schema.Number)
})
type Counter = typeof Counter.Type

const runs: Array<string> = []
/** 0 → 1 → 2 (a checkpoint when `checkpointAt` is 1) → 3 → 4 → done. */
const increment = mutation("increment", (record: Counter) =>
  Effect.suspend(() => {
    runs.push(`${record.id}@${record.count}`)
    return record.failAt === record.count
      ? Effect.fail(new PermanentError({ message: `cannot count past ${record.count}` }))
      : Effect.succeed({ ...record, count: record.count + 1 })
  }))
const incrementAndKeep = mutation("incrementAndKeep", increment.run, { checkpoint: true })

const counter = definePipeline({
  name: "counter",
  schema: Counter,
  recordId: (record) => record.id,
  router: (record) => (record.count >= 4 ? done : record.count === 1 && record.id.startsWith("kept") ? incrementAndKeep : increment),
  initialRecord: (id) => ({ id, count: 0 }),
  layer: Layer.empty
})
const engine = processBatch(counter)

/** The counter with steps that take a second of the (test) clock each. */
const slowEngine = processBatch({
  ...counter,
  router: (record: Counter) => {
    const route = counter.router(record)
    return route._tag === "Mutation" ? { ...route, run: (r: Counter) => Effect.andThen(TestClock.adjust("1 second"), route.run(r)) } : route
  }
})

const services = (runAhead: Duration.Input) =>
  Layer.mergeAll(
    MessageQueue.layerMemory({ [QUEUE]: { deadLetterQueueUrl: DLQ, maxReceiveCount: 5, visibilityTimeout: 0 } }),
    EngineSettings.layerWith({ queueUrl: QUEUE, runAhead: Duration.fromInputUnsafe(runAhead) }),
    TransitionLedger.layerMemory
  )

const produce = (record: Counter) =>
  Effect.gen(function*() {
    yield* (yield* MessageQueue).send(QUEUE, [{ id: "p", body: JSON.stringify(record), attributes: toAttributes(initialTransition(record.id, record)) }])
  })

/** Receives a batch, runs it and deletes what was handled, like a healthy worker. */
const passOn = (run: typeof engine) =>
  Effect.gen(function*() {
    const messages = yield* (yield* MessageQueue).receive(QUEUE, { maxMessages: 10 })
    const outcomes = yield* run(messages)
    yield* acknowledge(QUEUE, outcomes)
    return outcomes
  })
const pass = passOn(engine)

/** The messages on the queue, without receiving them. */
const waiting = MemoryQueueControl.use((control) => Effect.succeed(control.messages(QUEUE)))

const summary = (outcomes: ReadonlyArray<Outcome>) =>
  outcomes.map((outcome) =>
    outcome._tag === "Advanced" ? `Advanced to ${outcome.step} (${outcome.transitions})`
    : outcome._tag === "Done" ? `Done at ${outcome.step} (${outcome.transitions})`
    : outcome._tag)

const places = (id: string) =>
  Effect.gen(function*() {
    const entries = yield* (yield* TransitionLedger).history(id)
    return entries.map((entry) => `${entry.step}:${entry.mutation ?? "-"}${entry.ending === undefined ? "" : `:${entry.ending.tag}`}`)
  })

describe("run-ahead", () => {
  it.effect("off (the default): one step per pass, each sent", () =>
    Effect.gen(function*() {
      runs.length = 0
      yield* produce({ id: "a", count: 0 })
      assert.deepStrictEqual(summary(yield* pass), ["Advanced to 1 (1)"])
      const [sent] = yield* waiting
      assert.strictEqual(sent!.attributes[Attribute.step], "1")
      assert.deepStrictEqual(runs, ["a@0"])
    }).pipe(Effect.provide(services(0))))

  it.effect("on: one pass runs the chain to done, sends nothing, and the ledger has every place", () =>
    Effect.gen(function*() {
      runs.length = 0
      yield* produce({ id: "b", count: 0 })
      const outcomes = yield* pass
      assert.deepStrictEqual(summary(outcomes), ["Done at 4 (4)"])
      assert.deepStrictEqual(countOutcomes(outcomes), { advanced: 4, done: 1, deadLettered: 0, retried: 0, duplicates: 0 })
      assert.deepStrictEqual(yield* waiting, [])
      assert.deepStrictEqual(runs, ["b@0", "b@1", "b@2", "b@3"])
      assert.deepStrictEqual((yield* places("b")).join(" "), "0:- 1:increment 2:increment 3:increment 4:increment:Done")
    }).pipe(Effect.provide(services("1 minute"))))

  it.effect("a checkpoint mutation's state is always sent; the next pass runs on from it", () =>
    Effect.gen(function*() {
      yield* produce({ id: "kept", count: 0 })
      assert.deepStrictEqual(summary(yield* pass), ["Advanced to 2 (2)"])
      const [sent] = yield* waiting
      assert.deepStrictEqual(JSON.parse(sent!.body), { id: "kept", count: 2 })
      assert.strictEqual(sent!.attributes[Attribute.mutation], "incrementAndKeep")
      assert.deepStrictEqual(summary(yield* pass), ["Done at 4 (2)"])
      assert.deepStrictEqual((yield* places("kept")).join(" "), ["0:-", "1:increment", "2:incrementAndKeep", "3:increment", "4:increment:Done"].join(" "))
    }).pipe(Effect.provide(services("1 minute"))))

  it.effect("a step failing while running ahead ends the run-ahead: the last good state is sent, and the next pass dead-letters it at that step", () =>
    Effect.gen(function*() {
      yield* produce({ id: "c", count: 0, failAt: 2 })
      assert.deepStrictEqual(summary(yield* pass), ["Advanced to 2 (2)"])
      assert.deepStrictEqual(summary(yield* pass), ["DeadLettered"])
      const letters = yield* (yield* MessageQueue).receive(DLQ, { maxMessages: 10 })
      assert.deepStrictEqual(letters.map((letter) => [JSON.parse(letter.body).count, letter.attributes["error.tag"], letter.attributes["error.step"]]), [
        [2, "PermanentError", "increment"]
      ])
    }).pipe(Effect.provide(services("1 minute"))))

  it.effect("the step limit bounds it: the state at the limit is sent, and dead-lettered on the next pass", () =>
    Effect.gen(function*() {
      yield* produce({ id: "d", count: 0 })
      assert.deepStrictEqual(summary(yield* pass), ["Advanced to 2 (2)"])
      assert.deepStrictEqual(summary(yield* pass), ["DeadLettered"])
    }).pipe(Effect.provide(Layer.mergeAll(
      MessageQueue.layerMemory({ [QUEUE]: { deadLetterQueueUrl: DLQ, maxReceiveCount: 5, visibilityTimeout: 0 } }),
      EngineSettings.layerWith({ queueUrl: QUEUE, runAhead: Duration.minutes(1), maxSteps: 2 }),
      TransitionLedger.layerMemory
    ))))

  it.effect("an invocation's deadline bounds it: with under the margin left, one step per pass", () =>
    Effect.gen(function*() {
      yield* produce({ id: "e", count: 0 })
      const now = yield* Clock.currentTimeMillis
      assert.deepStrictEqual(summary(yield* pass.pipe(Effect.provideService(InvocationDeadline, Option.some(now + 1_000)))), [
        "Advanced to 1 (1)"
      ])
      assert.deepStrictEqual(summary(yield* pass.pipe(Effect.provideService(InvocationDeadline, Option.some(now + 60_000)))), [
        "Done at 4 (3)"
      ])
    }).pipe(Effect.provide(services("1 minute"))))

  it.effect("a place it runs ahead to that another message holds (an earlier attempt's successor) makes this pass a copy: nothing sent", () =>
    Effect.gen(function*() {
      yield* produce({ id: "f", count: 0 })
      const [first] = yield* waiting
      // an earlier attempt, one step per pass, sent the successor of step 0 and died: it holds step 1
      const trace = first!.attributes[Attribute.traceId]!
      yield* (yield* TransitionLedger).claim([{ traceId: trace, step: 1, messageId: "earlier-successor" }])
      assert.deepStrictEqual(summary(yield* pass), ["Duplicate"])
      assert.deepStrictEqual(yield* waiting, [])
    }).pipe(Effect.provide(services("1 minute"))))

  it.effect("the budget bounds it: steps of a second each with a budget of 2.5 s run three in the pass", () =>
    Effect.gen(function*() {
      yield* produce({ id: "slow", count: 0 })
      assert.deepStrictEqual(summary(yield* passOn(slowEngine)), ["Advanced to 3 (3)"])
      const [sent] = yield* waiting
      assert.deepStrictEqual(JSON.parse(sent!.body), { id: "slow", count: 3 })
      assert.strictEqual(sent!.attributes[Attribute.step], "3")
      // the history has each place at the time the pass reached it, not when the pass ended
      const history = yield* (yield* TransitionLedger).history("slow")
      assert.deepStrictEqual(history.map((entry) => [entry.step, entry.claimedAt - history[0]!.claimedAt]), [[0, 0], [1, 1000], [2, 2000]])
    }).pipe(Effect.provide(Layer.mergeAll(
      MessageQueue.layerMemory({ [QUEUE]: { deadLetterQueueUrl: DLQ, maxReceiveCount: 5, visibilityTimeout: 0 } }),
      EngineSettings.layerWith({ queueUrl: QUEUE, runAhead: Duration.millis(2500) }),
      TransitionLedger.layerMemory
    ))))

  it.effect("a crash after the state was sent but before the delete: the redelivery sends a copy, which the ledger skips; the record is done once", () =>
    Effect.gen(function*() {
      yield* produce({ id: "kept-crash", count: 0 })
      const queue = yield* MessageQueue
      // the first attempt sends the checkpoint's state and dies before deleting its message
      const first = yield* queue.receive(QUEUE, { maxMessages: 10 })
      assert.deepStrictEqual(summary(yield* engine(first)), ["Advanced to 2 (2)"])
      // the message comes back; its places are its own, so it runs again and sends the state again
      const again = (yield* queue.receive(QUEUE, { maxMessages: 10 })).filter((m) => m.messageId === first[0]!.messageId)
      const outcomes = yield* engine(again)
      yield* acknowledge(QUEUE, outcomes)
      assert.deepStrictEqual(summary(outcomes), ["Advanced to 2 (2)"])
      // two copies of step 2: one runs on to done, the other is skipped
      const ends = summary(yield* pass).sort()
      assert.deepStrictEqual(ends, ["Done at 4 (2)", "Duplicate"])
      assert.deepStrictEqual(yield* waiting, [])
    }).pipe(Effect.provide(services("1 minute"))))

  it.effect("a crash before anything was sent: the redelivery finds the places it had claimed its own and runs to done", () =>
    Effect.gen(function*() {
      yield* produce({ id: "g", count: 0 })
      const [message] = yield* waiting
      const trace = message!.attributes[Attribute.traceId]!
      // the crashed attempt had claimed its place and the places it ran ahead through
      yield* (yield* TransitionLedger).claim([0, 1, 2].map((step) => ({ traceId: trace, step, messageId: message!.messageId })))
      assert.deepStrictEqual(summary(yield* pass), ["Done at 4 (4)"])
      assert.deepStrictEqual(yield* waiting, [])
    }).pipe(Effect.provide(services("1 minute"))))
})
