import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Fiber, Layer, Option, Schema } from "effect"
import { TestClock } from "effect/testing"
import { PermanentError, RetryableError } from "../../src/domain/errors.ts"
import { type AnyPipeline, definePipeline, done, mutation, unknownState } from "../../src/domain/Pipeline.ts"
import { Attribute, initialTransition, toAttributes } from "../../src/domain/transition.ts"
import { greetingPipeline } from "../../src/pipelines/greeting.ts"
import { acknowledge, processBatch } from "../../src/programs/engine.ts"
import { EngineSettings, type Settings } from "../../src/services/EngineSettings.ts"
import { MemoryQueueControl } from "../../src/services/queue/memory.ts"
import type { OutgoingMessage } from "../../src/domain/messages.ts"
import { MessageQueue } from "../../src/services/MessageQueue.ts"

const QUEUE = "https://sqs.test/000000000000/work"
const DLQ = "https://sqs.test/000000000000/work-dlq"

/** A pipeline whose records say how their one step should go. */
const Task = Schema.Struct({
  id: Schema.String,
  behaviour: Schema.Literals(["ok", "retry-once", "retry-always", "permanent", "unknown", "throw"]),
  attempts: Schema.optionalKey(Schema.Number),
  done: Schema.optionalKey(Schema.Boolean)
})
type Task = typeof Task.Type

const attemptsById = new Map<string, number>()
const work = mutation<Task, RetryableError | PermanentError>("work", (task) =>
  Effect.gen(function*() {
    const attempt = (attemptsById.get(task.id) ?? 0) + 1
    attemptsById.set(task.id, attempt)
    if (task.behaviour === "retry-always" || (task.behaviour === "retry-once" && attempt === 1)) {
      return yield* new RetryableError({ message: `busy (attempt ${attempt})` })
    }
    if (task.behaviour === "permanent") return yield* new PermanentError({ message: "the source is gone" })
    if (task.behaviour === "throw") throw new Error("bug in work")
    return { ...task, done: true, attempts: attempt }
  }))

const tasks = definePipeline({
  name: "tasks",
  schema: Task,
  recordId: (task) => task.id,
  router: (task) => (task.behaviour === "unknown" ? unknownState("no rule for this task") : task.done ? done : work),
  initialRecord: (id) => ({ id, behaviour: "ok" }),
  layer: Layer.empty
})

const seed = (queueUrl: string, records: ReadonlyArray<unknown | string>) =>
  Effect.gen(function*() {
    const queue = yield* MessageQueue
    const entries = records.map((record, index): OutgoingMessage => ({
      id: `s${index}`,
      body: typeof record === "string" ? record : JSON.stringify(record),
      attributes: toAttributes(initialTransition(`r${index}`, record))
    }))
    const result = yield* queue.send(queueUrl, entries)
    assert.strictEqual(result.failed.length, 0)
  })

/** Receive one batch, process it, delete what was handled: one pass of an agent. */
const pass = (pipeline: AnyPipeline) =>
  Effect.gen(function*() {
    const queue = yield* MessageQueue
    const messages = yield* queue.receive(QUEUE, { maxMessages: 10 })
    const outcomes = yield* processBatch(pipeline)(messages)
    yield* acknowledge(QUEUE, outcomes)
    return outcomes
  })

const bodies = (queueUrl: string) =>
  MemoryQueueControl.useSync((control) => control.messages(queueUrl).map((m): unknown => JSON.parse(m.body)))

const withQueues = (settings: Partial<Settings> = {}) =>
  Layer.mergeAll(
    MessageQueue.layerMemory({ [QUEUE]: { deadLetterQueueUrl: DLQ, maxReceiveCount: 5 } }),
    EngineSettings.layerWith({ queueUrl: QUEUE, ...settings })
  )

describe("engine", () => {
  it.effect("moves a greeting from {} to done, one step per pass", () =>
    Effect.gen(function*() {
      yield* seed(QUEUE, [{ id: "g1" }])
      const first = yield* pass(greetingPipeline)
      assert.deepStrictEqual(first.map((o) => o._tag), ["Advanced"])
      assert.deepStrictEqual(yield* bodies(QUEUE), [{ id: "g1", greeting: "hello" }])
      yield* pass(greetingPipeline)
      assert.deepStrictEqual(yield* bodies(QUEUE), [{ id: "g1", greeting: "hello", name: "world" }])
      const last = yield* pass(greetingPipeline)
      assert.deepStrictEqual(last.map((o) => o._tag), ["Done"])
      assert.deepStrictEqual(yield* bodies(QUEUE), [])
      assert.deepStrictEqual(yield* bodies(DLQ), [])
    }).pipe(Effect.provide(withQueues())))

  it.effect("carries the step and trace id forward and hashes each transition", () =>
    Effect.gen(function*() {
      yield* seed(QUEUE, [{ id: "g1" }])
      const control = yield* MemoryQueueControl
      const traceId = control.messages(QUEUE)[0]!.attributes[Attribute.traceId]
      yield* pass(greetingPipeline)
      const [successor] = control.messages(QUEUE)
      assert.strictEqual(successor!.attributes[Attribute.step], "1")
      assert.strictEqual(successor!.attributes[Attribute.traceId], traceId)
      assert.match(successor!.attributes[Attribute.transitionId]!, /^[0-9a-f]{64}$/)
    }).pipe(Effect.provide(withQueues())))

  it.effect("a record the router calls done is acknowledged and nothing is sent", () =>
    Effect.gen(function*() {
      yield* seed(QUEUE, [{ id: "t", behaviour: "ok", done: true }])
      const outcomes = yield* pass(tasks)
      assert.deepStrictEqual(outcomes.map((o) => o._tag), ["Done"])
      assert.deepStrictEqual(yield* bodies(QUEUE), [])
      assert.strictEqual((yield* MemoryQueueControl).requests.send, 1) // the seed only
    }).pipe(Effect.provide(withQueues())))

  it.effect("a body that is not JSON goes to the DLQ unchanged, with its reason", () =>
    Effect.gen(function*() {
      yield* seed(QUEUE, ["{not json"])
      const outcomes = yield* pass(tasks)
      assert.deepStrictEqual(outcomes.map((o) => o._tag), ["DeadLettered"])
      const control = yield* MemoryQueueControl
      assert.deepStrictEqual(control.messages(QUEUE), [])
      const [dead] = control.messages(DLQ)
      assert.strictEqual(dead!.body, "{not json")
      assert.strictEqual(dead!.attributes["error.tag"], "MalformedBody")
      assert.include(dead!.attributes["error.message"], "not JSON")
      assert.strictEqual(dead!.attributes["error.step"], "decode")
      assert.strictEqual(dead!.attributes["error.source_queue"], QUEUE)
      assert.strictEqual(dead!.attributes[Attribute.step], "0")
    }).pipe(Effect.provide(withQueues())))

  it.effect("a record that breaks the schema goes to the DLQ naming the field", () =>
    Effect.gen(function*() {
      yield* seed(QUEUE, [{ id: "t", behaviour: "sideways" }])
      yield* pass(tasks)
      const [dead] = (yield* MemoryQueueControl).messages(DLQ)
      assert.strictEqual(dead!.attributes["error.tag"], "SchemaViolation")
      assert.include(dead!.attributes["error.message"], `["behaviour"]`)
    }).pipe(Effect.provide(withQueues())))

  it.effect("an unknown state goes to the DLQ", () =>
    Effect.gen(function*() {
      yield* seed(QUEUE, [{ id: "t", behaviour: "unknown" }])
      yield* pass(tasks)
      const [dead] = (yield* MemoryQueueControl).messages(DLQ)
      assert.strictEqual(dead!.attributes["error.tag"], "UnknownState")
      assert.strictEqual(dead!.attributes["error.message"], "no rule for this task")
      assert.strictEqual(dead!.attributes["error.step"], "route")
    }).pipe(Effect.provide(withQueues())))

  it.effect("a retryable error is retried in process, then the step succeeds", () =>
    Effect.gen(function*() {
      attemptsById.delete("retry-once")
      yield* seed(QUEUE, [{ id: "retry-once", behaviour: "retry-once" }])
      const fiber = yield* Effect.forkChild(pass(tasks))
      yield* TestClock.adjust("1 second")
      const outcomes = yield* Fiber.join(fiber)
      assert.deepStrictEqual(outcomes.map((o) => o._tag), ["Advanced"])
      assert.deepStrictEqual(yield* bodies(QUEUE), [{ id: "retry-once", behaviour: "retry-once", done: true, attempts: 2 }])
    }).pipe(Effect.provide(withQueues())))

  it.effect("a retryable error that outlasts the retry budget is left for redelivery, not dead-lettered", () =>
    Effect.gen(function*() {
      attemptsById.delete("stuck")
      yield* seed(QUEUE, [{ id: "stuck", behaviour: "retry-always" }])
      const fiber = yield* Effect.forkChild(pass(tasks))
      yield* TestClock.adjust("1 minute")
      const outcomes = yield* Fiber.join(fiber)
      assert.deepStrictEqual(outcomes.map((o) => o._tag), ["Failed"])
      assert.isAbove(attemptsById.get("stuck")!, 3)
      const control = yield* MemoryQueueControl
      assert.strictEqual(control.messages(QUEUE).length, 1, "still on the queue")
      assert.deepStrictEqual(control.messages(DLQ), [])
    }).pipe(Effect.provide(withQueues({ retryFor: Duration.seconds(5) }))))

  it.effect("a mutation's permanent error dead-letters and deletes the message", () =>
    Effect.gen(function*() {
      yield* seed(QUEUE, [{ id: "gone", behaviour: "permanent" }])
      const outcomes = yield* pass(tasks)
      assert.deepStrictEqual(outcomes.map((o) => o._tag), ["DeadLettered"])
      const control = yield* MemoryQueueControl
      assert.deepStrictEqual(control.messages(QUEUE), [])
      const [dead] = control.messages(DLQ)
      assert.strictEqual(dead!.attributes["error.tag"], "PermanentError")
      assert.strictEqual(dead!.attributes["error.message"], "the source is gone")
      assert.strictEqual(dead!.attributes["error.step"], "work")
    }).pipe(Effect.provide(withQueues())))

  it.effect("a mutation that throws is left for redelivery (the redrive policy decides)", () =>
    Effect.gen(function*() {
      yield* seed(QUEUE, [{ id: "bug", behaviour: "throw" }])
      const outcomes = yield* pass(tasks)
      assert.deepStrictEqual(outcomes.map((o) => o._tag), ["Failed"])
      assert.include(outcomes[0]!._tag === "Failed" ? outcomes[0].error.message : "", "bug in work")
      assert.strictEqual((yield* MemoryQueueControl).messages(QUEUE).length, 1)
    }).pipe(Effect.provide(withQueues())))

  it.effect("when one successor of a batch is rejected, only its message is reported failed", () =>
    Effect.gen(function*() {
      yield* seed(QUEUE, [{ id: "a", behaviour: "ok" }, { id: "b", behaviour: "ok" }, { id: "c", behaviour: "ok" }])
      const control = yield* MemoryQueueControl
      control.faults.entry = (_operation, _queueUrl, message) =>
        message.body.includes(`"id":"b"`)
          ? { id: message.id, code: "InvalidParameterValue", message: "rejected", senderFault: true }
          : undefined
      const outcomes = yield* pass(tasks)
      const failed = outcomes.filter((o) => o._tag === "Failed").map((o) => JSON.parse(o.message.body).id)
      assert.deepStrictEqual(failed, ["b"])
      // a and c were advanced and deleted; b's original is still on the queue, invisible until its timeout
      const remaining = control.messages(QUEUE).map((m) => JSON.parse(m.body))
      assert.sameDeepMembers(remaining, [
        { id: "a", behaviour: "ok", done: true, attempts: 1 },
        { id: "b", behaviour: "ok" },
        { id: "c", behaviour: "ok", done: true, attempts: 1 }
      ])
    }).pipe(Effect.provide(withQueues())))

  it.effect("a throttled successor entry is resent and its message succeeds", () =>
    Effect.gen(function*() {
      yield* seed(QUEUE, [{ id: "x", behaviour: "ok" }])
      const control = yield* MemoryQueueControl
      let throttled = 0
      control.faults.entry = (_operation, _queueUrl, message) =>
        message.body.includes(`"done":true`) && throttled++ < 2
          ? { id: message.id, code: "ThrottlingException", message: "slow down", senderFault: false }
          : undefined
      const fiber = yield* Effect.forkChild(pass(tasks))
      yield* TestClock.adjust("2 seconds")
      const outcomes = yield* Fiber.join(fiber)
      assert.deepStrictEqual(outcomes.map((o) => o._tag), ["Advanced"])
      assert.strictEqual(throttled, 3)
    }).pipe(Effect.provide(withQueues())))

  it.effect("a chain past the step limit is dead-lettered", () =>
    Effect.gen(function*() {
      const queue = yield* MessageQueue
      yield* queue.send(QUEUE, [{
        id: "s",
        body: JSON.stringify({ id: "loop", behaviour: "ok" }),
        attributes: { ...toAttributes(initialTransition("loop", {})), [Attribute.step]: "3" }
      }])
      yield* pass(tasks)
      const [dead] = (yield* MemoryQueueControl).messages(DLQ)
      assert.strictEqual(dead!.attributes["error.tag"], "StepLimitReached")
      assert.include(dead!.attributes["error.message"], "limit of 3")
    }).pipe(Effect.provide(withQueues({ maxSteps: 3 }))))

  it.effect("a batch of 10 with 3 bad messages: 7 advance, 3 dead-lettered, none left behind", () =>
    Effect.gen(function*() {
      const good = Array.from({ length: 7 }, (_, i) => ({ id: `ok-${i}`, behaviour: "ok" }))
      yield* seed(QUEUE, [...good.slice(0, 3), "[]", ...good.slice(3, 5), "nope", { id: 5 }, ...good.slice(5)])
      const outcomes = yield* pass(tasks)
      assert.strictEqual(outcomes.filter((o) => o._tag === "Advanced").length, 7)
      assert.strictEqual(outcomes.filter((o) => o._tag === "DeadLettered").length, 3)
      const control = yield* MemoryQueueControl
      assert.strictEqual(control.messages(DLQ).length, 3)
      assert.isTrue(control.messages(QUEUE).every((m) => JSON.parse(m.body).done === true))
      assert.strictEqual(control.requests.send, 1 + 1 + 1, "seed, successors, dead letters: one request each")
    }).pipe(Effect.provide(withQueues())))

  it.effect("with no dead-letter queue a permanent failure is reported failed and kept", () =>
    Effect.gen(function*() {
      const control = yield* MemoryQueueControl
      control.create(QUEUE, {})
      yield* seed(QUEUE, ["{"])
      const outcomes = yield* pass(tasks)
      assert.deepStrictEqual(outcomes.map((o) => o._tag), ["Failed"])
      assert.strictEqual(control.messages(QUEUE).length, 1)
    }).pipe(Effect.provide(withQueues())))

  it.effect("a configured dead-letter queue wins over the redrive target", () =>
    Effect.gen(function*() {
      yield* seed(QUEUE, ["{"])
      yield* pass(tasks)
      const control = yield* MemoryQueueControl
      assert.strictEqual(control.messages("elsewhere").length, 1)
      assert.strictEqual(control.requests.attributes, 0)
    }).pipe(Effect.provide(withQueues({ deadLetterQueueUrl: Option.some("elsewhere") }))))

  it.effect("on a FIFO queue the successor carries the record's group and a stable dedup id", () =>
    Effect.gen(function*() {
      const fifo = "https://sqs.test/000000000000/work.fifo"
      const queue = yield* MessageQueue
      const advanceOnce = Effect.gen(function*() {
        yield* queue.send(fifo, [{ id: "s", body: JSON.stringify({ id: "f1" }), groupId: "f1", attributes: {} }])
        const messages = yield* queue.receive(fifo)
        return yield* processBatch(greetingPipeline)(messages.filter((m) => m.body === `{"id":"f1"}`))
      })
      yield* advanceOnce
      yield* advanceOnce // the same transition again, as a duplicate delivery would make it
      const control = yield* MemoryQueueControl
      const successors = control.messages(fifo).filter((m) => m.body.includes(`"greeting"`))
      assert.strictEqual(successors.length, 1, "the duplicate successor was deduplicated")
      assert.strictEqual(successors[0]!.groupId, "f1")
      assert.match(successors[0]!.deduplicationId!, /^[0-9a-f]{64}$/)
    }).pipe(Effect.provide(withQueues({ queueUrl: "https://sqs.test/000000000000/work.fifo" }))))
})
