/**
 * FIFO queues, end to end: the producer's message groups and deduplication ids on moto's SQS, and
 * a greeting chain run to done by the agent on a FIFO queue, on moto and on the local queue.
 *
 * On FIFO every successor is sent with its transition id as MessageDeduplicationId. Were that id
 * the same for two states of one record, the queue would take the successor for a duplicate of
 * the message it replaces, accept it and deliver nothing: the record would vanish without an error.
 */
import "../support/awsEnv.ts"
import { ReceiveMessageCommand, SQSClient } from "@aws-sdk/client-sqs"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Deferred } from "effect"
import type { AnyPipeline } from "../../src/domain/Pipeline.ts"
import { Attribute } from "../../src/domain/transition.ts"
import { greetingPipeline } from "../../src/pipelines/greeting.ts"
import { runAgent } from "../../src/programs/agent.ts"
import { inProcessRunner } from "../../src/programs/inProcessRunner.ts"
import { EngineSettings } from "../../src/services/EngineSettings.ts"
import { parseInputs, produce } from "../../src/programs/producer.ts"
import { MessageQueue } from "../../src/services/MessageQueue.ts"
import { createQueue } from "../support/aws.ts"
import { ObjectStore } from "../../src/services/ObjectStore.ts"

/** A FIFO queue on moto that deduplicates only by the ids it is given. */
const motoFifoQueue = Effect.promise(() => createQueue({ fifo: true, contentBasedDeduplication: false }))

const tempDir = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "fifo-chain-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

/** Validates and sends inputs as `npm run produce` does; all must be valid and sent. */
const produceInputs = (queueUrl: string, texts: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const { messages, invalid } = parseInputs(greetingPipeline, queueUrl, texts.map((text, i) => ({ source: `argument ${i + 1}`, text })))
    assert.deepStrictEqual(invalid, [])
    const result = yield* produce(queueUrl, messages)
    assert.deepStrictEqual(result, { sent: texts.length, failed: [] })
  })

describe("the producer on a FIFO queue (moto)", () => {
  it.live("puts each record in its own message group with its transition id as deduplication id", () =>
    Effect.gen(function*() {
      const { queueUrl } = yield* motoFifoQueue
      const inputs = ["a", "b", "c", `{"id":"d","greeting":"hi"}`]
      yield* produceInputs(queueUrl, inputs)
      // the same records again: the same transition ids, so SQS drops them as duplicates
      yield* produceInputs(queueUrl, inputs)

      const client = new SQSClient({ useQueueUrlAsEndpoint: false })
      const received = yield* Effect.promise(() =>
        client.send(new ReceiveMessageCommand({
          QueueUrl: queueUrl,
          MaxNumberOfMessages: 10,
          MessageSystemAttributeNames: ["MessageGroupId", "MessageDeduplicationId"],
          MessageAttributeNames: ["All"]
        }))
      ).pipe(Effect.ensuring(Effect.sync(() => client.destroy())))
      const messages = (received.Messages ?? []).map((message) => ({
        id: (JSON.parse(message.Body!) as { id: string }).id,
        group: message.Attributes?.MessageGroupId,
        dedup: message.Attributes?.MessageDeduplicationId,
        transitionId: message.MessageAttributes?.[Attribute.transitionId]?.StringValue
      }))
      assert.sameMembers(messages.map((m) => m.id), ["a", "b", "c", "d"], "one message per record: the second send was deduplicated")
      for (const message of messages) {
        assert.strictEqual(message.group, message.id, `${message.id}: its own message group`)
        assert.match(message.transitionId ?? "", /^[0-9a-f]{64}$/)
        assert.strictEqual(message.dedup, message.transitionId, `${message.id}: deduplicated by its transition id`)
      }
      assert.strictEqual(new Set(messages.map((m) => m.dedup)).size, 4)
    }).pipe(Effect.provide(MessageQueue.layerSqs)))
})

/** The greeting pipeline, noting each record its router calls done. */
const observedGreeting = (done: Set<string>): AnyPipeline => ({
  ...greetingPipeline,
  router: (record) => {
    const route = greetingPipeline.router(record)
    if (route._tag === "Done") done.add(record.id ?? "")
    return route
  }
})

/** Produces `count` greetings, runs the agent until the queue is empty; checks every record reached done. */
const runChain = (queueUrl: string, count: number) =>
  Effect.gen(function*() {
    const ids = Array.from({ length: count }, (_, i) => `greet-${i}`)
    yield* produceInputs(queueUrl, ids)
    const done = new Set<string>()
    const stats = yield* runAgent({ queueUrl, concurrency: 10, untilEmpty: true, waitSeconds: 1, stop: Deferred.makeUnsafe<void>() }).pipe(
      Effect.provide(inProcessRunner(observedGreeting(done)))
    )
    assert.sameMembers([...done], ids, "every record reached done")
    assert.strictEqual(stats.succeeded, 3 * count, "three passes per record: greeting, name, done")
    assert.strictEqual(stats.failed, 0)
    const left = yield* (yield* MessageQueue).attributes(queueUrl)
    assert.strictEqual(left.approximateVisible + left.approximateInFlight + left.approximateDelayed, 0)
  })

const services = (queueUrl: string, queue: Layer.Layer<MessageQueue, unknown>) =>
  Layer.mergeAll(queue, ObjectStore.layerMemory, EngineSettings.layerWith({ queueUrl }))

describe("a greeting chain on a FIFO queue", () => {
  it.live("on moto: every record goes {} → greeting → name → done, none lost", () =>
    Effect.gen(function*() {
      const { queueUrl } = yield* motoFifoQueue
      yield* runChain(queueUrl, 6).pipe(Effect.provide(services(queueUrl, MessageQueue.layerSqs)))
    }))

  it.live("on the local queue (a name ending in .fifo): every record goes to done, none lost", () =>
    Effect.gen(function*() {
      const directory = yield* tempDir
      const queueUrl = "pipeline.fifo"
      yield* runChain(queueUrl, 6).pipe(Effect.provide(services(queueUrl, MessageQueue.layerLocal({ directory }))))
    }))
})
