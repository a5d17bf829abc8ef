/**
 * The in-process batch runner: the agent's messages go to the Lambda handler as the SQS event an
 * event source mapping would send, and come back as the ids that failed.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import { Attribute } from "../../src/domain/transition.ts"
import { greetingPipeline } from "../../src/pipelines/greeting.ts"
import { toSqsEvent } from "../../src/domain/sqsEvent.ts"
import { inProcessRunner } from "../../src/programs/inProcessRunner.ts"
import { BatchRunner } from "../../src/services/BatchRunner.ts"
import { EngineSettings } from "../../src/services/EngineSettings.ts"
import { MemoryQueueControl } from "../../src/services/queue/memory.ts"
import type { QueueMessage } from "../../src/domain/messages.ts"
import { MessageQueue } from "../../src/services/MessageQueue.ts"
import { ObjectStore } from "../../src/services/ObjectStore.ts"

const QUEUE = "work"

const message = (id: string, body: string, receiveCount = 1): QueueMessage => ({
  messageId: id,
  receiptHandle: `rh-${id}`,
  body,
  attributes: { [Attribute.step]: "0", [Attribute.traceId]: `trace-${id}` },
  receiveCount
})

const runner = Layer.provideMerge(
  inProcessRunner(greetingPipeline),
  Layer.mergeAll(MessageQueue.layerMemory({ [QUEUE]: {} }), ObjectStore.layerMemory, EngineSettings.layerWith({ queueUrl: QUEUE }))
)

describe("BatchRunner", () => {
  it("toSqsEvent: the event an event source mapping delivers", () => {
    assert.deepStrictEqual(toSqsEvent([message("m1", `{"id":"a"}`, 3)]), {
      Records: [{
        messageId: "m1",
        receiptHandle: "rh-m1",
        body: `{"id":"a"}`,
        attributes: { ApproximateReceiveCount: "3" },
        messageAttributes: {
          [Attribute.step]: { stringValue: "0", dataType: "String" },
          [Attribute.traceId]: { stringValue: "trace-m1", dataType: "String" }
        },
        eventSource: "aws:sqs",
        eventSourceARN: "arn:aws:sqs:local:000000000000:pipeline"
      }]
    })
    assert.strictEqual(toSqsEvent([message("m1", "{}")], "arn:aws:sqs:eu-west-1:1:q").Records[0]!.eventSourceARN, "arn:aws:sqs:eu-west-1:1:q")
  })

  it.effect("runs a batch through the handler: successors sent, the ids that failed returned", () =>
    Effect.gen(function*() {
      const batch = yield* BatchRunner
      const result = yield* batch.run([message("m1", `{"id":"a"}`), message("m2", "not json")])
      assert.deepStrictEqual([...result.failed], ["m2"], "no dead-letter queue here: the bad body is left to redelivery")
      assert.deepStrictEqual(result.outcomes, Option.some({ advanced: 1, done: 0, deadLettered: 0, retried: 1, duplicates: 0 }))
      const sent = (yield* MemoryQueueControl).messages(QUEUE).map((m) => JSON.parse(m.body))
      assert.deepStrictEqual(sent, [{ id: "a", greeting: "hello" }])
    }).pipe(Effect.provide(runner)))

  it.effect("a handler that dies fails the whole batch with what killed it", () =>
    Effect.gen(function*() {
      const control = yield* MemoryQueueControl
      control.faults.request = () => {
        throw new Error("socket hang up")
      }
      const batch = yield* BatchRunner
      const error = yield* Effect.flip(batch.run([message("m1", `{"id":"a"}`)]))
      assert.strictEqual(error._tag, "BatchRunnerError")
      assert.strictEqual(error.message, "the handler died: Error: socket hang up")
    }).pipe(Effect.provide(runner)))
})
