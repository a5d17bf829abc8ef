/**
 * No dead letter without a reason: on a message's last allowed receive (its receive count against
 * the queue's maxReceiveCount), a failure that would leave it for redelivery dead-letters it here,
 * with that failure as the reason, instead of letting the queue's redrive move it with none.
 */
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Layer, Schema } from "effect"
import { RetryableError } from "../../src/domain/errors.ts"
import { definePipeline, done, mutation } from "../../src/domain/Pipeline.ts"
import { acknowledge, type Outcome, processBatch } from "../../src/programs/engine.ts"
import { EngineSettings } from "../../src/services/EngineSettings.ts"
import { MemoryQueueControl } from "../../src/services/queue/memory.ts"
import { MessageQueue } from "../../src/services/MessageQueue.ts"

const QUEUE = "work"
const DLQ = "work-dlq"

const Job = Schema.Struct({ id: Schema.String, fails: Schema.Literals(["busy", "throws"]) })
const attempt = mutation<typeof Job.Type, RetryableError>("attempt", (job) =>
  job.fails === "busy" ? Effect.fail(new RetryableError({ message: "the service is busy" })) : Effect.sync(() => {
    throw new Error("bug in attempt")
  }))
const jobs = definePipeline({
  name: "jobs",
  schema: Job,
  recordId: (job) => job.id,
  router: (job) => (job.id === "" ? done : attempt),
  initialRecord: (id) => ({ id, fails: "busy" }),
  layer: Layer.empty
})

const services = (queue: { readonly maxReceiveCount?: number; readonly deadLetterQueueUrl?: string }) =>
  Layer.mergeAll(
    MessageQueue.layerMemory({ [QUEUE]: { visibilityTimeout: 0, ...queue } }),
    // retried in process for no time at all: the test is about receives
    EngineSettings.layerWith({ queueUrl: QUEUE, retryFor: Duration.zero })
  )

/** Receives the job again and again, like SQS redelivering it, until it leaves the queue. */
const receiveUntilGone = (fails: "busy" | "throws") =>
  Effect.gen(function*() {
    const queue = yield* MessageQueue
    // an engine of its own: it remembers a queue's redrive policy for its lifetime
    const engine = processBatch(jobs)
    yield* queue.send(QUEUE, [{ id: "j", body: JSON.stringify({ id: "j", fails }) }])
    const history: Array<Outcome["_tag"]> = []
    for (let receive = 0; receive < 10; receive++) {
      const messages = yield* queue.receive(QUEUE)
      if (messages.length === 0) break
      const outcomes = yield* engine(messages)
      yield* acknowledge(QUEUE, outcomes)
      history.push(...outcomes.map((outcome) => outcome._tag))
    }
    return history
  })

describe("engine on a message's last allowed receive", () => {
  it.live("a retryable failure is left for redelivery until the last receive, then dead-lettered with it as the reason", () =>
    Effect.gen(function*() {
      const history = yield* receiveUntilGone("busy")
      assert.deepStrictEqual(history, ["Failed", "Failed", "DeadLettered"])
      const control = yield* MemoryQueueControl
      assert.deepStrictEqual(control.messages(QUEUE), [])
      const [dead] = control.messages(DLQ)
      assert.deepStrictEqual(
        [dead!.attributes["error.tag"], dead!.attributes["error.message"], dead!.attributes["error.step"], dead!.attributes["error.receive_count"]],
        ["RetryableError", "the service is busy", "attempt", "3"]
      )
    }).pipe(Effect.provide(services({ maxReceiveCount: 3, deadLetterQueueUrl: DLQ }))))

  it.live("a mutation that throws is dead-lettered on its last receive with the exception as the reason", () =>
    Effect.gen(function*() {
      const history = yield* receiveUntilGone("throws")
      assert.deepStrictEqual(history, ["Failed", "DeadLettered"])
      const [dead] = (yield* MemoryQueueControl).messages(DLQ)
      assert.strictEqual(dead!.attributes["error.tag"], "Defect")
      assert.include(dead!.attributes["error.message"], "bug in attempt")
    }).pipe(Effect.provide(services({ maxReceiveCount: 2, deadLetterQueueUrl: DLQ }))))

  it.live("a queue without a redrive policy keeps redelivering: the engine does not invent a limit", () =>
    Effect.gen(function*() {
      const history = yield* receiveUntilGone("busy")
      assert.deepStrictEqual(history, Array.from({ length: 10 }, () => "Failed"))
    }).pipe(Effect.provide(services({}))))
})
