/**
 * The engine with a transition ledger: a worker that dies between sending a successor and deleting
 * its message leaves two successors for one place; only one of them may advance the chain.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Logger, Metric, Schema } from "effect"
import { PermanentError } from "../../src/domain/errors.ts"
import { definePipeline, done, mutation } from "../../src/domain/Pipeline.ts"
import { initialTransition, toAttributes } from "../../src/domain/transition.ts"
import { acknowledge, duplicatesSkipped, type Outcome, processBatch } from "../../src/programs/engine.ts"
import { EngineSettings } from "../../src/services/EngineSettings.ts"
import { MemoryQueueControl } from "../../src/services/queue/memory.ts"
import type { QueueMessage } from "../../src/domain/messages.ts"
import { MessageQueue } from "../../src/services/MessageQueue.ts"
import { LedgerError, TransitionLedger } from "../../src/services/TransitionLedger.ts"

const QUEUE = "work"
const DLQ = "work-dlq"

const Counter = Schema.Struct({ id: Schema.String, count: Schema.Number, poison: Schema.optionalKey(Schema.Boolean) })
type Counter = typeof Counter.Type

/** Counts to 3, one step per pass; every run of a step is recorded, so a test can count executions. */
const runs: Array<string> = []
const increment = mutation<Counter, PermanentError>("increment", (record) =>
  Effect.suspend(() => {
    runs.push(`${record.id}@${record.count}`)
    return record.poison === true
      ? Effect.fail(new PermanentError({ message: "poisoned" }))
      : Effect.succeed({ ...record, count: record.count + 1 })
  }))
const counter = definePipeline({
  name: "counter",
  schema: Counter,
  recordId: (record) => record.id,
  router: (record) => (record.count >= 3 ? done : increment),
  initialRecord: (id) => ({ id, count: 0 }),
  layer: Layer.empty
})
const engine = processBatch(counter)

const services = (ledger: Layer.Layer<TransitionLedger> | Layer.Layer<never> = TransitionLedger.layerMemory) =>
  Layer.mergeAll(
    MessageQueue.layerMemory({ [QUEUE]: { deadLetterQueueUrl: DLQ, maxReceiveCount: 5, visibilityTimeout: 0 } }),
    EngineSettings.layerWith({ queueUrl: QUEUE }),
    ledger
  )

const produce = (record: Counter) =>
  Effect.gen(function*() {
    const queue = yield* MessageQueue
    yield* queue.send(QUEUE, [{ id: "p", body: JSON.stringify(record), attributes: toAttributes(initialTransition(record.id, record)) }])
  })

const receiveAll = Effect.gen(function*() {
  return yield* (yield* MessageQueue).receive(QUEUE, { maxMessages: 10 })
})

// live clock: the memory queue's receive waits on the clock when the queue is empty

/** Runs a batch and deletes what it handled, like a healthy worker. */
const pass = (messages: ReadonlyArray<QueueMessage>) =>
  Effect.gen(function*() {
    const outcomes = yield* engine(messages)
    yield* acknowledge(QUEUE, outcomes)
    return outcomes
  })

const tags = (outcomes: ReadonlyArray<Outcome>) => outcomes.map((outcome) => outcome._tag).sort()

/** A worker runs step 0, sends its successor, and dies before deleting: step 0 comes back and runs again. */
const crashAfterSend = Effect.gen(function*() {
  const first = yield* receiveAll
  assert.deepStrictEqual(tags(yield* engine(first)), ["Advanced"], "successor sent, message not deleted")
  const again = (yield* receiveAll).filter((message) => message.messageId === first[0]!.messageId)
  assert.strictEqual(again.length, 1, "the same message, redelivered")
  return again
})

describe("engine with a transition ledger", () => {
  it.live("a redelivered message runs again, and of the two successors only one advances the chain", () =>
    Effect.gen(function*() {
      runs.length = 0
      yield* produce({ id: "a", count: 0 })
      const redelivered = yield* crashAfterSend
      assert.deepStrictEqual(tags(yield* pass(redelivered)), ["Advanced"], "its own place: a redelivery, not a copy")
      const successors = yield* receiveAll
      assert.strictEqual(successors.length, 2, "two successors for step 1")
      assert.deepStrictEqual(tags(yield* pass(successors)), ["Advanced", "Duplicate"])
      while (true) {
        const messages = yield* receiveAll
        if (messages.length === 0) break
        yield* pass(messages)
      }
      assert.deepStrictEqual(runs, ["a@0", "a@0", "a@1", "a@2"], "step 0 twice (the redelivery), every later step once")
      assert.deepStrictEqual((yield* MemoryQueueControl).messages(QUEUE), [])
    }).pipe(Effect.provide(services())))

  it.live("the ledger keeps each record's history: every step's message and mutation, done, a skipped copy, a dead letter's reason", () =>
    Effect.gen(function*() {
      runs.length = 0
      yield* produce({ id: "h", count: 0 })
      yield* pass(yield* crashAfterSend)
      while (true) {
        const messages = yield* receiveAll
        if (messages.length === 0) break
        yield* pass(messages)
      }
      const ledger = yield* TransitionLedger
      // found by the record's id: the engine names it on the chain's first successor, once
      const history = yield* ledger.history("h")
      assert.deepStrictEqual(history.map((entry) => [entry.step, entry.mutation ?? null, entry.recordId ?? null, entry.ending?.tag ?? null]), [
        [0, null, null, null],
        [1, "increment", "h", null],
        [2, "increment", null, null],
        [3, "increment", null, "Done"]
      ])
      assert.deepStrictEqual(history.map((entry) => entry.duplicatesSkipped), [0, 1, 0, 0], "the second successor of step 0, skipped at step 1")
      assert.strictEqual(new Set(history.map((entry) => entry.messageId)).size, 4)
      assert.deepStrictEqual(yield* ledger.history(history[0]!.traceId), history)

      yield* produce({ id: "p", count: 0, poison: true })
      const [poisoned] = yield* receiveAll
      yield* pass([poisoned!])
      const [dead] = yield* ledger.history(poisoned!.attributes["pipeline.trace_id"]!)
      assert.deepInclude(dead!.ending, { tag: "DeadLettered", reason: "PermanentError", message: "poisoned", stage: "increment" })
    }).pipe(Effect.provide(services())))

  it.live("without a ledger the same crash forks the chain: both successors run to done", () =>
    Effect.gen(function*() {
      runs.length = 0
      yield* produce({ id: "b", count: 0 })
      yield* pass(yield* crashAfterSend)
      let done = 0
      while (true) {
        const messages = yield* receiveAll
        if (messages.length === 0) break
        done += (yield* pass(messages)).filter((outcome) => outcome._tag === "Done").length
      }
      assert.strictEqual(done, 2, "two copies of one record reached done")
      assert.deepStrictEqual(runs, ["b@0", "b@0", "b@1", "b@1", "b@2", "b@2"])
    }).pipe(Effect.provide(services(Layer.empty))))

  it.live("a skipped copy is logged with its chain and step, and deleted without running", () =>
    Effect.gen(function*() {
      runs.length = 0
      yield* produce({ id: "c", count: 0 })
      yield* pass(yield* crashAfterSend)
      const lines: Array<string> = []
      const collect = Logger.layer([Logger.make((log) => lines.push(String(log.message)))])
      const successors = yield* receiveAll
      const [first, second] = successors
      yield* pass([first!])
      runs.length = 0
      const skippedBefore = (yield* Metric.value(duplicatesSkipped)).count
      const outcomes = yield* pass([second!]).pipe(Effect.provide(collect))
      assert.deepStrictEqual(tags(outcomes), ["Duplicate"])
      assert.strictEqual((yield* Metric.value(duplicatesSkipped)).count - skippedBefore, 1, "counted as pipeline_duplicates_skipped")
      const snapshot = (yield* Metric.snapshot).find((metric) => metric.id === "pipeline_duplicates_skipped")
      assert.isDefined(snapshot?.description)
      assert.deepStrictEqual(runs, [], "nothing ran for the copy")
      assert.isTrue(lines.some((line) => line.includes(`skipped message ${second!.messageId}`) && line.includes("step 1")), lines.join("\n"))
      const left = (yield* MemoryQueueControl).messages(QUEUE).map((message) => message.messageId)
      assert.notInclude(left, second!.messageId, "the copy was deleted")
    }).pipe(Effect.provide(services())))

  it.live("a dead-lettered message gives its place back, so the message a redrive sends can run", () =>
    Effect.gen(function*() {
      runs.length = 0
      const poisoned = { id: "d", count: 0, poison: true }
      yield* produce(poisoned)
      const [message] = yield* receiveAll
      assert.deepStrictEqual(tags(yield* pass([message!])), ["DeadLettered"])
      // a redrive: the same body and attributes, a new message id
      const queue = yield* MessageQueue
      yield* queue.send(QUEUE, [{ id: "r", body: JSON.stringify({ ...poisoned, poison: false }), attributes: message!.attributes }])
      const redriven = yield* receiveAll
      assert.notStrictEqual(redriven[0]!.messageId, message!.messageId)
      assert.deepStrictEqual(tags(yield* pass(redriven)), ["Advanced"])
    }).pipe(Effect.provide(services())))

  it.live("a ledger that cannot be reached fails the batch for redelivery and runs nothing", () =>
    Effect.gen(function*() {
      runs.length = 0
      yield* produce({ id: "e", count: 0 })
      const messages = yield* receiveAll
      const unreachable = Layer.succeed(TransitionLedger, TransitionLedger.of({
        enabled: true,
        claim: () => Effect.fail(new LedgerError({ operation: "PutItem", message: "access denied", retryable: false, cause: null })),
        finish: () => Effect.void,
        history: () => Effect.succeed([]),
        entries: () => Effect.succeed([])
      }))
      const outcomes = yield* engine(messages).pipe(Effect.provide(unreachable))
      assert.deepStrictEqual(tags(outcomes), ["Failed"])
      const [failed] = outcomes
      assert.deepInclude(failed!._tag === "Failed" ? failed.error : undefined, { _tag: "LedgerError", message: "access denied" })
      assert.deepStrictEqual(runs, [])
    }).pipe(Effect.provide(services())))
  it.live("the same record produced twice on purpose is two chains, and both run: only copies within one chain are duplicates", () =>
    Effect.gen(function*() {
      runs.length = 0
      yield* produce({ id: "g", count: 0 })
      yield* produce({ id: "g", count: 0 })
      const outcomes: Array<Outcome> = []
      while (true) {
        const messages = yield* receiveAll
        if (messages.length === 0) break
        outcomes.push(...(yield* pass(messages)))
      }
      assert.strictEqual(outcomes.filter((outcome) => outcome._tag === "Done").length, 2)
      assert.strictEqual(outcomes.filter((outcome) => outcome._tag === "Duplicate").length, 0)
      assert.strictEqual(runs.length, 6)
    }).pipe(Effect.provide(services())))
})
