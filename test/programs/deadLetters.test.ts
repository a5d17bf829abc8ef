/**
 * Peeking and redriving the dead-letter queue over the memory queue (live clock: its empty
 * receives poll): what stays, what moves,
 * with which attributes, and what a second run does after a first one stopped between its send
 * and its delete.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Layer, Option } from "effect"
import { peekDeadLetters, redriveDeadLetters } from "../../src/programs/deadLetters.ts"
import { EngineSettings } from "../../src/services/EngineSettings.ts"
import { pipelineStatus } from "../../src/programs/status.ts"
import { MemoryQueueControl } from "../../src/services/queue/memory.ts"
import type { OutgoingMessage } from "../../src/domain/messages.ts"
import { MessageQueue } from "../../src/services/MessageQueue.ts"
import { RedriveJournal } from "../../src/services/RedriveJournal.ts"

const QUEUE = "https://sqs.test/000000000000/jobs"
const DLQ = "https://sqs.test/000000000000/jobs-dlq"
const FIFO = "https://sqs.test/000000000000/jobs.fifo"
const FIFO_DLQ = "https://sqs.test/000000000000/jobs-dlq.fifo"

const layerFor = (queueUrl: string, dlqUrl: string) =>
  Layer.mergeAll(
    MessageQueue.layerMemory({ [queueUrl]: { deadLetterQueueUrl: dlqUrl, maxReceiveCount: 5 }, [dlqUrl]: { visibilityTimeout: 1 } }),
    EngineSettings.layerWith({ queueUrl }),
    RedriveJournal.layerMemory
  )
const testLayer = layerFor(QUEUE, DLQ)

/** A dead letter as the engine writes one. */
const deadLetter = (n: number, tag: string, step: string, sourceQueue = QUEUE): OutgoingMessage => ({
  id: `m${n}`,
  body: JSON.stringify({ id: `rec-${n}` }),
  attributes: {
    "pipeline.step": "1",
    "pipeline.trace_id": `trace-${n}`,
    "pipeline.transition_id": `t-${n}`,
    "error.tag": tag,
    "error.message": `${tag} happened`,
    "error.step": step,
    "error.receive_count": "1",
    "error.source_queue": sourceQueue
  }
})

const seed = (dlq: string, messages: ReadonlyArray<OutgoingMessage>) =>
  Effect.gen(function*() {
    const queue = yield* MessageQueue
    const result = yield* queue.send(dlq, messages)
    assert.strictEqual(result.failed.length, 0)
  })

const visibleNow = (queueUrl: string) =>
  Effect.gen(function*() {
    const control = yield* MemoryQueueControl
    const now = yield* Clock.currentTimeMillis
    return control.messages(queueUrl).filter((message) => message.visibleAt <= now).length
  })

describe("dead letters", () => {
  it.live("a peek shows every dead letter with its reason and leaves them all visible", () =>
    Effect.gen(function*() {
      yield* seed(DLQ, [...Array.from({ length: 13 }, (_, i) => deadLetter(i, "CorruptImage", "thumbnail200")), deadLetter(13, "SchemaViolation", "decode")])
      const peek = yield* peekDeadLetters(100)
      assert.strictEqual(peek.letters.length, 14)
      assert.strictEqual(peek.count, 14)
      assert.isFalse(peek.truncated)
      const schema = peek.letters.find((letter) => letter.reason === "SchemaViolation")!
      assert.deepInclude(schema, { step: "decode", receiveCount: 1, sourceQueue: QUEUE, errorMessage: "SchemaViolation happened" })
      // visible again: a receive right away gets them
      const queue = yield* MessageQueue
      const again = yield* queue.receive(DLQ, { maxMessages: 10 })
      assert.strictEqual(again.length, 10)
    }).pipe(Effect.provide(testLayer)))

  it.live("a peek stops at its limit and says there is more", () =>
    Effect.gen(function*() {
      yield* seed(DLQ, Array.from({ length: 25 }, (_, i) => deadLetter(i, "CorruptImage", "thumbnail200")))
      const peek = yield* peekDeadLetters(12)
      assert.strictEqual(peek.letters.length, 12)
      assert.isTrue(peek.truncated)
      assert.strictEqual(peek.count, 25)
    }).pipe(Effect.provide(testLayer)))

  it.live("status counts the queue and the dead letters by reason and step", () =>
    Effect.gen(function*() {
      yield* seed(DLQ, [deadLetter(1, "CorruptImage", "thumbnail200"), deadLetter(2, "CorruptImage", "thumbnail200"), deadLetter(3, "SchemaViolation", "decode")])
      const queue = yield* MessageQueue
      yield* queue.send(QUEUE, [{ id: "a", body: "{}" }, { id: "b", body: "{}", delaySeconds: 60 }])
      yield* queue.receive(QUEUE, { maxMessages: 1 })
      yield* queue.send(QUEUE, [{ id: "c", body: "{}" }])
      const status = yield* pipelineStatus()
      assert.deepStrictEqual(
        { visible: status.queue.visible, inFlight: status.queue.inFlight, delayed: status.queue.delayed },
        { visible: 1, inFlight: 1, delayed: 1 }
      )
      assert.deepStrictEqual(status.deadLetters.reasons, { CorruptImage: 2, SchemaViolation: 1 })
      assert.deepStrictEqual(status.deadLetters.steps, { thumbnail200: 2, decode: 1 })
      assert.strictEqual(status.deadLetters.count, 3)
    }).pipe(Effect.provide(testLayer)))

  it.live("a redrive sends each dead letter back once with its pipeline attributes and without the error ones", () =>
    Effect.gen(function*() {
      yield* seed(DLQ, Array.from({ length: 23 }, (_, i) => deadLetter(i, "CorruptImage", "thumbnail200")))
      const result = yield* redriveDeadLetters({})
      assert.deepInclude(result, { _tag: "Copied", redriven: 23, finished: 0, notDeleted: 0 })
      const control = yield* MemoryQueueControl
      assert.strictEqual(control.messages(DLQ).length, 0)
      const back = control.messages(QUEUE)
      assert.strictEqual(back.length, 23)
      assert.deepStrictEqual(new Set(back.map((message) => message.body)).size, 23)
      const first = back.find((message) => message.body === JSON.stringify({ id: "rec-0" }))!
      assert.deepStrictEqual(first.attributes, { "pipeline.step": "1", "pipeline.trace_id": "trace-0", "pipeline.transition_id": "t-0" })
    }).pipe(Effect.provide(testLayer)))

  it.live("--reason, --step and --max choose what moves; the rest stays in the DLQ, visible", () =>
    Effect.gen(function*() {
      yield* seed(DLQ, [
        ...Array.from({ length: 12 }, (_, i) => deadLetter(i, "CorruptImage", "thumbnail200")),
        ...Array.from({ length: 3 }, (_, i) => deadLetter(100 + i, "SchemaViolation", "decode")),
        deadLetter(200, "CorruptImage", "thumbnail100")
      ])
      const control = yield* MemoryQueueControl
      const byReason = yield* redriveDeadLetters({ reason: "SchemaViolation" })
      assert.deepInclude(byReason, { redriven: 3 })
      const byStepAndMax = yield* redriveDeadLetters({ step: "thumbnail200", max: 5 })
      assert.deepInclude(byStepAndMax, { redriven: 5 })
      const bodies = control.messages(QUEUE).map((message) => JSON.parse(message.body) as { id: string })
      assert.strictEqual(bodies.length, 8)
      assert.isTrue(bodies.slice(0, 3).every((body) => body.id.startsWith("rec-10")))
      assert.strictEqual(control.messages(DLQ).length, 8)
      assert.strictEqual(yield* visibleNow(DLQ), 8)
    }).pipe(Effect.provide(testLayer)))

  it.live("a run stopped after its send but before its delete: the next run deletes without sending again", () =>
    Effect.gen(function*() {
      yield* seed(DLQ, Array.from({ length: 4 }, (_, i) => deadLetter(i, "CorruptImage", "thumbnail200")))
      const control = yield* MemoryQueueControl
      // the first run's deletes never happen (as if it was killed between send and delete)
      const first = yield* redriveDeadLetters({}).pipe(
        Effect.provideService(MessageQueue, yield* deleteFailsFor(DLQ))
      )
      assert.deepInclude(first, { redriven: 0, notDeleted: 4 })
      assert.strictEqual(control.messages(QUEUE).length, 4)
      assert.strictEqual(control.messages(DLQ).length, 4, "still in the DLQ")
      // they are in flight for the DLQ's visibility timeout (1 s): the next run waits for them
      const second = yield* redriveDeadLetters({})
      assert.deepInclude(second, { redriven: 0, finished: 4, notDeleted: 0 })
      assert.strictEqual(control.messages(QUEUE).length, 4, "none sent twice")
      assert.strictEqual(control.messages(DLQ).length, 0)
    }).pipe(Effect.provide(testLayer)))

  it.live("a send that fails leaves the dead letter in the DLQ, visible, and reports it", () =>
    Effect.gen(function*() {
      yield* seed(DLQ, [deadLetter(1, "CorruptImage", "thumbnail200"), deadLetter(2, "CorruptImage", "thumbnail200")])
      const control = yield* MemoryQueueControl
      control.faults.entry = (operation, queueUrl, message) =>
        operation === "send" && queueUrl === QUEUE && message.body.includes("rec-2")
          ? { id: message.id, code: "InvalidParameterValue", message: "refused", senderFault: true }
          : undefined
      const result = yield* redriveDeadLetters({})
      assert.deepInclude(result, { redriven: 1 })
      assert.strictEqual(result._tag === "Copied" ? result.failed.length : -1, 1)
      assert.strictEqual(control.messages(DLQ).length, 1)
      assert.strictEqual(yield* visibleNow(DLQ), 1)
    }).pipe(Effect.provide(testLayer)))

  it.live("to a FIFO queue: the chain's trace id as group, the dead letter's id as deduplication id", () =>
    Effect.gen(function*() {
      yield* seed(FIFO_DLQ, [{ ...deadLetter(1, "CorruptImage", "thumbnail200", FIFO), groupId: "dead-letters", deduplicationId: "x1" }])
      const result = yield* redriveDeadLetters({})
      assert.deepInclude(result, { redriven: 1 })
      const control = yield* MemoryQueueControl
      const [back] = control.messages(FIFO)
      assert.strictEqual(back?.groupId, "trace-1")
      assert.match(back?.deduplicationId ?? "", /^redrive-/)
    }).pipe(Effect.provide(layerFor(FIFO, FIFO_DLQ))))

  it.live("no dead-letter queue: a clear failure", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(peekDeadLetters(10))
      assert.strictEqual(error._tag, "NoDeadLetterQueue")
    }).pipe(Effect.provide(Layer.mergeAll(MessageQueue.layerMemory({ [QUEUE]: {} }), EngineSettings.layerWith({ queueUrl: QUEUE, deadLetterQueueUrl: Option.none() })))))
})

/** The memory queue, except that deletes on `queueUrl` fail for every entry (retryably, so they are retried, then given up). */
const deleteFailsFor = (queueUrl: string) =>
  Effect.gen(function*() {
    const queue = yield* MessageQueue
    return MessageQueue.of({
      ...queue,
      delete: (url, entries) =>
        url === queueUrl
          ? Effect.succeed({ successful: [], failed: entries.map((entry) => ({ id: entry.id, code: "AccessDenied", message: "denied", senderFault: true })) })
          : queue.delete(url, entries)
    })
  })
